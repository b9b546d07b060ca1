"""Fixed point: integer weights (8-bit mantissas, per-layer exponents), thresholds and biases chosen per block;
Lava's fixed_pt models == the reference simulator's integer arithmetic, exactly, for feed-forward, pooled,
residual and LIF networks."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.errors import ConversionError, TargetError
from neurocompile.passes.quantize_fixed_point import STATE_MAX, WEIGHT_MAX
from neurocompile.torch import export_onnx
from tests import models
from tests.targets.test_idsnn_deploy import _digits as _digit_images
from tests.targets.test_idsnn_deploy import _student

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def _digits(n):
    return np.load(os.path.join(EXAMPLES, "digits_test.npy"))[:n], os.path.join(EXAMPLES, "digits_cqrelu.onnx")


def _integer_formats(q):
    """Every stored number an integer; weights 8-bit even mantissas times 2**weight_exp."""
    for n in q.nodes.values():
        for k, v in n.params.items():
            assert np.array_equal(v, np.round(v)), (n.name, k)
            if k == "weight":
                mant = v / 2.0 ** int(n.attrs.get("weight_exp", 0))
                assert np.array_equal(mant, np.round(mant)) and np.abs(mant).max() <= WEIGHT_MAX
                assert np.all(mant % 2 == 0), n.name  # lava's Dense drops the LSB of mixed-sign weights
        if n.op in ("CIF", "IF"):
            assert float(n.attrs["threshold"]).is_integer() and n.attrs["amplitude"] == 1.0
        if n.op == "Add" and n.attrs.get("gains"):
            assert all(float(k).is_integer() and k >= 1 for k in n.attrs["gains"])


def test_quantized_graph_is_integer_and_close_to_the_ann():
    x, path = _digits(100)
    q = api.convert(api.load(path), fixed_point=True)
    _integer_formats(q)
    ann, _ = api.ann_outputs(path, x)
    res = api.simulate(q, x, exact=True)
    # the reference simulator computes in exact integers: equal to the quantized graph's meaning
    np.testing.assert_array_equal(res.output, interpreter.run1(q, x, "float64"))
    assert (res.output.argmax(1) == ann.argmax(1)).mean() >= 0.98
    assert np.abs(res.output - ann).max() <= 0.1 * np.abs(ann).max()  # 8-bit weights: lossy, bounded
    report = {r["node"]: r for r in q.meta["fixed_point_report"]}
    convs = [r for r in report.values() if r["op"] in ("Conv", "Dense")]
    assert convs and all(0 < r["weight_error"] < 0.02 and r["rescaled"] == 0 for r in convs)


def test_residual_blocks_share_one_unit_through_exponents_and_identity_gains(onnx_model):
    """The first block's identity shortcut meets its conv branch through an integer gain; the projection
    block's two convs share one unit, the one with smaller weights taking an exponent."""
    path, shape = onnx_model("resnet", "cqrelu", "bn", 4)
    q = api.convert(api.load(path), fixed_point=True)
    _integer_formats(q)
    gains = [n.attrs.get("gains") for n in q.nodes.values() if n.op == "Add"]
    assert any(k and max(k) > 1 for k in gains)  # the identity shortcut
    assert any(r["exponent"] > 0 for r in q.meta["fixed_point_report"])
    x = np.random.default_rng(4).uniform(0, 1, (20, *shape)).astype(np.float32)
    ann, _ = api.ann_outputs(path, x)
    res = api.simulate(q, x, exact=True)
    np.testing.assert_array_equal(res.output, interpreter.run1(q, x, "float64"))
    assert np.abs(res.output - ann).max() <= 0.05 * np.abs(ann).max()
    assert (res.output.argmax(1) == ann.argmax(1)).mean() >= 0.9


def _student_path(tmp_path):
    student = _student(T=4)
    return student, export_onnx(student, torch.zeros(2, 1, 8, 8), tmp_path / "student.onnx")


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet", "student"])
def test_lava_fixed_pt_equals_reference(onnx_model, tmp_path, arch):
    if arch == "student":  # an LIF ResNet: Lava's bit-accurate LIF against neurons.lif_step_fixed
        _, path = _student_path(tmp_path)
        x = _digit_images(3)
    else:
        path, shape = onnx_model(arch, "cqrelu", "bn", 4)
        x = np.random.default_rng(3).uniform(0, 1, (3, *shape)).astype(np.float32)
    q = api.convert(api.load(path), target="lava-sim", fixed_point=True)
    _integer_formats(q)
    ref = api.simulate(q, x, exact=True)
    res = api.compile(q, "lava-sim", fixed_point=True).run(x)
    np.testing.assert_array_equal(res.per_step, ref.per_step)  # the readout at every step
    assert res.spikes == ref.spikes  # every layer's spikes per sample
    assert sum(v["pos"] > 0 for v in ref.spikes.values()) >= len(ref.spikes) - 1  # the layers fire


def test_fixed_point_lif_is_lavas_bit_accurate_rule(tmp_path):
    _, path = _student_path(tmp_path)
    q = api.convert(api.load(path), fixed_point=True)
    lifs = [n for n in q.nodes.values() if n.op == "LIF"]
    assert lifs and all(n.attrs["dv"] == 3072 and float(n.attrs["threshold"]).is_integer() for n in lifs)  # β 0.25
    res = api.simulate(q, _digit_images(50), record_layers=True, exact=True)
    assert all(np.abs(m).max() < STATE_MAX for m in res.membranes.values())


def test_a_layer_that_could_overflow_24_bits_is_rescaled_and_stays_within(tmp_path):
    """All-positive weights on a 64-wide input: the worst case passes 2**23 over the wake steps, so the block's
    unit is halved (reported) until every state fits; an all-ones input reaches that worst case."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), models.ChainCQReLU(8, 1.0), nn.Linear(16, 4))
    with torch.no_grad():
        net[1].weight.copy_(torch.rand(16, 64) * 0.1)
    path = models.export(net.eval(), (1, 8, 8), tmp_path / "wide.onnx")
    q = api.convert(api.load(path), fixed_point=True)
    first = q.meta["fixed_point_report"][0]
    assert first["rescaled"] > 0
    x = np.ones((2, 1, 8, 8), np.float32)
    res = api.simulate(q, x, record_layers=True, exact=True)
    assert all(np.abs(m).max() < STATE_MAX for m in res.membranes.values())
    ann, _ = api.ann_outputs(path, x)
    assert np.abs(res.output - ann).max() <= 0.05 * np.abs(ann).max()


def test_fixed_point_refuses_inputs_outside_the_range_it_was_sized_for():
    x, path = _digits(2)
    q = api.convert(api.load(path), fixed_point=True)
    with pytest.raises(TargetError, match=r"inputs in \[0, 1\]"):
        api.simulate(q, x * 2, exact=True)


def test_fixed_point_refuses_what_it_cannot_do(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), models.ChainCQReLU(8, 1.0), nn.Linear(16, 4))
    path = models.export(net.eval(), (1, 8, 8), tmp_path / "two.onnx")
    g = api.load(path)
    g.outputs = [*g.outputs, next(n.output for n in g.topo() if n.op in ("Gemm", "Dense"))]  # a second output
    with pytest.raises(ConversionError, match="feeds two neuron layers"):  # one Dense, two sinks, two units
        api.convert(g, fixed_point=True)


def test_weights_trained_on_an_8_bit_grid_convert_losslessly(tmp_path):
    """Weights that are multiples of 1/64 (|k| <= 127) are stored exactly (even mantissas 2k), and thresholds land
    on integers: the fixed-point SNN equals the float64 ANN exactly on 8-bit inputs, and every layer reports 0."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32, bias=False), models.ChainCQReLU(8, 1.0),
                        nn.Linear(32, 10, bias=False))
    with torch.no_grad():
        for m in (net[1], net[3]):
            m.weight.copy_(torch.round(m.weight * 64) / 64)
    path = models.export(net.eval(), (1, 8, 8), tmp_path / "grid.onnx")
    q = api.convert(api.load(path), fixed_point=True)
    assert all(r["weight_error"] == 0 for r in q.meta["fixed_point_report"])
    x = np.random.default_rng(0).integers(0, 256, (50, 1, 8, 8)) / 255.0
    ann = interpreter.run1(api.optimize(api.load(path)), x, "float64")
    np.testing.assert_array_equal(api.simulate(q, x, exact=True).output, ann)


class _PoolHead(nn.Module):
    """The readout after a global average pool and a Flatten: no weights between the last sink and the output."""

    def __init__(self):
        super().__init__()
        self.c1, self.a, self.c2 = nn.Conv2d(1, 4, 3, padding=1), models.ChainCQReLU(4, 1.0), nn.Conv2d(4, 6, 3, padding=1)

    def forward(self, x):
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.c2(self.a(self.c1(x))), 1), 1)


class _Twice(nn.Module):
    """Add(z, z): one connection reached along two paths of one block (its current counts twice)."""

    def __init__(self):
        super().__init__()
        self.l1, self.a, self.l2 = nn.Linear(64, 16), models.ChainCQReLU(4, 1.0), nn.Linear(16, 16)
        self.a2, self.l3 = models.ChainCQReLU(4, 1.0), nn.Linear(16, 4)

    def forward(self, x):
        z = self.l2(self.a(self.l1(torch.flatten(x, 1))))
        return self.l3(self.a2(z + z))


@pytest.mark.parametrize("model", [_PoolHead, _Twice])
def test_fixed_point_handles_pooled_readouts_and_doubled_paths(tmp_path, model):
    torch.manual_seed(0)
    path = models.export(model().eval(), (1, 8, 8), tmp_path / "m.onnx")
    q = api.convert(api.load(path), fixed_point=True)
    _integer_formats(q)
    assert len({r["node"] for r in q.meta["fixed_point_report"]}) == len(q.meta["fixed_point_report"])
    x = np.random.default_rng(0).uniform(0, 1, (20, 1, 8, 8))
    res = api.simulate(q, x, record_layers=True, exact=True)
    np.testing.assert_array_equal(res.output, interpreter.run1(q, x, "float64"))
    assert all(np.abs(m).max() < STATE_MAX for m in res.membranes.values())
    flt = interpreter.run1(api.convert(api.load(path)), x, "float64")
    assert (res.output.argmax(1) == flt.argmax(1)).mean() >= 0.9


def test_a_fixed_point_network_computes_the_same_integers_on_lavas_float_models(onnx_model):
    """Weight exponents apply on the floating_pt tag too (neurocompile maps lava's Dense and Conv float models)."""
    path, shape = onnx_model("resnet", "cqrelu", "bn", 4)
    q = api.convert(api.load(path), target="lava-sim", fixed_point=True)
    assert any(r["exponent"] > 0 for r in q.meta["fixed_point_report"])
    x = np.random.default_rng(5).uniform(0, 1, (2, *shape))
    np.testing.assert_array_equal(api.compile(q, "lava-sim").run(x).per_step, api.simulate(q, x, exact=True).per_step)
