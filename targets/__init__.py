"""Targets: where a converted graph runs. A target compiles a spiking graph into an executable
whose ``run(x, steps)`` returns a :class:`SimResult` (defined here: every target returns one).

Registry entries are imported lazily, so the core never imports Lava unless a Lava target is asked for.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from neurocompile.errors import TargetError
from neurocompile.ir import Graph


def per_step_input(graph: Graph, x: np.ndarray, steps: int) -> bool:
    """Whether ``x`` is (N, T_x, *input shape), one input per step, rather than (N, *input shape) held on every input
    step (the reference simulator's two forms); refuses other shapes and T_x > ``steps``."""
    shape = tuple(graph.shapes[graph.input_nodes[0].output])
    got = tuple(np.shape(x))
    if got[1:] == shape:
        return False
    if len(got) == len(shape) + 2 and got[2:] == shape:
        if got[1] > steps:
            raise TargetError(f"the input holds {got[1]} steps per sample, more than the run's {steps}",
                              hint=f"Run {got[1]} steps (--steps {got[1]})")
        return True
    raise TargetError(f"input of shape {got} fits neither (N, {', '.join(map(str, shape))}) (held on every input "
                      f"step) nor (N, T, {', '.join(map(str, shape))}) (one input per step)")


@dataclass
class SimResult:
    """What a spiking run produced.

    ``outputs``: readout per graph output after the last step (sum of currents / T_wake).
    ``per_step``: readout of the first output after every step, shape (steps, N, ...).
    ``spikes``: per neuron node, total positive and negative spike counts over batch and time.
    ``quiescent_at``: step after which nothing changed any more (None if not detected).
    ``precision``: the arithmetic the run used (float32 fast default, float64 exact, fixed-point integers).
    ``layers``: on request (``record_layers=True``), per spiking layer the signed cumulative spike count
    per neuron after every step, shape (steps, N, *shape): what per-layer diagnosis reads; ``membranes``
    with them, per spiking layer the membrane potential per neuron after the last step, (N, *shape).
    """

    outputs: dict[str, np.ndarray]
    steps: int
    t_wake: int
    per_step: np.ndarray | None = None
    spikes: dict[str, dict[str, int]] = field(default_factory=dict)
    quiescent_at: int | None = None
    layers: dict[str, np.ndarray] | None = None
    membranes: dict[str, np.ndarray] | None = None
    precision: str = ""  # the arithmetic the run used, as the CLI prints it (e.g. "float32 (fast ...)")

    @property
    def output(self) -> np.ndarray:
        return next(iter(self.outputs.values()))


class Executable(Protocol):
    def run(self, x: Any, steps: int | None = None, **kw: Any) -> SimResult: ...


class Target(Protocol):
    name: str
    synapse_delay: int  # the per-layer delay the schedule must model for this target

    def compile(self, graph: Graph, **options: Any) -> Executable: ...


class ReferenceTarget:
    """The reference simulator (torch; CPU or CUDA). ``delay=1`` models Lava's per-layer delay."""

    name = "reference"
    synapse_delay = 0

    def compile(self, graph: Graph, device: str | None = None, dtype: str | None = None, exact: bool = False,
                **_: Any) -> Executable:
        """``dtype`` None is float32 (fast); ``exact`` is the mode for proofs: every spike decision exact or made in
        float64 (targets/reference/certified.py), float64 throughout where that does not apply; dtype float64 runs
        float64 throughout."""
        from neurocompile.targets.reference.simulator import ReferenceSimulator

        if exact and dtype not in (None, "float64"):
            raise TargetError(f"exact runs in float64; dtype {dtype} contradicts it", hint="Give one of them")
        return ReferenceSimulator(graph, device=device, dtype="float64" if exact else dtype, exact=exact)


_REGISTRY: dict[str, str] = {"reference": "neurocompile.targets:ReferenceTarget",
                             "lava-sim": "neurocompile.targets.lava:LavaSimTarget",
                             "loihi2": "neurocompile.targets.loihi2:Loihi2Target"}


def register(name: str, spec: str) -> None:
    """Register a target class by ``module:Class`` path (imported on first use)."""
    _REGISTRY[name] = spec


def get_target(name: str) -> Target:
    if name not in _REGISTRY:
        raise TargetError(f"unknown target '{name}' (available: {', '.join(sorted(_REGISTRY))})")
    mod, cls = _REGISTRY[name].split(":")
    return getattr(importlib.import_module(mod), cls)()


def available() -> list[str]:
    return sorted(_REGISTRY)
