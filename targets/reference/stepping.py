"""The one sink-stepping rule: how a sink of a lowered graph (neuron layer, inhibition pool, readout) advances a step.

At run step t a sink whose synapses bring the input current x

1. is silent from its end on (:func:`passes.blocks.sink_ends`: a student's sink past its own T' steps), its state
   kept: it sends nothing and counts nothing;
2. adds its constant current ``bias`` (every constant term of its block, lowered there by lower_to_blocks) only in its
   wake window (``schedule.bias_on``: science.md's WSC, every layer's bias on in the wake phase, zero in sleep); an op
   that ``fuses_bias`` (CIF) is handed it, in one sample's layout, and adds it in its step with the same roundings;
3. a readout passes that current on (the target sums it over the run); a neuron or pool steps by its op,
   ``op.step(node, state, current, t_w)`` with t_w the wake steps it has counted (``schedule.wake_steps_seen``), its
   state made by ``op.init_state`` at its first step; an op that ``rests_when_silent`` (the inhibition pool) is not
   stepped on a silent input without bias (:meth:`SinkStep.rests`): it would send zeros and keep its state.

The step-by-step simulator and the multi-step mode both step their sinks through :class:`SinkStep`, so the rule is
written once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import Op, op_of
from neurocompile.ir.schedule import WakeSleepSchedule
from neurocompile.passes.blocks import sink_ends

# (node, state of all sinks, input current, wake steps seen, bias for an op that fuses it) -> the values it sends
Advance = Callable[..., torch.Tensor]


def advance(n: Node, state: dict, x: torch.Tensor, wake_seen: int, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Rule 3 for a stateful sink: ``op.step`` on the current ``x`` (plus ``bias``, given only to an op that
    ``fuses_bias``), its state (in ``state`` under its name) made by ``op.init_state`` at its first step."""
    op = op_of(n)
    st = state.get(n.name)
    if st is None:
        st = state[n.name] = op.init_state(n, x)
    return op.step(n, st, x, wake_seen) if bias is None else op.step(n, st, x, wake_seen, bias)


@dataclass(frozen=True)
class SinkStep:
    """One sink of a ``T``-step run: its op, its constant current (None: none), the step from which it is silent."""

    node: Node
    op: Op
    schedule: WakeSleepSchedule
    bias: torch.Tensor | None
    end: int
    fused_bias: torch.Tensor | None = None  # ``bias`` in one sample's layout, for an op that fuses_bias

    def rests(self, t: int, silent: Callable[[], bool]) -> bool:
        """Rule 3's rest: at step ``t``, with an input all zeros (``silent()``, asked only of an op that rests), the
        sink sends zeros and keeps its state, so it need not step."""
        return self.op.rests_when_silent and not (self.bias is not None and self.schedule.bias_on(self.node.name, t)) \
            and silent()

    def __call__(self, x: torch.Tensor, t: int, state: dict, step: Advance = advance,
                 out: torch.Tensor | None = None) -> torch.Tensor | None:
        """The values the sink sends at step ``t`` on input current ``x`` (None: silent from its end). ``step``: how a
        stateful sink steps (:func:`advance`, or a caller's wrapper of it that also counts spikes); ``out``: a
        scratch tensor for the biased current (a readout's output is then ``out`` itself)."""
        if t >= self.end:
            return None
        name = self.node.name
        if self.bias is not None and self.schedule.bias_on(name, t):
            if self.fused_bias is not None:
                return step(self.node, state, x, self.schedule.wake_steps_seen(name, t), self.fused_bias)
            x = x + self.bias if out is None else torch.add(x, self.bias, out=out)
        if not self.op.stateful:  # the readout
            return x
        return step(self.node, state, x, self.schedule.wake_steps_seen(name, t))


def sink_steps(g: Graph, order: list[Node], params: dict[str, dict], T: int) -> dict[str, SinkStep]:
    """The :class:`SinkStep` of every sink in ``order`` (nodes of the lowered graph ``g``) for a ``T``-step run,
    with the bias from ``params`` (each node's tensors in the run's dtype and device)."""
    ends = sink_ends(g, T)
    steps = {}
    for n in order:
        op = op_of(n)
        if op.sink:
            bias = params[n.name].get("bias")
            fused = bias.expand(g.shapes[n.inputs[0]]).contiguous() if bias is not None and op.fuses_bias else None
            steps[n.name] = SinkStep(n, op, g.schedule, bias, ends.get(n.name, T), fused)
    return steps
