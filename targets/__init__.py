"""Targets: where a converted graph runs. A target compiles a spiking graph into an executable
whose ``run(x, steps)`` returns a :class:`~neurocompile.targets.reference.simulator.SimResult`.

Registry entries are imported lazily, so the core never imports Lava unless a Lava target is asked for.
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol

from neurocompile.errors import TargetError
from neurocompile.ir import Graph


class Executable(Protocol):
    def run(self, x: Any, steps: int | None = None, **kw: Any) -> Any: ...


class Target(Protocol):
    name: str
    synapse_delay: int  # the per-layer delay the schedule must model for this target

    def compile(self, graph: Graph, **options: Any) -> Executable: ...


class ReferenceTarget:
    """The reference simulator (torch; CPU or CUDA). ``delay=1`` models Lava's per-layer delay."""

    name = "reference"
    synapse_delay = 0

    def compile(self, graph: Graph, device: str | None = None, dtype: str = "float64", **_: Any) -> Executable:
        from neurocompile.targets.reference.simulator import ReferenceSimulator

        return ReferenceSimulator(graph, device=device, dtype=dtype)


_REGISTRY: dict[str, str] = {"reference": "neurocompile.targets:ReferenceTarget",
                             "lava-sim": "neurocompile.targets.lava:LavaSimTarget"}


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
