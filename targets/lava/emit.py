"""IR -> a graph of Lava processes.

Layout: an IR tensor of per-sample shape (C, H, W) lives in Lava as (W, H, C), Lava's convolution
layout; in general the Lava shape is the IR shape reversed, so flattening and reshaping go through
virtual transpose ports.

Where the currents go: every *sink* (a neuron layer, a lateral-inhibition pool, the readout) is a
process with an ``a_in`` port; every affine IR node is either a lava connection process (Conv, Dense,
pools and scalings: one step of delay each, as the schedule's ``synapse_delay = 1`` says) or no
process at all (Add = several ports into one ``a_in``, which Lava sums; Flatten/Reshape/Concat =
virtual ports; a constant term = bias). Constant terms (conv/dense biases, BN shifts) are moved to
the sink they reach, gated to that sink's wake window: on a balanced schedule every upstream bias
arrives exactly in that window, so the sum is what the reference simulator computes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neurocompile.errors import TargetError
from neurocompile.ir import Graph, Node
from neurocompile.ops import OPS, _pair, tensors
from neurocompile.schedule import WakeSleepSchedule


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(reversed(tuple(shape)))


def to_lava(a: np.ndarray) -> np.ndarray:
    """Per-sample IR array -> Lava layout (axes reversed)."""
    return np.ascontiguousarray(np.transpose(a, tuple(reversed(range(a.ndim)))))


def from_lava(a: np.ndarray, lead: int) -> np.ndarray:
    """Lava-layout array with ``lead`` leading (sample/time) axes -> IR layout."""
    axes = tuple(range(lead)) + tuple(reversed(range(lead, a.ndim)))
    return np.transpose(a, axes)


def sink_biases(g: Graph) -> dict[str, np.ndarray]:
    """Constant current reaching each sink (and each graph output) per step of its wake window:
    the graph evaluated on a zero input with every sink's output held at zero."""
    vals: dict[str, torch.Tensor] = {}
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for n in g.topo():
            shape = (1, *g.shapes[n.output])
            if n.op == "Input":
                vals[n.output] = torch.zeros(shape, dtype=torch.float64)
                continue
            xs = [vals[t] for t in n.inputs]
            if OPS[n.op].role == "neuron":  # a sink: the current stops there
                out[n.name] = xs[0][0].numpy()
                vals[n.output] = torch.zeros(shape, dtype=torch.float64)
            else:
                vals[n.output] = OPS[n.op].forward(n, xs, tensors(n, torch.float64))
    for t in g.outputs:
        out[f"readout:{t}"] = vals[t][0].numpy()
    return out


@dataclass
class Emitted:
    """The process graph for one batch, and where to read results."""

    input: Any
    readouts: dict[str, Any]               # graph output tensor -> Readout process
    neurons: dict[str, Any]                # IR neuron node -> SpikingNeuron process
    processes: list[Any] = field(default_factory=list)


def emit(g: Graph, n_samples: int, steps: int, period: int, data: np.ndarray) -> Emitted:
    """Build the processes (not yet compiled) for ``n_samples`` samples of ``data`` (IR layout)."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense

    from neurocompile.targets.lava.processes.neurons import SpikingNeuron
    from neurocompile.targets.lava.processes.pooling import InhibitionMaxPool
    from lava.proc.lif.process import LIFReset

    from neurocompile.targets.lava.processes.routing import (DelayLine, GatedBias, Readout, SpikeCounter,
                                                             WakeInput)

    s = WakeSleepSchedule.from_dict(g.schedule)
    timing = dict(t_wake=s.t_wake, steps=steps, period=period, sleep=s.sleep)
    biases = sink_biases(g)
    terms: dict[str, list] = {}   # tensor -> Lava out ports whose sum is the tensor
    procs: list = []
    neurons: dict[str, Any] = {}
    inp = None

    def add(p):
        procs.append(p)
        return p

    def into(port_in, ts):
        for t in ts:
            t.connect(port_in)

    for n in g.topo():
        shape = g.shapes[n.output]
        ins = [terms[t] for t in n.inputs]
        in_shapes = [g.shapes[t] for t in n.inputs]
        if n.name in s.balance:  # delay the early branches of a merge
            for i, d in enumerate(s.balance[n.name]):
                if d:
                    line = add(DelayLine(shape=lava_shape(in_shapes[i]), delay=d, name=f"{n.name}/delay{i}"))
                    into(line.a_in, ins[i])
                    ins[i] = [line.s_out]
        if n.op == "Input":
            inp = add(WakeInput(data=np.stack([to_lava(x) for x in s.encode_input(data)]), name=n.name, **timing))
            terms[n.output] = [inp.s_out]
        elif n.op in ("CIF", "IF"):
            p = add(SpikingNeuron(shape=lava_shape(shape), kind=n.op, threshold=float(n.attrs["threshold"]),
                                  bias=to_lava(biases[n.name]), gamma=int(n.attrs.get("gamma", 1)),
                                  shift=float(n.attrs.get("shift", 0.0)), amplitude=n.attrs.get("amplitude"),
                                  arrival=s.arrival.get(n.name, 0),
                                  n_samples=n_samples, name=n.name, **timing))
            into(p.a_in, ins[0])
            neurons[n.name] = p
            terms[n.output] = [p.s_out]
        elif n.op == "LIF":
            # lava's own LIF: du = 1 (current = this step's input), dv = 1 - β, hard reset; LIFReset
            # clears u and v at the first step of every period (Lava's time_step is 1-based)
            lshape = lava_shape(shape)
            p = add(LIFReset(shape=lshape, du=1.0, dv=1.0 - float(n.attrs["beta"]), vth=float(n.attrs["threshold"]),
                             bias_mant=0.0, reset_interval=period, reset_offset=1 % period, name=n.name))
            into(p.a_in, ins[0])
            if np.any(biases[n.name]):
                src = add(GatedBias(bias=to_lava(biases[n.name]), arrival=s.arrival.get(n.name, 0),
                                    name=f"{n.name}/bias", **timing))
                src.s_out.connect(p.a_in)
            counter = add(SpikeCounter(shape=lshape, steps=steps, period=period, n_samples=n_samples,
                                       name=f"{n.name}/count"))
            p.s_out.connect(counter.s_in)
            neurons[n.name] = counter
            terms[n.output] = [p.s_out]
        elif n.op == "InhibitionMaxPool":
            p = add(InhibitionMaxPool(in_shape=lava_shape(in_shapes[0]), out_shape=lava_shape(shape),
                                      index=_pool_index(n, in_shapes[0], shape), bias=to_lava(biases[n.name]),
                                      arrival=s.arrival.get(n.name, 0), name=n.name, **timing))
            into(p.a_in, ins[0])
            terms[n.output] = [p.s_out]
        elif n.op in ("Add", "Sub") and not n.attrs.get("reverse"):
            terms[n.output] = [t for ts in ins for t in ts]  # Lava sums ports into one a_in; consts are biases
        elif n.op in ("Flatten", "Reshape"):
            terms[n.output] = [_reshape_port(t, in_shapes[0], shape) for t in ins[0]]
        elif n.op == "Concat":
            if any(len(ts) != 1 for ts in ins):
                raise TargetError("Concat of summed currents is not supported on Lava", node=n.name, op=n.op)
            axis = len(shape) - int(n.attrs.get("axis", 1))
            terms[n.output] = [ins[0][0].concat_with([ts[0] for ts in ins[1:]], axis=axis)]
        elif n.op in ("Conv", "AvgPool", "GlobalAvgPool") or (n.op in ("Affine", "Mul", "Div") and len(shape) == 3):
            p = add(Conv(**_conv_args(n, in_shapes[0], shape), num_message_bits=24, name=n.name))
            into(p.s_in, ins[0])
            if tuple(p.a_out.shape) != lava_shape(shape):
                raise TargetError(f"Lava Conv gives shape {p.a_out.shape}, expected {lava_shape(shape)}",
                                  node=n.name, op=n.op)
            terms[n.output] = [p.a_out]
        elif n.op == "Dense" or (n.op in ("Affine", "Mul", "Div") and len(shape) == 1):
            p = add(Dense(weights=_dense_weights(n, shape[0]), num_message_bits=24, num_weight_bits=8, weight_exp=0,
                          name=n.name))
            into(p.s_in, ins[0])
            terms[n.output] = [p.a_out]
        else:
            raise TargetError("no Lava mapping for this op", node=n.name, op=n.op,
                              hint="Supported: Conv, Dense, AvgPool, GlobalAvgPool, Affine, Mul/Div by constants, "
                                   "Add, Sub, Flatten, Reshape, Concat, CIF, IF, InhibitionMaxPool")
    readouts = {}
    prod = g.producers()
    for t in g.outputs:
        r = add(Readout(shape=lava_shape(g.shapes[t]), bias=to_lava(biases[f"readout:{t}"]),
                        arrival=s.arrival.get(prod[t].name, 0) + s.delay.get(prod[t].name, 0),
                        n_samples=n_samples, name=f"readout:{t}", **timing))
        into(r.a_in, terms[t])
        readouts[t] = r
    return Emitted(input=inp, readouts=readouts, neurons=neurons, processes=procs)


def _reshape_port(port, src: tuple[int, ...], dst: tuple[int, ...]):
    """A Lava-layout port of IR shape ``src`` viewed as IR shape ``dst`` (C-order reshape in IR layout)."""
    if len(src) > 1:
        port = port.transpose(list(reversed(range(len(src)))))
    port = port.reshape(tuple(dst))
    if len(dst) > 1:
        port = port.transpose(list(reversed(range(len(dst)))))
    return port


def _scale_vector(n: Node, channels: int) -> np.ndarray:
    """Per-channel factor of an Affine / Mul / Div node (its constant term goes to the sink)."""
    if n.op == "Affine":
        return n.params["scale"].astype(np.float64)
    c = n.params["const"].astype(np.float64)
    if c.size == 1:
        v = np.full(channels, float(c.reshape(())))
    elif c.size == channels:
        v = c.reshape(channels)
    else:
        raise TargetError(f"constant of shape {c.shape} is neither scalar nor per-channel", node=n.name, op=n.op)
    return v if n.op == "Mul" else 1.0 / v


def _dense_weights(n: Node, width: int) -> np.ndarray:
    if n.op == "Dense":
        return n.params["weight"].astype(np.float64)
    return np.diag(_scale_vector(n, width))


def _conv_args(n: Node, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> dict:
    op = OPS[n.op]
    C, H, W = in_shape
    if n.op == "Conv":
        t, l, b, r = (int(v) for v in op.attr(n, "pads"))
        if (t, l) != (b, r):
            raise TargetError("asymmetric padding has no Lava Conv equivalent", node=n.name, op=n.op)
        sh, sw = _pair(op.attr(n, "stride"))
        dh, dw = _pair(op.attr(n, "dilation"))
        # lava's Conv is a true convolution in (C_out, W, H, C_in): transpose, then flip W and H
        w = np.transpose(n.params["weight"].astype(np.float64), (0, 3, 2, 1))[:, ::-1, ::-1, :]
        return dict(weight=np.ascontiguousarray(w), input_shape=(W, H, C), padding=(l, t), stride=(sw, sh), dilation=(dw, dh),
                    groups=int(op.attr(n, "groups")))
    if n.op == "AvgPool":  # a depthwise Conv with weights 1/(kh*kw): only where every window has that divisor
        kh, kw = _pair(op.attr(n, "kernel"))
        t, l, b, r = (int(v) for v in op.attr(n, "pads"))
        if (t, l) != (b, r) or not op.is_conv(n, (H, W)):
            raise TargetError("this AvgPool is not a fixed-weight Conv on Lava: " + (
                f"its pads {[t, l, b, r]} are asymmetric" if (t, l) != (b, r) else
                "its windows average over different counts (padding with count_include_pad=0) or one overhangs "
                "the end pads (ceil_mode)"), node=n.name, op=n.op,
                hint="Export the pool with symmetric pads, count_include_pad=1 and no ceil_mode overhang, or run "
                     "on the reference target")
        sh, sw = _pair(op.attr(n, "stride"))
        w = np.full((C, kw, kh, 1), 1.0 / (kh * kw))
        return dict(weight=w, input_shape=(W, H, C), padding=(l, t), stride=(sw, sh), groups=C)
    if n.op == "GlobalAvgPool":
        return dict(weight=np.full((C, W, H, 1), 1.0 / (H * W)), input_shape=(W, H, C), groups=C)
    return dict(weight=_scale_vector(n, C).reshape(C, 1, 1, 1), input_shape=(W, H, C), groups=C)


def _pool_index(n: Node, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    """(Wo, Ho, C, kh*kw) flat indices into the Lava-layout (W, H, C) input; -1 marks padding. The windows
    are the op table's own (``padded``: pads, ceil_mode overhang and end crop), taken over an index map."""
    C, H, W = in_shape
    lava_index = np.arange(W * H * C, dtype=np.float64).reshape(W, H, C)  # exact in float64
    ir_index = torch.from_numpy(np.ascontiguousarray(lava_index.transpose(2, 1, 0)))[None]  # (1, C, H, W)
    xp, (kh, kw), (sh, sw) = OPS[n.op].padded(n, ir_index, -1.0)
    cols = xp.unfold(2, kh, sh).unfold(3, kw, sw)[0]  # C, Ho, Wo, kh, kw
    return np.ascontiguousarray(cols.reshape(*out_shape, kh * kw).permute(2, 1, 0, 3).numpy().astype(np.int64))


def check_lowering(g: Graph) -> None:
    """Raise the TargetError that emission would, before Lava starts: pools Lava cannot compute exactly."""
    for n in g.topo():
        if n.op == "AvgPool":
            _conv_args(n, g.shapes[n.inputs[0]], g.shapes[n.output])
