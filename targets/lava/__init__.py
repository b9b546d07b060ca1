"""Lava target: the converted network as lava-nc processes, run by Lava's own runtime on CPU
(``Loihi2SimCfg``). Only this package imports Lava; ``processes/`` holds Process modules only."""
from __future__ import annotations

from typing import Any

from neurocompile.ir import Graph


class LavaSimTarget:
    """``lava-sim``: Loihi2SimCfg on CPU. Dense/Conv delay their output by one step."""

    name = "lava-sim"
    synapse_delay = 1

    def compile(self, graph: Graph, fixed_point: bool = False, **_: Any):
        from neurocompile.targets.lava.run import LavaExecutable

        return LavaExecutable(graph, select_tag="fixed_pt" if fixed_point else "floating_pt", prestart=True)


def __getattr__(name: str) -> Any:
    """``Network`` (the deployable Lava process) and ``run_config`` load Lava on first use only."""
    if name == "Network":
        from neurocompile.targets.lava.processes.network import Network

        return Network
    if name == "run_config":
        from neurocompile.targets.lava.run import run_config

        return run_config
    raise AttributeError(name)
