"""quantize_fixed_point: integer weights, thresholds and biases for Loihi 2 style fixed point."""
from __future__ import annotations

import numpy as np

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph
from neurocompile.ops import NoWeightMap, is_level_neuron, op_of

WEIGHT_MAX = 254      # lava's Dense truncates the LSB of 8-bit mixed-sign weights: even values in [-256, 254]
STATE_BITS = 24       # Loihi 2 membrane / current width (signed)


def quantize_fixed_point(g: Graph, input_scale: float = 255.0) -> Graph:
    """Store every tensor as integers: real value = stored / unit(tensor).

    The input is rounded to ``x * input_scale`` (255: images in [0, 1] as 8-bit pixels). A Conv or
    Dense picks its output unit so its largest weight is WEIGHT_MAX: W_int = 2 * round(W u_out /
    (2 u_in)) (even, as lava's fixed-point Dense needs), b_int = round(b u_out); an AvgPool /
    GlobalAvgPool sums its window instead (``divisor_override`` 1, so its Lava weights are exactly 1)
    and its unit takes the 1/window. A CIF/IF neuron gets threshold round(θ u_in) and sends spikes of
    amplitude 1: its output unit is 1/θ (spike counts), so units never compound with depth. The readout
    divides by its unit (``schedule['readout_scale']``). Feed-forward CIF/IF graphs only; merges are refused.
    Invariant: the simulators compute in exact integer arithmetic (all values < 2**23); the function
    approximates the float graph within the weight rounding (lossy, reported by the caller).
    """
    if g.schedule is None:
        raise ConversionError("quantize_fixed_point runs after schedule_wake_sleep")
    unit: dict[str, float] = {}
    bound: dict[str, float] = {}  # largest |stored value| a tensor can take per step
    for n in g.topo():
        op = op_of(n)
        if not n.inputs:  # the input
            unit[n.output], bound[n.output] = input_scale, input_scale * 1.0
            n.attrs["scale"] = float(input_scale)
            continue
        u_in, b_in = unit[n.inputs[0]], bound[n.inputs[0]]
        if op.synaptic and op.rescalable == ("weight", "bias"):  # Conv, Dense
            w = n.params["weight"].astype(np.float64)
            wmax = float(np.abs(w).max()) or 1.0
            u_out = WEIGHT_MAX * u_in / wmax
            w_int = 2.0 * np.round(w * u_out / (2.0 * u_in))
            n.params["weight"] = w_int.astype(np.float32)
            if "bias" in n.params:
                n.params["bias"] = np.round(n.params["bias"].astype(np.float64) * u_out).astype(np.float32)
            fan_in = np.abs(w_int).reshape(w_int.shape[0], -1).sum(1).max()
            bias = float(np.abs(n.params.get("bias", np.zeros(1))).max())
            unit[n.output], bound[n.output] = u_out, fan_in * b_in + bias
        elif op.synaptic and hasattr(op, "window"):  # averaging pools: window sums, one divisor for all windows
            in_shape = g.shapes[n.inputs[0]]
            try:
                op.weight_map(n, in_shape)
            except NoWeightMap as exc:
                raise ConversionError(f"{exc}, so it has no integer form", node=n.name, op=n.op,
                                      hint=exc.hint) from None
            window = op.window(n, in_shape[1:])
            n.attrs["divisor_override"] = 1
            unit[n.output], bound[n.output] = u_in * window, b_in * window
        elif is_level_neuron(n):
            theta_real = float(n.attrs["threshold"])
            theta_int = max(1.0, float(np.round(theta_real * u_in)))
            n.attrs["threshold"], n.attrs["amplitude"] = theta_int, 1.0
            unit[n.output], bound[n.output] = u_in / theta_int, float(n.attrs.get("gamma", 1))
            if (b_in + theta_int) * 2 >= 2 ** (STATE_BITS - 1):
                raise ConversionError(f"membrane could reach {b_in + theta_int:.3g}, beyond {STATE_BITS}-bit state",
                                      node=n.name, op=n.op)
        elif op.exact_in_integers:
            unit[n.output], bound[n.output] = u_in, b_in
        else:
            raise ConversionError("fixed point supports feed-forward Conv/Dense/pool/CIF/IF graphs only",
                                  node=n.name, op=n.op)
        if bound[n.output] >= 2 ** (STATE_BITS - 1):
            raise ConversionError(f"values could reach {bound[n.output]:.3g}, beyond {STATE_BITS}-bit state",
                                  node=n.name, op=n.op)
    outs = [unit[t] for t in g.outputs]
    g.schedule["input_scale"] = float(input_scale)
    g.schedule["readout_scale"] = float(outs[0])
    g.meta["fixed_point"] = True
    return g
