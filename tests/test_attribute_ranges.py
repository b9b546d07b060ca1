"""Every op attribute read from a file is range-checked in one place (ops.check_attrs, applied by Graph.validate and
by the ONNX importer before shape inference): a saved IR (or artifact, both read by Graph.from_saved) or an ONNX
file with an attribute out of range is refused with exit 1 and a message naming the file, node, op, attribute, the
value and the valid range, before anything computes with it (issue 26 section 4).

Saved IRs are written with Graph.save, edited as JSON, and run in-process with ``neurocompile run x.json``."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import helper

from neurocompile import api, cli
from neurocompile.ir import interpreter
from neurocompile.errors import ValidationError
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import OPS, Int, Real, check_attrs
from tests.onnx_util import make_model, tensor

F32 = np.float32


# ---- graphs whose every node is valid: each test breaks one attribute -------------------------------------
def ann() -> Graph:
    """conv -> CQReLU -> avg pool -> dense: converts and runs."""
    g = Graph("ann", outputs=["y"])
    g.add(Node("x", "Input", [], "x", {"shape": [1, 6, 6]}), (1, 6, 6))
    w = np.linspace(-0.3, 0.5, 18, dtype=F32).reshape(2, 1, 3, 3)
    g.add(Node("conv", "Conv", ["x"], "c", {"stride": [1, 1], "pads": [1, 1, 1, 1], "dilation": [1, 1], "groups": 1},
               {"weight": w, "bias": np.array([0.1, 0.2], F32)}), (2, 6, 6))
    g.add(Node("act", "CQReLU", ["c"], "a", {"levels": 4, "clip": 1.0, "shift": 0.0}), (2, 6, 6))
    g.add(Node("pool", "AvgPool", ["a"], "p", {"kernel": [2, 2], "stride": [2, 2], "pads": [0, 0, 0, 0], "ceil_mode": 0,
                                              "count_include_pad": 0}), (2, 3, 3))
    g.add(Node("gap", "GlobalAvgPool", ["p"], "q"), (2, 1, 1))
    g.add(Node("flat", "Flatten", ["q"], "f"), (2,))
    g.add(Node("fc", "Dense", ["f"], "y", {"weight_exp": 0}, {"weight": np.array([[1, -1], [0.5, 2]], F32)}), (2,))
    return g


def branches() -> Graph:
    """The other ANN ops: Gemm, BatchNorm, LeakyRelu, Add of two tensors, Concat, Clip, Reshape, Sub."""
    g = Graph("branches", outputs=["y"])
    g.add(Node("x", "Input", [], "x", {"shape": [4]}), (4,))
    g.add(Node("gemm", "Gemm", ["x"], "h", {"alpha": 1.0, "beta": 1.0, "transB": 0},
               {"B": np.ones((4, 3), F32), "C": np.zeros(3, F32)}), (3,))
    bn = {k: np.ones(3, F32) for k in ("scale", "bias", "mean", "var")}
    g.add(Node("bn", "BatchNorm", ["h"], "b", {"eps": 1e-5}, bn), (3,))
    g.add(Node("leaky", "LeakyRelu", ["b"], "l", {"alpha": 0.1}), (3,))
    g.add(Node("add", "Add", ["l", "l"], "s", {"gains": [1, 2]}), (3,))
    g.add(Node("cat", "Concat", ["s", "l"], "k", {"axis": 1}), (6,))
    g.add(Node("clip", "Clip", ["k"], "c", {"min": 0.0, "max": float("inf")}), (6,))
    g.add(Node("sub", "Sub", ["c"], "d", {"reverse": 1}, {"const": np.ones(1, F32)}), (6,))
    g.add(Node("rs", "Reshape", ["d"], "y", {"shape": [2, 3]}), (2, 3))
    return g


def student() -> Graph:
    """LIF -> delay -> CubaLIF -> LI (an IDSNN student / NIR network)."""
    g = Graph("student", outputs=["y"], meta={"time_steps": 4})
    g.add(Node("x", "Input", [], "x", {"shape": [3]}), (3,))
    g.add(Node("fc1", "Dense", ["x"], "h1", params={"weight": np.eye(3, dtype=F32)}), (3,))
    g.add(Node("lif", "LIF", ["h1"], "s1", {"beta": 0.5, "threshold": 1.0}), (3,))
    g.add(Node("delay", "StepDelay", ["s1"], "s2", {"steps": 1}), (3,))
    g.add(Node("fc2", "Dense", ["s2"], "h2", params={"weight": np.eye(3, dtype=F32)}), (3,))
    g.add(Node("cuba", "CubaLIF", ["h2"], "s3", {"alpha": 0.5, "beta": 0.9, "threshold": 1.0}), (3,))
    g.add(Node("fc3", "Dense", ["s3"], "h3", params={"weight": np.eye(3, dtype=F32)}), (3,))
    g.add(Node("li", "LI", ["h3"], "y", {"beta": 0.9, "alpha": 0.5}), (3,))
    return g


def converted() -> Graph:
    """ann() converted: its CQReLU is the CIF neuron 'act' (gamma, rate, threshold, amplitude)."""
    return api.convert(ann())


GRAPHS = {"ann": ann, "branches": branches, "student": student, "converted": converted}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Factory: (graph name, node, attrs to set) -> path of the saved IR with those attributes written as JSON (NaN
    and Infinity as Python's json writes and reads them)."""
    d = tmp_path_factory.mktemp("attrs")
    docs = {}
    count = iter(range(10**6))

    def make(graph: str, node: str, **attrs) -> str:
        if graph not in docs:
            g = GRAPHS[graph]()
            g.validate()  # the unedited graph is valid: the edit is what is refused
            g.save(str(d / f"{graph}.json"))
            docs[graph] = json.loads((d / f"{graph}.json").read_text())
        doc = json.loads(json.dumps(docs[graph]))
        [n] = [n for n in doc["nodes"] if n["name"] == node]
        n["attrs"].update(attrs)
        path = d / f"{graph}-{next(count)}.json"
        path.write_text(json.dumps(doc))
        (d / f"{path.stem}.npz").write_bytes((d / f"{graph}.npz").read_bytes())
        return str(path)

    return make


def refused(capsys, path: str, *words: str, tmp_path=None) -> str:
    """``neurocompile run path`` exits 1 with one paragraph naming the file and containing ``words``; no file is
    written."""
    args = ["run", path, "--quiet"] + (["--json", str(tmp_path / "r.json")] if tmp_path is not None else [])
    rc = cli.main(args)
    err = capsys.readouterr().err
    assert rc == 1, err
    assert "internal error" not in err and len(err.strip().splitlines()) == 1, err
    assert f"file '{path}'" in err, err
    for w in words:
        assert w in err, (w, err)
    if tmp_path is not None:
        assert not (tmp_path / "r.json").exists()
    return err


# ---- saved IR: one case per attribute family ----------------------------------------------------------------
LEVELS = "attribute 'levels' must be an integer >= 1 and <= 4,096 (neurocompile.limits.MAX_LEVELS), got "


@pytest.mark.parametrize("value, got", [(2.5, "2.5"), ("eight", "'eight'"), (0, "0"), (True, "True"), (5000, "5000"),
                                        (None, "None"), ([4], "[4]")])
def test_levels(capsys, saved, tmp_path, value, got):
    """levels 2.5 was truncated to 2, "eight" and 0 were internal errors (exit 3)."""
    refused(capsys, saved("ann", "act", levels=value), LEVELS + got, "node 'act'", "op CQReLU", tmp_path=tmp_path)


@pytest.mark.parametrize("value, got", [(float("nan"), "nan"), (float("inf"), "inf"), (0, "0"), (-1.0, "-1.0"),
                                        ("1", "'1'")])
def test_cqrelu_clip(capsys, saved, value, got):
    """A NaN or infinite λ was accepted (internal error when run), 0 divided by zero."""
    refused(capsys, saved("ann", "act", clip=value), f"attribute 'clip' must be a finite number > 0, got {got}",
            "node 'act'", "op CQReLU")


@pytest.mark.parametrize("value", [1.0, -0.5, float("nan")])
def test_cqrelu_shift(capsys, saved, value):
    refused(capsys, saved("ann", "act", shift=value), "attribute 'shift' must be a finite number >= 0 and < 1")


@pytest.mark.parametrize("node, attrs, words", [
    ("conv", {"stride": [0, 0]}, "attribute 'stride' must be a list of 2 integers >= 1, got [0, 0]"),
    ("conv", {"stride": [1]}, "attribute 'stride' must be a list of 2 integers >= 1, got [1]"),
    ("conv", {"stride": 2}, "attribute 'stride' must be a list of 2 integers >= 1, got 2"),
    ("conv", {"pads": [-1, 0, 0, 0]}, "attribute 'pads' must be a list of 4 integers >= 0, got [-1, 0, 0, 0]"),
    ("conv", {"dilation": [1, 0]}, "attribute 'dilation' must be a list of 2 integers >= 1, got [1, 0]"),
    ("conv", {"groups": 0}, "attribute 'groups' must be an integer >= 1, got 0"),
    ("conv", {"groups": 1.5}, "attribute 'groups' must be an integer >= 1, got 1.5"),
    ("conv", {"weight_exp": 40}, "attribute 'weight_exp' must be an integer >= -8 and <= 7, got 40"),
    ("pool", {"kernel": [0, 2]}, "attribute 'kernel' must be a list of 2 integers >= 1, got [0, 2]"),
    ("pool", {"stride": [2, 2.5]}, "attribute 'stride' must be a list of 2 integers >= 1, got [2, 2.5]"),
    ("pool", {"ceil_mode": 2}, "attribute 'ceil_mode' must be 0 or 1, got 2"),
    ("pool", {"count_include_pad": "yes"}, "attribute 'count_include_pad' must be 0 or 1, got 'yes'"),
    ("pool", {"divisor_override": 0}, "attribute 'divisor_override' must be null or a finite number > 0, got 0"),
    ("gap", {"divisor_override": float("-inf")}, "attribute 'divisor_override' must be null or a finite number > 0"),
    ("x", {"shape": [1, 0, 6]}, "attribute 'shape' must be a list of integers >= 1, got [1, 0, 6]"),
])
def test_geometry(capsys, saved, node, attrs, words):
    """A Conv stride 0 was an internal error (division by zero); kernels, pads, dilations, groups, flags alike."""
    refused(capsys, saved("ann", node, **attrs), words, f"node '{node}'")


def test_a_group_count_that_does_not_divide_the_channels_is_refused(capsys, saved):
    """groups 2 is in range but not for one input channel: the op's own shape rule refuses it (was exit 3)."""
    refused(capsys, saved("ann", "conv", groups=2), "cannot infer the output shape", "node 'conv'", "op Conv")


@pytest.mark.parametrize("node, attrs, words", [
    ("gemm", {"alpha": float("nan")}, "attribute 'alpha' must be a finite number, got nan"),
    ("gemm", {"transB": 2}, "attribute 'transB' must be 0 or 1, got 2"),
    ("bn", {"eps": -1.0}, "attribute 'eps' must be a finite number >= 0, got -1.0"),
    ("leaky", {"alpha": float("inf")}, "attribute 'alpha' must be a finite number, got inf"),
    ("add", {"gains": [1]}, "attribute 'gains' must be null or a list of 2 integers >= 1, one per data input, got [1]"),
    ("add", {"gains": [0, 1]}, "got [0, 1]"),
    ("cat", {"axis": 0}, "attribute 'axis' must be an integer >= 1, got 0"),
    ("clip", {"min": float("nan")}, "attribute 'min' must be null or a number (not NaN), got nan"),
    ("sub", {"reverse": 0.5}, "attribute 'reverse' must be 0 or 1, got 0.5"),
    ("rs", {"shape": [2, "3"]}, "attribute 'shape' must be a list of integers >= -1, got [2, '3']"),
])
def test_other_ann_ops(capsys, saved, node, attrs, words):
    refused(capsys, saved("branches", node, **attrs), words, f"node '{node}'")


@pytest.mark.parametrize("node, attrs, words", [
    ("lif", {"beta": float("nan")}, "attribute 'beta' must be a finite number >= 0 and <= 1, got nan"),
    ("lif", {"beta": 1.5}, "attribute 'beta' must be a finite number >= 0 and <= 1, got 1.5"),
    ("lif", {"threshold": float("nan")}, "attribute 'threshold' must be a finite number, got nan"),
    ("lif", {"threshold": "1"}, "attribute 'threshold' must be a finite number, got '1'"),
    ("lif", {"dv": 5000}, "attribute 'dv' must be null or an integer >= 0 and <= 4,096, got 5000"),
    ("cuba", {"alpha": -0.5}, "attribute 'alpha' must be a finite number >= 0 and <= 1, got -0.5"),
    ("cuba", {"threshold": float("inf")}, "attribute 'threshold' must be a finite number, got inf"),
    ("li", {"beta": 2}, "attribute 'beta' must be a finite number >= 0 and <= 1, got 2"),
    ("li", {"alpha": "x"}, "attribute 'alpha' must be null or a finite number >= 0 and <= 1, got 'x'"),
    ("delay", {"steps": -1}, "attribute 'steps' must be an integer >= 0 and <= 100,000 "
                             "(neurocompile.limits.MAX_STEPS), got -1"),
    ("delay", {"steps": 2.5}, "got 2.5"),
])
def test_neuron_attributes(capsys, saved, node, attrs, words):
    """LIF beta NaN was accepted (wrong spikes); decays, thresholds and delays of every neuron. A LIF threshold only
    compares (F = [U > threshold]; NIR's Threshold is one at 0): any finite number."""
    refused(capsys, saved("student", node, **attrs), words, f"node '{node}'")


@pytest.mark.parametrize("attrs, words", [
    ({"gamma": -1}, "attribute 'gamma' must be an integer >= 1 and <= 4,096 (neurocompile.limits.MAX_GAMMA), got -1"),
    ({"gamma": 0}, "got 0"),
    ({"gamma": 2.5}, "got 2.5"),
    ({"threshold": 0.0}, "attribute 'threshold' must be a finite number > 0, got 0.0"),
    ({"levels": 0}, LEVELS + "0"),
    ({"rate": 0}, "attribute 'rate' must be an integer >= 1"),
    ({"amplitude": float("nan")}, "attribute 'amplitude' must be null or a finite number > 0, got nan"),
])
def test_cif_attributes_of_a_converted_network(capsys, saved, attrs, words):
    """gamma -1, 0 and 2.5 gave wrong numbers; a converted network's CIF neuron is checked like the ANN's CQReLU."""
    refused(capsys, saved("converted", "act", **attrs), words, "node 'act'", "op CIF")


def test_per_neuron_values_are_checked_elementwise(capsys, tmp_path):
    g = student()
    g.nodes["lif"].params["beta"] = np.array([0.5, 1.5, 0.25], F32)  # per neuron: one decay is out of [0, 1]
    g.nodes["cuba"].params["alpha"] = np.array([0.5], F32)  # broadcasts, valid
    g.save(str(tmp_path / "x.json"))
    refused(capsys, str(tmp_path / "x.json"), "per-neuron parameter 'beta' must hold values that are each a finite "
            "number >= 0 and <= 1; 1 of 3 are not (the first, at index (1,): 1.5)", "node 'lif'", "op LIF")
    g.nodes["lif"].params["beta"] = np.array([0.5, 0.5, 0.25], F32)
    g.nodes["cuba"].params["alpha"] = np.array([-0.5], F32)
    g.save(str(tmp_path / "x.json"))
    refused(capsys, str(tmp_path / "x.json"), "per-neuron parameter 'alpha'", "(the first, at index (0,): -0.5)",
            "node 'cuba'", "op CubaLIF")


def test_a_stored_shape_that_is_not_positive_integers_is_refused(capsys, saved, tmp_path):
    path = saved("ann", "act")
    doc = json.loads(open(path).read())
    doc["shapes"]["x"] = [1, 6.5, 6]
    with open(path, "w") as f:
        json.dump(doc, f)
    refused(capsys, path, "the shape stored for tensor 'x' is [1, 6.5, 6], not positive integers", "node 'x'")


def test_attrs_that_are_not_an_object_are_a_damaged_file(capsys, saved):
    path = saved("ann", "act")
    doc = json.loads(open(path).read())
    doc["nodes"][2]["attrs"] = [4, 1.0]
    with open(path, "w") as f:
        json.dump(doc, f)
    refused(capsys, path, "the saved IR is damaged")


def test_integral_floats_are_integers(capsys, saved):
    """JSON's 4.0 is the integer 4: accepted, and stored as the int the ops compute with (same numbers)."""
    path = saved("ann", "act", levels=4.0)
    g = api.load(path)
    assert g.nodes["act"].attrs["levels"] == 4 and type(g.nodes["act"].attrs["levels"]) is int
    assert cli.main(["run", path, "--quiet"]) == 0, capsys.readouterr().err
    ref = api.load(saved("ann", "act"))
    x = np.random.default_rng(0).uniform(0, 1, (4, 1, 6, 6)).astype(F32)
    np.testing.assert_array_equal(interpreter.run1(g, x, dtype="float64"), interpreter.run1(ref, x, dtype="float64"))


def test_from_saved_checks_artifact_graphs_too():
    """Artifacts keep their graph in the same saved form and load it with Graph.from_saved."""
    doc, arrays = converted().to_doc()
    [n] = [n for n in doc["nodes"] if n["name"] == "act"]
    n["attrs"]["gamma"] = 0
    with pytest.raises(ValidationError, match=r"attribute 'gamma' must be an integer >= 1.*got 0") as err:
        Graph.from_saved(doc, arrays, "net.h5")
    assert err.value.file == "net.h5" and err.value.node == "act" and err.value.op == "CIF"


# ---- the rules themselves ---------------------------------------------------------------------------------
def test_every_attribute_of_every_op_has_a_rule_its_default_meets():
    for name, op in OPS.items():
        assert set(op.attrs) | set(op.per_neuron) <= set(op.attr_rules), name
        for key, default in op.attrs.items():
            assert default is None or op.attr_rules[key].valid(default, 2), (name, key, default)


@pytest.mark.parametrize("rule, value, ok", [
    (Int(min=1), 2, True), (Int(min=1), 2.0, True), (Int(min=1), np.int64(3), True), (Int(min=1), 2.5, False),
    (Int(min=1), True, False), (Int(min=1), "2", False), (Int(min=1), float("inf"), False), (Int(min=1), None, False),
    (Int(min=1, null=True), None, True), (Real(gt=0), 1e-30, True), (Real(gt=0), 0.0, False),
    (Real(), float("nan"), False), (Real(finite=False), float("-inf"), True), (Real(finite=False), float("nan"), False),
    (Real(min=0, lt=1), 1.0, False), (Real(0, 1), np.float32(1.0), True), (Real(), False, False),
])
def test_rule_values(rule, value, ok):
    assert rule.valid(value) is ok


def test_limits_are_read_when_checking(monkeypatch):
    """A bound named after a limits constant follows it (the CLI's --levels limit and the attribute's are one)."""
    from neurocompile import limits

    node = Node("act", "CQReLU", ["x"], "y", {"levels": 300})
    check_attrs(node)
    monkeypatch.setattr(limits, "MAX_LEVELS", 256)
    with pytest.raises(ValidationError, match=r"<= 256 \(neurocompile.limits.MAX_LEVELS\), got 300"):
        check_attrs(node)


# ---- ONNX ---------------------------------------------------------------------------------------------------
def _custom(op, **attrs):
    return make_model([helper.make_node(op, ["x"], ["y"], domain="neurocompile", name="n1", **attrs)], custom=True)


def _std(op, inits=(), opset=17, in_shape=(None, 4), **attrs):
    ins = ["x"] + [t.name for t in inits]
    return make_model([helper.make_node(op, ins, ["y"], name="n1", **attrs)], list(inits), in_shape=in_shape,
                      opset=opset)


ONNX_CASES = {
    "cqrelu-levels-2.5": (_custom("CQReLU", levels=2.5, clip=1.0), LEVELS + "2.5"),
    "cqrelu-levels-eight": (_custom("CQReLU", levels="eight", clip=1.0), LEVELS + "'eight'"),
    "cqrelu-levels-0": (_custom("CQReLU", levels=0, clip=1.0), LEVELS + "0"),
    "cqrelu-clip-nan": (_custom("CQReLU", levels=4, clip=float("nan")), "attribute 'clip' must be a finite number > 0, "
                                                                        "got nan"),
    "cqrelu-clip-inf": (_custom("CQReLU", levels=4, clip=float("inf")), "attribute 'clip' must be a finite number > 0, "
                                                                        "got inf"),
    "lif-beta-nan": (_custom("LIF", beta=float("nan"), threshold=1.0), "attribute 'beta' must be a finite number >= 0"),
    "lif-threshold-inf": (_custom("LIF", beta=0.5, threshold=float("inf")), "attribute 'threshold' must be a finite"),
    "if-levels-list": (_custom("IF", threshold=1.0, levels=[4, 4]), LEVELS + "[4, 4]"),
    "cif-gamma--1": (_custom("CIF", threshold=1.0, levels=4, gamma=-1), "attribute 'gamma' must be an integer >= 1"),
    "cif-gamma-2.5": (_custom("CIF", threshold=1.0, levels=4, gamma=2.5), "got 2.5"),
    "cif-threshold-0": (_custom("CIF", threshold=0.0, levels=4), "attribute 'threshold' must be a finite number > 0"),
    "gemm-alpha-nan": (_std("Gemm", [tensor("b", np.ones((4, 3)))], alpha=float("nan")),
                       "attribute 'alpha' must be a finite number, got nan"),
    "leakyrelu-alpha-inf": (_std("LeakyRelu", alpha=float("inf")),
                            "attribute 'alpha' must be a finite number, got inf"),
    "conv-group-0": (_std("Conv", [tensor("w", np.ones((2, 1, 3, 3)))], in_shape=(None, 1, 6, 6), group=0),
                     "attribute 'groups' must be an integer >= 1, got 0"),
    "clip-min-nan": (_std("Clip", opset=10, min=float("nan"), max=1.0), "attribute 'min' must be null or a number"),
    "bn-epsilon-neg": (_std("BatchNormalization", [tensor(k, np.ones(4) * 2) for k in ("s", "b", "m", "v")],
                            in_shape=(None, 4, 2, 2), epsilon=-1.0), "attribute 'eps' must be a finite number >= 0"),
}


@pytest.mark.parametrize("case", sorted(ONNX_CASES))
def test_onnx_attributes(capsys, tmp_path, case):
    model, words = ONNX_CASES[case]
    path = str(tmp_path / f"{case}.onnx")
    onnx.save(model, path)
    refused(capsys, path, words, "node 'n1'")


def test_onnx_integral_float_levels_are_integers(tmp_path):
    path = str(tmp_path / "m.onnx")
    onnx.save(_custom("CQReLU", levels=4.0, clip=1), path)
    a = api.load(path).nodes["n1"].attrs
    assert a["levels"] == 4 and type(a["levels"]) is int and a["clip"] == 1.0 and type(a["clip"]) is float


@pytest.mark.parametrize("field", ["node name", "input name"])
def test_onnx_name_that_is_not_utf8(capsys, tmp_path, field):
    """A node or tensor name that is not UTF-8 (protobuf keeps it as bytes) was an internal error (exit 3)."""
    if field == "node name":
        model = make_model([helper.make_node("Relu", ["x"], ["y"], name="NODEQQ")])
        raw = model.SerializeToString().replace(b"NODEQQ", b"NOD\xff\xfeQ")
    else:
        model = make_model([helper.make_node("Relu", ["XINPUT"], ["y"], name="n")], inp="XINPUT")
        raw = model.SerializeToString().replace(b"XINPUT", b"XI\xffPUT")
    path = tmp_path / "bad.onnx"
    path.write_bytes(raw)
    err = refused(capsys, str(path))
    assert "not valid UTF-8" in err or "cannot parse the file as ONNX" in err  # upb keeps bytes; others refuse to parse
