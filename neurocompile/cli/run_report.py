"""What ``neurocompile run`` reports: its text lines on stdout and its --json document."""
from __future__ import annotations

from typing import Any

import numpy as np

from neurocompile.cli.printing import fixed_point_summary


def _print_report(a, snn, res, rep, source, ref, bnd, lossy, settle: dict | None = None) -> None:
    """The run's report on stdout: the run, its inputs and reference, the error against it, settling and spikes."""
    from neurocompile.ir.ops import op_of

    s = snn.schedule
    n = len(res.output)
    pred_snn = res.output.reshape(n, -1).argmax(1)
    print(f"model      {a.model}")
    gammas = {int(op_of(n).attr(n, "gamma")) for n in snn.nodes.values() if "gamma" in op_of(n).attrs}  # CIF's
    gamma = f" gamma={max(gammas)}" if gammas and gammas != {1} else ""
    print(f"target     {a.target}  neuron={a.neuron}{gamma}  T={res.steps} (wake {min(s.t_wake, res.steps)}, sleep "
          f"{max(res.steps - s.t_wake, 0)})"
          f"  delay/layer={s.synapse_delay}")
    print(f"precision  {res.precision}")
    print(f"inputs     {source}: {n} sample(s)")
    print(f"reference  {ref}")
    print(f"SNN pred   {pred_snn[:16].tolist()}{' ...' if n > 16 else ''}")
    mem = _readout_membrane(snn, res)
    if mem is not None:  # an LI / CubaLI / I readout (NIR): the output is its mean membrane
        last = np.asarray(mem[-1][0]).reshape(-1)
        print(f"readout    membrane of the leaky integrator '{snn.producers()[snn.outputs[0]].name}': the outputs are "
              f"its mean over the {s.t_wake} steps; after the last step (sample 0): "
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


def _readout_membrane(snn: Any, res: Any):
    """The membrane of a leaky-integrator readout after every step (api.readout_membrane), or None."""
    from neurocompile import api

    return api.readout_membrane(snn, res)


def _membrane_json(snn: Any, res: Any) -> dict:
    """--json keys of an LI readout: the membrane after the last step (the outputs are its mean over T)."""
    mem = _readout_membrane(snn, res)
    if mem is None:
        return {}
    return {"readout": "mean membrane of a leaky integrator over the wake steps",
            "membrane_last": mem[-1].tolist()}


def _run_json(a: Any, snn: Any, res: Any, ann: Any, rep: dict | None, ref: Any, bnd: Any, settle: dict) -> dict:
    """The --json document of a run: its outputs, the reference's, the comparison, spikes and settling."""
    sched = snn.schedule
    r = rep or {}
    return {
        "target": a.target, "precision": res.precision, "steps": int(res.steps), "wake_steps": int(sched.t_wake),
        "neuron": a.neuron, "synapse_delay": int(sched.synapse_delay),
        "outputs": res.output.tolist(), "ann_outputs": None if ann is None else np.asarray(ann).tolist(),
        "outputs_by_name": {k: np.asarray(v).tolist() for k, v in res.outputs.items()},  # every graph output
        "reference": ref.to_dict(), "ann_reference": ref.name,
        "max_abs_error": r.get("max_abs_error"), "argmax_agreement": r.get("argmax_agreement"),
        "per_step_max_abs_error": r.get("per_step_max_abs_error"),
        "boundary_cases": None if bnd is None else bnd.to_dict(),
        "outside_boundary_max_abs_error": r.get("outside_boundary_max_abs_error", r.get("max_abs_error")),
        "spikes": res.spikes, "quiescent_at": res.quiescent_at, **settle,
        "lossy_layers": snn.meta.get("lossy_layers") or [],
        "fixed_point_report": snn.meta.get("fixed_point_report"),
        **_membrane_json(snn, res),
    }
