"""Worker process for one Lava run: ``python -m neurocompile.targets.lava.worker JOB.pkl RESULT.pkl [PARENT_PID]``.

Runs in its own session so that the parent can kill it together with every process Lava forks.
Prints ``progress N`` lines; writes the result only when the run completed (never half a file).
With PARENT_PID it dies with its parent: a parent killed by SIGKILL cannot clean up, so the worker does."""
from __future__ import annotations

import os
import pickle
import shutil
import signal
import sys
import threading
import time
from typing import Callable


TRACKER = "multiprocessing.resource_tracker"  # the command line of multiprocessing's resource tracker
MP_TEMPDIR = "mp_tempdir"  # file in the run's temp dir that names multiprocessing's pymp-* dir


STARTED = "started"  # the worker's first stdout line once it has its job: a worker that ends before it never ran it


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22), None if there is none: with
    the pid it names one process for good, as pids are reused (pid_max may be as low as 32768)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def session_members(sid: int) -> dict[int, str]:
    """Live (non-zombie) processes of session ``sid`` -> command line, from /proc (Linux; {} elsewhere)."""
    out = {}
    for d in os.listdir("/proc") if os.path.isdir("/proc") else []:
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # after "(comm)", which may hold spaces
            if fields[0] == "Z" or int(fields[3]) != sid:
                continue
            with open(f"/proc/{d}/cmdline", "rb") as f:
                out[int(d)] = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue  # not a pid, or it exited meanwhile
    return out


def kill_session(sid: int, grace: float = 3.0, before_self: Callable[[], None] | None = None) -> None:
    """SIGKILL every process of session ``sid`` (this one last, after ``before_self``, if it is a
    member) except multiprocessing's resource tracker: once all others are dead it reads EOF, unlinks
    the shared memory Lava's processes left in /dev/shm (about 4 MB a run) and exits; it is SIGKILLed
    too if it has not after ``grace`` s."""
    if not os.path.isdir("/proc"):  # no way to list a session: its process group is what we can reach
        os.killpg(sid, signal.SIGKILL)
        return
    deadline = time.monotonic() + grace
    while True:
        members = session_members(sid)
        trackers = [p for p, cmd in members.items() if TRACKER in cmd]
        others = [p for p in members if p not in trackers and p != os.getpid()]
        victims = others or (trackers if time.monotonic() > deadline else [])
        if not members or (not others and os.getpid() in members):
            break
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)
    if os.getpid() in members:  # the worker itself, from its watchdog: the tracker cleans up after us
        if before_self is not None:
            before_self()
        os.kill(os.getpid(), signal.SIGKILL)


def _record_mp_tempdir(tmpdir: str) -> None:
    """Create multiprocessing's pymp-* temp dir now, before Lava forks (the forks share it), and note
    it in the run's temp dir: a killed worker never runs the finalizer that removes it, so whoever
    kills the worker does (:func:`remove_mp_tempdir`)."""
    import multiprocessing.util

    path = multiprocessing.util.get_temp_dir()
    with open(os.path.join(tmpdir, MP_TEMPDIR + ".part"), "w") as f:
        f.write(path)
    os.replace(os.path.join(tmpdir, MP_TEMPDIR + ".part"), os.path.join(tmpdir, MP_TEMPDIR))


def remove_mp_tempdir(tmpdir: str) -> None:
    """Remove the pymp-* dir a worker noted in ``tmpdir`` (if any, and if it still exists)."""
    try:
        with open(os.path.join(tmpdir, MP_TEMPDIR)) as f:
            path = f.read()
    except OSError:
        return
    if os.path.basename(path).startswith("pymp-"):
        shutil.rmtree(path, ignore_errors=True)


_orphan_lock = threading.Lock()


def _clean_up_as_orphan(tmpdir: str) -> None:
    """The parent is gone (SIGKILLed: it could not clean up): kill Lava's processes, remove the run's
    temp dirs, then kill this worker. Never returns; the watchdog thread and the main thread may both
    get here, and the second one waits on the lock until the first has killed the process."""
    _orphan_lock.acquire()

    def remove_dirs() -> None:  # once Lava's processes are dead: none of them recreates a file
        remove_mp_tempdir(tmpdir)
        if os.path.basename(tmpdir).startswith("neurocompile-lava-"):
            shutil.rmtree(tmpdir, ignore_errors=True)

    kill_session(os.getpid(), before_self=remove_dirs)


def _die_with_parent(parent: int, tmpdir: str) -> None:
    """Poll the parent pid from a thread (it runs while the main thread sits in Lava's C code) and
    clean up as an orphan once it is gone. Only as a session leader (run_isolated starts the worker
    in a new session), so a worker started by hand never kills its caller's processes."""

    def watch() -> None:
        while os.getppid() == parent:  # reparented (to init or a subreaper) once the parent died
            time.sleep(0.2)
        _clean_up_as_orphan(tmpdir)

    threading.Thread(target=watch, name="neurocompile-parent-watch", daemon=True).start()


def main(job_path: str, result_path: str, parent: int | None = None, wait: bool = False) -> int:
    tmpdir = os.path.dirname(os.path.abspath(job_path))
    orphanable = parent is not None and os.getsid(0) == os.getpid()  # started by run_isolated
    if orphanable:
        _die_with_parent(parent, tmpdir)
        _record_mp_tempdir(tmpdir)
    try:
        if wait:  # started ahead of the job: import what the run needs, then wait for "go" on stdin
            import lava.magma.core.run_configs  # noqa: F401
            import neurocompile.targets.lava.emit  # noqa: F401
            import neurocompile.targets.lava.processes.network  # noqa: F401
            import neurocompile.targets.lava.run  # noqa: F401

            if not sys.stdin.readline():  # the parent gave up (closed stdin): nothing to do
                return 0
        print(STARTED, flush=True)
        with open(job_path, "rb") as f:
            job = pickle.load(f)
        from neurocompile.targets.lava.run import LavaExecutable

        exe = LavaExecutable(job["graph"], select_tag=job["select_tag"])
        res = exe.run_here(job["x"], job["steps"])
        tmp = result_path + ".part"
        with open(tmp, "wb") as f:
            pickle.dump(res, f)
        os.replace(tmp, result_path)
        return 0
    finally:
        # Without its parent the worker ends soon (a write to the closed progress pipe fails) or may
        # even finish; either way it must not exit before the watchdog thread has cleaned up.
        if orphanable and os.getppid() != parent:
            _clean_up_as_orphan(tmpdir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None,
                  "--wait" in sys.argv[4:]))
