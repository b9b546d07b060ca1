"""The blocks of a lowered graph: each sink (neuron layer, inhibition pool, readout) with the synaptic nodes whose
currents reach it without passing another sink (nengo-loihi's compartment with its incoming synapses), and when
each sink's steps begin and end. Every target and the estimate read the structure from here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph, Node
from neurocompile.ir.schedule import WakeSleepSchedule
from neurocompile.ir.ops import Group, is_level_neuron, op_of


@dataclass
class Block:
    """A sink with its incoming connections (``synapses``: synaptic nodes, in topological order)."""

    sink: str
    synapses: list[str]
    bias: np.ndarray | None
    arrival: int


def readout_start(g: Graph, n: Node) -> int:
    """The run step of the network's step 0 at the readout ``n`` of a lowered graph: the lag of its source (what the
    targets' synaptic delays hold it back by). A delay of the network itself right before the output (NIR's Delay)
    is part of what the readout reads, so unlike the readout's arrival (from which its bias is on) it does not count."""
    return g.schedule.lag(g.producers()[n.inputs[0]].name)


def flush_steps(s: WakeSleepSchedule) -> int:
    """Steps after an unstaggered sample during which in-flight currents drain (longest path delay, and margin)."""
    return 2 + max([a + s.delay.get(k, 0) for k, a in s.arrival.items()] + [0]) + s.max_delay


def first_readout_start(g: Graph) -> int:
    """The earliest :func:`readout_start` of the lowered graph's readouts: the step the first current reaches one."""
    return min(readout_start(g, n) for n in g.topo() if n.op in Group.READOUT)


def sample_period(g: Graph, T: int) -> int:
    """Steps between two samples streamed through the lowered graph ``g`` run for ``T`` steps each (a pipelined
    stream, as targets/lava streams them). With a sleep phase every sink starts a sample when its data arrives, so
    a sink's work on a sample fits in T - (earliest readout start) steps and samples overlap in depth; without one
    (the IF baseline: biases on from step 0) each sample is followed by the flush steps that drain it."""
    s = g.schedule
    if not s.sleep:
        return T + flush_steps(s)
    return T - first_readout_start(g)


def sink_ends(g: Graph, T: int) -> dict[str, int]:
    """The step from which each sink (neuron, pool, readout) of the lowered graph ``g`` of a student is silent and
    counts nothing in a ``T``-step run. A student (a sleep phase, and spiking neurons other than CIF and IF: LIF,
    CubaLIF) is a network of T' steps of its own, read out as the mean over them; synaptic delays hold a sink's steps
    back by its arrival (its step t is the network's step t - arrival), and a T-step run holds T' = T - (latest
    :func:`readout_start`) steps of it. Each sink ends after its own T' steps: its arrival + T' (a readout: its
    start + T'). Running on would take every sink reached before the latest readout past the network's last step,
    where a CubaLIF's current, an LI's membrane and the spikes a Delay holds back persist: other readouts and spike
    counts than without delays. Every target stops its sinks there, so delays change no number. Empty for CIF and IF
    networks, whose readout is the settled one (every step counts)."""
    s = g.schedule
    sinks = [n for n in g.topo() if op_of(n).sink]
    if not s.sleep or not any(op_of(n).spiking and not is_level_neuron(n) for n in sinks):
        return {}
    readouts = {n.name for n in sinks if n.op in Group.READOUT}
    starts = {n.name: readout_start(g, n) if n.name in readouts else s.arrival.get(n.name, 0) for n in sinks}
    own = T - max(v for k, v in starts.items() if k in readouts)
    return {k: v + own for k, v in starts.items()}


def blocks(g: Graph) -> list[Block]:
    """The blocks of a lowered graph, in topological order of their sinks."""
    if not g.meta.get("lowered"):
        raise ConversionError("blocks() reads a lowered graph (lower_to_blocks)")
    prod = g.producers()
    out = []
    for n in g.topo():
        if not op_of(n).sink:
            continue
        synapses, stack, seen = [], list(n.inputs), set()
        while stack:
            t = stack.pop()
            src = prod[t]
            if src.name in seen or op_of(src).sink or not src.inputs:
                continue
            seen.add(src.name)
            if op_of(src).synaptic:
                synapses.append(src.name)
            stack.extend(src.inputs)
        order = {m.name: i for i, m in enumerate(g.topo())}
        out.append(Block(n.name, sorted(synapses, key=order.__getitem__), n.params.get("bias"),
                         g.schedule.arrival.get(n.name, 0)))
    return out
