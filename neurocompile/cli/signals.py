"""SIGINT, SIGTERM and SIGHUP: each raises Interrupted (a KeyboardInterrupt, so every cleanup runs) while main()
runs, a backstop thread exits with 128 + the signal number where the interrupt is lost, and the old handlers come
back afterwards (main() may run in-process: tests, notebooks)."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

from neurocompile.cli.printing import _say

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
RESEND_S = 0.25    # how often a signal is re-sent while its Interrupted has not reached main()
HARD_STOP_S = 5.0  # after a signal, the longest the CLI waits for its own cleanup before it exits anyway
_state: dict[str, Any] = {"signum": None, "caught": False}


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP. A KeyboardInterrupt, so every cleanup Ctrl-C triggers (the Lava
    session kill and temp dir in targets/lava/run.py, atomic outputs) runs for all three."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: Any) -> None:
    if _state["caught"]:
        return  # main() has it (or is done): nothing more to interrupt
    if _state["signum"] is not None and isinstance(sys.exc_info()[1], KeyboardInterrupt):
        return  # the first Interrupted is on its way up through the cleanups: never cut them short
    if _state["signum"] is None:
        _state["signum"] = signum  # the first signal names the exit code
    raise Interrupted(_state["signum"])


def _hard_stop(r: int, done: threading.Event) -> None:
    """Backstop thread, woken at once by the C-level signal handler through the wakeup fd. An
    Interrupted can be lost: raised in a weakref callback ("Exception ignored in ...") or cleared by
    C code (networkx's import of xml.etree does both, now and then). Until main() has caught it the
    signal is re-sent every RESEND_S (the handler ignores it while an Interrupted propagates); if
    the CLI still runs HARD_STOP_S after the signal (a C call that does not return), it exits anyway,
    and a Lava worker, seeing its parent gone, removes its session and temp dirs itself."""
    try:
        while (data := os.read(r, 1)) and data[0] not in _SIGNALS:
            pass  # another signal's number; b"" once main() is done (the write end is closed)
        if not data:
            return
        deadline = time.monotonic() + HARD_STOP_S
        while not done.wait(RESEND_S):
            if time.monotonic() > deadline:
                if not _state["caught"]:
                    _say(f"neurocompile: interrupted by {signal.Signals(data[0]).name}")
                os._exit(128 + (_state["signum"] or data[0]))
            if not _state["caught"]:
                os.kill(os.getpid(), data[0])
    finally:
        os.close(r)


def _quiet_unraisable(u: Any) -> None:
    """sys.unraisablehook: an Interrupted lost in a callback is re-sent (above), not printed."""
    if not isinstance(u.exc_value, Interrupted):
        _state["unraisablehook"](u)


def _install_signal_handlers() -> None:
    """SIGINT, SIGTERM and SIGHUP raise Interrupted until :func:`_restore_signals` (main() may run
    in-process: tests, notebooks). Runs inside main()'s try, as a signal may come at any moment: the
    undo is registered first and the handlers are installed last."""
    if threading.current_thread() is not threading.main_thread():  # signal.signal works there only
        return
    _state.update(signum=None, caught=False, unraisablehook=sys.unraisablehook)
    r, w = os.pipe()
    os.set_blocking(w, False)
    done = threading.Event()
    stopper = threading.Thread(target=_hard_stop, args=(r, done), name="neurocompile-hard-stop", daemon=True)
    stopper.start()
    saved: dict[int, Any] = {}
    old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)

    def restore() -> None:
        _state["caught"] = True  # a signal the thread re-sends meanwhile is ignored, not raised ...
        done.set()
        signal.set_wakeup_fd(old_fd)
        os.close(w)  # the thread reads EOF (if it still reads) and ends
        stopper.join(1.0)  # ... and after this none is in flight when the old handlers return
        for s, handler in saved.items():
            signal.signal(s, handler)
        sys.unraisablehook = _state["unraisablehook"]

    _state["restore"] = restore
    sys.unraisablehook = _quiet_unraisable
    for s in _SIGNALS:
        saved[s] = signal.signal(s, _on_signal)


def _restore_signals() -> None:
    restore = _state.pop("restore", None)
    if restore is not None:
        restore()


def said() -> None:
    """The CLI has said its last word (an error, under torchrun): a signal from now on is ignored, not told
    (torchrun sends SIGTERM to every rank as soon as one exits non-zero)."""
    _state["caught"] = True


def _interrupted(signum: int) -> int:
    _state["caught"] = True
    _say(f"neurocompile: interrupted by {signal.Signals(signum).name}")
    return 128 + signum
