"""File output that never destroys what a path points at, and never leaves a half-written file.

Every output of neurocompile (``--json``, ``--report``, ``--save-ir``, ``-o``, plots, exports) goes through
:func:`write_atomic`, with one rule for what a path may name (:func:`output_target`, which the CLI also applies
to every output path before any work):

* A **symbolic link** is written *through*: the file it names (a dangling link's target is created, if its folder
  exists) gets the content; the link itself stays a link.
* A **regular file** (or a new one) is written **atomically**: a temp file beside the resolved target, then
  ``os.replace``. All outputs of one call appear together or not at all (a failed rename undoes the earlier ones).
* A **character device** (``/dev/null``, a terminal), a **FIFO** (a named pipe, bash's ``>(...)``), and any file
  reached through ``/proc`` (a process's open file: ``/dev/stdout``, ``/dev/fd/N``) are written **in place**:
  opened and written, never replaced (replacing ``/dev/null`` would break the system; atomic replacement means
  nothing for a stream). They are written only once every regular output of the call is complete. Several outputs
  may go to one such file, one after the other (``--json /dev/null --report /dev/null``).
* **Refused** with :class:`OutputPathError`: a directory, a block device (a disk), a socket, a symlink loop, a
  missing folder; and two outputs of one call that resolve to the same regular file.
"""
from __future__ import annotations

import io
import os
import stat
import sys
import tempfile
from dataclasses import dataclass
from typing import IO, Callable, Mapping

from neurocompile.errors import NeurocompileError

_MAX_LINKS = 40  # Linux's MAXSYMLINKS: more is a loop


class OutputPathError(NeurocompileError):
    """An output path that cannot be written under the rule above (a directory, a disk, a missing folder, ...)."""


@dataclass(frozen=True)
class Target:
    """Where the bytes of an output path go: ``real`` (symbolic links resolved), replaced atomically unless
    ``direct`` (a device, a FIFO or a process's open file, written in place)."""

    path: str
    real: str
    direct: bool


def resolve(path: str) -> tuple[str, bool]:
    """``(real path, through_proc)``: ``path`` with every symbolic link resolved, a dangling one included (the path
    it names). Resolution stops at ``/proc``, whose fd links (``/dev/stdout`` -> ``/proc/self/fd/1`` ->
    ``pipe:[123]``) name open files, not paths; ``through_proc`` says so."""
    cur = os.path.abspath(path)
    for _ in range(_MAX_LINKS):
        parent = os.path.realpath(os.path.dirname(cur))  # folders resolve normally, /dev/fd -> /proc/<pid>/fd too
        cur = os.path.join(parent, os.path.basename(cur))
        if cur.startswith("/proc/"):
            return cur, True
        if not os.path.islink(cur):
            return cur, False
        cur = os.path.join(parent, os.readlink(cur))  # relative to the link's folder; '..' resolved next round
    raise OutputPathError(f"{path}: too many levels of symbolic links (a loop)")


def output_target(path: str) -> Target:
    """Where ``path``'s output goes under the module's rule, or :class:`OutputPathError` (nothing is written)."""
    path = os.fspath(path)  # a pathlib.Path too
    if path.endswith(("/", os.sep)) and not os.path.isdir(path):
        raise OutputPathError(f"{path} ends with '/', which names a folder", hint="Give a file name")
    real, through_proc = resolve(path)
    shown = path if real == os.path.abspath(path) else f"{path} (-> {real})"
    try:
        mode = os.stat(real).st_mode  # follows /proc's fd links to the open file itself
    except (FileNotFoundError, NotADirectoryError):
        folder = os.path.dirname(real)
        if os.path.isdir(folder):
            return Target(path, real, direct=False)  # a new file
        if os.path.exists(folder):
            raise OutputPathError(f"{shown}: '{folder}' is a file, not a directory") from None
        raise OutputPathError(f"{shown}: directory '{folder}' does not exist") from None
    except OSError as exc:
        raise OutputPathError(f"{shown}: {exc.strerror}") from None
    if stat.S_ISDIR(mode):
        raise OutputPathError(f"{shown} is a directory", hint="Give a file name")
    if stat.S_ISREG(mode):
        return Target(path, real, direct=through_proc)  # in place for a process's open file: /dev/stdout > out.txt
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        return Target(path, real, direct=True)
    kind = "a block device (a disk)" if stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else "a special file"
    raise OutputPathError(f"{shown} is {kind}: neurocompile writes files, terminals, pipes and /dev/null only")


def check_output(path: str) -> Target:
    """:func:`output_target`, plus a try of what can be tried without writing the output: a new file can be created
    in the target's folder (a probe temp file: ``os.access`` says yes to root and knows nothing of read-only
    mounts), a device or FIFO is writable."""
    t = output_target(path)
    if t.direct:
        if not os.access(t.real, os.W_OK):
            raise OutputPathError(f"{path}: cannot write to '{t.real}' (permission denied)")
        return t
    _probe(os.path.dirname(t.real), path)
    return t


def _probe(folder: str, shown: str) -> None:
    """Create and remove a temp file in ``folder`` (``os.access`` says yes to root and knows nothing of read-only
    mounts), or :class:`OutputPathError` naming ``shown``."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".neurocompile-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputPathError(f"{shown}: cannot write in directory '{folder}' ({exc.strerror})") from None


def check_folder(path: str) -> str:
    """The real path of ``path`` as an output folder (created later if missing), or :class:`OutputPathError`: it
    or its nearest existing ancestor must be a directory one can create files in (not a file, not /proc)."""
    real = os.path.realpath(path)
    existing = real
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    shown = path if real == os.path.abspath(path) else f"{path} (-> {real})"
    if not os.path.isdir(existing):
        raise OutputPathError(f"{shown} is a file" if existing == real else f"{shown}: '{existing}' is a file, not a "
                              "directory", hint="Give a folder (it is created if missing)")
    _probe(existing, shown)
    return real


def _std_fd(real: str) -> int | None:
    """1 or 2 where ``real`` is this process's own stdout or stderr (same file), else None."""
    try:
        st = os.stat(real)
    except OSError:
        return None
    for fd in (1, 2):
        try:
            own = os.fstat(fd)
        except OSError:
            continue
        if (own.st_dev, own.st_ino) == (st.st_dev, st.st_ino):
            return fd
    return None


def _write_in_place(t: Target, data: bytes) -> None:
    """Write ``data`` to a device, FIFO or a process's open file without replacing it (no O_CREAT). Our own
    stdout/stderr gets it through its descriptor, in order with the printed text (``--json /dev/stdout > out``)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    fd = _std_fd(t.real)
    close = fd is None
    if close:  # O_TRUNC matters only for a regular file reached through /proc
        fd = os.open(t.real, os.O_WRONLY | (os.O_TRUNC if stat.S_ISREG(os.stat(t.real).st_mode) else 0))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        if close:
            os.close(fd)


def _backup(real: str, tmp: str) -> str | None:
    """A hard link to the file about to be replaced, so a failed group can put it back (None: nothing there, or a
    file system without hard links)."""
    if not os.path.lexists(real):
        return None
    try:
        os.link(real, tmp + ".old")
        return tmp + ".old"
    except OSError:
        return None


def write_atomic(writers: Mapping[str, Callable[[IO[bytes]], None]]) -> None:
    """Write every ``path -> writer(binary file)`` under the module's rule: all paths are checked first (nothing is
    written if one is refused); regular files go to a temp file beside their resolved target (so the rename stays on
    one file system), devices and FIFOs are rendered in memory; then the in-place outputs are written and the temp
    files renamed over their targets: the regular outputs appear only once all of them are complete, and a failed
    rename puts back what the earlier ones replaced. On any error (KeyboardInterrupt included) the temp files are
    removed."""
    targets = [(output_target(p), w) for p, w in writers.items()]
    seen: dict[str, str] = {}
    for t, _ in targets:
        if not t.direct and t.real in seen:
            raise OutputPathError(f"{seen[t.real]} and {t.path} are the same file '{t.real}'")
        seen[t.real] = t.path
    mask = os.umask(0)  # mkstemp makes 0600 files; give the outputs the usual umask-based mode
    os.umask(mask)
    temps: dict[str, str] = {}  # real -> temp file
    in_place: list[tuple[Target, bytes]] = []
    backups: dict[str, str | None] = {}
    renamed: list[str] = []
    try:
        for t, write in targets:
            if t.direct:
                buf = io.BytesIO()
                write(buf)
                in_place.append((t, buf.getvalue()))
                continue
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(t.real), prefix=".neurocompile-", suffix=".part")
            temps[t.real] = tmp
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.chmod(tmp, 0o666 & ~mask)
        for t, data in in_place:
            _write_in_place(t, data)
        for real, tmp in temps.items():
            backups[real] = _backup(real, tmp)
            os.replace(tmp, real)
            renamed.append(real)
    except BaseException:
        for real in reversed(renamed):  # undo: the group appears whole or not at all
            try:
                if backups[real]:
                    os.replace(backups[real], real)
                else:
                    os.unlink(real)
            except OSError:
                pass
        raise
    finally:
        for p in [*temps.values(), *filter(None, backups.values())]:  # what was not renamed, the backups
            if os.path.lexists(p):
                os.unlink(p)
