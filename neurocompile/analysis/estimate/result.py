"""The estimate's result: one row per block, the totals, and the text table and JSON that present them with the
hardware figures and their sources."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from neurocompile.targets.loihi2.spec import REFERENCES, EnergyFigures, HardwareLimits

_BITS_PER_KIB = 8 * 1024


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
    """The blocks' sums, the chips they need and the ANN's arithmetic; with inputs, the activity per inference."""

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
    """What :func:`estimate` returns: the hardware's figures, one row per block, the totals and notes."""

    hw: str
    limits: HardwareLimits
    energy: EnergyFigures
    rows: list[LayerEstimate]
    totals: Totals
    notes: list[str] = field(default_factory=list)
    # with activity: messages per element of each sender tensor of the lowered graph, summed over the samples
    # (what runtime.traffic places; not part of to_dict)
    messages: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

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
                    _n(r.memory_bits / _BITS_PER_KIB), _n(r.fan_in), _n(r.axons), _n(r.cores), r.bound, _n(r.ann_macs)]
            if act:
                line += [_n(r.spikes), _n(r.synops), f"{r.energy_pj / 1e3:,.1f}"]
            rows.append(line)
        t = self.totals
        total = ["total", "", _n(t.neurons), _n(t.relays), _n(t.weights), _n(t.connections),
                 _n(t.memory_bits / _BITS_PER_KIB), "", "", _n(t.cores), "", _n(t.ann_macs)]
        if act:
            total += [_n(t.spikes), _n(t.synops), f"{t.energy_pj / 1e3:,.1f}"]
        out = [_format(rows, head, total),
               f"(mem KiB: one {_v(self.limits.weight_bits.value)}-bit weight per unrolled connection; by: the limit "
               "that sets the cores, neurons, memory or axons; per inference: over the run's steps)", ""]
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
