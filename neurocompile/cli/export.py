"""``neurocompile export``: one deployable file of a converted network: neurocompile's HDF5 artifact, lava-dl's netx
or a NIR file."""
from __future__ import annotations

import argparse
from typing import Any

from neurocompile.cli import options
from neurocompile.cli.checks import _check_conversion_options, _check_output
from neurocompile.cli.options import (UsageError, _conversion_kwargs, _conversion_options, _convert, _latency_given,
                                      _Parser)
from neurocompile.cli.printing import fixed_point_summary
from neurocompile.errors import NeurocompileError


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


def _export(a: argparse.Namespace) -> int:
    """Check the options and the output, load the model, then write the --format file."""
    from neurocompile import api
    from neurocompile.frontends.nir import is_nir

    _check_conversion_options(a)
    if a.samples < 1:
        raise UsageError(f"--samples {a.samples}: store at least one reference input")
    _check_output("-o", a.output)
    g = _load_for_nir_export(a) if a.format == "nir" else options._load(a)
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
    conversion = {} if g.schedule is not None else dict(calibration=calib, **_conversion_kwargs(a, g))
    nir_options = dict(dt=a.dt, discretization=a.discretization, time_steps=a.steps) if is_nir(a.model) else None
    art = api.export(a.model, a.output, inputs=x, n_reference=a.samples, target=a.target, nir_options=nir_options,
                     **conversion)
    s = art.graph.schedule
    sources = ("the reference simulator" if art.ann_reference == "reference simulator"  # a NIR file has no ANN
               else f"{art.ann_reference} and the reference simulator")
    print(f"wrote {a.output}: {len(art.graph.nodes)} nodes, T={s.steps} (T_wake={s.t_wake}), "
          f"{len(art.inputs)} reference input(s) with outputs from {sources}"
          f"{', fixed point' if art.graph.meta.get('fixed_point') else ''}")
    return 0


def _export_netx(a: argparse.Namespace, g) -> int:
    """--format netx: a feed-forward LIF student in fixed point, and how lava-dl loads and reads it."""
    from neurocompile import api
    from neurocompile.errors import ConversionError
    from neurocompile.exporters.netx import write_netx

    given = [f for f, on in (("--input", a.input), ("--samples", a.samples != 8), ("--target", a.target != "lava-sim"),
                             ("--neuron", a.neuron != "cif"), ("--gamma", a.gamma != 1), ("--levels", a.levels),
                             ("--calibrate", a.calibrate), ("--percentile", a.percentile != 99.9)) if on]
    if given:
        raise UsageError(f"--format netx writes the network only, converted for Lava in fixed point: {', '.join(given)} "
                         "cannot apply", hint="Drop them (the neurocompile artifact takes reference inputs)")
    latency = [f for f, on in _latency_given(a) if on]
    if latency:
        raise UsageError(f"--format netx writes LIF students, whose CUBA neurons send binary spikes: {', '.join(latency)} "
                         "shortens a CIF network's wake phase with graded spikes, which netx cannot carry",
                         hint=f"Export neurocompile's own artifact, which carries Loihi 2's graded payload: "
                              f"neurocompile export {a.model} --fixed-point --latency min -o net.h5")
    converted = g.schedule is not None
    if not api.is_student(g) or (converted and not g.meta.get("fixed_point")):
        raise ConversionError("netx holds feed-forward LIF students (conv and dense layers of CUBA neurons) in fixed "
                              "point; this model is " + ("a converted floating-point network" if api.is_student(g)
                                                         else "a converted CIF network, which netx has no form for"
                                                         if converted else "an ANN, which converts to CIF neurons "
                                                                           "netx has no form for"),
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
        return options._load(a)
    if a.discretization is not None:
        raise UsageError(f"--discretization applies to NIR input files; {a.model} is not one (--format nir writes "
                         "snnTorch's convention)")
    return api.load(a.model)


def _export_nir(a: argparse.Namespace, g) -> int:
    """--format nir: an LIF student exactly, a CIF network as neurocompile's extension of NIR."""
    from neurocompile import api

    given = [f for f, on in (("--input", a.input), ("--samples", a.samples != 8), ("--target", a.target != "lava-sim"),
                             ("--fixed-point", a.fixed_point)) if on]
    if given:
        raise UsageError(f"--format nir writes the network only, in floating point and without synaptic delays (NIR "
                         f"edges carry none): {', '.join(given)} cannot apply",
                         hint="Drop them (the neurocompile artifact takes reference inputs and fixed point)")
    if g.schedule is not None:
        conversion = {}
    else:
        calib = api.load_input(a.calibrate, api.first_input_shape(g)) if a.calibrate else None
        conversion = {k: v for k, v in _conversion_kwargs(a, g).items() if k != "fixed_point"}
        conversion["calibration"] = calib
    try:
        exp = api.export_nir(g, a.output, dt=a.dt, **conversion)
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
