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

From a simulation on inputs ``x`` (the reference simulator, ``api.simulate(..., record_layers=True)``), per
inference (the batch total divided by the number of samples):

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
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from neurocompile import ops
from neurocompile.errors import NeurocompileError
from neurocompile.ir import Graph, Node
from neurocompile.ops import op_of, pad2d, tensors
from neurocompile.passes.lower_to_blocks import sink_ends

# ----------------------------------------------------------------------------------------------------------
# public figures with their sources

REFERENCES: dict[str, str] = {
    "intel-loihi2-brief": "Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', technology "
                          "brief, 2021 (text: https://www.scribd.com/document/714638451/; summary: "
                          "https://open-neuromorphic.org/neuromorphic-computing/hardware/loihi-2-intel/)",
    "davies2018": "M. Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', IEEE Micro "
                  "38(1):82-99, 2018 (Table 2: pre-silicon SDF and SPICE simulation at 0.75 V, 14 nm, 'consistent "
                  "with early post-silicon characterization')",
    "nengo-loihi": "nengo/nengo-loihi, nengo_loihi/block.py: MAX_COMPARTMENTS = 1024, MAX_IN_AXONS = MAX_OUT_AXONS "
                   "= 4096, MAX_SYNAPSE_BITS = 1048576 (the Loihi 1 per-core limits its builder enforces)",
    "horowitz2014": "M. Horowitz, 'Computing's energy problem (and what we can do about it)', ISSCC 2014, 45 nm, "
                    "0.9 V (as tabulated in https://pmc.ncbi.nlm.nih.gov/articles/PMC8934428/table/T3/)",
    "science.md": "neurocompile's contract (science.md, section 3: Loihi 2 facts from the public Lava documentation; "
                  "Lava's Dense num_weight_bits = 8)",
}
_NOT_PUBLIC = "not public for Loihi 2, ASSUMPTION: the Loihi 1 figure"
_EST = "ESTIMATE: Loihi 1's figure (per-op energies of Loihi 2 are not public)"


@dataclass(frozen=True)
class Figure:
    """One number with its unit and where it comes from."""

    value: float
    unit: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "unit": self.unit, "source": self.source}


@dataclass(frozen=True)
class HardwareLimits:
    """Per-core and per-chip capacities (public upper bounds) the core count divides by."""

    name: str
    cores_per_chip: Figure
    neurons_per_core: Figure
    synaptic_memory_bits_per_core: Figure
    input_axons_per_core: Figure
    output_axons_per_core: Figure   # reported only: fan-out edges per core (not binding for feed-forward layers)
    synapses_per_chip: Figure       # reported only: the chip-level synapse count of the brief
    weight_bits: Figure

    def figures(self) -> dict[str, Figure]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "name"}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **{k: v.to_dict() for k, v in self.figures().items()}}


@dataclass(frozen=True)
class EnergyFigures:
    """Energy per operation (pJ) for the spiking side and, for comparison, an ANN's arithmetic."""

    synop_pj: Figure
    spike_pj: Figure
    neuron_update_pj: Figure
    neuron_update_active_pj: Figure
    ann_mac_pj: Figure
    ann_add_pj: Figure

    def figures(self) -> dict[str, Figure]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_dict(self) -> dict[str, Any]:
        return {k: v.to_dict() for k, v in self.figures().items()}


LOIHI2 = HardwareLimits(
    name="loihi2",
    cores_per_chip=Figure(128, "cores", "[intel-loihi2-brief]: 128 neuromorphic cores per chip"),
    neurons_per_core=Figure(
        8192, "neurons", "derived upper bound: [intel-loihi2-brief] 'up to 1 million neurons' per chip / 128 cores "
        "(1 M read as 2**20 = 128 x 8192, as Loihi 1's 131,072 = 128 x 1024 [davies2018]); neuron state is "
        "allocated flexibly on Loihi 2, so neurons with more state fit fewer per core"),
    synaptic_memory_bits_per_core=Figure(
        128 * 1024 * 8, "bits", f"{_NOT_PUBLIC}: 128 KB of synaptic state per core ([davies2018] p. 89, mapping "
        "constraint 2; [nengo-loihi] MAX_SYNAPSE_BITS); press reports of the Loihi 2 brief also give 128 KB of "
        "local SRAM per core, now flexibly partitioned"),
    input_axons_per_core=Figure(
        4096, "axons", f"{_NOT_PUBLIC}: 4,096 input axon distribution lists (N_axin) per core ([davies2018] p. 89, "
        "constraint 4; [nengo-loihi] MAX_IN_AXONS)"),
    output_axons_per_core=Figure(
        4096, "axons", f"{_NOT_PUBLIC}: 4,096 core-to-core fan-out edges (N_axout) per core ([davies2018] p. 89, "
        "constraint 3; [nengo-loihi] MAX_OUT_AXONS); reported, not used"),
    synapses_per_chip=Figure(120_000_000, "synapses", "[intel-loihi2-brief]: up to 120 million synapses per chip "
                             "(in its densest formats); reported, not used: 8-bit weights fill the memory first"),
    weight_bits=Figure(8, "bits", "8-bit signed weight mantissa with a per-layer exponent, as neurocompile emits "
                       "Lava's Dense/Conv ([science.md])"),
)

LOIHI2_ENERGY = EnergyFigures(
    synop_pj=Figure(23.6, "pJ", f"{_EST}: [davies2018] Table 2, 'energy per synaptic spike op (min)'"),
    spike_pj=Figure(1.7, "pJ", f"{_EST}: [davies2018] Table 2, 'within-tile spike energy'; a lower bound: each hop "
                    "between tiles adds 3.0 pJ (E-W) or 4.0 pJ (N-S), not modelled (placement unknown)"),
    neuron_update_pj=Figure(52.0, "pJ", f"{_EST}: [davies2018] Table 2, 'energy per neuron update (active / "
                            "inactive)' 81 / 52 pJ: each compartment pays the inactive update every step"),
    neuron_update_active_pj=Figure(81.0, "pJ", f"{_EST}: [davies2018] Table 2; paid instead of 52 pJ by an update "
                                   "in which the compartment sends a message (our reading of 'active')"),
    ann_mac_pj=Figure(4.6, "pJ", "[horowitz2014]: 32-bit float multiply 3.7 pJ + add 0.9 pJ"),
    ann_add_pj=Figure(0.9, "pJ", "[horowitz2014]: 32-bit float add 0.9 pJ"),
)

HARDWARE: dict[str, tuple[HardwareLimits, EnergyFigures]] = {"loihi2": (LOIHI2, LOIHI2_ENERGY)}


def hardware(hw: str) -> tuple[HardwareLimits, EnergyFigures]:
    """The limits and energy figures of ``hw``, or the NeurocompileError that lists the known ones."""
    if hw not in HARDWARE:
        raise NeurocompileError(f"unknown hardware '{hw}' for the resource estimate",
                                hint=f"Available: {', '.join(sorted(HARDWARE))}")
    return HARDWARE[hw]


# ----------------------------------------------------------------------------------------------------------
# results


@dataclass
class LayerEstimate:
    """One block: its sink and the connections reaching it. Activity fields are per inference, None without x."""

    name: str
    op: str
    kind: str                      # "neuron" | "pool" | "readout"
    synapses: list[str]            # the block's synaptic nodes
    neurons: int
    relays: int
    weights: int
    connections: int
    memory_bits: int               # connections x weight bits: what the core count uses
    memory_bits_shared: int        # weights x weight bits (each kernel once)
    fan_in: int
    axons: int
    cores_neurons: int
    cores_memory: int
    cores_axons: int
    cores: int
    cores_shared: int
    ann_macs: int
    ann_adds: int
    spikes: float | None = None
    messages: float | None = None
    synops: float | None = None
    neuron_updates: float | None = None
    energy_pj: float | None = None

    @property
    def bound(self) -> str:
        """The limit that sets the core count (the first of neurons, memory, axons that does)."""
        return next(k for k, v in (("neurons", self.cores_neurons), ("memory", self.cores_memory),
                                   ("axons", self.cores_axons)) if v == self.cores)


@dataclass
class Totals:
    neurons: int
    relays: int
    weights: int
    connections: int
    memory_bits: int
    memory_bits_shared: int
    cores: int
    cores_shared: int
    chips: int
    chips_shared: int
    ann_macs: int
    ann_adds: int
    ann_energy_pj: float
    samples: int | None = None
    steps: int | None = None
    input_messages: float | None = None
    spikes: float | None = None
    messages: float | None = None
    synops: float | None = None
    neuron_updates: float | None = None
    energy_synops_pj: float | None = None
    energy_spikes_pj: float | None = None
    energy_neurons_pj: float | None = None
    energy_pj: float | None = None


@dataclass
class Estimate:
    hw: str
    limits: HardwareLimits
    energy: EnergyFigures
    rows: list[LayerEstimate]
    totals: Totals
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types only (json.dumps-able)."""
        return _plain({"hw": self.hw, "limits": self.limits.to_dict(), "energy_figures": self.energy.to_dict(),
                       "rows": [{**asdict(r), "bound": r.bound} for r in self.rows], "totals": asdict(self.totals), "notes": self.notes,
                       "references": dict(REFERENCES)})

    def table(self) -> str:
        """A text table: one line per block, a totals line, then the limits and energy figures with sources."""
        act = self.totals.synops is not None
        head = ["layer", "op", "neurons", "relays", "weights", "connections", "mem KiB", "fan-in", "axons", "cores",
                "by", "ANN MACs"]
        if act:
            head += ["spikes/inf", "synops/inf", "energy nJ"]
        rows = []
        for r in self.rows:
            line = [r.name, r.op, _n(r.neurons), _n(r.relays), _n(r.weights), _n(r.connections),
                    _n(r.memory_bits / 8192), _n(r.fan_in), _n(r.axons), _n(r.cores), r.bound, _n(r.ann_macs)]
            if act:
                line += [_n(r.spikes), _n(r.synops), f"{r.energy_pj / 1e3:,.1f}"]
            rows.append(line)
        t = self.totals
        total = ["total", "", _n(t.neurons), _n(t.relays), _n(t.weights), _n(t.connections),
                 _n(t.memory_bits / 8192), "", "", _n(t.cores), "", _n(t.ann_macs)]
        if act:
            total += [_n(t.spikes), _n(t.synops), f"{t.energy_pj / 1e3:,.1f}"]
        out = [_format(rows, head, total),
               "(mem KiB: one 8-bit weight per unrolled connection; by: the limit that sets the cores, neurons, memory "
               "or axons; per inference: over the run's steps)", ""]
        L = self.limits
        out.append(f"{self.hw}: {t.cores:,} cores -> {t.chips:,} chip(s) of {L.cores_per_chip.value:g} cores "
                   f"(weights stored per unrolled synapse, {L.weight_bits.value:g} bit); with each kernel stored "
                   f"once: {t.cores_shared:,} cores -> {t.chips_shared:,} chip(s)")
        out.append(f"ANN: {t.ann_macs:,} MACs + {t.ann_adds:,} other ops per inference, "
                   f"{t.ann_energy_pj / 1e3:,.1f} nJ of arithmetic")
        if act:
            out.append(f"SNN ({t.samples} sample(s), {t.steps} steps): per inference {t.synops:,.0f} synops "
                       f"({t.synops / max(t.ann_macs + t.ann_adds, 1):.3f} per ANN op), {t.spikes:,.0f} spikes, "
                       f"{t.messages:,.0f} messages + {t.input_messages:,.0f} input messages, "
                       f"{t.neuron_updates:,.0f} neuron updates")
            out.append(f"energy per inference: {t.energy_pj / 1e3:,.1f} nJ = synops {t.energy_synops_pj / 1e3:,.1f} "
                       f"+ spikes {t.energy_spikes_pj / 1e3:,.1f} + neuron updates {t.energy_neurons_pj / 1e3:,.1f} "
                       f"nJ")
        out.append("")
        out.append("per-core limits:")
        for k, f in L.figures().items():
            out.append(f"  {k} = {_v(f.value)} {f.unit}: {f.source}")
        out.append("energy per op:")
        for k, f in self.energy.figures().items():
            out.append(f"  {k} = {_v(f.value)} {f.unit}: {f.source}")
        out += [f"note: {n}" for n in self.notes]
        out.append("references:")
        out += [f"  [{k}] {v}" for k, v in REFERENCES.items()]
        return "\n".join(out)


def _v(v: float) -> str:
    return f"{int(v):,}" if float(v).is_integer() else f"{v:g}"


def _n(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not float(v).is_integer():
        return f"{v:,.1f}"
    return f"{int(round(v)):,}"


def _format(rows: list[list[str]], head: list[str], total: list[str]) -> str:
    cells = [head] + rows + [total]
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w[i]) if i < 2 else c.rjust(w[i]) for i, c in enumerate(r))  # noqa: E731
    rule = "  ".join("-" * x for x in w)
    return "\n".join([line(head), rule, *map(line, rows), rule, line(total)])


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    return v


# ----------------------------------------------------------------------------------------------------------
# structure of a block: which connections, from which senders, into which compartments


@dataclass
class _Conn:
    """One connection: ``kind`` conv | dense (a synaptic node's weight map), window (a max pool's windows) or
    identity (a shortcut); ``node`` the synaptic or pool node (None for identity); ``target`` the tensor whose
    compartments it ends in; ``senders`` the tensors it reads (a unit's output or a relay tensor)."""

    kind: str
    node: str | None
    target: str
    senders: list[str]
    weights: int = 0
    connections: int = 0
    ann_macs: int = 0
    ann_adds: int = 0
    fanout: dict[str, np.ndarray] = field(default_factory=dict)   # sender tensor -> connections per element
    fanin: np.ndarray | None = None                                # per target element


@dataclass
class _Block:
    sink: Node
    kind: str
    target: str                  # the tensor whose elements are the sink's compartments
    relays: list[str]            # relay tensors
    conns: list[_Conn]


def _is_unit(n: Node) -> bool:
    """A sender of messages between blocks: the input or a sink (neuron, pool; a readout sends nothing)."""
    return not n.inputs or op_of(n).sink


class _Structure:
    def __init__(self, g: Graph):
        self.g = g
        self.prod = g.producers()

    def feeders(self, t: str) -> list[Node]:
        """Units and synaptic nodes whose outputs reach tensor ``t`` through non-synaptic nodes only."""
        out, stack, seen = [], [t], set()
        while stack:
            p = self.prod[stack.pop()]
            if p.name in seen:
                continue
            seen.add(p.name)
            if _is_unit(p) or op_of(p).synaptic:
                out.append(p)
            else:
                stack.extend(reversed(p.inputs))
        return out

    def block(self, sink: Node) -> _Block:
        op = op_of(sink)
        kind = "readout" if not op.stateful else ("pool" if _is_pool(sink) else "neuron")  # LI: a neuron without spikes
        b = _Block(sink, kind, sink.output if kind == "pool" else sink.inputs[0], [], [])
        if kind == "pool":
            self._connect(b, "window", sink, sink.output, sink.inputs[0])
        else:
            self._into(b, b.target)
        return b

    def _into(self, b: _Block, target: str) -> None:
        """The connections ending in ``target`` (the sink input or a relay tensor)."""
        for f in self.feeders(target):
            if op_of(f).synaptic:
                self._connect(b, None, f, target, f.inputs[0])
            else:
                b.conns.append(_Conn("identity", None, target, [f.output]))

    def _connect(self, b: _Block, kind: str | None, node: Node, target: str, t_in: str) -> None:
        fs = self.feeders(t_in)
        if any(op_of(f).synaptic for f in fs):  # the input is a current of other connections: relays
            if t_in not in b.relays:
                b.relays.append(t_in)
                self._into(b, t_in)
            senders = [t_in]
        else:
            senders = list(dict.fromkeys(f.output for f in fs))
        if kind is None:
            kind = op_of(node).weight_map(node, self.g.shapes[t_in]).kind if not _is_pool(node) else "conv"
        b.conns.append(_Conn(kind, node.name, target, senders))


def _is_pool(n: Node) -> bool:
    return isinstance(op_of(n), ops._Pool)


def _window_sum(node: Node, x: torch.Tensor) -> torch.Tensor:
    """Sum over each pooling window of ``x`` (padding and ceil-mode overhang contribute zero): with a 0/1
    input this counts the input elements each window holds (the op table's own windows, ``padded``)."""
    xp, (kh, kw), (sh, sw) = op_of(node).padded(node, x, 0.0)
    return xp.unfold(2, kh, sh).unfold(3, kw, sw).sum(dim=(-1, -2))


class _Indicator:
    """Structural (0/1) versions of a block's maps: which input-output pairs a connection joins."""

    def __init__(self, g: Graph):
        self.g = g
        self.prod = g.producers()
        self._maps: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}

    def map(self, n: Node) -> Callable[[torch.Tensor], torch.Tensor]:
        if n.name not in self._maps:
            if _is_pool(n):
                self._maps[n.name] = lambda x, n=n: _window_sum(n, x)
            else:
                wm = op_of(n).weight_map(n, self.g.shapes[n.inputs[0]])
                ind = torch.tensor((np.abs(wm.weight) > 0).astype(np.float64))
                if wm.kind == "dense":
                    self._maps[n.name] = lambda x, ind=ind: F.linear(x, ind)
                else:
                    def conv(x, wm=wm, ind=ind):
                        xp, pad = pad2d(x, wm.pads)
                        return F.conv2d(xp, ind, None, wm.stride, pad, wm.dilation, wm.groups)
                    self._maps[n.name] = conv
        return self._maps[n.name]

    def evaluate(self, sources: dict[str, torch.Tensor], target: str, only: str | None) -> torch.Tensor:
        """``target`` (batch 1) from ``sources`` through the connection ``only`` (its indicator map; None: through
        non-synaptic nodes only, an identity connection). The sources reach only ``only``'s input side and every
        other sender and connection contributes zero, so a sender that also reaches the target by another path
        (a shortcut around the connection) is not counted twice."""
        if only is None:
            return self._eval(dict(sources), target)
        n = self.g.nodes[only]
        y = self.map(n)(self._eval(dict(sources), n.inputs[0]))
        return self._eval({n.output: y}, target)

    def _eval(self, memo: dict[str, torch.Tensor], target: str) -> torch.Tensor:
        def val(t: str) -> torch.Tensor:
            if t in memo:
                return memo[t]
            p = self.prod[t]
            op = op_of(p)
            if _is_unit(p) or op.synaptic:
                y = torch.zeros((1, *self.g.shapes[t]), dtype=torch.float64)
            else:
                xs = [val(i) for i in p.inputs]
                # adds and subtractions join tensors elementwise (integer gains and signs do not change which
                # pairs are joined); reshapes and concatenations move elements
                y = sum(xs[1:], xs[0]) if op.additive else op.linear(p, xs, {})
            memo[t] = y
            return y

        return val(target)


def _measure(g: Graph, ind: _Indicator, c: _Conn) -> None:
    """Fan-out per sender element, fan-in per target element and the connection count of ``c``."""
    fanin = None
    for s in c.senders:
        x = torch.ones((1, *g.shapes[s]), dtype=torch.float64, requires_grad=True)
        y = ind.evaluate({s: x}, c.target, c.node)
        if y.requires_grad:
            y.sum().backward()
            c.fanout[s] = x.grad[0].numpy().copy()
        else:
            c.fanout[s] = np.zeros(g.shapes[s])
        y = y.detach()[0].numpy()
        fanin = y if fanin is None else fanin + y
    c.fanin = fanin
    c.connections = int(round(float(fanin.sum())))
    shape_t = g.shapes[c.target]
    if c.kind == "identity":
        c.weights = int(shape_t[0])  # one gain per channel (per element of a vector)
        c.ann_adds = c.connections
        return
    n = g.nodes[c.node]
    op = op_of(n)
    in_shape = g.shapes[n.inputs[0]]
    if _is_pool(n):
        kh, kw = ops.pair(op.attr(n, "kernel"))
        c.weights = int(in_shape[0]) * kh * kw
        c.ann_adds = c.connections
        return
    wm = op.weight_map(n, in_shape)
    c.weights = int(wm.weight.size)
    out_elems = int(np.prod(g.shapes[n.output]))
    if op.homogeneous:  # pooling and scalings: one add (or multiply) per joined pair in the ANN
        c.ann_adds = c.connections
    elif wm.kind == "conv":
        c.ann_macs = out_elems * int(np.prod(wm.weight.shape[1:]))
    else:
        c.ann_macs = int(wm.weight.size)


# ----------------------------------------------------------------------------------------------------------
# activity: what each sender sends, from the reference simulation


def _shift(y: torch.Tensor, d: int) -> torch.Tensor:
    """A (T, N, ...) series delayed by ``d`` steps (zeros first)."""
    if not d:
        return y
    z = torch.zeros_like(y[:d])
    return torch.cat([z, y[:-d]])[: len(y)]


class _Activity:
    """Per-step values sent by each sender of the lowered graph ``g`` over a run of ``T`` steps: neuron layers
    from the simulation's records, the input from ``x``, pools and relays replayed from those (the linear part
    with the schedule's delays, pools by their op's own ``step``)."""

    def __init__(self, g: Graph, x: np.ndarray, res: Any, T: int):
        self.g, self.res, self.T = g, res, T
        self.s = g.schedule
        self.prod = g.producers()
        self.N = len(x)
        xin = self.s.encode_input(torch.as_tensor(np.asarray(x), dtype=torch.float64))
        self.x = xin
        self._pools: dict[str, torch.Tensor] = {}
        self._params: dict[str, dict[str, torch.Tensor]] = {}

    # messages per element, summed over the batch (shape of the sender's tensor)
    def input_steps(self) -> int:
        return sum(1 for t in range(self.T) if self.s.input_on(t))

    def messages(self, tensor: str) -> np.ndarray:
        p = self.prod[tensor]
        if not p.inputs:
            return (self.x != 0).sum(0).numpy().astype(np.float64) * self.input_steps()
        op = op_of(p)
        if p.output == tensor and op.spiking:
            rec = self.res.layers[p.name]
            steps = np.diff(rec, axis=0, prepend=np.zeros_like(rec[:1]))
            return np.count_nonzero(steps, axis=0).sum(0).astype(np.float64)
        return (self._produced(p) != 0).sum(dim=(0, 1)).numpy().astype(np.float64)

    def series(self, tensor: str) -> torch.Tensor:
        """(T, N, *shape) values of ``tensor`` as its consumers see them (after its producer's delay, before
        their own)."""
        p = self.prod[tensor]
        return _shift(self._produced(p), self.s.delay.get(p.name, 0))

    def _produced(self, p: Node) -> torch.Tensor:
        """(T, N, *shape) values ``p`` outputs on each step (before its delay line)."""
        op = op_of(p)
        if not p.inputs:
            y = torch.stack([self.x if self.s.input_on(t) else torch.zeros_like(self.x) for t in range(self.T)])
        elif op.spiking:
            rec = torch.as_tensor(self.res.layers[p.name], dtype=torch.float64)
            y = torch.diff(rec, dim=0, prepend=torch.zeros_like(rec[:1])) * op.spike_amplitude(p)
        elif op.sink:
            y = self.replay(p)
        else:
            xs = [self.series(t) for t in p.inputs]
            for i, d in enumerate(self.s.balance.get(p.name, [])):
                xs[i] = _shift(xs[i], d)
            flat = [v.reshape(self.T * self.N, *v.shape[2:]) for v in xs]
            with torch.no_grad():
                y = op.linear(p, flat, self.params(p))
            y = y.reshape(self.T, self.N, *y.shape[1:])
        return y

    def params(self, n: Node) -> dict[str, torch.Tensor]:
        if n.name not in self._params:
            self._params[n.name] = tensors(n, torch.float64)
        return self._params[n.name]

    def replay(self, n: Node) -> torch.Tensor:
        """A stateful sink stepped over the run by its op (what the simulator does): its sent values."""
        if n.name in self._pools:
            return self._pools[n.name]
        op, s = op_of(n), self.s
        xin = self.series(n.inputs[0])
        bias = self.params(n).get("bias")
        state, out = None, []
        end = sink_ends(self.g, self.T).get(n.name, self.T)  # a student's sink is silent after its own T steps
        with torch.no_grad():
            for t in range(self.T):
                x = xin[t].clone()
                if bias is not None and s.bias_on(n.name, t):
                    x = x + bias
                if state is None:
                    state = op.init_state(n, x)
                if t >= end:
                    out.append(torch.zeros_like(out[-1]))
                    continue
                out.append(op.step(n, state, x, s.wake_steps_seen(n.name, t)).clone())
        y = torch.stack(out)
        if not op.spiking:  # a spiking layer's record comes from the simulation; keep only what is not recorded
            self._pools[n.name] = y
        return y


# ----------------------------------------------------------------------------------------------------------


def estimate(graph: Graph, hw: "str | tuple[HardwareLimits, EnergyFigures]" = "loihi2",
             x: np.ndarray | None = None, steps: int | None = None) -> Estimate:
    """Resources (neurons, synapses, memory, fan-in, axons, cores, chips) of the converted spiking ``graph`` on
    ``hw`` per block of its lowered graph and, given inputs ``x`` (N, *input shape), its activity per inference
    from a reference simulation of ``steps`` steps (default: the schedule's T) and the energy it implies.
    ``hw`` names an entry of :data:`HARDWARE` (or is a (HardwareLimits, EnergyFigures) pair)."""
    from neurocompile.passes.lower_to_blocks import blocks, lowered

    limits, energy = hardware(hw) if isinstance(hw, str) else hw
    if getattr(graph, "schedule", None) is None:
        raise NeurocompileError("the resource estimate reads a converted spiking graph; this one has no wake/sleep "
                                "schedule", hint="Convert it first: api.convert(api.load(path))")
    if steps is not None and x is None:
        raise NeurocompileError("steps= sets the length of the simulation the activity comes from; pass inputs x too")
    g = lowered(graph)
    st, ind = _Structure(g), _Indicator(g)
    built: list[_Block] = []
    bls = blocks(g)
    for bl in bls:
        b = st.block(g.nodes[bl.sink])
        named = {c.node for c in b.conns if c.node is not None and op_of(g.nodes[c.node]).synaptic}
        if named != set(bl.synapses):  # the walk must see the connections lowering groups into the block
            raise NeurocompileError(f"resource estimate: block {bl.sink} has connections {sorted(named)}, lowering "
                                    f"lists {sorted(bl.synapses)}", node=bl.sink)
        for c in b.conns:
            _measure(g, ind, c)
        built.append(b)

    wbits = int(limits.weight_bits.value)
    rows = [_resources(g, b, limits, wbits, bl.synapses) for b, bl in zip(built, bls)]
    notes = ["readout: non-spiking integrating compartments on chip (read by the host); input: host-injected "
             "graded messages, no cores", "cores: per block, not packed; memory rule: one 8-bit weight per "
             "unrolled synapse (cores_shared: each kernel once)"]
    for b, r in zip(built, rows):
        for c in b.conns:
            inputs = sum(int((fo > 0).sum()) for fo in c.fanout.values())
            if c.kind == "dense" and inputs > limits.input_axons_per_core.value:
                notes.append(f"{r.name}: the dense connection {c.node} reads {inputs:,} inputs, more than "
                             f"{_v(limits.input_axons_per_core.value)} axons per core, and every core of a split "
                             "dense layer needs all of them: its cores are a lower bound")
    totals = _totals(rows, limits, energy)
    if x is not None:
        _add_activity(graph, g, built, rows, totals, x, steps, energy)
    return Estimate(limits.name, limits, energy, rows, totals, notes)


def _resources(g: Graph, b: _Block, L: HardwareLimits, wbits: int, synapses: list[str]) -> LayerEstimate:
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
        synapses=list(synapses),
        neurons=neurons, relays=relays, weights=weights, connections=conns, memory_bits=mem,
        memory_bits_shared=mem_shared, fan_in=fan_in, axons=axons, cores_neurons=cn, cores_memory=cm,
        cores_axons=ca, cores=max(cn, cm, ca), cores_shared=cs,
        ann_macs=sum(c.ann_macs for c in b.conns), ann_adds=sum(c.ann_adds for c in b.conns))


def _totals(rows: list[LayerEstimate], L: HardwareLimits, E: EnergyFigures) -> Totals:
    s = lambda k: sum(getattr(r, k) for r in rows)  # noqa: E731
    per_chip = L.cores_per_chip.value
    macs, adds = s("ann_macs"), s("ann_adds")
    return Totals(neurons=s("neurons"), relays=s("relays"), weights=s("weights"), connections=s("connections"),
                  memory_bits=s("memory_bits"), memory_bits_shared=s("memory_bits_shared"), cores=s("cores"),
                  cores_shared=s("cores_shared"), chips=math.ceil(s("cores") / per_chip),
                  chips_shared=math.ceil(s("cores_shared") / per_chip), ann_macs=macs, ann_adds=adds,
                  ann_energy_pj=macs * E.ann_mac_pj.value + adds * E.ann_add_pj.value)


def _add_activity(graph: Graph, g: Graph, built: list[_Block], rows: list[LayerEstimate], totals: Totals,
                  x: np.ndarray, steps: int | None, E: EnergyFigures) -> None:
    from neurocompile import api

    res = api.simulate(graph, x, steps=steps, record_layers=True, exact=True)
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
