"""Shared pieces of neurocompile's Lava process models (no Process classes here)."""
from __future__ import annotations

import numpy as np

from lava.magma.core.decorator import implements, requires, tag  # noqa: F401  (re-exported)
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort  # noqa: F401
from lava.magma.core.model.py.type import LavaPyType  # noqa: F401
from lava.magma.core.resources import CPU  # noqa: F401
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol  # noqa: F401

from neurocompile.ir.schedule import in_wake_window, wake_steps_counted


class PhasedModel(PyLoihiProcessModel):
    """Knows which sample and which step of it Lava's global time step is. Samples stream one per
    ``period`` steps; a process whose ``offset`` is d starts each sample d steps late (the stagger of a
    layer whose data arrives d steps after the input's), so sample k's step t happens at global step
    k * period + t for every process, and step t of a sample lies in [offset, offset + period).
    Fixed-point subclasses set ``DTYPE = np.int32``: values are integers there and are sent as such."""

    DTYPE = float

    def cast(self, v: np.ndarray) -> np.ndarray:
        return np.asarray(v).astype(self.DTYPE, copy=False)

    def sample_and_step(self) -> tuple[int, int]:
        """(k, t): sample k (-1 before this process's first sample) and its step t."""
        p = self.proc_params
        offset = int(p.get("offset", 0))
        k, local = divmod(self.time_step - 1 - offset, int(p["period"]))
        return k, local + offset

    def starts_sample(self, phase: int) -> bool:
        """The step at which this process starts a sample (state back to rest)."""
        return phase == int(self.proc_params.get("offset", 0))

    def active(self, k: int, phase: int) -> bool:
        """Within one of the ``steps`` of a sample (not before the first, not in a flush)."""
        return k >= 0 and phase < self.proc_params["steps"]

    def in_window(self, phase: int) -> bool:
        """Wake window of this process (biases on; CIF counts wake steps): the schedule's gating rule, for
        the ``steps`` of a sample (a period's flush steps after them are never awake)."""
        p = self.proc_params
        return phase < p["steps"] and in_wake_window(phase, p["arrival"], p["t_wake"], p["sleep"])

    def wake_steps_seen(self, phase: int) -> int:
        p = self.proc_params
        return int(wake_steps_counted(phase, p["arrival"], p["t_wake"], p["sleep"]))


INT = dict(precision=24)  # LavaPyType keywords of fixed-point ports and state (Loihi 2: 24-bit)
