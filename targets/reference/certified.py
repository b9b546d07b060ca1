"""Exact mode at float32 speed: the reference simulator's count-domain executor, with a proof per spike decision.

**Count domain.** A CIF or IF neuron has no leak and a subtractive reset, so after step t its membrane before
firing is θ (X_t - S_{t-1}), where X_t is its cumulative input over the firing threshold θ plus the pre-charge and
S its count: the new count depends on floor(X_t) alone (``ops._Neuron.count_step``). Connections are linear, so
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
step, this mode k + 1.

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
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from neurocompile.errors import TargetError
from neurocompile.ir import Node
from neurocompile.ops import OPS, tensors
from neurocompile.targets.reference.multistep import CHUNK, shift

U32 = 2.0 ** -24  # unit roundoff, float32 round to nearest
U64 = 2.0 ** -53
MIN_BITS = 4  # mantissa bits per exact piece below which splitting does not pay
# a float64 decision whose error bound is below this (in units of the threshold) is a tie at float64 rounding, taken as
# float64 makes it (the README's boundary cases); above it float64 could put a value a visible part of a level off
TIE = 2.0 ** -20
F32_SAFE = 2.0 ** 100  # float32 terms and sums stay finite below this (float32's largest value is about 2**128)


def gamma(k: int, u: float = U32) -> float:
    """Higham's γ_k: |fl(Σ_k products) - Σ| <= γ_k Σ|products| in any summation order."""
    return k * u / (1 - k * u)


@dataclass
class Branch:
    """One term of a split layer's input: ``coef`` * [pre ops] -> ``syn`` (weights in ``pieces``) -> [post ops] of
    the counts of ``src``, ``delay`` steps late. ``syn`` None: the counts themselves (an identity shortcut)."""

    src: str
    delay: int
    pre: list[Node]
    syn: Node | None
    post: list[Node]
    coef: float
    pieces: list[torch.Tensor] = field(default_factory=list)  # float32 weights: exact pieces, then the remainder
    bound: float = 0.0  # |error| of the float32 term in units of X (the remainder's rounding and what float32 drops)
    mag: float = 0.0    # largest |term| (bounds the rounding of the sum of terms)
    stacked: torch.Tensor | None = None  # the pieces along output channels (one map for all; no groups, no post ops)


@dataclass
class SinkPlan:
    """How a neuron layer's X_t is computed: ``split`` (float32 branches), ``input`` (a map of the network input,
    once, in float64), ``plain`` (the connection map in float64 every step)."""

    mode: str
    branches: list[Branch] = field(default_factory=list)
    input_delay: int = 0


@dataclass
class Source:
    """A node whose cumulative output is ``amp`` times integer counts in [0, cap] (a neuron layer, or a max pool
    over one)."""

    amp: float
    cap: int


class Plan:
    """What the executor needs to know about a lowered graph, made once per simulator; ``None`` from :func:`plan`
    when the graph has a stateful node without a count-domain form (LIF)."""

    def __init__(self, sim, steps: int):
        self.sim, self.g, self.s, self.steps = sim, sim.g, sim.sched, steps
        self.p64 = {n.name: tensors(n, torch.float64, sim.device) for n in sim.order}
        self.sources: dict[str, Source] = {}
        self.sinks: dict[str, SinkPlan] = {}
        self.sat: dict[str, tuple[float, float]] = {}  # neuron -> floor(X) range outside which the count step saturates
        self._terms: dict[str, int] = {}
        self.real: set[str] = set()  # pools over real values: float64 series
        self.pool: dict[tuple, list[torch.Tensor]] = {}  # count tensors to reuse (runs and layers alike)
        for n in sim.order:
            op = OPS[n.op]
            if not op.stateful:
                continue
            if op.spiking:
                amp = op.spike_amplitude(n)
                self.sources[n.name] = Source(amp, op.max_count(n, self.s.t_wake, steps))
                # count_step clips floor(X) - S to ±γ (IF: [0, 1]) and S lies in [0, cap]: floor(X) <= -γ or
                # >= cap + γ gives the same step as any value beyond
                g = int(op.attr(n, "gamma") or 1)
                self.sat[n.name] = (float(-g), float(self.sources[n.name].cap + g))
                self.sinks[n.name] = self._sink_plan(n)
            else:  # the inhibition pool: its forward (max over windows) of the cumulative input
                br = self._branches(n.inputs[0], 1.0)
                pure = (br is not None and len(br) == 1 and br[0].syn is None and br[0].coef > 0
                        and "bias" not in n.params)
                if pure:  # max over a window of amp * S is amp * the max of S: counts again
                    self.sources[n.name] = Source(br[0].coef, self.sources[br[0].src].cap)
                    self.sinks[n.name] = SinkPlan("pool", br)
                else:
                    self.real.add(n.name)
        self.last_use: dict[str, int] = {}  # source -> index in the order of the last node reading its counts
        for i, n in enumerate(sim.order):
            if n.name in self.sources:
                self.last_use.setdefault(n.name, i)
            if OPS[n.op].sink:
                for src in self._reads(n.inputs[0]):
                    self.last_use[src] = i

    def _reads(self, tensor: str) -> set[str]:
        """The sources whose counts the value of ``tensor`` is computed from."""
        n = self._producer(tensor)
        if n.name in self.sources:
            return {n.name}
        return set().union(*(self._reads(t) for t in n.inputs)) if n.inputs and n.name not in self.real else set()

    # ---- structure ---------------------------------------------------------------------------------
    def _producer(self, tensor: str) -> Node:
        if not hasattr(self, "_prod"):
            self._prod = self.g.producers()
        return self._prod[tensor]

    def _branches(self, tensor: str, coef: float, delay: int = 0) -> list[Branch] | None:
        """The input of a sink as split branches: Adds (with their gains) over [exact ops] -> Conv/Dense -> [exact
        ops] over a count source; None where another op stands between."""
        n = self._producer(tensor)
        op = OPS[n.op]
        delay += self.s.delay.get(n.name, 0)
        if n.name in self.sources:
            return [Branch(n.name, delay, [], None, [], coef * self.sources[n.name].amp)]
        if op.role != "affine" or op.stateful or not n.inputs:
            return None
        if op.merge and op.additive and "const" not in n.params:  # an Add
            out: list[Branch] = []
            bal = self.s.balance.get(n.name, [0] * len(n.inputs))
            for t, k, d in zip(n.inputs, op.input_gains(n), bal):
                sub = self._branches(t, coef * float(k), delay + d)
                if sub is None:
                    return None
                out += sub
            return out
        if len(n.inputs) != 1 or op.merge:
            return None
        sub = self._branches(n.inputs[0], coef, delay)
        if sub is None or len(sub) != 1:
            return None
        b = sub[0]
        if op.exact_in_integers and not n.params:
            (b.post if b.syn is not None else b.pre).append(n)
            return [b]
        if op.synaptic and "weight" in n.params and b.syn is None:
            b.syn = n
            return [b]
        return None

    def _input_only(self, tensor: str, delay: int = 0) -> set[int] | None:
        """The total delays of the paths from the network input to ``tensor``, or None if another source feeds it."""
        n = self._producer(tensor)
        delay += self.s.delay.get(n.name, 0)
        if not n.inputs:
            return {delay}
        if n.name in self.sources or n.name in self.real or OPS[n.op].stateful:
            return None
        bal = self.s.balance.get(n.name, [0] * len(n.inputs))
        out: set[int] = set()
        for t, d in zip(n.inputs, bal):
            sub = self._input_only(t, delay + d)
            if sub is None:
                return None
            out |= sub
        return out

    def _sink_plan(self, n: Node) -> SinkPlan:
        if self.sim.device.type != "cpu":  # CUDA convolutions may run in TF32: no bound holds
            return SinkPlan("plain")
        delays = self._input_only(n.inputs[0])
        if delays is not None:
            return SinkPlan("input", input_delay=delays.pop()) if len(delays) == 1 else SinkPlan("plain")
        theta = OPS[n.op].firing_threshold(n)
        br = self._branches(n.inputs[0], 1.0 / theta)
        if br is None or not all(self._split(b, n) for b in br):
            return SinkPlan("plain")
        if not sum(b.mag for b in br) + self.const_mag(n) < F32_SAFE:  # float32 sums could overflow (or be NaN)
            return SinkPlan("plain")
        return SinkPlan("split", br)

    def const_mag(self, n: Node) -> float:
        """The largest |β b / θ + pre-charge| of sink ``n`` over the run (β <= T steps of bias)."""
        op, p = OPS[n.op], self.p64[n.name]
        b = float(p["bias"].abs().max()) * self.steps if "bias" in p and p["bias"].numel() else 0.0
        return b / op.firing_threshold(n) + abs(float(op.attr(n, "shift") or 0.0))

    def terms(self, tensor: str) -> int:
        """A bound on the roundings float64 makes along the map from sources and input to ``tensor`` (Higham's K:
        per node the products and sums of one output, a weighted op's fan-in, each node counted once); the
        error of the float64 value is at most γ_K times the map applied to magnitudes (:meth:`Run.mag64`)."""
        seen: set[str] = set()

        def walk(t: str) -> int:
            n = self._producer(t)
            if n.name in seen or not n.inputs or n.name in self.sources:
                return 0
            seen.add(n.name)
            op = OPS[n.op]
            if op.exact_in_integers and not n.params:  # moves or selects: no rounding
                k = 0
            elif "weight" in n.params:  # (out, in...) layouts: Conv, Dense
                k = int(np.prod(np.shape(n.params["weight"])[1:])) + 1
            else:  # any other linear op: at most every input element of a sample, plus a scale
                k = sum(int(np.prod(self.g.shapes[i])) for i in n.inputs) + 2
            return k + sum(walk(i) for i in n.inputs)

        if tensor not in self._terms:
            self._terms[tensor] = walk(tensor)
        return self._terms[tensor]

    def _split(self, b: Branch, sink: Node) -> bool:
        """Fill ``b.pieces``, ``b.bound``, ``b.mag``; False if the weights cannot be split usefully."""
        cap = self.sources[b.src].cap
        if b.syn is None:  # coef * S in float32: two roundings (coef, product)
            b.mag = abs(b.coef) * cap
            b.bound = 2.2 * U32 * b.mag
            return True
        w = np.asarray(b.syn.params["weight"], np.float64) * b.coef
        rows = w.reshape(w.shape[0], -1)
        K = rows.shape[1]
        bits = math.floor(math.log2(2.0 ** 24 / (K * max(cap, 1)))) - 1
        if bits < MIN_BITS:
            return False
        # a second exact piece (one more map per step) where the remainder's bound would make the float64 layer run
        # for more than one sample in eight (level 2: about 2 δ decisions per neuron and step come that close)
        neurons = int(np.prod(self.g.shapes[sink.inputs[0]]))
        for n_exact in (1, 2):
            pieces, lo, bound = _split_rows(rows, bits, n_exact, K, cap)
            if bound * 2 * neurons * 8 < 1:
                break
        b.mag = cap * float(np.abs(rows).sum(1).max())
        b.bound = bound
        dev, shape = self.sim.device, w.shape
        b.pieces = [torch.tensor(p.reshape(shape), dtype=torch.float32, device=dev) for p in pieces]
        b.pieces.append(torch.tensor(lo.reshape(shape), dtype=torch.float32, device=dev))
        if int(OPS[b.syn.op].attr(b.syn, "groups") or 1) == 1 and not b.post:
            b.stacked = torch.cat(b.pieces)
        return self._probe_exact(b, cap)

    def feeding_layer(self, n: Node) -> str | None:
        """The weighted node nearest upstream of sink ``n`` (what an error about its input names)."""
        t = n.inputs[0] if n.inputs else None
        while t is not None:
            m = self._producer(t)
            if "weight" in m.params:
                return m.name
            t = m.inputs[0] if m.inputs and m.name not in self.sources else None
        return None

    def _probe_exact(self, b: Branch, cap: int) -> bool:
        """The exact pieces give float64's numbers in float32 on random counts (a backend that transforms its
        inputs, as Winograd convolutions do, would not)."""
        src = self.g.nodes[b.src]
        shape = self.g.shapes[src.output]
        gen = torch.Generator(device="cpu").manual_seed(0)
        S = torch.randint(0, cap + 1, (4, *shape), generator=gen).to(self.sim.device)
        for piece in b.pieces[:-1]:
            got = self.map_branch(b, S.float(), piece).double()
            want = self.map_branch(b, S.double(), piece.double())
            if not torch.equal(got, want):
                return False
        return True

    def map_branch(self, b: Branch, S: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """A branch's map on counts ``S`` with ``weight`` in place of its synaptic weights."""
        x = S
        for n in b.pre:
            x = OPS[n.op].linear(n, [x], {})
        x = OPS[b.syn.op].linear(b.syn, [x], {"weight": weight})
        for n in b.post:
            x = OPS[n.op].linear(n, [x], {})
        return x


def _split_rows(rows: np.ndarray, bits: int, n_exact: int, K: int, cap: int):
    """Weights (out, K) as ``n_exact`` pieces of ``bits`` mantissa bits per row on power-of-two grids (exact maps of
    counts <= cap in float32) and a float32 remainder; with the bound on the remainder's error for counts <= cap."""
    rest, pieces = rows.copy(), []
    for _ in range(n_exact):
        top = np.abs(rest).max(1, keepdims=True)
        e = np.where(top > 0, np.frexp(np.where(top > 0, top, 1.0))[1], 0)  # top < 2**e
        grid = np.ldexp(1.0, e - bits)
        piece = np.round(rest / grid) * grid
        pieces.append(piece)
        rest = rest - piece  # exact: both lie on the grid of rest's own precision
    lo = rest.astype(np.float32)
    dropped = rest - lo.astype(np.float64)
    bound = (gamma(K) * cap * float(np.abs(lo.astype(np.float64)).sum(1).max())
             + cap * float(np.abs(dropped).sum(1).max())) * (1 + 1e-6)
    return pieces, lo, bound


def plan(sim, steps: int) -> Plan | None:
    """The count-domain plan of ``sim``'s graph, or None if a stateful node has no count-domain form."""
    if any(OPS[n.op].stateful and not OPS[n.op].count_domain for n in sim.order):
        return None
    if len(sim.g.input_nodes) != 1:
        return None
    return Plan(sim, steps)


# ---- running -----------------------------------------------------------------------------------------
class Run:
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

    # a node's cumulative output as its consumers see it at step t (its own delay applied), float64
    def seen64(self, tensor: str, t: int, idx: torch.Tensor | None = None) -> torch.Tensor | None:
        p = self.p
        n = p._producer(tensor)
        t -= p.s.delay.get(n.name, 0)
        if t < 0:
            return None
        if not n.inputs:
            k = int(self.input_seen[t])
            return None if k == 0 else self._x64[idx] * k if idx is not None else self._x64 * k
        if n.name in p.sources:
            c = self.counts[n.name][t]
            if c is None:
                return None
            return (c[idx] if idx is not None else c).double() * p.sources[n.name].amp
        if n.name in self.real:
            v = self.real[n.name][t]
            return None if v is None else (v[idx] if idx is not None else v)
        bal = p.s.balance.get(n.name, [0] * len(n.inputs))
        xs = [self.seen64(i, t - d, idx) for i, d in zip(n.inputs, bal)]
        if all(v is None for v in xs):
            return None
        ref = next(v for v in xs if v is not None)
        xs = [v if v is not None else torch.zeros_like(ref) for v in xs]
        return OPS[n.op].linear(n, xs, p.p64[n.name])

    def mag64(self, tensor: str, t: int, idx: torch.Tensor) -> torch.Tensor | None:
        """The map of ``seen64`` applied to magnitudes (|weights| on |inputs|, each input of a merge on its own) for
        the samples ``idx``: Σ|w·x| per neuron, what float64's rounding of ``seen64`` is proportional to."""
        p = self.p
        n = p._producer(tensor)
        t -= p.s.delay.get(n.name, 0)
        if t < 0:
            return None
        if not n.inputs:
            k = int(self.input_seen[t])
            return None if k == 0 else self._x64[idx].abs() * k
        if n.name in p.sources:
            c = self.counts[n.name][t]
            return None if c is None else c[idx].double() * abs(p.sources[n.name].amp)
        bal = p.s.balance.get(n.name, [0] * len(n.inputs))
        xs = [self.mag64(i, t - d, idx) for i, d in zip(n.inputs, bal)]
        if n.name in p.real:  # max over windows of the cumulative input plus bias: monotone, errors pass through
            x = xs[0] if xs[0] is not None else torch.zeros((len(idx), *p.g.shapes[n.inputs[0]]), dtype=torch.float64,
                                                            device=p.sim.device)
            if "bias" in p.p64[n.name]:
                x = x + p.p64[n.name]["bias"].abs() * float(self.bias_steps(n)[t])
            return OPS[n.op].forward(n, [x], {})
        return _abs_linear(n, xs, p.p64[n.name])

    def worst_mag64(self, tensor: str) -> torch.Tensor:
        """A bound on :meth:`mag64` for every sample and step, shape (1, ...): counts at their cap, the input at its
        largest magnitude on every input step, biases on for all T steps."""
        if tensor in self._worst:
            return self._worst[tensor]
        p = self.p
        n = p._producer(tensor)
        shape = (1, *p.g.shapes[n.output])
        if not n.inputs:
            k = int(self.input_seen[-1]) if len(self.input_seen) else 0
            out = torch.full(shape, float(self._x64.abs().max()) * k if self._x64.numel() else 0.0, dtype=torch.float64,
                             device=p.sim.device)
        elif n.name in p.sources:
            out = torch.full(shape, p.sources[n.name].cap * abs(p.sources[n.name].amp), dtype=torch.float64,
                             device=p.sim.device)
        else:
            xs = [self.worst_mag64(i) for i in n.inputs]
            if n.name in p.real:
                x = xs[0] + p.p64[n.name]["bias"].abs() * float(self.T) if "bias" in p.p64[n.name] else xs[0]
                out = OPS[n.op].forward(n, [x], {})
            else:
                out = _abs_linear(n, xs, p.p64[n.name])
        self._worst[tensor] = out
        return out

    def float64_bound(self, n: Node, k_const: float) -> tuple[Callable, Callable]:
        """For sink ``n``: (worst(t), per_sample(t, samples)) bounds on the error of its X_t computed in float64 from
        the network input or counts (``seen64`` / θ plus the bias constant, ``k_const`` bounding its magnitude): a
        worst case over samples (shape (1, ...)) and one per neuron for the samples given."""
        p, theta = self.p, OPS[n.op].firing_threshold(n)
        g = gamma(p.terms(n.inputs[0]) + 3, U64) * (1 + 1e-6)  # + 3: the division by θ, the constant, its rounding
        memo: list = []

        def worst(t: int) -> torch.Tensor:  # the same for every step
            if not memo:
                memo.append(g * (self.worst_mag64(n.inputs[0]) / theta + k_const))
            return memo[0]

        def per_sample(t: int, samples: torch.Tensor) -> torch.Tensor:
            m = self.mag64(n.inputs[0], t, samples)
            m = (torch.zeros((len(samples), *p.g.shapes[n.inputs[0]]), dtype=torch.float64, device=p.sim.device)
                 if m is None else m)
            return g * (m / theta + k_const)
        return worst, per_sample

    def series64(self, tensor: str) -> list:
        """``seen64`` at every step, each distinct value once (steps whose inputs did not change share it)."""
        out, last_key, last = [], None, None
        for t in range(self.T):
            key = self._key(tensor, t)
            if key != last_key:
                last_key, last = key, self.seen64(tensor, t)
            out.append(last)
        return out

    def _key(self, tensor: str, t: int) -> tuple:
        """What ``seen64(tensor, t)`` depends on: the identities of the source tensors it reads."""
        p = self.p
        n = p._producer(tensor)
        t -= p.s.delay.get(n.name, 0)
        if t < 0:
            return ()
        if not n.inputs:
            return (("in", int(self.input_seen[t])),)
        if n.name in p.sources:
            return ((n.name, id(self.counts[n.name][t])),)
        if n.name in self.real:
            return ((n.name, id(self.real[n.name][t])),)
        bal = p.s.balance.get(n.name, [0] * len(n.inputs))
        return tuple(k for i, d in zip(n.inputs, bal) for k in self._key(i, t - d))

    def bias_steps(self, n: Node) -> np.ndarray:
        """β_t: the steps up to t on which the node's bias was on."""
        return np.cumsum([1 if self.p.s.bias_on(n.name, t) else 0 for t in range(self.T)])

    # ---- layers --------------------------------------------------------------------------------------
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
            torch.sub(new.reshape(-1), S.reshape(-1), out=d)
            mag = torch.dot(d, d) if binary else d.abs().sum()
            if mag == 0:
                self.p.pool.setdefault(tuple(S.shape), []).append(new)
                series.append(series[-1] if series else None)
                continue
            stats += torch.stack([mag.double(), d.sum().double()])
            self.last_change = max(self.last_change, t)
            if t >= self.T - 1 - p.s.max_delay:  # per sample only at the end: what settling() needs
                self.late |= d.view(self.N, -1).ne(0).any(1)
            S = new
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

    def input_map64(self, tensor: str) -> torch.Tensor:
        """The connection map from the network input to ``tensor`` applied to x once (float64, no delays)."""
        n = self.p._producer(tensor)
        if not n.inputs:
            return self._x64
        return OPS[n.op].linear(n, [self.input_map64(i) for i in n.inputs], self.p.p64[n.name])

    def _floors(self, n: Node, sp: SinkPlan) -> Callable[[int], torch.Tensor]:
        """floor(X_t) for each step t of sink ``n`` (float32 integers), each distinct X_t computed once, in step order
        (the layer's terms for all steps were mapped before)."""
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

        if sp.mode == "plain":
            vals = self.series64(n.inputs[0])
            keys = [(id(vals[t]), int(beta[t])) for t in range(T)]
            self.proof["float64 layers"] += 1

            def make(t: int) -> torch.Tensor:
                X = vals[t] / theta if vals[t] is not None else torch.zeros(shape, dtype=torch.float64,
                                                                            device=p.sim.device)
                return self._decide64(X + const(int(beta[t]))[0], final(t), sat, where)
        elif sp.mode == "input":
            c64 = self.input_map64(n.inputs[0]) / theta
            c32, mag_c = c64.float(), float(c64.abs().max()) if c64.numel() else 0.0
            ks = [int(self.input_seen[t - sp.input_delay]) if t >= sp.input_delay else 0 for t in range(T)]
            keys = [(ks[t], int(beta[t])) for t in range(T)]

            def make(t: int) -> torch.Tensor:
                k, (k64, k32, kmag) = ks[t], const(int(beta[t]))
                if not k * mag_c + kmag < F32_SAFE:  # float32 could overflow: this step in float64
                    return self._decide64(c64 * k + k64, final(t), sat, where)
                torch.mul(c32, float(k), out=X) if k else X.zero_()
                X.add_(k32)
                # float32's rounding of the float64 map, and that map's own rounding (large only where terms cancel)
                delta = 3.3 * U32 * (k * mag_c + kmag) + float(final(t)[0].max())
                return self._certify(X, F, delta, lambda idx: c64[idx] * k + _at(k64, idx), None, sat, final(t), where)
        else:
            srcs = [shift(self.counts[b.src], b.delay) for b in sp.branches]
            keys = [(tuple(id(src[t]) for src in srcs), int(beta[t])) for t in range(T)]
            mapped = [self._map_distinct(b, src) for b, src in zip(sp.branches, srcs)]
            bound = sum(b.bound for b in sp.branches)
            mag_terms = sum(b.mag for b in sp.branches)
            n_terms = sum(len(b.pieces) if b.syn is not None else 1 for b in sp.branches) + 1

            def make(t: int) -> torch.Tensor:
                parts = [q for m, src in zip(mapped, srcs) if src[t] is not None for q in m[id(src[t])]]
                k64, k32, kmag = const(int(beta[t]))
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
                # level 1 sums n_terms float64 values, each within the float32 bound of its exact value
                delta1 = bound + (n_terms + 1) * U64 * mag

                def level1(idx):
                    v = _at(k64, idx)
                    for q in parts:
                        v = v + q[idx].double()
                    return v

                def level2(samples: torch.Tensor) -> torch.Tensor:
                    lin = self.seen64(n.inputs[0], t, samples)
                    X64 = (lin / theta if lin is not None else torch.zeros((len(samples), *shape[1:]),
                                                                          dtype=torch.float64))
                    return X64 + k64

                return self._certify(X, F, delta, level1, (delta1, level2), sat, final(t), where)

        cache: dict = {}

        def floors(t: int) -> torch.Tensor:
            key = keys[t]
            if key not in cache:
                cache.clear()  # steps come in order: only the last distinct value is read again
                cache[key] = make(t)
            return cache[key]
        return floors

    def _certify(self, X: torch.Tensor, F: torch.Tensor, delta: float, level1: Callable, level2,
                 sat: tuple[float, float] | None = None, final: tuple | None = None, where=None) -> torch.Tensor:
        """floor(X) into ``F``, where X (float32) is within ``delta`` of the exact value; decisions closer than that to
        an integer are made again from ``level1`` (float64 values at those indices; ``level2`` = (its bound, the
        layer in float64 for given samples) where even those are not enough). ``sat``: the range of floor(X) outside
        which the count step saturates (no decision there is close); ``final``: bounds on the error of the last level's
        float64 values (:meth:`_refuse_undecided`). ``X`` is scratch."""
        lo_s, hi_s = sat if sat is not None else (-math.inf, math.inf)
        torch.floor(X, out=F)
        self.proof["decisions"] += X.numel()
        r = X.sub_(F)  # the fractional part, exact: in [0, 1)
        flat = r.view(r.shape[0], -1)
        lo, hi = flat.amin(1), flat.amax(1)  # the samples with a close call (torch's aminmax(dim) is slower)
        rows = ((lo < delta) | (hi > 1 - delta)).nonzero(as_tuple=True)[0]
        if len(rows) == 0:
            return F
        near = r[rows]
        close = (near < delta) | (near > 1 - delta)
        if sat is not None:  # X in [F, F + 1): beyond the saturation range by more than delta, no error matters
            Fr = F[rows]
            close &= (Fr + 1 > lo_s - delta) & (Fr < hi_s + delta)
        sub = close.nonzero(as_tuple=True)
        if len(sub[0]) == 0:
            return F
        idx = (rows[sub[0]], *sub[1:])
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
        elif op.role == "readout":
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


def _unsure(v: torch.Tensor, f: torch.Tensor, delta, lo: float, hi: float) -> torch.Tensor:
    """Where values ``v`` (floors ``f``), each within ``delta`` of the exact one, may floor otherwise: close to an
    integer and not saturated beyond [lo, hi] (:meth:`Run._certify`); a value that is not finite always."""
    frac = v - f
    close = (frac < delta) | (frac > 1 - delta)
    return (close & (f + 1 > lo - delta) & (f < hi + delta)) | ~torch.isfinite(v)


def _abs_linear(n: Node, xs: list, p: dict) -> torch.Tensor | None:
    """The linear part of ``n`` on magnitudes ``xs`` (None: zero) with |params|, each data input on its own (the others
    zero) and the results' magnitudes summed: a bound on Σ|w·x| per output, a difference of inputs included."""
    live = [i for i, x in enumerate(xs) if x is not None]
    if not live:
        return None
    op, pa = OPS[n.op], {k: v.abs() for k, v in p.items()}
    if len(xs) == 1:
        return op.linear(n, xs, pa).abs()
    out = None
    for i in live:
        parts = [x if j == i else torch.zeros_like(xs[i] if x is None else x) for j, x in enumerate(xs)]
        y = op.linear(n, parts, pa).abs()
        out = y if out is None else out + y
    return out


def _at(const: torch.Tensor, idx: tuple) -> torch.Tensor:
    """A broadcastable per-channel constant at the indices of a (N, C, ...) tensor."""
    c = const.reshape(-1)
    return c[idx[1]] if c.numel() > 1 else c.expand(len(idx[0]))
