"""WakeSleepSchedule: when input flows, when biases are on, and how late each layer's data arrives.

Stored in the IR as ``Graph.schedule`` (saved and loaded by graph.py as its dict form, ``to_dict``) so that targets
read its fields and never re-derive them.
Step indices are 0-based. Node ``n``'s data from wake step 0 reaches its output at step
``arrival[n]``; its bias (if any) is added on steps ``[arrival[n], arrival[n] + t_wake)`` (always,
for the IF baseline, which has no sleep phase); a CIF neuron counts its wake steps in that window.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


def in_wake_window(t: int, arrival: int, t_wake: int, sleep: bool) -> bool:
    """Whether step ``t`` (0-based, of one sample) lies in the wake window of a node whose data first
    arrives at ``arrival``: its bias is on and a CIF neuron counts the step. Without a sleep phase (the
    IF baseline) every step is a wake step. The one definition of the gating rule (science.md, WSC)."""
    return True if not sleep else arrival <= t < arrival + t_wake


def wake_steps_counted(t: int, arrival: int, t_wake: int, sleep: bool) -> int:
    """Wake steps a neuron has counted after step ``t`` (t_w in science.md), frozen during sleep."""
    return max(0, min(t - arrival + 1, t_wake)) if sleep else t + 1


@dataclass
class WakeSleepSchedule:
    t_wake: int                          # wake steps: input injected, biases on (= L)
    steps: int                           # total steps T (wake + sleep)
    synapse_delay: int = 0               # steps each synaptic layer delays its output (Lava: 1)
    sleep: bool = True                   # False for the IF baseline: input and biases on every step
    inputs: list[str] = field(default_factory=list)            # nodes that take the input current
    gated_bias: list[str] = field(default_factory=list)        # nodes whose constant term is wake-only
    delay: dict[str, int] = field(default_factory=dict)        # per-node output delay (synaptic + the network's own)
    own_delay: dict[str, int] = field(default_factory=dict)    # the part of it the network computes (StepDelay)
    arrival: dict[str, int] = field(default_factory=dict)      # per-node first arrival step
    balance: dict[str, list[int]] = field(default_factory=dict)  # merge node -> extra delay per input
    depth: int = 0                       # synaptic layers on the longest path
    predicted_settle: int = 0            # step by which the schedule predicts the readout is final
    settle_bound: int | None = None      # T by which the readout is proved final (CIF; None: IF baseline, LIF)
    input_scale: float | None = None     # fixed point: the input current is round(x * input_scale)
    readout_scale: float = 1.0           # fixed point: stored readout = real readout * readout_scale

    def bias_on(self, node: str, t: int) -> bool:
        return in_wake_window(t, self.arrival.get(node, 0), self.t_wake, self.sleep)

    def input_on(self, t: int) -> bool:
        return (not self.sleep) or t < self.t_wake

    def wake_steps_seen(self, node: str, t: int) -> int:
        """Wake steps a neuron has counted after step ``t`` (t_w in science.md)."""
        return wake_steps_counted(t, self.arrival.get(node, 0), self.t_wake, self.sleep)

    def lag(self, node: str) -> int:
        """Steps a target's synaptic delays hold back the output of ``node`` (its arrival plus its synaptic delay; the
        network's own delays are not lag): what balancing lines up and the wake windows follow."""
        return self.arrival.get(node, 0) + self.delay.get(node, 0) - self.own_delay.get(node, 0)

    @property
    def max_delay(self) -> int:
        return max([*self.delay.values(), *(d for v in self.balance.values() for d in v), 0])

    @property
    def wake_end(self) -> int:
        """First step at which no input and no bias is on anywhere."""
        return self.t_wake + max([0, *self.arrival.values()])

    def encode_input(self, x):
        """The input current as the target sees it (integers in fixed point)."""
        if self.input_scale is None:
            return x
        self.check_input(x)
        return (x * self.input_scale).round()

    def check_input(self, x) -> None:
        """Refuse inputs a fixed-point network was not sized for (its layers' ranges assume [0, 1]): never overflow."""
        if self.input_scale is None or len(x) == 0:
            return
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 1:
            from neurocompile.errors import TargetError

            raise TargetError(f"a fixed-point network takes inputs in [0, 1] (stored as round(x * "
                              f"{self.input_scale:g})); these lie in [{lo:.4g}, {hi:.4g}]",
                              hint="Scale the input to [0, 1], or run in floating point")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: "dict[str, Any] | WakeSleepSchedule") -> "WakeSleepSchedule":
        return d if isinstance(d, cls) else cls(**d)

    def check(self) -> None:
        """Raise ValueError unless the step counts are integers that make sense (a saved IR may be edited)."""
        for key in ("t_wake", "steps", "synapse_delay", "depth", "predicted_settle"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key in ("t_wake", "steps") else 0):
                raise ValueError(f"schedule {key}={v!r} is not a valid step count")
        b = self.settle_bound
        if b is not None and (isinstance(b, bool) or not isinstance(b, int) or b < 1):
            raise ValueError(f"schedule settle_bound={b!r} is not a valid step count")
        for table in (self.delay, self.arrival):
            if not all(isinstance(v, int) and v >= 0 for v in table.values()):
                raise ValueError("schedule delays and arrivals must be integers >= 0")
