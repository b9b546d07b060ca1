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
from neurocompile.ir import Graph
from neurocompile.passes import PassManager, PassRecord, casc_pipeline, idsnn_pipeline, optimize_pipeline
from neurocompile.targets import get_target


def load(path: str) -> Graph:
    """Read an ONNX model or a saved IR (``.json`` + ``.npz``)."""
    if str(path).endswith(".json"):
        return Graph.load(str(path))
    from neurocompile.frontends.onnx import load_onnx

    return load_onnx(str(path))


def optimize(graph: Graph, log: list[PassRecord] | None = None) -> Graph:
    """canonicalize + fold_batchnorm: same function, canonical ops."""
    pm = PassManager(optimize_pipeline())
    out = pm.run(graph)
    if log is not None:
        log.extend(pm.log)
    return out


def convert(graph: Graph, neuron: str = "cif", gamma: int = 1, levels: int | None = None,
            calibration: np.ndarray | None = None, percentile: float = 99.9, steps: int | None = None,
            target: str = "reference", synapse_delay: int | None = None, balance: bool = True,
            normalize_weights: bool = False, fixed_point: bool = False,
            log: list[PassRecord] | None = None) -> Graph:
    """ANN graph -> spiking graph with a WakeSleepSchedule for ``target``. A graph of LIF neurons
    (an exported IDSNN student) only gets BN folded and a T-step schedule (T from its metadata).

    ``fixed_point`` quantizes to integer weights/thresholds (lossy; run on lava-sim's fixed_pt models
    or the reference simulator, which then computes in exact integers). ``levels`` sets L for calibrated plain-ReLU layers; for a CQReLU network it must equal the
    trained L (checked). ``synapse_delay`` defaults to the target's own per-layer delay.
    """
    delay = get_target(target).synapse_delay if synapse_delay is None else int(synapse_delay)
    if any(n.op == "LIF" for n in graph.nodes.values()):  # an IDSNN student is spiking already
        if fixed_point:
            raise ConversionError("fixed point is not available for LIF students yet")
        pm = PassManager(idsnn_pipeline(steps=steps, synapse_delay=delay, balance=balance))
        out = pm.run(graph)
        if log is not None:
            log.extend(pm.log)
        return out
    pm = PassManager(casc_pipeline(neuron=neuron, gamma=gamma, levels=levels or 8, calibration=calibration,
                                   percentile=percentile, t_wake=None if neuron == "cif" else steps,
                                   steps=steps, synapse_delay=delay, balance=balance,
                                   normalize_weights=normalize_weights, fixed_point=fixed_point))
    out = pm.run(graph)
    if log is not None:
        log.extend(pm.log)
    trained = {int(n.attrs["levels"]) for n in out.nodes.values() if n.op in ("CIF", "IF")
               and not out.meta.get("lossy_layers")}
    if levels is not None and trained and trained != {int(levels)}:
        raise ConversionError(f"--levels {levels} differs from the network's trained levels L={sorted(trained)}",
                              hint="CQReLU networks convert losslessly only at their own L; omit --levels")
    return out


def compile(graph: Graph, target: str = "reference", **options: Any):
    """Spiking graph -> an executable of ``target`` (``run(x, steps)`` -> SimResult)."""
    return get_target(target).compile(graph, **options)


def simulate(graph: Graph, x: np.ndarray, steps: int | None = None, target: str = "reference",
             early_stop: bool = False, progress=None, **options: Any):
    """Compile and run in one call."""
    return compile(graph, target, **options).run(x, steps=steps, early_stop=early_stop, progress=progress)


def ann_outputs(path: str, x: np.ndarray) -> tuple[np.ndarray, str]:
    """The ANN's own outputs: onnxruntime on the original file when it can run it (custom
    neurocompile nodes it cannot), else the interpreter in float64. Returns (outputs, source)."""
    if str(path).endswith(".onnx"):
        try:
            import onnxruntime as ort

            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0], "onnxruntime"
        except Exception:  # noqa: BLE001 - e.g. custom-domain nodes: fall back to our interpreter
            pass
    from neurocompile import interpreter

    g = optimize(load(path))
    return interpreter.run(g, x, dtype="float64")[g.outputs[0]], "interpreter"


def compare(snn: np.ndarray, ann: np.ndarray, per_step: np.ndarray | None = None) -> dict[str, Any]:
    """Logit error and argmax agreement of a spiking readout against the ANN."""
    snn, ann = np.asarray(snn, dtype=np.float64), np.asarray(ann, dtype=np.float64)
    rep = {
        "max_abs_error": float(np.max(np.abs(snn - ann))),
        "max_abs_logit": float(np.max(np.abs(ann))),
        "argmax_agreement": float(np.mean(snn.reshape(len(snn), -1).argmax(1) == ann.reshape(len(ann), -1).argmax(1))),
        "ann_argmax": ann.reshape(len(ann), -1).argmax(1).tolist(),
    }
    if per_step is not None:
        rep["per_step_max_abs_error"] = [float(np.max(np.abs(p - ann))) for p in per_step]
    return rep


def load_input(path: str, shape: tuple[int, ...]) -> np.ndarray:
    """Read ``--input``/``--calibrate`` arrays: (N, *shape) or a single sample of ``shape``."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read input array: {exc}", file=path) from exc
    if tuple(x.shape) == tuple(shape):
        x = x[None]
    if tuple(x.shape[1:]) != tuple(shape):
        raise NeurocompileError(f"input array has shape {x.shape}, the model expects (N, {', '.join(map(str, shape))})",
                                file=path)
    return x.astype(np.float32)


EXAMPLE_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                            "digits_test.npy")


def default_input(shape: tuple[int, ...]) -> tuple[np.ndarray, str]:
    """What runs without ``--input``: one bundled digits test image when the model takes 1x8x8
    images, else one random input (seed 0)."""
    if tuple(shape) == (1, 8, 8) and os.path.exists(EXAMPLE_DATA):
        return np.load(EXAMPLE_DATA)[:1].astype(np.float32), "1 bundled digits test image"
    return np.random.default_rng(0).uniform(0, 1, (1, *shape)).astype(np.float32), "1 random input (seed 0)"


def first_input_shape(graph: Graph) -> tuple[int, ...]:
    return tuple(graph.shapes[graph.input_nodes[0].output])


__all__ = ["load", "optimize", "convert", "compile", "simulate", "ann_outputs", "compare", "load_input",
]
