"""Reference SNN simulator (torch, CPU or CUDA)."""
from neurocompile.targets.reference.simulator import ReferenceSimulator, SimResult

__all__ = ["ReferenceSimulator", "SimResult"]
