"""ONNX import: every test model, both BN export modes, several opsets, matches onnxruntime."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from neurocompile.ir import interpreter
from neurocompile.errors import ModelLoadError, UnsupportedOpError
from neurocompile.frontends.onnx.importer import import_model, load_onnx
from tests.conftest import ort_run, rel_err
from tests.onnx_util import make_model


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
@pytest.mark.parametrize("mode", ["folded", "bn"])
@pytest.mark.parametrize("opset", [11, 17, 20])
def test_import_matches_onnxruntime(onnx_model, arch, mode, opset):
    path, shape = onnx_model(arch, "relu", mode, opset=opset)
    g = load_onnx(path)
    g.validate()
    x = np.random.default_rng(0).normal(size=(16, *shape)).astype(np.float32)
    assert rel_err(interpreter.run1(g, x), ort_run(path, x)) <= 1e-5
    if mode == "bn" and arch != "mlp":
        assert any(n.op == "BatchNorm" for n in g.nodes.values())


def test_cqrelu_chain_models_import(onnx_model):
    path, shape = onnx_model("vgg", "cqrelu", "bn", 4)
    g = load_onnx(path)
    ops = {n.op for n in g.nodes.values()}
    assert {"Floor", "Clip", "Mul", "Div"} <= ops
    x = np.random.default_rng(0).uniform(0, 1, size=(16, *shape)).astype(np.float32)
    assert rel_err(interpreter.run1(g, x, "float64"), ort_run(path, x)) <= 1e-5


def test_shape_subgraph_is_folded(onnx_model):
    path, _ = onnx_model("resnet", "relu", "folded")
    model = onnx.load(path)
    assert any(n.op_type == "Shape" for n in model.graph.node)
    g = load_onnx(path)
    reshape = next(n for n in g.nodes.values() if n.op == "Reshape")
    assert reshape.attrs["shape"] == [16]
    assert not any(n.op in ("Shape", "Gather", "Concat") for n in g.nodes.values())


def _model(nodes, inits=(), in_shape=(None, 4), out="y", opset=17):
    return make_model(nodes, inits, in_shape, out, opset)


def _t(name, arr):
    return onnx.numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name)


def test_matmul_add_min_max_sub_div():
    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    nodes = [helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node("Add", ["a", "b"], ["c"]),
             helper.make_node("Max", ["c", "lo"], ["d"]), helper.make_node("Min", ["d", "hi"], ["e"]),
             helper.make_node("Sub", ["e", "s"], ["f"]), helper.make_node("Div", ["f", "k"], ["y"])]
    m = _model(nodes, [_t("W", w), _t("b", [0.1, -0.2, 0.3]), _t("lo", 0.0), _t("hi", 1.5), _t("s", 0.25),
                       _t("k", 3.0)], (None, 4))
    g = import_model(m)
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    ref = ((np.clip(x @ w + [0.1, -0.2, 0.3], 0, 1.5)) - 0.25) / 3
    np.testing.assert_allclose(interpreter.run1(g, x), ref, rtol=1e-6)


def test_unsupported_ops_are_all_listed():
    nodes = [helper.make_node("Sigmoid", ["x"], ["a"], name="sig1"), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Softmax", ["b"], ["y"], name="soft")]
    with pytest.raises(UnsupportedOpError) as info:
        import_model(_model(nodes))
    err = info.value
    assert err.unsupported == [("sig1", "Sigmoid"), ("soft", "Softmax")]
    text = str(err)
    assert "sig1" in text and "Softmax" in text and "Supported ops" in text and "\n" not in text


def test_empty_graph_is_an_error():
    with pytest.raises(ModelLoadError, match="empty"):
        import_model(_model([]))


def test_corrupt_and_non_onnx_files(tmp_path, onnx_model):
    path, _ = onnx_model("mlp")
    data = open(path, "rb").read()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 3])
    (tmp_path / "text.onnx").write_text("this is not a model\n")
    for bad in ("cut.onnx", "text.onnx"):
        with pytest.raises(ModelLoadError) as info:
            load_onnx(str(tmp_path / bad))
        assert bad in str(info.value)
