"""The decisions of the exact mode: floor(X_t) of each neuron layer and step, computed in float32 and proved within
its error bound δ of the exact value, made again in float64 where it is not (level 1, then level 2), and refused where
even float64 cannot tell which side of a level X_t lies (certified.py describes the method).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from neurocompile.errors import TargetError
from neurocompile.ir import Node, fused_cif
from neurocompile.ir.ops import OPS
from neurocompile.targets.reference.certified_plan import F32_SAFE, TIE, U32, U64, SinkPlan
from neurocompile.targets.reference.multistep import shift

Floors = Callable[[int], torch.Tensor]  # step t -> floor(X_t) (float32 integers)
Make = Callable[[int], torch.Tensor]    # step t -> floor(X_t), computed anew


@dataclass
class SinkTerms:
    """What each step's floor(X_t) of one neuron layer reads: X_t = (its input) / θ + ``const``(β_t)."""

    n: Node
    sp: SinkPlan
    theta: float
    shape: tuple  # (N, ...) of its input
    beta: np.ndarray  # β_t: the steps up to t its bias was on
    X: torch.Tensor  # float32 scratch
    F: torch.Tensor  # the floors of the last X_t
    sat: tuple[float, float]  # the range of floor(X) outside which the count step saturates
    where: list  # [sink, step]: what a refusal names
    const: Callable[[int], tuple]  # β -> (β b / θ + pre-charge in float64, in float32, its largest magnitude)
    final: Callable[[int], tuple]  # t -> bounds on the error of float64's X_t: worst case, per sample


class Decisions:
    """Mixed into :class:`certified.Run`: reads its plan ``p``, batch size ``N`` and step count ``T``, counts ``proof``,
    and its float64 values (:class:`certified_float64.Float64Values`)."""

    def _floors(self, n: Node, sp: SinkPlan) -> Floors:
        """floor(X_t) for each step t of sink ``n`` (float32 integers), each distinct X_t computed once, in step order
        (the layer's terms for all steps were mapped before)."""
        terms = self._sink_terms(n, sp)
        way = {"plain": self._plain_floors, "input": self._input_floors}.get(sp.mode, self._split_floors)
        keys, make = way(terms)
        cache: dict = {}

        def floors(t: int) -> torch.Tensor:
            key = keys[t]
            if key not in cache:
                cache.clear()  # steps come in order: only the last distinct value is read again
                cache[key] = make(t)
            return cache[key]
        return floors

    def _sink_terms(self, n: Node, sp: SinkPlan) -> SinkTerms:
        """The constant terms, scratch tensors and error bounds every step of sink ``n`` reads."""
        p, op, T = self.p, OPS[n.op], self.T
        theta = op.firing_threshold(n)
        precharge = float(op.attr(n, "shift") or 0.0)  # QCFS's shift: X starts there
        shape = (self.N, *p.g.shapes[n.inputs[0]])
        beta = self.bias_steps(n) if "bias" in p.p64[n.name] else np.zeros(T, dtype=int)
        bias64 = p.p64[n.name].get("bias")
        consts: dict[int, tuple] = {}
        X = torch.empty(shape, dtype=torch.float32, device=p.sim.device)  # scratch, and the floors of the last X_t
        F = torch.empty_like(X)

        def const(bt: int) -> tuple:  # β b / θ + precharge: (float64, float32, largest magnitude); broadcastable
            if bt not in consts:
                c64 = bias64 * (bt / theta) + precharge if bias64 is not None and bt else torch.tensor(precharge,
                                                                                                  dtype=torch.float64)
                consts[bt] = (c64, c64.float(), float(c64.abs().max()))
            return consts[bt]

        sat, where = p.sat[n.name], [n, 0]  # where: the sink and step a refusal names
        worst, per_sample = self.float64_bound(n, p.const_mag(n))

        def final(t: int) -> tuple:  # bounds on the error of the float64 values of X_t: worst case, per sample
            where[1] = t
            return worst(t), lambda samples: per_sample(t, samples)
        return SinkTerms(n, sp, theta, shape, beta, X, F, sat, where, const, final)

    def _plain_floors(self, ly: SinkTerms) -> tuple[list, Make]:
        """A layer whose X_t is its connection map in float64 every step."""
        p, n, T, beta = self.p, ly.n, self.T, ly.beta
        vals = self.series64(n.inputs[0])
        keys = [(id(vals[t]), int(beta[t])) for t in range(T)]
        self.proof["float64 layers"] += 1

        def make(t: int) -> torch.Tensor:
            X = vals[t] / ly.theta if vals[t] is not None else torch.zeros(ly.shape, dtype=torch.float64,
                                                                           device=p.sim.device)
            return self._decide64(X + ly.const(int(beta[t]))[0], ly.final(t), ly.sat, ly.where)
        return keys, make

    def _input_floors(self, ly: SinkTerms) -> tuple[list, Make]:
        """A layer fed by the network input alone: its map of the input once, in float64, times the input steps."""
        n, sp, T, beta, X, F = ly.n, ly.sp, self.T, ly.beta, ly.X, ly.F
        c64 = self.input_map64(n.inputs[0]) / ly.theta
        c32, mag_c = c64.float(), float(c64.abs().max()) if c64.numel() else 0.0
        ks = [int(self.input_seen[t - sp.input_delay]) if t >= sp.input_delay else 0 for t in range(T)]
        keys = [(ks[t], int(beta[t])) for t in range(T)]

        def make(t: int) -> torch.Tensor:
            k, (k64, k32, kmag) = ks[t], ly.const(int(beta[t]))
            final, sat, where = ly.final(t), ly.sat, ly.where
            if not k * mag_c + kmag < F32_SAFE:  # float32 could overflow: this step in float64
                return self._decide64(c64 * k + k64, final, sat, where)
            torch.mul(c32, float(k), out=X) if k else X.zero_()
            X.add_(k32)
            # float32's rounding of the float64 map, and that map's own rounding (large only where terms cancel)
            delta = 3.3 * U32 * (k * mag_c + kmag) + float(final[0].max())
            return self._certify(X, F, delta, lambda idx: c64[idx] * k + _at(k64, idx), None, sat, final, where)
        return keys, make

    def _split_floors(self, ly: SinkTerms) -> tuple[list, Make]:
        """A layer of split float32 branches: the exact pieces' maps of the counts plus the remainder's, proved."""
        n, sp, T, beta, X, F = ly.n, ly.sp, self.T, ly.beta, ly.X, ly.F
        srcs = [shift(self.counts[b.src], b.delay) for b in sp.branches]
        keys = [(tuple(id(src[t]) for src in srcs), int(beta[t])) for t in range(T)]
        mapped = [self._map_distinct(b, src) for b, src in zip(sp.branches, srcs)]
        bound = sum(b.event_bound if id(b) in self.summed else b.bound for b in sp.branches)
        bound1 = sum(b.bound for b in sp.branches)  # level 1 maps a summed remainder anew: the dense map's bound
        mag_terms = sum(b.mag for b in sp.branches)
        n_terms = sum(len(b.pieces) if b.syn is not None else 1 for b in sp.branches) + 1

        def make(t: int) -> torch.Tensor:
            parts = [q for m, src in zip(mapped, srcs) if src[t] is not None for q in m[id(src[t])]]
            k64, k32, kmag = ly.const(int(beta[t]))
            if not parts:
                X.zero_()
            elif len(parts) == 1:
                X.copy_(parts[0])
            else:
                torch.add(parts[0], parts[1], out=X)
            for q in parts[2:]:
                X.add_(q)
            X.add_(k32)
            mag = mag_terms + kmag
            delta = bound + n_terms * U32 * mag * 1.01
            # level 1 sums n_terms float64 values, each within the float32 bound of its exact value (a summed
            # branch's remainder mapped anew in float64, within the dense bound)
            delta1 = bound1 + (n_terms + 1) * U64 * mag

            def level1(idx):
                v = _at(k64, idx)
                for b, m, src in zip(sp.branches, mapped, srcs):
                    if src[t] is None:
                        continue
                    qs = m[id(src[t])]
                    for q in qs[:-1] if id(b) in self.summed else qs:
                        v = v + q[idx].double()
                    if id(b) in self.summed:  # its float32 remainder summed over T steps: mapped at idx in float64
                        v = v + self.remainder_at(b, src[t], idx)
                return v

            def level2(samples: torch.Tensor) -> torch.Tensor:
                lin = self.seen64(n.inputs[0], t, samples)
                X64 = (lin / ly.theta if lin is not None else torch.zeros((len(samples), *ly.shape[1:]),
                                                                         dtype=torch.float64))
                return X64 + k64

            return self._certify(X, F, delta, level1, (delta1, level2), ly.sat, ly.final(t), ly.where)
        return keys, make

    def _certify(self, X: torch.Tensor, F: torch.Tensor, delta: float, level1: Callable, level2,
                 sat: tuple[float, float] | None = None, final: tuple | None = None, where=None) -> torch.Tensor:
        """floor(X) into ``F``, where X (float32) is within ``delta`` of the exact value; decisions closer than that to
        an integer are made again from ``level1`` (float64 values at those indices; ``level2`` = (its bound, the
        layer in float64 for given samples) where even those are not enough). ``sat``: the range of floor(X) outside
        which the count step saturates (no decision there is close); ``final``: bounds on the error of the last level's
        float64 values (:meth:`_refuse_undecided`). ``X`` is scratch."""
        lo_s, hi_s = sat if sat is not None else (-math.inf, math.inf)
        self.proof["decisions"] += X.numel()
        idx = _close_calls(X, F, delta, sat)
        if idx is None:
            return F
        self.proof["float64 level 1"] += len(idx[0])
        v = level1(idx)
        f = torch.floor(v)
        if level2 is not None:
            delta2, full = level2
            unsure = _unsure(v, f, delta2, lo_s, hi_s)
            if bool(unsure.any()):
                sel = unsure.nonzero(as_tuple=True)[0]
                samples = torch.unique(idx[0][sel])
                self.proof["float64 level 2"] += len(sel)
                row_of = torch.full((self.N,), -1, dtype=torch.long)
                row_of[samples] = torch.arange(len(samples))
                x64 = full(samples)[(row_of[idx[0][sel]], *(k[sel] for k in idx[1:]))]
                f[sel] = torch.floor(x64)
                if final is not None:
                    self._refuse_undecided(x64, tuple(k[sel] for k in idx), final, (lo_s, hi_s), where)
        elif final is not None:
            self._refuse_undecided(v, idx, final, (lo_s, hi_s), where)
        F[idx] = f.float()
        return F

    def _decide64(self, X64: torch.Tensor, final: tuple, sat: tuple[float, float], where) -> torch.Tensor:
        """floor of a whole layer's X_t computed in float64 (float32 integers), checked as the last level of
        :meth:`_certify` is."""
        self._refuse_undecided(X64, None, final, sat, where)
        return torch.floor(X64).float()

    def _refuse_undecided(self, v: torch.Tensor, idx: tuple | None, final: tuple, sat: tuple[float, float],
                          where) -> None:
        """Raise where float64 cannot decide: ``v`` (float64 X_t at indices ``idx``, or the whole layer when None)
        lies within float64's error bound of an integer (in the range where the count step depends on it) and that
        bound exceeds :data:`TIE`. ``final`` = (worst-case bound, shape (1, ...); per-sample bounds for given samples):
        the worst case clears nearly all values at once, the per-sample bound (Σ|w·x| of that neuron) the rest."""
        worst, per_sample = final
        lo_s, hi_s = sat
        if idx is None or worst.numel() == 1:
            w = worst if idx is None else worst.reshape(())
        else:
            w = worst.reshape(worst.shape[1:])[idx[1:]]
        cand = _unsure(v, torch.floor(v), w, lo_s, hi_s)
        if not bool(cand.any()):
            return
        if idx is None:
            idx = cand.nonzero(as_tuple=True)
            vals = v[idx]
            w = w.expand_as(v)[idx]
        else:
            sel = cand.nonzero(as_tuple=True)[0]
            idx, vals = tuple(k[sel] for k in idx), v[sel]
            w = w.expand_as(cand)[sel]
        need = (w > TIE) | ~torch.isfinite(vals)  # below TIE a close value is a tie at float64 rounding: kept
        if not bool(need.any()):
            return
        idx, vals = tuple(k[need] for k in idx), vals[need]
        samples = torch.unique(idx[0])
        row_of = torch.full((int(samples.max()) + 1,), -1, dtype=torch.long, device=samples.device)
        row_of[samples] = torch.arange(len(samples), device=samples.device)
        B = per_sample(samples)[(row_of[idx[0]], *idx[1:])]
        bad = (_unsure(vals, torch.floor(vals), B, lo_s, hi_s) & (B > TIE)) | ~torch.isfinite(vals) | ~torch.isfinite(B)
        if not bool(bad.any()):
            return
        i = int(bad.nonzero()[0, 0])
        n, t = where if where is not None else (None, None)
        syn = self.p.feeding_layer(n) if n is not None else None
        raise TargetError(
            f"exact mode cannot decide a spike of this layer: at step {t} its input is {float(vals[i]):.6g} "
            "thresholds, "
            f"and float64 computes it only to within ±{float(B[i]):.3g}, which reaches a level boundary (its terms "
            f"span magnitudes float64 cannot add exactly" + (f": the weights of '{syn}'" if syn else "") + ")",
            node=None if n is None else n.name, op=None if n is None else n.op,
            hint="The float64 interpreter and a float32 runtime cannot compute this value either. Rescale the weights "
                 "(terms about 1e16 or more apart that cancel), or run without --exact")


def _close_calls(X: torch.Tensor, F: torch.Tensor, delta: float, sat: tuple[float, float] | None) -> tuple | None:
    """floor(X) into ``F``, and the indices where X (float32, within ``delta`` of the exact value) may floor otherwise:
    its fractional part within ``delta`` of an integer and, where ``sat`` = (lo, hi) is given, floor(X) not beyond the
    saturation range [lo, hi] by more than ``delta`` (X in [F, F + 1): no error matters further out). None: no close
    call. ``X`` is scratch (left holding the fractional part)."""
    found = fused_cif.close_calls(X, F, delta, sat)  # the passes below in one loop
    if found is not None:
        return tuple(found) if found.shape[1] else None
    torch.floor(X, out=F)
    r = X.sub_(F)  # the fractional part, exact: in [0, 1)
    flat_r = r.view(r.shape[0], -1)
    lo, hi = flat_r.amin(1), flat_r.amax(1)  # the samples with a close call (torch's aminmax(dim) is slower)
    rows = ((lo < delta) | (hi > 1 - delta)).nonzero(as_tuple=True)[0]
    if len(rows) == 0:
        return None
    near = r[rows]
    close = (near < delta) | (near > 1 - delta)
    if sat is not None:
        Fr = F[rows]
        close &= (Fr + 1 > sat[0] - delta) & (Fr < sat[1] + delta)
    sub = close.nonzero(as_tuple=True)
    return (rows[sub[0]], *sub[1:]) if len(sub[0]) else None


def _unsure(v: torch.Tensor, f: torch.Tensor, delta, lo: float, hi: float) -> torch.Tensor:
    """Where values ``v`` (floors ``f``), each within ``delta`` of the exact one, may floor otherwise: close to an
    integer and not saturated beyond [lo, hi] (:meth:`Run._certify`); a value that is not finite always."""
    frac = v - f
    close = (frac < delta) | (frac > 1 - delta)
    return (close & (f + 1 > lo - delta) & (f < hi + delta)) | ~torch.isfinite(v)


def _at(const: torch.Tensor, idx: tuple) -> torch.Tensor:
    """A broadcastable per-channel constant at the indices of a (N, C, ...) tensor."""
    c = const.reshape(-1)
    return c[idx[1]] if c.numel() > 1 else c.expand(len(idx[0]))
