"""Spike traffic between cores and chips, time per step, latency and energy per inference of a placed network.

From a placement (``placement.py``: which core holds each compartment, and each core's exact fan-out per sender
element) and a reference simulation (the estimate's activity: messages per sender element per inference,
``activity.py``):

- **traffic** per inference: each message of a sender element goes once to every core on which it has an input
  axon (at least one connection into that core's range). It stays on its core (intra-core), crosses the mesh
  (inter-core: hops = Manhattan distance of the two cores on the assumed grid, ``LOIHI2_MESH``), or crosses chips
  (inter-chip); the input's messages come from the host. Synaptic operations per core = messages x that core's
  fan-out: summed over the cores they are the estimate's synops, exactly.
- **time per step** (an ESTIMATE from Loihi 1's per-op times, ``LOIHI2_TIMING``): a roofline whose slowest core sets
  the pace: max over cores of (synops x t_synop + compartments x t_update + messages sent x (t_active - t_update))
  per step (the run's average step), plus the mesh's longest path (hops x t_hop + t_spike) and the barrier that ends
  every step. **latency** = T x step time (T the schedule's steps: the latency mode's T where the network was
  converted with it).
- **energy** per inference (ESTIMATE): synaptic operations and neuron updates as the estimate counts them, and the
  traffic: the estimate's per-message spike energy plus hops x E_hop plus chip crossings x E_chip.
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

    @property
    def energy_pj(self) -> float:
        return self.energy_synops_pj + self.energy_neurons_pj + self.energy_traffic_pj

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "energy_pj": self.energy_pj}


def traffic(graph: Graph, p: Placement, x: np.ndarray, steps: int | None = None) -> Traffic:
    """Messages between cores and chips per inference, and each core's load, from a reference simulation of
    ``graph`` on inputs ``x`` (the estimate's activity rule)."""
    from neurocompile import pipeline
    from neurocompile.analysis.estimate.activity import _Activity
    from neurocompile.passes.lower_to_blocks import lowered

    g = lowered(graph)
    res = pipeline.simulate(graph, x, steps=steps, record_layers=True, exact=True)
    T, N = int(res.steps), len(x)
    act = _Activity(g, x, res, T)
    msgs: dict[str, np.ndarray] = {}
    for s in {s for slot in p.cores for s in slot.fanout} | set(p.senders):
        if s in g.shapes:
            msgs[s] = act.messages(s).reshape(-1) / N
    tr = Traffic(N, T)
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
        for name in p.layers:
            sl = sorted((s for s in p.cores if s.layer == name), key=lambda s: s.start)
            self.starts[name] = (np.array([s.start for s in sl]), np.array([s.index for s in sl]))

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
    t_syn, t_upd = timing.synop_ns.value, timing.neuron_update_ns.value
    t_act = timing.neuron_update_active_ns.value
    per_core = [(c.synops * t_syn + c.compartments * T * t_upd + c.sent * (t_act - t_upd)) / T for c in tr.cores]
    slowest = int(np.argmax(per_core))
    mesh_ns = tr.max_hops * mesh.hop_ns.value + mesh.spike_ns.value if tr.inter_core else mesh.spike_ns.value
    barrier = timing.barrier_ns.value
    step = per_core[slowest] + mesh_ns + barrier
    t = est.totals
    traffic_pj = (t.energy_spikes_pj or 0.0) + tr.hops * mesh.hop_pj.value + tr.inter_chip * mesh.chip_hop_pj.value
    kind = {"cores": "bound (estimate's per-layer lower bound) vs placement (this mapping, checked)",
            "step_ns": "ESTIMATE: roofline of the run's average step, Loihi 1 per-op times",
            "latency_ns": "ESTIMATE: T x step_ns", "energy": "ESTIMATE: Loihi 1 per-op energies",
            "traffic": "measurement of the reference simulation's messages, placed"}
    return Runtime(T, tr.cores[slowest].index, per_core[slowest], mesh_ns, barrier, step, T * step,
                   t.energy_synops_pj or 0.0, t.energy_neurons_pj or 0.0, traffic_pj, kind)
