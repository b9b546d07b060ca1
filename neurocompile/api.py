"""The Python API: what the CLI, the examples and users call. The facade: it imports every layer and nothing
below it imports it.

    g   = load("model.onnx")                      # ONNX (or a saved IR .json) -> Graph
    snn = convert(g, neuron="cif")                # passes: canonicalize ... schedule_wake_sleep
    res = simulate(snn, x)                        # reference simulator -> SimResult
    rep = compare(res.output, ann_outputs("model.onnx", x), res.per_step)

The compile pipeline lives in :mod:`neurocompile.pipeline`, array reading in :mod:`neurocompile.io`; the workflows
over whole files (export, verify, deploy_loihi2) are here.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from neurocompile.errors import ConversionError, NeurocompileError
from neurocompile.io import EXAMPLE_DATA, default_input, is_per_step, load_input, read_npy
from neurocompile.ir import Graph
from neurocompile.ir.ops import OPS
from neurocompile.pipeline import (ann_graph, compile, convert, first_input_shape, is_student, latency_options, load,
                                   lossless_kind, network_levels, optimize, readout_membrane, run_pipeline, simulate)


def ann_outputs(path: str, x: np.ndarray, target: str = "reference") -> tuple[np.ndarray | None, str]:
    """The ANN's own outputs from the independent reference :func:`neurocompile.analysis.oracle.reference_for`
    chooses (onnxruntime where it runs the file). Returns (outputs or None, the reference's name)."""
    from neurocompile.analysis.oracle import reference_for

    ref = reference_for(path, load(path), target)
    return ref.outputs(x), ref.name


def boundary_cases(graph: Graph, x: np.ndarray):
    """Samples where a float32 ANN may differ from the exact one by a quantization level
    (:mod:`neurocompile.analysis.boundary`); ``graph`` is the imported ANN."""
    from neurocompile.analysis.boundary import find_boundary_cases

    if any(OPS[n.op].spiking for n in graph.nodes.values()):
        return find_boundary_cases(graph, x)
    return find_boundary_cases(ann_graph(graph), x)


def compare(snn: np.ndarray, ann: np.ndarray, per_step: np.ndarray | None = None,
            exclude: list[int] | None = None, prefix: str = "") -> dict[str, Any]:
    """Logit error and argmax agreement of a spiking readout against the ANN (``exclude``: sample
    indices left out, e.g. boundary cases; ``prefix`` names the keys)."""
    snn, ann = np.asarray(snn, dtype=np.float64), np.asarray(ann, dtype=np.float64)
    if exclude:
        keep = np.setdiff1d(np.arange(len(ann)), exclude)
        snn, ann = snn[keep], ann[keep]
        per_step = None if per_step is None else per_step[:, keep]
    if len(ann) == 0:
        return {f"{prefix}max_abs_error": 0.0, f"{prefix}argmax_agreement": 1.0}
    rep = {
        "max_abs_error": float(np.max(np.abs(snn - ann))),
        "max_abs_logit": float(np.max(np.abs(ann))),
        "argmax_agreement": float(np.mean(snn.reshape(len(snn), -1).argmax(1) == ann.reshape(len(ann), -1).argmax(1))),
        "ann_argmax": ann.reshape(len(ann), -1).argmax(1).tolist(),
    }
    if per_step is not None:
        rep["per_step_max_abs_error"] = [float(np.max(np.abs(p - ann))) for p in per_step]
    return {f"{prefix}{k}": v for k, v in rep.items()}














def export(model: str, out: str, inputs: np.ndarray | None = None, n_reference: int = 8, target: str = "lava-sim",
           nir_options: dict[str, Any] | None = None, **options: Any):
    """Convert ``model`` (for ``target``: lava-sim models Lava's synaptic delay, and the reference target runs
    that too) and write the single-file artifact ``out`` with provenance and ``n_reference`` reference inputs
    (the first of ``inputs``, else random inputs in [0, 1), seed 0) with the ANN's and the SNN's outputs.
    ``nir_options`` are :func:`load`'s for a NIR ``model`` (dt, discretization, time_steps)."""
    from neurocompile.exporters import artifact
    from neurocompile.analysis.oracle import reference_for

    g = load(model, **(nir_options or {}))
    snn = g if g.schedule is not None else convert(g, target=target, **options)
    shape = first_input_shape(g)
    if inputs is not None:
        x = np.asarray(inputs, dtype=np.float32)[:n_reference]
    else:
        x = np.random.default_rng(0).uniform(0, 1, (n_reference, *shape)).astype(np.float32)
    ref = reference_for(model, g, target)
    ann = ref.outputs(x)
    ann = None if ann is None else np.asarray(ann, dtype=np.float64)  # as stored: the tolerance is of these
    out_snn = simulate(snn, x, exact=True).output
    art = artifact.Artifact(
        graph=snn, inputs=x, ann_outputs=ann, ann_reference=ref.name, snn_outputs=out_snn,
        ann_tolerance=None if ann is None else artifact.ann_tolerance(snn, ann, out_snn),
        provenance={"source": os.path.basename(str(model)), "source_sha256": artifact.sha256(model),
                    "neurocompile": artifact.version(), "created": artifact.created(), "target": target,
                    "options": {k: v for k, v in options.items() if isinstance(v, (int, float, str, bool))}})
    artifact.save(out, art)
    return art


def export_nir(model: "str | Graph", out: str, dt: float | None = None, nir_options: dict[str, Any] | None = None,
               **options: Any):
    """Write ``model`` (a path or a Graph; converted here, without synaptic delays, with ``options`` unless it is
    converted already) as a NIR file ``out`` (:mod:`neurocompile.exporters.nir`: LIF students exactly, CIF
    networks as neurocompile's documented extension). ``dt`` (default 1e-4 s, snnTorch's) discretizes the neurons;
    ``nir_options`` are :func:`load`'s for a NIR ``model``. Returns the :class:`NirExport`."""
    from neurocompile.frontends.nir import DEFAULT_DT
    from neurocompile.exporters.nir import write_nir

    g = model if isinstance(model, Graph) else load(str(model), **(nir_options or {}))
    if g.schedule is not None and options:
        raise ConversionError(f"the model is converted already: {', '.join(sorted(options))} cannot apply",
                              hint="Export the original model with these options instead")
    snn = g if g.schedule is not None else convert(g, target="reference", **options)
    try:
        return write_nir(snn, out, DEFAULT_DT if dt is None else dt)
    except NeurocompileError as err:
        raise err.at(str(model)) if not isinstance(model, Graph) else err


def verify(path: str, targets: tuple[str, ...] = ("reference", "lava-sim")) -> dict[str, Any]:
    """Re-run an artifact's reference inputs on ``targets`` (a fixed-point network on Lava's fixed_pt models):
    each must reproduce the spiking readout of the first output stored at export (relative error <= 1e-9;
    fixed point: exactly); the error against the stored ANN outputs is reported beside it. A target that
    cannot run the network is reported with its error. Returns {target: {"matches_export",
    "max_rel_error_vs_export", ... compare() keys} or {"matches_export": False, "error"}, "ok": bool,
    "stored_ann_error", "ann_tolerance"}.

    Refused (an error naming the file, before any simulation): what ``artifact.load`` refuses (a digest
    mismatch, absurd dataset sizes, non-finite or empty reference data, stored ANN and SNN outputs apart by more
    than the tolerance recorded at export) and a run beyond neurocompile.limits (``check_work``)."""
    from neurocompile import limits
    from neurocompile.exporters import artifact

    art = artifact.load(path)
    for target in targets:  # sizes before any work: a schedule of 1e9 steps is refused here, not simulated
        try:
            limits.check_work(art.graph, len(art.inputs), int(art.graph.schedule.steps), target)
        except NeurocompileError as err:
            raise err.at(str(path))
    report: dict[str, Any] = {"ann_reference": art.ann_reference, "samples": len(art.inputs),
                              "provenance": art.provenance, "ann_tolerance": art.ann_tolerance,
                              "stored_ann_error": None if art.ann_outputs is None else
                              artifact.ann_error(art.ann_outputs, art.snn_outputs)}
    ok = True
    fixed = bool(art.graph.meta.get("fixed_point"))
    for target in targets:
        try:
            exe = compile(art.graph, target, **({"exact": True} if target == "reference" else
                                                 {"fixed_point": True} if fixed else {}))
            out = exe.run(art.inputs.astype(np.float64), record=False).output
        except NeurocompileError as err:
            report[target] = {"matches_export": False, "error": str(err)}
            ok = False
            continue
        scale = max(float(np.abs(art.snn_outputs).max()), 1e-30)
        err = float(np.abs(out - art.snn_outputs).max()) / scale
        entry: dict[str, Any] = {"max_rel_error_vs_export": err, "matches_export": err == 0 if fixed else err <= 1e-9}
        if art.ann_outputs is not None:
            entry.update(compare(out, art.ann_outputs))
        report[target] = entry
        ok = ok and entry["matches_export"]
    report["ok"] = ok
    return report


def deploy_loihi2(model: str, out_dir: str, inputs: np.ndarray | None = None, n_reference: int = 8,
                  steps: int | None = None, t_wake: int | None = None, gamma: int = 1) -> dict[str, Any]:
    """Everything a Loihi 2 deployment needs that can happen without the chip: convert ``model`` to fixed point
    (Loihi 2's formats, one step of delay per synapse), write into ``out_dir`` the neurocompile artifact
    (``<stem>.h5``), the lava-dl netx file where netx can hold the network (``<stem>.net``: feed-forward LIF
    students) and the resource estimate (``<stem>.resources.json``), and verify the artifact on lava-sim's
    fixed_pt models. ``t_wake`` and ``gamma`` (:func:`latency_options`) convert with a short wake phase and graded
    spikes (the latency mode) within Loihi 2's payload.
    Returns {"files": [...], "netx": path or the reason it was skipped, "verify": report}."""
    import json

    from neurocompile.atomic import write_atomic
    from neurocompile.analysis.estimate import estimate
    from neurocompile.exporters.netx import write_netx

    g = load(model)
    if g.schedule is not None and not g.meta.get("fixed_point"):
        raise ConversionError("the model is a converted floating-point network; Loihi 2 takes fixed point",
                              file=str(model), hint="Deploy the original ONNX model (it converts to fixed point), or "
                                                    "a network converted with --fixed-point")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConversionError(f"'{out_dir}' exists and is not a folder", hint="Give a folder for the artifacts")
    made = not os.path.isdir(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(str(model)))[0]
    paths = {k: os.path.join(out_dir, f"{stem}{ext}") for k, ext in
             (("artifact", ".h5"), ("netx", ".net"), ("resources", ".resources.json"))}
    latency = {"t_wake": t_wake, "gamma": gamma} if t_wake is not None else {}
    try:
        art = export(model, paths["artifact"], inputs=inputs, n_reference=n_reference, target="lava-sim",
                     **({} if g.schedule is not None else {"fixed_point": True, **({"steps": steps} if steps else {}),
                                                           **latency}))
    except BaseException:
        if made and not os.listdir(out_dir):  # leave nothing behind for a model that does not convert
            os.rmdir(out_dir)
        raise
    files = [paths["artifact"]]
    try:
        write_netx(art.graph, paths["netx"])
        files.append(paths["netx"])
        netx_note = paths["netx"]
    except ConversionError as err:
        netx_note = f"not written: {err.message}"
    doc = json.dumps(estimate(art.graph, "loihi2", x=art.inputs).to_dict(), indent=1).encode()
    write_atomic({paths["resources"]: lambda f: f.write(doc)})
    files.append(paths["resources"])
    return {"files": files, "netx": netx_note, "verify": verify(paths["artifact"], ("lava-sim",)),
            "graph": art.graph}




__all__ = ["load", "optimize", "ann_graph", "run_pipeline", "convert", "compile", "simulate", "readout_membrane",
           "network_levels", "latency_options", "is_student", "lossless_kind", "first_input_shape", "read_npy",
           "load_input", "is_per_step", "default_input", "EXAMPLE_DATA", "ann_outputs", "boundary_cases", "compare",
           "export", "export_nir", "verify", "deploy_loihi2"]
