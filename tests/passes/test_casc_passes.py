"""recognize_cqrelu, normalize_thresholds, encode_spikes, schedule_wake_sleep."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.errors import ConversionError
from neurocompile.frontends.onnx.importer import import_model
from neurocompile.passes import PassManager, casc_pipeline, optimize_pipeline
from neurocompile.passes.encode_spikes import encode_spikes
from neurocompile.passes.normalize_thresholds import normalize_thresholds
from neurocompile.passes.recognize_cqrelu import recognize_cqrelu
from neurocompile.passes.schedule_wake_sleep import schedule_wake_sleep
from tests.conftest import rel_err
from tests.onnx_util import make_model


@pytest.mark.parametrize("style", ["clip-mul-floor-div", "relu-min-div-floor-mul", "unit"])
@pytest.mark.parametrize("levels", [2, 8])
def test_recognize_chains(onnx_model, style, levels):
    path, shape = onnx_model("vgg", f"cqrelu:{style}", "bn", levels)
    g = PassManager(optimize_pipeline()).run(api.load(path))
    out = PassManager([recognize_cqrelu]).run(g)
    cq = [n for n in out.nodes.values() if n.op == "CQReLU"]
    assert len(cq) == 4
    assert all(n.attrs["levels"] == levels and n.attrs["clip"] == 1.0 and n.attrs["shift"] == 0.0 for n in cq)
    assert not {"Floor", "Clip", "Relu", "Mul", "Div"} & {n.op for n in out.nodes.values()}
    x = np.random.default_rng(0).uniform(0, 1, (64, *shape)).astype(np.float32)
    assert rel_err(interpreter.run1(out, x, "float64"), interpreter.run1(g, x, "float64")) <= 1e-9


def _act_model(act_nodes, inits, opset=17):
    """x(4) -> Gemm -> [activation chain 'h' -> 'a'] -> Gemm -> y."""
    rng = np.random.default_rng(0)
    w1, w2 = rng.normal(size=(4, 6)).astype(np.float32), rng.normal(size=(6, 3)).astype(np.float32)
    t = lambda n, v: onnx.numpy_helper.from_array(np.asarray(v, np.float32), n)  # noqa: E731
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), *act_nodes, helper.make_node("MatMul", ["a", "w2"], ["y"])]
    inits = [t("w1", w1), t("w2", w2), *[t(k, v) for k, v in inits.items()]]
    return import_model(make_model(nodes, inits, opset=opset, custom=True))


def test_custom_node_and_qcfs_variant():
    custom = _act_model([helper.make_node("CQReLU", ["h"], ["a"], domain="neurocompile", levels=4, clip=2.0)], {})
    cq = next(n for n in custom.nodes.values() if n.op == "CQReLU")
    assert cq.attrs == {"levels": 4, "clip": 2.0, "shift": 0.0}
    # QCFS: λ * clamp(floor(x*L/λ + 0.5)/L, 0, 1) with L=4, λ=2
    qcfs = _act_model([helper.make_node("Mul", ["h", "k"], ["p"]), helper.make_node("Add", ["p", "half"], ["q"]),
                       helper.make_node("Floor", ["q"], ["f"]), helper.make_node("Div", ["f", "L"], ["r"]),
                       helper.make_node("Clip", ["r", "zero", "one"], ["c"]), helper.make_node("Mul", ["c", "lam"], ["a"])],
                      {"k": 2.0, "half": 0.5, "L": 4.0, "zero": 0.0, "one": 1.0, "lam": 2.0})
    g = api.optimize(qcfs)
    out = recognize_cqrelu(g.copy())
    cq = next(n for n in out.nodes.values() if n.op == "CQReLU")
    assert cq.attrs == {"levels": 4, "clip": 2.0, "shift": 0.5}
    x = np.random.default_rng(1).normal(size=(64, 4)).astype(np.float32)
    assert rel_err(interpreter.run1(out, x, "float64"), interpreter.run1(g, x, "float64")) <= 1e-9


def test_non_cqrelu_chain_is_left_alone():
    """floor(x*3)/2 is not a CQReLU (a*b != 1 and no lower clip): nothing is replaced."""
    g = api.optimize(_act_model([helper.make_node("Mul", ["h", "k"], ["p"]), helper.make_node("Floor", ["p"], ["f"]),
                                 helper.make_node("Div", ["f", "d"], ["a"])], {"k": 3.0, "d": 2.0}))
    assert not any(n.op == "CQReLU" for n in recognize_cqrelu(g.copy()).nodes.values())


def test_mixed_model_is_reported(onnx_model):
    path, _ = onnx_model("resnet", "relu", "bn")
    with pytest.raises(ConversionError) as info:
        api.convert(api.load(path))
    msg = str(info.value)
    assert "5 activation(s) are plain ReLU" in msg and "--calibrate" in msg


def test_calibrated_relu_conversion_is_labelled_lossy(onnx_model):
    path, shape = onnx_model("vgg", "relu", "bn")
    calib = np.random.default_rng(0).uniform(0, 1, (64, *shape)).astype(np.float32)
    g = api.optimize(api.load(path))
    out = normalize_thresholds(g.copy(), calib, percentile=99.0, levels=16)
    cq = [n for n in out.nodes.values() if n.op == "CQReLU"]
    assert len(cq) == 4 and all(n.attrs["calibrated"] and n.attrs["levels"] == 16 for n in cq)
    acts = interpreter.run(g, calib, keep=True)
    first_relu = next(n for n in g.topo() if n.op == "Relu")
    v = acts[first_relu.output]
    assert cq[0].attrs["clip"] == pytest.approx(np.percentile(v[v > 0], 99.0))
    assert out.meta["lossy_layers"] == [n.name for n in g.topo() if n.op == "Relu"]


@pytest.mark.parametrize("n", [1, 2, 7, 1000, 200_003])
@pytest.mark.parametrize("q", [0.1, 50.0, 99.0, 99.9, 99.99, 100.0])
@pytest.mark.parametrize("kind", ["normal", "ties"])
def test_calibration_percentile_by_selection_equals_numpy(n, q, kind):
    """λ is numpy's linear percentile of the positive activations, found by selection (not a full sort)."""
    import torch

    from neurocompile.passes.normalize_thresholds import percentile_of_positive

    rng = np.random.default_rng(n)
    a = rng.normal(size=n) if kind == "normal" else rng.integers(-3, 6, size=n).astype(np.float64)
    a = a.astype(np.float32)
    pos = a[a > 0].astype(np.float64)
    want = np.percentile(pos, q) if len(pos) else 1.0
    assert percentile_of_positive(torch.from_numpy(a).reshape(-1, 1), q) == pytest.approx(want, rel=1e-12, abs=0)


def test_calibration_percentile_without_positive_values_is_one():
    import torch

    from neurocompile.passes.normalize_thresholds import percentile_of_positive

    assert percentile_of_positive(-torch.rand(1000), 99.9) == 1.0


def test_encode_and_schedule(onnx_model):
    path, shape = onnx_model("resnet", "cqrelu", "bn", 4)
    g = recognize_cqrelu(api.optimize(api.load(path)))
    snn = encode_spikes(g.copy(), "cif", gamma=2)
    assert {n.op for n in snn.nodes.values()} >= {"CIF"} and not any(n.op == "CQReLU" for n in snn.nodes.values())
    assert all(n.attrs["gamma"] == 2 for n in snn.nodes.values() if n.op == "CIF")
    x = np.random.default_rng(0).uniform(0, 1, (16, *shape)).astype(np.float32)
    assert rel_err(interpreter.run1(snn, x, "float64"), interpreter.run1(g, x, "float64")) == 0
    s = schedule_wake_sleep(snn.copy(), synapse_delay=1).schedule
    assert s.t_wake == 4 and s.synapse_delay == 1
    # main paths have 2 convs: the identity shortcut waits 2 steps, the 1x1 projection shortcut 1
    assert list(s.balance.values()) == [[0, 2], [0, 1]]
    assert s.steps == s.predicted_settle == 4 + s.depth + 4 + 2  # margin 4 + (5 - 1 neuron layers) * L / (4 gamma)
    assert "CIF" not in {snn.nodes[k].op for k in s.gated_bias}


def test_levels_mismatch_is_refused(onnx_model):
    path, _ = onnx_model("mlp", "cqrelu", "bn", 4)
    with pytest.raises(ConversionError, match="trained levels"):
        api.convert(api.load(path), levels=8)


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
def test_weight_normalization_makes_thresholds_one(onnx_model, arch):
    path, shape = onnx_model(arch, "cqrelu", "bn", 4)
    g = api.load(path)
    plain, normed = api.convert(g), api.convert(g, normalize_weights=True)
    x = np.random.default_rng(0).uniform(0, 1, (32, *shape)).astype(np.float32)
    assert rel_err(interpreter.run1(normed, x, "float64"), interpreter.run1(plain, x, "float64")) <= 1e-6
    thetas = [n.attrs["threshold"] for n in normed.nodes.values() if n.op == "CIF"]
    assert all(t == pytest.approx(1.0) for t in thetas)
    ann = interpreter.run1(normed, x, "float64")
    assert np.abs(api.simulate(normed, x, exact=True).output - ann).max() <= 1e-9 * np.abs(ann).max()


def test_weight_normalization_with_non_unit_clips():
    """λ differs per layer (1.3, 0.5): weights absorb λ_{l-1}/λ_l; the readout W absorbs λ_last."""
    from tests.test_properties import random_net

    g = random_net(7, levels=4, depth=3, conv=True, residual=False, maxpool=True)
    assert {n.attrs["clip"] for n in g.nodes.values() if n.op == "CQReLU"} != {1.0}
    normed = PassManager(casc_pipeline(normalize_weights=True)).run(g)
    assert all(n.attrs["threshold"] == pytest.approx(1.0) for n in normed.nodes.values() if n.op == "CIF")
    x = np.random.default_rng(1).uniform(0, 1, (16, 3, 6, 6)).astype(np.float32)
    ann = interpreter.run1(g, x, "float64")
    assert rel_err(interpreter.run1(normed, x, "float64"), ann) <= 1e-6
    assert rel_err(api.simulate(normed, x, exact=True).output, ann) <= 1e-6
