"""Command line: a thin front over neurocompile.api.

    neurocompile inspect MODEL.onnx [--passes none|optimize|casc]
    neurocompile MODEL.onnx [--target reference] [--steps T] [--levels L] [--neuron cif|if]
                 [--input X.npy] [--json OUT.json] ...

Exit codes: 0 success, 1 a model/conversion/target error (one paragraph on stderr), 2 bad usage,
3 an internal error (a bug: set NEUROCOMPILE_DEBUG=1 for the traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from typing import Any, Sequence

import numpy as np

from neurocompile.errors import NeurocompileError


def _inspect_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurocompile inspect", description="Print a model's layers, shapes and "
                                "parameter counts as neurocompile sees them.")
    p.add_argument("model", help="ONNX file (or saved IR .json)")
    p.add_argument("--passes", choices=["none", "optimize", "casc"], default="optimize",
                   help="show the graph after these passes (default: optimize = canonicalize + fold_batchnorm)")
    p.add_argument("--log-passes", action="store_true", help="also print what every pass changed")
    return p


def _run_parser() -> argparse.ArgumentParser:
    from neurocompile.targets import available

    p = argparse.ArgumentParser(
        prog="neurocompile",
        description="Convert a CQReLU ANN (ONNX) into a lossless CIF spiking network and run it on a target. "
                    "Use 'neurocompile inspect MODEL' to look at a model.")
    p.add_argument("model", help="ONNX file (or saved IR .json)")
    p.add_argument("--target", default="reference", choices=available(), help="where to run (default: reference)")
    p.add_argument("--steps", type=int, help="total time steps T (default: the schedule's predicted settling step)")
    p.add_argument("--levels", type=int, help="quantization levels L (for calibrated ReLU nets; must match a CQReLU net)")
    p.add_argument("--neuron", choices=["cif", "if"], default="cif", help="cif (lossless) or if (baseline)")
    p.add_argument("--gamma", type=int, default=1, help="max spikes per step for CIF (>1: graded spikes)")
    p.add_argument("--delay", type=int, help="per-layer synaptic delay to model (default: the target's)")
    p.add_argument("--no-balance", action="store_true", help="do not delay-balance merge branches")
    p.add_argument("--normalize-weights", action="store_true", help="rescale weights so thresholds are 1")
    p.add_argument("--input", help=".npy array of inputs, shape (N, *input_shape); compared against the ANN")
    p.add_argument("--calibrate", help=".npy calibration inputs for plain-ReLU (lossy) conversion")
    p.add_argument("--percentile", type=float, default=99.9, help="calibration percentile (default 99.9)")
    p.add_argument("--device", help="torch device for the reference simulator (cpu, cuda)")
    p.add_argument("--fixed-point", action="store_true",
                   help="integer weights/thresholds (8-bit weights, lossy); lava-sim runs Lava's fixed_pt models")
    p.add_argument("--early-stop", action="store_true", help="stop once the network is quiescent")
    p.add_argument("--json", dest="json_out", help="write results as JSON to this file")
    p.add_argument("--save-ir", help="save the converted IR (path.json + path.npz)")
    p.add_argument("--log-passes", action="store_true", help="print what every pass changed")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "inspect":
            return _inspect(_inspect_parser().parse_args(argv[1:]))
        return _run(_run_parser().parse_args(argv))
    except NeurocompileError as err:
        print(f"neurocompile: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("neurocompile: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - never a raw traceback for users
        if os.environ.get("NEUROCOMPILE_DEBUG"):
            raise
        print(f"neurocompile: internal error: {type(exc).__name__}: {exc}. This is a bug; rerun with "
              "NEUROCOMPILE_DEBUG=1 for the traceback and report it.", file=sys.stderr)
        return 3


def _inspect(a: argparse.Namespace) -> int:
    from neurocompile import api
    from neurocompile.passes import PassManager, casc_pipeline, optimize_pipeline

    g = api.load(a.model)
    passes = {"none": [], "optimize": optimize_pipeline(), "casc": casc_pipeline()}[a.passes]
    pm = PassManager(passes)
    g = pm.run(g)
    print(f"model: {a.model}  (opset {g.meta.get('opset', '?')}, producer {g.meta.get('producer') or '?'})")
    print(g.summary())
    if a.log_passes:
        print("\n".join(str(r) for r in pm.log))
    return 0


def _run(a: argparse.Namespace) -> int:
    from neurocompile import api

    g = api.load(a.model)
    shape = api.first_input_shape(g)
    calib = api.load_input(a.calibrate, shape) if a.calibrate else None
    log: list = []
    snn = api.convert(g, neuron=a.neuron, gamma=a.gamma, levels=a.levels, calibration=calib,
                      percentile=a.percentile, steps=a.steps, target=a.target, synapse_delay=a.delay,
                      balance=not a.no_balance, normalize_weights=a.normalize_weights,
                      fixed_point=a.fixed_point, log=log)
    if a.log_passes:
        print("\n".join(str(r) for r in log))
    if a.save_ir:
        snn.save(a.save_ir)
    if a.input:
        x, source = api.load_input(a.input, shape), a.input
    else:
        x, source = api.default_input(shape)
    sched = snn.schedule
    options = {"device": a.device} if a.device else {}
    if a.fixed_point and a.target == "lava-sim":
        options["fixed_point"] = True
    exe = api.compile(snn, a.target, **options)
    res = _with_progress(exe, x, sched["steps"], a)
    if any(n.op == "LIF" for n in snn.nodes.values()):  # a spiking student has no ANN: compare simulators
        a.neuron = "lif"
        ann = api.simulate(snn, x).output
        ann_source = "reference simulator (LIF student: no ANN to compare with)"
    else:
        ann, ann_source = api.ann_outputs(a.model, x)
    rep = api.compare(res.output, ann, res.per_step)
    lossy = snn.meta.get("lossy_layers")
    _print_report(a, snn, res, rep, source, ann_source, lossy)
    if a.json_out:
        _write_json(a.json_out, {
            "target": a.target, "steps": int(res.steps), "wake_steps": int(sched["t_wake"]),
            "neuron": a.neuron, "synapse_delay": int(sched["synapse_delay"]),
            "outputs": res.output.tolist(), "ann_outputs": np.asarray(ann).tolist(), "ann_reference": ann_source,
            "max_abs_error": rep["max_abs_error"], "argmax_agreement": rep["argmax_agreement"],
            "per_step_max_abs_error": rep["per_step_max_abs_error"],
            "spikes": res.spikes, "quiescent_at": res.quiescent_at, "lossy_layers": lossy or [],
        })
    return 0


def _with_progress(exe: Any, x: np.ndarray, steps: int, a: argparse.Namespace):
    from tqdm import tqdm

    total = steps * (len(x) if a.target != "reference" else 1)  # Lava runs samples one after another
    with tqdm(total=total, desc=f"{a.target}", unit="step", disable=a.quiet or None, leave=False,
              file=sys.stderr) as bar:
        return exe.run(x, steps=steps, early_stop=a.early_stop, progress=lambda t: bar.update(t - bar.n))


def _print_report(a, snn, res, rep, source, ann_source, lossy) -> None:
    s = snn.schedule
    n = len(res.output)
    pred_snn = res.output.reshape(n, -1).argmax(1)
    print(f"model      {a.model}")
    print(f"target     {a.target}  neuron={a.neuron}  T={res.steps} (wake {s['t_wake']}, sleep {res.steps - s['t_wake']})"
          f"  delay/layer={s['synapse_delay']}")
    print(f"inputs     {source}: {n} sample(s)")
    print(f"ANN        {ann_source}")
    print(f"SNN pred   {pred_snn[:16].tolist()}{' ...' if n > 16 else ''}")
    print(f"ANN pred   {rep['ann_argmax'][:16]}{' ...' if n > 16 else ''}")
    print(f"max |logit error| {rep['max_abs_error']:.3g}  (max |logit| {rep['max_abs_logit']:.3g})   "
          f"argmax agreement {100 * rep['argmax_agreement']:.1f} %")
    spikes = sum(v["pos"] + v["neg"] for v in res.spikes.values())
    print(f"spikes     {spikes:,} total ({spikes / max(n, 1):,.0f} per sample)")
    if lossy:
        print(f"note       lossy conversion: {len(lossy)} plain-ReLU layer(s) were calibrated, not CQReLU-trained")


def _write_json(path: str, doc: dict) -> None:
    """Write atomically: a crash never leaves a half-written file."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".neurocompile-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
