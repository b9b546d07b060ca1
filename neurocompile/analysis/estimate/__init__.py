"""The resource and energy estimate of a converted spiking network on Loihi 2: ``estimate(graph, "loihi2", x)``
(what is counted: ``estimator.py``; the hardware figures and their sources: ``targets/loihi2/spec.py``), the
network placed on cores (``place``, ``check_placement``: ``placement.py``) and its traffic, time and energy per
inference (``traffic``, ``runtime``: ``runtime.py``)."""
from neurocompile.analysis.estimate.activity import _Activity
from neurocompile.analysis.estimate.estimator import HARDWARE, estimate, hardware
from neurocompile.analysis.estimate.placement import Placement, PlacementError, check_placement, place
from neurocompile.analysis.estimate.result import Estimate, LayerEstimate, Totals
from neurocompile.analysis.estimate.runtime import Runtime, Traffic, runtime, traffic
from neurocompile.targets.loihi2.spec import LOIHI2, LOIHI2_ENERGY, REFERENCES, EnergyFigures, Figure, HardwareLimits

__all__ = ["HARDWARE", "LOIHI2", "LOIHI2_ENERGY", "REFERENCES", "EnergyFigures", "Estimate", "Figure", "HardwareLimits",
           "LayerEstimate", "Placement", "PlacementError", "Runtime", "Totals", "Traffic", "check_placement", "estimate",
           "hardware", "place", "runtime", "traffic", "_Activity"]
