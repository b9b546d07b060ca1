"""``neurocompile MODEL --target loihi2``: fixed-point conversion, the deployable files, their verification on
lava-sim's fixed_pt models, then the hardware step, which says what is missing where it cannot run."""
from __future__ import annotations

import argparse
import os

from neurocompile.cli import options
from neurocompile.cli.checks import _check_folder, _check_outputs
from neurocompile.cli.options import UsageError, _conversion_kwargs
from neurocompile.cli.printing import _write_json, fixed_point_summary


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
                             ("--t-wake", a.t_wake is not None)) if on]
    if given:
        raise UsageError(f"--target loihi2 converts to Loihi 2's fixed point with its own settings: {', '.join(given)} "
                         "cannot apply", hint="Run --target lava-sim --fixed-point to try other conversion options")
    g = options._load(a)
    latency = _latency(a, g)
    x = api.load_input(a.input, api.first_input_shape(g)) if a.input else None
    out_dir = a.artifacts or f"{os.path.splitext(os.path.basename(a.model))[0]}-loihi2"
    stem = os.path.splitext(os.path.basename(a.model))[0]  # api.deploy_loihi2's file names
    _check_outputs(([("--json", a.json_out)] if a.json_out else []) + _check_folder(
        "--artifacts", out_dir, [os.path.join(out_dir, stem + ext) for ext in (".h5", ".net", ".resources.json")]))
    rep = api.deploy_loihi2(a.model, out_dir, inputs=x, steps=a.steps, **latency)
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


def _latency(a: argparse.Namespace, g) -> dict[str, int]:
    """--latency min's wake phase and graded spikes within Loihi 2's payload (--max-payload-bits), as a run chooses
    them ({"t_wake", "gamma"}), or {} (T_wake = L). A converted model keeps the schedule it was converted with."""
    if a.latency == "min" and g.schedule is not None:
        raise UsageError(f"{a.model} is converted already: its schedule fixes the wake phase, so --latency cannot "
                         "apply", hint="Deploy the original model with --latency min (or export it with "
                                       "--fixed-point --latency min)")
    kw = _conversion_kwargs(a, g)  # refuses --max-payload-bits without --latency min, and students
    return {"t_wake": kw["t_wake"], "gamma": kw["gamma"]} if a.latency == "min" else {}
