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


@pytest.mark.parametrize("arch", ["vgg", "resnet"])
@pytest.mark.parametrize("most", [0.5, 0.08])
def test_exact_mode_maps_the_changes_of_the_counts_event_by_event(onnx_model, monkeypatch, arch, most):
    """Each step's map summed from the last one's and the event-driven map of the counts' change (certified.py's
    _map_changes; at 0.08 some steps too dense run the dense map in between): the same numbers as the dense maps, bit
    for bit, and the float64 simulator's."""
    from neurocompile.ir import fused_cif
    from neurocompile.targets.reference import certified_plan, event_driven

    assert fused_cif.load() is not None, fused_cif.why_not()
    path, shape = onnx_model(arch, "cqrelu", "bn", 4)
    snn = api.convert(api.load(path))
    x = np.random.default_rng(5).uniform(0, 1.5, (24, *shape)).astype(np.float32)
    monkeypatch.setattr(event_driven, "most_nonzero", lambda ew: most)
    summed, changes = [], Run._map_changes
    monkeypatch.setattr(Run, "_map_changes", lambda self, *a: (lambda o: summed.append(len(self.summed)) or o)(
        changes(self, *a)))
    a, b, sim = _pair(snn, x)
    _same(a, b)
    assert summed and max(summed) > 0, "no map was summed from changes"
    monkeypatch.setattr(certified_plan, "event_weights", lambda *args: None)
    dense = api.compile(snn, "reference", exact=True).run(x)
    np.testing.assert_array_equal(a.per_step, dense.per_step)
    assert a.spikes == dense.spikes


@pytest.mark.parametrize("geometry", [
    dict(k=(3, 3), stride=(1, 1), pads=(1, 1), dilation=(1, 1), out=(7, 6)),
    dict(k=(3, 3), stride=(2, 2), pads=(1, 1), dilation=(1, 1), out=(4, 3)),
    dict(k=(3, 2), stride=(2, 1), pads=(0, 1), dilation=(1, 1), out=(4, 7)),   # asymmetric: trailing pads in `out`
    dict(k=(3, 3), stride=(1, 2), pads=(2, 2), dilation=(2, 1), out=(7, 4)),
])
def test_remainder_at_is_the_float64_convolution(geometry):
    """Run.remainder_at (level 1 of a summed branch): the remainder piece's map at given outputs, read from the input
    patches, is the float64 convolution's value there."""
    from types import SimpleNamespace

    from neurocompile.targets.reference.event_driven import EventWeights

    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (Ho, Wo) = (geometry[k] for k in ("k", "stride", "pads", "dilation", "out"))
    g = torch.Generator().manual_seed(0)
    S = torch.randint(0, 9, (3, 5, 7, 6), generator=g).float()
    lo = torch.randn(4, 5, kh, kw, generator=g) * 1e-4
    H, W = S.shape[2:]
    pad_b, pad_r = (Ho - 1) * sh + (kh - 1) * dh + 1 - H - ph, (Wo - 1) * sw + (kw - 1) * dw + 1 - W - pw
    xp = torch.nn.functional.pad(S.double(), (pw, max(pad_r, 0), ph, max(pad_b, 0)))
    want = torch.nn.functional.conv2d(xp, lo.double(), None, (sh, sw), 0, (dh, dw))[:, :, :Ho, :Wo]
    run = Run.__new__(Run)
    run.p = SimpleNamespace(g=SimpleNamespace(shapes={"y": (4, Ho, Wo)}))
    b = SimpleNamespace(pieces=[lo * 0, lo], syn=SimpleNamespace(output="y"), lo64=None,
                        events=EventWeights(lo, (sh, sw), (ph, pw), (dh, dw)))
    idx = tuple(k.reshape(-1) for k in torch.meshgrid(*(torch.arange(s) for s in want.shape), indexing="ij"))
    got = run.remainder_at(b, S, idx).reshape(want.shape)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12, atol=1e-18)
