"""``neurocompile run`` (the default command: ``neurocompile MODEL ...``): convert a model, run it on a target and
compare it with an independent reference."""
from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

from neurocompile.cli import options
from neurocompile.cli.checks import _check_args
from neurocompile.cli.loihi2 import _loihi2
from neurocompile.cli.options import (UsageError, _conversion_kwargs, _conversion_options, _convert, _latency_given,
                                      _Parser)
from neurocompile.cli.printing import _warn, _write_json
from neurocompile.cli.run_report import _print_report, _run_json
from neurocompile.cli.settling import _extends_to, _run_settled


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
    """Load, convert (a converted network runs as it is), run on the target, compare with the reference, report."""
    from neurocompile import api, limits
    from neurocompile.analysis.oracle import reference_for

    _check_args(a)
    if a.artifacts and a.target != "loihi2":
        raise UsageError(f"--artifacts is for --target loihi2 (the target here is {a.target})",
                         hint="Use --target loihi2, or 'neurocompile export' for an artifact file")
    if a.target == "loihi2":
        return _loihi2(a)
    if a.target == "lava-sim":  # Lava's worker imports Lava and torch while the model loads and converts
        from neurocompile.targets.lava.run import prestart

        prestart()
    g = options._load(a)
    x, source, calib = _inputs(a, g)
    ref = reference_for(a.model, g, a.target)  # chosen (and the model checked by onnxruntime) before any work
    log: list = []
    snn = _network(a, g, calib, log)
    steps = int(snn.schedule.steps if g.meta.get("nir") else a.steps or snn.schedule.steps)  # NIR: --steps is T
    _warn_schedule(a, snn)
    _warn_unused_options(a, snn)
    limits.check_work(snn, len(x), steps, a.target)
    if a.log_passes:
        print("\n".join(str(r) for r in log))
    exe = api.compile(snn, a.target, **_target_options(a, snn))  # api's, looked up now: tests replace it
    res, settle = _run_settled(a, snn, exe, x, steps, _extends_to(a, g, snn, steps))
    a.neuron = "lif" if api.is_student(snn) else snn.meta.get("neuron", a.neuron)
    ann, rep, bnd = _compared(a, g, snn, res, ref, x)
    if a.save_ir:  # outputs only after success (both atomic), so a failed run leaves none
        snn.save(a.save_ir)
    if a.json_out:
        _write_json(a.json_out, _run_json(a, snn, res, ann, rep, ref, bnd, settle))
    _print_report(a, snn, res, rep, source, ref, bnd, snn.meta.get("lossy_layers"), settle)
    if a.save_ir:
        base = os.path.splitext(a.save_ir)[0]
        print(f"wrote      {base}.json, {base}.npz")
    if a.json_out:
        print(f"wrote      {a.json_out}")
    return 0


def _inputs(a: argparse.Namespace, g: Any) -> tuple[np.ndarray, str, np.ndarray | None]:
    """The run's inputs and where they come from (--input or a default), and the --calibrate inputs: read (and
    checked: finite numbers, N >= 1) before any work; a NIR network takes spikes per step."""
    from neurocompile import api

    shape = api.first_input_shape(g)
    calib = api.load_input(a.calibrate, shape) if a.calibrate else None
    if a.input:
        x, source = api.load_input(a.input, shape, per_step=bool(g.meta.get("nir"))), a.input
        if api.is_per_step(x, g):
            _per_step_steps(a, g, x)
    else:
        x, source = api.default_input(shape)
    return x, source, calib


def _network(a: argparse.Namespace, g: Any, calib: np.ndarray | None, log: list) -> Any:
    """The spiking network to run: ``g`` converted with the options given, or ``g`` itself where it is converted
    already (a saved IR runs as it was converted)."""
    if g.schedule is None:
        return _convert(a, g, calibration=calib, target=a.target, synapse_delay=a.delay, balance=not a.no_balance,
                        normalize_weights=a.normalize_weights, log=log, **_conversion_kwargs(a, g))
    _refuse_conversion_options(a)
    if g.meta.get("nir") and a.steps is not None:  # a NIR network's --steps is its T, fixed at conversion
        raise UsageError(f"{a.model} is a converted NIR network, whose T was fixed when it was converted: --steps "
                         "cannot apply", hint="Convert the NIR file again with --steps T")
    return g


def _target_options(a: argparse.Namespace, snn: Any) -> dict[str, Any]:
    """api.compile's options: the device, lava-sim's fixed_pt models for a fixed-point network, the exact mode."""
    chosen: dict[str, Any] = {"device": a.device} if a.device else {}
    if snn.meta.get("fixed_point") and a.target == "lava-sim":
        chosen["fixed_point"] = True
    if a.exact and a.target == "reference":
        chosen["exact"] = True
    return chosen


def _compared(a: argparse.Namespace, g: Any, snn: Any, res: Any, ref: Any, x: np.ndarray):
    """The run's outputs against the reference's: (ANN outputs or None, api.compare's report or None, the boundary
    cases or None), every output checked finite first."""
    from neurocompile import api

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
    return ann, rep, bnd


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
    if a.steps is None or not s.sleep or not api.lossless_kind(snn):
        return
    if a.steps < s.t_wake:
        _warn(f"the result is not lossless: T={a.steps} is shorter than the wake phase T_wake={s.t_wake}, "
              "so part of the input never enters the network")
    elif a.steps < s.predicted_settle:
        _warn(f"the result is not lossless: T={a.steps} is below the predicted settling step "
              f"{s.predicted_settle} (omit --steps to run until then)")


def _check_finite(out: np.ndarray, what: str, x: np.ndarray) -> None:
    """Finite inputs can still overflow a network (float32 tops out at 3.4e38): never report NaN as a result."""
    from neurocompile.errors import TargetError

    bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
    if bad:
        raise TargetError(f"{what} hold {bad} non-finite value(s): the network overflows on these inputs "
                          f"(max |input| {float(np.max(np.abs(x))):.3g})", hint="Scale the inputs to the range "
                          "the network was trained on")
