"""The exact mode's count-domain executor (targets/reference/certified.py): float32 with every spike decision proved,
or made in float64. Checked against the float64 step simulator (dtype float64), which makes every decision in float64:
same readout at every step (to float64 summation rounding) and the same spike counts."""
import numpy as np
import pytest
import torch
import torch.nn as nn

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.ir import neurons
from neurocompile.targets.reference.certified import Run
from neurocompile.targets.reference.simulator import CERTIFIED_PRECISION, ReferenceSimulator
from tests.models import export, make_act


def _pair(snn, x):
    """(exact mode, float64 throughout) on the same input, with the exact simulator (its plan, its proof counts)."""
    sim = api.compile(snn, "reference", exact=True)
    return sim.run(x), ReferenceSimulator(snn, dtype="float64").run(x), sim


def _same(a, b):
    assert a.precision == CERTIFIED_PRECISION
    scale = max(np.abs(b.per_step).max(), 1e-12)
    np.testing.assert_allclose(a.per_step, b.per_step, rtol=0, atol=1e-12 * scale)
    assert a.spikes == b.spikes


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
@pytest.mark.parametrize("variant", ["cif", "gamma2", "if", "latency", "lava-delays"])
def test_exact_mode_gives_the_float64_numbers(onnx_model, arch, variant):
    """MLP, VGG with lateral-inhibition max pooling, ResNet with identity and projection shortcuts; graded spikes, the
    IF baseline, the latency mode (T_wake = 1, gamma = L: one graded spike carries a whole count) and Lava's delays."""
    path, shape = onnx_model(arch, "cqrelu", "bn", 4)
    opts = {"cif": {}, "gamma2": {"gamma": 2}, "if": {"neuron": "if"}, "latency": {"t_wake": 1, "gamma": 4},
            "lava-delays": {"target": "lava-sim"}}[variant]
    snn = api.convert(api.load(path), **opts)
    x = np.random.default_rng(3).uniform(0, 1.5, (24, *shape)).astype(np.float32)
    a, b, sim = _pair(snn, x)
    _same(a, b)
    modes = {k: v.mode for k, v in sim._plan(None).sinks.items()}
    assert "split" in modes.values() and sim.proof["decisions"] > 0
    if arch == "vgg":
        assert "pool" in modes.values()  # max pooling of counts is exact: the layers after it split too


def test_exact_mode_decides_where_float32_cannot(tmp_path):
    """A layer whose input lies 1e-9 below an integer: float32 rounds its weights onto the integer and sends one
    spike too many; the exact mode sees the close call and makes the decision from float64 values."""
    model = nn.Sequential(nn.Linear(2, 2), make_act("cqrelu", 8, 1.0), nn.Linear(2, 1), make_act("cqrelu", 8, 1.0),
                          nn.Linear(1, 1))
    snn = api.convert(api.load(export(model, (2,), tmp_path / "m.onnx", "folded")))
    dense = [n for n in snn.topo() if n.op == "Dense"]
    cif = [n for n in snn.topo() if n.op == "CIF"]
    th1, th2 = cif[0].attrs["threshold"], cif[1].attrs["threshold"]
    dense[0].params.update(weight=np.eye(2) * th1, bias=np.zeros(2))  # counts 1, 2, ..., 8 for x = (1, 1)
    w = (3 - 1e-9) / 16 * th2 / th1  # after 8 wake steps X = 16 w θ1/θ2 = 3 - 1e-9: floor 2
    dense[1].params.update(weight=np.array([[w, w]]), bias=np.zeros(1))
    dense[2].params.update(weight=np.ones((1, 1)), bias=np.zeros(1))
    x = np.ones((1, 2), np.float32)
    a, b, sim = _pair(snn, x)
    _same(a, b)
    fast = api.compile(snn, "reference").run(x)
    counts = {k: v["pos"] - v["neg"] for k, v in a.spikes.items()}
    fast_counts = {k: v["pos"] - v["neg"] for k, v in fast.spikes.items()}
    assert counts[cif[1].name] == 2 and fast_counts[cif[1].name] == 3  # float32 is wrong here, the exact mode not
    assert sim.proof["float64 level 1"] >= 1
    ann = interpreter.run1(snn, x, "float64")
    np.testing.assert_allclose(a.output, ann, rtol=1e-12)


def test_close_calls_are_made_again_in_float64():
    """_certify: a float32 value within delta of an integer takes the floor of its float64 value; others keep theirs."""
    run = Run.__new__(Run)
    run.N, run.proof = 2, {"decisions": 0, "float64 level 1": 0, "float64 level 2": 0}
    X = torch.tensor([[1.0, 2.5], [0.99999994, 3.25]], dtype=torch.float32)
    exact = torch.tensor([[1 - 1e-9, 2.5], [1 + 1e-9, 3.25]], dtype=torch.float64)
    F = run._certify(X.clone(), torch.empty_like(X), 1e-6, lambda idx: exact[idx], None)
    assert F.tolist() == [[0.0, 2.0], [1.0, 3.0]] and run.proof["float64 level 1"] == 2


def test_count_domain_rules_are_the_step_rules():
    """cif_count_step / if_count_step on floor(X_t) give the counts cif_step / if_step give on the currents (dyadic
    currents: every sum exact, so the two forms must agree to the spike)."""
    rng = np.random.default_rng(0)
    for gamma, theta, shift in [(1, 1.0, 0.0), (2, 0.5, 0.0), (3, 1.0, 0.5)]:
        x = rng.integers(-6, 14, (40, 64)) / 8.0  # T x neurons
        m, S = np.full(64, shift * theta), np.zeros(64)
        C = np.zeros(64)
        cum = np.zeros(64)
        for t, xt in enumerate(x):
            wake = min(t + 1, 8)
            _, m, S = neurons.cif_step(m, S, xt, theta, wake, gamma)
            cum = cum + xt
            C = neurons.cif_count_step(C, np.floor(cum / theta + shift), wake, gamma)
            assert np.array_equal(C, S)
        m, S, C, cum = np.zeros(64), np.zeros(64), np.zeros(64), np.zeros(64)
        for xt in x:
            s, m = neurons.if_step(m, xt, theta)
            S = S + s
            cum = cum + xt
            C = neurons.if_count_step(C, np.floor(cum / theta))
            assert np.array_equal(C, S)


def test_exact_mode_keeps_float64_where_the_count_domain_does_not_apply(onnx_model):
    """Early stop and per-layer records step in float64 (same numbers); so do networks of LIF neurons."""
    path, shape = onnx_model("mlp", "cqrelu", "bn", 4)
    snn = api.convert(api.load(path))
    x = np.random.default_rng(5).uniform(0, 1, (8, *shape)).astype(np.float32)
    sim = api.compile(snn, "reference", exact=True)
    assert sim.run(x, early_stop=True).precision == "float64 (exact)"
    assert sim.run(x, record_layers=True).precision == "float64 (exact)"
    np.testing.assert_allclose(sim.run(x).output, sim.run(x, early_stop=True).output, rtol=1e-12)
