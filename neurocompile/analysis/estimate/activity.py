"""What each sender of a lowered graph sends on each step of a reference simulation: the estimate's activity.

Spiking layers are read from the simulator's records (``SimResult.layers``, ``record_layers=True``) and the input
from ``x`` and the schedule. What the simulator does not record is rebuilt from those, the least needed:

- relays (the output of a connection that feeds another connection of its block): the linear maps replayed on
  the recorded values, with the schedule's delays and branch balancing;
- senders that are sinks without spikes (inhibition pools, StepMaxPool, LI layers): stepped by the one
  sink-stepping rule (``targets/reference/stepping.py``) on their replayed input current.

A record of the values every stateful sink sends (not only spiking layers) would remove the second; a record of the
relay tensors, or of the steps in which each of their elements is nonzero, the first.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import op_of, tensors
from neurocompile.targets.reference.stepping import sink_steps


def _shift(y: torch.Tensor, d: int) -> torch.Tensor:
    """A (T, N, ...) series delayed by ``d`` steps (zeros first)."""
    if not d:
        return y
    z = torch.zeros_like(y[:d])
    return torch.cat([z, y[:-d]])[: len(y)]


class _Activity:
    """Per-step values sent by each sender of the lowered graph ``g`` over a run of ``T`` steps: neuron layers
    from the simulation's records ``res``, the input from ``x``, pools and relays replayed from those (the linear
    part with the schedule's delays, sinks by the sink-stepping rule)."""

    def __init__(self, g: Graph, x: np.ndarray, res: Any, T: int):
        self.g, self.res, self.T = g, res, T
        self.s = g.schedule
        self.prod = g.producers()
        self.N = len(x)
        self.x = self.s.encode_input(torch.as_tensor(np.asarray(x), dtype=torch.float64))
        self._sinks: dict[str, torch.Tensor] = {}
        self._params: dict[str, dict[str, torch.Tensor]] = {}

    def input_steps(self) -> int:
        return sum(1 for t in range(self.T) if self.s.input_on(t))

    def messages(self, tensor: str) -> np.ndarray:
        """Steps in which each element of ``tensor`` sends something, summed over the batch (the tensor's shape)."""
        p = self.prod[tensor]
        if not p.inputs:
            return (self.x != 0).sum(0).numpy().astype(np.float64) * self.input_steps()
        if p.output == tensor and op_of(p).spiking:
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
        """The values the sink ``n`` sends on each step, stepped over the run by the sink-stepping rule on its
        replayed input current (silent past its end)."""
        if n.name in self._sinks:
            return self._sinks[n.name]
        step = sink_steps(self.g, [n], {n.name: self.params(n)}, self.T)[n.name]
        xin = self.series(n.inputs[0])
        silent = torch.zeros((self.N, *self.g.shapes[n.output]), dtype=torch.float64)
        state: dict[str, dict] = {}
        out = []
        with torch.no_grad():
            for t in range(self.T):
                y = step(xin[t].clone(), t, state)  # clone: a neuron steps in place
                out.append(silent if y is None else y.clone())
        y = torch.stack(out)
        if not op_of(n).spiking:  # a spiking layer's record comes from the simulation; keep only what is not recorded
            self._sinks[n.name] = y
        return y
