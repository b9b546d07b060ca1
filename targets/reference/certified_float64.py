"""The float64 side of the exact mode: a layer's cumulative input recomputed in float64 from the counts and the
network input (what level 2 and the plain layers decide on), and the bounds on float64's own rounding of it (Higham's
γ_K times the map applied to magnitudes) that every float64 decision is checked against.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from neurocompile.ir import Node
from neurocompile.ir.ops import OPS
from neurocompile.targets.reference.certified_plan import U64, gamma


class Float64Values:
    """Mixed into :class:`certified.Run`: reads its plan ``p``, batch (``N``, ``T``, ``_x64``, ``input_seen``), count
    series ``counts`` and real-valued pools ``real``."""

    def _lagged(self, tensor: str, t: int):
        """(producer of ``tensor``, step t less the producer's own delay: the step its output left it)."""
        n = self.p._producer(tensor)
        return n, t - self.p.s.delay.get(n.name, 0)

    def _source64(self, n, t: int, idx: torch.Tensor | None, magnitude: bool) -> torch.Tensor | None:
        """The input's or a counting source's cumulative output at (delayed) step t for the samples ``idx`` (None:
        all), float64; with ``magnitude`` its absolute value (what :meth:`mag64` propagates)."""
        if not n.inputs:
            k = int(self.input_seen[t])
            if k == 0:
                return None
            x = self._x64[idx] if idx is not None else self._x64
            return (x.abs() if magnitude else x) * k
        c = self.counts[n.name][t]
        if c is None:
            return None
        amp = self.p.sources[n.name].amp
        return (c[idx] if idx is not None else c).double() * (abs(amp) if magnitude else amp)

    # a node's cumulative output as its consumers see it at step t (its own delay applied), float64
    def seen64(self, tensor: str, t: int, idx: torch.Tensor | None = None) -> torch.Tensor | None:
        p = self.p
        n, t = self._lagged(tensor, t)
        if t < 0:
            return None
        if not n.inputs or n.name in p.sources:
            return self._source64(n, t, idx, magnitude=False)
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
        n, t = self._lagged(tensor, t)
        if t < 0:
            return None
        if not n.inputs or n.name in p.sources:
            return self._source64(n, t, idx, magnitude=True)
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

    def input_map64(self, tensor: str) -> torch.Tensor:
        """The connection map from the network input to ``tensor`` applied to x once (float64, no delays)."""
        n = self.p._producer(tensor)
        if not n.inputs:
            return self._x64
        return OPS[n.op].linear(n, [self.input_map64(i) for i in n.inputs], self.p.p64[n.name])


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
