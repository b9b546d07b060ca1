"""Signals during a ``--target lava-sim`` CLI run: SIGINT, SIGTERM and SIGHUP at three moments (while the
CLI converts, as Lava's run starts, well into it) end the CLI with 128 + signum and one line on stderr,
and within 10 s no Lava process and no temp dir is left. A SIGKILLed CLI (which cannot clean up) still
leaves nothing: the worker notices its parent is gone and removes its session and temp dir itself."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Callable, TypeVar

import numpy as np
import pytest

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
EXAMPLES = os.path.join(ROOT, "examples")
T = TypeVar("T")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, session id) of a process, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1]), int(fields[3])


def _live() -> dict[int, tuple[str, int, int]]:
    out = {}
    for d in filter(str.isdigit, os.listdir("/proc")):
        s = _stat(int(d))
        if s and s[0] != "Z":  # zombies waiting for init to reap them are dead
            out[int(d)] = s
    return out


def _leftovers(sids: list[int], tmpdir: str) -> list[int]:
    """Live processes in these sessions, or whose command line names our private TMPDIR (the worker's
    job file is there, and Lava's processes are forks of the worker): catches a worker we never saw."""
    found = []
    for pid, (_, _, sid) in _live().items():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().decode(errors="replace")
        except OSError:
            continue
        if sid in sids or tmpdir in cmd:
            found.append(pid)
    return found


def _worker(cli: int) -> int | None:
    """The Lava worker: the CLI's child that leads a session of its own."""
    return next((pid for pid, (_, ppid, sid) in _live().items() if ppid == cli and sid == pid), None)


def _catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for ``signum`` (the CLI's main() is running)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            mask = next(int(ln.split()[1], 16) for ln in f if ln.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(mask >> (signum - 1) & 1)


def _until(p: subprocess.Popen, fn: Callable[[], T], timeout: float = 120.0) -> T:
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert p.poll() is None, f"the CLI ended before the moment to signal it: {p.communicate()[1]}"
        assert time.monotonic() < deadline, "the moment to signal never came"
        time.sleep(0.05)
    return value


@pytest.fixture(scope="module")
def many_inputs(tmp_path_factory) -> str:
    """1000 digits: a Lava run of a few minutes, far longer than any case waits."""
    path = str(tmp_path_factory.mktemp("signals") / "many.npy")
    np.save(path, np.tile(np.load(os.path.join(EXAMPLES, "digits_test.npy")), (10, 1, 1, 1)))
    return path


def _start(tmp_path, inputs: str) -> tuple[subprocess.Popen, str]:
    tmpdir = str(tmp_path / "tmp")
    os.makedirs(tmpdir)
    p = subprocess.Popen([sys.executable, "-m", "neurocompile.cli", os.path.join(EXAMPLES, "digits_cqrelu.onnx"),
                          "--target", "lava-sim", "--input", inputs, "--quiet"], cwd=ROOT,
                         env={**os.environ, "TMPDIR": tmpdir}, start_new_session=True,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return p, tmpdir


def _await(p: subprocess.Popen, moment: str) -> int | None:
    """Wait for ``moment``; returns the worker's pid once there is one."""
    if moment == "startup":  # main() has installed its handlers: loading and converting the model
        _until(p, lambda: _catches(p.pid, signal.SIGTERM) and _catches(p.pid, signal.SIGHUP))
        return None
    worker = _until(p, lambda: _worker(p.pid))
    _until(p, lambda: len([s for s in _live().values() if s[2] == worker]) > 1)  # Lava forked its processes
    if moment == "late":
        time.sleep(4.0)  # dozens of samples into the run
    return worker


def _gone(sids: list[int], tmpdir: str, deadline: float) -> list[int]:
    while (left := _leftovers(sids, tmpdir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


SLOW = pytest.mark.slow  # the default suite keeps every moment for SIGTERM and the quick moment for the others
CASES = [("SIGTERM", "startup"), ("SIGTERM", "early"), ("SIGTERM", "late"), ("SIGINT", "startup"),
         ("SIGHUP", "startup"), pytest.param("SIGINT", "early", marks=SLOW), pytest.param("SIGINT", "late", marks=SLOW),
         pytest.param("SIGHUP", "early", marks=SLOW), pytest.param("SIGHUP", "late", marks=SLOW)]


@pytest.mark.parametrize("name, moment", CASES)
def test_signal_stops_the_whole_lava_session(tmp_path, many_inputs, name, moment):
    signum = getattr(signal, name)
    p, tmpdir = _start(tmp_path, many_inputs)
    try:
        worker = _await(p, moment)
        sent = time.monotonic()
        os.kill(p.pid, signum)
        _, err = p.communicate(timeout=10)
        exited = time.monotonic() - sent
        left = _gone([p.pid] + ([worker] if worker else []), tmpdir, sent + 10)
        print(f"{name} {moment}: exit {p.returncode} after {exited:.2f} s, {len(left)} process(es) left, "
              f"{len(os.listdir(tmpdir))} temp entries left")
        assert p.returncode == 128 + signum, err
        assert err.strip() == f"neurocompile: interrupted by {name}", err
        assert left == [], f"processes left behind: {left}"
        assert os.listdir(tmpdir) == [], "temp files left behind"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_sigkilled_cli_leaves_no_lava_process(tmp_path, many_inputs):
    p, tmpdir = _start(tmp_path, many_inputs)
    try:
        worker = _await(p, "early")
        sent = time.monotonic()
        p.kill()  # uncatchable: the CLI cannot clean up; the worker must notice and do it
        p.wait()
        left = _gone([worker], tmpdir, sent + 10)
        print(f"SIGKILL early: {len(left)} process(es) left after {time.monotonic() - sent:.2f} s, "
              f"{len(os.listdir(tmpdir))} temp entries left")
        assert left == [], f"processes left behind: {left}"
        deadline = sent + 10
        while os.listdir(tmpdir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.listdir(tmpdir) == [], "the worker did not remove its temp dir"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


STUBBORN = """
import os, signal, sys, threading, time
from neurocompile import cli
from neurocompile.cli import run as cli_run

def send():  # the moment of the signal on the system-wide monotonic clock (not Python's start-up, slow under load)
    print(time.monotonic(), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

def stubborn(a):  # stands for a library that swallows KeyboardInterrupt (or a C call that never returns)
    threading.Timer(0.3, send).start()
    while True:
        try:
            time.sleep(0.05)
        except BaseException:
            pass

cli_run._run = stubborn
sys.exit(cli.main(["model.onnx"]))
"""


def test_swallowed_interrupt_still_exits():
    """The backstop: HARD_STOP_S after a signal the CLI exits with 128 + signum even if the
    KeyboardInterrupt never reaches main() (a Lava worker then cleans up after itself, as above)."""
    from neurocompile.cli import HARD_STOP_S

    r = subprocess.run([sys.executable, "-c", STUBBORN], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 128 + signal.SIGTERM and r.stderr.strip() == "neurocompile: interrupted by SIGTERM"
    assert HARD_STOP_S <= time.monotonic() - float(r.stdout.split()[-1]) < HARD_STOP_S + 5
