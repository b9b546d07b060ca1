"""Shared helpers for the benchmark scripts (they print tables; they are not tests)."""
from __future__ import annotations

import os
import platform
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # the test-model builders live in tests/models.py

from tests import models  # noqa: E402


def machine() -> str:
    import torch

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def export_tmp(builder, mode: str = "bn", **kw) -> tuple[str, tuple[int, ...]]:
    model, shape = builder(**kw)
    path = os.path.join(tempfile.mkdtemp(prefix="nc-bench-"), f"{builder.__name__}.onnx")
    return models.export(model, shape, path, mode), shape


def table(rows: list[list], header: list[str]) -> str:
    cells = [header] + [[str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r))  # noqa: E731
    return "\n".join([line(cells[0]), "  ".join("-" * x for x in w), *map(line, cells[1:])])
