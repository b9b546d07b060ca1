"""Spike traffic between cores and chips, time per step, latency and energy per inference of a placed network.

From a placement (``placement.py``: which core holds each compartment, and each core's exact fan-out per sender
element) and a reference simulation (the estimate's activity: messages per sender element per inference,
``activity.py``):

- **traffic** per inference: each message of a sender element goes once to every core on which it has an input
  axon (at least one connection into that core's range). It stays on its core (intra-core), crosses the mesh
  (inter-core: hops = Manhattan distance of the two cores on the assumed grid, ``LOIHI2_MESH``), or crosses chips
  (inter-chip); the input's messages come from the host. Synaptic operations per core = messages x that core's
  fan-out: summed over the cores they are the estimate's synops, exactly, plus, where layers are split
  (``fanin.py``), the unit-weight synops that read the partial sums (a partial sum sends a message in each step in
  which any of its senders does, at most T: a bound).
- **time per step** (an ESTIMATE from Loihi 1's per-op times, ``LOIHI2_TIMING``): a roofline whose slowest core sets
  the pace: max over cores of (synops x t_synop + compartments x t_update + messages sent x (t_active - t_update))
  per step (the run's average step), plus the mesh's longest path (hops x t_hop + t_spike) and the barrier that ends
  every step (the slowest core's work per inference spread over the T steps). **latency** = T x step time (T the schedule's steps: the latency mode's T where the network was
  converted with it), plus one step for each split layer on the longest path (``fanin.py``). **throughput** of a
  pipelined stream: one sample every ``sample_period`` steps (samples overlap in depth, as Lava's ``Network``
  streams them), each step then holding T / period samples' work: 1 / (period x the step's roofline with each
  core's work per inference spread over the period).
- **energy** per inference (ESTIMATE): synaptic operations and neuron updates as the estimate counts them (plus
  the split layers' partial sums: their updates, messages and the synops reading them), and the traffic: the
  per-message spike energy plus hops x E_hop plus chip crossings x E_chip.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from neurocompile.analysis.estimate.placement import Placement
from neurocompile.analysis.estimate.result import Estimate
from neurocompile.ir import Graph
from neurocompile.targets.loihi2.spec import LOIHI2_MESH, LOIHI2_TIMING, MeshFigures, TimingFigures


@dataclass
class CoreLoad:
    """One core's work per inference."""

    index: int
    compartments: int
    synops: float = 0.0
    sent: float = 0.0            # messages its compartments send
    received: float = 0.0        # messages arriving from other cores or the host


@dataclass
class Traffic:
    """Messages delivered per inference, by where they go; the per-core loads."""

    samples: int
    steps: int
    intra_core: float = 0.0
    inter_core: float = 0.0
    inter_chip: float = 0.0
    host: float = 0.0
    hops: float = 0.0            # sum over inter-core messages of their hops on the mesh
    max_hops: int = 0
    period: int = 0              # steps between two samples of a pipelined stream (passes.blocks.sample_period)
    split_steps: int = 0         # steps fan-in splitting adds to the longest path (placement.py)
    partial_sums: int = 0        # partial-sum compartments of the split layers (fanin.py)
    partial_messages: float = 0.0  # messages they send (at most one per step, none without input)
    combine_synops: float = 0.0  # the split layers' compartments reading those messages
    cores: list[CoreLoad] = field(default_factory=list)

    @property
    def synops(self) -> float:
        return sum(c.synops for c in self.cores)


@dataclass
class Runtime:
    """Time per step, latency and energy per inference; ``kind`` says what each number is."""

    steps: int
    slowest_core: int
    compute_ns: float
    mesh_ns: float
    barrier_ns: float
    step_ns: float
    latency_ns: float
    energy_synops_pj: float
    energy_neurons_pj: float
    energy_traffic_pj: float
    kind: dict[str, str] = field(default_factory=dict)
    split_steps: int = 0         # of ``steps``: those the fan-in splits add
    period_steps: int = 0        # steps between two samples in a pipelined stream
    throughput_per_s: float = 0.0  # inferences per second in that stream: 1 / (period x step)

    @property
    def energy_pj(self) -> float:
        return self.energy_synops_pj + self.energy_neurons_pj + self.energy_traffic_pj

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "energy_pj": self.energy_pj}


def traffic(graph: Graph, p: Placement, est: Estimate) -> Traffic:
    """Messages between cores and chips per inference, and each core's load, from the activity of ``est`` (an
    estimate of ``graph`` with inputs: its reference simulation's messages per sender element)."""
    from neurocompile.errors import NeurocompileError
    from neurocompile.passes.blocks import sample_period
    from neurocompile.passes.lower_to_blocks import lowered

    if not est.messages or not est.totals.samples:
        raise NeurocompileError("traffic needs the estimate's activity: estimate(graph, x=inputs)")
    g = lowered(graph)
    T, N = int(est.totals.steps), int(est.totals.samples)
    # a message of each sender element per inference: the tensors that reach some core (relays and sink outputs)
    msgs = {s: est.messages[s].reshape(-1) / N for s in {s for slot in p.cores for s in slot.fanout}
            if s in est.messages}
    tr = Traffic(N, T, period=sample_period(g, T), split_steps=p.split_steps)
    for s, arriving in p.partial_inputs.items():  # a partial sum: a message in each step with input, at most T
        msgs[s] = np.minimum(float(T), arriving(msgs))
        tr.partial_sums += len(msgs[s])
        tr.partial_messages += float(msgs[s].sum())
    loads = {i: CoreLoad(i, sum(s.stop - s.start for s in sl)) for i, sl in p.per_core().items()}
    tr.cores = list(loads.values())
    home = _Homes(p)
    for s, m in msgs.items():  # messages each core's compartments send
        src = home.cores(s, len(m))
        if src is not None:
            for i in np.unique(src):
                loads[int(i)].sent += float(m[src == i].sum())
    for slot in p.cores:
        r = slot.index
        for s, f in slot.fanout.items():
            m = msgs[s]
            loads[r].synops += float((m * f).sum())
            if s in p.partial_inputs:
                tr.combine_synops += float((m * f).sum())
            d = m * (f > 0.5)   # one delivery per message of each sender element with an axon here
            src = home.cores(s, len(m))
            if src is None:
                tr.host += float(d.sum())
                loads[r].received += float(d.sum())
                continue
            same = src == r
            tr.intra_core += float(d[same].sum())
            other = ~same & (d > 0)
            if other.any():
                loads[r].received += float(d[other].sum())
                hops, chip = home.hops(src[other], r)
                tr.inter_core += float(d[other].sum())
                tr.inter_chip += float(d[other][chip].sum())
                tr.hops += float((d[other] * hops).sum())
                tr.max_hops = max(tr.max_hops, int(hops.max()))
    return tr


class _Homes:
    """The global core of each element of a sender tensor, and mesh distances between cores."""

    def __init__(self, p: Placement):
        self.p = p
        self.starts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        by_key: dict[str, list] = {}
        for s in p.cores:
            by_key.setdefault(s.key, []).append(s)
        for key, slots in by_key.items():
            sl = sorted(slots, key=lambda s: s.start)
            self.starts[key] = (np.array([s.start for s in sl]), np.array([s.index for s in sl]))

    def cores(self, tensor: str, n: int) -> np.ndarray | None:
        """Global core per element of ``tensor`` (None: the host's input)."""
        if tensor not in self.p.senders:
            return None
        layer, off, comp = self.p.senders[tensor]
        starts, idx = self.starts[layer]
        return idx[np.searchsorted(starts, off + comp[:n], side="right") - 1]

    def hops(self, src: np.ndarray, dst: int) -> tuple[np.ndarray, np.ndarray]:
        """(hops on the mesh, crosses a chip) from each core in ``src`` to core ``dst``."""
        per_chip, cols = self.p.limits["cores_per_chip"], self.p.mesh_columns
        c1, k1 = np.divmod(src, per_chip)
        c2, k2 = divmod(dst, per_chip)
        r1, q1 = np.divmod(k1, cols)
        r2, q2 = divmod(k2, cols)
        return np.abs(r1 - r2) + np.abs(q1 - q2), c1 != c2


def runtime(est: Estimate, tr: Traffic, mesh: MeshFigures = LOIHI2_MESH,
            timing: TimingFigures = LOIHI2_TIMING) -> Runtime:
    """The roofline time per step, the latency and the energy split of ``est`` (with activity) placed as ``tr``
    says."""
    T = tr.steps
    latency_steps = T + tr.split_steps  # each split layer on the longest path: one more synaptic delay
    t_syn, t_upd = timing.synop_ns.value, timing.neuron_update_ns.value
    t_act = timing.neuron_update_active_ns.value

    def busiest(steps_per_inference: int) -> tuple[int, float]:
        """The slowest core and its time per step when each inference's work is spread over that many steps
        (every compartment is updated every step)."""
        ns = [(c.synops * t_syn + c.sent * (t_act - t_upd)) / steps_per_inference + c.compartments * t_upd
              for c in tr.cores]
        i = int(np.argmax(ns))
        return i, ns[i]

    slowest, compute_ns = busiest(T)
    # a pipelined stream starts a sample every period steps: each step holds T / period samples' work
    stream_step = busiest(tr.period)[1]
    mesh_ns = tr.max_hops * mesh.hop_ns.value + mesh.spike_ns.value if tr.inter_core else mesh.spike_ns.value
    barrier = timing.barrier_ns.value
    step = compute_ns + mesh_ns + barrier
    t, en = est.totals, est.energy
    # the split layers' partial sums: their updates, messages and the unit-weight synops that read them
    split_neurons = tr.partial_sums * T * en.neuron_update_pj.value + tr.partial_messages * (
        en.neuron_update_active_pj.value - en.neuron_update_pj.value)
    traffic_pj = ((t.energy_spikes_pj or 0.0) + tr.partial_messages * en.spike_pj.value + tr.hops * mesh.hop_pj.value
                  + tr.inter_chip * mesh.chip_hop_pj.value)
    kind = {"cores": "bound (estimate's per-layer lower bound) vs placement (this mapping, checked)",
            "step_ns": "ESTIMATE: roofline of the run's average step, Loihi 1 per-op times",
            "latency_ns": "ESTIMATE: (T + steps the fan-in splits add) x step_ns",
            "energy": "ESTIMATE: Loihi 1 per-op energies",
            "throughput_per_s": "ESTIMATE: a pipelined stream, one sample every period_steps steps",
            "traffic": "measurement of the reference simulation's messages, placed"}
    synops_pj = (t.energy_synops_pj or 0.0) + tr.combine_synops * en.synop_pj.value
    return Runtime(latency_steps, tr.cores[slowest].index, compute_ns, mesh_ns, barrier, step,
                   latency_steps * step, synops_pj, (t.energy_neurons_pj or 0.0) + split_neurons, traffic_pj, kind,
                   tr.split_steps, tr.period, 1e9 / (tr.period * (stream_step + mesh_ns + barrier)))
