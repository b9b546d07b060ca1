"""ONNX -> IR.

One ONNX node on the data path becomes one IR node, with constant operands turned into parameters
and attributes renamed to the IR's. Nodes off the data path (Constant, Shape subgraphs, casts of
initializers) are folded to constants here; a shape computation that depends on the symbolic batch
size is only allowed to feed a Reshape, whose target shape then comes from onnx's shape inference.
Recognizing CQReLU chains is a pass (``recognize_cqrelu``), not the importer's job.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from neurocompile.frontends.onnx.contract import CUSTOM_OPS, DOMAIN, META_ENCODING, META_TIME_STEPS
from neurocompile.errors import ModelLoadError, NeurocompileError, UnsupportedOpError
from neurocompile.frontends.onnx.checks import check_model
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import OPS, check_attrs, infer_shape, pool_axis

CUSTOM_DOMAIN = DOMAIN
_UNKNOWN = object()  # a constant whose value cannot be known at import time
# Shape() of a data tensor reports this for the symbolic batch size; a Reshape whose target starts
# with it keeps the batch. Arithmetic on it would change the value and is then rejected clearly.
BATCH_SENTINEL = 9973
# ONNX op types the importer treats itself, outside the handler table HANDLERS
SHAPE_OF = frozenset({"Shape"})  # folded to the data tensor's known shape (its batch size: BATCH_SENTINEL)
CONSTANTS = frozenset({"Constant"})  # a value attribute read directly (other constant nodes are evaluated)
CLIP_SIDE = {"Min": "max", "Max": "min"}  # the Clip bound a Min / Max against a constant is


def load_onnx(path: str) -> Graph:
    """Read an ONNX file and import it. Raises :class:`ModelLoadError` / :class:`UnsupportedOpError`."""
    if not os.path.isfile(path):
        raise ModelLoadError("no such file", file=path)
    try:
        model = onnx.load(path)
    except Exception as exc:  # protobuf raises DecodeError, others raise ValueError/RuntimeError
        raise ModelLoadError(f"cannot parse the file as ONNX ({type(exc).__name__}: {exc})", file=path,
                             hint="Is it an .onnx model file, and was it written completely?") from exc
    try:
        return import_model(model, name=os.path.splitext(os.path.basename(path))[0])
    except NeurocompileError as err:
        raise err.at(path)


def import_model(model: onnx.ModelProto, name: str = "model") -> Graph:
    graph = model.graph
    if len(graph.node) == 0 or len(graph.output) == 0:
        raise ModelLoadError("the ONNX graph is empty (no nodes or no outputs)",
                             hint="Export the model again; the file holds no network")
    check_model(model)
    try:
        inferred = onnx.shape_inference.infer_shapes(_structure(model), data_prop=True)
    except Exception:  # noqa: BLE001 - inference is a help, not a requirement
        inferred = model
    return _Importer(model, inferred, name).run()


def _structure(model: onnx.ModelProto, keep: int = 4096) -> onnx.ModelProto:
    """``model`` with the values of its large float initializers dropped (their names, types and dims kept): what
    shape inference reads, without serializing and parsing every weight (a ResNet-18's 45 MB) twice. Small
    tensors keep their values for data propagation (Reshape shapes and the like are integers anyway)."""
    light = onnx.ModelProto()
    light.CopyFrom(model)
    for t in light.graph.initializer:
        if t.data_type in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16) and \
                int(np.prod(t.dims, dtype=np.int64)) > keep:
            t.ClearField("raw_data")
            t.ClearField("float_data")
            t.ClearField("double_data")
            t.ClearField("int32_data")
    return light


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in vi.type.tensor_type.shape.dim]


class _Importer:
    def __init__(self, model: onnx.ModelProto, inferred: onnx.ModelProto, name: str):
        self.model, self.g = model, model.graph
        self.out = Graph(name=name)
        self.out.meta = {"producer": model.producer_name, "opset": _opset(model),
                         "onnx_meta": {p.key: p.value for p in model.metadata_props}}
        meta = self.out.meta["onnx_meta"]  # written by neurocompile.torch.export_onnx for spiking models
        if META_TIME_STEPS in meta:
            try:
                self.out.meta["time_steps"] = int(meta[META_TIME_STEPS])
            except ValueError:
                raise ModelLoadError(f"metadata {META_TIME_STEPS}={meta[META_TIME_STEPS]!r} "
                                     "is not an integer") from None
        if META_ENCODING in meta:
            self.out.meta["encoding"] = meta[META_ENCODING]
        self.consts: dict[str, Any] = {t.name: numpy_helper.to_array(t) for t in self.g.initializer}
        self.data: set[str] = set()
        ig = inferred.graph
        self.vinfo = {v.name: _dims(v) for v in list(ig.value_info) + list(ig.output) + list(ig.input)}
        self.unsupported: list[tuple[str, str]] = []
        self.renamed: dict[str, str] = {}  # tensors removed on import (Identity/Dropout keep them)

    # -- driver --------------------------------------------------------------------------
    def run(self) -> Graph:
        for vi in self.g.input:
            if vi.name in self.consts:
                continue  # old exporters list initializers as inputs
            dims = _dims(vi)
            if len(dims) < 1 or not all(isinstance(d, int) and d > 0 for d in dims[1:]):
                raise ModelLoadError(f"graph input '{vi.name}' has shape {dims}: all but the batch dimension "
                                     "must be fixed", node=vi.name)
            shape = tuple(int(d) for d in dims[1:])
            self.out.add(Node(vi.name, "Input", [], vi.name, {"shape": list(shape)}), shape)
            self.data.add(vi.name)
        if not self.data:
            raise ModelLoadError("the ONNX graph has no data input")
        for i, n in enumerate(self.g.node):
            name = n.name or f"{n.op_type}_{i}"
            if n.op_type in SHAPE_OF:
                self._fold_shape(n)
            elif any(t in self.data for t in n.input if t):
                self._data_node(name, n)
            else:
                self._fold_constant(name, n)
        if self.unsupported:
            listing = ", ".join(f"'{nm}' ({op})" for nm, op in self.unsupported)
            raise UnsupportedOpError(
                f"{len(self.unsupported)} node(s) use ops neurocompile cannot import: {listing}",
                node=self.unsupported[0][0], op=self.unsupported[0][1],
                hint=f"Supported ops: {', '.join(sorted(SUPPORTED))}, and {CUSTOM_DOMAIN}::"
                     f"{{{', '.join(sorted(CUSTOM))}}}",
                unsupported=self.unsupported)
        for vo in self.g.output:
            t = self.renamed.get(vo.name, vo.name)
            if t not in self.data:
                raise ModelLoadError(f"graph output '{vo.name}' does not depend on the input")
            declared = _dims(vo)[1:]
            if (not self.unsupported and t in self.out.shapes and declared and all(isinstance(d, int) and d > 0
                                                                                for d in declared)
                    and len(declared) == len(self.out.shapes[t]) and tuple(declared) != self.out.shapes[t]):
                raise ModelLoadError(f"graph output '{vo.name}' is declared with per-sample shape {tuple(declared)}, "
                                     f"but computes {self.out.shapes[t]}", node=vo.name,
                                     hint="The file's declared shapes disagree with its ops; re-export the model")
            self.out.outputs.append(t)
        return self.out

    # -- constants -----------------------------------------------------------------------
    def _fold_shape(self, n: onnx.NodeProto) -> None:
        src = self.renamed.get(n.input[0], n.input[0])
        if src in self.out.shapes:
            dims = np.array([BATCH_SENTINEL, *self.out.shapes[src]], dtype=np.int64)
            a = {x.name: onnx.helper.get_attribute_value(x) for x in n.attribute}
            self.consts[n.output[0]] = dims[a.get("start", 0):a.get("end", len(dims))]
        else:
            self.consts[n.output[0]] = _UNKNOWN

    def _fold_constant(self, name: str, n: onnx.NodeProto) -> None:
        vals = [self.consts.get(t, _UNKNOWN) if t else None for t in n.input]
        if any(v is _UNKNOWN for v in vals):
            for o in n.output:
                self.consts[o] = _UNKNOWN
            return
        if n.op_type in CONSTANTS and len(n.attribute) == 1 and n.attribute[0].name == "value":
            self.consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
            return
        try:
            from onnx.reference import ReferenceEvaluator

            sub = onnx.helper.make_graph([n], "fold", [onnx.helper.make_tensor_value_info(t, 1, None)
                                                       for t in n.input if t],
                                         [onnx.helper.make_tensor_value_info(o, 1, None) for o in n.output])
            m = onnx.helper.make_model(sub, opset_imports=self.model.opset_import)
            res = ReferenceEvaluator(m).run(None, {t: v for t, v in zip(n.input, vals) if t})
            for o, v in zip(n.output, res):
                self.consts[o] = np.asarray(v)
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"cannot fold constant node: {exc}", node=name, op=n.op_type) from exc

    def _const(self, t: str, name: str, op: str) -> np.ndarray:
        v = self.consts.get(t, _UNKNOWN)
        if v is _UNKNOWN:
            raise ModelLoadError(f"operand '{t}' must be a constant known at import time", node=name, op=op)
        return np.asarray(v)

    def _is_const(self, t: str) -> bool:
        return t in self.consts and self.consts[t] is not _UNKNOWN

    # -- data nodes ----------------------------------------------------------------------
    def _data_node(self, name: str, n: onnx.NodeProto) -> None:
        key = f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
        handler = HANDLERS.get(key)
        if handler is None:
            self.unsupported.append((name, key))
            for o in n.output:
                self.data.add(o)
            return
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        # a STRING attribute's bytes: text where valid UTF-8 (auto_pad); anything else is refused as a value anyway
        attrs = {k: (v.decode(errors="replace") if isinstance(v, bytes) else v) for k, v in attrs.items()}
        inputs = [self.renamed.get(t, t) for t in n.input]
        try:
            result = handler(self, name, n, inputs, attrs)
        except (KeyError, ModelLoadError):
            if not self.unsupported:  # past an unsupported node shapes are unknown: keep collecting
                raise
            self.data.update(n.output)
            return
        if result is None:  # import-time identity
            self.renamed[n.output[0]] = inputs[0]
            self.data.add(inputs[0])
            return
        op, data_inputs, ir_attrs, params = result
        node = Node(name=self.out.unique_name(name), op=op, inputs=data_inputs, output=n.output[0],
                    attrs=ir_attrs, params={k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()})
        if self.unsupported:  # shapes may be unknown past an unsupported node: keep collecting names
            self.out.nodes[node.name] = node
        else:
            check_attrs(node)  # a value out of range (levels 2.5, a NaN decay) is refused before anything computes
            try:
                shape = infer_shape(node, [self.out.shapes[t] for t in data_inputs])
            except Exception as exc:  # noqa: BLE001
                raise ModelLoadError(f"cannot infer the output shape ({exc})", node=name, op=n.op_type) from exc
            self.out.add(node, shape)
        self.data.add(n.output[0])

    def split(self, name: str, n: onnx.NodeProto, inputs: list[str]) -> tuple[list[str], list[np.ndarray]]:
        """Separate data operands from constant ones."""
        data = [t for t in inputs if t in self.data]
        consts = [self._const(t, name, n.op_type) for t in inputs if t and t not in self.data]
        return data, consts


Handler = Callable[[_Importer, str, onnx.NodeProto, list[str], dict[str, Any]], Any]
HANDLERS: dict[str, Handler] = {}


def handles(*ops: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for op in ops:
            HANDLERS[op] = fn
        return fn
    return deco


def _unsupported_attr(name: str, op: str, what: str, hint: str | None = None) -> ModelLoadError:
    return ModelLoadError(f"unsupported use of {op}: {what}", node=name, op=op, hint=hint)


def _pads(attrs: dict[str, Any], name: str, op: str, hw: tuple[int, ...], kernel: list[int], strides: list[int],
          dilations: list[int] | None = None) -> list[int]:
    """Explicit 2-D pads [top, left, bottom, right]. auto_pad SAME_* is resolved as onnxruntime does: output
    size ceil(size / stride), an odd total pad's extra row at the end (SAME_UPPER) or the begin (SAME_LOWER)."""
    mode = attrs.get("auto_pad", "NOTSET")
    if mode != "NOTSET" and "pads" in attrs:
        raise _unsupported_attr(name, op, f"both auto_pad={mode} and pads are given (onnxruntime refuses it too)",
                                hint="Keep one of them")
    if mode == "NOTSET":
        return [int(v) for v in attrs.get("pads", [0, 0, 0, 0])]
    if mode == "VALID":
        return [0, 0, 0, 0]
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise _unsupported_attr(name, op, f"auto_pad={mode}", hint="Export with explicit pads")
    if any(d != 1 for d in dilations or []):
        raise _unsupported_attr(name, op, f"auto_pad={mode} with dilations {dilations} (onnxruntime refuses it too)",
                                hint="Export with explicit pads")
    begin, end = [], []
    for size, k, s, d in zip(hw, kernel, strides, dilations or [1, 1]):
        total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else big)
        end.append(big if mode == "SAME_UPPER" else small)
    return begin + end


@handles("Conv")
def _conv(im: _Importer, name, n, inputs, attrs):
    w = im._const(inputs[1], name, "Conv")
    if w.ndim != 4:
        raise _unsupported_attr(name, "Conv", f"{w.ndim - 2}-D convolution (only 2-D is supported)")
    if "kernel_shape" in attrs and list(attrs["kernel_shape"]) != list(w.shape[2:]):
        raise _unsupported_attr(name, "Conv", f"kernel_shape {list(attrs['kernel_shape'])} differs from the weight's "
                                              f"{list(w.shape[2:])} (onnxruntime refuses it too)")
    params = {"weight": w}
    if len(inputs) > 2 and inputs[2]:
        params["bias"] = im._const(inputs[2], name, "Conv")
        if params["bias"].shape != (w.shape[0],):  # onnxruntime would read past the buffer
            raise _unsupported_attr(name, "Conv", f"bias of shape {params['bias'].shape} for {w.shape[0]} output "
                                                  f"channels (ONNX requires ({w.shape[0]},))")
    stride, dilation = list(attrs.get("strides", [1, 1])), list(attrs.get("dilations", [1, 1]))
    pads = _pads(attrs, name, "Conv", im.out.shapes[inputs[0]][1:], list(w.shape[2:]), stride, dilation)
    return "Conv", [inputs[0]], {"stride": stride, "pads": pads, "dilation": dilation,
                                 "groups": int(attrs.get("group", 1))}, params


@handles("Gemm")
def _gemm(im: _Importer, name, n, inputs, attrs):
    if attrs.get("transA", 0):
        raise _unsupported_attr(name, "Gemm", "transA=1")
    params = {"B": im._const(inputs[1], name, "Gemm")}
    if len(inputs) > 2 and inputs[2]:
        params["C"] = im._const(inputs[2], name, "Gemm")
    return "Gemm", [inputs[0]], {"alpha": float(attrs.get("alpha", 1.0)), "beta": float(attrs.get("beta", 1.0)),
                                 "transB": int(attrs.get("transB", 0))}, params


@handles("MatMul")
def _matmul(im: _Importer, name, n, inputs, attrs):
    if inputs[1] in im.data or inputs[0] not in im.data:
        raise _unsupported_attr(name, "MatMul", "only data @ constant matrix is supported")
    b = im._const(inputs[1], name, "MatMul")
    if b.ndim != 2:
        raise _unsupported_attr(name, "MatMul", f"constant operand of rank {b.ndim}")
    return "MatMul", [inputs[0]], {}, {"B": b}


@handles("BatchNormalization")
def _bn(im: _Importer, name, n, inputs, attrs):
    if attrs.get("training_mode", 0):
        raise _unsupported_attr(name, "BatchNormalization", "training_mode=1 (export the model in eval mode)")
    p = {k: im._const(t, name, "BatchNormalization") for k, t in zip(("scale", "bias", "mean", "var"), inputs[1:5])}
    channels = im.out.shapes[inputs[0]][0] if im.out.shapes.get(inputs[0]) else None
    wrong = [k for k, v in p.items() if channels is not None and v.shape != (channels,)]
    if wrong:
        raise _unsupported_attr(name, "BatchNormalization", f"parameter(s) {wrong} are not of shape ({channels},), "
                                                            "one value per channel as ONNX requires")
    eps = float(attrs.get("epsilon", 1e-5))
    bad = np.nonzero(~(np.asarray(p["var"], np.float64) + eps > 0))[0]
    if bad.size:  # sqrt(var + eps) would be NaN or a division by zero
        raise _unsupported_attr(name, "BatchNormalization", f"variance + epsilon is not positive in {bad.size} "
                                f"channel(s) (epsilon={eps:g}, first channel {int(bad[0])})",
                                hint="The exported statistics are broken; re-export the model")
    return "BatchNorm", [inputs[0]], {"eps": eps}, p


@handles("Relu")
def _relu(im, name, n, inputs, attrs):
    return "Relu", [inputs[0]], {}, {}


@handles("LeakyRelu")
def _leaky_relu(im, name, n, inputs, attrs):
    return "LeakyRelu", [inputs[0]], {k: float(v) for k, v in attrs.items() if k == "alpha"}, {}


@handles("Floor", "Round")
def _floor(im, name, n, inputs, attrs):
    return n.op_type, [inputs[0]], {}, {}


@handles("Identity")
def _identity(im: _Importer, name, n, inputs, attrs):
    if len(n.output) > 1 and n.output[1]:
        raise _unsupported_attr(name, n.op_type, "the mask output is used")
    return n.op_type, [inputs[0]], {}, {}  # the IR's Identity and Dropout


@handles("Dropout")
def _dropout(im: _Importer, name, n, inputs, attrs):
    node = _identity(im, name, n, inputs, attrs)
    if len(inputs) > 2 and inputs[2]:  # opset >= 12: training_mode input
        training = bool(im._const(inputs[2], name, "Dropout").reshape(-1)[0])
        ratio = float(im._const(inputs[1], name, "Dropout").reshape(-1)[0]) if inputs[1] else 0.5
        if training and ratio != 0.0:
            raise _unsupported_attr(name, "Dropout", "training_mode=True drops random units (export in eval mode: "
                                                     "model.eval() before torch.onnx.export)")
    return node


def _scalar(v: np.ndarray, name: str, op: str) -> float:
    if v.size != 1:
        raise _unsupported_attr(name, op, f"non-scalar bound of shape {v.shape}")
    return float(v.reshape(()))


@handles("Clip")
def _clip(im: _Importer, name, n, inputs, attrs):
    lo, hi = attrs.get("min"), attrs.get("max")  # opset < 11
    if len(inputs) > 1 and inputs[1]:
        lo = _scalar(im._const(inputs[1], name, "Clip"), name, "Clip")
    if len(inputs) > 2 and inputs[2]:
        hi = _scalar(im._const(inputs[2], name, "Clip"), name, "Clip")
    return "Clip", [inputs[0]], {"min": lo, "max": hi}, {}


@handles("Min", "Max")
def _minmax(im: _Importer, name, n, inputs, attrs):
    data, consts = im.split(name, n, inputs)
    if len(data) == 1 and not consts:  # Min/Max of one tensor is that tensor
        return "Identity", data, {}, {}
    if len(data) != 1 or len(consts) != 1:
        raise _unsupported_attr(name, n.op_type, "only a data tensor against one constant is supported")
    bound = _scalar(consts[0], name, n.op_type)
    return "Clip", data, {side: bound if side == CLIP_SIDE[n.op_type] else None for side in ("min", "max")}, {}


@handles("Add", "Sub", "Mul", "Div")
def _arith(im: _Importer, name, n, inputs, attrs):
    data, consts = im.split(name, n, inputs)
    op = n.op_type
    shapes = [im.out.shapes.get(t) for t in data]
    if len(data) == 2 and op in ("Add", "Sub"):  # a two-data Sub is kept for canonicalize's STE rule
        if None not in shapes and tuple(shapes[0]) != tuple(shapes[1]):
            raise _unsupported_attr(name, op, f"broadcasting between two data tensors of shapes {shapes[0]} and "
                                              f"{shapes[1]}", hint="Expand the smaller operand explicitly")
        return op, data, {}, {}
    if len(data) != 1 or len(consts) != 1:
        raise _unsupported_attr(name, op, "two data operands" if len(data) == 2 else "unexpected operands")
    c = consts[0]
    rank = 1 + len(shapes[0]) if shapes[0] is not None else None
    if rank is not None and (c.ndim > rank or (c.ndim == rank and c.shape[0] != 1)):
        # ONNX broadcasting would give the constant's leading axis to the batch: not a per-sample op
        raise _unsupported_attr(name, op, f"constant of shape {c.shape} broadcasts over the batch axis of a "
                                          f"(N, {', '.join(map(str, shapes[0]))}) tensor")
    if op == "Add":
        return "Add", data, {}, {"const": c}
    reverse = int(inputs[0] not in im.data)
    if op == "Sub":
        return "Sub", data, {"reverse": reverse}, {"const": c}
    if op == "Div" and reverse:
        raise _unsupported_attr(name, op, "constant divided by data")
    return op, data, {}, {"const": c}


@handles("AveragePool", "MaxPool")
def _pool(im: _Importer, name, n, inputs, attrs):
    """Windows, sizes and divisors are onnxruntime's (see ops.Pool); what it computes differently from the
    ONNX spec, or refuses, is refused here."""
    op = n.op_type
    if len(n.output) > 1 and n.output[1]:
        raise _unsupported_attr(name, op, "the indices output is used")
    k, hw = list(attrs["kernel_shape"]), im.out.shapes[inputs[0]][1:]
    if len(k) != 2 or len(hw) != 2:
        raise _unsupported_attr(name, op, f"{len(k)}-D pooling (only 2-D is supported)")
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        raise _unsupported_attr(name, op, "dilated pooling", hint="Export the pool without dilations")
    for flag in ("ceil_mode", "count_include_pad"):
        if attrs.get(flag, 0) not in (0, 1):
            raise _unsupported_attr(name, op, f"{flag}={attrs[flag]} (ONNX allows 0 or 1)")
    s, ceil = list(attrs.get("strides", [1, 1])), int(attrs.get("ceil_mode", 0))
    pads = _pads(attrs, name, op, hw, k, s)
    begin_end = ((pads[0], pads[2]), (pads[1], pads[3]))
    if min(s) < 1 or any(max(pe) >= kk for pe, kk in zip(begin_end, k)):
        raise _unsupported_attr(name, op, f"pads {pads} not all smaller than kernel_shape {k}, or strides {s} "
                                "below 1 (onnxruntime refuses such a pool too)", hint="Use pads smaller than the kernel")
    if any(size + sum(pe) < kk for size, pe, kk in zip(hw, begin_end, k)):
        raise _unsupported_attr(name, op, f"kernel_shape {k} is larger than the padded input {list(hw)} + pads {pads}")
    a = {"kernel": k, "stride": s, "pads": pads, "ceil_mode": ceil}
    if op == "MaxPool":
        return "MaxPool", [inputs[0]], a, {}
    cip, opset = int(attrs.get("count_include_pad", 0)), int(im.out.meta["opset"])
    # onnxruntime 1.23 (CPU) runs AveragePool opsets < 19 with a kh*kw divisor for every count_include_pad
    # window, ceil_mode overhang included; from opset 19 it clips windows at the end pads, like the spec
    a["count_overhang"] = int(bool(cip) and opset < 19)
    if cip and opset >= 19 and pads[1] != pads[2]:
        # ... but ends the rows at H + pads[1] (the left pad) where the ONNX spec and PyTorch end them at
        # H + pads[2] (the bottom pad): refuse where that changes a divisor
        H, (kh, sh, t, b) = hw[0], (k[0], s[0], pads[0], pads[2])
        ends = [i * sh - t + kh for i in range(pool_axis(H, kh, sh, t, b, bool(ceil)))]
        if any(min(e, H + b) != min(e, H + pads[1]) for e in ends):
            raise _unsupported_attr(name, op, f"count_include_pad=1 with pads {pads}: onnxruntime 1.23 and the ONNX "
                                    "specification divide the bottom windows by different counts",
                                    hint="Use count_include_pad=0, or make the bottom pad equal to the left pad")
    return "AvgPool", [inputs[0]], {**a, "count_include_pad": cip}, {}


@handles("GlobalAveragePool")
def _gap(im, name, n, inputs, attrs):
    return "GlobalAvgPool", [inputs[0]], {}, {}


@handles("Flatten")
def _flatten(im: _Importer, name, n, inputs, attrs):
    axis = int(attrs.get("axis", 1))
    if axis != 1 and axis + 1 + len(im.out.shapes[inputs[0]]) != 1:  # a negative axis counts from the end
        raise _unsupported_attr(name, "Flatten", f"axis={axis} (only 1 keeps the batch)")
    return "Flatten", [inputs[0]], {}, {}


@handles("Reshape")
def _reshape(im: _Importer, name, n, inputs, attrs):
    in_shape = im.out.shapes.get(inputs[0])
    size = int(np.prod(in_shape)) if in_shape is not None else None
    target = None
    if im._is_const(inputs[1]):
        s = [int(v) for v in im._const(inputs[1], name, "Reshape")]
        if attrs.get("allowzero") and 0 in s:  # a literal 0: an empty tensor
            raise _unsupported_attr(name, "Reshape", f"allowzero=1 with a 0 in the target shape {s}")
        if s and s[0] in (0, -1, BATCH_SENTINEL) and BATCH_SENTINEL not in s[1:] and size is not None:
            rest = [in_shape[i] if (v == 0 and i < len(in_shape)) else v for i, v in enumerate(s[1:])]
            if rest.count(-1) == 1:
                known = int(np.prod([v for v in rest if v != -1]))
                rest = [size // known if v == -1 else v for v in rest] if known and size % known == 0 else rest
            target = rest if int(np.prod(rest)) == size else None
    if target is None:  # shape computed from the (symbolic) batch size: trust shape inference
        dims = im.vinfo.get(n.output[0])
        if dims and all(isinstance(d, int) for d in dims[1:]):
            target = [int(d) for d in dims[1:]]
    if target is not None and size is not None and int(np.prod(target)) != size:
        target = None  # the inferred shape moves elements across the batch dimension
    if target is None:
        raise _unsupported_attr(name, "Reshape", "target shape does not keep the batch dimension or is unknown",
                                hint="Reshape to (N, ...): a first target dimension of 0 or -1 keeps the batch")
    return "Reshape", [inputs[0]], {"shape": target}, {}


@handles("Concat")
def _concat(im: _Importer, name, n, inputs, attrs):
    axis = int(attrs["axis"])
    if axis < 0:
        axis += 1 + len(im.out.shapes[inputs[0]])
    if axis == 0:
        raise _unsupported_attr(name, "Concat", "concatenation along the batch axis")
    if not all(t in im.data for t in inputs):
        raise _unsupported_attr(name, "Concat", "constant operand")
    return "Concat", inputs, {"axis": axis}, {}


def _custom(im: _Importer, name, n, inputs, attrs):
    """A node of neurocompile's own domain (contract.CUSTOM_OPS): its attributes, the IR op's defaults."""
    spec, op = CUSTOM_OPS[n.op_type], OPS[n.op_type]
    missing = [k for k, (_, required) in spec.items() if required and k not in attrs]
    if missing:
        raise _unsupported_attr(name, f"{CUSTOM_DOMAIN}::{n.op_type}", f"required attribute(s) {missing} missing",
                                hint="Export with neurocompile.torch.export_onnx, which writes them")
    unknown = sorted(set(attrs) - set(spec))
    if unknown:
        raise _unsupported_attr(name, f"{CUSTOM_DOMAIN}::{n.op_type}", f"unknown attribute(s) {unknown}")
    return n.op_type, [inputs[0]], {k: _typed(typ, attrs.get(k, op.attrs[k])) for k, (typ, _) in spec.items()}, {}


def _typed(typ: type, v: Any) -> Any:
    """An attribute value in the contract's type where that changes no number (an INT threshold 1 is 1.0, a FLOAT
    levels 4.0 is 4); any other value is kept as written, for the op's attribute rules to refuse (``int`` would
    truncate levels 2.5 to 2, and fail on a string)."""
    if typ is float and isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    if typ is int and isinstance(v, float) and v.is_integer():
        return int(v)
    return v


for _op in CUSTOM_OPS:
    handles(f"{CUSTOM_DOMAIN}::{_op}")(_custom)


SUPPORTED = sorted({k for k in HANDLERS if "::" not in k} | {"Constant", "Shape (folded)"})
CUSTOM = sorted(k.split("::")[1] for k in HANDLERS if "::" in k)


def _opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 0
