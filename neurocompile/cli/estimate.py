"""``neurocompile estimate``: a converted network's Loihi 2 resources per layer and, with inputs, its activity and
energy."""
from __future__ import annotations

import argparse

from neurocompile.cli import options
from neurocompile.cli.checks import _check_output
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
    _conversion_options(p)
    return p


def _estimate(a: argparse.Namespace) -> int:
    """Convert for lava-sim (unless converted already) and print the Loihi 2 estimate (--json: also as JSON)."""
    from neurocompile import api
    from neurocompile.analysis.estimate import estimate

    if a.json_out:
        _check_output("--json", a.json_out)
    if a.samples < 1:
        raise UsageError(f"--samples {a.samples}: simulate at least one input")
    g = options._load(a)
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
