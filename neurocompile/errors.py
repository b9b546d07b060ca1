"""Errors that carry the file, node and op involved and render as one readable paragraph.

The CLI catches :class:`NeurocompileError` and prints ``str(err)``; anything else is a bug.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NeurocompileError(Exception):
    """Base error: ``message`` plus optional location (file, node, op) and a hint."""

    message: str
    file: str | None = None
    node: str | None = None
    op: str | None = None
    hint: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        where = []
        if self.file:
            where.append(f"file '{self.file}'")
        if self.node:
            where.append(f"node '{self.node}'")
        if self.op:
            where.append(f"op {self.op}")
        text = f"{self.message}" + (f" ({', '.join(where)})" if where else "")
        if self.hint:
            text += f". {self.hint}"
        return " ".join(text.split())  # one paragraph, no stray newlines

    def at(self, file: str) -> "NeurocompileError":
        """Attach the file name if it is not known yet (re-raised by the caller)."""
        if self.file is None:
            self.file = file
        return self


class ModelLoadError(NeurocompileError):
    """The file is missing, not ONNX, corrupt, or holds an empty graph."""


@dataclass
class UnsupportedOpError(NeurocompileError):
    """One or more nodes use ops neurocompile cannot import; lists all of them at once."""

    unsupported: list[tuple[str, str]] = field(default_factory=list)


class ValidationError(NeurocompileError):
    """The IR is inconsistent (shape mismatch, dangling input, cycle, unknown op)."""


class ConversionError(NeurocompileError):
    """A graph cannot be converted to a spiking network as asked."""


class TargetError(NeurocompileError):
    """A target cannot compile or run the graph."""
