"""The ANN reference a spiking result is compared with: independent of neurocompile wherever possible,
and always named, with the reason it was chosen.

In order of preference:
1. onnxruntime on the original file (batched; sample by sample, or in its batch size, when the export
   fixed the batch dimension);
2. onnx's own ReferenceEvaluator in float64, with neurocompile's custom ops (CQReLU, and LIF stepped
   over the student's T time steps) registered as OpRun classes built on neurocompile.ir.neurons — for files
   onnxruntime cannot load (custom domain, IR version newer than it reads);
3. neurocompile's own interpreter: *not independent* (a saved IR or artifact holds no original model);
4. none (a saved LIF student on the reference target would be compared with itself).
A standard model that onnxruntime rejects as invalid is refused, not compared with ourselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from neurocompile.ir import neurons
from neurocompile.frontends.onnx.contract import DOMAIN as CUSTOM_DOMAIN
from neurocompile.errors import ModelLoadError
from neurocompile.ir import Graph, is_saved_ir
from neurocompile.ir.ops import OPS

# onnxruntime load failures that say "I cannot run this file", not "this file is invalid"
_CANNOT_RUN = ("Unsupported model IR version", "is not a registered function/op", "opset", "No Op registered",
               "Could not find an implementation")
# ONNX op types _as_float64 rewrites besides the tensors themselves: casts to float, constants of value_float
CASTS = frozenset({"Cast"})
CONSTANTS = frozenset({"Constant"})


@dataclass
class Reference:
    name: str                 # what computed the ANN outputs
    why: str                  # why this one
    independent: bool         # computed without neurocompile's import/convert/simulate code
    run: Callable[[np.ndarray], np.ndarray] | None = None

    def outputs(self, x: np.ndarray) -> np.ndarray | None:
        return None if self.run is None else np.asarray(self.run(x))

    def to_dict(self) -> dict:
        return {"name": self.name, "why": self.why, "independent": self.independent}

    def __str__(self) -> str:
        return f"{self.name} ({self.why})" + ("" if self.independent or self.run is None else
                                             "; NOT an independent reference")


def reference_for(path: str, graph: Graph, target: str = "reference") -> Reference:
    """Choose the reference for ``path`` (whose imported graph is ``graph``) run on ``target``."""
    spiking = any(OPS[n.op].spiking for n in graph.nodes.values())
    lif = any(OPS[n.op].spiking and not OPS[n.op].quantizer for n in graph.nodes.values())  # an IDSNN student
    from neurocompile.exporters.artifact import is_artifact

    if is_saved_ir(path) or is_artifact(path):
        return _saved_ir(graph, lif, target)
    from neurocompile.frontends.nir import is_nir

    if is_nir(path):
        return _nir(graph, target)
    model = onnx.load(str(path))
    if lif:
        return _evaluator(model, "the file is an LIF student (custom neurocompile::LIF nodes onnxruntime cannot "
                                 f"run): onnx's evaluator steps it {graph.meta.get('time_steps')} time steps",
                          graph.meta.get("time_steps"))
    if spiking:  # CIF/IF nodes written by the kit: their time behaviour needs the schedule neurocompile makes
        from neurocompile import pipeline
        from neurocompile.ir import interpreter

        g = pipeline.optimize(graph)
        return Reference("neurocompile interpreter (float64)", "the file holds CIF/IF spiking nodes, which no "
                         "independent runtime defines", False, lambda x: interpreter.run1(g, x, "float64"))
    if any(n.domain == CUSTOM_DOMAIN for n in model.graph.node):
        return _evaluator(model, "onnxruntime cannot run neurocompile's custom CQReLU nodes")
    return _onnxruntime(model, path)


def _onnxruntime(model: onnx.ModelProto, path: str) -> Reference:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 4  # its warnings and errors would break the CLI's one-paragraph stderr
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        msg = " ".join(str(exc).split())
        if any(k in msg for k in _CANNOT_RUN):
            short = _ort_message(msg)[:160]
            return _evaluator(model, f"onnxruntime cannot load the file ({short})")
        raise ModelLoadError(f"onnxruntime rejects the model: {_ort_message(msg)}", file=path,
                             hint="The model is not valid ONNX for onnxruntime; fix the exporter or the model") from None
    inp = sess.get_inputs()[0]
    batch = inp.shape[0] if inp.shape and isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None

    def run(x: np.ndarray) -> np.ndarray:
        try:
            return _run(np.asarray(x, dtype=np.float32))
        except Exception as exc:  # noqa: BLE001 - a model it loads but cannot run (bad attributes, shapes)
            raise ModelLoadError(f"onnxruntime fails to run the model: {_ort_message(str(exc))}",
                                 file=path, hint="The model is not valid ONNX for onnxruntime; fix the exporter "
                                                 "or the model") from None

    def _run(x: np.ndarray) -> np.ndarray:
        if batch is None:
            return sess.run(None, {inp.name: x})[0]
        parts = []
        for i in range(0, len(x), batch):  # pad the last chunk to the fixed batch, drop the padding
            chunk = x[i:i + batch]
            pad = np.zeros((batch - len(chunk), *x.shape[1:]), np.float32)
            parts.append(sess.run(None, {inp.name: np.concatenate([chunk, pad])})[0][:len(chunk)])
        return np.concatenate(parts)

    dims = inp.shape[1:] if inp.shape else []
    if all(isinstance(d, int) and d > 0 for d in dims):  # a model it loads but cannot run: refuse before any work
        run(np.zeros((batch or 1, *dims), np.float32))
    if batch is None:
        return Reference("onnxruntime", "the original file, float32", True, run)
    how = "sample by sample" if batch == 1 else f"in batches of {batch}"
    return Reference(f"onnxruntime ({how})", f"the export fixed the batch dimension at {batch}", True, run)


def _ort_message(msg: str) -> str:
    """onnxruntime's message without its "[ONNXRuntimeError] : 1 : FAIL :" prefix and source locations."""
    msg = " ".join(msg.split()).split(" : ")[-1]
    return msg if len(msg) <= 300 else msg[:297] + "..."


def _nir(graph: Graph, target: str) -> Reference:
    """A NIR file is a spiking network with no ANN: Lava is compared with the reference simulator (its T from the
    file's import options), the reference simulator with nothing."""
    if target == "reference":
        return Reference("none", "a NIR file holds a spiking network and no ANN, and the reference simulator would be "
                         "compared with itself", False)
    from neurocompile import pipeline

    return Reference("reference simulator", "a NIR file holds no ANN: the Lava run is compared with neurocompile's "
                     "reference simulator", False,
                     lambda x: pipeline.simulate(pipeline.convert(graph, target=target), x, exact=True).output)


def _saved_ir(graph: Graph, lif: bool, target: str) -> Reference:
    if lif:
        if target == "reference":
            return Reference("none", "a saved IR or artifact of an LIF student holds no ANN, and the reference simulator would be "
                             "compared with itself", False)
        from neurocompile import pipeline

        return Reference("reference simulator", "a saved IR or artifact holds no original model: the Lava run is compared with "
                         "neurocompile's reference simulator", False, lambda x: pipeline.simulate(graph, x, exact=True).output)
    from neurocompile.ir import interpreter

    return Reference("neurocompile interpreter (float64)", "a saved IR or artifact holds no original model: its ANN meaning is "
                     "neurocompile's own interpretation", False, lambda x: interpreter.run1(graph, x, "float64"))


# -- onnx's ReferenceEvaluator ------------------------------------------------------------------
def _evaluator(model: onnx.ModelProto, why: str, time_steps: int | None = None) -> Reference:
    """onnx.reference.ReferenceEvaluator on a float64 copy of the model (exact, as the interpreter's
    float64 is; it shares nothing with neurocompile but the neuron definitions)."""
    from onnx.reference import ReferenceEvaluator

    m64 = _as_float64(model)
    ops = _custom_ops()
    inits = {t.name for t in m64.graph.initializer}
    name = next(vi.name for vi in m64.graph.input if vi.name not in inits)
    try:
        loaded = ReferenceEvaluator(m64, new_ops=ops)
    except Exception as exc:  # noqa: BLE001
        return Reference("none", f"{why}, and onnx's ReferenceEvaluator cannot load it either ({exc})"[:300], False)

    def run(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if not time_steps:  # stateless: the loaded evaluator serves every call
            return loaded.run(None, {name: x})[0]
        ev = ReferenceEvaluator(m64, new_ops=ops)  # fresh: LIF membranes start at rest
        return sum(ev.run(None, {name: x})[0] for _ in range(int(time_steps))) / int(time_steps)

    label = "onnx ReferenceEvaluator (float64" + (f", {time_steps} steps)" if time_steps else ")")
    return Reference(label, why, True, run)


def _custom_ops() -> list:
    from onnx.reference.op_run import OpRun

    class CQReLU(OpRun):
        op_domain = CUSTOM_DOMAIN

        def _run(self, x, levels=8, clip=1.0, shift=0.0):
            return (neurons.cqrelu(np.asarray(x), int(levels), float(clip), float(shift)),)

    class LIF(OpRun):
        """One time step of the student's LIF (neurons.lif_step); the membrane persists between runs."""

        op_domain = CUSTOM_DOMAIN

        def _run(self, x, beta=0.25, threshold=0.5):
            u = getattr(self, "_u", None)
            f, self._u = neurons.lif_step(np.zeros_like(x) if u is None else u, x, float(beta), float(threshold))
            return (f.astype(x.dtype),)

    return [CQReLU, LIF]


def _as_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy computing in float64: float32 initializers, constants, casts and value types become double."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))
    for n in g.node:
        for a in n.attribute:
            if a.name == "value" and a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
            if n.op_type in CASTS and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.DOUBLE
        if n.op_type in CONSTANTS and any(a.name == "value_float" for a in n.attribute):
            v = next(a.f for a in n.attribute if a.name == "value_float")
            del n.attribute[:]
            n.attribute.append(onnx.helper.make_attribute("value", numpy_helper.from_array(np.array(v, np.float64))))
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
            vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    return m

