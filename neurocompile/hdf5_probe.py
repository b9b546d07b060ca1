"""Reading a user's HDF5 file (a .nir file, an artifact) without hanging and without an internal error.

Two things go wrong with a damaged HDF5 file that a loader's own checks cannot catch:

* h5py raises whatever the HDF5 C library's error maps to: OSError mostly, but also KeyError, RuntimeError,
  ValueError, TypeError... for a damaged object header, local heap or B-tree. :func:`damaged` turns any of them into
  a ModelLoadError ("damaged HDF5 ...") so a loader can catch ``Exception`` around its h5py calls.
* The HDF5 library can loop for ever on some damaged structures (a free-list or heap whose links point back on
  themselves). That loop is in C, holds the GIL and never returns to Python, so no signal handler or thread can stop
  it. :func:`read_checked` therefore reads the file ONCE into memory and lets a forked child process run the very
  same read first (a walk of the whole HDF5 structure: every group, every dataset's header, shape and dtype, every
  attribute; then the loader's own read, which reads the dataset contents the loader uses). The parent waits with a
  timeout that grows with the file's size and SIGKILLs a child that has not finished: the file is refused. A child
  that finishes (its read succeeded or raised: either way HDF5 returned) means the parent's read of the same bytes
  returns too, so the parent then reads them itself (and raises the child's error, if there was one, for real). The
  child and the parent read the same bytes object (an ``io.BytesIO``), so the file cannot change in between.

Caveat (fork in a threaded process): the child has only the forking thread; a lock that another thread held at
the fork (h5py's global lock, a malloc arena lock) stays held in the child, which could then wait for ever and be
reported as a damaged file after the timeout. neurocompile reads model files from its main thread before starting
any worker threads of its own, and torch's/OpenMP's pools do not touch h5py, so this does not arise in the CLI or the
API; a program that reads files with h5py from several threads at once should not call these loaders concurrently.
The child frees nothing it inherited (see :func:`_probe`): an at-fork hook that drops objects would otherwise run
their finalizers in the child (a pre-started Lava worker's TemporaryDirectory removed the parent's job folder).
Where ``os.fork`` does not exist (Windows) the probe is skipped and the read is done directly.
"""
from __future__ import annotations

import gc
import io
import os
import signal
import time
from typing import Any, Callable

from neurocompile.errors import ModelLoadError

BASE_TIMEOUT_S = 5.0           # a healthy file walks in well under a second (the fuzzer kills a run at 15 s)
TIMEOUT_S_PER_100MB = 1.0      # plus this much per 100 MB of file
MAX_ATTRIBUTE_BYTES = 1 << 26  # an attribute declaring more than this is not read by the walk (the loader refuses it)


def timeout_for(size: int) -> float:
    """Seconds the probe may take for a file of ``size`` bytes."""
    return BASE_TIMEOUT_S + TIMEOUT_S_PER_100MB * size / 100e6


_HINT = "Is it complete and unmodified? Write or export it again"


def damaged(exc: BaseException, what: str = "file", lead: str | None = None,
            hint: str | None = None) -> ModelLoadError:
    """The ModelLoadError for an exception h5py raised while reading a user's file (any type: the file's fault);
    ``lead`` replaces the message's start ("damaged HDF5 <what>")."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return ModelLoadError(f"{lead or f'damaged HDF5 {what}'}: reading it failed ({type(exc).__name__}: {detail})",
                          hint=hint or _HINT)


def read_bytes(path: str, max_bytes: int, what: str = "file") -> bytes:
    """The file's bytes, refused before reading when it is larger than ``max_bytes`` (ModelLoadError)."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise ModelLoadError("no such file", file=path) from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read the {what} ({exc.strerror or exc})", file=path) from None
    if size > max_bytes:
        raise ModelLoadError(f"the {what} is {size:,} bytes, more than the {max_bytes:,} bytes a file within "
                             "neurocompile's limits can take (neurocompile/limits.py); refused before reading it",
                             hint="A damaged or foreign file, or raise the limit in neurocompile/limits.py")
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ModelLoadError(f"cannot read the {what} ({exc.strerror or exc})", file=path) from None


def walk(f: Any) -> None:
    """Touch every object of the open h5py file ``f``: every group's links, every dataset's header (shape, dtype,
    layout), every attribute (name and value, up to :data:`MAX_ATTRIBUTE_BYTES`), each object once (hard-link cycles
    are not followed twice). Dataset contents are not read (the loader's own read reads the ones it uses)."""
    import h5py

    seen: set = set()

    def attrs(obj: Any) -> None:
        for name in obj.attrs.keys():
            aid = obj.attrs.get_id(name)
            if aid.shape is not None and int(aid.get_storage_size()) > MAX_ATTRIBUTE_BYTES:
                continue
            obj.attrs[name]

    def visit(obj: Any) -> None:
        if obj.id in seen:
            return
        seen.add(obj.id)
        attrs(obj)
        if isinstance(obj, h5py.Dataset):
            obj.shape, obj.dtype, obj.chunks, obj.compression, obj.fillvalue
        elif isinstance(obj, h5py.Group):
            for key in obj.keys():
                if isinstance(obj.get(key, getlink=True), h5py.HardLink):
                    visit(obj[key])

    visit(f)


def read_checked(data: bytes, read: Callable[[Any], Any], what: str = "file", lead: str | None = None,
                 hint: str | None = None) -> Any:
    """``read(f)`` on the HDF5 file held in ``data`` (an open h5py.File, read-only), once a forked child has done
    the same (after :func:`walk`) and finished within :func:`timeout_for`; a child that does not finish is killed and
    the file refused (ModelLoadError). ``read``'s own ModelLoadError passes through; any other exception (h5py's, on
    a damaged file) becomes one (:func:`damaged`, with ``lead`` and ``hint``)."""
    import h5py

    def run() -> Any:
        with h5py.File(io.BytesIO(data), "r") as f:
            return read(f)

    if hasattr(os, "fork"):
        _probe(data, lambda: (_walk_bytes(data), run()), timeout_for(len(data)), what)  # (_walk_bytes never raises)
    try:
        return run()
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError, ... on damaged files
        raise damaged(exc, what, lead, hint) from None


def _walk_bytes(data: bytes) -> None:
    """:func:`walk` of the file in ``data``; an error ends the walk only (the child goes on to the loader's read,
    which the parent would otherwise do unprobed)."""
    import h5py

    try:
        with h5py.File(io.BytesIO(data), "r") as f:
            walk(f)
    except Exception:  # noqa: BLE001 - a damaged part the loader may not read: its own read decides
        pass


def _probe(data: bytes, work: Callable[[], Any], timeout: float, what: str) -> None:
    """Run ``work`` in a forked child; refuse the file if the child does not finish within ``timeout`` seconds or
    is killed by a signal (a crash in the HDF5 library). The child's result and exceptions are ignored."""
    # Every object alive now stays alive in the child until its os._exit: os.fork runs the at-fork hooks of the
    # libraries loaded (e.g. targets/lava/run.py forgets its pre-started workers in a child), and an object freed in
    # the child runs its finalizers there, which can act on shared state (a TemporaryDirectory's finalizer deletes
    # the parent's folder). Nothing is freed, so no finalizer runs; os._exit runs none either.
    keep = gc.get_objects()
    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code (os._exit skips atexit handlers, buffers, pytest)
        code = 0
        try:
            work()
        except BaseException:  # noqa: BLE001 - any error: HDF5 returned, which is all the parent needs to know
            code = 1
        finally:
            os._exit(code)
    del keep
    deadline, pause = time.monotonic() + timeout, 0.001
    status = None
    try:
        while status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
            elif time.monotonic() > deadline:
                break
            else:
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
    finally:
        if status is None:  # timed out, or the parent was interrupted (Ctrl-C): leave no child behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if status is None:
        raise ModelLoadError(f"the {what}'s HDF5 structure is damaged: reading it did not finish within "
                             f"{timeout:.0f} s (the HDF5 library loops on some damaged files)",
                             hint=_HINT)
    if os.WIFSIGNALED(status):
        raise ModelLoadError(f"the {what}'s HDF5 structure is damaged: reading it crashed the HDF5 library "
                             f"(signal {os.WTERMSIG(status)})", hint=_HINT)
