"""Resource and energy estimate of a converted spiking network on Loihi 2 (``estimate(graph, "loihi2", x)``).

What is counted, per block of the lowered graph every target runs (``passes/lower_to_blocks.py``: a sink, i.e.
a neuron layer, a lateral-inhibition max pool or a readout, with the connections whose currents reach it):

- **neurons**: elements of the sink's output tensor. **relays**: where a connection feeds another connection
  before the sink (AvgPool -> Conv, GlobalAvgPool -> Dense, Conv -> max pool), the current between them must
  sit in compartments that pass it on as graded spikes: one relay compartment per element of the second
  connection's input. (Lava's simulator chains such connection processes directly; the schedule gives each
  of them its one-step synaptic delay, which is what a relay compartment costs on the chip.) Relays count
  toward the cores of their block and their messages toward its activity.
- **connections**: every input-output pair a weight actually joins (|w| > 0), counted exactly by applying
  each connection with 0/1 indicator weights to an all-ones input (padding contributes nothing); identity
  shortcuts of residual blocks are one connection per element; a max pool's windows are one connection per
  (window, input element). **weights**: what the weight map stores: a convolution's kernel once (shared
  weights), a dense matrix entry by entry; an identity or a window connection one weight per channel or per
  (channel, window position).
- **memory bits**: ``connections x 8`` (8-bit weight mantissas, one per unrolled synapse): the rule the core
  count uses, because how much memory Loihi 2's convolutional weight sharing saves per core is not public.
  ``memory_bits_shared = weights x 8`` (each kernel stored once) is reported beside it, with the cores and
  chips it would give (``cores_shared``): the two bracket a deployment.
- **fan-in**: the most connections ending at one neuron. **axons**: distinct source neurons (or relays, or
  input elements) with at least one connection into the block: the input axons the block's cores need.
- **cores** = max(ceil(compartments / neurons per core), ceil(memory bits / synaptic memory per core),
  ceil(axons / input axons per core)) per block; **chips** = ceil(total cores / cores per chip). Blocks are
  not packed together, and a layer split over several cores is assumed to split its axons too (true of
  convolutions tiled by position; each core of a split dense layer needs all of its inputs, so a dense layer
  whose fan-in exceeds the per-core axon limit would need more cores than counted): a lower bound.
- **readout**: the last layer has no neuron (science.md, WSC): its currents are summed over all steps. It is
  counted as that many non-spiking integrating compartments on the chip, whose state the host reads at the
  end of a sample (as Lava's ``Readout`` process does); its synapses and compartments count toward the cores,
  it sends no spikes. **input**: the image is the input current of the first layer (direct encoding),
  injected by the host as one graded message per nonzero input element and input step; it takes no cores,
  its elements are input axons of the first blocks, and its messages cost synaptic operations there.

From a simulation on inputs ``x`` (the reference simulator, ``pipeline.simulate(..., record_layers=True,
exact=True)``), per inference (the batch total divided by the number of samples):

- **spikes**: spikes sent by the sink (``SimResult.spikes``: positive and negative); a pool's messages.
- **messages**: steps in which a neuron, pool output or relay sends something (a graded spike is one
  message whatever its payload), summed over the block's compartments.
- **synops**: each message costs one synaptic operation per outgoing connection of its sender, counted per
  sender element from its exact fan-out into each connection (the transposed indicator map).
- **neuron updates**: every compartment (neurons and relays) is updated on every step of the run.
- **energy** = synops x E_synop + messages x E_spike + updates x E_update + messages x (E_active - E_update),
  with the per-op figures below (Loihi 1's, from pre-silicon simulation consistent with early silicon, Davies
  et al. 2018 Table 2; used as estimates for Loihi 2, whose per-op energies are not public).
- **ANN**: the MACs of the layer in the ANN (conv: output elements x C_in/groups x kh x kw; dense: in x out)
  and its other ops (pooling, scaling, residual adds, max-pool comparisons: one per connection), with the
  arithmetic energy per 32-bit float op of Horowitz (ISSCC 2014, 45 nm); memory traffic, which dominates an
  ANN accelerator's energy, is not counted.

The hardware figures (capacities, energies, each with its source) are ``targets/loihi2/spec.py``'s; the structure
of each block comes from ``passes.blocks.blocks()`` (``connections.py``), the activity from the reference
simulator's records (``activity.py``).
"""
from __future__ import annotations

import math

import numpy as np

from neurocompile.analysis.estimate.activity import _Activity
from neurocompile.analysis.estimate.connections import BlockConnections, IndicatorMaps, block_connections
from neurocompile.analysis.estimate.result import Estimate, LayerEstimate, Totals, _v
from neurocompile.errors import NeurocompileError
from neurocompile.ir import Graph
from neurocompile.targets.loihi2.spec import LOIHI2, LOIHI2_ENERGY, EnergyFigures, HardwareLimits

HARDWARE: dict[str, tuple[HardwareLimits, EnergyFigures]] = {"loihi2": (LOIHI2, LOIHI2_ENERGY)}


def hardware(hw: str) -> tuple[HardwareLimits, EnergyFigures]:
    """The limits and energy figures of ``hw``, or the NeurocompileError that lists the known ones."""
    if hw not in HARDWARE:
        raise NeurocompileError(f"unknown hardware '{hw}' for the resource estimate",
                                hint=f"Available: {', '.join(sorted(HARDWARE))}")
    return HARDWARE[hw]


def estimate(graph: Graph, hw: "str | tuple[HardwareLimits, EnergyFigures]" = "loihi2",
             x: np.ndarray | None = None, steps: int | None = None) -> Estimate:
    """Resources (neurons, synapses, memory, fan-in, axons, cores, chips) of the converted spiking ``graph`` on
    ``hw`` per block of its lowered graph and, given inputs ``x`` (N, *input shape), its activity per inference
    from a reference simulation of ``steps`` steps (default: the schedule's T) and the energy it implies.
    ``hw`` names an entry of :data:`HARDWARE` (or is a (HardwareLimits, EnergyFigures) pair)."""
    from neurocompile.passes.blocks import blocks
    from neurocompile.passes.lower_to_blocks import lowered

    limits, energy = hardware(hw) if isinstance(hw, str) else hw
    if getattr(graph, "schedule", None) is None:
        raise NeurocompileError("the resource estimate reads a converted spiking graph; this one has no wake/sleep "
                                "schedule", hint="Convert it first: api.convert(api.load(path))")
    if steps is not None and x is None:
        raise NeurocompileError("steps= sets the length of the simulation the activity comes from; pass inputs x too")
    g = lowered(graph)
    ind = IndicatorMaps(g)
    built = [block_connections(g, bl, ind) for bl in blocks(g)]
    wbits = int(limits.weight_bits.value)
    rows = [_resources(g, b, limits, wbits) for b in built]
    notes = ["readout: non-spiking integrating compartments on chip (read by the host); input: host-injected "
             "graded messages, no cores", f"cores: per block, not packed; memory rule: one {wbits}-bit weight per "
             "unrolled synapse (cores_shared: each kernel once)"]
    for b, r in zip(built, rows):
        for c in b.conns:
            inputs = sum(int((fo > 0).sum()) for fo in c.fanout.values())
            if c.kind == "dense" and inputs > limits.input_axons_per_core.value:
                notes.append(f"{r.name}: the dense connection {c.node} reads {inputs:,} inputs, more than "
                             f"{_v(limits.input_axons_per_core.value)} axons per core, and every core of a split "
                             "dense layer needs all of them: its cores are a lower bound")
    totals = _totals(rows, limits, energy)
    messages = _add_activity(graph, g, built, rows, totals, x, steps, energy) if x is not None else {}
    return Estimate(limits.name, limits, energy, rows, totals, notes, messages)


def _resources(g: Graph, b: BlockConnections, L: HardwareLimits, wbits: int) -> LayerEstimate:
    """The resources of one block: its compartments, connections, memory, fan-in, axons and the cores they need."""
    neurons = int(np.prod(g.shapes[b.sink.output]))
    relays = sum(int(np.prod(g.shapes[r])) for r in b.relays)
    weights = sum(c.weights for c in b.conns)
    conns = sum(c.connections for c in b.conns)
    into_sink = [c.fanin for c in b.conns if c.target == b.target]
    fan_in = int(round(float(np.max(sum(into_sink[1:], into_sink[0]))))) if into_sink else 0
    senders: dict[str, np.ndarray] = {}
    for c in b.conns:
        for s, fo in c.fanout.items():
            senders[s] = (fo > 0) | senders.get(s, False)
    axons = int(sum(int(m.sum()) for m in senders.values()))
    mem, mem_shared = conns * wbits, weights * wbits
    cn = math.ceil((neurons + relays) / L.neurons_per_core.value)
    cm = math.ceil(mem / L.synaptic_memory_bits_per_core.value)
    ca = math.ceil(axons / L.input_axons_per_core.value)
    cs = max(cn, math.ceil(mem_shared / L.synaptic_memory_bits_per_core.value), ca)
    return LayerEstimate(
        name=b.sink.name, op=b.sink.op, kind=b.kind,
        synapses=list(b.synapses),
        neurons=neurons, relays=relays, weights=weights, connections=conns, memory_bits=mem,
        memory_bits_shared=mem_shared, fan_in=fan_in, axons=axons, cores_neurons=cn, cores_memory=cm,
        cores_axons=ca, cores=max(cn, cm, ca), cores_shared=cs,
        ann_macs=sum(c.ann_macs for c in b.conns), ann_adds=sum(c.ann_adds for c in b.conns))


def _totals(rows: list[LayerEstimate], L: HardwareLimits, E: EnergyFigures) -> Totals:
    """The rows summed, the chips their cores fill and the ANN's arithmetic energy."""
    s = lambda k: sum(getattr(r, k) for r in rows)  # noqa: E731
    per_chip = L.cores_per_chip.value
    macs, adds = s("ann_macs"), s("ann_adds")
    return Totals(neurons=s("neurons"), relays=s("relays"), weights=s("weights"), connections=s("connections"),
                  memory_bits=s("memory_bits"), memory_bits_shared=s("memory_bits_shared"), cores=s("cores"),
                  cores_shared=s("cores_shared"), chips=math.ceil(s("cores") / per_chip),
                  chips_shared=math.ceil(s("cores_shared") / per_chip), ann_macs=macs, ann_adds=adds,
                  ann_energy_pj=macs * E.ann_mac_pj.value + adds * E.ann_add_pj.value)


def _add_activity(graph: Graph, g: Graph, built: list[BlockConnections], rows: list[LayerEstimate], totals: Totals,
                  x: np.ndarray, steps: int | None, E: EnergyFigures) -> dict[str, np.ndarray]:
    """Fill the activity fields of ``rows`` and ``totals`` from a reference simulation of ``graph`` on ``x``: messages
    per sender (:class:`_Activity`), synops through each connection's fan-out, updates and energy. Returns the
    messages per element of every sender, summed over the samples."""
    from neurocompile import pipeline

    res = pipeline.simulate(graph, x, steps=steps, record_layers=True, exact=True)
    T, N = int(res.steps), len(x)
    act = _Activity(g, x, res, T)
    msgs: dict[str, np.ndarray] = {}

    def sent(t: str) -> np.ndarray:
        if t not in msgs:
            msgs[t] = act.messages(t)
        return msgs[t]

    e_syn, e_spk = E.synop_pj.value, E.spike_pj.value
    e_upd, e_act = E.neuron_update_pj.value, E.neuron_update_active_pj.value
    for b, r in zip(built, rows):
        synops = sum(float((sent(s) * fo).sum()) for c in b.conns for s, fo in c.fanout.items()) / N
        out = [b.sink.output] if b.kind != "readout" else []
        messages = sum(float(sent(t).sum()) for t in out + b.relays) / N
        if b.kind == "neuron":
            c = res.spikes.get(b.sink.name, {"pos": 0, "neg": 0})
            spikes = (c["pos"] + c["neg"]) / N
        else:
            spikes = float(sent(b.sink.output).sum()) / N if b.kind == "pool" else 0.0
        updates = float((r.neurons + r.relays) * T)
        r.spikes, r.messages, r.synops, r.neuron_updates = spikes, messages, synops, updates
        r.energy_pj = synops * e_syn + messages * e_spk + updates * e_upd + messages * (e_act - e_upd)
    inputs = [n.output for n in g.input_nodes]
    totals.samples, totals.steps = N, T
    totals.input_messages = sum(float(sent(t).sum()) for t in inputs) / N
    totals.spikes = sum(r.spikes for r in rows)
    totals.messages = sum(r.messages for r in rows)
    totals.synops = sum(r.synops for r in rows)
    totals.neuron_updates = sum(r.neuron_updates for r in rows)
    totals.energy_synops_pj = totals.synops * e_syn
    totals.energy_spikes_pj = (totals.messages + totals.input_messages) * e_spk
    totals.energy_neurons_pj = totals.neuron_updates * e_upd + totals.messages * (e_act - e_upd)
    totals.energy_pj = totals.energy_synops_pj + totals.energy_spikes_pj + totals.energy_neurons_pj
    return msgs
