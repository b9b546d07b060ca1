"""``neurocompile estimate``: a converted network's Loihi 2 resources per layer and, with inputs, its activity and
energy."""
from __future__ import annotations

import argparse
from typing import Any

from neurocompile.cli import options
from neurocompile.cli.checks import _check_folder, _check_outputs
from neurocompile.cli.options import (UsageError, _conversion_kwargs, _conversion_options, _convert, _latency_given,
                                      _Parser)
from neurocompile.cli.printing import _write_json


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
    p.add_argument("--placement", help="place every neuron and synapse on cores (checked against the per-core limits) "
                   "and write the placement as JSON to this file; with --input also the traffic between cores and "
                   "chips, time per step, latency and energy")
    p.add_argument("--plot", dest="plot_dir", help="with --placement: write placement.png (cores coloured by layer on "
                   "the chip grid) and utilisation.png into this folder (created if missing)")
    _conversion_options(p)
    return p


def _estimate(a: argparse.Namespace) -> int:
    """Convert for lava-sim (unless converted already) and print the Loihi 2 estimate (--json: also as JSON)."""
    from neurocompile import api
    from neurocompile.analysis.estimate import estimate

    _check_estimate_outputs(a)
    if a.samples < 1:
        raise UsageError(f"--samples {a.samples}: simulate at least one input")
    g = ann = options._load(a)
    x = api.load_input(a.input, api.first_input_shape(g))[: a.samples] if a.input else None
    calib = api.load_input(a.calibrate, api.first_input_shape(g)) if a.calibrate else None
    fast = None  # the latency mode beside the default schedule (--placement with --input on an ANN)
    if g.schedule is None:
        kw = _conversion_kwargs(a, g)
        g = _convert(a, g, calibration=calib, target="lava-sim", **kw)
        latency = _latency_mode(a, ann, g) if a.placement and x is not None else None
        if latency is not None:
            fast = _convert(a, ann, calibration=calib, target="lava-sim", **{**kw, **latency})
    else:
        given = [f for f, on in (("--neuron", a.neuron != "cif"), ("--gamma", a.gamma != 1), ("--levels", a.levels),
                                 ("--calibrate", a.calibrate), ("--fixed-point", a.fixed_point), ("--steps", a.steps),
                                 ("--percentile", a.percentile != 99.9), *_latency_given(a)) if on]
        if given:
            raise UsageError(f"{a.model} is a converted network: {', '.join(given)} cannot apply",
                             hint="Estimate the original ONNX model with these options instead")
    e = estimate(g, a.hw, x=x)
    print(e.table())
    if a.placement:
        _place(a, g, e, x, fast)
    if a.json_out:
        _write_json(a.json_out, e.to_dict())
        print(f"wrote {a.json_out}")
    return 0


def _check_estimate_outputs(a: argparse.Namespace) -> None:
    """--json, --placement and --plot's PNGs before any work: each writable, none the same file as another."""
    if a.plot_dir and not a.placement:
        raise UsageError("--plot draws the placement: give --placement FILE too")
    outputs = [(flag, path) for flag, path in (("--json", a.json_out), ("--placement", a.placement)) if path]
    if a.plot_dir:
        from neurocompile.analysis.estimate.placement_report import plot_paths

        outputs += _check_folder("--plot", a.plot_dir, plot_paths(a.plot_dir))
    _check_outputs(outputs)


def _latency_mode(a: argparse.Namespace, ann: Any, g: Any) -> dict[str, int] | None:
    """The latency mode's {t_wake, gamma} where the schedule was left at its default (T_wake = L, one spike per
    step) for a CIF network whose latency mode is another schedule (estimate --placement then reports both); else
    None."""
    from neurocompile import api

    if a.neuron != "cif" or api.is_student(ann) or any(on for _, on in _latency_given(a)) or a.gamma != 1:
        return None
    levels = api.network_levels(ann) or a.levels
    if not levels:
        return None
    t_wake, gamma = api.latency_options(levels)
    return None if t_wake == g.schedule.t_wake else {"t_wake": t_wake, "gamma": gamma}


def _place(a: argparse.Namespace, g: Any, e: Any, x: Any, fast: Any = None) -> None:
    """Place the network (checked), print the per-core table, with inputs the traffic, time and energy (and, for
    ``fast``, the latency mode's beside them); write the placement (and the plots)."""
    from neurocompile.analysis.estimate.placement import place
    from neurocompile.analysis.estimate.placement_report import (Case, place_and_run, side_by_side, summary, table,
                                                                 write_plots)
    from neurocompile.analysis.estimate.runtime import runtime, traffic

    p = place(g, e)  # raises PlacementError before anything is written
    tr = traffic(g, p, e) if x is not None else None
    rt = runtime(e, tr) if tr is not None else None
    print()
    print(table(p, e, tr, rt))
    doc = {**p.to_dict(), "summary": summary(p, e)}
    if tr is not None and rt is not None:
        doc["traffic"] = {k: v for k, v in vars(tr).items() if k != "cores"}
        doc["runtime"] = rt.to_dict()
    if fast is not None and x is not None:
        cases = [Case(f"T_wake = L = {g.schedule.t_wake}", g.schedule.t_wake, a.gamma, p, e, tr, rt),
                 place_and_run("--latency min", fast, x, hw=a.hw)]
        print()
        print("the default schedule and the latency mode, side by side:")
        print(side_by_side(cases))
        doc["schedules"] = {"default": cases[0].to_dict(), "latency_min": cases[1].to_dict()}
    _write_json(a.placement, doc)
    print(f"wrote {a.placement}")
    for path in write_plots(p, a.plot_dir) if a.plot_dir else []:
        print(f"wrote {path}")
