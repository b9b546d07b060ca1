"""Atomic file output: a failed or interrupted write never leaves a half-written file or a temp file."""
from __future__ import annotations

import os
import tempfile
from typing import IO, Callable, Mapping


def write_atomic(writers: Mapping[str, Callable[[IO[bytes]], None]]) -> None:
    """Write every ``path -> writer(binary file)`` to a temp file in the path's own directory (so the
    rename stays on one file system), then ``os.replace`` them all: the outputs appear only once all
    of them are complete. On any error (KeyboardInterrupt included) the temp files are removed."""
    mask = os.umask(0)  # mkstemp makes 0600 files; give the outputs the usual umask-based mode
    os.umask(mask)
    temps: dict[str, str] = {}
    try:
        for path, write in writers.items():
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".neurocompile-",
                                       suffix=".part")
            temps[path] = tmp
            with os.fdopen(fd, "wb") as f:
                write(f)
            os.chmod(tmp, 0o666 & ~mask)
        for path, tmp in temps.items():
            os.replace(tmp, path)
    finally:
        for tmp in temps.values():  # what was not renamed (all of them after an error)
            if os.path.exists(tmp):
                os.unlink(tmp)
