"""Lava target: the converted network as lava-nc processes, run by Lava's own runtime on CPU
(``Loihi2SimCfg``). Only this package imports Lava; ``processes/`` holds Process modules only."""
from __future__ import annotations

from typing import Any

from neurocompile.ir import Graph


class LavaSimTarget:
    """``lava-sim``: Loihi2SimCfg on CPU. Dense/Conv delay their output by one step."""

    name = "lava-sim"
    synapse_delay = 1

    def compile(self, graph: Graph, fixed_point: bool | None = None, **_: Any):
        """Lava's fixed_pt models for a fixed-point graph (``fixed_point`` None: as the graph was converted), else its
        floating_pt models (which run a fixed-point CASC network's integers too)."""
        from neurocompile.targets.lava.run import LavaExecutable

        fixed = bool(graph.meta.get("fixed_point")) if fixed_point is None else fixed_point
        return LavaExecutable(graph, select_tag="fixed_pt" if fixed else "floating_pt", prestart=True)


def __getattr__(name: str) -> Any:
    """``Network`` (the deployable Lava process) and ``run_config`` load Lava on first use only."""
    if name == "Network":
        from neurocompile.targets.lava.processes.network import Network

        return Network
    if name == "run_config":
        from neurocompile.targets.lava.run import run_config

        return run_config
    raise AttributeError(name)
