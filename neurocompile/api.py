"""The Python API: what the CLI, the examples and users call.

    g   = load("model.onnx")                      # ONNX (or a saved IR .json) -> Graph
    snn = convert(g, neuron="cif")                # passes: canonicalize ... schedule_wake_sleep
    res = simulate(snn, x)                        # reference simulator -> SimResult
    rep = compare(res.output, ann_outputs("model.onnx", x), res.per_step)
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from neurocompile.errors import ConversionError, ModelLoadError, NeurocompileError
from neurocompile.ir import Graph, is_saved_ir
from neurocompile.ops import OPS, is_level_neuron
from neurocompile.passes import PassManager, PassRecord, casc_pipeline, idsnn_pipeline, optimize_pipeline, pipeline
from neurocompile.targets import get_target


def load(path: str, **nir_options: Any) -> Graph:
    """Read an ONNX model, a saved IR (``.json`` + ``.npz``), an artifact (``.h5``: its converted graph) or a NIR
    file (``.nir``; ``nir_options``: ``dt`` (default 1e-4 s, snnTorch's), ``discretization`` ("snntorch",
    "euler", "zoh") and ``time_steps`` T, see :mod:`neurocompile.frontends.nir`)."""
    from neurocompile import artifact
    from neurocompile.frontends.nir import is_nir, load_nir

    if is_nir(path):
        return load_nir(str(path), **{k: v for k, v in nir_options.items() if v is not None})
    if nir_options and any(v is not None for v in nir_options.values()):
        raise ModelLoadError(f"{', '.join(sorted(nir_options))} apply to NIR files (.nir) only", file=str(path))
    if artifact.is_artifact(path):
        return artifact.load(str(path)).graph
    if is_saved_ir(path):
        return Graph.load(str(path))
    from neurocompile.frontends.onnx import load_onnx

    return load_onnx(str(path))


def _run(graph: Graph, passes: list, log: list[PassRecord] | None) -> Graph:
    """Run ``passes`` with validation after each; append what each did to ``log``."""
    pm = PassManager(passes)
    out = pm.run(graph)
    if log is not None:
        log.extend(pm.log)
    return out


def run_pipeline(graph: Graph, name: str = "optimize", log: list[PassRecord] | None = None, **options: Any) -> Graph:
    """Run the pipeline registered as ``name`` (neurocompile.passes.PIPELINES) with its default options."""
    return _run(graph, pipeline(name, **options), log)


def optimize(graph: Graph, log: list[PassRecord] | None = None) -> Graph:
    """canonicalize + fold_batchnorm: same function, canonical ops."""
    return _run(graph, optimize_pipeline(), log)


def ann_graph(graph: Graph) -> Graph:
    """The ANN as the converter sees it: optimized, CQReLU chains recognized (same function)."""
    from neurocompile.passes.recognize_cqrelu import recognize_cqrelu

    return _run(graph, [*optimize_pipeline(), recognize_cqrelu], None)


def convert(graph: Graph, neuron: str = "cif", gamma: int = 1, levels: int | None = None,
            calibration: np.ndarray | None = None, percentile: float = 99.9, steps: int | None = None,
            target: str = "reference", synapse_delay: int | None = None, balance: bool = True,
            normalize_weights: bool = False, fixed_point: bool = False, t_wake: int | None = None,
            log: list[PassRecord] | None = None) -> Graph:
    """ANN graph -> spiking graph with a WakeSleepSchedule for ``target``. A graph of LIF neurons
    (an exported IDSNN student) only gets BN folded and a T-step schedule (T from its metadata).

    ``fixed_point`` quantizes to integer weights/thresholds (lossy; run on lava-sim's fixed_pt models
    or the reference simulator, which then computes in exact integers). ``levels`` sets L for
    calibrated plain-ReLU layers; for a CQReLU network it must equal the trained L (checked).
    ``synapse_delay`` defaults to the target's own per-layer delay. ``t_wake`` (CIF, a divisor of L; default L) shortens
    the wake phase: with graded spikes (``gamma`` up to L) the readout is exact in fewer steps (:func:`latency_options`
    picks both for a payload limit). Options beyond
    :mod:`neurocompile.limits` are refused before any work.
    """
    from neurocompile import limits

    if graph.schedule is not None:  # converting twice would drop the schedule's fixed-point scales and T
        raise ConversionError("the graph is converted already (it has a wake/sleep schedule, e.g. a saved IR)",
                              hint="Run it as it is: api.simulate(graph, x) or api.compile(graph, target)")
    limits.check_options(steps=steps, levels=levels, gamma=gamma, delay=synapse_delay, percentile=percentile)
    if calibration is not None:  # checked only: the passes get the caller's array unchanged
        _checked_samples(np.asarray(calibration), "calibration array")
    delay = get_target(target).synapse_delay if synapse_delay is None else int(synapse_delay)
    if t_wake is not None and (neuron != "cif" or is_student(graph)):
        raise ConversionError("t_wake shortens a CIF network's wake phase; "
                              + ("an IDSNN student runs its own T steps" if is_student(graph) else
                                 "the IF baseline has no wake phase (its input runs for all steps)"))
    if is_student(graph):  # an IDSNN student is spiking already
        if not graph.meta.get("time_steps") and steps is not None:  # a NIR file carries no T: steps is T
            return _run(graph, idsnn_pipeline(time_steps=steps, synapse_delay=delay, balance=balance,
                                              fixed_point=fixed_point), log)
        return _run(graph, idsnn_pipeline(steps=steps, synapse_delay=delay, balance=balance,
                                          fixed_point=fixed_point), log)
    out = _run(graph, casc_pipeline(neuron=neuron, gamma=gamma, levels=levels or 8, calibration=calibration,
                                    percentile=percentile, t_wake=t_wake if neuron == "cif" else steps,
                                    steps=steps, synapse_delay=delay, balance=balance,
                                    normalize_weights=normalize_weights, fixed_point=fixed_point), log)
    trained = {int(OPS[n.op].attr(n, "levels")) for n in out.nodes.values() if is_level_neuron(n)
               and not out.meta.get("lossy_layers")}
    if levels is not None and trained and trained != {int(levels)}:
        raise ConversionError(f"--levels {levels} differs from the network's trained levels L={sorted(trained)}",
                              hint="CQReLU networks convert losslessly only at their own L; omit --levels")
    return out


def readout_membrane(graph: Graph, result: Any) -> np.ndarray | None:
    """The membrane after every run step up to the output's own last one, (rows, N, *shape), of the first graph output
    of ``graph`` (converted, as run: the loaded graph gives None) when a leaky integrator writes it (an LI node: NIR's LI, CubaLI or I as the readout), else None (also without
    per-step records). Such an output sends its membrane V each step and is read out like every output, as the mean
    over the T wake steps: ``result.output`` is the mean membrane and result.per_step[t] = (V_0 + ... + V_t) / T,
    so V_t = T (per_step[t] - per_step[t - 1]), to the rounding of the running sum; the last row is the membrane
    after the output's last step. With synaptic delays the rows start with the steps before the output's data arrives
    (zeros) and an output reached before the latest one stops earlier than the run (fewer rows than run steps)."""
    from neurocompile import ops

    if result.per_step is None or graph.schedule is None:
        return None
    src = graph.producers()[graph.outputs[0]]
    if isinstance(OPS[src.op], ops.Readout):  # a lowered graph: the readout's source
        src = graph.producers()[src.inputs[0]]
    if not isinstance(OPS[src.op], ops.LI):
        return None
    s = graph.schedule
    sums = np.asarray(result.per_step, dtype=np.float64) * (s.t_wake * s.readout_scale)
    # with synaptic delays an output reached earlier than the latest ends its own T steps earlier than the run
    # (ReferenceSimulator.ends): the rows stop there, so the last one is the membrane after its last step
    prod = graph.producers()
    end = s.lag(src.name) + int(result.steps) - max(s.lag(prod[t].name) for t in graph.outputs)
    return np.diff(sums, axis=0, prepend=0.0)[:max(end, 0)]


def network_levels(graph: Graph) -> int | None:
    """The quantization levels L a CQReLU network was trained with (None for plain ReLU or a student)."""
    levels = sorted({int(OPS[n.op].attr(n, "levels")) for n in ann_graph(graph).nodes.values()
                     if OPS[n.op].quantizer})
    return levels[0] if len(levels) == 1 else None


def latency_options(levels: int, max_payload_bits: int = 24) -> tuple[int, int]:
    """(t_wake, gamma) of the fastest exact CIF schedule whose spikes fit a signed graded payload of
    ``max_payload_bits`` (Loihi 2: up to 24): gamma = min(L, 2**(bits-1) - 1) spikes per step, and the shortest wake
    phase whose rate L / T_wake a neuron can send in one step (the largest divisor of L <= gamma).
    benchmarks/latency_frontier.py measures the whole frontier T(gamma, T_wake)."""
    if int(max_payload_bits) < 2:
        raise ConversionError(f"a signed spike payload needs at least 2 bits (sign and one level), got {max_payload_bits}")
    gamma = min(int(levels), 2 ** (min(int(max_payload_bits), 24) - 1) - 1)
    rate = max(d for d in range(1, gamma + 1) if levels % d == 0)
    return int(levels) // rate, gamma


def is_student(graph: Graph) -> bool:
    """An IDSNN student: a network of neurons without an ANN meaning (LIF), spiking as imported, which
    converts by the idsnn pipeline rather than by CIF encoding."""
    return any(OPS[n.op].spiking and not is_level_neuron(n) for n in graph.nodes.values())


def lossless_kind(graph: Graph) -> bool:
    """A converted CIF network: neurons with a sleep phase, lossless once settled."""
    return any(is_level_neuron(n) and OPS[n.op].sleep_phase for n in graph.nodes.values())


def compile(graph: Graph, target: str = "reference", **options: Any):
    """Spiking graph -> an executable of ``target`` (``run(x, steps)`` -> SimResult)."""
    return get_target(target).compile(graph, **options)


def simulate(graph: Graph, x: np.ndarray, steps: int | None = None, target: str = "reference",
             early_stop: bool = False, progress=None, record_layers: bool = False, exact: bool = False,
             **options: Any):
    """Compile and run in one call (``x`` is checked: finite numbers, at least one sample).
    ``record_layers`` fills ``SimResult.layers`` (per-layer, per-step spike counts). The reference simulator runs in
    float32 unless ``exact`` (every spike decision exact: proved in float32 or made in float64, the readout in float64,
    so it equals the float64 interpreter's to summation rounding; fixed-point networks are always exact).
    ``SimResult.precision`` says which ran."""
    from neurocompile import limits

    if isinstance(x, np.ndarray):
        _checked_samples(x, "input")  # refuses; x itself keeps its dtype (float64 inputs stay exact)
    if graph.schedule is not None:
        limits.check_work(graph, len(x), int(steps or graph.schedule["steps"]), target, record_layers=record_layers)
    run_options = {"record_layers": True} if record_layers else {}
    if exact and target == "reference":
        options["exact"] = True
    return compile(graph, target, **options).run(x, steps=steps, early_stop=early_stop, progress=progress,
                                                 **run_options)


def ann_outputs(path: str, x: np.ndarray, target: str = "reference") -> tuple[np.ndarray | None, str]:
    """The ANN's own outputs from the independent reference :func:`neurocompile.reference.reference_for`
    chooses (onnxruntime where it runs the file). Returns (outputs or None, the reference's name)."""
    from neurocompile.reference import reference_for

    ref = reference_for(path, load(path), target)
    return ref.outputs(x), ref.name


def boundary_cases(graph: Graph, x: np.ndarray):
    """Samples where a float32 ANN may differ from the exact one by a quantization level
    (:mod:`neurocompile.boundary`); ``graph`` is the imported ANN."""
    from neurocompile.boundary import find_boundary_cases

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


def read_npy(path: str, what: str = "input array") -> np.ndarray:
    """A ``.npy`` (or ``.npz``) file as numpy loads it, or a one-paragraph ModelLoadError naming the file: missing, a
    folder, not .npy, truncated, or a pickled (object) array, never unpickled (a .npy may come from anywhere).
    ``what`` names the file's role in the messages ("input array", "labels")."""
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
    except OSError as exc:
        raise ModelLoadError(f"cannot read the {what}: {exc.strerror or exc}", file=path) from exc
    if magic != b"\x93NUMPY" and not magic.startswith(b"PK"):  # neither .npy nor .npz (a zip)
        raise ModelLoadError(f"the {what} file is not a .npy array", file=path, hint="Save it with np.save")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickled" in str(exc):
            raise ModelLoadError(f"the {what} file holds a pickled (object) array, which is not loaded for safety",
                                 file=path, hint="Save a numeric array with np.save") from exc
        raise ModelLoadError(f"cannot read the {what}: {exc}", file=path) from exc
    except (OSError, EOFError) as exc:  # EOFError: a truncated .npy
        msg = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ModelLoadError(f"cannot read the {what}: {msg}", file=path,
                             hint="Is it a complete .npy file (np.save)?") from exc


def load_input(path: str, shape: tuple[int, ...], per_step: bool = False) -> np.ndarray:
    """Read ``--input``/``--calibrate`` arrays: (N, *shape) or a single sample of ``shape``, N >= 1, and with
    ``per_step`` also (N, T, *shape), one input per step (a spiking input); numeric (bool, int or float) and finite;
    returned as float32."""
    x = read_npy(path)
    if isinstance(x, np.lib.npyio.NpzFile):
        x.close()
        raise ModelLoadError("the file is an .npz archive; pass a .npy array (np.save)", file=path)
    if tuple(x.shape) == tuple(shape):
        x = x[None]
    stepped = per_step and x.ndim == len(shape) + 2 and tuple(x.shape[2:]) == tuple(shape) and x.shape[1] >= 1
    if tuple(x.shape[1:]) != tuple(shape) and not stepped:
        dims = ", ".join(map(str, shape))
        raise NeurocompileError(f"input array has shape {x.shape}, the model expects (N, {dims})"
                                + (f" or (N, T, {dims}) (one input per step)" if per_step else ""), file=path)
    return _checked_samples(x, "input array", path)


def is_per_step(x: np.ndarray, graph: Graph) -> bool:
    """``x`` gives one input per step, (N, T, *input shape), rather than one per sample."""
    return np.ndim(x) == len(first_input_shape(graph)) + 2


def _checked_samples(x: np.ndarray, what: str, path: str | None = None) -> np.ndarray:
    """Refuse empty, non-numeric or non-finite sample arrays (they would fail deep in a pass or a
    simulator with a message about something else); return float32."""
    if x.dtype.kind not in "biuf":
        raise NeurocompileError(f"{what} has dtype {x.dtype}, not numbers", file=path,
                                hint="Pass a bool, int or float array")
    if x.ndim == 0 or len(x) == 0:
        raise NeurocompileError(f"{what} holds no samples (shape {x.shape})", file=path)
    with np.errstate(over="ignore"):
        x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        first = int(np.argmax(bad.reshape(len(x), -1).any(1)))
        raise NeurocompileError(f"{what} holds {int(bad.sum()):,} non-finite value(s) ({int(np.isnan(x).sum()):,} NaN, "
                                f"{int(np.isinf(x).sum()):,} inf or beyond float32) of {x.size:,}, first in sample "
                                f"{first}", file=path, hint="Inputs must be finite numbers")
    return x


EXAMPLE_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                            "digits_test.npy")


def default_input(shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """What runs without ``--input``: one bundled digits test image when the model takes 1x8x8
    images, else one random input (seed 0)."""
    if tuple(shape) == (1, 8, 8) and os.path.exists(EXAMPLE_DATA):
        return np.load(EXAMPLE_DATA)[:1].astype(np.float32), "1 bundled digits test image"
    return np.random.default_rng(0).uniform(0, 1, (1, *shape)).astype(np.float32), "1 random input (seed 0)"


def export(model: str, out: str, inputs: np.ndarray | None = None, n_reference: int = 8, target: str = "lava-sim",
           nir_options: dict[str, Any] | None = None, **options: Any):
    """Convert ``model`` (for ``target``: lava-sim models Lava's synaptic delay, and the reference target runs
    that too) and write the single-file artifact ``out`` with provenance and ``n_reference`` reference inputs
    (the first of ``inputs``, else random inputs in [0, 1), seed 0) with the ANN's and the SNN's outputs.
    ``nir_options`` are :func:`load`'s for a NIR ``model`` (dt, discretization, time_steps)."""
    from neurocompile import artifact
    from neurocompile.reference import reference_for

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
    converted already) as a NIR file ``out`` (:mod:`neurocompile.frontends.nir_export`: LIF students exactly, CIF
    networks as neurocompile's documented extension). ``dt`` (default 1e-4 s, snnTorch's) discretizes the neurons;
    ``nir_options`` are :func:`load`'s for a NIR ``model``. Returns the :class:`NirExport`."""
    from neurocompile.frontends.nir import DEFAULT_DT
    from neurocompile.frontends.nir_export import write_nir

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
    from neurocompile import artifact, limits

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
                  steps: int | None = None) -> dict[str, Any]:
    """Everything a Loihi 2 deployment needs that can happen without the chip: convert ``model`` to fixed point
    (Loihi 2's formats, one step of delay per synapse), write into ``out_dir`` the neurocompile artifact
    (``<stem>.h5``), the lava-dl netx file where netx can hold the network (``<stem>.net``: feed-forward LIF
    students) and the resource estimate (``<stem>.resources.json``), and verify the artifact on lava-sim's
    fixed_pt models. Returns {"files": [...], "netx": path or the reason it was skipped, "verify": report}."""
    import json

    from neurocompile.atomic import write_atomic
    from neurocompile.estimate import estimate
    from neurocompile.netx import write_netx

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
    try:
        art = export(model, paths["artifact"], inputs=inputs, n_reference=n_reference, target="lava-sim",
                     **({} if g.schedule is not None else {"fixed_point": True, **({"steps": steps} if steps else {})}))
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


def first_input_shape(graph: Graph) -> tuple[int, ...]:
    return tuple(graph.shapes[graph.input_nodes[0].output])


__all__ = ["load", "optimize", "convert", "compile", "simulate", "ann_outputs", "compare", "load_input", "export",
           "export_nir", "verify", "deploy_loihi2", "readout_membrane",
]
