"""lower_to_blocks: the graph every target runs, with each constant current stored once, at its sink.

A *sink* is where currents stop (``Op.sink``): a neuron layer, a lateral-inhibition pool, a readout. A
*block* is a sink with the connections whose currents reach it without passing another sink (nengo-loihi's
compartment with its incoming synapses). Constant terms (Conv/Dense biases, BatchNorm shifts, added or
subtracted constants) of a block are one constant current per sink neuron: lowering computes it once and
stores it as the sink's ``bias``, gated by the schedule to the sink's wake window, so the reference
simulator, Lava (float and fixed point) and later targets read the same numbers from the same place.
"""
from __future__ import annotations

import numpy as np
import torch

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import op_of, tensors


def lowered(g: Graph) -> Graph:
    """``g`` lowered (a lowered copy; ``g`` itself when it is lowered already): what targets compile."""
    return g if g.meta.get("lowered") else lower_to_blocks(g.copy())


def lower_to_blocks(g: Graph) -> Graph:
    """Make every graph output the output of a Readout sink, move every constant term to the sinks it
    reaches (their ``bias``: the graph evaluated on a zero input with every sink's output held at zero;
    (C, 1, 1) where it is the same at every position),
    and leave every other node its linear part (``Op.drop_constant``). The schedule gains each readout's
    arrival (its source's arrival plus the source's delay), the step its data first arrives.

    With a sleep phase and a balanced schedule every upstream constant arrives exactly in the sink's wake
    window, so gating the sum there is what gating each term at its own layer did. Without a sleep phase
    (the IF baseline) a sink's bias is on from step 0, as a neuron's bias current is on Loihi and in Lava
    (before this lowering the reference simulator let each layer's bias reach the sink after the path delay,
    so with synaptic delays the IF baseline's readout changed; Lava's never did).
    Invariant: the interpreter's output is unchanged up to float rounding (each bias is added once, at the
    sink); afterwards no non-sink node has a constant term and ``meta['lowered']`` is set.
    """
    if g.meta.get("lowered"):
        return g
    if g.schedule is None:
        raise ConversionError("lower_to_blocks runs after schedule_wake_sleep")
    _add_readouts(g)
    currents = _sink_currents(g)  # before any constant term is dropped
    for n in g.topo():
        op = op_of(n)
        if op.sink:
            n.params.pop("bias", None)
            if np.any(currents[n.name]):
                n.params["bias"] = _compact(currents[n.name])
        elif op.bias(n, tensors(n), g.shapes[n.output]) is not None:
            op.drop_constant(n, g.shapes[n.output])
            if op_of(n).bias(n, tensors(n), g.shapes[n.output]) is not None:
                raise ConversionError("lowering left a constant term on this node", node=n.name, op=n.op)
    g.schedule.gated_bias = [n.name for n in g.topo() if "bias" in n.params and op_of(n).sink]
    g.meta["lowered"] = True
    return g


def _add_readouts(g: Graph) -> None:
    """One Readout per distinct graph output, writing the output tensor (its source now writes ``<t>:current``)."""
    s = g.schedule
    for t in dict.fromkeys(g.outputs):
        src = g.producers()[t]
        if not src.inputs:
            raise ConversionError(f"graph output '{t}' is the graph input itself: there is no network to run",
                                  node=src.name, op=src.op)
        current = g.unique_name(f"{t}:current")
        outputs = list(g.outputs)
        g.rename_tensor(t, current)
        g.outputs = outputs
        src.output = current
        g.shapes[current] = g.shapes[t]
        name = g.unique_name(f"readout:{t}")
        g.add(Node(name, "Readout", [current], t))
        arrival = s.arrival.get(src.name, 0) + s.delay.get(src.name, 0)
        if arrival:
            s.arrival[name] = arrival


def _compact(b: np.ndarray) -> np.ndarray:
    """A (C, H, W) current that is the same at every position (a conv bias reaching the sink unchanged) as
    (C, 1, 1): the same numbers, broadcast, at a fraction of the memory traffic per step."""
    if b.ndim == 3 and np.array_equal(b, np.broadcast_to(b[:, :1, :1], b.shape)):
        return np.ascontiguousarray(b[:, :1, :1])
    return b


def _sink_currents(g: Graph) -> dict[str, np.ndarray]:
    """Constant current reaching each sink per step of its wake window (float64, per-sample shape)."""
    vals: dict[str, torch.Tensor] = {}
    out: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for n in g.topo():
            shape = (1, *g.shapes[n.output])
            op = op_of(n)
            if not n.inputs:  # the input: zero
                vals[n.output] = torch.zeros(shape, dtype=torch.float64)
            elif op.sink:  # the current stops here
                out[n.name] = vals[n.inputs[0]][0].numpy().copy()
                vals[n.output] = torch.zeros(shape, dtype=torch.float64)
            else:
                vals[n.output] = op.forward(n, [vals[t] for t in n.inputs], tensors(n, torch.float64))
    return out
