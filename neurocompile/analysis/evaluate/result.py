"""What :func:`neurocompile.analysis.evaluate.evaluate` measured: the result types, their text table and plain dict.

:class:`Evaluation` (per step, first steps, notes) holds one :class:`LayerDiagnosis` per spiking layer; :func:`pct`
is the one rule for percentages, shared with the HTML page (:mod:`neurocompile.analysis.report`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from neurocompile.errors import NeurocompileError
from neurocompile.ir import module_name

EXACT_RTOL = 1e-9     # float64 (exact mode): summation rounding only (science.md: "What exact means")
FLOAT32_RTOL = 1e-5   # float32 (fast mode): the readout's float32 rounding (~2e-7 on the digits CNN), 50x margin;
                      # a level flipped at a boundary case moves a logit by ~|W| lambda / L, far above it
HIST_BINS = 20  # bins of the per-layer spike-rate histograms
_STEP_HEAD = {"step": "step", "snn_accuracy": "SNN acc", "agreement": "agree", "max_rel_error": "max rel err",
              "mean_rel_error": "mean rel err", "layers_settled": "layers ok", "first_layer_off": "first layer off",
              "baseline_accuracy": "IF acc", "baseline_agreement": "IF agree"}  # the text table's column names


@dataclass
class LayerDiagnosis:
    """One spiking layer. Per-step lists run over steps 1..T (``Evaluation.at`` selects the reported ones)."""

    name: str
    op: str
    neurons: int                                   # per sample
    compared: bool                                 # counts compared with ANN levels (CIF layers with an ANN)
    more: list[float] | None = None                # fraction of (sample, neuron) pairs above the level, per step
    less: list[float] | None = None                # ... below it
    settle_step: int | None = None                 # first step from which all counts equal the levels (through T)
    spikes_pos: float = 0.0                        # per sample
    spikes_neg: float = 0.0
    firing_rate: float = 0.0                       # spikes per neuron per step
    neg_fraction: float = 0.0                      # negative spikes / all spikes
    sparsity: float = 0.0                          # (sample, neuron) pairs without a spike
    dead_fraction: float = 0.0                     # neurons without a spike for any sample
    rates: np.ndarray | None = field(default=None, repr=False)  # per neuron: spikes per step, averaged over samples
    synops: float | None = None                    # per inference (estimate)
    ann_macs: int | None = None                    # the ANN's MACs of the layer's connections (estimate)
    ann_adds: int | None = None

    @property
    def module(self) -> str:
        """The exporting model's own name of the layer (its module path, e.g. "features.2"), what tables show."""
        return module_name(self.name)

    def histogram(self, edges: np.ndarray) -> list[int]:
        if self.rates is None or not len(self.rates):
            return [0] * (len(edges) - 1)
        return np.histogram(np.clip(self.rates, edges[0], edges[-1]), bins=edges)[0].astype(int).tolist()

    def row(self) -> list[str]:
        """The cells of the per-layer table, as the text table and the HTML page show them."""
        c = self.compared
        return [self.module, self.op, f"{self.neurons:,}", or_dash(self.settle_step) if c else "n/a",
                pct(self.more[-1]) if c else "-", pct(self.less[-1]) if c else "-",
                f"{self.spikes_pos:,.1f}", f"{self.spikes_neg:,.1f}", f"{self.firing_rate:.4f}",
                pct(self.neg_fraction), pct(self.sparsity), pct(self.dead_fraction),
                "-" if self.synops is None else f"{self.synops:,.0f}",
                "-" if self.ann_macs is None else f"{self.ann_macs:,}"]


@dataclass
class Evaluation:
    """What :func:`evaluate` measured. Per-step lists cover steps 1..T (index t-1); ``at`` the reported steps."""

    model: str
    neuron: str                      # "cif", "if", "lif", ...: the spiking layers' op(s)
    samples: int
    steps: int                       # T of the run
    t_wake: int
    at: list[int]                    # reported steps (1-based)
    precision: str
    exact: bool
    tolerance: float | None          # relative logit tolerance of first_exact_step (None: no ANN)
    has_labels: bool
    has_ann: bool
    snn_accuracy: list[float] | None = None    # per step (labels)
    ann_accuracy: float | None = None          # (labels and an ANN)
    agreement: list[float] | None = None       # per step, argmax SNN == ANN
    max_rel_error: list[float] | None = None   # per step, max |SNN - ANN| / max |ANN|
    mean_rel_error: list[float] | None = None  # per step, mean |SNN - ANN| / max |ANN|
    max_abs_ann_logit: float | None = None
    first_argmax_step: int | None = None
    stable_argmax_step: int | None = None
    first_exact_step: int | None = None
    stable_exact_step: int | None = None
    layers: list[LayerDiagnosis] = field(default_factory=list)
    first_error_layer: str | None = None       # first compared layer off at the final step
    synops: dict[str, Any] | None = None       # totals from the estimate: synops, ann_macs, ann_adds, samples, steps
    baseline: dict[str, Any] | None = None     # IF baseline: neuron, steps, snn_accuracy, agreement, max_rel_error
    notes: list[str] = field(default_factory=list)

    # -- summary ------------------------------------------------------------------------------------------
    @property
    def accuracy(self) -> float | None:
        """SNN accuracy at the final step T."""
        return None if self.snn_accuracy is None else self.snn_accuracy[-1]

    @property
    def final_agreement(self) -> float | None:
        return None if self.agreement is None else self.agreement[-1]

    def at_step(self, t: int) -> dict[str, Any]:
        """The per-step metrics after step ``t`` (1-based)."""
        if not 1 <= int(t) <= self.steps:
            raise NeurocompileError(f"step {t} is outside the run's steps 1..{self.steps}")
        i = int(t) - 1
        pick = lambda v: None if v is None else v[i]  # noqa: E731
        row: dict[str, Any] = {"step": int(t), "snn_accuracy": pick(self.snn_accuracy),
                               "agreement": pick(self.agreement), "max_rel_error": pick(self.max_rel_error),
                               "mean_rel_error": pick(self.mean_rel_error)}
        compared = [ly for ly in self.layers if ly.compared]
        if compared:
            off = [ly.name for ly in compared if ly.more[i] + ly.less[i] > 0]
            row["layers_settled"] = len(compared) - len(off)
            row["first_layer_off"] = off[0] if off else None
        if self.baseline is not None:
            row["baseline_accuracy"] = pick(self.baseline.get("snn_accuracy"))
            row["baseline_agreement"] = pick(self.baseline.get("agreement"))
        return row

    def summary(self) -> dict[str, Any]:
        return {"model": self.model, "samples": self.samples, "steps": self.steps, "precision": self.precision,
                "snn_accuracy": self.accuracy, "ann_accuracy": self.ann_accuracy, "agreement": self.final_agreement,
                "max_rel_error": None if self.max_rel_error is None else self.max_rel_error[-1],
                "first_argmax_step": self.first_argmax_step, "stable_argmax_step": self.stable_argmax_step,
                "first_exact_step": self.first_exact_step, "stable_exact_step": self.stable_exact_step,
                "tolerance": self.tolerance, "first_error_layer": self.first_error_layer,
                "layer_settle_steps": {ly.name: ly.settle_step for ly in self.layers if ly.compared},
                "synops_per_inference": None if self.synops is None else self.synops.get("synops"),
                "ann_macs": None if self.synops is None else self.synops.get("ann_macs"),
                "baseline_accuracy": None if not self.baseline or self.baseline.get("snn_accuracy") is None
                else self.baseline["snn_accuracy"][-1]}

    def rate_edges(self) -> np.ndarray:
        top = max([float(ly.rates.max()) for ly in self.layers if ly.rates is not None and len(ly.rates)] + [0.0])
        return np.linspace(0.0, top if top > 0 else 1.0, HIST_BINS + 1)

    # -- output -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain Python types only (json.dumps-able): summary, the reported steps, layers, synops, baseline."""
        edges = self.rate_edges()
        idx = [t - 1 for t in self.at]
        layers = []
        for ly in self.layers:
            layers.append({
                "name": ly.name, "module": ly.module, "op": ly.op, "neurons": ly.neurons, "compared": ly.compared,
                "settle_step": ly.settle_step,
                "more": None if ly.more is None else [ly.more[i] for i in idx],
                "less": None if ly.less is None else [ly.less[i] for i in idx],
                "spikes_per_sample": {"pos": ly.spikes_pos, "neg": ly.spikes_neg},
                "firing_rate": ly.firing_rate, "neg_fraction": ly.neg_fraction, "sparsity": ly.sparsity,
                "dead_fraction": ly.dead_fraction, "rate_histogram": ly.histogram(edges),
                "synops": ly.synops, "ann_macs": ly.ann_macs, "ann_adds": ly.ann_adds})
        base = None
        if self.baseline is not None:
            base = {k: ([v[i] for i in idx] if isinstance(v, list) else v) for k, v in self.baseline.items()}
        return _plain({
            "summary": self.summary(), "neuron": self.neuron, "t_wake": self.t_wake, "exact": self.exact,
            "has_labels": self.has_labels, "has_ann": self.has_ann, "max_abs_ann_logit": self.max_abs_ann_logit,
            "ann_reference": "float64 interpreter of the converted graph" if self.has_ann else None,
            "at": list(self.at), "per_step": [self.at_step(t) for t in self.at], "layers": layers,
            "rate_histogram_edges": edges.tolist(), "synops": self.synops, "baseline": base, "notes": self.notes})

    def table(self) -> str:
        """Plain-text report: header, one line per reported step, one line per layer, synops, notes."""
        return "\n".join(self._head_lines() + [""] + self._step_lines() + [""] + self._layer_lines()
                         + [f"note: {n}" for n in self.notes])

    def step_columns(self) -> list[str]:
        """The per-step table's columns, as keys of :meth:`at_step` (each view names them in its own words)."""
        cols = ["step"]
        if self.has_labels:
            cols.append("snn_accuracy")
        if self.has_ann:
            cols += ["agreement", "max_rel_error", "mean_rel_error"]
        if any(ly.compared for ly in self.layers):
            cols += ["layers_settled", "first_layer_off"]
        if self.baseline is not None:
            cols.append("baseline_accuracy" if self.has_labels else "baseline_agreement")
        return cols

    def step_row(self, t: int) -> list[str]:
        """The cells of the per-step table after step ``t``, as the text table and the HTML page show them."""
        r = self.at_step(t)
        line = [str(t)]
        if self.has_labels:
            line.append(pct(r["snn_accuracy"]))
        if self.has_ann:
            line += [pct(r["agreement"]), f"{r['max_rel_error']:.2e}", f"{r['mean_rel_error']:.2e}"]
        if "layers_settled" in r:
            n = sum(ly.compared for ly in self.layers)
            line += [f"{r['layers_settled']}/{n}", module_name(r["first_layer_off"]) if r["first_layer_off"] else "-"]
        if self.baseline is not None:
            line.append(pct(r["baseline_accuracy" if self.has_labels else "baseline_agreement"]))
        return line

    def _head_lines(self) -> list[str]:
        out = [f"{self.model}: {self.samples:,} sample(s), T = {self.steps} steps (t_wake {self.t_wake}), "
               f"{self.neuron} neurons, {self.precision}"]
        if self.has_ann:
            out.append("ANN: float64 interpreter of the converted graph"
                       + (f", accuracy {pct(self.ann_accuracy)}" if self.ann_accuracy is not None else "")
                       + f"; logit errors relative to max |ANN logit| = {self.max_abs_ann_logit:.6g}")
        else:
            out.append("no ANN (a spiking student): SNN accuracy and spike statistics only")
        return out

    def _step_lines(self) -> list[str]:
        """The per-step table, then the first steps at which the SNN equals the ANN."""
        head = [_STEP_HEAD[c] for c in self.step_columns()]
        out = [_format(head, [self.step_row(t) for t in self.at], left=())]
        if self.has_ann:
            out.append("")
            out.append(f"SNN argmax == ANN for all samples: first at step {or_dash(self.first_argmax_step)}, from "
                       f"step {or_dash(self.stable_argmax_step)} on")
            out.append(f"SNN logits == ANN (rel. err <= {self.tolerance:g}): first at step "
                       f"{or_dash(self.first_exact_step)}, from step {or_dash(self.stable_exact_step)} on")
            if any(ly.compared for ly in self.layers):
                out.append("first layer off at the final step: "
                           f"{module_name(self.first_error_layer) if self.first_error_layer else 'none'}")
        return out

    def _layer_lines(self) -> list[str]:
        """The per-layer table and its legend, then the synaptic operations and the IF baseline."""
        head = ["layer", "op", "neurons", "settle", "more@T", "less@T", "spikes/sample +", "-", "rate", "neg %",
                "silent %", "dead %", "synops/inf", "ANN MACs"]
        out = [_format(head, [ly.row() for ly in self.layers], left=(0, 1))]
        out.append("(settle: first step from which every count equals the ANN's level; more/less: fraction of "
                   "(sample, neuron) pairs above/below it at T; rate: spikes per neuron per step; silent: pairs "
                   "without a spike; dead: neurons silent for every sample)")
        if self.synops is not None:
            s = self.synops
            ops = s["ann_macs"] + s["ann_adds"]
            out.append(f"synaptic operations per inference: {s['synops']:,.0f} over {s['steps']} steps "
                       f"({s['samples']} sample(s)) vs the ANN's {s['ann_macs']:,} MACs + {s['ann_adds']:,} other "
                       f"ops ({s['synops'] / max(ops, 1):.3f} per ANN op)")
        if self.baseline is not None:
            b = self.baseline
            last = b["snn_accuracy"][-1] if b.get("snn_accuracy") else None
            out.append(f"IF baseline (T = {b['steps']}): " + (f"accuracy {pct(last)}" if last is not None else "")
                       + (f", agreement {pct(b['agreement'][-1])}" if b.get("agreement") else "")
                       + (f", max rel err {b['max_rel_error'][-1]:.2e}" if b.get("max_rel_error") else ""))
        return out


def pct(v: float | None) -> str:
    """A fraction as a percentage; a nonzero one that would print as 0.00 % (or 100.00 %) says so."""
    if v is None:
        return "-"
    if 0 < v < 5e-5:
        return "<0.01 %"
    if 1 - 5e-5 < v < 1:
        return ">99.99 %"
    return f"{100 * v:.2f} %"


def or_dash(v: Any) -> str:
    """A value as text, None as "-"."""
    return "-" if v is None else str(v)


def _format(head: list[str], rows: list[list[str]], left: Sequence[int] = ()) -> str:
    cells = [head] + rows
    w = [max(len(r[i]) for r in cells) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w[i]) if i in left else c.rjust(w[i]) for i, c in enumerate(r))  # noqa: E731
    return "\n".join([line(head), "  ".join("-" * x for x in w), *map(line, rows)])


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, np.ndarray):
        return _plain(v.tolist())
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else None
    return v
