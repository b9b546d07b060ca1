"""Streaming statistics of an evaluation: per-step and per-layer sums over batches (and ranks), and what they give."""
from __future__ import annotations

import numpy as np

from neurocompile.ir.ops import OPS
from neurocompile.analysis.evaluate.exact_sums import _ExactSums
from neurocompile.analysis.evaluate.result import Evaluation, LayerDiagnosis


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
        """The state as (reduction, array) pairs (:meth:`neurocompile.analysis.distributed.Comm.reduce`): counts and
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


def _level_scale(node) -> float:
    """Factor turning a neuron's ANN activation q into its level count: L / A (A: the value of one level's spike
    in the ANN's unit: ops.LevelNeuron.level_value, the threshold, or the spike amplitude times the rate)."""
    op = OPS[node.op]
    return int(op.attr(node, "levels")) / op.level_value(node)


def _fill_steps(ev: Evaluation, s: _StepStats, has_ann: bool, labelled: bool) -> None:
    """``ev``'s per-step metrics and first steps from the step sums ``s`` (all batches and ranks)."""
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
