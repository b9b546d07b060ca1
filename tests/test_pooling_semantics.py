"""Pooling means what onnxruntime computes: window count with ceil_mode, divisors, asymmetric and large pads.

onnxruntime 1.23 (CPU) rules, found by experiment and encoded in ops.Pool / AvgPool:
- window i of an axis covers [i*s - pad_begin, i*s - pad_begin + k); floor or ceil of (size + pads - k) / s,
  plus 1; with ceil_mode a last window that would start in the end padding is dropped;
- MaxPool ignores padding; AveragePool divides by the input elements a window covers, or with
  count_include_pad=1: for opsets < 19 by kh*kw always (ceil_mode overhang included), from opset 19 by its
  explicit pads too but not the overhang past them, except that onnxruntime ends the rows at H + pads[1]
  instead of H + pads[2]: where that changes a divisor the importer refuses;
- pads must be smaller than the kernel (onnxruntime refuses others), which keeps every window on the input;
- auto_pad SAME_*: output ceil(size / stride), the odd pad at the end (UPPER) or the begin (LOWER).
"""
from __future__ import annotations

import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.errors import NeurocompileError, TargetError
from neurocompile.frontends.onnx.importer import import_model
from tests.onnx_util import ORT_IR_VERSION, make_model

SIZES = [(7, 5), (6, 9)]  # odd and even, H != W (catches swapped axes)
ORT_DISAGREES = "onnxruntime 1.23 and the ONNX specification"


def _pool_model(op: str, hw, opset: int = 19, **attrs) -> onnx.ModelProto:
    return make_model([helper.make_node(op, ["x"], ["y"], **attrs)], in_shape=(None, 2, *hw), opset=opset)


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _check(model: onnx.ModelProto, hw) -> str:
    """'pass', or 'refused: <message>' (a NeurocompileError at import); raises on a wrong number."""
    x = np.random.default_rng(0).standard_normal((3, 2, *hw)).astype(np.float32)
    want = _ort(model, x)
    try:
        g = import_model(model)
    except NeurocompileError as err:
        return f"refused: {err}"
    got = interpreter.run1(g, x, "float64")
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    return "pass"


def _pads_for(k: int) -> list[list[int]]:
    """[top, left, bottom, right]: none, symmetric, asymmetric (begin / end heavy), and over half the kernel."""
    pads = [[0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0], [1, 0, 0, 1], [0, 0, 1, 1]]
    return pads + ([[2, 2, 2, 2], [2, 0, 1, 2], [0, 2, 2, 1]] if k == 3 else [])


GRID = [(k, s, p) for k in (2, 3) for s in (1, 2, 3) for p in _pads_for(k)]


@pytest.mark.parametrize("k,s,pads", GRID, ids=[f"k{k}-s{s}-p{''.join(map(str, p))}" for k, s, p in GRID])
def test_pool_grid_matches_onnxruntime(k, s, pads):
    seen = []
    for hw, ceil, opset in itertools.product(SIZES, (0, 1), (17, 19)):  # onnxruntime runs AveragePool < 19 apart
        a = dict(kernel_shape=[k, k], strides=[s, s], pads=pads, ceil_mode=ceil)
        if opset >= 19:  # MaxPool is the same in every opset
            assert _check(_pool_model("MaxPool", hw, opset, **a), hw) == "pass"
        for cip in (0, 1):
            out = _check(_pool_model("AveragePool", hw, opset, count_include_pad=cip, **a), hw)
            # the one refusal: onnxruntime's bottom-row divisor from opset 19 (count_include_pad, pads[1] != pads[2])
            assert out == "pass" or (cip and opset >= 19 and pads[1] != pads[2] and ORT_DISAGREES in out), out
            seen.append(out == "pass")
    assert any(seen)


@pytest.mark.parametrize("op", ["MaxPool", "AveragePool"])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("k,s", [(2, 2), (3, 2), (3, 1)])
def test_auto_pad_matches_onnxruntime(op, auto_pad, k, s):
    cips = [{"count_include_pad": 0}, {"count_include_pad": 1}] if op == "AveragePool" else [{}]
    for hw, ceil, opset, cip in itertools.product(SIZES, (0, 1), (17, 19), cips):
        a = dict(kernel_shape=[k, k], strides=[s, s], auto_pad=auto_pad, ceil_mode=ceil, **cip)
        out = _check(_pool_model(op, hw, opset, **a), hw)
        assert out == "pass" or (cip.get("count_include_pad") and opset >= 19 and ORT_DISAGREES in out), out


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_auto_pad_matches_onnxruntime(auto_pad):
    """Conv shares the importer's auto_pad resolution (odd pads at the end for SAME_UPPER, the begin for LOWER)."""
    w = np.random.default_rng(3).standard_normal((3, 2, 2, 3)).astype(np.float32)
    for hw, s, d in itertools.product(SIZES, (1, 2), (1, 2)):
        node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=auto_pad, strides=[s, s], dilations=[d, d])
        m = make_model([node], [onnx.numpy_helper.from_array(w, "w")], in_shape=(None, 2, *hw))
        if d == 1:
            assert _check(m, hw) == "pass"
        else:  # onnxruntime refuses SAME with dilations when run
            with pytest.raises(NeurocompileError, match="dilations"):
                import_model(m)


def test_onnxruntime_bottom_divisor_is_refused_not_guessed():
    """count_include_pad with a bottom pad unlike the left pad: onnxruntime and the spec disagree, so refuse."""
    model = _pool_model("AveragePool", (5, 5), kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 0],
                        count_include_pad=1)
    with pytest.raises(NeurocompileError, match=ORT_DISAGREES) as info:
        import_model(model)
    assert info.value.op == "AveragePool" and info.value.hint


def test_declared_ceil_mode_shape_is_accepted():
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1],
                            ceil_mode=1)
    g = helper.make_graph([node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 7, 5])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 4, 3])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=ORT_IR_VERSION)
    assert import_model(model).shapes["y"] == (2, 4, 3)


@pytest.mark.parametrize("attrs,what", [
    (dict(kernel_shape=[2, 2], pads=[2, 0, 0, 0]), "smaller than kernel_shape"),  # onnxruntime refuses too
    (dict(kernel_shape=[2, 2], dilations=[2, 2]), "dilated"),
    (dict(kernel_shape=[8, 2]), "larger than the padded input"),
])
def test_pools_neurocompile_cannot_compute_are_refused(attrs, what):
    with pytest.raises(NeurocompileError, match=what):
        import_model(_pool_model("MaxPool", (5, 5), **attrs))


# -- CQReLU conv nets with such pools: the SNN pools exactly the ANN's windows ----------------------
L = 4
POOLS = {  # name: (op, attrs); each produces windows unlike torch's defaults
    "max_ceil_asym": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[0, 1, 2, 0], ceil_mode=1)),
    "max_big_pads": ("MaxPool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[2, 2, 2, 2])),
    "avg_ceil_cip": ("AveragePool", dict(kernel_shape=[3, 3], strides=[3, 3], pads=[1, 1, 1, 1], ceil_mode=1,
                                         count_include_pad=1)),
    "avg_asym_nocip": ("AveragePool", dict(kernel_shape=[2, 2], strides=[2, 2], pads=[1, 0, 0, 1], ceil_mode=1)),
    "avg_big_pads_cip": ("AveragePool", dict(kernel_shape=[3, 3], strides=[2, 2], pads=[2, 2, 2, 2],
                                             count_include_pad=1)),
}


def _cqrelu(prefix: str, x: str) -> tuple[list[onnx.NodeProto], str]:
    """Clip(0, 1) -> Mul(L) -> Floor -> Div(L): the chain recognize_cqrelu turns into a CQReLU."""
    return [helper.make_node("Clip", [x, "zero", "one"], [f"{prefix}c"]),
            helper.make_node("Mul", [f"{prefix}c", "levels"], [f"{prefix}m"]),
            helper.make_node("Floor", [f"{prefix}m"], [f"{prefix}f"]),
            helper.make_node("Div", [f"{prefix}f", "levels"], [f"{prefix}q"])], f"{prefix}q"


def _net(pool: str, path, hw=(9, 7)) -> str:
    """Conv -> CQReLU -> pool -> Conv -> CQReLU -> Flatten -> Gemm, with random weights."""
    op, attrs = POOLS[pool]
    rng = np.random.default_rng(1)
    c1, c2 = 4, 3
    probe = import_model(_pool_model(op, hw, **attrs))
    ph, pw = probe.shapes[probe.outputs[0]][1:]
    t = onnx.numpy_helper.from_array
    inits = [t(np.float32(0), "zero"), t(np.float32(1), "one"), t(np.float32(L), "levels"),
             t(rng.normal(0, 0.5, (c1, 2, 3, 3)).astype(np.float32), "w1"), t(rng.normal(0.2, 0.1, c1).astype(np.float32), "b1"),
             t(rng.normal(0, 0.4, (c2, c1, 3, 3)).astype(np.float32), "w2"), t(rng.normal(0.1, 0.1, c2).astype(np.float32), "b2"),
             t(rng.normal(0, 0.3, (c2 * ph * pw, 5)).astype(np.float32), "w3")]
    q1, a1 = _cqrelu("a", "h1")
    q2, a2 = _cqrelu("b", "h2")
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["h1"], pads=[1, 1, 1, 1]), *q1,
             helper.make_node(op, [a1], ["p"], **attrs),
             helper.make_node("Conv", ["p", "w2", "b2"], ["h2"], pads=[1, 1, 1, 1]), *q2,
             helper.make_node("Flatten", [a2], ["f"]), helper.make_node("Gemm", ["f", "w3"], ["y"])]
    g = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, *hw])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])], initializer=inits)
    p = str(path / f"{pool}.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=ORT_IR_VERSION), p)
    return p


def _x(n=16, hw=(9, 7)):
    return np.random.default_rng(2).uniform(0, 1.5, (n, 2, *hw)).astype(np.float32)


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_snn_pools_like_the_ann(tmp_path, pool):
    path = _net(pool, tmp_path)
    g = api.load(path)
    x = _x()
    np.testing.assert_allclose(interpreter.run1(g, x, "float32"), _ort(onnx.load(path), x), rtol=1e-4, atol=1e-4)
    snn = api.convert(g)
    assert any(n.op in ("InhibitionMaxPool", "AvgPool") for n in snn.nodes.values())
    res = api.simulate(snn, x, exact=True)
    ann64 = interpreter.run1(snn, x, "float64")
    assert np.isfinite(res.output).all()
    assert np.abs(res.output - ann64).max() <= 1e-9 * np.abs(ann64).max()


@pytest.mark.parametrize("pool", ["max_ceil_asym", "avg_big_pads_cip"])
def test_lava_pools_like_the_reference(tmp_path, pool):
    snn = api.convert(api.load(_net(pool, tmp_path)), target="lava-sim")
    x = _x(2)
    ref = api.simulate(snn, x, exact=True)
    res = api.compile(snn, "lava-sim").run(x)
    assert res.per_step.shape == ref.per_step.shape
    assert np.abs(res.per_step - ref.per_step).max() <= 1e-6 * np.abs(ref.per_step).max()


@pytest.mark.parametrize("pool", ["avg_ceil_cip", "avg_asym_nocip"])
def test_lava_and_fixed_point_refuse_varying_divisors(tmp_path, pool):
    """A divisor that changes from window to window is no fixed-weight Conv: refused, never approximated."""
    from neurocompile.targets.lava.emit import check_lowering

    g = api.load(_net(pool, tmp_path))
    with pytest.raises(TargetError, match="not a fixed-weight Conv") as info:
        check_lowering(api.convert(g, target="lava-sim"))
    assert info.value.op == "AvgPool" and info.value.node
    with pytest.raises(NeurocompileError, match="different counts"):
        api.convert(api.load(_net(pool, tmp_path)), fixed_point=True)
