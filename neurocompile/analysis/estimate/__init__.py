"""The resource and energy estimate of a converted spiking network on Loihi 2: ``estimate(graph, "loihi2", x)``
(what is counted: ``estimator.py``; the hardware figures and their sources: ``targets/loihi2/spec.py``)."""
from neurocompile.analysis.estimate.activity import _Activity
from neurocompile.analysis.estimate.estimator import HARDWARE, estimate, hardware
from neurocompile.analysis.estimate.result import Estimate, LayerEstimate, Totals
from neurocompile.targets.loihi2.spec import LOIHI2, LOIHI2_ENERGY, REFERENCES, EnergyFigures, Figure, HardwareLimits

__all__ = ["HARDWARE", "LOIHI2", "LOIHI2_ENERGY", "REFERENCES", "EnergyFigures", "Estimate", "Figure", "HardwareLimits",
           "LayerEstimate", "Totals", "estimate", "hardware", "_Activity"]
