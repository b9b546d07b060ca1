import numpy as np
import pytest

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.errors import ValidationError
from neurocompile.ir import Graph, Node


def tiny() -> Graph:
    g = Graph("tiny", outputs=["y"])
    g.add(Node("x", "Input", [], "x", {"shape": [4]}), (4,))
    g.add(Node("fc", "Dense", ["x"], "h", params={"weight": np.eye(3, 4, dtype=np.float32),
                                                  "bias": np.ones(3, np.float32)}), (3,))
    g.add(Node("act", "Relu", ["h"], "y"), (3,))
    return g


def test_valid_graph_passes_and_computes():
    g = tiny()
    g.validate()
    y = interpreter.run1(g, np.array([[1.0, -5.0, 2.0, 7.0]], np.float32))
    np.testing.assert_array_equal(y, [[2.0, 0.0, 3.0]])


@pytest.mark.parametrize("breakage, message", [
    (lambda g: g.nodes["act"].inputs.__setitem__(0, "nope"), "produced by no node"),
    (lambda g: g.shapes.__setitem__("h", (5,)), "stored shape"),
    (lambda g: g.nodes["fc"].inputs.__setitem__(0, "y"), "cycle"),
    (lambda g: setattr(g.nodes["act"], "op", "Softmax"), "unknown op"),
    (lambda g: g.nodes["fc"].params.pop("weight"), "missing parameters"),
    (lambda g: setattr(g, "outputs", ["zz"]), "graph output"),
])
def test_validator_catches(breakage, message):
    g = tiny()
    breakage(g)
    with pytest.raises(ValidationError, match=message):
        g.validate()


def test_save_load_roundtrip(tmp_path, onnx_model):
    path, shape = onnx_model("resnet", "cqrelu", "bn", 4)
    snn = api.convert(api.load(path))
    snn.save(str(tmp_path / "ir.json"))
    back = api.load(str(tmp_path / "ir.json"))
    back.validate()
    assert back.schedule == snn.schedule
    x = np.random.default_rng(1).uniform(0, 1, (3, *shape)).astype(np.float32)
    np.testing.assert_array_equal(interpreter.run1(back, x), interpreter.run1(snn, x))


def test_summary_lists_layers_shapes_params(onnx_model):
    g = api.optimize(api.load(onnx_model("vgg", "relu", "folded")[0]))
    text = g.summary()
    assert "Conv" in text and "Nx8x16x16" in text and "MaxPool" in text
    assert f"{g.num_params():,} parameters" in text


@pytest.mark.parametrize("node,module", [("/features/features.2/Floor", "features.2"),
                                         ("/layers/layers.1/a1/Floor", "layers.1.a1"), ("/2/Floor", "2"),
                                         ("image", "image"), ("/Conv", "/Conv")])
def test_module_name_from_torch_scopes(node, module):
    from neurocompile.ir import module_name

    assert module_name(node) == module
