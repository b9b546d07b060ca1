"""The entry point ``neurocompile`` (``neurocompile.cli:main``): the subcommand table, the top-level help and version,
and the exit codes.

Exit codes: 0 success, 1 a model/conversion/target error (one paragraph on stderr), 2 bad usage,
3 an internal error (a bug: set NEUROCOMPILE_DEBUG=1 for the traceback), 128 + the signal number
when stopped by SIGINT (130), SIGTERM (143) or SIGHUP (129): a Lava run's processes and temp files are
removed first, and --json / --save-ir outputs appear only after a successful run.
"""
from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

from neurocompile.cli import estimate, evaluate, export, inspect, run, signals, verify
from neurocompile.cli.options import UsageError
from neurocompile.cli.printing import _say
from neurocompile.errors import NeurocompileError


@dataclass(frozen=True)
class Subcommand:
    """One subcommand: its parser, its handler (exit code), and what the top-level help says of it."""

    parser: Callable[[], argparse.ArgumentParser]
    handler: Callable[[argparse.Namespace], int]
    summary: str
    example: str


def _subcommands() -> dict[str, Subcommand]:
    """Every subcommand once: what it does and one example (the top-level --help lists them)."""
    return {
        "run": Subcommand(run._run_parser, run._run,
                          "convert and run on a target, compared with the ANN (the default: "
                          "'neurocompile MODEL ...' is 'neurocompile run MODEL ...')",
                          "neurocompile run examples/digits_cqrelu.onnx --input examples/digits_test.npy"),
        "inspect": Subcommand(inspect._inspect_parser, inspect._inspect,
                              "layers, shapes, parameters, neurons and synapses",
                              "neurocompile inspect examples/digits_cqrelu.onnx --passes casc"),
        "export": Subcommand(export._export_parser, export._export,
                             "write a deployable file (neurocompile HDF5 artifact, lava-dl netx, NIR)",
                             "neurocompile export examples/digits_cqrelu.onnx -o net.h5"),
        "verify": Subcommand(verify._verify_parser, verify._verify,
                             "re-run an artifact's reference inputs here and on lava-sim",
                             "neurocompile verify net.h5"),
        "evaluate": Subcommand(evaluate._evaluate_parser, evaluate._evaluate,
                               "accuracy over time steps, per-layer diagnosis, plots and an HTML report",
                               "neurocompile evaluate examples/digits_cqrelu.onnx --input examples/digits_test.npy "
                               "--labels examples/digits_test_labels.npy --report report.html"),
        "estimate": Subcommand(estimate._estimate_parser, estimate._estimate,
                               "Loihi 2 resources, spikes, synaptic operations, energy",
                               "neurocompile estimate examples/digits_cqrelu.onnx --input examples/digits_test.npy"),
    }


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("neurocompile")
    except PackageNotFoundError:  # pragma: no cover - run from a source tree without installing
        return "unknown (not installed)"


def _top_help() -> str:
    cmds = _subcommands()
    width = max(map(len, cmds))
    lines = ["usage: neurocompile [--version] [-h] SUBCOMMAND ...",
             "       neurocompile MODEL [options]          (= neurocompile run MODEL [options])", "",
             "A deployment compiler: CQReLU ANNs and IDSNN students (ONNX) -> lossless spiking networks for Lava /",
             "Loihi 2. Each subcommand has its own --help, with its options and their defaults.", "",
             "subcommands:"]
    for name, c in cmds.items():
        lines += [f"  {name:<{width}}  {c.summary}", f"  {'':<{width}}  example: {c.example}"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        signals._install_signal_handlers()
        cmds = _subcommands()
        if not argv:
            raise UsageError("the following arguments are required: model (or a subcommand: "
                             f"{', '.join(cmds)}; see 'neurocompile --help')")
        if argv[0] in ("-h", "--help"):
            print(_top_help(), end="")
            code = 0
        elif argv[0] == "--version":
            print(f"neurocompile {_version()}")
            code = 0
        elif argv[0] in cmds:
            c = cmds[argv[0]]
            code = c.handler(c.parser().parse_args(argv[1:]))
        else:
            code = run._run(run._run_parser().parse_args(argv))  # looked up now: a test may replace it
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not at interpreter exit
        return code
    except KeyboardInterrupt as exc:
        return signals._interrupted(getattr(exc, "signum", signal.SIGINT))
    except UsageError as err:
        _say(f"neurocompile: error: {err}")
        return 2
    except BrokenPipeError:  # the reader of stdout went away (| head): exit quietly as SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except NeurocompileError as err:
        if signals._state["signum"] is not None:  # an error on the way out of an interrupted run
            return signals._interrupted(signals._state["signum"])
        _say(f"neurocompile: error: {err}")
        return 1
    except Exception as exc:  # noqa: BLE001 - never a raw traceback for users
        if signals._state["signum"] is not None:  # a library turned our Interrupted into another exception
            return signals._interrupted(signals._state["signum"])
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # stdout on a full disk (or /dev/full)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            _say(f"neurocompile: error: cannot write the output ({exc.strerror})")
            return 1
        if os.environ.get("NEUROCOMPILE_DEBUG"):
            raise
        _say(f"neurocompile: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}. This is a bug; "
             "rerun with NEUROCOMPILE_DEBUG=1 for the traceback and report it.")
        return 3
    finally:
        signals._restore_signals()
