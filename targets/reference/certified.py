"""Exact mode at float32 speed: the reference simulator's count-domain executor, with a proof per spike decision.

**Count domain.** A CIF or IF neuron has no leak and a subtractive reset, so after step t its membrane before
firing is θ (X_t - S_{t-1}), where X_t is its cumulative input over the firing threshold θ plus the pre-charge and
S its count: the new count depends on floor(X_t) alone (``ops.LevelNeuron.count_step``). Connections are linear, so
X_t is a layer's connection map applied to the *cumulative* counts of the layers it reads (integers 0..cap), plus
β_t b / θ (β_t: the steps its bias was on). Each layer runs over all T steps at once (as multistep.py does).

**Proof.** floor(X_t) is computed in float32, with δ a proved bound on the error of X_t (worst case, any summation
order): where X_t lies more than δ from an integer the decision is the one exact arithmetic makes. Elsewhere it is
recomputed from float64 values (level 1: the float32 terms summed again in float64; level 2, where that is not
enough: the layer's connection map in float64 for that sample and step). Every spike decision is therefore exact,
or made in float64 (as the float64 mode makes all of them); readouts are computed in float64 from the counts.

**Splitting weights.** float32 rounds a convolution's sums, and a worst-case bound on that (≈ K·2⁻²⁴ times the
sum of |w|·S, K the fan-in) flags too many decisions to be worth it. So each weight tensor is split per output
channel, W = W_1 + ... + W_k + W_lo: the W_j have b mantissa bits on a grid such that every partial sum of
W_j·S (S integers 0..cap) is an integer multiple of the grid below 2²⁴ of it, hence exact in float32 in any order
(checked on a probe when the plan is made, so a backend that transforms inputs, as Winograd does, is caught);
W_lo is the float32 remainder, whose rounding is what δ bounds. The float32 default does one convolution per
step, this mode k + 1 on the stacked pieces.

**Maps of the changes.** A few neurons change their count per step, so a convolution's map of S_t is summed as the
map of S_{t-1} plus the event-driven map (event_driven.py) of ΔS_t = S_t - S_{t-1}, or computed densely where ΔS_t is
too dense. |ΔS_t| <= cap, so the exact pieces' sums stay exact; the remainder's error grows by one map's rounding and
one addition per step (``Branch.event_bound``), and level 1 maps the remainder anew at each close call, in float64,
from the input patch it reads (:meth:`Run.remainder_at`). On the VGG-11 of benchmarks/vs_spikingjelly.py this took the
exact mode from 12 to 31 images/s.

Layers that do not fit (a pool or scale between spikes and weights, real-valued inputs to a map other than the
network's input) compute their X_t in float64; networks with other neurons (LIF) run in the float64 step mode.

**Huge magnitudes.** A decision only matters where floor(X_t) is within γ of the range [0, cap] of counts: further out
the count step saturates (clips to ±γ), so a value proved beyond it needs no float64 at all, however large δ is (a
layer whose weights were multiplied by 1e20). Float64 itself is not exact either when terms 1e20 apart cancel: every
decision made in float64 is checked against a per-neuron bound on float64's error, γ_K · Σ|w·x| (Higham; K the
roundings along the map, Σ|w·x| the map applied to magnitudes); where even float64 cannot tell which side of a level
X_t lies (a bound above :data:`TIE`, far beyond a tie of float64 rounding) the run is refused rather than reported
silently wrong. Layers whose float32 values could overflow compute in float64.

**Settling.** The count domain sees the last step on which each sample's counts changed: ``run_certified`` returns it
as ``quiescent_at`` (the step-by-step mode's early-stop rule) and the samples still changing (``unsettled``), whose
readout at T is not yet the ANN's (the default T is a prediction, not a proof).

This module is the executor (:class:`Run`, :func:`run_certified`, :func:`settling`); certified_plan.py makes the plan,
certified_float64.py computes float64 values and their error bounds, certified_decide.py makes the decisions.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from neurocompile.ir import Node, fused_cif
from neurocompile.ir.ops import OPS, Group
from neurocompile.targets.reference.certified_decide import Decisions
from neurocompile.targets.reference.certified_float64 import Float64Values
from neurocompile.targets.reference.certified_plan import TIE, Branch, Plan, plan
from neurocompile.targets.reference.event_driven import event_conv, most_nonzero
from neurocompile.targets.reference.multistep import CHUNK, shift

__all__ = ["TIE", "Plan", "Run", "plan", "run_certified", "settling"]


class Run(Float64Values, Decisions):
    """One batch through a :class:`Plan`: count series per source, readout sums, spike statistics and how many
    decisions needed float64 (``proof``)."""

    def __init__(self, p: Plan, x: torch.Tensor, T: int):
        self.p, self.x, self.T = p, x, T
        self.N = x.shape[0]
        s = p.s
        self.input_seen = np.cumsum([1 if s.input_on(t) else 0 for t in range(T)])  # input steps up to t
        self.counts: dict[str, list] = {}    # source -> T cumulative count tensors (float32) or None (zeros)
        self.real: dict[str, list] = {}      # real-valued pool -> T float64 tensors
        self.stats = {n: torch.zeros(2, dtype=torch.float64) for n in p.sources if n not in p.sinks or
                      p.sinks[n].mode != "pool"}
        self.proof = {"decisions": 0, "float64 level 1": 0, "float64 level 2": 0, "float64 layers": 0}
        self._x64 = x.double()
        self.last_change = -1  # the last step on which a count changed (any sample)
        # the samples whose counts changed in the last max_delay + 1 steps
        self.late = torch.zeros(self.N, dtype=torch.bool, device=p.sim.device)
        self._worst: dict[str, torch.Tensor] = {}
        self.summed: set[int] = set()  # the branches (id) whose maps were summed from the counts' changes

    def run_sink(self, n: Node) -> None:
        p, sp = self.p, self.p.sinks[n.name]
        if sp.mode == "pool":
            b = sp.branches[0]
            src = shift(self.counts[b.src], b.delay)
            op, memo = OPS[n.op], {}
            out = []
            for c in src:
                if c is None:
                    out.append(None)
                    continue
                if id(c) not in memo:
                    x = c
                    for m in b.pre:
                        x = OPS[m.op].linear(m, [x], {})
                    memo[id(c)] = op.forward(n, [x], {})
                out.append(memo[id(c)])
            self.counts[n.name] = out
            return
        op = OPS[n.op]
        floors = self._floors(n, sp)
        S = torch.zeros((self.N, *p.g.shapes[n.inputs[0]]), dtype=torch.float32, device=p.sim.device)
        series, stats = [], self.stats[n.name]
        binary = op.binary_spikes(n)
        d = torch.empty_like(S).reshape(-1)  # scratch: fresh large tensors cost page faults on every step
        for t in range(self.T):
            new = op.count_step(n, S, floors(t), p.s.wake_steps_seen(n.name, t), out=self.take(S.shape))
            end = t >= self.T - 1 - p.s.max_delay  # per sample only at the end: what settling() needs
            fused = fused_cif.count_change(new, S, self.late if end else None)  # the passes below in one loop
            if fused is None:
                torch.sub(new.reshape(-1), S.reshape(-1), out=d)
                mag = float(torch.dot(d, d) if binary else d.abs().sum())
            else:
                mag = fused[0]
            if mag == 0:
                self.p.pool.setdefault(tuple(S.shape), []).append(new)
                series.append(series[-1] if series else None)
                continue
            stats += torch.tensor([mag, fused[1] if fused else float(d.sum())], dtype=torch.float64)
            self.last_change = max(self.last_change, t)
            if end and fused is None:
                self.late |= d.view(self.N, -1).ne(0).any(1)
            S = new
            S._nc_changed = mag  # sum |ΔS| (_map_changes)
            series.append(S)
        self.counts[n.name] = series

    def take(self, shape) -> torch.Tensor:
        """A float32 tensor of ``shape`` from the pool (contents undefined), or a new one."""
        free = self.p.pool.get(tuple(shape))
        return free.pop() if free else torch.empty(shape, dtype=torch.float32, device=self.p.sim.device)

    def release(self, i: int) -> None:
        """Return the counts of the sources last read by node ``i`` of the order to the pool."""
        for src, last in self.p.last_use.items():
            if last == i and src in self.counts:
                seen = set()
                for c in self.counts.pop(src):
                    if c is not None and id(c) not in seen and c.dtype == torch.float32:
                        seen.add(id(c))
                        self.p.pool.setdefault(tuple(c.shape), []).append(c)

    def _map_distinct(self, b: Branch, src: list) -> dict[int, list[torch.Tensor]]:
        """Each distinct count tensor of ``src`` through the branch: id -> float32 terms (one per weight piece; the
        pieces as one map where the weights stack along output channels)."""
        distinct: dict[int, torch.Tensor] = {}
        for c in src:
            if c is not None and id(c) not in distinct:
                distinct[id(c)] = c
        if not distinct:
            return {}
        if b.syn is None:
            coef = np.float32(b.coef)
            return {k: [c * coef if coef != 1 else c] for k, c in distinct.items()}
        xs, ids = list(distinct.values()), list(distinct)
        N = xs[0].shape[0]
        if b.events is not None:
            return self._map_changes(b, xs, ids)
        per = max(1, CHUNK // max(1, xs[0].numel()))
        out: dict[int, list[torch.Tensor]] = {}
        for i in range(0, len(xs), per):
            group = torch.cat(xs[i:i + per]) if len(xs[i:i + per]) > 1 else xs[i]
            if b.stacked is not None:  # one map, its output channels split into the pieces
                y = self.p.map_branch(b, group, b.stacked)
                maps = [y.split(N) for y in y.chunk(len(b.pieces), dim=1)]
            else:
                maps = [self.p.map_branch(b, group, w).split(N) for w in b.pieces]
            for j, k in enumerate(ids[i:i + per]):
                out[k] = [m[j] for m in maps]
        return out

    def _map_changes(self, b: Branch, xs: list[torch.Tensor], ids: list[int]) -> dict[int, list[torch.Tensor]]:
        """:meth:`_map_distinct` summed step by step: each count tensor's map is the last one's plus the event-driven
        map of the change (a few counts change per step), or the dense map where the change is too dense; sets
        ``self.summed`` (the maps' error bound is then ``b.event_bound``)."""
        out: dict[int, list[torch.Tensor]] = {}
        hw = self.p.g.shapes[b.syn.output][1:]
        prev = M = None
        change = torch.empty_like(xs[0])
        most = most_nonzero(b.events) * change.numel()
        for c, k in zip(xs, ids):
            # run_sink's count of the change (sum |ΔS|, at least its nonzeros) spares computing a change too dense
            dense = getattr(c, "_nc_changed", 0) > most
            E = None if dense else event_conv(b.events, c if prev is None else torch.sub(c, prev, out=change), hw)
            if E is None:
                M = self.p.map_branch(b, c, b.stacked)
            else:
                M = E if M is None else E.add_(M)  # E is new: the sum in place, one rounding as any add
                self.summed.add(id(b))
            out[k] = list(M.chunk(len(b.pieces), dim=1))
            prev = c
        return out

    def remainder_at(self, b: Branch, S: torch.Tensor, idx: tuple) -> torch.Tensor:
        """The map of counts ``S`` through the remainder piece of ``b`` (a convolution) at output indices ``idx``
        (n, c, h, w), in float64: each a product of its weight row with the input patch it reads (within γ_K of the
        exact value in float64, as the dense map's remainder is within ``b.bound`` in float32)."""
        ew = b.events
        if b.lo64 is None:
            b.lo64 = b.pieces[-1].double()
        lo = b.lo64
        (KH, KW), (Ho, Wo), (H, W) = lo.shape[2:], self.p.g.shapes[b.syn.output][1:], S.shape[2:]
        (sh, sw), (ph, pw), (dh, dw) = ew.stride, ew.pads, ew.dilation
        eh, ew_ = (KH - 1) * dh + 1, (KW - 1) * dw + 1  # the kernel's extent
        n, o, ho, wo = idx
        samples, n = torch.unique(n, return_inverse=True)  # pad only the samples read (close calls are few)
        padded = torch.nn.functional.pad(S[samples], (pw, max(0, (Wo - 1) * sw + ew_ - W - pw),
                                                      ph, max(0, (Ho - 1) * sh + eh - H - ph)))
        windows = padded.unfold(2, eh, sh).unfold(3, ew_, sw)  # (n, C, Ho, Wo, eh, ew): views, nothing copied
        out = torch.empty(len(n), dtype=torch.float64)
        for i in range(0, len(n), 1024):  # (E, C, KH, KW) patches, a few MB at a time
            k = slice(i, i + 1024)
            patch = windows[n[k], :, ho[k], wo[k]][..., ::dh, ::dw]
            out[k] = (patch.double() * lo[o[k]]).sum((1, 2, 3))
        return out


def run_certified(p: Plan, xin: torch.Tensor, T: int, record: bool,
                  progress: Callable[[int], None] | None = None) -> dict:
    """Run the encoded input ``xin`` for ``T`` steps layer by layer in the count domain. Returns the readout sums
    (float64) per output node after every step (``record``) or after the last, spike statistics, the proof
    counts, ``quiescent_at`` and ``unsettled`` (:func:`settling`). Raises TargetError where a decision cannot be made
    exactly even in float64 (:meth:`Run._refuse_undecided`)."""
    r = Run(p, xin, T)
    sums: dict[str, list] = {}
    order = p.sim.order
    for i, n in enumerate(order):
        op = OPS[n.op]
        if n.name in p.sinks:
            r.run_sink(n)
        elif n.name in p.real:  # a pool over real values: max over windows of the cumulative input, float64
            beta = r.bias_steps(n) if "bias" in p.p64[n.name] else None
            vals, memo, out = r.series64(n.inputs[0]), {}, []
            for t, v in enumerate(vals):
                key = (id(v), None if beta is None else int(beta[t]))
                if key not in memo:
                    x = v if v is not None else torch.zeros((r.N, *p.g.shapes[n.inputs[0]]), dtype=torch.float64)
                    if beta is not None and beta[t]:
                        x = x + p.p64[n.name]["bias"] * float(beta[t])
                    memo[key] = op.forward(n, [x], {})
                out.append(memo[key])
            r.real[n.name] = out
        elif n.op in Group.READOUT:
            beta = r.bias_steps(n) if "bias" in p.p64[n.name] else np.zeros(T)
            bias = p.p64[n.name].get("bias")
            vals = r.series64(n.inputs[0]) if record else [None] * (T - 1) + [r.seen64(n.inputs[0], T - 1)]
            zero = torch.zeros((r.N, *p.g.shapes[n.output]), dtype=torch.float64)
            out = []
            for t, v in enumerate(vals):
                if not record and t < T - 1:
                    continue
                acc = zero if v is None else v
                out.append(acc + bias * float(beta[t]) if bias is not None and beta[t] else acc)
            sums[n.name] = out
        r.release(i)
        if progress:
            progress(T * (i + 1) // len(order))
    quiescent_at, unsettled = settling(p, r.last_change, r.late, T)
    return {"sums": sums, "stats": r.stats, "proof": r.proof, "quiescent_at": quiescent_at, "unsettled": unsettled}


def settling(p: Plan, last_change: int, late: torch.Tensor, T: int) -> tuple[int | None, list[int] | None]:
    """(quiescent_at, unsettled) of a run whose counts last changed at step ``last_change`` (-1: never) and, for the
    samples in ``late``, within the last ``max_delay + 1`` steps. The step mode's early-stop rule: a run is settled
    once no count has changed for ``max_delay + 1`` steps after the wake phase (the inputs then no longer change, so
    no count ever will, and the readout is final: the ANN's). ``quiescent_at``: the step from which every sample is
    quiet, None if one is not by T; ``unsettled``: the samples that are not (their readout at T is not final).
    (None, None) without a sleep phase (the IF baseline never settles)."""
    s = p.s
    if not s.sleep:
        return None, None
    if s.wake_end > T - 1 - s.max_delay:  # input or biases still on too late for any sample to be proved quiet
        return None, list(range(len(late)))
    unsettled = [int(i) for i in late.nonzero().reshape(-1)]
    return (None if unsettled else max(s.wake_end, last_change + 1)), unsettled
