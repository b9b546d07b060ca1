"""Export mode: a context under which the kit's modules describe one time step for ONNX export.

Outside it every module computes as usual (spiking modules on a leading time axis). Inside it
(entered only by :func:`neurocompile.torch.export_onnx`) spiking modules take one step's input
``(N, ...)`` and emit their custom ONNX node, time-distributed layers apply to that step directly,
and CQReLU emits the ONNX form the export asked for. A context variable rather than a module flag,
so nothing about a model changes by being exported.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

CQRELU_FORMS = ("custom", "chain")


@dataclass(frozen=True)
class ExportMode:
    """How CQReLU is written: one ``neurocompile::CQReLU`` node ("custom") or standard ops ("chain")."""

    cqrelu: str = "custom"


_MODE: ContextVar[ExportMode | None] = ContextVar("neurocompile_torch_export_mode", default=None)


@contextmanager
def export_mode(cqrelu: str = "custom") -> Iterator[ExportMode]:
    """Enter export mode for the duration of the block; always restores the previous mode."""
    if cqrelu not in CQRELU_FORMS:
        raise ValueError(f"cqrelu must be one of {CQRELU_FORMS}, got {cqrelu!r}")
    token = _MODE.set(ExportMode(cqrelu))
    try:
        yield _MODE.get()
    finally:
        _MODE.reset(token)


def current_mode() -> ExportMode | None:
    """The active export mode, or None during ordinary training and inference."""
    return _MODE.get()


def step_mode() -> bool:
    """True while exporting: tensors carry one time step, ``(N, ...)``, with no time axis."""
    return _MODE.get() is not None


def per_step(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Apply a stateless layer to every time step of ``x`` of shape (T, N, ...) at once, by folding
    time into the batch (so a BatchNorm's statistics are shared over time, tdBN). In export mode
    ``x`` is one step and ``fn`` is applied directly."""
    if step_mode():
        return fn(x)
    y = fn(x.flatten(0, 1))
    return y.unflatten(0, x.shape[:2])
