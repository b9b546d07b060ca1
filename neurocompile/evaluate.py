"""Accuracy and per-layer diagnosis of a converted spiking network over a data set (``evaluate``).

    ev = evaluate("model.onnx", x, labels, at=[4, 8, 16])   # array, or any iterable of (x, y) / x batches
    print(ev.table()); json.dump(ev.to_dict(), f)           # neurocompile.report: plots and one HTML page

What is measured, streamed over batches (only a batch's simulation records are held at a time):

- **per step t** (1-based, after step t; all T steps are computed, ``at`` selects the ones reported): SNN accuracy
  (with labels), argmax agreement SNN vs ANN, max and mean |logit error| relative to the largest |ANN logit| of the
  whole data set. The **ANN** is the float64 interpreter on the converted graph: each neuron node computes the
  CQReLU it stands for (for a calibrated plain-ReLU network this is the calibrated ANN the SNN approximates, not the
  original one). An IDSNN student (LIF) has no ANN: SNN accuracy and spike statistics only.
- **first steps**: ``first_argmax_step`` (the first step at which every sample's SNN argmax equals the ANN's),
  ``first_exact_step`` (every logit within ``tolerance`` relative: :data:`EXACT_RTOL` in float64 exact mode,
  :data:`FLOAT32_RTOL` in the float32 fast mode, where the readout differs from the float64 ANN by float32 rounding
  and, at a boundary case, by a whole level); ``stable_*`` the first step from which that holds through T.
- **per neuron layer** (CASC, Fig. 4): at each step, the fraction of (sample, neuron) pairs whose signed cumulative
  spike count is above ("more spikes") or below ("less spikes") the ANN's quantized level count
  round(q * L / A) (q the ANN activation, A the value of one level: the ``amplitude`` attribute, else the
  threshold); ``settle_step``: the first step from which every count equals its level through T; the first layer
  (topological order) off at the final step. Early in the wake phase the counts are still building up, so "less"
  starts near the fraction of nonzero levels. Only CIF layers (a sleep phase: the count is the level) are compared;
  IF and LIF layers have no level count to equal.
- **spike statistics** per layer: spikes per sample (positive, negative), firing rate (spikes per neuron and step),
  fraction of negative spikes, sparsity (fraction of (sample, neuron) pairs that never spike), dead fraction
  (neurons that never spike for any sample), a histogram of per-neuron rates; synaptic operations per inference
  against the ANN's MACs from :func:`neurocompile.estimate.estimate` on the first ``synops_samples`` samples (it runs
  its own float64 simulation).
- ``baseline=True`` also converts the ANN with the IF neuron (science.md, "Baseline") at the same T and reports its
  accuracy and agreement per step.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from neurocompile.errors import ModelLoadError, NeurocompileError
from neurocompile.ir import Graph, module_name
from neurocompile.ops import OPS, is_level_neuron

EXACT_RTOL = 1e-9     # float64 (exact mode): summation rounding only (science.md: "What exact means")
FLOAT32_RTOL = 1e-5   # float32 (fast mode): the readout's float32 rounding (~2e-7 on the digits CNN), 50x margin;
                      # a level flipped at a boundary case moves a logit by ~|W| lambda / L, far above it
HIST_BINS = 20


# ----------------------------------------------------------------------------------------------------------
# results


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
        out = [f"{self.model}: {self.samples:,} sample(s), T = {self.steps} steps (t_wake {self.t_wake}), "
               f"{self.neuron} neurons, {self.precision}"]
        if self.has_ann:
            out.append("ANN: float64 interpreter of the converted graph"
                       + (f", accuracy {_pct(self.ann_accuracy)}" if self.ann_accuracy is not None else "")
                       + f"; logit errors relative to max |ANN logit| = {self.max_abs_ann_logit:.6g}")
        else:
            out.append("no ANN (a spiking student): SNN accuracy and spike statistics only")
        out.append("")
        head = ["step"]
        if self.has_labels:
            head.append("SNN acc")
        if self.has_ann:
            head += ["agree", "max rel err", "mean rel err"]
        if any(ly.compared for ly in self.layers):
            head += ["layers ok", "first layer off"]
        if self.baseline is not None:
            head += ["IF acc" if self.has_labels else "IF agree"]
        rows = []
        for t in self.at:
            r = self.at_step(t)
            line = [str(t)]
            if self.has_labels:
                line.append(_pct(r["snn_accuracy"]))
            if self.has_ann:
                line += [_pct(r["agreement"]), f"{r['max_rel_error']:.2e}", f"{r['mean_rel_error']:.2e}"]
            if "layers_settled" in r:
                n = sum(ly.compared for ly in self.layers)
                line += [f"{r['layers_settled']}/{n}", module_name(r["first_layer_off"]) if r["first_layer_off"] else "-"]
            if self.baseline is not None:
                line.append(_pct(r["baseline_accuracy" if self.has_labels else "baseline_agreement"]))
            rows.append(line)
        out.append(_format(head, rows, left=()))
        if self.has_ann:
            out.append("")
            out.append(f"SNN argmax == ANN for all samples: first at step {_s(self.first_argmax_step)}, from step "
                       f"{_s(self.stable_argmax_step)} on")
            out.append(f"SNN logits == ANN (rel. err <= {self.tolerance:g}): first at step {_s(self.first_exact_step)}, "
                       f"from step {_s(self.stable_exact_step)} on")
            if any(ly.compared for ly in self.layers):
                out.append("first layer off at the final step: "
                           f"{module_name(self.first_error_layer) if self.first_error_layer else 'none'}")
        out.append("")
        head = ["layer", "op", "neurons", "settle", "more@T", "less@T", "spikes/sample +", "-", "rate", "neg %",
                "silent %", "dead %", "synops/inf", "ANN MACs"]
        rows = []
        for ly in self.layers:
            rows.append([ly.module, ly.op, f"{ly.neurons:,}", _s(ly.settle_step) if ly.compared else "n/a",
                         _pct(ly.more[-1]) if ly.compared else "-", _pct(ly.less[-1]) if ly.compared else "-",
                         f"{ly.spikes_pos:,.1f}", f"{ly.spikes_neg:,.1f}", f"{ly.firing_rate:.4f}",
                         _pct(ly.neg_fraction), _pct(ly.sparsity), _pct(ly.dead_fraction),
                         "-" if ly.synops is None else f"{ly.synops:,.0f}",
                         "-" if ly.ann_macs is None else f"{ly.ann_macs:,}"])
        out.append(_format(head, rows, left=(0, 1)))
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
            out.append(f"IF baseline (T = {b['steps']}): " + (f"accuracy {_pct(last)}" if last is not None else "")
                       + (f", agreement {_pct(b['agreement'][-1])}" if b.get("agreement") else "")
                       + (f", max rel err {b['max_rel_error'][-1]:.2e}" if b.get("max_rel_error") else ""))
        out += [f"note: {n}" for n in self.notes]
        return "\n".join(out)


def _pct(v: float | None) -> str:
    """A fraction as a percentage; a nonzero one that would print as 0.00 % (or 100.00 %) says so."""
    if v is None:
        return "-"
    if 0 < v < 5e-5:
        return "<0.01 %"
    if 1 - 5e-5 < v < 1:
        return ">99.99 %"
    return f"{100 * v:.2f} %"


def _s(v: Any) -> str:
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


# ----------------------------------------------------------------------------------------------------------
# inputs


def _as_array(v: Any) -> np.ndarray:
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch tensor
        return v.detach().cpu().numpy()
    return np.asarray(v)


def _batches(x: Any, labels: Any, batch: int, classes: int | None = None
             ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(x, y or None) batches from an array (+ labels) or an iterable of (x, y) pairs or x batches
    (a torch DataLoader). Labels given beside an iterable are consumed in order; ``classes``: see :func:`_labels`."""
    lab = None if labels is None else _labels(labels, classes)
    if isinstance(x, np.ndarray) or hasattr(x, "detach"):
        arr = _as_array(x)
        if arr.ndim == 0 or len(arr) == 0:
            raise NeurocompileError(f"the input holds no samples (shape {arr.shape})")
        if lab is not None and len(lab) != len(arr):
            raise NeurocompileError(f"{len(lab):,} labels for {len(arr):,} samples")
        for i in range(0, len(arr), batch):
            yield arr[i:i + batch], None if lab is None else lab[i:i + batch]
        return
    used = 0
    for item in x:
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise NeurocompileError(f"a batch of the input iterable has {len(item)} parts; give (x, y) or x")
            xb, yb = _as_array(item[0]), _labels(item[1], classes)
            if lab is not None:
                raise NeurocompileError("labels were given twice: beside the input and in its (x, y) batches")
            if len(yb) != len(xb):
                raise NeurocompileError(f"a batch has {len(xb)} inputs and {len(yb)} labels")
        else:
            xb, yb = _as_array(item), None
            if lab is not None:
                yb = lab[used:used + len(xb)]
                if len(yb) != len(xb):
                    raise NeurocompileError(f"fewer labels ({len(lab):,}) than input samples")
        used += len(xb)
        yield xb, yb
    if lab is not None and used != len(lab):
        raise NeurocompileError(f"{len(lab):,} labels for {used:,} samples")


def _labels(y: Any, classes: int | None = None, file: str | None = None) -> np.ndarray:
    """Class indices as int64 (N,), from indices (N,) or (N, 1) (integral floats such as 3.0 are indices) or
    one-hot rows (N, classes). ``classes``: the model's output size; every index must lie in [0, classes).
    Anything else is refused: a label no output can match (10 of 10 classes, -1), True/False, 2.5 or NaN would
    otherwise count as a wrong answer and report a plausible but wrong accuracy. ``file`` names the labels file."""
    y = _as_array(y)
    bad = lambda msg: NeurocompileError(msg, file=file, hint="Labels are integer class indices (N,) "  # noqa: E731
                                        "or one-hot rows (N, classes)")
    if y.dtype.kind not in "iuf":  # bool too: True/False are not class indices
        raise bad(f"labels have dtype {y.dtype}, not integer class indices")
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot rows
        if classes is not None and y.shape[1] != classes:
            raise bad(f"one-hot label rows have {y.shape[1]} columns, the model has {classes} classes")
        ones, zeros = (y == 1).sum(1), (y == 0).sum(1)
        off = np.flatnonzero((ones != 1) | (ones + zeros != y.shape[1]))
        if len(off):
            raise bad(f"{len(off):,} label row(s) are not one-hot (a single 1, zeros elsewhere), first row "
                      f"{int(off[0])}")
        y = y.argmax(1)
    elif y.ndim > 1 and not (y.ndim == 2 and y.shape[1] == 1):
        raise bad(f"labels have shape {y.shape}; give class indices (N,) or one-hot rows (N, classes)")
    y = y.reshape(-1)
    if y.dtype.kind == "f":  # checked before any cast: 1e30 or NaN would warn in astype and wrap around
        off = np.flatnonzero(~np.isfinite(y) | (y != np.floor(y)))
        if len(off):
            raise bad(f"{len(off):,} label(s) are not integers, first {y[off[0]]!r} at position {int(off[0])}")
    hi = classes if classes is not None else 2**62  # without the model's classes: at least a valid int64
    off = np.flatnonzero((y < 0) | (y >= hi))
    if len(off):
        where = f"the model's {classes} classes 0..{classes - 1}" if classes is not None else "class indices (>= 0)"
        v = y[off[0]]
        raise bad(f"{len(off):,} label(s) are outside {where}, first {int(v) if abs(v) < 1e15 else f'{v:g}'} at "
                  f"position {int(off[0])}")
    return y.astype(np.int64)


def _load_labels(path: str) -> np.ndarray:
    """A ``.npy`` labels file, or a one-paragraph error naming it (:func:`neurocompile.api.read_npy`)."""
    from neurocompile.api import read_npy

    y = read_npy(path, "labels")
    if isinstance(y, np.lib.npyio.NpzFile):
        y.close()
        raise ModelLoadError("the labels file is an .npz archive; pass a .npy array (np.save)", file=path)
    return y


def _checked(x: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A batch as ``dtype``: numbers of the model's input shape, finite (checked before and after the cast, which
    would warn on a value beyond float32 before the value is refused anyway)."""
    if x.dtype.kind not in "biuf":
        raise NeurocompileError(f"the input has dtype {x.dtype}, not numbers")
    if tuple(x.shape[1:]) != tuple(shape):
        raise NeurocompileError(f"an input batch has shape {x.shape}, the model expects "
                                f"(N, {', '.join(map(str, shape))})")
    with np.errstate(over="ignore", invalid="ignore"):
        y = x.astype(dtype, copy=False)
    if not np.all(np.isfinite(y)):
        what = "non-finite values" if not np.all(np.isfinite(x)) else f"values beyond {np.dtype(dtype).name}"
        raise NeurocompileError(f"the input holds {what}", hint="Inputs must be finite numbers")
    return y


# ----------------------------------------------------------------------------------------------------------
# accumulators


_EXP_OFFSET = 1100  # np.frexp's float64 exponents lie in -1073..1024
_EXP_BINS = 2200
_HALF = 26          # a 53-bit mantissa as two halves below 2**27
_CHUNK = 1 << 24    # values per extraction (n + 2 <= 2**25) and per bincount (2**24 halves < 2**27: sums < 2**51)
_TINY = 2.0 ** -900  # below it, values go to the bins directly (no extraction near the subnormals)
_BIN_ROWS = 1 << 11  # steps binned by one bincount: its (rows, _EXP_BINS) temporaries stay ~70 MB whatever T is
_SUM_BYTES = 2 * _EXP_BINS * 8  # per step: the int64 bins of the two mantissa halves


class _ExactSums:
    """Per-step sums of float64 values, exact: the result does not depend on how the values were split into
    batches or processes (the mean error of a torchrun evaluation equals the one-process one, bit for bit).

    The state is int64 bins per (step, binary exponent) holding the two 26-bit halves of 53-bit integer mantissas
    (a value is M * 2**(e - 53), np.frexp): integers add exactly across batches and ranks, and :meth:`values`
    rounds each step's sum once. A batch is first cut into a few exactly summable slices (Rump, Ogita and Oishi's
    ExtractVector, "Accurate floating-point summation", 2008): with sigma = 2**k, 2**(k - m) >= max |v| and
    2**m >= n + 2, q = (sigma + v) - sigma holds multiples of ulp(sigma) / 2 whose float sum is exact, and v - q is
    exact and below ulp(sigma); each slice's sum goes into the bins, so the bins see T numbers per slice, not every
    value. inf and NaN (an overflowing network) are summed apart, as np.sum would have them."""

    def __init__(self, T: int):
        self.T = T
        self.bins = np.zeros((2, T, _EXP_BINS), dtype=np.int64)
        self.special = np.zeros(T)

    def add(self, v: np.ndarray) -> None:
        v = np.array(v, dtype=np.float64).reshape(self.T, -1)
        fin = np.isfinite(v)
        if not fin.all():
            self.special += np.where(fin, 0.0, v).sum(1)
            v[~fin] = 0.0
        for i in range(0, v.shape[1], _CHUNK):
            self._extract(v[:, i:i + _CHUNK])

    def _extract(self, v: np.ndarray) -> None:
        m = (v.shape[1] + 1).bit_length()  # 2**m >= n + 2
        top = np.abs(v).max(1)
        huge = np.frexp(top)[1] + m > 1022  # sigma + v could overflow: straight to the bins
        if huge.any():
            self._bin(np.where(huge[:, None], v, 0.0))
            v = np.where(huge[:, None], 0.0, v)
            top[huge] = 0.0
        while True:
            live = top >= _TINY
            if not live.any():
                break
            sigma = np.where(live, np.ldexp(1.0, np.frexp(top)[1] + m), 0.0)[:, None]
            q = (sigma + v) - sigma
            q[~live] = 0.0
            v = v - q
            self._bin(q.sum(1)[:, None])  # exact: multiples of ulp(sigma) / 2 summing below sigma
            top = np.abs(v).max(1)
        if top.any():
            self._bin(v)

    def _bin(self, v: np.ndarray) -> None:
        """Add (T, n) values (n <= _CHUNK) to the bins, exactly."""
        mant, e = np.frexp(v)
        M = np.ldexp(mant, 53).astype(np.int64)  # exact: 53 significant bits at most (0 for a zero)
        for a in range(0, self.T, _BIN_ROWS):  # a block of steps at a time: bounded temporaries at any T
            r = min(_BIN_ROWS, self.T - a)
            key = (e[a:a + r] + _EXP_OFFSET + (np.arange(r) * _EXP_BINS)[:, None]).ravel()
            Mr = M[a:a + r]
            for h, part in enumerate((Mr >> _HALF, Mr & ((1 << _HALF) - 1))):  # M = hi * 2**26 + lo, signs included
                self.bins[h, a:a + r] += np.bincount(key, weights=part.ravel(),
                                                     minlength=r * _EXP_BINS).reshape(r, _EXP_BINS).astype(np.int64)

    def values(self) -> np.ndarray:
        out = np.zeros(self.T)
        for t in range(self.T):
            used = np.flatnonzero(self.bins[0, t] | self.bins[1, t])
            if len(used):
                low = int(used[0])
                total = sum(((int(self.bins[0, t, b]) << _HALF) + int(self.bins[1, t, b])) << (int(b) - low)
                            for b in used)
                shift = low - _EXP_OFFSET - 53  # total * 2**shift, rounded once (int / int is correctly rounded)
                try:
                    out[t] = float(total << shift) if shift >= 0 else total / (1 << -shift)
                except OverflowError:
                    out[t] = math.inf
        return out + self.special


class _StepStats:
    """Per-step sums over batches: correct, agree, max/sum |err|, and per step 'all agree'."""

    def __init__(self, T: int):
        self.T = T
        self.n = 0
        self.n_labelled = 0
        self.correct = np.zeros(T, dtype=np.int64)
        self.agree = np.zeros(T, dtype=np.int64)
        self.max_err = np.zeros(T)
        self.err = _ExactSums(T)
        self.elems = 0
        self.ann_correct = 0
        self.max_ann = 0.0
        self.unsettled = 0  # samples still spiking at the last step (where the simulator knows)

    @property
    def sum_err(self) -> np.ndarray:
        return self.err.values()

    def add(self, per_step: np.ndarray, ann: np.ndarray | None, y: np.ndarray | None) -> None:
        P = per_step.reshape(self.T, per_step.shape[1], -1).astype(np.float64)
        pred = P.argmax(-1)                                            # (T, B)
        self.n += P.shape[1]
        if y is not None:
            self.n_labelled += len(y)
            self.correct += (pred == y[None]).sum(1)
        if ann is not None:
            A = ann.reshape(len(ann), -1).astype(np.float64)
            self.agree += (pred == A.argmax(-1)[None]).sum(1)
            err = np.abs(P - A[None])
            self.max_err = np.maximum(self.max_err, err.reshape(self.T, -1).max(1))
            self.err.add(err)
            self.elems += A.size
            self.max_ann = max(self.max_ann, float(np.abs(A).max()))
            if y is not None:
                self.ann_correct += int((A.argmax(-1) == y).sum())

    def items(self) -> list[tuple[str, np.ndarray]]:
        """The state as (reduction, array) pairs (:meth:`neurocompile.distributed.Comm.reduce`): counts and
        exact-sum bins add, maxima take the max ("all samples agree at t" is then agree == n over all ranks)."""
        return [("sum", np.array([self.n, self.n_labelled, self.elems, self.ann_correct, self.unsettled],
                                 dtype=np.int64)),
                ("sum", self.correct), ("sum", self.agree), ("sum", self.err.bins), ("sum", self.err.special),
                ("max", self.max_err), ("max", np.array([self.max_ann]))]

    def load(self, items: list[np.ndarray]) -> None:
        counts, self.correct, self.agree, self.err.bins, self.err.special, self.max_err, top = items
        self.n, self.n_labelled, self.elems, self.ann_correct, self.unsettled = (int(v) for v in counts)
        self.max_ann = float(top[0])


class _LayerStats:
    """One spiking layer's sums over batches (more/less per step, spikes, silent pairs, per-neuron totals)."""

    def __init__(self, name: str, op: str, neurons: int, T: int, compared: bool):
        self.name, self.op, self.neurons, self.T, self.compared = name, op, neurons, T, compared
        self.more = np.zeros(T, dtype=np.int64)
        self.less = np.zeros(T, dtype=np.int64)
        self.pairs = 0
        self.silent = 0
        self.ever = np.zeros(neurons, dtype=bool)
        self.total = np.zeros(neurons)  # |spikes| per neuron over samples and steps
        self.pos = 0.0
        self.neg = 0.0

    def add(self, rec: np.ndarray, level: np.ndarray | None, spikes: dict[str, int]) -> None:
        B = rec.shape[1]
        rec = rec.reshape(self.T, B, -1)
        np.rint(rec, out=rec)  # counts are integers; spikes divided by their amplitude can miss by an ulp
        lev = None if level is None else np.rint(level.reshape(B, -1)).astype(rec.dtype)
        prev = np.zeros_like(rec[0])
        spiked = np.zeros(rec.shape[1:], dtype=bool)
        absum = np.zeros(rec.shape[1:], dtype=np.float64)
        for t in range(self.T):
            cur = rec[t]
            d = cur - prev
            spiked |= d != 0
            absum += np.abs(d)
            if lev is not None:
                self.more[t] += int(np.count_nonzero(cur > lev))
                self.less[t] += int(np.count_nonzero(cur < lev))
            prev = cur
        self.pairs += spiked.size
        self.silent += int(spiked.size - np.count_nonzero(spiked))
        self.ever |= spiked.any(0)
        self.total += absum.sum(0)
        self.pos += spikes.get("pos", 0)
        self.neg += spikes.get("neg", 0)

    def items(self) -> list[tuple[str, np.ndarray]]:
        """The state as (reduction, array) pairs: counts and per-neuron totals add (integers, exact in float64),
        'ever spiked' is an OR over the ranks."""
        return [("sum", np.array([self.pairs, self.silent], dtype=np.int64)), ("sum", self.more),
                ("sum", self.less), ("or", self.ever), ("sum", self.total),
                ("sum", np.array([self.pos, self.neg], dtype=np.float64))]

    def load(self, items: list[np.ndarray]) -> None:
        counts, self.more, self.less, self.ever, self.total, spikes = items
        self.pairs, self.silent = (int(v) for v in counts)
        self.pos, self.neg = (float(v) for v in spikes)

    def result(self, n: int) -> LayerDiagnosis:
        T = self.T
        d = LayerDiagnosis(name=self.name, op=self.op, neurons=self.neurons, compared=self.compared)
        if self.compared:
            d.more = (self.more / max(self.pairs, 1)).tolist()
            d.less = (self.less / max(self.pairs, 1)).tolist()
            d.settle_step = _stable_from((self.more + self.less) == 0)
        d.spikes_pos, d.spikes_neg = self.pos / n, self.neg / n
        d.firing_rate = (self.pos + self.neg) / max(n * self.neurons * T, 1)
        d.neg_fraction = self.neg / (self.pos + self.neg) if self.pos + self.neg else 0.0
        d.sparsity = self.silent / max(self.pairs, 1)
        d.dead_fraction = float(1 - self.ever.mean()) if self.neurons else 0.0
        d.rates = self.total / max(n * T, 1)
        return d


def _stable_from(ok: np.ndarray) -> int | None:
    """First 1-based step from which ``ok`` holds through the end (None if not at the end)."""
    if not len(ok) or not ok[-1]:
        return None
    bad = np.flatnonzero(~ok)
    return int(bad[-1]) + 2 if len(bad) else 1


def _first(ok: np.ndarray) -> int | None:
    hit = np.flatnonzero(ok)
    return int(hit[0]) + 1 if len(hit) else None


# ----------------------------------------------------------------------------------------------------------


def evaluate(graph_or_path: "Graph | str | os.PathLike", x: Any, labels: Any = None, steps: int | None = None,
             at: Iterable[int] | None = None, exact: bool = True, batch: int = 256, device: str | None = None,
             progress: Callable[[int, int | None], None] | None = None, baseline: bool = False,
             synops: bool = True, synops_samples: int = 64, distributed: bool | None = None,
             **convert_options: Any) -> Evaluation:
    """Simulate a spiking network on a data set and measure it against its ANN, per step and per layer.

    ``graph_or_path``: an ONNX model, saved IR or artifact path, or a Graph; one without a wake/sleep schedule is
    converted with ``api.convert(g, steps=steps, **convert_options)`` (e.g. ``neuron``, ``gamma``, ``t_wake``,
    ``fixed_point``), a converted one runs as it is (``steps`` then overrides its T). ``x``: an array (N, *shape),
    a ``.npy`` path, or any iterable of (x, y) or x batches (a torch DataLoader; tensors are fine); ``labels``:
    class indices in [0, classes) (or one-hot rows; classes: the readout's size) beside an array (or an x-only
    iterable), or a ``.npy`` path; other labels are refused (:func:`_labels`). ``at``: the steps reported
    (1-based, each <= T; default all). ``exact``: float64 simulation (else the float32 fast mode).
    ``batch``: samples simulated at a time (an array input; an iterable's own batches are used as they come, cut
    where larger): memory holds one batch's per-layer records, T x batch x neurons float32 several times over, so
    the batch shrinks (a note says so) to fit neurocompile.limits.MAX_RUN_BYTES, and a T for which not even one
    sample fits is refused naming that limit (:func:`_fit_batch`). ``progress(done, total)`` is called
    after each batch with the samples done and the total (an array's length, a DataLoader's sampler length, else
    None).
    ``baseline``: also run the IF baseline (neuron="if") at the same T (needs an unconverted ANN).
    ``synops``: synaptic operations vs MACs from :func:`neurocompile.estimate.estimate` on the first
    ``synops_samples`` samples (fewer where their per-layer records would not fit MAX_RUN_BYTES; a note says how
    many).

    ``distributed``: under ``torchrun --nproc-per-node N`` (or in a process group the caller initialized) each
    process evaluates a shard and the metrics are all-reduced (:mod:`neurocompile.distributed`, gloo), so every
    process returns the evaluation of the whole data set, equal to a one-process run's (bit for bit in exact mode;
    in the float32 mode up to float32 rounding of the logit errors, as for another ``batch``). None (the default):
    whenever such a launch or group has more than one process; False: each process on its own (rank 0 alone
    under torchrun must say so, or it waits for the others); True: as None, but an error outside such a launch.
    The shards: an array's sample i goes to rank i % N (DistributedSampler's order, without its padding); a
    DataLoader with a DistributedSampler is its own shard (the duplicates it pads with are dropped, so no sample
    counts twice; its labels must come in its (x, y) batches); any other iterable is drawn whole by every
    process and batch i is evaluated by rank i % N. ``progress`` then counts this process's samples, and
    ``device="cuda"`` is the process's ``cuda:LOCAL_RANK``. Rank 0 estimates the synaptic operations. A group
    made from torchrun's environment stays for later evaluations; ``neurocompile.distributed.shutdown()`` ends it.
    """
    from neurocompile import api, interpreter, limits
    from neurocompile import distributed as dist

    try:
        ok = not isinstance(batch, bool) and int(batch) == batch and int(batch) >= 1
    except (TypeError, ValueError, OverflowError):  # "8", NaN, inf
        ok = False
    if not ok:
        raise NeurocompileError(f"batch must be a positive integer, got {batch!r}")
    batch = int(batch)
    path = None if isinstance(graph_or_path, Graph) else str(graph_or_path)
    name = os.path.basename(path) if path is not None else str(graph_or_path.meta.get("name") or "graph")
    g = api.load(str(graph_or_path)) if not isinstance(graph_or_path, Graph) else graph_or_path
    classes = int(np.prod(g.shapes[g.outputs[0]]))  # the readout's size: labels index it
    labels_file = str(labels) if isinstance(labels, (str, os.PathLike)) else None
    if labels_file is not None:
        labels = _load_labels(labels_file)
    if labels is not None:  # checked whole before any work (labels in an iterable's batches: as they come)
        labels = _labels(labels, classes, labels_file)
    if g.schedule is None:
        snn = api.convert(g, steps=steps, **convert_options)
        T = int(snn.schedule["steps"])
    else:
        if convert_options:
            raise NeurocompileError(f"the model is converted already; conversion options "
                                    f"({', '.join(sorted(convert_options))}) do not apply", file=path)
        snn = g
        limits.check_options(steps=steps)
        T = int(steps if steps is not None else snn.schedule["steps"])
    sched = snn.schedule
    reported = _steps_at(at, T)
    fit, fixed_bytes = _fit_batch(snn, T, batch, baseline)  # refused here if one sample's records cannot fit
    if synops:  # neurocompile.estimate keeps every layer's records of its samples at once
        synops_samples = max(0, min(int(synops_samples), (limits.MAX_RUN_BYTES - fixed_bytes)
                                    // limits.record_bytes(snn, T, record_layers=True)))
    spiking = [n for n in snn.topo() if OPS[n.op].spiking]
    kinds = sorted({n.op for n in spiking})
    has_ann = not api.is_student(snn)
    compared_ok = {n.name for n in spiking if is_level_neuron(n) and OPS[n.op].sleep_phase} if has_ann else set()
    dtype = np.float64 if exact else np.float32
    shape = tuple(snn.shapes[snn.input_nodes[0].output])
    if isinstance(x, (str, os.PathLike)):
        x = api.load_input(str(x), shape)
    if baseline and (g.schedule is not None or api.is_student(g)):
        raise NeurocompileError("the IF baseline converts the ANN again, and "
                                + ("the model is converted already" if g.schedule is not None else
                                   "a spiking student has no ANN to convert"), file=path,
                                hint="Give the unconverted CQReLU model, or drop baseline")

    with dist.session(distributed) as comm:
        if comm is not None:
            device = dist.local_device(device)
        keep = [n.output for n in spiking if n.name in compared_ok]
        level_scale = {n.name: _level_scale(n) for n in spiking if n.name in compared_ok}
        stats = _StepStats(T)
        base_stats = _StepStats(T) if baseline else None
        layer_stats: dict[str, _LayerStats] = {}
        first_x: list[np.ndarray] = []
        firsts: list[tuple[np.ndarray, np.ndarray]] | None = None  # distributed: (global positions, samples)
        precision = ""
        labelled: bool | None = None
        failure: Exception | None = None
        try:  # distributed: a failure here (one rank's data, its GPU) is told to every rank in _combine
            exe = api.compile(snn, "reference", device=device, exact=exact)
            base_exe = None
            if baseline:
                opts = {k: v for k, v in convert_options.items() if k not in ("neuron", "gamma", "t_wake")}
                base_g = api.convert(g, neuron="if", steps=T, **opts)
                base_exe = api.compile(base_g, "reference", device=device, exact=exact)
            if comm is None:
                batches, total = _batches(x, labels, fit, classes), _known_total(x)
            else:
                batches, total, firsts = _shard(x, labels, fit, comm.rank, comm.world,
                                                synops_samples if synops else 0)
            for xb, yb in _pieces(batches, fit):
                xb = _checked(xb, shape, dtype)
                yb = None if yb is None else _labels(yb, classes)  # an iterable's own labels, as they come
                if labelled is None:
                    labelled = yb is not None
                elif labelled != (yb is not None):
                    raise NeurocompileError("some batches have labels and some do not")
                limits.check_work(snn, len(xb), T, "reference")
                res = _run(exe, xb, T, record_layers=True)
                stats.unsettled += sum(1 for i in (exe.unsettled or ()) if i < len(xb))  # a lone sample ran paired
                precision = res.precision
                ann, levels = None, {}
                if has_ann:
                    vals = interpreter.run(snn, _paired(xb).astype(np.float64), "float64", device=device or "cpu",
                                           keep=[*keep, snn.outputs[0]])
                    vals = {k: v[:len(xb)] for k, v in vals.items()}
                    ann = vals[snn.outputs[0]]
                    levels = {n.name: vals[n.output] * level_scale[n.name] for n in spiking if n.name in compared_ok}
                stats.add(res.per_step, ann, yb)
                for lname, rec in res.layers.items():
                    node = snn.nodes.get(lname)
                    if lname not in layer_stats:
                        op = node.op if node is not None else "?"
                        layer_stats[lname] = _LayerStats(lname, op, int(np.prod(rec.shape[2:])), T, lname in levels)
                    layer_stats[lname].add(rec, levels.get(lname), res.spikes.get(lname, {}))
                del res
                if base_exe is not None:
                    bres = _run(base_exe, xb, T, record_layers=False)
                    base_stats.add(bres.per_step, ann, yb)
                if comm is None and synops and sum(len(a) for a in first_x) < synops_samples:
                    first_x.append(xb[:synops_samples - sum(len(a) for a in first_x)])
                if progress is not None:
                    progress(stats.n, total)
        except Exception as exc:  # noqa: BLE001 - told to the other ranks below, then raised here
            if comm is None:
                raise
            failure = exc
        if comm is not None:
            labelled, precision, layer_stats, firsts_x = _combine(
                comm, failure, stats, base_stats, layer_stats, labelled, precision, T,
                firsts if synops else None, shape, dtype)
            first_x = [] if firsts_x is None else [firsts_x]
        if stats.n == 0:
            raise NeurocompileError("the input holds no samples")

        ev = Evaluation(model=name, neuron="/".join(k.lower() for k in kinds) or "none", samples=stats.n, steps=T,
                        t_wake=int(sched["t_wake"]), at=reported, precision=precision, exact=bool(exact),
                        tolerance=(EXACT_RTOL if exact or snn.meta.get("fixed_point") else FLOAT32_RTOL) if has_ann
                        else None, has_labels=bool(labelled), has_ann=has_ann)
        _fill_steps(ev, stats, has_ann, bool(labelled))
        if base_stats is not None:
            b = Evaluation(model=name, neuron="if", samples=stats.n, steps=T, t_wake=T, at=reported,
                           precision=precision, exact=bool(exact), tolerance=ev.tolerance, has_labels=bool(labelled),
                           has_ann=has_ann)
            _fill_steps(b, base_stats, has_ann, bool(labelled))
            ev.baseline = {"neuron": "if", "steps": T, "snn_accuracy": b.snn_accuracy, "agreement": b.agreement,
                           "max_rel_error": b.max_rel_error, "mean_rel_error": b.mean_rel_error,
                           "first_argmax_step": b.first_argmax_step, "first_exact_step": b.first_exact_step}
        ev.layers = [s.result(stats.n) for s in layer_stats.values()]
        off = [ly.name for ly in ev.layers if ly.compared and ly.more[-1] + ly.less[-1] > 0]
        ev.first_error_layer = off[0] if off else None
        if has_ann and not compared_ok:
            ev.notes.append("no CIF layer: spike counts are not compared with ANN levels (IF counts have no level "
                            "to equal)")
        bound = sched.settle_bound if api.lossless_kind(snn) else None
        if stats.unsettled:  # the error at T is then not the conversion's: say what T settles them (a proof)
            ev.notes.append(f"{stats.unsettled} sample(s) had not settled by the last step T={T}" + (
                f": the proven settling bound is T={bound} (steps={bound}, CLI --steps {bound})"
                if bound is not None and bound > T else ""))
        if snn.meta.get("lossy_layers"):
            ev.notes.append(f"lossy conversion (calibrated layers {snn.meta['lossy_layers']}): the ANN is the "
                            "calibrated CQReLU network, not the original")
        if fit < batch and stats.n > fit:
            ev.notes.append(f"simulated in batches of {fit:,} sample(s) instead of {batch:,}, so that the records of "
                            f"{T:,} steps fit the memory limit of {limits.gib(limits.MAX_RUN_BYTES)} "
                            "(neurocompile.limits.MAX_RUN_BYTES)")
        if synops and synops_samples < 1:
            ev.notes.append(f"synaptic operations not estimated: one sample's per-layer records of {T:,} steps "
                            f"exceed the memory limit of {limits.gib(limits.MAX_RUN_BYTES)} "
                            "(neurocompile.limits.MAX_RUN_BYTES)")
        if not synops:
            return ev
        if comm is None:
            if first_x:
                _apply_synops(ev, _estimate_synops(snn, np.concatenate(first_x), T))
            return ev
        est = None
        if comm.rank == 0:  # one estimate (it runs its own simulation), told to every rank
            try:
                est = _estimate_synops(snn, first_x[0], T) if first_x else None
            except Exception as exc:
                comm.broadcast(("failed", f"{type(exc).__name__}: {exc}"))
                raise
        est = comm.broadcast(est)
        if isinstance(est, tuple):
            raise NeurocompileError(f"on rank 0 of {comm.world}, estimating synaptic operations: {est[1]}")
        if est is not None:
            _apply_synops(ev, est)
        return ev


# ----------------------------------------------------------------------------------------------------------
# torch.distributed: shards and the combination of the ranks' sums


def _shard(x: Any, labels: Any, batch: int, rank: int, world: int, first_n: int
           ) -> tuple[Iterator[tuple[np.ndarray, np.ndarray | None]], int | None, list]:
    """This rank's batches, its sample count where known, and a list the batches fill, as they are drawn, with
    (global positions, samples) of the data set's first ``first_n`` samples this rank sees (the synops sample)."""
    firsts: list[tuple[np.ndarray, np.ndarray]] = []
    if isinstance(x, np.ndarray) or hasattr(x, "detach"):  # sample i on rank i % world, no padding
        arr = _as_array(x)
        lab = None if labels is None else _labels(labels)
        if arr.ndim == 0 or len(arr) == 0:
            raise NeurocompileError(f"the input holds no samples (shape {arr.shape})")
        if lab is not None and len(lab) != len(arr):
            raise NeurocompileError(f"{len(lab):,} labels for {len(arr):,} samples")
        if rank == 0 and first_n:
            firsts.append((np.arange(min(first_n, len(arr))), arr[:first_n]))
        mine = arr[rank::world]
        it = _batches(mine, None if lab is None else lab[rank::world], batch) if len(mine) else iter(())
        return it, len(mine), firsts
    sampler = _distributed_sampler(x)
    if sampler is None:
        return _round_robin(x, labels, batch, rank, world, first_n, firsts), _round_robin_total(x, rank, world), firsts
    if (int(sampler.num_replicas), int(sampler.rank)) != (world, rank):
        raise NeurocompileError(f"the DataLoader's DistributedSampler is rank {sampler.rank} of "
                                f"{sampler.num_replicas}, this process rank {rank} of {world}",
                                hint="Build it in the process group (its default num_replicas and rank)")
    if labels is not None:
        raise NeurocompileError("labels beside a DataLoader with a DistributedSampler cannot be matched with the "
                                "samples of its shard", hint="Give (x, y) batches, a dataset of (x, y) pairs")
    real = int(sampler.num_samples) if sampler.drop_last else len(range(rank, len(sampler.dataset), world))
    return _sampler_batches(x, batch, rank, world, real, first_n, firsts), real, firsts


def _distributed_sampler(x: Any):
    try:
        from torch.utils.data.distributed import DistributedSampler
    except ImportError:  # pragma: no cover
        return None
    for s in (getattr(x, "sampler", None), getattr(getattr(x, "batch_sampler", None), "sampler", None)):
        if isinstance(s, DistributedSampler):
            return s
    return None


def _sampler_batches(x: Any, batch: int, rank: int, world: int, real: int, first_n: int, firsts: list):
    """A DistributedSampler's shard without the padding: its k-th sample is position rank + k * world of the
    sampler's (padded) index list, and those at positions >= the data set's length are the duplicates."""
    seen = 0
    for xb, yb in _batches(x, None, batch):
        if seen >= real:
            break
        if seen + len(xb) > real:
            xb, yb = xb[:real - seen], None if yb is None else yb[:real - seen]
        pos = rank + world * np.arange(seen, seen + len(xb))
        sel = pos < first_n
        if sel.any():
            firsts.append((pos[sel], xb[sel]))
        seen += len(xb)
        yield xb, yb


def _round_robin(x: Any, labels: Any, batch: int, rank: int, world: int, first_n: int, firsts: list):
    """Any other iterable: every rank draws every batch (labels beside it stay in step), evaluates batch i if
    i % world == rank; rank 0 keeps the first samples."""
    done = 0
    for i, (xb, yb) in enumerate(_batches(x, labels, batch)):
        if rank == 0 and done < first_n:
            k = min(len(xb), first_n - done)
            firsts.append((np.arange(done, done + k), xb[:k]))
        done += len(xb)
        if i % world == rank:
            yield xb, yb


def _round_robin_total(x: Any, rank: int, world: int) -> int | None:
    n, b = _known_total(x), getattr(x, "batch_size", None)
    if n is None or not b:
        return None
    return sum(min(b, n - i * b) for i in range(rank, -(-n // b), world))


def _combine(comm, failure: Exception | None, stats: "_StepStats", base_stats: "_StepStats | None",
             layer_stats: dict[str, "_LayerStats"], labelled: bool | None, precision: str, T: int,
             firsts: list | None, shape: tuple[int, ...], dtype) -> tuple:
    """Every rank's sums into every rank's accumulators. A failure on any rank is raised on every rank (its own
    error where it failed, naming the rank elsewhere) before any reduction, so no rank waits for one that quit.
    Returns (labelled, precision, layer stats in order, the first samples on rank 0 / None)."""
    meta = {"failure": None if failure is None else
            str(failure) if isinstance(failure, NeurocompileError) else f"{type(failure).__name__}: {failure}",
            "labelled": labelled, "precision": precision or None,
            "layers": [(s.name, s.op, s.neurons, s.compared) for s in layer_stats.values()]}
    metas = comm.all_gather(meta)
    bad = [(r, m["failure"]) for r, m in enumerate(metas) if m["failure"] is not None]
    if failure is not None:
        raise failure
    if bad:
        raise NeurocompileError(f"on rank {bad[0][0]} of {comm.world}: {bad[0][1]}")
    flags = {m["labelled"] for m in metas if m["labelled"] is not None}
    if len(flags) > 1:
        raise NeurocompileError("some batches have labels and some do not")
    labelled = flags.pop() if flags else None
    precision = next((m["precision"] for m in metas if m["precision"]), precision)
    spec = next((m["layers"] for m in metas if m["layers"]), [])
    if any(m["layers"] and m["layers"] != spec for m in metas):  # pragma: no cover - one network on every rank
        raise NeurocompileError("the ranks recorded different layers")
    ordered = {}
    for lname, op, neurons, compared in spec:  # a rank without samples adds zeros
        ordered[lname] = layer_stats.get(lname) or _LayerStats(lname, op, neurons, T, compared)
    parts = [stats] + ([base_stats] if base_stats is not None else []) + list(ordered.values())
    sizes = [len(p.items()) for p in parts]
    reduced = comm.reduce([it for p in parts for it in p.items()])
    at = 0
    for p, k in zip(parts, sizes):
        p.load(reduced[at:at + k])
        at += k
    first_x = None
    if firsts is not None:
        got = comm.gather(firsts)
        if comm.rank == 0:
            chunks = [c for per_rank in got for c in per_rank]
            if chunks:
                pos = np.concatenate([c[0] for c in chunks])
                xs = np.concatenate([_as_array(c[1]) for c in chunks])
                _, idx = np.unique(pos, return_index=True)  # sorted by position
                first_x = _checked(xs[idx], shape, dtype)
    return labelled, precision, ordered, first_x


def _paired(xb: np.ndarray) -> np.ndarray:
    """A batch of one sample as two (the sample twice): torch's matrix-vector path (one sample) rounds a float32
    readout differently from its matrix-matrix path, by more than batch shapes do among themselves. It narrows, but
    cannot close, the float32 differences between batchings: the kernel a math library picks for a batch shape and
    CPU decides the last bits (exact mode alone is bit-identical across batchings and processes)."""
    return np.concatenate([xb, xb]) if len(xb) == 1 else xb


def _run(exe, xb: np.ndarray, T: int, record_layers: bool):
    """``exe.run`` on a batch; a lone sample runs paired (:func:`_paired`) and its twin is dropped."""
    res = exe.run(_paired(xb), steps=T, record_layers=record_layers)
    if len(xb) == 1:
        res.per_step = res.per_step[:, :1]
        if res.layers is not None:
            res.layers = {k: v[:, :1] for k, v in res.layers.items()}
        res.spikes = {k: {sign: c // 2 for sign, c in v.items()} for k, v in res.spikes.items()}
    return res


def _known_total(x: Any) -> int | None:
    """Samples an input will yield, where known without iterating: an array's length, a DataLoader's sampler
    length (None with drop_last, or for other iterables)."""
    if isinstance(x, np.ndarray) or hasattr(x, "detach"):
        return len(x)
    sampler = getattr(x, "sampler", None)
    if sampler is not None and getattr(x, "batch_size", None) and not getattr(x, "drop_last", True):
        try:
            return len(sampler)
        except TypeError:
            return None
    return None


_TABLE_BYTES = 64  # per readout value and step of a batch: _StepStats.add's float64 logits, errors and exact-sum slices


def _fit_batch(snn: Graph, T: int, batch: int, baseline: bool) -> tuple[int, int]:
    """(the largest batch <= ``batch`` whose arrays fit neurocompile.limits.MAX_RUN_BYTES, the bytes held whatever
    the batch). Per sample of a batch: every spiking layer's count after each of the T steps (record_layers), the
    per-step readout and its tables in :class:`_StepStats` (and the IF baseline's readout and tables); whatever the
    batch: the exact per-step sums (:class:`_ExactSums`) and each layer's per-step counts. A lone sample runs as two
    (:func:`_paired`). Refused (ConversionError naming the limit) when even that does not fit: then no batch
    size helps, only fewer steps or a smaller network."""
    from neurocompile import limits

    outs = limits.outputs_per_sample(snn)
    per_sample = limits.record_bytes(snn, T, record_layers=True) + T * outs * _TABLE_BYTES
    if baseline:
        per_sample += limits.record_bytes(snn, T) + T * outs * _TABLE_BYTES
    layers = sum(1 for n in snn.nodes.values() if OPS[n.op].spiking)
    fixed = (1 + bool(baseline)) * T * _SUM_BYTES + 2 * _BIN_ROWS * _EXP_BINS * 8 + layers * T * 16
    lone = 2  # _paired
    limits.check_memory(fixed + lone * per_sample,
                        f"evaluating {T:,} steps: one sample's records ({limits.neurons_per_sample(snn):,} neurons' "
                        f"spike counts and {outs:,} readout values after each step, the sample run as a pair) and "
                        "the per-step statistics", hint="Evaluate fewer steps (--steps), or a smaller network")
    return min(batch, (limits.MAX_RUN_BYTES - fixed) // per_sample), fixed


def _pieces(batches: Iterable[tuple[np.ndarray, np.ndarray | None]], size: int
            ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Batches of at most ``size`` samples: an iterable's own batches (a DataLoader's) are cut where larger."""
    for xb, yb in batches:
        for i in range(0, max(len(xb), 1), size):
            yield xb[i:i + size], None if yb is None else yb[i:i + size]


def _steps_at(at: Iterable[int] | None, T: int) -> list[int]:
    if at is None:
        return list(range(1, T + 1))
    out = []
    for t in at:
        try:
            whole = not isinstance(t, bool) and int(t) == t
        except (TypeError, ValueError, OverflowError):  # "4", NaN, inf
            whole = False
        if not whole:
            raise NeurocompileError(f"steps to report must be integers, got {t!r}")
        if int(t) < 1:  # step t is the state after t steps: there is no step 0
            raise NeurocompileError(f"step {t} cannot be reported: steps are numbered from 1 (step t is the state "
                                    f"after t steps) and must be in [1, {T}]")
        if int(t) > T:
            raise NeurocompileError(f"step {t} is beyond the run's steps 1..{T}",
                                    hint="Run more steps (steps=...) or report fewer")
        out.append(int(t))
    if not out:
        raise NeurocompileError("no steps to report (at is empty)")
    return sorted(set(out))


def _level_scale(node) -> float:
    """Factor turning a neuron's ANN activation q into its level count: L / A (A: the value of one level's spike
    in the ANN's unit: the ``amplitude`` attribute, else the threshold; ops._Neuron.forward)."""
    op = OPS[node.op]
    amp = op.attr(node, "amplitude")
    A = float(op.attr(node, "threshold")) if amp is None else float(amp)
    return int(op.attr(node, "levels")) / A


def _fill_steps(ev: Evaluation, s: _StepStats, has_ann: bool, labelled: bool) -> None:
    if labelled:
        ev.snn_accuracy = (s.correct / max(s.n_labelled, 1)).tolist()
        if has_ann:
            ev.ann_accuracy = s.ann_correct / max(s.n_labelled, 1)
    if has_ann:
        scale = s.max_ann if s.max_ann > 0 else 1.0
        ev.max_abs_ann_logit = s.max_ann
        ev.agreement = (s.agree / s.n).tolist()
        ev.max_rel_error = (s.max_err / scale).tolist()
        ev.mean_rel_error = (s.sum_err / max(s.elems, 1) / scale).tolist()
        all_agree = s.agree == s.n
        exact = s.max_err <= ev.tolerance * scale
        ev.first_argmax_step, ev.stable_argmax_step = _first(all_agree), _stable_from(all_agree)
        ev.first_exact_step, ev.stable_exact_step = _first(exact), _stable_from(exact)


def _estimate_synops(snn: Graph, x: np.ndarray, T: int) -> dict[str, Any]:
    """neurocompile.estimate on ``x``: per layer (synops, ANN MACs, ANN adds), the totals and the note; or the
    reason it could not (picklable: rank 0 sends it to the other ranks)."""
    from neurocompile.estimate import estimate

    try:
        est = estimate(snn, "loihi2", x=x.astype(np.float64), steps=T)
    except NeurocompileError as err:
        return {"error": str(err)}
    t = est.totals
    return {"layers": {r.name: (r.synops, r.ann_macs, r.ann_adds) for r in est.rows},
            "synops": {"synops": t.synops, "ann_macs": t.ann_macs, "ann_adds": t.ann_adds, "samples": t.samples,
                       "steps": t.steps, "spikes": t.spikes, "energy_pj": t.energy_pj,
                       "ann_energy_pj": t.ann_energy_pj,
                       "rows": [{"name": r.name, "op": r.op, "kind": r.kind, "synops": r.synops,
                                 "ann_macs": r.ann_macs, "ann_adds": r.ann_adds} for r in est.rows]}}


def _apply_synops(ev: Evaluation, est: dict[str, Any]) -> None:
    if "error" in est:
        ev.notes.append(f"synaptic operations not estimated: {est['error']}")
        return
    for ly in ev.layers:
        r = est["layers"].get(ly.name)
        if r is not None:
            ly.synops, ly.ann_macs, ly.ann_adds = r
    ev.synops = est["synops"]
    ev.notes.append(f"synaptic operations from neurocompile.estimate on the first {ev.synops['samples']} sample(s) "
                    "(float64 simulation)")


__all__ = ["evaluate", "Evaluation", "LayerDiagnosis", "EXACT_RTOL", "FLOAT32_RTOL"]
