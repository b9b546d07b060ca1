"""The data an evaluation reads: batches from arrays or iterables, labels, input checks, and the batch size that
fits the memory limit."""
from __future__ import annotations

import os
from typing import Any, Iterable, Iterator

import numpy as np

from neurocompile.errors import ModelLoadError, NeurocompileError
from neurocompile.ir import Graph
from neurocompile.ir.ops import OPS
from neurocompile.analysis.evaluate.exact_sums import _BIN_ROWS, _EXP_BINS, _SUM_BYTES


def _as_array(v: Any) -> np.ndarray:
    if hasattr(v, "detach") and hasattr(v, "cpu"):  # a torch tensor
        return v.detach().cpu().numpy()
    return np.asarray(v)


def _batches(x: Any, labels: Any, batch: int, classes: int | None = None
             ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(x, y or None) batches from an array (+ labels) or an iterable of (x, y) pairs or x batches
    (a torch DataLoader). Labels given beside an iterable are consumed in order; ``classes``: see :func:`_labels`."""
    lab = None if labels is None else _labels(labels, classes)
    if isinstance(x, np.ndarray) or hasattr(x, "detach"):
        arr = _as_array(x)
        if arr.ndim == 0 or len(arr) == 0:
            raise NeurocompileError(f"the input holds no samples (shape {arr.shape})")
        if lab is not None and len(lab) != len(arr):
            raise NeurocompileError(f"{len(lab):,} labels for {len(arr):,} samples")
        for i in range(0, len(arr), batch):
            yield arr[i:i + batch], None if lab is None else lab[i:i + batch]
        return
    used = 0
    for item in x:
        if isinstance(item, (tuple, list)):
            if len(item) != 2:
                raise NeurocompileError(f"a batch of the input iterable has {len(item)} parts; give (x, y) or x")
            xb, yb = _as_array(item[0]), _labels(item[1], classes)
            if lab is not None:
                raise NeurocompileError("labels were given twice: beside the input and in its (x, y) batches")
            if len(yb) != len(xb):
                raise NeurocompileError(f"a batch has {len(xb)} inputs and {len(yb)} labels")
        else:
            xb, yb = _as_array(item), None
            if lab is not None:
                yb = lab[used:used + len(xb)]
                if len(yb) != len(xb):
                    raise NeurocompileError(f"fewer labels ({len(lab):,}) than input samples")
        used += len(xb)
        yield xb, yb
    if lab is not None and used != len(lab):
        raise NeurocompileError(f"{len(lab):,} labels for {used:,} samples")


def _labels(y: Any, classes: int | None = None, file: str | None = None) -> np.ndarray:
    """Class indices as int64 (N,), from indices (N,) or (N, 1) (integral floats such as 3.0 are indices) or
    one-hot rows (N, classes). ``classes``: the model's output size; every index must lie in [0, classes).
    Anything else is refused: a label no output can match (10 of 10 classes, -1), True/False, 2.5 or NaN would
    otherwise count as a wrong answer and report a plausible but wrong accuracy. ``file`` names the labels file."""
    y = _as_array(y)
    bad = lambda msg: NeurocompileError(msg, file=file, hint="Labels are integer class indices (N,) "  # noqa: E731
                                        "or one-hot rows (N, classes)")
    if y.dtype.kind not in "iuf":  # bool too: True/False are not class indices
        raise bad(f"labels have dtype {y.dtype}, not integer class indices")
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot rows
        if classes is not None and y.shape[1] != classes:
            raise bad(f"one-hot label rows have {y.shape[1]} columns, the model has {classes} classes")
        ones, zeros = (y == 1).sum(1), (y == 0).sum(1)
        off = np.flatnonzero((ones != 1) | (ones + zeros != y.shape[1]))
        if len(off):
            raise bad(f"{len(off):,} label row(s) are not one-hot (a single 1, zeros elsewhere), first row "
                      f"{int(off[0])}")
        y = y.argmax(1)
    elif y.ndim > 1 and not (y.ndim == 2 and y.shape[1] == 1):
        raise bad(f"labels have shape {y.shape}; give class indices (N,) or one-hot rows (N, classes)")
    y = y.reshape(-1)
    if y.dtype.kind == "f":  # checked before any cast: 1e30 or NaN would warn in astype and wrap around
        off = np.flatnonzero(~np.isfinite(y) | (y != np.floor(y)))
        if len(off):
            raise bad(f"{len(off):,} label(s) are not integers, first {y[off[0]]!r} at position {int(off[0])}")
    hi = classes if classes is not None else 2**62  # without the model's classes: at least a valid int64
    off = np.flatnonzero((y < 0) | (y >= hi))
    if len(off):
        where = f"the model's {classes} classes 0..{classes - 1}" if classes is not None else "class indices (>= 0)"
        v = y[off[0]]
        raise bad(f"{len(off):,} label(s) are outside {where}, first {int(v) if abs(v) < 1e15 else f'{v:g}'} at "
                  f"position {int(off[0])}")
    return y.astype(np.int64)


def _load_labels(path: str) -> np.ndarray:
    """A ``.npy`` labels file, or a one-paragraph error naming it (:func:`neurocompile.io.read_npy`)."""
    from neurocompile.io import read_npy

    y = read_npy(path, "labels")
    if isinstance(y, np.lib.npyio.NpzFile):
        y.close()
        raise ModelLoadError("the labels file is an .npz archive; pass a .npy array (np.save)", file=path)
    return y


def _given_labels(labels: Any, classes: int) -> np.ndarray | None:
    """Labels given beside the input (an array or a ``.npy`` path), checked whole before any work (labels in an
    iterable's batches are checked as they come)."""
    labels_file = str(labels) if isinstance(labels, (str, os.PathLike)) else None
    if labels_file is not None:
        labels = _load_labels(labels_file)
    if labels is not None:
        labels = _labels(labels, classes, labels_file)
    return labels


def _checked(x: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A batch as ``dtype``: numbers of the model's input shape, finite (checked before and after the cast, which
    would warn on a value beyond float32 before the value is refused anyway)."""
    if x.dtype.kind not in "biuf":
        raise NeurocompileError(f"the input has dtype {x.dtype}, not numbers")
    if tuple(x.shape[1:]) != tuple(shape):
        raise NeurocompileError(f"an input batch has shape {x.shape}, the model expects "
                                f"(N, {', '.join(map(str, shape))})")
    with np.errstate(over="ignore", invalid="ignore"):
        y = x.astype(dtype, copy=False)
    if not np.all(np.isfinite(y)):
        what = "non-finite values" if not np.all(np.isfinite(x)) else f"values beyond {np.dtype(dtype).name}"
        raise NeurocompileError(f"the input holds {what}", hint="Inputs must be finite numbers")
    return y


def _known_total(x: Any) -> int | None:
    """Samples an input will yield, where known without iterating: an array's length, a DataLoader's sampler
    length (None with drop_last, or for other iterables)."""
    if isinstance(x, np.ndarray) or hasattr(x, "detach"):
        return len(x)
    sampler = getattr(x, "sampler", None)
    if sampler is not None and getattr(x, "batch_size", None) and not getattr(x, "drop_last", True):
        try:
            return len(sampler)
        except TypeError:
            return None
    return None


_TABLE_BYTES = 64  # per readout value and step of a batch: _StepStats.add's float64 logits, errors and exact-sum slices


def _fit_batch(snn: Graph, T: int, batch: int, baseline: bool) -> tuple[int, int]:
    """(the largest batch <= ``batch`` whose arrays fit neurocompile.limits.MAX_RUN_BYTES, the bytes held whatever
    the batch). Per sample of a batch: every spiking layer's count after each of the T steps (record_layers), the
    per-step readout and its tables in :class:`_StepStats` (and the IF baseline's readout and tables); whatever the
    batch: the exact per-step sums (:class:`_ExactSums`) and each layer's per-step counts. A lone sample runs as two
    (:func:`_paired`). Refused (ConversionError naming the limit) when even that does not fit: then no batch
    size helps, only fewer steps or a smaller network."""
    from neurocompile import limits

    outs = limits.outputs_per_sample(snn)
    per_sample = limits.record_bytes(snn, T, record_layers=True) + T * outs * _TABLE_BYTES
    if baseline:
        per_sample += limits.record_bytes(snn, T) + T * outs * _TABLE_BYTES
    layers = sum(1 for n in snn.nodes.values() if OPS[n.op].spiking)
    fixed = (1 + bool(baseline)) * T * _SUM_BYTES + 2 * _BIN_ROWS * _EXP_BINS * 8 + layers * T * 16
    lone = 2  # _paired
    limits.check_memory(fixed + lone * per_sample,
                        f"evaluating {T:,} steps: one sample's records ({limits.neurons_per_sample(snn):,} neurons' "
                        f"spike counts and {outs:,} readout values after each step, the sample run as a pair) and "
                        "the per-step statistics", hint="Evaluate fewer steps (--steps), or a smaller network")
    return min(batch, (limits.MAX_RUN_BYTES - fixed) // per_sample), fixed


def _pieces(batches: Iterable[tuple[np.ndarray, np.ndarray | None]], size: int
            ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Batches of at most ``size`` samples: an iterable's own batches (a DataLoader's) are cut where larger."""
    for xb, yb in batches:
        for i in range(0, max(len(xb), 1), size):
            yield xb[i:i + size], None if yb is None else yb[i:i + size]
