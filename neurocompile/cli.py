"""Command line: a thin front over neurocompile.api.

    neurocompile inspect MODEL.onnx [--passes none|optimize|casc]
    neurocompile MODEL.onnx [--target reference] [--steps T] [--levels L] [--neuron cif|if]
                 [--input X.npy] [--json OUT.json] ...

Exit codes: 0 success, 1 a model/conversion/target error (one paragraph on stderr), 2 bad usage,
3 an internal error (a bug: set NEUROCOMPILE_DEBUG=1 for the traceback), 128 + the signal number
when stopped by SIGINT (130), SIGTERM (143) or SIGHUP (129): a Lava run's processes and temp files are
removed first, and --json / --save-ir outputs appear only after a successful run.
"""
from __future__ import annotations

import argparse
import errno
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, NoReturn, Sequence

import numpy as np

from neurocompile.errors import NeurocompileError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one paragraph (argparse prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


class UsageError(NeurocompileError):
    """A bad option value or output path: exit 2, like argparse's own usage errors."""


def _inspect_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="neurocompile inspect", description="Print a model's layers, shapes and "
                                "parameter counts as neurocompile sees them.")
    p.add_argument("model", help="ONNX file, NIR file (.nir), neurocompile artifact (.h5) or saved IR (.json)")
    from neurocompile.passes import PIPELINES

    p.add_argument("--passes", choices=sorted(PIPELINES), default="optimize",
                   help="show the graph after this pipeline (default: optimize = canonicalize + fold_batchnorm)")
    p.add_argument("--log-passes", action="store_true", help="also print what every pass changed")
    p.add_argument("--steps", type=int, help="NIR files: the number of input steps T (what --passes idsnn schedules)")
    _nir_options(p)
    return p


def _nir_options(p: argparse.ArgumentParser) -> None:
    """How a NIR file's ODE neurons become steps (every subcommand that reads a model takes them)."""
    p.add_argument("--dt", type=float, help="NIR files: the time step in seconds that discretizes the neurons' ODEs "
                   "(default 1e-4, snnTorch's); --steps is then the number of input steps T")
    p.add_argument("--discretization", choices=("snntorch", "euler", "zoh"),
                   help="NIR files: how LIF ODEs become steps (default snntorch: forward Euler, beta = 1 - dt/tau, "
                        "as snnTorch exports and imports)")


def _conversion_options(p: argparse.ArgumentParser) -> None:
    """The options that decide how a model converts: a run and an export take the same ones."""
    from neurocompile.limits import MAX_GAMMA, MAX_LEVELS, MAX_STEPS

    p.add_argument("--steps", type=int, help=f"total time steps T, at most {MAX_STEPS:,} (default: the schedule's predicted settling step)")
    p.add_argument("--levels", type=int, help=f"quantization levels L, at most {MAX_LEVELS:,} (for calibrated ReLU nets; must match a CQReLU net)")
    p.add_argument("--neuron", choices=["cif", "if"], default="cif", help="cif (lossless) or if (baseline)")
    p.add_argument("--gamma", type=int, default=1, help=f"max spikes per step for CIF (>1: graded spikes; at most {MAX_GAMMA:,})")
    p.add_argument("--calibrate", help=".npy calibration inputs for plain-ReLU (lossy) conversion")
    p.add_argument("--percentile", type=float, default=99.9, help="calibration percentile in (0, 100] (default 99.9)")
    p.add_argument("--fixed-point", action="store_true",
                   help="integer weights/thresholds (8-bit weights, lossy); lava-sim runs Lava's fixed_pt models")
    p.add_argument("--t-wake", type=int, help="CIF wake steps, a divisor of L (default L): a shorter wake phase with "
                   "graded spikes (--gamma) reaches the exact readout in fewer steps")
    p.add_argument("--latency", choices=("default", "min"), default="default",
                   help="min: choose --t-wake and --gamma for the fewest steps to the exact readout within "
                        "--max-payload-bits (with T_wake = 1 and gamma = L: depth x delay + 1 steps); default: T_wake = L")
    p.add_argument("--max-payload-bits", type=int, default=24,
                   help="signed graded-spike payload for --latency min (default 24, Loihi 2's largest)")
    _nir_options(p)


def _load(a: argparse.Namespace) -> Any:
    """The model, with the NIR import options (a NIR file has no T: --steps gives it)."""
    from neurocompile import api
    from neurocompile.frontends.nir import is_nir

    if is_nir(a.model):
        if a.dt is not None and not (math.isfinite(a.dt) and a.dt > 0):
            raise UsageError(f"--dt {a.dt:g}: the time step must be a positive number of seconds")
        return api.load(a.model, dt=a.dt, discretization=a.discretization, time_steps=getattr(a, "steps", None))
    if a.dt is not None or a.discretization is not None:
        raise UsageError(f"--dt and --discretization apply to NIR files (.nir); {a.model} is not one")
    return api.load(a.model)


def _steps_to_convert(a: argparse.Namespace, g: Any) -> int | None:
    """T for api.convert: --steps; for a NIR student none (it took --steps as its T at import); for a CIF network read
    from neurocompile's NIR extension, --steps or else, on the reference target (no synaptic delay, as the file was
    written), the T it was exported with."""
    from neurocompile import api

    nir = g.meta.get("nir")
    if not nir:
        return a.steps
    if api.is_student(g):
        return None
    exported = (nir.get("extension") or {}).get("steps") if getattr(a, "target", "reference") == "reference" else None
    return a.steps or exported


def _convert(a: argparse.Namespace, g: Any, **options: Any) -> Any:
    """api.convert, its refusals naming the model file."""
    from neurocompile import api

    try:
        return api.convert(g, **options)
    except NeurocompileError as err:
        raise err.at(a.model)


def _conversion_kwargs(a: argparse.Namespace, g: Any) -> dict[str, Any]:
    """api.convert's options as the user gave them; --latency min resolves to (t_wake, gamma) from the levels."""
    from neurocompile import api

    kw = dict(neuron=a.neuron, gamma=a.gamma, levels=a.levels, percentile=a.percentile,
              steps=_steps_to_convert(a, g), fixed_point=a.fixed_point, t_wake=a.t_wake)
    if a.latency == "min":
        if a.t_wake is not None or a.gamma != 1:
            raise UsageError("--latency min chooses --t-wake and --gamma itself: give either --latency min or them")
        if a.neuron != "cif" or api.is_student(g):
            raise UsageError("--latency min shortens a CIF network's wake phase: "
                             + ("an LIF student runs its own T steps" if api.is_student(g) else "drop --neuron if"))
        levels = api.network_levels(g) or a.levels or 8
        kw["t_wake"], kw["gamma"] = api.latency_options(levels, a.max_payload_bits)
    elif a.max_payload_bits != 24:
        raise UsageError("--max-payload-bits applies to --latency min", hint="Add --latency min, or drop it")
    return kw


def _latency_given(a: argparse.Namespace) -> list[tuple[str, bool]]:
    return [("--t-wake", a.t_wake is not None), ("--latency", a.latency != "default"),
            ("--max-payload-bits", a.max_payload_bits != 24)]


def _export_parser() -> argparse.ArgumentParser:
    from neurocompile.targets import available

    p = _Parser(prog="neurocompile export", description="Convert a model and write one deployable file (HDF5): "
                "the converted network, its schedule, provenance and reference inputs with their ANN and SNN "
                "outputs, so 'neurocompile verify' can check it anywhere without the ONNX file.")
    p.add_argument("model", help="ONNX file, NIR file (.nir), neurocompile artifact (.h5) or saved IR (.json)")
    p.add_argument("-o", "--output", required=True, help="file to write (.h5 artifact, .net for --format netx, "
                   ".nir for --format nir)")
    p.add_argument("--format", choices=("artifact", "netx", "nir"), default="artifact",
                   help="artifact: neurocompile's own HDF5 (any network; default); netx: lava-dl's netx HDF5 for "
                        "feed-forward LIF students, converted to fixed point (load with "
                        "netx.hdf5.Network(path, reset_interval=T, reset_offset=1, input_message_bits=8)); nir: a NIR "
                        "file (nir.read, snnTorch's import_from_nir): LIF students exactly, CIF networks as "
                        "neurocompile's extension (labelled approximations: nir.IF for CIF, nir.AvgPool2d for max "
                        "pooling; exact metadata); --dt sets the "
                        "time step (default 1e-4, snnTorch's)")
    p.add_argument("--target", default="lava-sim", choices=available(),
                   help="convert for this target's synaptic delay (default: lava-sim; the reference target runs it too)")
    p.add_argument("--input", help=".npy inputs; the first --samples become the reference inputs (default: random)")
    p.add_argument("--samples", type=int, default=8, help="reference inputs to store (default 8)")
    _conversion_options(p)
    return p


def _verify_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="neurocompile verify", description="Re-run an artifact's reference inputs on the reference "
                "simulator and on lava-sim: each must reproduce the readout stored at export; the error against "
                "the stored ANN outputs is shown beside it. Exit 0 when every target matches, 1 otherwise.")
    p.add_argument("artifact", help="artifact file written by 'neurocompile export' (.h5)")
    p.add_argument("--target", choices=["reference", "lava-sim", "all"], default="all", help="default: all")
    p.add_argument("--json", dest="json_out", help="write the report as JSON to this file")
    return p


def _estimate_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="neurocompile estimate", description="Loihi 2 resources of a converted network, per layer: "
                "neurons, synapses (shared kernel weights and unrolled connections), synaptic memory, fan-in, "
                "axons, cores and chips (public per-core limits, sources in the table); with --input, spikes and "
                "synaptic operations per inference from a simulation, the ANN's MACs beside them, and an energy "
                "estimate (per-operation figures and their sources printed with it).",
                epilog="example: neurocompile estimate examples/digits_cqrelu.onnx --input examples/digits_test.npy "
                       "--json resources.json")
    p.add_argument("model", help="ONNX file, saved IR (.json) or artifact (.h5)")
    p.add_argument("--hw", choices=["loihi2"], default="loihi2", help="hardware whose limits apply (default loihi2)")
    p.add_argument("--input", help=".npy inputs for the activity part (spikes, synaptic ops, energy)")
    p.add_argument("--samples", type=int, default=16, help="inputs of --input to simulate (default 16)")
    p.add_argument("--json", dest="json_out", help="write the estimate as JSON to this file")
    _conversion_options(p)
    return p


def _evaluate_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="neurocompile evaluate", description="Accuracy over time steps and a per-layer diagnosis: "
                "ANN and SNN accuracy, argmax agreement and logit error at every step (or --at), the first step "
                "at which the SNN equals the ANN, per layer the neurons with more or fewer spikes than the ANN's "
                "level, when each layer settles and where error first appears, spike statistics and synaptic "
                "operations against the ANN's MACs; optionally PNG plots and one self-contained HTML report.",
                epilog="example: neurocompile evaluate examples/digits_cqrelu.onnx --input examples/digits_test.npy "
                       "--labels examples/digits_test_labels.npy --at 4,8,16 --plot plots --report report.html. "
                       "On N processes: torchrun --nproc-per-node N -m neurocompile evaluate ... (each evaluates a "
                       "shard, the metrics are all-reduced; rank 0 alone prints and writes the files)")
    p.add_argument("model", help="ONNX file, saved IR (.json), artifact (.h5) or NIR file (.nir)")
    p.add_argument("--input", required=True, help=".npy inputs, shape (N, *input_shape)")
    p.add_argument("--labels", help=".npy class labels (N,) for accuracies (default: agreement with the ANN only)")
    p.add_argument("--at", help="comma-separated steps to report, e.g. 4,8,16 (default: every step)")
    p.add_argument("--baseline", action="store_true", help="also run the IF baseline at the same T")
    p.add_argument("--exact", action="store_true", help="every spike decision exact (proved in float32 or made in "
                   "float64; readout in float64) instead of the fast float32 default")
    p.add_argument("--batch", type=int, default=256, help="samples simulated at a time (default 256)")
    p.add_argument("--device", help="torch device for the simulation (cpu, cuda, cuda:N; default cpu; under "
                   "torchrun, cuda is each process's cuda:LOCAL_RANK)")
    p.add_argument("--json", dest="json_out", help="write the evaluation as JSON to this file")
    p.add_argument("--plot", dest="plot_dir", help="write PNG plots into this folder (created if missing)")
    p.add_argument("--report", help="write one self-contained HTML report (plots embedded) to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _conversion_options(p)
    return p


def _check_evaluate_options(a: argparse.Namespace) -> list[int] | None:
    """evaluate's option values, before any work (UsageError: exit 2): the conversion limits, --batch, and --at
    (steps are numbered from 1: step t is the state after t steps; at most --steps where given, else the run's T
    is known only after conversion and evaluate checks it). Returns the --at steps (None: every step)."""
    _check_conversion_options(a)
    if a.batch < 1:
        raise UsageError(f"--batch {a.batch}: simulate at least one sample at a time")
    if a.at is None:  # not given: every step (--at '' is refused below, not read as "every step")
        return None
    try:
        at = [int(v) for v in a.at.split(",")]
    except ValueError:
        raise UsageError(f"--at {a.at!r}: give comma-separated step numbers, e.g. 4,8,16") from None
    span = f"[1, {a.steps}]" if a.steps else "[1, T] (T: --steps, or the schedule's settling step)"
    for t in at:
        if t < 1:
            raise UsageError(f"--at {t}: steps are numbered from 1 (step t is the state after t steps); give steps "
                             f"in {span}")
        if a.steps and t > a.steps:
            raise UsageError(f"--at {t} is beyond --steps {a.steps}: give steps in {span}")
    return at


def _evaluate(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from neurocompile import api, distributed
    from neurocompile.evaluate import evaluate

    rank, world = distributed.launched()  # torchrun --nproc-per-node N: each rank evaluates a shard (evaluate)
    if rank and not getattr(a, "silent_rank", False):  # rank 0 alone prints and writes; it says others' errors
        import contextlib

        b = argparse.Namespace(**{**vars(a), "json_out": None, "report": None, "plot_dir": None, "quiet": True,
                                  "silent_rank": True})
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
                return _evaluate(b)
        except UsageError:
            return 2
        except NeurocompileError:
            return 1
    _check_evaluate_outputs(a)
    at = _check_evaluate_options(a)
    if a.device:
        _check_device(a.device, "reference")
    g = _load(a)
    g.meta.setdefault("name", os.path.basename(a.model))  # the report's title
    x = api.load_input(a.input, api.first_input_shape(g))
    y = a.labels or None  # the path: evaluate reads it and checks it against the model's classes, naming the file
    kw = {} if g.schedule is not None else {k: v for k, v in _conversion_kwargs(a, g).items() if k != "steps"}
    calib = api.load_input(a.calibrate, api.first_input_shape(g)) if a.calibrate else None
    if calib is not None:
        kw["calibration"] = calib
    with tqdm(total=len(range(rank, len(x), world)), desc="evaluate" if world < 2 else f"evaluate (rank 0 of "
              f"{world})", unit="sample", disable=a.quiet or None, leave=False, file=sys.stderr) as bar:
        ev = evaluate(g, x, labels=y, steps=None if g.meta.get("nir") else a.steps, at=at, exact=a.exact,
                      batch=a.batch, device=a.device, baseline=a.baseline,
                      progress=lambda done, total: bar.update(done - bar.n), **kw)
    distributed.shutdown()  # the process group evaluate made under torchrun (none otherwise)
    if getattr(a, "silent_rank", False):
        return 0
    print(ev.table())
    written = []
    if a.plot_dir:
        from neurocompile.report import write_plots

        written += write_plots(ev, a.plot_dir)
    if a.report:
        from neurocompile.report import write_html

        written += write_html(ev, a.report)
    if a.json_out:
        _write_json(a.json_out, ev.to_dict())
        written.append(a.json_out)
    for path in written:
        print(f"wrote {path}")
    return 0


def _estimate(a: argparse.Namespace) -> int:
    from neurocompile import api
    from neurocompile.estimate import estimate

    if a.json_out:
        _check_output("--json", a.json_out)
    if a.samples < 1:
        raise UsageError(f"--samples {a.samples}: simulate at least one input")
    g = _load(a)
    x = api.load_input(a.input, api.first_input_shape(g))[: a.samples] if a.input else None
    calib = api.load_input(a.calibrate, api.first_input_shape(g)) if a.calibrate else None
    if g.schedule is None:
        g = _convert(a, g, calibration=calib, target="lava-sim", **_conversion_kwargs(a, g))
    else:
        given = [f for f, on in (("--neuron", a.neuron != "cif"), ("--gamma", a.gamma != 1), ("--levels", a.levels),
                                 ("--calibrate", a.calibrate), ("--fixed-point", a.fixed_point), ("--steps", a.steps),
                                 ("--percentile", a.percentile != 99.9), *_latency_given(a)) if on]
        if given:
            raise UsageError(f"{a.model} is a converted network: {', '.join(given)} cannot apply",
                             hint="Estimate the original ONNX model with these options instead")
    e = estimate(g, a.hw, x=x)
    print(e.table())
    if a.json_out:
        _write_json(a.json_out, e.to_dict())
        print(f"wrote {a.json_out}")
    return 0


def _run_parser() -> argparse.ArgumentParser:
    from neurocompile.limits import MAX_DELAY
    from neurocompile.targets import available

    p = _Parser(
        prog="neurocompile run",
        description="Convert a CQReLU ANN (ONNX) into a lossless CIF spiking network (or an IF baseline; an IDSNN "
                    "LIF student or a saved IR runs as it is) and run it on a target, compared with an independent "
                    "reference. Use 'neurocompile inspect MODEL' to look at a model.")
    p.add_argument("model", help="ONNX file, NIR file (.nir), neurocompile artifact (.h5) or saved IR (.json)")
    p.add_argument("--target", default="reference", choices=available(), help="where to run (default: reference)")
    _conversion_options(p)
    p.add_argument("--delay", type=int, help=f"per-layer synaptic delay to model, 0 to {MAX_DELAY:,} (default: the target's)")
    p.add_argument("--no-balance", action="store_true", help="do not delay-balance merge branches")
    p.add_argument("--normalize-weights", action="store_true", help="rescale weights so thresholds are 1")
    p.add_argument("--input", help=".npy array of inputs, shape (N, *input_shape); compared against the ANN")
    p.add_argument("--device", help="torch device for the reference simulator (cpu, cuda, cuda:N)")
    p.add_argument("--early-stop", action="store_true", help="stop once the network is quiescent")
    p.add_argument("--exact", action="store_true", help="reference: float64 (the exact mode for proofs) instead of the "
                   "fast float32 default; lava-sim computes in float64 (or fixed point) always")
    p.add_argument("--json", dest="json_out", help="write results as JSON to this file")
    p.add_argument("--save-ir", help="save the converted IR (path.json + path.npz)")
    p.add_argument("--log-passes", action="store_true", help="print what every pass changed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--artifacts", help="--target loihi2: folder for the deployable files (default: MODEL-loihi2 "
                                       "beside the current directory)")
    return p


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


def _say(line: str) -> None:
    """One line on stderr; after SIGHUP the terminal may be gone, which must not become a traceback."""
    try:
        print(line, file=sys.stderr, flush=True)
    except OSError:
        pass


def _warn(message: str) -> None:
    _say(f"neurocompile: warning: {' '.join(message.split())}")


def _interrupted(signum: int) -> int:
    _state["caught"] = True
    _say(f"neurocompile: interrupted by {signal.Signals(signum).name}")
    return 128 + signum


@dataclass(frozen=True)
class Subcommand:
    parser: Callable[[], argparse.ArgumentParser]
    handler: Callable[[argparse.Namespace], int]
    summary: str
    example: str


def _subcommands() -> dict[str, Subcommand]:
    """Every subcommand once: what it does and one example (the top-level --help lists them)."""
    return {
        "run": Subcommand(_run_parser, _run, "convert and run on a target, compared with the ANN (the default: "
                          "'neurocompile MODEL ...' is 'neurocompile run MODEL ...')",
                          "neurocompile run examples/digits_cqrelu.onnx --input examples/digits_test.npy"),
        "inspect": Subcommand(_inspect_parser, _inspect, "layers, shapes, parameters, neurons and synapses",
                              "neurocompile inspect examples/digits_cqrelu.onnx --passes casc"),
        "export": Subcommand(_export_parser, _export, "write a deployable file (neurocompile HDF5 artifact, lava-dl "
                             "netx, NIR)", "neurocompile export examples/digits_cqrelu.onnx -o net.h5"),
        "verify": Subcommand(_verify_parser, _verify, "re-run an artifact's reference inputs here and on lava-sim",
                             "neurocompile verify net.h5"),
        "evaluate": Subcommand(_evaluate_parser, _evaluate, "accuracy over time steps, per-layer diagnosis, "
                               "plots and an HTML report",
                               "neurocompile evaluate examples/digits_cqrelu.onnx --input examples/digits_test.npy "
                               "--labels examples/digits_test_labels.npy --report report.html"),
        "estimate": Subcommand(_estimate_parser, _estimate, "Loihi 2 resources, spikes, synaptic operations, energy",
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
        _install_signal_handlers()
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
            code = _run(_run_parser().parse_args(argv))
        sys.stdout.flush()  # a full disk or a closed pipe shows here, not at interpreter exit
        return code
    except KeyboardInterrupt as exc:
        return _interrupted(getattr(exc, "signum", signal.SIGINT))
    except UsageError as err:
        _say(f"neurocompile: error: {err}")
        return 2
    except BrokenPipeError:  # the reader of stdout went away (| head): exit quietly as SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except NeurocompileError as err:
        if _state["signum"] is not None:  # an error on the way out of an interrupted run
            return _interrupted(_state["signum"])
        _say(f"neurocompile: error: {err}")
        return 1
    except Exception as exc:  # noqa: BLE001 - never a raw traceback for users
        if _state["signum"] is not None:  # a library turned our Interrupted into another exception
            return _interrupted(_state["signum"])
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
        _restore_signals()


_OPTION_NAMES = {"steps": "--steps", "levels": "--levels", "gamma": "--gamma", "delay": "--delay",
                 "percentile": "--percentile"}


def _check_conversion_options(a: argparse.Namespace) -> None:
    """The limits api.convert enforces (neurocompile.limits), before any work and named as the user typed them:
    exit 2."""
    from neurocompile import limits
    from neurocompile.errors import ConversionError

    try:
        limits.check_options(steps=a.steps, levels=a.levels, gamma=a.gamma, delay=getattr(a, "delay", None),
                             percentile=a.percentile, names=_OPTION_NAMES)
    except ConversionError as err:
        raise UsageError(err.message) from None


def _check_args(a: argparse.Namespace) -> None:
    """Refuse bad option values and unwritable outputs before any work (UsageError: exit 2)."""
    if not hasattr(a, "levels"):  # inspect: the model, which api.load checks, and a NIR file's T
        if getattr(a, "steps", None) is not None and a.steps < 1:
            raise UsageError(f"--steps {a.steps}: a network runs at least one step")
        return
    _check_conversion_options(a)
    if a.device:
        _check_device(a.device, a.target)
    from neurocompile.targets import get_target

    own = get_target(a.target).synapse_delay if a.delay is not None and a.target != "reference" else a.delay
    if a.delay != own:  # the reference simulator models any delay; a real target has its own
        raise UsageError(f"--delay {a.delay} does not match {a.target}, whose synapses delay by {own} step(s)",
                         hint="Omit --delay for this target")
    outputs = [("--json", a.json_out)] if a.json_out else []
    if a.save_ir:  # Graph.save writes BASE.json and BASE.npz whatever the extension given
        if os.path.isdir(a.save_ir):
            raise UsageError(f"--save-ir {a.save_ir} is a directory", hint="Give a file name such as model.json")
        base = os.path.splitext(a.save_ir)[0]
        outputs += [("--save-ir", base + ".json"), ("--save-ir", base + ".npz")]
    _check_outputs(outputs)


def _check_output(flag: str, path: str) -> Any:
    """The :mod:`neurocompile.atomic` rule, before any work: a symlink is written through, /dev/null, a terminal or a
    FIFO in place; a directory, a disk, a missing or unwritable folder are refused (exit 2). Returns its Target."""
    from neurocompile.atomic import OutputPathError, check_output

    try:
        return check_output(path)
    except OutputPathError as err:
        raise UsageError(f"{flag} {err.message}", hint=err.hint) from None


def _check_outputs(outputs: Sequence[tuple[str, str]]) -> None:
    """Check every (flag, path) of one command, and refuse two that would write the same regular file (compared by
    real path: a symlink, ./x and x; a device or pipe such as /dev/null may take several)."""
    seen: dict[str, str] = {}
    for flag, path in outputs:
        t = _check_output(flag, path)
        if t.direct:
            continue
        if t.real in seen:
            same = "" if os.path.abspath(path) == t.real else f" ('{t.real}')"
            raise UsageError(f"{flag} and {seen[t.real]} would both write {path}{same}", hint="Give each its own file")
        seen[t.real] = flag


def _check_evaluate_outputs(a: argparse.Namespace) -> None:
    """evaluate's --json, --report and --plot DIR (its PNGs) before the evaluation runs: each writable, none the
    same file as another."""
    outputs = [(flag, path) for flag, path in (("--json", a.json_out), ("--report", a.report)) if path]
    if a.plot_dir:
        from neurocompile.report import plot_paths

        outputs += _check_folder("--plot", a.plot_dir, plot_paths(a.plot_dir).values())
    _check_outputs(outputs)


def _check_folder(flag: str, path: str, files: Any = ()) -> list[tuple[str, str]]:
    """An output folder (created if missing): it, or its nearest existing ancestor, must be a directory one can
    write in (not under a regular file, not in /proc); exit 2 otherwise. Returns ``files`` (the paths the command
    writes in it) as outputs for :func:`_check_outputs` where the folder exists; in a folder still to be made they
    can clash with nothing (every other output's folder exists)."""
    from neurocompile.atomic import OutputPathError, check_folder

    try:
        real = check_folder(path)
    except OutputPathError as err:
        raise UsageError(f"{flag} {err.message}", hint=err.hint) from None
    return [(flag, f) for f in files] if os.path.isdir(real) else []


def _check_device(device: str, target: str) -> None:
    import torch

    try:
        d = torch.device(device)
    except (RuntimeError, ValueError):
        d = None
    if d is None or d.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device} is not a device the reference simulator runs on (cpu, cuda or cuda:N)")
    if d.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise UsageError(f"--device {device}: no CUDA GPU is available here (torch.cuda.is_available() is False)",
                             hint="Use --device cpu")
        if d.index is not None and d.index >= n:
            raise UsageError(f"--device {device}: there are {n} CUDA device(s) (cuda:0 to cuda:{n - 1})")
    if target != "reference":
        _warn(f"--device is for --target reference; {target} ignores it")


def _refuse_conversion_options(a: argparse.Namespace) -> None:
    """A saved IR is converted already: options that would convert it differently cannot apply."""
    given = [flag for flag, set_ in (("--neuron", a.neuron != "cif"), ("--gamma", a.gamma != 1), ("--delay", a.delay is not None),
                                     ("--levels", a.levels is not None), ("--calibrate", a.calibrate is not None),
                                     ("--fixed-point", a.fixed_point), ("--normalize-weights", a.normalize_weights),
                                     ("--no-balance", a.no_balance), *_latency_given(a)) if set_]
    if given:
        raise UsageError(f"{a.model} is a converted network (a saved IR with its schedule): {', '.join(given)} "
                         "cannot apply", hint="Convert the original ONNX model with these options instead")


def _warn_unused_options(a: argparse.Namespace, snn: Any) -> None:
    """Say so when an option given cannot act on this network, instead of ignoring it silently."""
    from neurocompile import api

    if api.is_student(snn):
        unused = [f for f, on in (("--neuron", a.neuron != "cif"), ("--gamma", a.gamma != 1), ("--levels", a.levels),
                                   ("--calibrate", a.calibrate),
                                   ("--normalize-weights", getattr(a, "normalize_weights", False))) if on]
        if unused:
            _warn(f"{', '.join(unused)} ignored: an LIF student runs its own neurons")
        return
    if a.neuron == "if" and a.gamma != 1:
        _warn("--gamma ignored: it bounds the spikes of CIF neurons, and --neuron if was chosen")
    if a.calibrate and not snn.meta.get("lossy_layers"):
        _warn("--calibrate ignored: the network has no plain ReLU to calibrate (its CQReLUs carry their own λ)")


def _warn_schedule(a: argparse.Namespace, snn: Any) -> None:
    """Warn when an explicit --steps ends a lossless (CIF) network's run before it has settled; the
    IF baseline and LIF students claim no losslessness, and the default T is the settling step."""
    from neurocompile import api

    s = snn.schedule
    if a.steps is None or not s.get("sleep", True) or not api.lossless_kind(snn):
        return
    if a.steps < s["t_wake"]:
        _warn(f"the result is not lossless: T={a.steps} is shorter than the wake phase T_wake={s['t_wake']}, "
              "so part of the input never enters the network")
    elif a.steps < s["predicted_settle"]:
        _warn(f"the result is not lossless: T={a.steps} is below the predicted settling step "
              f"{s['predicted_settle']} (omit --steps to run until then)")


def _inspect(a: argparse.Namespace) -> int:
    from neurocompile import api

    from neurocompile.frontends.nir import is_nir

    _check_args(a)
    if a.steps is not None and not is_nir(a.model):
        raise UsageError(f"--steps applies to NIR files here (their T); {a.model} is not one")
    log: list = []
    try:
        g = api.run_pipeline(_load(a), a.passes, log)
    except NeurocompileError as err:
        raise err.at(a.model)
    nir = g.meta.get("nir")
    if nir:  # a NIR file: its version and how its ODEs became steps
        print(f"model: {a.model}  (NIR {nir.get('version', '?')}, dt={nir['dt']:g} s from {nir.get('dt_from', '?')}, "
              f"discretization {nir['discretization']})")
    else:
        print(f"model: {a.model}  (opset {g.meta.get('opset', '?')}, producer {g.meta.get('producer') or '?'})")
    print(g.summary())
    print(_neuron_synapse_counts(g))
    if a.log_passes:
        print("\n".join(str(r) for r in log))
    return 0


def _neuron_synapse_counts(g: Any) -> str:
    """One line: neurons (units of every activation or neuron layer, per sample) and synapses (connections of every
    weighted layer, each output unit times its fan-in: what a spiking network unrolls), beside the shared weights."""
    from math import prod

    from neurocompile.ops import op_of

    neurons = layers = synapses = weights = 0
    for n in g.topo():
        op = op_of(n)
        units = prod(g.shapes[n.output])
        if op.spiking or op.quantizer or op.calibratable:
            neurons, layers = neurons + units, layers + 1
        elif op.synaptic and "weight" in n.params:
            w = np.asarray(n.params["weight"])
            out_channels = g.shapes[n.output][0] if g.shapes[n.output] else 1
            synapses += units * (w.size // max(out_channels, 1))
            weights += w.size
    return (f"neurons: {neurons:,} in {layers} layer(s) per sample; synapses: {synapses:,} connections "
            f"({weights:,} weights, shared where convolutions repeat them)")


def _export(a: argparse.Namespace) -> int:
    from neurocompile import api
    from neurocompile.frontends.nir import is_nir

    _check_conversion_options(a)
    if a.samples < 1:
        raise UsageError(f"--samples {a.samples}: store at least one reference input")
    _check_output("-o", a.output)
    g = _load_for_nir_export(a) if a.format == "nir" else _load(a)
    if g.schedule is not None:  # converted already (a saved IR or artifact): conversion options cannot apply
        given = [f for f, on in (("--neuron", a.neuron != "cif"), ("--gamma", a.gamma != 1), ("--levels", a.levels),
                                 ("--calibrate", a.calibrate), ("--fixed-point", a.fixed_point), ("--steps", a.steps),
                                 *_latency_given(a)) if on]
        if given:
            raise UsageError(f"{a.model} is a converted network: {', '.join(given)} cannot apply",
                             hint="Export the original ONNX model with these options instead")
    if a.format == "netx":
        return _export_netx(a, g)
    if a.format == "nir":
        return _export_nir(a, g)
    shape = api.first_input_shape(g)
    x = api.load_input(a.input, shape) if a.input else None
    calib = api.load_input(a.calibrate, shape) if a.calibrate else None
    options = {} if g.schedule is not None else dict(calibration=calib, **_conversion_kwargs(a, g))
    nir_options = dict(dt=a.dt, discretization=a.discretization, time_steps=a.steps) if is_nir(a.model) else None
    art = api.export(a.model, a.output, inputs=x, n_reference=a.samples, target=a.target, nir_options=nir_options,
                     **options)
    s = art.graph.schedule
    sources = ("the reference simulator" if art.ann_reference == "reference simulator"  # a NIR file has no ANN
               else f"{art.ann_reference} and the reference simulator")
    print(f"wrote {a.output}: {len(art.graph.nodes)} nodes, T={s.steps} (T_wake={s.t_wake}), "
          f"{len(art.inputs)} reference input(s) with outputs from {sources}"
          f"{', fixed point' if art.graph.meta.get('fixed_point') else ''}")
    return 0


def _export_netx(a: argparse.Namespace, g) -> int:
    from neurocompile import api
    from neurocompile.errors import ConversionError
    from neurocompile.netx import write_netx

    given = [f for f, on in (("--input", a.input), ("--samples", a.samples != 8), ("--target", a.target != "lava-sim"),
                             ("--neuron", a.neuron != "cif"), ("--gamma", a.gamma != 1), ("--levels", a.levels),
                             ("--calibrate", a.calibrate), ("--percentile", a.percentile != 99.9),
                             *_latency_given(a)) if on]
    if given:
        raise UsageError(f"--format netx writes the network only, converted for Lava in fixed point: {', '.join(given)} "
                         "cannot apply", hint="Drop them (the neurocompile artifact takes reference inputs)")
    converted = g.schedule is not None
    if not api.is_student(g) or (converted and not g.meta.get("fixed_point")):
        raise ConversionError("netx holds feed-forward LIF students (conv and dense layers of CUBA neurons) in fixed "
                              "point; this model is " + ("a converted floating-point network" if api.is_student(g)
                                                         else "an ANN, which converts to CIF neurons netx has no form "
                                                              "for"),
                              file=a.model, hint=f"Export neurocompile's own artifact: neurocompile export {a.model} "
                                                 f"-o net.h5")
    if converted and a.steps:
        raise UsageError(f"{a.model} is a converted network: --steps cannot apply")
    snn = g if converted else _convert(a, g, steps=a.steps, target="lava-sim", fixed_point=True)
    layers = write_netx(snn, a.output)
    s = snn.schedule
    print(f"wrote {a.output}: netx HDF5, {len(layers)} layers ({', '.join(l.type for l in layers)}), fixed point, "
          f"T={s.steps}")
    print(f"load   netx.hdf5.Network(net_config='{a.output}', reset_interval={s.t_wake}, reset_offset=1, "
          f"input_message_bits=8)")
    first = "conv" if layers[1].type == "conv" else "dense"
    layout = "x.transpose(2, 1, 0) (netx's W, H, C)" if first == "conv" else "x.reshape(-1) (C order)"
    print(f"input  round(x * {s.input_scale:g}) as {layout} on each of a sample's {s.t_wake} steps; readout = "
          f"last layer's v / 64 / ({s.t_wake} * {s.readout_scale:.6g})")
    print(f"fixed pt   {fixed_point_summary(snn.meta['fixed_point_report'])}")
    return 0


def _load_for_nir_export(a: argparse.Namespace) -> Any:
    """The model for --format nir: --dt is the written file's time step (and a NIR model's, read with it)."""
    from neurocompile import api
    from neurocompile.frontends.nir import is_nir

    if is_nir(a.model):
        return _load(a)
    if a.discretization is not None:
        raise UsageError(f"--discretization applies to NIR input files; {a.model} is not one (--format nir writes "
                         "snnTorch's convention)")
    return api.load(a.model)


def _export_nir(a: argparse.Namespace, g) -> int:
    from neurocompile import api

    given = [f for f, on in (("--input", a.input), ("--samples", a.samples != 8), ("--target", a.target != "lava-sim"),
                             ("--fixed-point", a.fixed_point)) if on]
    if given:
        raise UsageError(f"--format nir writes the network only, in floating point and without synaptic delays (NIR "
                         f"edges carry none): {', '.join(given)} cannot apply",
                         hint="Drop them (the neurocompile artifact takes reference inputs and fixed point)")
    if g.schedule is not None:
        options = {}
    else:
        calib = api.load_input(a.calibrate, api.first_input_shape(g)) if a.calibrate else None
        options = {k: v for k, v in _conversion_kwargs(a, g).items() if k != "fixed_point"}
        options["calibration"] = calib
    try:
        exp = api.export_nir(g, a.output, dt=a.dt, **options)
    except NeurocompileError as err:
        raise err.at(a.model)
    kinds = ", ".join(f"{n} {t}" for t, n in sorted(exp.types.items()))
    approx = ", ".join(f"{op} as nir.{typ}" for op, typ in exp.approximations().items())
    what = (f"LIF student, T={exp.time_steps} (read out as the mean of the output over T steps)" if exp.kind == "student"
            else f"CIF network as neurocompile's extension, T={exp.time_steps} "
                 f"(T_wake={exp.t_wake}: input and wake gates on for the first {exp.t_wake} steps)")
    if approx:
        what += f"; labelled approximations for other tools, exact metadata for neurocompile: {approx}"
    print(f"wrote {a.output}: NIR {_nir_version()} graph, {len(exp.graph.nodes)} nodes ({kinds}); {what}; "
          f"dt={exp.dt:g} s, snnTorch's convention (tau = dt/(1-beta), r = tau/dt)")
    return 0


def _nir_version() -> str:
    import nir

    return str(nir.version)


def _verify(a: argparse.Namespace) -> int:
    from neurocompile import api

    if a.json_out:
        _check_output("--json", a.json_out)
    targets = ("reference", "lava-sim") if a.target == "all" else (a.target,)
    rep = api.verify(a.artifact, targets)
    prov = rep["provenance"]
    print(f"artifact: {a.artifact} (from {prov.get('source')}, sha256 {str(prov.get('source_sha256'))[:12]}..., "
          f"neurocompile {prov.get('neurocompile')}, {prov.get('created')}); {rep['samples']} reference input(s)")
    print("intact: every part matches the SHA-256 digest recorded at export" + (
        "" if rep["stored_ann_error"] is None else f"; stored ANN vs SNN outputs: rel. error "
        f"{rep['stored_ann_error']:.2g} <= tolerance {rep['ann_tolerance']:.2g} recorded at export"))
    for t in targets:
        r = rep[t]
        if "error" in r:
            print(f"{t:<10} cannot run the network: {r['error']}")
            continue
        vs_ann = (f"; vs ANN ({rep['ann_reference']}): max |error| {r['max_abs_error']:.3g} of max |logit| "
                  f"{r['max_abs_logit']:.3g}, argmax agreement {100 * r['argmax_agreement']:.1f} %"
                  if "max_abs_error" in r else "")
        print(f"{t:<10} {'matches' if r['matches_export'] else 'DIFFERS from'} the export "
              f"(max rel. error {r['max_rel_error_vs_export']:.2g}){vs_ann}")
    if a.json_out:
        from neurocompile.atomic import write_atomic

        text = json.dumps(rep, indent=1, default=float).encode()
        write_atomic({a.json_out: lambda f: f.write(text)})
    print("verified" if rep["ok"] else "NOT verified: a target does not reproduce the exported readout")
    return 0 if rep["ok"] else 1


def _per_step_steps(a: argparse.Namespace, g, x: np.ndarray) -> None:
    """A per-step input (N, T_x, ...) of a NIR network: T = T_x unless --steps or the file says otherwise, and never
    fewer steps than the input holds."""
    T_x = int(x.shape[1])
    T = a.steps or (g.meta.get("time_steps") if g.schedule is None else g.schedule.steps)
    if T is None:  # what load_nir(time_steps=T_x) records
        a.steps = g.meta["time_steps"] = T_x
    elif T_x > int(T):
        raise UsageError(f"{a.input} holds {T_x} steps per sample, more than the {T} steps the run has",
                         hint=f"Run --steps {T_x}, or pass the first {T} steps")


def _run(a: argparse.Namespace) -> int:
    from neurocompile import api, limits
    from neurocompile.reference import reference_for

    _check_args(a)
    if a.artifacts and a.target != "loihi2":
        raise UsageError(f"--artifacts is for --target loihi2 (the target here is {a.target})",
                         hint="Use --target loihi2, or 'neurocompile export' for an artifact file")
    if a.target == "loihi2":
        return _loihi2(a)
    if a.target == "lava-sim":  # Lava's worker imports Lava and torch while the model loads and converts
        from neurocompile.targets.lava.run import prestart

        prestart()
    g = _load(a)
    shape = api.first_input_shape(g)
    calib = api.load_input(a.calibrate, shape) if a.calibrate else None
    if a.input:  # read (and checked: finite numbers, N >= 1) before any work; a NIR network takes spikes per step
        x, source = api.load_input(a.input, shape, per_step=bool(g.meta.get("nir"))), a.input
        if api.is_per_step(x, g):
            _per_step_steps(a, g, x)
    else:
        x, source = api.default_input(shape)
    ref = reference_for(a.model, g, a.target)  # chosen (and the model checked by onnxruntime) before any work
    log: list = []
    if g.schedule is not None:  # a saved IR of a converted network runs as it was converted
        _refuse_conversion_options(a)
        if g.meta.get("nir") and a.steps is not None:  # a NIR network's --steps is its T, fixed at conversion
            raise UsageError(f"{a.model} is a converted NIR network, whose T was fixed when it was converted: --steps "
                             "cannot apply", hint="Convert the NIR file again with --steps T")
        snn = g
    else:
        snn = _convert(a, g, calibration=calib, target=a.target, synapse_delay=a.delay, balance=not a.no_balance,
                       normalize_weights=a.normalize_weights, log=log, **_conversion_kwargs(a, g))
    steps = int(snn.schedule["steps"] if g.meta.get("nir") else a.steps or snn.schedule["steps"])  # NIR: --steps is T
    _warn_schedule(a, snn)
    _warn_unused_options(a, snn)
    limits.check_work(snn, len(x), steps, a.target)
    if a.log_passes:
        print("\n".join(str(r) for r in log))
    sched = snn.schedule
    options = {"device": a.device} if a.device else {}
    if snn.meta.get("fixed_point") and a.target == "lava-sim":
        options["fixed_point"] = True
    if a.exact and a.target == "reference":
        options["exact"] = True
    exe = api.compile(snn, a.target, **options)
    res, settle = _run_settled(a, snn, exe, x, steps, _extends_to(a, g, snn, steps))
    a.neuron = "lif" if api.is_student(snn) else snn.meta.get("neuron", a.neuron)
    _check_finite(res.output, f"the {a.target} run's outputs", x)
    ann = ref.outputs(x)
    if ann is not None:
        _check_finite(ann, f"the reference ({ref.name}) outputs", x)
    rep = api.compare(res.output, ann, res.per_step) if ann is not None else None
    # float32 references may differ by a level where a pre-activation lies within rounding of a boundary
    float_levels = not snn.meta.get("fixed_point")  # fixed point is lossy by its weight rounding, not at levels
    bnd = api.boundary_cases(g, x) if rep is not None and float_levels and ref.name.startswith("onnxruntime") else None
    if bnd is not None and bnd.samples:
        rep.update(api.compare(res.output, ann, exclude=bnd.samples, prefix="outside_boundary_"))
    lossy = snn.meta.get("lossy_layers")
    if a.save_ir:  # outputs only after success (both atomic), so a failed run leaves none
        snn.save(a.save_ir)
    if a.json_out:
        r = rep or {}
        _write_json(a.json_out, {
            "target": a.target, "precision": res.precision, "steps": int(res.steps), "wake_steps": int(sched["t_wake"]),
            "neuron": a.neuron, "synapse_delay": int(sched["synapse_delay"]),
            "outputs": res.output.tolist(), "ann_outputs": None if ann is None else np.asarray(ann).tolist(),
            "outputs_by_name": {k: np.asarray(v).tolist() for k, v in res.outputs.items()},  # every graph output
            "reference": ref.to_dict(), "ann_reference": ref.name,
            "max_abs_error": r.get("max_abs_error"), "argmax_agreement": r.get("argmax_agreement"),
            "per_step_max_abs_error": r.get("per_step_max_abs_error"),
            "boundary_cases": None if bnd is None else bnd.to_dict(),
            "outside_boundary_max_abs_error": r.get("outside_boundary_max_abs_error", r.get("max_abs_error")),
            "spikes": res.spikes, "quiescent_at": res.quiescent_at, **settle, "lossy_layers": lossy or [],
            "fixed_point_report": snn.meta.get("fixed_point_report"),
            **_membrane_json(snn, res),
        })
    _print_report(a, snn, res, rep, source, ref, bnd, lossy, settle)
    if a.save_ir:
        base = os.path.splitext(a.save_ir)[0]
        print(f"wrote      {base}.json, {base}.npz")
    if a.json_out:
        print(f"wrote      {a.json_out}")
    return 0


def _loihi2(a: argparse.Namespace) -> int:
    """--target loihi2: fixed-point conversion, the deployable files, verification on lava-sim's fixed_pt models,
    then the hardware step, which says what is missing where it cannot run."""
    from neurocompile import api
    from neurocompile.errors import TargetError
    from neurocompile.targets import get_target

    given = [f for f, on in (("--neuron", a.neuron != "cif"), ("--gamma", a.gamma != 1), ("--levels", a.levels),
                             ("--calibrate", a.calibrate), ("--delay", a.delay is not None),
                             ("--no-balance", a.no_balance), ("--normalize-weights", a.normalize_weights),
                             ("--device", a.device), ("--save-ir", a.save_ir), ("--early-stop", a.early_stop), ("--exact", a.exact),
                             ("--log-passes", a.log_passes), ("--percentile", a.percentile != 99.9),
                             *_latency_given(a)) if on]
    if given:
        raise UsageError(f"--target loihi2 converts to Loihi 2's fixed point with its own settings: {', '.join(given)} "
                         "cannot apply", hint="Run --target lava-sim --fixed-point to try other conversion options")
    g = _load(a)
    x = api.load_input(a.input, api.first_input_shape(g)) if a.input else None
    out_dir = a.artifacts or f"{os.path.splitext(os.path.basename(a.model))[0]}-loihi2"
    stem = os.path.splitext(os.path.basename(a.model))[0]  # api.deploy_loihi2's file names
    _check_outputs(([("--json", a.json_out)] if a.json_out else []) + _check_folder(
        "--artifacts", out_dir, [os.path.join(out_dir, stem + ext) for ext in (".h5", ".net", ".resources.json")]))
    rep = api.deploy_loihi2(a.model, out_dir, inputs=x, steps=a.steps)
    for f in rep["files"]:
        print(f"wrote      {f}")
    if not rep["files"][1].endswith(".net"):
        print(f"netx       {rep['netx']}")
    v, n = rep["verify"]["lava-sim"], rep["verify"]["samples"]
    if "error" in v:
        raise TargetError(f"the artifacts are written ({', '.join(rep['files'])}) but lava-sim cannot run them: "
                          f"{v['error']}")
    line = (f"verified   lava-sim fixed_pt {'reproduces' if v['matches_export'] else 'DIFFERS from'} the exported "
            f"readout on {n} reference input(s) (max rel. error {v['max_rel_error_vs_export']:.2g})")
    if "max_abs_error" in v:
        line += (f"; against the ANN ({rep['verify']['ann_reference']}): max |logit error| {v['max_abs_error']:.3g}, "
                 f"argmax agreement {100 * v['argmax_agreement']:.1f} %")
    print(line)
    if rep["graph"].meta.get("fixed_point_report"):
        print(f"fixed pt   {fixed_point_summary(rep['graph'].meta['fixed_point_report'])}")
    if a.json_out:  # the deployment's record: written although the command ends at the hardware step (exit 1)
        _write_json(a.json_out, {"target": "loihi2", "files": rep["files"], "netx": rep["netx"],
                                 "verify": {k: val for k, val in rep["verify"].items() if k != "provenance"}})
    if not rep["verify"]["ok"]:
        raise TargetError("the artifacts do not reproduce their exported readout on lava-sim",
                          hint="Report this as a bug with the artifact attached")
    try:
        get_target("loihi2").compile(rep["graph"])
    except TargetError as err:
        raise TargetError(f"the Loihi 2 artifacts are written and verified on lava-sim ({', '.join(rep['files'])}), "
                          f"but {err.message}", hint=err.hint) from None
    return 0


def _extends_to(a: argparse.Namespace, g: Any, snn: Any, steps: int) -> int | None:
    """The proven settling bound (schedule ``settle_bound``) to which a run at the default T is extended where a sample
    has not settled by then; None where T is the user's (--steps, a NIR file's, a saved IR converted with a T of its
    own), the network does not settle (the IF baseline, an LIF student) or the prediction reaches the bound."""
    from neurocompile import api

    s = snn.schedule
    bound = s.get("settle_bound")
    if (a.steps is not None or g.meta.get("nir") or bound is None or steps != s.get("predicted_settle")
            or bound <= steps or not api.lossless_kind(snn)):
        return None
    return int(bound)


def _run_settled(a: argparse.Namespace, snn: Any, exe: Any, x: np.ndarray, steps: int, bound: int | None):
    """Run ``steps`` steps, where a CIF network's readout is final only once every sample has settled (the default
    T is a prediction, passes/schedule_wake_sleep.settle_margin). With ``bound`` (:func:`_extends_to`: the default T)
    a run in which the reference finds samples still spiking at the last step runs again, every sample, to the
    proven bound (one run: spike totals and per-step records stay those of one T). On lava-sim, which reports no
    quiescence, a reference run at the predicted T (exact mode; a fixed-point network's integers) decides T first.
    Returns the result and the --json keys on settling: ``predicted_steps`` (the schedule's predicted settling step,
    the default T),
    ``settle_bound``, ``unsettled_at_predicted`` (samples not settled at the predicted T: None where not checked) and
    ``unsettled_samples`` (at the T run; None where not known, e.g. lava-sim below the proven bound)."""
    from neurocompile import api

    predicted = snn.schedule.get("predicted_settle")
    settle = {"predicted_steps": int(predicted) if predicted else None,
              "settle_bound": snn.schedule.get("settle_bound"), "unsettled_at_predicted": None}
    known = None  # the samples not settled at the T run, where a run of the reference found them
    if bound is not None and a.target == "lava-sim":
        probe = api.compile(snn, "reference", exact=True)
        probe.run(x, steps=steps, record=False)
        settle["unsettled_at_predicted"] = known = probe.unsettled
        if known and _settle_work(snn, x, bound, a.target):
            steps, known = bound, None
    res = _with_progress(exe, x, steps, a)
    if a.target == "reference":
        known = exe.unsettled
        if bound is not None:
            settle["unsettled_at_predicted"] = known
            if known and _settle_work(snn, x, bound, a.target):
                res = _with_progress(exe, x, bound, a)
                known = exe.unsettled
    proved = settle["settle_bound"] is not None and res.steps >= settle["settle_bound"] and api.lossless_kind(snn)
    settle["unsettled_samples"] = [] if known is None and proved else known
    return res, settle


def _settle_work(snn: Any, x: np.ndarray, bound: int, target: str) -> int | None:
    """``bound`` where a run of that many steps is within the work limits, else None (the run keeps its T and reports
    its unsettled samples)."""
    from neurocompile import limits
    from neurocompile.errors import ConversionError

    try:
        limits.check_work(snn, len(x), bound, target)
    except ConversionError:
        return None
    return bound


def _settling_lines(settle: dict, steps: int) -> list[str]:
    """The report's lines on settling: a run extended from the predicted T, and samples still spiking at the end
    (their readout is not final, so their error vs the ANN is no conversion error)."""
    lines = []
    late, now = settle.get("unsettled_at_predicted"), settle.get("unsettled_samples")
    if late and steps > settle["predicted_steps"]:
        lines.append(f"settling   not settled at the predicted T={settle['predicted_steps']} ({len(late)} sample(s) "
                     f"still spiking): ran T={steps}, the proven settling bound")
    if now:
        shown = ", ".join(str(i) for i in now[:8]) + (", ..." if len(now) > 8 else "")
        bound = settle.get("settle_bound")
        lines.append(f"unsettled  {len(now)} sample(s) still spiking at T={steps} ({shown}): their readout is not "
                     "final yet, so their error vs the ANN is not a conversion error"
                     + (f" (the proven settling bound is T={bound})" if bound and bound > steps else ""))
    return lines


def _with_progress(exe: Any, x: np.ndarray, steps: int, a: argparse.Namespace):
    from tqdm import tqdm

    total = steps * (len(x) if a.target != "reference" else 1)  # Lava runs samples one after another
    with tqdm(total=total, desc=f"{a.target}", unit="step", disable=a.quiet or None, leave=False,
              file=sys.stderr) as bar:
        return exe.run(x, steps=steps, early_stop=a.early_stop, progress=lambda t: bar.update(t - bar.n))


def _check_finite(out: np.ndarray, what: str, x: np.ndarray) -> None:
    """Finite inputs can still overflow a network (float32 tops out at 3.4e38): never report NaN as a result."""
    from neurocompile.errors import TargetError

    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise TargetError(f"{what} hold {bad} non-finite value(s): the network overflows on these inputs "
                          f"(max |input| {float(np.max(np.abs(x))):.3g})", hint="Scale the inputs to the range "
                          "the network was trained on")


def _print_report(a, snn, res, rep, source, ref, bnd, lossy, settle: dict | None = None) -> None:
    s = snn.schedule
    n = len(res.output)
    pred_snn = res.output.reshape(n, -1).argmax(1)
    print(f"model      {a.model}")
    gammas = {int(n.attrs.get("gamma", 1)) for n in snn.nodes.values() if n.op == "CIF"}
    gamma = f" gamma={max(gammas)}" if gammas and gammas != {1} else ""
    print(f"target     {a.target}  neuron={a.neuron}{gamma}  T={res.steps} (wake {min(s['t_wake'], res.steps)}, sleep "
          f"{max(res.steps - s['t_wake'], 0)})"
          f"  delay/layer={s['synapse_delay']}")
    print(f"precision  {res.precision}")
    print(f"inputs     {source}: {n} sample(s)")
    print(f"reference  {ref}")
    print(f"SNN pred   {pred_snn[:16].tolist()}{' ...' if n > 16 else ''}")
    mem = _readout_membrane(snn, res)
    if mem is not None:  # an LI / CubaLI / I readout (NIR): the output is its mean membrane
        last = np.asarray(mem[-1][0]).reshape(-1)
        print(f"readout    membrane of the leaky integrator '{snn.producers()[snn.outputs[0]].name}': the outputs are "
              f"its mean over the {s['t_wake']} steps; after the last step (sample 0): "
              f"{np.array2string(last[:8], precision=4, separator=', ')}{' ...' if last.size > 8 else ''}")
    if rep is None:
        print("error      not computed: there is no independent reference to compare with")
    else:
        label = "ANN pred" if ref.independent or ref.name.startswith("neurocompile interpreter") else "ref pred"
        print(f"{label}   {rep['ann_argmax'][:16]}{' ...' if n > 16 else ''}")
        print(f"max |logit error| {rep['max_abs_error']:.3g}  (max |logit| {rep['max_abs_logit']:.3g})   "
              f"argmax agreement {100 * rep['argmax_agreement']:.1f} %"
              + ("" if ref.independent else "   (not an independent check)"))
    if bnd is not None and not bnd.samples:
        print("boundary   none: no pre-activation lies within float32 rounding of a quantization level")
    elif bnd is not None:
        line = (f"boundary   {len(bnd.samples)} sample(s) ({bnd.neurons} neuron(s)) lie within float32 rounding of a "
                "quantization level, where the float32 reference may differ by one level")
        if bnd.samples:
            line += (f"; outside them max |logit error| {rep['outside_boundary_max_abs_error']:.3g}, argmax agreement "
                     f"{100 * rep['outside_boundary_argmax_agreement']:.1f} %")
        print(line)
    for line in _settling_lines(settle or {}, res.steps):
        print(line)
    spikes = sum(v["pos"] + v["neg"] for v in res.spikes.values())
    print(f"spikes     {spikes:,} total ({spikes / max(n, 1):,.0f} per sample)")
    if len(res.outputs) > 1:
        names = ", ".join(f"'{k}'" for k in res.outputs)
        print(f"outputs    {len(res.outputs)} graph outputs ({names}): the lines above are the first one's; --json has "
              "each under outputs_by_name")
    if lossy:
        print(f"note       lossy conversion: {len(lossy)} plain-ReLU layer(s) were calibrated, not CQReLU-trained")
    fixed = snn.meta.get("fixed_point_report")
    if fixed:
        print(f"fixed pt   {fixed_point_summary(fixed)}")


def _readout_membrane(snn: Any, res: Any):
    from neurocompile import api

    return api.readout_membrane(snn, res)


def _membrane_json(snn: Any, res: Any) -> dict:
    """--json keys of an LI readout: the membrane after the last step (the outputs are its mean over T)."""
    mem = _readout_membrane(snn, res)
    if mem is None:
        return {}
    return {"readout": "mean membrane of a leaky integrator over the wake steps",
            "membrane_last": mem[-1].tolist()}


def fixed_point_summary(report: list[dict]) -> str:
    """One line on a fixed-point conversion: where its weights lost most, exponents and rescales."""
    layers = [r for r in report if r["op"] in ("Conv", "Dense")]
    worst = max(layers, key=lambda r: r["weight_error"], default=None)
    exact = sum(r["weight_error"] == 0 for r in layers)
    line = (f"8-bit weights: {exact} of {len(layers)} layer(s) exact" +
            (f", worst relative weight error {worst['weight_error']:.2%} ({worst['node']})" if worst and
             worst["weight_error"] else ""))
    exps = sum(r["exponent"] > 0 for r in layers)
    rescaled = sorted({r["node"] for r in report if r["rescaled"] and r["op"] not in ("Conv", "Dense")})
    if exps:
        line += f"; {exps} layer(s) use a weight exponent"
    if rescaled:
        line += f"; {len(rescaled)} layer(s) rescaled to keep 24-bit state ({', '.join(rescaled[:3])})"
    return line


def _write_json(path: str, doc: dict) -> None:
    """Write atomically (neurocompile.atomic): a crash or a signal never leaves a half-written file."""
    from neurocompile.atomic import write_atomic

    text = (json.dumps(doc) + "\n").encode()  # serialize first: an unserializable value fails before any file exists
    write_atomic({path: lambda f: f.write(text)})


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
