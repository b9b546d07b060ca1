"""Every model converts exactly or is refused clearly (issue 12): model checks, straight-through and Round
quantizers, aliased outputs, the reference each result is compared with, and float32 boundary cases."""
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.analysis.boundary import find_boundary_cases
from neurocompile.errors import ConversionError, ModelLoadError
from neurocompile.frontends.onnx.importer import import_model
from neurocompile.analysis.oracle import reference_for
from tests.conftest import ort_run
from tests.models import export
from tests.onnx_util import make_model, tensor
from tests.test_cli import cli

W = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)


def _dense(extra=(), inits=(), **kw):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), *extra]
    return make_model(nodes, [tensor("W", W), *inits], out=nodes[-1].output[0], **kw)


# -- refused before any work -------------------------------------------------------------------------
@pytest.mark.parametrize("opset", [1, 6, 24, 99])
def test_opsets_outside_the_supported_range_are_refused(opset):
    m = _dense(opset=opset)
    with pytest.raises(ModelLoadError, match=f"opset {opset} is outside"):
        import_model(m)


def test_opset_0_and_invalid_attributes_are_refused_by_the_checker():
    m = _dense(opset=0)
    m.opset_import[0].version = 0
    with pytest.raises(ModelLoadError, match="opset 0"):
        import_model(m)
    bad = _dense([helper.make_node("Relu", ["h"], ["y"], alpha=2.0)])
    with pytest.raises(ModelLoadError, match="onnx.checker rejects the model.*alpha"):
        import_model(bad)


def test_duplicate_initializers_are_refused():
    m = _dense(inits=[tensor("W", np.zeros_like(W))])
    with pytest.raises(ModelLoadError, match="initializer 'W' is defined twice"):
        import_model(m)


@pytest.mark.parametrize("dtype", [TensorProto.DOUBLE, TensorProto.INT64, TensorProto.FLOAT16])
def test_non_float32_inputs_are_refused(dtype):
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    x = helper.make_tensor_value_info("x", dtype, [None, 4])
    y = helper.make_tensor_value_info("y", dtype, [None, 4])
    m = helper.make_model(helper.make_graph(nodes, "t", [x], [y]), opset_imports=[helper.make_opsetid("", 17)],
                          ir_version=8)
    with pytest.raises(ModelLoadError, match=f"element type {TensorProto.DataType.Name(dtype)}"):
        import_model(m)


def test_non_finite_weights_are_refused_naming_the_initializer():
    w = W.copy()
    w[0, 0], w[1, 2] = np.nan, np.inf
    m = make_model([helper.make_node("MatMul", ["x", "W"], ["y"])], [tensor("W", w)])
    with pytest.raises(ModelLoadError, match=r"initializer 'W' holds 2 non-finite value\(s\) \(NaN, inf\) of 12"):
        import_model(m)
    # an infinite Clip bound is a valid 'no bound', not a broken weight
    ok = _dense([helper.make_node("Clip", ["h", "lo", "hi"], ["y"])], [tensor("lo", 0.0), tensor("hi", np.inf)])
    g = api.optimize(import_model(ok))
    assert [n.op for n in g.topo()] == ["Input", "Dense", "Relu"]


def test_dropout_in_training_mode_is_refused():
    extra = [helper.make_node("Dropout", ["h", "r", "t"], ["y"])]
    m = _dense(extra, [tensor("r", 0.5), tensor("t", True, np.bool_)])
    with pytest.raises(ModelLoadError, match="training_mode=True"):
        import_model(m)
    eval_mode = _dense(extra, [tensor("r", 0.5), tensor("t", False, np.bool_)])
    assert [n.op for n in api.optimize(import_model(eval_mode)).topo()] == ["Input", "Dense"]


def test_non_finite_inputs_are_refused_naming_the_file(tmp_path, onnx_model):
    path, shape = onnx_model("mlp", "cqrelu", "bn", 8)
    x = np.zeros((3, *shape), np.float32)
    x[1, 0, 0, 0] = np.nan
    np.save(tmp_path / "x.npy", x)
    r = cli(path, "--input", tmp_path / "x.npy", "--quiet")
    assert r.returncode == 1 and "x.npy" in r.stderr and "1 non-finite" in r.stderr, r.stderr


# -- computed exactly ---------------------------------------------------------------------------------
def test_an_aliased_output_is_read_out_once(tmp_path):
    """y and its Identity alias z are the same tensor: the readout must not be summed twice."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Clip", ["h", "lo", "hi"], ["c"]),
             helper.make_node("Mul", ["c", "L"], ["m"]), helper.make_node("Floor", ["m"], ["f"]),
             helper.make_node("Div", ["f", "L"], ["q"]), helper.make_node("MatMul", ["q", "W2"], ["y"]),
             helper.make_node("Identity", ["y"], ["z"])]
    w2 = np.random.default_rng(1).normal(size=(3, 2)).astype(np.float32)
    m = make_model(nodes, [tensor("W", W), tensor("W2", w2), tensor("lo", 0.0), tensor("hi", 1.0), tensor("L", 4.0)])
    m.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 2]))
    onnx.save(m, tmp_path / "alias.onnx")
    x = np.random.default_rng(2).uniform(0, 1, (32, 4)).astype(np.float32)
    res = api.simulate(api.convert(api.load(str(tmp_path / "alias.onnx"))), x, exact=True)
    assert len(res.outputs) == 1
    np.testing.assert_allclose(res.output, ort_run(tmp_path / "alias.onnx", x), rtol=1e-5, atol=1e-6)


class _Quant(nn.Module):
    """CQReLU(L, λ) written three ways with the same function (Round's ties to even aside)."""

    def __init__(self, style, levels=4, clip=1.5):
        super().__init__()
        self.style, self.L, self.lam = style, levels, clip

    def forward(self, x):
        L, lam = self.L, self.lam
        if self.style == "ste":  # c + (q - c).detach(): the standard training form
            c = torch.clamp(x, 0, lam)
            return c + (torch.floor(c * L / lam) * lam / L - c).detach()
        if self.style == "ste-floor":  # the straight-through estimator around the floor alone
            y = torch.clamp(x, 0, lam) * L / lam
            return (y + (torch.floor(y) - y).detach()) * lam / L
        return torch.clamp(torch.round(x * L / lam - 0.5), 0, L) * lam / L  # "round"


def _trained_digits_net():
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = torch.tensor(d.data / 16.0, dtype=torch.float32), torch.tensor(d.target)
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 32), _Quant("ste"), nn.Linear(32, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval(), x.numpy()


def test_straight_through_and_round_exports_of_one_trained_net_convert_losslessly(tmp_path):
    net, x = _trained_digits_net()
    outs = {}
    for style in ("ste", "ste-floor", "round"):
        net[1].style = style
        path = export(net, (64,), tmp_path / f"{style}.onnx")
        g = api.load(path)
        snn = api.convert(g)
        assert sorted(n.op for n in snn.nodes.values()) == ["CIF", "Dense", "Dense", "Input"]
        res = api.simulate(snn, x, exact=True)  # float64
        exact = interpreter.run1(api.optimize(g), x, "float64")
        assert np.abs(res.output - exact).max() <= 1e-9 * np.abs(exact).max()
        ann = ort_run(path, x)
        keep = np.setdiff1d(np.arange(len(x)), api.boundary_cases(g, x).samples)
        assert (res.output.argmax(1)[keep] == ann.argmax(1)[keep]).all()
        assert np.abs(res.output[keep] - ann[keep]).max() <= 1e-4 * np.abs(ann).max()
        outs[style] = res.output
    assert (outs["ste"].argmax(1) == outs["round"].argmax(1)).mean() > 0.99  # same net, ties aside
    assert (ort_run(tmp_path / "ste.onnx", x).argmax(1) == outs["ste"].argmax(1)).mean() == 1.0


def test_unrecognized_quantizers_and_branch_differences_are_refused_with_what_to_do():
    shifted = _dense([helper.make_node("Add", ["h", "c"], ["a"]), helper.make_node("Floor", ["a"], ["y"])],
                     [tensor("c", 0.3)])
    with pytest.raises(ConversionError, match="not part of a recognized CQReLU/QCFS quantizer.*straight-through"):
        api.convert(import_model(shifted))
    diff = _dense([helper.make_node("MatMul", ["x", "W"], ["h2"]), helper.make_node("Mul", ["h2", "k"], ["h3"]),
                   helper.make_node("Sub", ["h", "h3"], ["y"])], [tensor("k", 0.5)])
    g = import_model(diff)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    # expected in float64 (a float32 product's rounding depends on the BLAS kernel); h - 0.5 h in float64 is exact
    # up to the product's own rounding: 4 terms, a few ulps of sum |x||W|
    want = 0.5 * (x.astype(np.float64) @ W.astype(np.float64))
    np.testing.assert_allclose(interpreter.run1(g, x, "float64"), want, rtol=0, atol=1e-14 * (abs(x) @ abs(W)).max())
    with pytest.raises(ConversionError, match="difference of two data tensors"):
        api.convert(g)


def test_leaky_relu_is_imported_and_run_but_refused_by_conversion_with_a_hint(tmp_path):
    """An op with no spiking form is one class in ops.py (its meaning and its refusal) plus one frontend entry."""
    m = _dense([helper.make_node("LeakyRelu", ["h"], ["y"], alpha=0.2)])
    path = tmp_path / "leaky.onnx"
    onnx.save(m, path)
    g = api.load(str(path))
    x = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    np.testing.assert_allclose(interpreter.run1(g, x), ort_run(str(path), x), rtol=1e-6, atol=1e-7)
    with pytest.raises(ConversionError, match="LeakyRelu .alpha=0.2. has no spiking form") as info:
        api.convert(g)
    assert info.value.op == "LeakyRelu" and "CQReLU" in info.value.hint
    r = cli(path, "--input", _save_x(tmp_path, x))
    assert r.returncode == 1 and "no spiking form" in r.stderr and "Traceback" not in r.stderr


def _save_x(tmp_path, x):
    p = tmp_path / "x.npy"
    np.save(p, x)
    return p


# -- the reference is named, and independent wherever possible ----------------------------------------
def test_fixed_batch_exports_run_onnxruntime_sample_by_sample(tmp_path):
    net, x = _trained_digits_net()
    path = str(tmp_path / "fixed.onnx")
    torch.onnx.export(net, torch.zeros(1, 64), path, input_names=["x"], output_names=["y"])  # batch fixed at 1
    g = api.load(path)
    ref = reference_for(path, g)
    assert ref.name == "onnxruntime (sample by sample)" and ref.independent
    out = ref.outputs(x[:7])
    assert out.shape == (7, 10)
    np.testing.assert_allclose(out, interpreter.run1(api.optimize(g), x[:7], "float64"), rtol=1e-4, atol=1e-5)


def test_reference_choice_is_reported_in_text_and_json(tmp_path, onnx_model):
    path, shape = onnx_model("mlp", "cqrelu", "bn", 4)
    x = np.random.default_rng(0).uniform(0, 1, (4, *shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ir = tmp_path / "saved.json"
    r = cli(path, "--input", tmp_path / "x.npy", "--json", tmp_path / "a.json", "--save-ir", ir, "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["reference"] == {"name": "onnxruntime", "why": "the original file, float32", "independent": True}
    assert "reference  onnxruntime" in r.stdout and "boundary" in r.stdout
    assert set(doc["boundary_cases"]) >= {"samples", "neurons"}
    r = cli(ir, "--input", tmp_path / "x.npy", "--json", tmp_path / "b.json", "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["reference"]["independent"] is False and "NOT an independent reference" in r.stdout
    assert "not an independent check" in r.stdout


def test_newer_ir_versions_and_custom_ops_use_onnx_reference_evaluator():
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]),
             helper.make_node("CQReLU", ["h"], ["y"], domain="neurocompile", levels=4, clip=1.0)]
    m = make_model(nodes, [tensor("W", W)], custom=True)
    m.ir_version = 14  # onnx 1.23's default, newer than onnxruntime 1.23 reads
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = f"{d}/m.onnx"
        onnx.save(m, path)
        g = api.load(path)
        ref = reference_for(path, g)
        assert ref.name == "onnx ReferenceEvaluator (float64)" and ref.independent
        x = np.random.default_rng(0).uniform(0, 1, (16, 4)).astype(np.float32)
        np.testing.assert_allclose(ref.outputs(x), interpreter.run1(g, x, "float64"), rtol=1e-12)


def test_boundary_cases_are_found_from_float64_alone():
    """x·w = 0.5 exactly with L = 2, λ = 1: on the level boundary; 0.3 is far from any."""
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"]),
             helper.make_node("CQReLU", ["h"], ["q"], domain="neurocompile", levels=2, clip=1.0),
             helper.make_node("MatMul", ["q", "W2"], ["y"])]
    m = make_model(nodes, [tensor("W1", [[1.0]]), tensor("W2", [[1.0, -1.0]])], in_shape=(None, 1), custom=True)
    g = import_model(m)
    rep = find_boundary_cases(api.ann_graph(g), np.array([[0.5], [0.3], [1.0], [0.0]], np.float32))
    assert rep.samples == [0, 2] and rep.neurons == 2  # 0.0 is no boundary: below it the clip gives 0 as well


def test_a_saved_ir_runs_as_it_was_converted(tmp_path):
    """Fixed point and IF schedules live in the saved IR: re-running it must not convert it again."""
    import shutil
    import subprocess
    import sys

    from tests.test_cli import EXAMPLE

    x = np.load(EXAMPLE.replace("digits_cqrelu.onnx", "digits_test.npy"))[:6]
    np.save(tmp_path / "x.npy", x)
    for flags in (["--fixed-point"], ["--neuron", "if", "--steps", "20"]):
        ir = tmp_path / "saved.json"
        r = cli(EXAMPLE, "--input", tmp_path / "x.npy", "--save-ir", ir, "--json", tmp_path / "a.json", "--quiet", *flags)
        assert r.returncode == 0, r.stderr
        r = cli(ir, "--input", tmp_path / "x.npy", "--json", tmp_path / "b.json", "--quiet")
        assert r.returncode == 0, r.stderr
        a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
        assert a["outputs"] == b["outputs"] and a["steps"] == b["steps"] and a["neuron"] == b["neuron"]
        r = cli(ir, "--input", tmp_path / "x.npy", "--quiet", *flags[:2])
        assert r.returncode == 2 and "is a converted network" in r.stderr
    # an ONNX file is ONNX whatever its name: compared with onnxruntime, not with neurocompile itself
    shutil.copy(EXAMPLE, tmp_path / "model.pb")
    r = cli(tmp_path / "model.pb", "--input", tmp_path / "x.npy", "--quiet")
    assert r.returncode == 0 and "reference  onnxruntime" in r.stdout, r.stderr
    # a reader that goes away (| head) ends the CLI quietly, after the outputs are written
    proc = subprocess.Popen([sys.executable, "-m", "neurocompile.cli", EXAMPLE, "--input", tmp_path / "x.npy",
                             "--json", tmp_path / "pipe.json", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141 and "Traceback" not in err and "internal error" not in err, err
    assert json.loads((tmp_path / "pipe.json").read_text())["argmax_agreement"] == 1.0
    (tmp_path / "notes.npy").write_text("not numbers\n")
    r = cli(EXAMPLE, "--input", tmp_path / "notes.npy")
    assert r.returncode == 1 and "is not a .npy array" in r.stderr


def test_options_that_cannot_act_are_named():
    from tests.test_cli import EXAMPLE

    r = cli(EXAMPLE, "--neuron", "if", "--gamma", "3", "--quiet")
    assert r.returncode == 0 and "--gamma ignored" in r.stderr, r.stderr
    r = cli(EXAMPLE, "--target", "lava-sim", "--delay", "2")
    assert r.returncode == 2 and "--delay 2 does not match lava-sim" in r.stderr
