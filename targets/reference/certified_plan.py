"""The count-domain plan of the exact mode: per neuron layer how its X_t is computed (split float32 weight pieces
exact on counts, a map of the network input, or the plain map in float64), each count source's amplitude and cap, and
the bounds the proof reads (certified.py describes the method).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from neurocompile.ir import Node, fused_cif
from neurocompile.ir.ops import OPS, Group, tensors
from neurocompile.targets.reference.event_driven import EventWeights, event_conv, event_weights

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
    events: EventWeights | None = None  # ``stacked`` for the event-driven map of the counts' changes (no pre ops)
    event_bound: float = 0.0  # ``bound`` where the maps were summed from the changes (certified.py's _map_changes)
    lo64: torch.Tensor | None = None  # the remainder piece in float64, made on first use (certified.py's remainder_at)


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
                g = op.spikes_per_step(n)
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
        if n.op not in Group.AFFINE or op.stateful or not n.inputs:
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
            if not b.pre and fused_cif.loaded():
                b.events = event_weights(self.g, b.syn, {"weight": b.stacked})
        if b.events is not None:
            # the map of step t summed as the last step's plus the map of the change ΔS_t: |ΔS_t| <= cap, so every
            # partial sum of an exact piece stays on its grid below 2**24 of it (exact); the remainder's sum over ΔS_t
            # is rounded as a map of counts is (γ_K), and adding it once more (u), on each of at most T steps after a
            # start that is within ``bound`` (a dense map, or zero)
            b.event_bound = bound + self.steps * (gamma(K) + 2 * U32) * cap * float(
                np.abs(lo.astype(np.float64)).sum(1).max()) * (1 + 1e-6)
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
        if b.events is not None:  # the event-driven map too, on signed changes in [-cap, cap] (a tenth nonzero)
            dS = torch.randint(-cap, cap + 1, S.shape, generator=gen) * (torch.rand(S.shape, generator=gen) < 0.1)
            got = event_conv(b.events, dS.float(), self.g.shapes[b.syn.output][1:], most=1.0)
            want = self.map_branch(b, dS.double(), b.stacked.double())
            exact = (len(b.pieces) - 1) * b.pieces[0].shape[0]  # the exact pieces' output channels come first
            if got is None or not torch.equal(got[:, :exact].double(), want[:, :exact]):
                b.events = None
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
