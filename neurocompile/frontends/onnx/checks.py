"""Model-level checks made before an ONNX model is imported: what ONNX itself says is invalid, and what
neurocompile would otherwise compute differently from ONNX (element types, non-finite weights, training-mode
nodes). Each check refuses with a :class:`ModelLoadError` that says what to do; none guesses.
"""
from __future__ import annotations

import numpy as np
import onnx
from google.protobuf.message import Message
from onnx import TensorProto, numpy_helper

from neurocompile.errors import ModelLoadError

# ai.onnx opsets neurocompile imports: from 7 (the oldest onnxruntime guarantees) to 23 (the newest
# onnxruntime 1.23 runs); the handlers read both the attribute (opset < 11) and input forms of Clip etc.
MIN_OPSET, MAX_OPSET = 7, 23
_FLOAT = TensorProto.FLOAT
BOUNDED = frozenset({"Clip"})  # ONNX op types whose inputs after the first are bounds: an infinite one is valid
CONSTANTS = frozenset({"Constant"})  # ONNX op types that hold a tensor in their ``value`` attribute


def check_model(model: onnx.ModelProto) -> None:
    """Raise :class:`ModelLoadError` unless the model is valid ONNX that neurocompile computes exactly."""
    _check_text(model)
    _check_opsets(model)
    _check_unique_initializers(model.graph)
    try:
        _checker(model)
    except Exception as exc:  # noqa: BLE001 - ValidationError, InferenceError, and C++ errors as RuntimeError
        msg = " ".join(str(exc).split())
        raise ModelLoadError(f"onnx.checker rejects the model: {msg[:400]}",
                             hint="The file is not valid ONNX (onnxruntime would refuse it too); fix the exporter "
                                  "or re-export the model") from None
    _check_element_types(model.graph)
    _check_finite(model.graph)


def _checker(model: onnx.ModelProto) -> None:
    """onnx.checker with full (strict shape-inference) checking. onnx 1.23's shape inference lacks the
    ceil_mode rule that drops a last pooling window starting in the end padding (onnxruntime and torch
    have it), so a pool output declared with the right size fails the strict check: there only the
    structural check applies, and neurocompile's own shape rule (ops.py, onnxruntime's) decides."""
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.shape_inference.InferenceError as exc:
        msg = str(exc)
        pools = ("MaxPool", "AveragePool")
        failing = [part.split(")")[0] for part in msg.split("(op_type:")[1:]]  # the ops inference complains of
        ceil_pools = any(n.op_type in pools and any(a.name == "ceil_mode" and a.i for a in n.attribute)
                         for n in model.graph.node)
        if not (ceil_pools and failing and set(failing) <= set(pools) and "existing shape differ" in msg):
            raise
        onnx.checker.check_model(model)


def _check_text(msg: Message, where: str = "model") -> None:
    """Every string field (names, op types, domains, metadata) is UTF-8 text. protobuf's parser keeps a string
    that is not as ``bytes`` (upb), which would fail deep inside the import; refused here, naming the field.
    Replacing the bad bytes instead could make two different tensor names equal and rewire the graph."""
    for field, value in msg.ListFields():
        if field.type not in (field.TYPE_MESSAGE, field.TYPE_STRING):
            continue  # numbers and bytes (raw tensor data): nothing to decode, and not walked element by element
        repeated = not isinstance(value, (str, bytes, Message))  # a list (descriptor labels vary by protobuf version)
        for i, v in enumerate(value if repeated else [value]):
            at = f"{where}.{field.name}" + (f"[{i}]" if repeated else "")
            if field.type == field.TYPE_MESSAGE:
                _check_text(v, at)
            elif not isinstance(v, str):
                raise ModelLoadError(f"{at} is not valid UTF-8 text ({bytes(v)[:60]!r})",
                                     hint="ONNX names and strings are UTF-8; fix the exporter, or rename the node or "
                                          "tensor")


def _check_opsets(model: onnx.ModelProto) -> None:
    domains = {o.domain or "ai.onnx": int(o.version) for o in model.opset_import}
    v = domains.get("ai.onnx")
    if v is None:
        raise ModelLoadError("the model imports no ai.onnx opset", hint="Export with a standard opset (e.g. 17)")
    if not MIN_OPSET <= v <= MAX_OPSET:
        raise ModelLoadError(f"ai.onnx opset {v} is outside the range neurocompile supports ({MIN_OPSET}..{MAX_OPSET})",
                             hint="Export with opset 17, or convert with onnx.version_converter.convert_version")


def _check_unique_initializers(g: onnx.GraphProto) -> None:
    seen: set[str] = set()
    for t in list(g.initializer) + list(g.sparse_initializer):
        name = t.name if isinstance(t, onnx.TensorProto) else t.values.name
        if name in seen:
            raise ModelLoadError(f"initializer '{name}' is defined twice (onnxruntime and onnx disagree on which "
                                 "one counts)", node=name, hint="Give every initializer a unique name")
        seen.add(name)


def _check_element_types(g: onnx.GraphProto) -> None:
    """Data flows in float32, exactly as onnxruntime computes a float32 model. Other element types of the
    graph's inputs and outputs (float64, float16, integers) would be converted silently: refuse them."""
    inits = {t.name for t in g.initializer}
    for role, vis in (("input", g.input), ("output", g.output)):
        for vi in vis:
            if vi.name in inits:
                continue
            et = vi.type.tensor_type.elem_type
            if not vi.type.HasField("tensor_type"):
                raise ModelLoadError(f"graph {role} '{vi.name}' is not a tensor", node=vi.name)
            if et != _FLOAT:
                raise ModelLoadError(
                    f"graph {role} '{vi.name}' has element type {TensorProto.DataType.Name(et)}; neurocompile "
                    "computes float32 networks only", node=vi.name,
                    hint="Export the model in float32 (model.float() in PyTorch)")


def _check_finite(g: onnx.GraphProto) -> None:
    """NaN or inf in a weight makes every result meaningless: refuse before any work, naming the tensor.
    An infinite scalar Clip bound (a valid 'no bound') is the one exception."""
    bounds = {t for n in g.node if n.op_type in BOUNDED for t in n.input[1:] if t}
    tensors = [(t.name, t) for t in g.initializer]
    tensors += [(n.output[0], a.t) for n in g.node if n.op_type in CONSTANTS for a in n.attribute if a.name == "value"]
    for name, t in tensors:
        if t.data_type not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16):
            continue
        a = numpy_helper.to_array(t)
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad and not (name in bounds and a.size == 1 and not np.isnan(a).any()):
            kinds = [k for k, m in (("NaN", np.isnan(a)), ("inf", np.isinf(a))) if m.any()]
            raise ModelLoadError(f"initializer '{name}' holds {bad} non-finite value(s) ({', '.join(kinds)}) of "
                                 f"{a.size}", node=name,
                                 hint="The trained weights are broken (diverged training or a bad export); "
                                      "re-export from a checkpoint with finite weights")
