"""Reading users' arrays: ``.npy`` files checked before any work (never unpickled), sample arrays checked for
numbers, and the input that runs when none is given.
"""
from __future__ import annotations

import os

import numpy as np

from neurocompile.errors import ModelLoadError, NeurocompileError
from neurocompile.ir import Graph


EXAMPLE_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                            "digits_test.npy")


def read_npy(path: str, what: str = "input array") -> np.ndarray:
    """A ``.npy`` (or ``.npz``) file as numpy loads it, or a one-paragraph ModelLoadError naming the file: missing, a
    folder, not .npy, truncated, or a pickled (object) array, never unpickled (a .npy may come from anywhere).
    ``what`` names the file's role in the messages ("input array", "labels")."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise ModelLoadError(f"cannot read the {what}: {exc.strerror or exc}", file=path) from exc
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):  # neither .npy nor .npz (a zip)
        raise ModelLoadError(f"the {what} file is not a .npy array", file=path, hint="Save it with np.save")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickled" in str(exc):
            raise ModelLoadError(f"the {what} file holds a pickled (object) array, which is not loaded for safety",
                                 file=path, hint="Save a numeric array with np.save") from exc
        raise ModelLoadError(f"cannot read the {what}: {exc}", file=path) from exc
    except (OSError, EOFError) as exc:  # EOFError: a truncated .npy
        msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ModelLoadError(f"cannot read the {what}: {msg}", file=path,
                             hint="Is it a complete .npy file (np.save)?") from exc


def load_input(path: str, shape: tuple[int, ...], per_step: bool = False) -> np.ndarray:
    """Read ``--input``/``--calibrate`` arrays: (N, *shape) or a single sample of ``shape``, N >= 1, and with
    ``per_step`` also (N, T, *shape), one input per step (a spiking input); numeric (bool, int or float) and finite;
    returned as float32."""
    x = read_npy(path)
    if isinstance(x, np.lib.npyio.NpzFile):
        x.close()
        raise ModelLoadError("the file is an .npz archive; pass a .npy array (np.save)", file=path)
    if tuple(x.shape) == tuple(shape):
        x = x[None]
    stepped = per_step and x.ndim == len(shape) + 2 and tuple(x.shape[2:]) == tuple(shape) and x.shape[1] >= 1
    if tuple(x.shape[1:]) != tuple(shape) and not stepped:
        dims = ", ".join(map(str, shape))
        raise NeurocompileError(f"input array has shape {x.shape}, the model expects (N, {dims})"
                                + (f" or (N, T, {dims}) (one input per step)" if per_step else ""), file=path)
    return checked_samples(x, "input array", path)


def is_per_step(x: np.ndarray, graph: Graph) -> bool:
    """``x`` gives one input per step, (N, T, *input shape), rather than one per sample."""
    return np.ndim(x) == len(graph.shapes[graph.input_nodes[0].output]) + 2


def checked_samples(x: np.ndarray, what: str, path: str | None = None) -> np.ndarray:
    """Refuse empty, non-numeric or non-finite sample arrays (they would fail deep in a pass or a
    simulator with a message about something else); return float32."""
    if x.dtype.kind not in "biuf":
        raise NeurocompileError(f"{what} has dtype {x.dtype}, not numbers", file=path,
                                hint="Pass a bool, int or float array")
    if x.ndim == 0 or len(x) == 0:
        raise NeurocompileError(f"{what} holds no samples (shape {x.shape})", file=path)
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argmax(bad.reshape(len(x), -1).any(1)))
        raise NeurocompileError(f"{what} holds {int(bad.sum()):,} non-finite value(s) ({int(np.isnan(x).sum()):,} NaN, "
                                f"{int(np.isinf(x).sum()):,} inf or beyond float32) of {x.size:,}, first in sample "
                                f"{first}", file=path, hint="Inputs must be finite numbers")
    return x


def default_input(shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """What runs without ``--input``: one bundled digits test image when the model takes 1x8x8
    images, else one random input (seed 0)."""
    if tuple(shape) == (1, 8, 8) and os.path.exists(EXAMPLE_DATA):
        return np.load(EXAMPLE_DATA)[:1].astype(np.float32), "1 bundled digits test image"
    return np.random.default_rng(0).uniform(0, 1, (1, *shape)).astype(np.float32), "1 random input (seed 0)"
