"""Mutation fuzzing of the neurocompile CLI over valid ONNX models (used by tests/test_fuzz.py and
benchmarks/fuzz_cli.py).

A mutant is a seed model (a CQReLU MLP, a CQReLU conv net with a residual Add, a pooling net with
odd sizes, the bundled digits CNN) changed in one structured way, or its input array changed, plus
the (lossless) CLI flags it runs with. The oracle (:func:`judge`): the CLI either
  (a) exits 0 with finite outputs that agree with onnxruntime (per sample: argmax equal, max |diff|
      <= 1e-4 * max(1, max |logit|)), or, where onnxruntime refuses the model or the input, says in
      the JSON that its ANN reference was not onnxruntime; or
  (b) exits 1 or 2 with one paragraph on stderr and nothing else (no traceback, no "internal
      error", no log lines) and leaves none of its output files (--json, --save-ir) behind.
Anything else is a finding. Disagreeing only in samples that the JSON lists in ``boundary_cases``
(a pre-activation within float32 rounding of a quantization level) is recorded as "boundary".
onnxruntime runs only for exit 0 (in a child process unless the CLI ran it on the same file
itself: it segfaults on some invalid models), and onnx's reference evaluator (float32, float64)
only to explain a disagreement.
"""
from __future__ import annotations

import contextlib
import glob
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import onnx
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "examples", "digits_cqrelu.onnx")
TIMEOUT_S = 60
FINDINGS = ("internal_error", "traceback", "hang", "crash", "bad_refusal", "exit0_nonfinite", "wrong_numbers",
            "accepted_ort_refused", "no_json", "file_left")


# ---- seeds -----------------------------------------------------------------------------------
class _Builder:
    def __init__(self, seed: int):
        self.rng, self.nodes, self.inits = np.random.default_rng(seed), [], []

    def const(self, arr, dtype=np.float32) -> str:
        name = f"c{len(self.inits)}"
        self.inits.append(numpy_helper.from_array(np.asarray(arr, dtype), name))
        return name

    def w(self, *shape, fan_in=None) -> str:
        return self.const(self.rng.normal(0, 1 / np.sqrt(fan_in or shape[-1]), shape))

    def op(self, op: str, inputs: list[str], **attrs) -> str:
        name = f"{op}_{len(self.nodes)}"
        self.nodes.append(helper.make_node(op, inputs, [name + "_out"], name=name, **attrs))
        return name + "_out"

    def cqrelu(self, x: str, style: str, L: int = 4, lam: float = 1.0) -> str:
        """L and λ powers of two: multiplying or dividing by L/λ is exact in float32."""
        if style == "clip":      # Clip(0, λ) -> Mul(L/λ) -> Floor -> Div(L/λ)
            y = self.op("Clip", [x, self.const(0.0), self.const(lam)])
            return self.op("Div", [self.op("Floor", [self.op("Mul", [y, self.const(L / lam)])]), self.const(L / lam)])
        if style == "relu-min":  # Relu -> Min(λ) -> Div(λ/L) -> Floor -> Mul(λ/L)
            y = self.op("Min", [self.op("Relu", [x]), self.const(lam)])
            return self.op("Mul", [self.op("Floor", [self.op("Div", [y, self.const(lam / L)])]), self.const(lam / L)])
        raise ValueError(style)

    def bn(self, x: str, c: int) -> str:
        r = self.rng
        return self.op("BatchNormalization", [x, self.const(r.uniform(0.75, 1.25, c)), self.const(r.normal(0.1, 0.1, c)),
                                              self.const(r.normal(0, 0.1, c)), self.const(r.uniform(0.75, 1.25, c))],
                       epsilon=1e-5)

    def model(self, in_shape, out_dim: int) -> onnx.ModelProto:
        self.nodes[-1].output[0] = "y"  # the last node's output is the graph's
        g = helper.make_graph(self.nodes, "seed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", out_dim])], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="fuzz-seed")
        m.ir_version = 8
        onnx.checker.check_model(m, full_check=True)
        return m


def _mlp() -> onnx.ModelProto:
    """Flatten, Gemm(transB), BatchNormalization, Clip chain, Dropout, Gemm, Relu-Min chain, MatMul + Add."""
    b = _Builder(1)
    h = b.op("Gemm", [b.op("Flatten", ["x"], axis=1), b.w(16, 64), b.const(np.full(16, 0.3))], transB=1)
    h = b.op("Dropout", [b.cqrelu(b.bn(h, 16), "clip")])
    h = b.cqrelu(b.op("Gemm", [h, b.w(16, 12, fan_in=4), b.const(np.full(12, 0.3))]), "relu-min", lam=2.0)
    b.op("Add", [b.op("MatMul", [h, b.w(12, 10)]), b.const(b.rng.normal(0, 0.1, 10))])
    return b.model((1, 8, 8), 10)


def _conv() -> onnx.ModelProto:
    """Conv + BN + chain, MaxPool, Conv + chain, residual Add + chain, AveragePool, Reshape, Gemm."""
    b = _Builder(2)
    p = b.op("MaxPool", [b.cqrelu(b.bn(b.op("Conv", ["x", b.w(4, 2, 3, 3, fan_in=6), b.const(np.full(4, 0.3))],
                                            pads=[1, 1, 1, 1], kernel_shape=[3, 3]), 4), "clip")],
             kernel_shape=[2, 2], strides=[2, 2])
    h = b.cqrelu(b.op("Conv", [p, b.w(4, 4, 3, 3, fan_in=6)], pads=[1, 1, 1, 1]), "clip")
    h = b.cqrelu(b.op("Add", [h, p]), "relu-min", lam=2.0)
    h = b.op("Reshape", [b.op("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2]), b.const([0, -1], np.int64)])
    b.op("Gemm", [h, b.w(10, 16), b.const(np.zeros(10))], transB=1)
    return b.model((2, 8, 8), 10)


def _pool() -> onnx.ModelProto:
    """Odd sizes, so that pads, ceil_mode and count_include_pad matter, and a GlobalAveragePool
    head, so that pooling attributes can change shapes: 7x7 -> Conv(pads 1) -> BN -> chain ->
    MaxPool(k2 s2 ceil_mode) 4x4 -> AveragePool(k3 s2 pads 1, count_include_pad 0) 2x2 -> chain ->
    GlobalAveragePool -> Flatten -> Gemm."""
    b = _Builder(3)
    h = b.cqrelu(b.bn(b.op("Conv", ["x", b.w(8, 3, 3, 3, fan_in=9)], pads=[1, 1, 1, 1], kernel_shape=[3, 3]), 8), "clip")
    h = b.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    h = b.op("AveragePool", [h], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=0)
    h = b.op("GlobalAveragePool", [b.cqrelu(b.op("Mul", [h, b.const(1.37)]), "clip")])  # no exact ties
    b.op("Gemm", [b.op("Flatten", [h], axis=1), b.w(10, 8, fan_in=2), b.const(np.zeros(10))], transB=1)
    return b.model((3, 7, 7), 10)


@lru_cache(maxsize=None)
def _seed_bytes(name: str) -> tuple[bytes, bytes]:
    if name == "digits":
        m = onnx.load(DIGITS)
        x = np.load(os.path.join(ROOT, "examples", "digits_test.npy"))[:3]
    else:
        m = {"mlp": _mlp, "conv": _conv, "pool": _pool}[name]()
        shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]]
        x = np.random.default_rng(0).uniform(0, 1, (3, *shape))
    return m.SerializeToString(), _npy(np.asarray(x, np.float32))


def _npy(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, x, allow_pickle=x.dtype == object)
    return buf.getvalue()


SEEDS = ("mlp", "conv", "pool", "digits")


# ---- mutants ---------------------------------------------------------------------------------
@dataclass
class Mutant:
    seed: str
    desc: str
    model: bytes   # the .onnx file's bytes
    x: bytes       # the --input file's bytes
    args: list[str] = field(default_factory=list)  # extra CLI flags
    save_ir: bool = False

    def __repr__(self) -> str:
        return f"Mutant({self.seed}: {self.desc}; flags {self.args}{' --save-ir' if self.save_ir else ''})"

    def _repr_pretty_(self, p, cycle) -> None:  # hypothesis prints falsifying examples with this, not the bytes
        p.text(repr(self))


class _Case:
    """A seed being mutated: model (proto), or raw bytes once serialized-level changes happen."""

    def __init__(self, seed: str):
        mb, xb = _seed_bytes(seed)
        self.m = onnx.ModelProto.FromString(mb)
        self.x = np.load(io.BytesIO(xb))
        self.raw_model: bytes | None = None
        self.raw_x: bytes | None = None

    @property
    def g(self) -> onnx.GraphProto:
        return self.m.graph


def _tensors(c: _Case) -> list[tuple[str, onnx.TensorProto]]:
    """Initializers and Constant-node values (both are parameters to an importer)."""
    out = [(f"initializer '{t.name}'", t) for t in c.g.initializer]
    out += [(f"Constant '{n.name}'", a.t) for n in c.g.node if n.op_type == "Constant" for a in n.attribute
            if a.name == "value"]
    return out


def _set_tensor(t: onnx.TensorProto, arr: np.ndarray) -> None:
    t.CopyFrom(numpy_helper.from_array(arr, t.name))


def m_bytes(draw, c: _Case) -> str:
    data = bytearray(c.m.SerializeToString())
    how = draw(st.sampled_from(["flip", "truncate", "zero-span", "insert"]))
    if how == "flip":
        pos = draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=4))
        for p in pos:
            data[p] ^= draw(st.integers(1, 255))
        what = f"xor bytes at {pos}"
    elif how == "truncate":
        n = draw(st.integers(0, len(data) - 1))
        data, what = data[:n], f"truncated to {n} of {len(data)} bytes"
    elif how == "zero-span":
        p, n = draw(st.integers(0, len(data) - 1)), draw(st.integers(1, 64))
        data[p:p + n] = bytes(len(data[p:p + n]))
        what = f"{n} bytes zeroed at {p}"
    else:
        p, junk = draw(st.integers(0, len(data))), draw(st.binary(min_size=1, max_size=16))
        data[p:p] = junk
        what = f"{junk.hex()} inserted at {p}"
    c.raw_model = bytes(data)
    return f"bytes: {what}"


def m_input_shape(draw, c: _Case) -> str:
    vi = c.g.input[0]
    dims = vi.type.tensor_type.shape.dim
    how = draw(st.sampled_from(["batch=1", "batch=3", "symbolic", "zero", "negative", "drop-dim", "add-dim",
                                "no-shape", "elem-type", "batch=1+x1"]))
    if len(dims) < 2:
        raise ValueError("no shape left to mutate")  # only after an earlier mutation; skipped
    k = draw(st.integers(1, len(dims) - 1))
    if how.startswith("batch="):
        dims[0].dim_value = int(how[6])
        if how.endswith("+x1"):
            c.x = c.x[:1]
    elif how == "symbolic":
        dims[k].dim_param = "H"
    elif how in ("zero", "negative"):
        dims[k].dim_value = 0 if how == "zero" else -1
    elif how == "drop-dim":
        del dims[k]
    elif how == "add-dim":
        dims.add().dim_value = 1
    elif how == "no-shape":
        vi.type.tensor_type.ClearField("shape")
    else:
        t = draw(st.sampled_from([TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.INT64, TensorProto.UINT8]))
        vi.type.tensor_type.elem_type = t
        how += f"={TensorProto.DataType.Name(t)}"
    return f"input shape: {how} (dim {k}) -> {[d.dim_value or d.dim_param for d in dims]}"


def m_initializer(draw, c: _Case) -> str:
    where, t = draw(st.sampled_from(_tensors(c)))
    a = numpy_helper.to_array(t).copy()
    how = draw(st.sampled_from(["scale", "nan", "inf", "zero-size", "reshape", "drop-last", "dtype", "duplicate",
                                "remove", "scalar"]))
    if how == "scale":
        f = draw(st.sampled_from([0.0, -1.0, 1e-3, 10.0, 1e3, 1e30]))
        _set_tensor(t, (a * f).astype(a.dtype) if a.dtype.kind == "f" else a)
        how += f" x{f:g}"
    elif how in ("nan", "inf"):
        a = a.astype(np.float32) if a.dtype.kind != "f" else a  # an int tensor (Reshape's shape) turns float
        if a.size:
            a.flat[draw(st.integers(0, a.size - 1))] = np.nan if how == "nan" else -np.inf
        _set_tensor(t, a)
    elif how == "zero-size":
        _set_tensor(t, np.zeros((0,), a.dtype))
    elif how == "reshape":
        _set_tensor(t, a.reshape(-1) if a.ndim != 1 else a.reshape(1, -1))
    elif how == "drop-last":
        _set_tensor(t, a.reshape(-1)[:-1] if a.size else a)
    elif how == "dtype":
        dt = draw(st.sampled_from([np.float64, np.float16, np.int32, np.int64, np.float32]))
        _set_tensor(t, a.astype(dt))
        how += f"={np.dtype(dt).name}"
    elif how == "duplicate":
        dup = c.g.initializer.add()
        dup.CopyFrom(numpy_helper.from_array((a * 2 + 1).astype(a.dtype), t.name))
    elif how == "remove":
        if t in c.g.initializer:
            c.g.initializer.remove(t)
        else:
            t.Clear()
    else:
        _set_tensor(t, np.asarray(a.reshape(-1)[0] if a.size else 0, a.dtype))
    return f"initializer: {where} {how}"


_ATTRS = {
    "Conv": {"pads": [[0, 0, 0, 0], [1, 0, 1, 0], [2, 2, 2, 2], [-1, -1, -1, -1], [1, 1]], "strides": [[2, 2], [0, 0], [3, 1], [-1, 1]],
             "kernel_shape": [[2, 2], [3], [5, 5]], "dilations": [[2, 2], [0, 0]], "group": [0, 2, 3, 4],
             "auto_pad": ["SAME_UPPER", "VALID", "BOGUS"]},
    "MaxPool": {"kernel_shape": [[1, 1], [3, 3], [0, 0], [9, 9], [2]], "strides": [[1, 1], [3, 3], [0, 0]],
                "pads": [[1, 1, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [2, 2, 2, 2]], "ceil_mode": [1, 2],
                "dilations": [[2, 2]], "storage_order": [1], "auto_pad": ["SAME_LOWER"]},
    "AveragePool": {"kernel_shape": [[1, 1], [3, 3], [0, 0]], "strides": [[1, 1], [3, 3]],
                    "pads": [[1, 1, 1, 1], [0, 0, 1, 1]], "ceil_mode": [1], "count_include_pad": [1, 5],
                    "auto_pad": ["SAME_UPPER"]},
    "Gemm": {"alpha": [0.0, -1.0, 2.0, 0.5, float("nan")], "beta": [0.0, -1.0, 2.0], "transA": [1], "transB": [0, 1]},
    "BatchNormalization": {"epsilon": [0.0, -1.0, 1e3, 1e-12, float("inf")], "momentum": [0.5], "training_mode": [1]},
    "Flatten": {"axis": [0, 2, 3, -1, -4, 5]},
    "Reshape": {"allowzero": [1]},
    "Clip": {"min": [0.0], "max": [1.0]},
    "Dropout": {"seed": [3]},
}


def m_attribute(draw, c: _Case) -> str:
    known = [n for n in c.g.node if n.op_type in _ATTRS]
    n = draw(st.sampled_from(known if known and draw(st.integers(0, 4)) else list(c.g.node)))
    table = _ATTRS.get(n.op_type, {})
    how = draw(st.sampled_from(["set"] * 4 + ["remove", "unknown", "wrong-type"])) if table else "unknown"
    if how == "set":
        name = draw(st.sampled_from(sorted(table)))
        value = draw(st.sampled_from(table[name]))
        _del_attr(n, name)
        n.attribute.append(helper.make_attribute(name, value))
        return f"attribute: {n.op_type} '{n.name}' {name}={value}"
    if how == "remove" and n.attribute:
        name = draw(st.sampled_from([a.name for a in n.attribute]))
        _del_attr(n, name)
        return f"attribute: {n.op_type} '{n.name}' removed {name}"
    if how in ("unknown", "remove"):
        n.attribute.append(helper.make_attribute("bogus", 1))
        return f"attribute: {n.op_type} '{n.name}' unknown attribute bogus=1"
    name = draw(st.sampled_from(sorted(table)))
    _del_attr(n, name)
    n.attribute.append(helper.make_attribute(name, "x7"))
    return f"attribute: {n.op_type} '{n.name}' {name}='x7' (string)"


def _del_attr(n: onnx.NodeProto, name: str) -> None:
    for a in [a for a in n.attribute if a.name == name]:
        n.attribute.remove(a)


def m_opset(draw, c: _Case) -> str:
    how = draw(st.sampled_from(["version"] * 3 + ["domain", "none", "ir_version"]))
    if how == "version":
        v = draw(st.sampled_from([0, 1, 7, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 99]))
        c.m.opset_import[0].version = v
        return f"opset: version {v}"
    if how == "domain":
        d = draw(st.sampled_from(["ai.onnx", "com.microsoft", "neurocompile"]))
        c.m.opset_import[0].domain = d
        return f"opset: the default opset's domain set to '{d}'"
    if how == "none":
        del c.m.opset_import[:]
        return "opset: no opset_import"
    v = draw(st.sampled_from([1, 3, 7, 99]))
    c.m.ir_version = v
    return f"opset: ir_version {v}"


def m_node_domain(draw, c: _Case) -> str:
    n = draw(st.sampled_from(list(c.g.node)))
    n.domain = draw(st.sampled_from(["ai.onnx", "com.microsoft", "neurocompile", "foo.bar"]))
    if n.domain not in ("", "ai.onnx") and not any(o.domain == n.domain for o in c.m.opset_import):
        c.m.opset_import.append(helper.make_opsetid(n.domain, 1))
    return f"domain: {n.op_type} '{n.name}' in domain '{n.domain}'"


def m_cycle(draw, c: _Case) -> str:
    nodes = list(c.g.node)
    if draw(st.integers(0, 3)) == 0:  # no cycle, but nodes out of topological order
        order = draw(st.permutations(range(len(nodes))))
        del c.g.node[:]
        c.g.node.extend(nodes[i] for i in order)
        return "cycle: none, nodes shuffled out of topological order"
    i = draw(st.integers(0, len(nodes) - 1))
    j = draw(st.integers(i, len(nodes) - 1))
    k = draw(st.integers(0, len(nodes[i].input) - 1)) if nodes[i].input else None
    if k is None:
        return f"cycle: '{nodes[i].name}' has no inputs"
    nodes[i].input[k] = nodes[j].output[0]
    return f"cycle: input {k} of {nodes[i].op_type} '{nodes[i].name}' <- output of {nodes[j].op_type} '{nodes[j].name}'"


def m_duplicate(draw, c: _Case) -> str:
    nodes = list(c.g.node)
    i, j = draw(st.lists(st.integers(0, len(nodes) - 1), min_size=2, max_size=2, unique=True))
    how = draw(st.sampled_from(["node-name", "output", "init-shadows-tensor", "init-named-input"]))
    if how == "node-name":
        nodes[j].name = nodes[i].name
    elif how == "output":  # two producers of one tensor (consumers of j's old output now dangle)
        nodes[j].output[0] = nodes[i].output[0]
    elif how == "init-shadows-tensor":
        t = c.g.initializer.add()
        t.CopyFrom(numpy_helper.from_array(np.ones(1, np.float32), nodes[i].output[0]))
    else:
        t = c.g.initializer.add()
        t.CopyFrom(numpy_helper.from_array(np.zeros(c.x.shape[1:], np.float32)[None], c.g.input[0].name))
    return f"duplicate: {how} ({nodes[i].op_type} '{nodes[i].name}', {nodes[j].op_type} '{nodes[j].name}')"


def m_outputs(draw, c: _Case) -> str:
    g, y = c.g, c.g.output[0]
    how = draw(st.sampled_from(["duplicate", "identity-alias", "identity-only", "intermediate-first",
                                "intermediate-second", "none", "unknown-name"]))
    mid = draw(st.sampled_from([n.output[0] for n in g.node][:-1]))
    if how == "duplicate":
        g.output.add().CopyFrom(y)
    elif how.startswith("identity"):
        g.node.append(helper.make_node("Identity", [y.name], ["y_alias"], name="alias"))
        alias = helper.make_tensor_value_info("y_alias", TensorProto.FLOAT, None)
        if how == "identity-only":
            del g.output[:]
        g.output.append(alias)
    elif how.startswith("intermediate"):
        vi = helper.make_tensor_value_info(mid, TensorProto.FLOAT, None)
        outs = [vi, *g.output] if how.endswith("first") else [*g.output, vi]
        del g.output[:]
        g.output.extend(outs)
        how += f" '{mid}'"
    elif how == "none":
        del g.output[:]
    else:
        g.output[0].name = "nothing_writes_this"
    return f"outputs: {how}"


def m_remove_node(draw, c: _Case) -> str:
    nodes = list(c.g.node)
    i = draw(st.integers(0, len(nodes) - 1))
    n = nodes[i]
    bypass = draw(st.booleans()) and n.input and n.output[0] != c.g.output[0].name
    c.g.node.remove(n)
    if bypass:  # consumers read the node's first input instead: still a valid model
        for m in c.g.node:
            m.input[:] = [n.input[0] if t == n.output[0] else t for t in m.input]
    return f"remove: {n.op_type} '{n.name}'{' (consumers bypassed to its input)' if bypass else ' (dangling)'}"


def m_operands(draw, c: _Case) -> str:
    cands = [n for n in c.g.node if len(n.input) >= 2]
    n = draw(st.sampled_from(cands))
    if draw(st.booleans()):
        n.input[0], n.input[1] = n.input[1], n.input[0]
        return f"operands: swapped inputs 0 and 1 of {n.op_type} '{n.name}'"
    k = draw(st.integers(0, len(n.input) - 1))
    src = draw(st.integers(0, len(n.input) - 1))
    n.input[k] = n.input[src] if src != k else "x"
    return f"operands: input {k} of {n.op_type} '{n.name}' <- '{n.input[k]}' (data-data)"


_SWAPS = {"Floor": ["Round", "Ceil"], "Add": ["Sub", "Mul"], "Sub": ["Add"], "Mul": ["Div", "Add"], "Div": ["Mul"],
          "Relu": ["Sigmoid", "LeakyRelu", "Identity", "Abs"], "MaxPool": ["AveragePool"], "AveragePool": ["MaxPool"],
          "Min": ["Max"], "Max": ["Min"], "Flatten": ["Identity"], "Gemm": ["MatMul"], "MatMul": ["Gemm"],
          "Clip": ["Relu"], "Dropout": ["Identity"]}


def m_op_swap(draw, c: _Case) -> str:
    pools = [m for m in c.g.node if m.op_type in ("MaxPool", "AveragePool")]
    how = draw(st.sampled_from(["swap"] * 3 + ["dropout-train", "dropout-mask"] + ["global-pool"] * bool(pools)))
    if how == "swap":
        n = draw(st.sampled_from([n for n in c.g.node if n.op_type in _SWAPS]))
        old, n.op_type = n.op_type, draw(st.sampled_from(_SWAPS[n.op_type]))
        if n.op_type in ("Relu", "Identity", "Sigmoid", "Abs", "Round", "Ceil", "LeakyRelu") or old == "Clip":
            del n.input[1:]
        if n.op_type != old and old not in ("MaxPool", "AveragePool"):
            del n.attribute[:]
        return f"op swap: {old} -> {n.op_type} '{n.name}'"
    n = draw(st.sampled_from([n for n in c.g.node if n.op_type not in ("Constant",)][:-1]))
    if how == "global-pool":
        n = draw(st.sampled_from(pools))
        old, n.op_type = n.op_type, "Global" + n.op_type
        del n.attribute[:]
        return f"op swap: {old} -> {n.op_type} '{n.name}'"
    ratio = draw(st.sampled_from([0.0, 0.5]))
    inputs = [n.output[0], _add_const(c, np.float32(ratio)), _add_const(c, np.bool_(how == "dropout-train"))]
    outputs = ["dropped"] + (["mask"] if how == "dropout-mask" else [])
    c.g.node.insert(list(c.g.node).index(n) + 1, helper.make_node("Dropout", inputs, outputs, name="fuzz_dropout"))
    for m in c.g.node:
        if m.name != "fuzz_dropout":
            m.input[:] = ["dropped" if t == n.output[0] else t for t in m.input]
    if how == "dropout-mask":
        c.g.output.append(helper.make_tensor_value_info("mask", TensorProto.BOOL, None))
    return f"op swap: Dropout(ratio={ratio}, training_mode={how == 'dropout-train'}) inserted after '{n.name}'" + \
        (" with its mask output used" if how == "dropout-mask" else "")


def _add_const(c: _Case, v) -> str:
    name = f"fuzz_c{len(c.g.initializer)}"
    c.g.initializer.append(numpy_helper.from_array(np.asarray(v), name))
    return name


def m_input_array(draw, c: _Case) -> str:
    x = c.x.copy()
    how = draw(st.sampled_from(["nan", "inf", "empty", "dtype", "single-sample", "wrong-trailing", "extra-dim",
                                "scalar", "huge", "negative", "corrupt-npy", "object", "big-endian", "fortran"]))
    if how in ("nan", "inf"):
        x.flat[draw(st.integers(0, x.size - 1))] = np.nan if how == "nan" else np.inf
    elif how == "empty":
        x = x[:0]
    elif how == "dtype":
        dt = draw(st.sampled_from(["float64", "float16", "int32", "uint8", "bool", "complex64", "<U8", "int64"]))
        x = (x * (255 if dt in ("uint8", "int32", "int64") else 1)).astype(dt)
        how += f"={dt}"
    elif how == "single-sample":
        x = x[0]
    elif how == "wrong-trailing":
        x = x[..., :-1]
    elif how == "extra-dim":
        x = x[:, None]
    elif how == "scalar":
        x = np.float32(0.5).reshape(())
    elif how == "huge":
        x = x * np.float32(draw(st.sampled_from([1e6, 1e30, 3e38])))
    elif how == "negative":
        x = -x
    elif how == "corrupt-npy":
        c.raw_x = _npy(x)[: draw(st.integers(0, 200))]
    elif how == "object":
        x = np.array([x[0], None], dtype=object)
    elif how == "big-endian":
        x = x.astype(">f4")
    else:
        x = np.asfortranarray(x.swapaxes(0, -1)).swapaxes(0, -1)
    c.x = x
    return f"input array: {how} -> shape {getattr(x, 'shape', None)} {getattr(x, 'dtype', '')}"


def _scalar_source(c: _Case, name: str) -> onnx.TensorProto | None:
    for t in c.g.initializer:
        if t.name == name:
            return t
    for n in c.g.node:
        if n.op_type == "Constant" and n.output[0] == name and n.attribute and n.attribute[0].name == "value":
            return n.attribute[0].t
    return None


def m_requantize(draw, c: _Case) -> str:
    """Change L (or λ) of every CQReLU chain consistently (still a valid CQReLU network, now with
    L/λ that may not be powers of two), or of one chain only."""
    r = draw(st.sampled_from([0.5, 0.75, 1.5, 2.0, 3.0]))
    what = draw(st.sampled_from(["levels", "clip", "levels-one-layer"]))
    floors = [n for n in c.g.node if n.op_type == "Floor"]
    prod = {n.output[0]: n for n in c.g.node}
    cons = {t: n for n in c.g.node for t in n.input}
    for f in floors[:1] if what.endswith("one-layer") else floors:
        pre, post = prod.get(f.input[0]), cons.get(f.output[0])
        for node, up in ((pre, True), (post, False)):  # L' = r L: the scale before Floor grows by r
            if node is None or node.op_type not in ("Mul", "Div"):
                continue
            t = _scalar_source(c, node.input[1])
            grow = (node.op_type == "Mul") == up
            if what == "clip":  # λ' = r λ with L kept: the L/λ scale shrinks by r, the bound grows
                grow = not grow
            if t is not None:
                _set_tensor(t, (numpy_helper.to_array(t) * (r if grow else 1 / r)).astype(np.float32))
        if what == "clip":  # the bound: Clip's max or Min's constant, before the scale
            bound = prod.get(pre.input[0]) if pre is not None else None
            if bound is not None and bound.op_type in ("Clip", "Min") and len(bound.input) >= 2:
                t = _scalar_source(c, bound.input[-1])
                if t is not None:
                    _set_tensor(t, (numpy_helper.to_array(t) * r).astype(np.float32))
    return f"requantize: {what} x{r} ({len(floors)} chain(s))"


def m_none(draw, c: _Case) -> str:
    return "none (seed unchanged)"


MUTATIONS = {"bytes": m_bytes, "input_shape": m_input_shape, "initializer": m_initializer, "attribute": m_attribute,
             "opset": m_opset, "node_domain": m_node_domain, "cycle": m_cycle, "duplicate": m_duplicate,
             "outputs": m_outputs, "remove_node": m_remove_node, "operands": m_operands, "op_swap": m_op_swap,
             "input_array": m_input_array, "requantize": m_requantize, "none": m_none}
WEIGHTS = {"initializer": 3, "input_array": 3, "attribute": 3, "op_swap": 2, "operands": 2, "remove_node": 2,
           "input_shape": 2, "outputs": 2, "duplicate": 2, "opset": 2, "requantize": 2}  # others 1
LOSSLESS_FLAGS = [[], [], [], ["--gamma", "2"], ["--delay", "1"], ["--early-stop"], ["--no-balance", "--delay", "1"],
                  ["--steps", "48"]]


@st.composite
def mutants(draw, kinds=tuple(MUTATIONS)) -> Mutant:
    seed = draw(st.sampled_from(SEEDS))
    c = _Case(seed)
    kind = draw(st.sampled_from([k for k in kinds for _ in range(WEIGHTS.get(k, 1))]))
    desc = MUTATIONS[kind](draw, c)
    if kind != "bytes" and draw(st.integers(0, 9)) == 0:  # a second, independent mutation now and then
        second = draw(st.sampled_from(kinds))
        try:
            desc += " + " + MUTATIONS[second](draw, c)
        except (IndexError, ValueError):  # the first one left nothing for it to change (no outputs, say)
            pass
    model = c.raw_model if c.raw_model is not None else c.m.SerializeToString()
    return Mutant(seed, desc, model, c.raw_x if c.raw_x is not None else _npy(c.x),
                  draw(st.sampled_from(LOSSLESS_FLAGS)), draw(st.booleans()))


def _fixed(seed: str, desc: str, change, args=(), save_ir: bool = False) -> Mutant:
    c = _Case(seed)
    change(c)
    return Mutant(seed, desc, c.m.SerializeToString(), _npy(c.x), list(args), save_ir)


def _set_attr(name: str, **values):
    def change(c: _Case) -> None:
        n = next(n for n in c.g.node if n.name == name)
        for k, v in values.items():
            _del_attr(n, k)
            n.attribute.append(helper.make_attribute(k, v))
    return change


def _map_init(name: str, fn):
    def change(c: _Case) -> None:
        t = next(t for t in c.g.initializer if t.name == name)
        _set_tensor(t, np.asarray(fn(numpy_helper.to_array(t))))
    return change


def _map_x(fn):
    def change(c: _Case) -> None:
        c.x = fn(c.x)
    return change


def known_findings() -> list[tuple[Mutant, str]]:
    """(mutant, how to run it) behind the findings of earlier fuzz runs, replayed every time."""
    return [
        (_fixed("mlp", "BatchNormalization variance x-1", _map_init("c5", lambda a: -a)), "in-process"),
        (_fixed("mlp", "BatchNormalization epsilon=-1", _set_attr("BatchNormalization_2", epsilon=-1.0)), "in-process"),
        (_fixed("mlp", "Gemm alpha=nan", _set_attr("Gemm_8", alpha=float("nan"))), "in-process"),
        (_fixed("conv", "Conv kernel_shape=[2, 2] with 3x3 weights", _set_attr("Conv_0", kernel_shape=[2, 2])),
         "in-process"),
        (_fixed("digits", "Conv bias of shape () instead of (32,)", _map_init("onnx::Conv_65", lambda a: a[0])),
         "in-process"),
        (_fixed("pool", "MaxPool ceil_mode=2", _set_attr("MaxPool_6", ceil_mode=2)), "in-process"),
        (_fixed("conv", "input x 3e38 (float32 ANN overflows)", _map_x(lambda x: x * np.float32(3e38))), "in-process"),
        (_fixed("conv", "Conv with both auto_pad and pads (onnxruntime logs to stderr)",
                _set_attr("Conv_0", auto_pad="SAME_UPPER")), "subprocess"),
        (_fixed("conv", "input array of strings with --save-ir", _map_x(lambda x: x.astype("<U8")), save_ir=True),
         "in-process"),
    ]


# ---- running ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    rc: int | None        # None: did not finish within TIMEOUT_S
    stdout: str
    stderr: str
    doc: dict | None      # the --json file, when written
    left: list[str]       # output files present after the run
    via: str
    seconds: float


class Hang(BaseException):
    """Raised by SIGALRM; a BaseException so that the CLI's own ``except Exception`` cannot eat it."""


def _alarm(signum, frame):
    raise Hang()


def write_case(m: Mutant, d: str) -> tuple[str, str, list[str]]:
    model, x = os.path.join(d, "model.onnx"), os.path.join(d, "x.npy")
    open(model, "wb").write(m.model)
    open(x, "wb").write(m.x)
    argv = [model, "--input", x, "--json", os.path.join(d, "out.json"), "--quiet", "--target", "reference", *m.args]
    if m.save_ir:
        argv += ["--save-ir", os.path.join(d, "ir.json")]
    return model, x, argv


def _collect(d: str, rc, stdout, stderr, via, t0, keep=("model.onnx", "x.npy")) -> Outcome:
    """The run's outcome; ``keep``: the files the harness wrote into ``d`` (anything else was left by the run)."""
    doc, out = None, os.path.join(d, "out.json")
    if os.path.isfile(out):
        try:
            doc = json.load(open(out))
        except ValueError:
            doc = {"_unparseable": open(out).read()[:200]}
    left = sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "*")) + glob.glob(os.path.join(d, ".neurocompile-*"))
                  if os.path.basename(p) not in keep)
    return Outcome(rc, stdout, stderr, doc, left, via, time.perf_counter() - t0)


def run_cli(argv: list[str], d: str, via: str = "in-process", keep=("model.onnx", "x.npy"),
            timeout: int = TIMEOUT_S) -> Outcome:
    """``neurocompile ARGV`` in folder ``d``: ``cli.main`` in this process (SIGALRM after ``timeout``) or, ``via``
    "subprocess", ``python -m neurocompile.cli`` (real exit codes and stderr). ``keep``: see :func:`_collect`."""
    if via != "in-process":
        env = {k: v for k, v in os.environ.items() if k != "NEUROCOMPILE_DEBUG"}
        t0 = time.perf_counter()
        try:
            r = subprocess.run([sys.executable, "-m", "neurocompile.cli", *argv], capture_output=True, text=True,
                               timeout=timeout, env=env, cwd=d)
            return _collect(d, r.returncode, r.stdout, r.stderr, "subprocess", t0, keep)
        except subprocess.TimeoutExpired as e:
            return _collect(d, None, str(e.stdout or ""), str(e.stderr or ""), "subprocess", t0, keep)
    from neurocompile import cli

    out, err, rc = io.StringIO(), io.StringIO(), None
    t0 = time.perf_counter()
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warnings go to the terminal once per process: not the error message
            try:
                rc = cli.main(argv)
            except SystemExit as e:  # argparse
                rc = e.code if isinstance(e.code, int) else 1
    except Hang:
        rc = None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    return _collect(d, rc, out.getvalue(), err.getvalue(), "in-process", t0, keep)


def run_inprocess(m: Mutant, d: str, timeout: int = TIMEOUT_S) -> Outcome:
    return run_cli(write_case(m, d)[2], d, "in-process", timeout=timeout)


def run_subprocess(m: Mutant, d: str, timeout: int = TIMEOUT_S) -> Outcome:
    return run_cli(write_case(m, d)[2], d, "subprocess", timeout=timeout)


# ---- the oracle ------------------------------------------------------------------------------
@dataclass
class Reference:
    y: np.ndarray | None   # onnxruntime's first output on the CLI's input; None if it refuses
    why: str = ""          # why onnxruntime refused


def _as_cli_input(xpath: str, rank: int) -> np.ndarray:
    """The array as the CLI feeds it: float32, a single sample given a batch axis."""
    x = np.load(xpath, allow_pickle=False)
    if x.dtype.kind not in "biuf":
        raise ValueError(f"input dtype {x.dtype} is not a real number type")
    x = x.astype(np.float32)
    return x[None] if rank and x.ndim == rank - 1 else x


def _ort_run(model: str, xpath: str) -> np.ndarray:
    import onnxruntime as ort

    ort.set_default_logger_severity(4)
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    x = _as_cli_input(xpath, len(inp.shape or []))
    if inp.shape and inp.shape[0] == 1 and len(x) > 1:  # a fixed batch of 1: one sample at a time
        return np.concatenate([np.asarray(sess.run(None, {inp.name: x[i:i + 1]})[0]) for i in range(len(x))])
    return np.asarray(sess.run(None, {inp.name: x})[0])


def ort_reference(model: str, xpath: str, isolated: bool) -> Reference:
    """onnxruntime on the mutant. ``isolated``: in a child process, for a model the CLI did not
    hand to onnxruntime itself (onnxruntime segfaults on some invalid models, e.g. negative pads)."""
    if not isolated:
        try:
            return Reference(_ort_run(model, xpath))
        except Exception as exc:  # noqa: BLE001 - any refusal by onnxruntime
            return Reference(None, f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}")
    code = ("import sys, numpy as np; sys.path.insert(0, sys.argv[1]); from tests.fuzz_mutants import _ort_run\n"
            "try: np.save(sys.argv[4], _ort_run(sys.argv[2], sys.argv[3]))\n"
            "except Exception as e: print(type(e).__name__ + ': ' + ' '.join(str(e).split())[:160]); sys.exit(1)")
    out = model + ".ort.npy"
    try:
        r = subprocess.run([sys.executable, "-c", code, ROOT, model, xpath, out], capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return Reference(None, "onnxruntime hangs")
    if r.returncode == 0:
        y = np.load(out)
        os.unlink(out)
        return Reference(y)
    return Reference(None, r.stdout.strip() or f"onnxruntime dies (exit {r.returncode})")


def evaluator_reference(model: str, xpath: str, dtype=np.float64) -> np.ndarray | None:
    """The model run by onnx's reference evaluator, in float64 (every float tensor cast) or as is.
    SNN == float64 but != float32 marks a float32 rounding flip at a quantization level; SNN ==
    both while onnxruntime differs marks a model whose meaning onnxruntime does not share."""
    from onnx.reference import ReferenceEvaluator

    m = onnx.load(model)
    if dtype == np.float64:
        for t in m.graph.initializer:
            if t.data_type == TensorProto.FLOAT:
                t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64), t.name))
        for n in m.graph.node:
            for a in n.attribute:
                if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                    a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
                if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                    a.i = TensorProto.DOUBLE
        for vi in [*m.graph.input, *m.graph.output, *m.graph.value_info]:
            if vi.type.tensor_type.elem_type == TensorProto.FLOAT:
                vi.type.tensor_type.elem_type = TensorProto.DOUBLE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = _as_cli_input(xpath, len(m.graph.input[0].type.tensor_type.shape.dim)).astype(dtype)
            return np.asarray(ReferenceEvaluator(m).run(None, {m.graph.input[0].name: x})[0], np.float64)
    except Exception:  # noqa: BLE001
        return None


def clean_refusal(stderr: str, rc: int) -> bool:
    """One paragraph and nothing else: exit 1 prints the one-line error; exit 2 (argparse) may put
    its usage lines before the error line. Log lines (onnxruntime's) or warnings make it two."""
    lines = [line.rstrip() for line in re.sub(r"\x1b\[[0-9;]*m", "", stderr).strip().splitlines()]
    if not lines or "" in lines or "error:" not in lines[-1]:
        return False
    return len(lines) == 1 and lines[0].startswith("neurocompile: error:") if rc == 1 else \
        lines[0].startswith(("usage:", "neurocompile"))


def _agree(y: np.ndarray, r: np.ndarray | None, scale: float | None = None) -> np.ndarray:
    """Per sample: argmax equal and max |diff| <= 1e-4 * max(1, max |logit|) (all False where the
    shapes differ or r is missing or not finite)."""
    if r is None or y.shape != r.shape or not np.all(np.isfinite(r)):
        return np.zeros(len(y), bool)
    y2, r2 = y.reshape(len(y), -1), r.reshape(len(r), -1)
    tol = 1e-4 * max(1.0, scale if scale is not None else float(np.max(np.abs(r), initial=0)))
    return (y2.argmax(1) == r2.argmax(1)) & (np.max(np.abs(y2 - r2), axis=1, initial=0) <= tol) if y2.size else \
        np.ones(len(y), bool)


def _source(doc: dict) -> str | None:
    """Which ANN the CLI compared with: "ann_reference" (a name) or "reference" (a name or {name: ...})."""
    s = doc.get("ann_reference", doc.get("reference"))
    return s.get("name") if isinstance(s, dict) else s


def _is_ort(source: str | None) -> bool:
    return str(source).startswith("onnxruntime")  # "onnxruntime", "onnxruntime (sample by sample)"


def _boundary_samples(doc: dict) -> list[int]:
    b = doc.get("boundary_cases")
    if isinstance(b, dict):
        return [int(i) for i in b.get("samples", [])]
    return list(range(len(doc["outputs"]))) if b else []


def judge(m: Mutant, out: Outcome, ref: Reference | None, evaluated: tuple | None = None) -> tuple[str, str]:
    """(category, detail). Categories in FINDINGS are defects; the others are acceptable outcomes:
    match, no_ort (accepted; the JSON names another reference, onnxruntime refuses), boundary
    (disagrees only in samples the JSON lists in boundary_cases, or, where the JSON has no such
    key, only in float32: the float64 model agrees), refused_1, refused_2. ``ref`` (onnxruntime)
    is only needed for exit 0; ``evaluated`` = onnx reference evaluator outputs (float32, float64)."""
    first = out.stderr.strip().splitlines()[0][:240] if out.stderr.strip() else ""
    if out.rc is None:
        return "hang", f"no result within {TIMEOUT_S} s"
    if "Traceback" in out.stderr:
        return "traceback", first
    if out.rc == 3 or "internal error" in out.stderr:
        return "internal_error", first
    if out.rc in (1, 2):
        if not clean_refusal(out.stderr, out.rc):
            return "bad_refusal", f"stderr is not one paragraph: {out.stderr.strip()[:300]!r}"
        if out.left:
            return "file_left", f"exit {out.rc} left {out.left}: {first}"
        return f"refused_{out.rc}", first
    if out.rc != 0:
        return "crash", f"exit {out.rc}: {first}"
    if out.doc is None or "outputs" not in out.doc:
        return "no_json", f"exit 0 but the --json file is {'missing' if out.doc is None else 'unreadable'}"
    if [f for f in out.left if f.startswith(".neurocompile-")]:
        return "file_left", f"exit 0 left temporary files {out.left}"
    y, source = np.asarray(out.doc["outputs"], np.float64), _source(out.doc)
    if not np.all(np.isfinite(y)):
        return "exit0_nonfinite", f"outputs hold NaN/inf (reference {source!r}, onnxruntime: {ref.why or 'ran'})"
    if ref.y is None:
        if not _is_ort(source):
            return "no_ort", f"reference {source!r}; onnxruntime: {ref.why}"
        return "accepted_ort_refused", f"exit 0, the JSON says onnxruntime, which refuses: {ref.why}"
    r = np.asarray(ref.y, np.float64)
    if y.shape != r.shape:
        return "wrong_numbers", f"outputs have shape {y.shape}, onnxruntime's {r.shape}"
    if not np.all(np.isfinite(r)):
        return "wrong_numbers", f"exit 0 with finite outputs where onnxruntime gives NaN/inf (reference {source!r}, " \
                                f"max_abs_error {out.doc.get('max_abs_error')!r})"
    ok = _agree(y, r)
    if ok.all():
        return "match", f"max |diff| {np.max(np.abs(y - r), initial=0):.2g}"
    bad = [int(i) for i in np.flatnonzero(~ok)]
    diff, scale = float(np.max(np.abs(y - r))), float(np.max(np.abs(r)))
    detail = f"samples {bad} differ: max |diff| {diff:.3g} (max |logit| {scale:.3g}), reference {source!r}"
    r32, r64 = evaluated if evaluated is not None else (None, None)
    flagged = _boundary_samples(out.doc)
    if set(bad) <= set(flagged):  # the SNN should then equal the exact ANN: float64 (or a float32 run)
        refs = [q for q in (r64, r32) if q is not None]
        verified = all(any(_agree(y[[i]], q[[i]], scale)[0] for q in refs) for i in bad)
        return "boundary", f"{detail}; all listed in the JSON's boundary_cases" + \
            ("" if verified else " (but matching neither onnx's float64 nor float32 evaluation)")
    if _agree(y, r64).all():
        if _agree(y, r32).all():
            return "wrong_numbers", f"{detail}; onnx's reference evaluator agrees with the SNN in float32 and " \
                                    "float64: onnxruntime gives this model another meaning (invalid model?)"
        if "boundary_cases" not in out.doc:
            return "boundary", f"{detail}; the float64 model agrees with the SNN (float32 rounding at a level)"
        return "wrong_numbers", f"{detail}; the float64 model agrees with the SNN: float32 boundary cases the " \
                                f"JSON does not list (boundary_cases {out.doc['boundary_cases']})"
    return "wrong_numbers", detail


def check(m: Mutant, d: str, via: str = "in-process") -> tuple[str, str, Outcome]:
    """Run one mutant in directory d (empty) and judge it."""
    out = (run_inprocess if via == "in-process" else run_subprocess)(m, d)
    model, xpath = os.path.join(d, "model.onnx"), os.path.join(d, "x.npy")
    ref = None
    if out.rc == 0 and out.doc and "outputs" in out.doc:
        ref = ort_reference(model, xpath, isolated=not _is_ort(_source(out.doc)))
    kind, detail = judge(m, out, ref)
    if kind in ("wrong_numbers", "boundary") and ref.y is not None and np.all(np.isfinite(ref.y)):
        evaluated = evaluator_reference(model, xpath, np.float32), evaluator_reference(model, xpath)
        kind, detail = judge(m, out, ref, evaluated)
    return kind, detail, out


def first_line(out: Outcome) -> str:
    return out.stderr.strip().splitlines()[0][:200] if out.stderr.strip() else ""


__all__ = ["Mutant", "mutants", "MUTATIONS", "SEEDS", "FINDINGS", "check", "judge", "first_line"]
