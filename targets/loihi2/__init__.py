"""``loihi2``: Loihi 2 hardware through Intel's Loihi extension of Lava (not public).

What can happen without the chip happens in :func:`neurocompile.api.deploy_loihi2` (fixed-point conversion,
the deployable files, verification on lava-sim's fixed_pt models); this target is the last step, the hardware
run, and says clearly what is missing when it cannot happen.
"""
from __future__ import annotations

import importlib.util
from typing import Any

from neurocompile.errors import TargetError
from neurocompile.ir import Graph

# what the Loihi extension of Lava adds to lava-nc (lava-nc's run_configs imports them when present)
EXTENSION_MODULES = ("lava.magma.core.model.nc.model", "lava.magma.core.model.c.model")
INSTALL_HINT = ("Install Intel's Loihi extension of Lava (lava-loihi, available to members of Intel's Neuromorphic "
                "Research Community) on a host with access to a Loihi 2 system, then run the artifact there")


def loihi_extension_available() -> bool:
    """Whether the Loihi extension of Lava is importable (finding it imports lava's parent packages, not the
    extension)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in EXTENSION_MODULES)
    except (ImportError, ValueError):
        return False


class Loihi2Target:
    """Loihi 2 hardware: fixed point, one step of delay per synapse, as lava-sim."""

    name = "loihi2"
    synapse_delay = 1

    def compile(self, graph: Graph, **_: Any):
        if not loihi_extension_available():
            raise TargetError("Loihi 2 hardware needs Intel's Loihi extension of Lava, which is not installed "
                              "(lava-nc alone has no Loihi2HwCfg process models)", hint=INSTALL_HINT)
        raise TargetError("the Loihi extension of Lava is installed, but neurocompile's processes have Python "
                          "process models only (no NcProcessModels yet), so they cannot run on the chip",
                          hint="Run the artifact on lava-sim (--target lava-sim --fixed-point), or load the netx "
                               "file with lava-dl's netx.hdf5.Network, whose layers have Loihi models")
