"""Reference simulator: CIF conversion is lossless at the default T (science.md section 1)."""
import numpy as np
import pytest

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.errors import TargetError
from tests.conftest import ort_run

N = 256


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1.5, (N, *shape)).astype(np.float32)


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
@pytest.mark.parametrize("levels", [2, 4, 8, 16])
def test_cif_is_lossless_at_default_T(onnx_model, arch, levels):
    path, shape = onnx_model(arch, "cqrelu", "bn", levels)
    snn = api.convert(api.load(path))
    x = _inputs(shape)
    res = api.simulate(snn, x, exact=True)
    ann64 = interpreter.run1(snn, x, "float64")
    scale = np.abs(ann64).max()
    # float64 SNN vs float64 interpreter: exact up to summation rounding
    assert np.abs(res.output - ann64).max() <= 1e-9 * scale
    # vs onnxruntime (float32) on the original file: the acceptance bound
    rep = api.compare(res.output, ort_run(path, x))
    assert rep["max_abs_error"] <= 1e-5 * rep["max_abs_logit"]
    assert rep["argmax_agreement"] == 1.0
    assert res.steps == snn.schedule.steps == snn.schedule.predicted_settle
    # and the first lossless step is within the target T <= L + 4
    err = np.abs(res.per_step - ann64).reshape(res.steps, -1).max(1)
    assert err[levels + 3] <= 1e-9 * scale


@pytest.mark.parametrize("arch", ["vgg", "resnet"])
def test_lossless_with_lava_delay_model(onnx_model, arch):
    """One step of delay per synaptic layer (what Lava does), merges balanced."""
    path, shape = onnx_model(arch, "cqrelu", "bn", 8)
    snn = api.convert(api.load(path), synapse_delay=1)
    s = snn.schedule
    from neurocompile.passes.schedule_wake_sleep import settle_margin

    n_neurons = sum(n.op == "CIF" for n in snn.nodes.values())
    assert s.steps == 8 + s.depth + settle_margin(8, n_neurons)  # T_wake + 1 step per synaptic layer + margin
    x = _inputs(shape, 1)
    res = api.simulate(snn, x, exact=True)
    ann64 = interpreter.run1(snn, x, "float64")
    assert np.abs(res.output - ann64).max() <= 1e-9 * np.abs(ann64).max()


def test_if_baseline_is_not_lossless(onnx_model):
    path, shape = onnx_model("vgg", "cqrelu", "bn", 8)
    x = _inputs(shape)
    ann = interpreter.run1(api.convert(api.load(path)), x, "float64")
    cif = api.simulate(api.convert(api.load(path)), x, exact=True)
    base = api.simulate(api.convert(api.load(path), neuron="if", steps=cif.steps), x, exact=True)
    assert np.abs(cif.output - ann).max() <= 1e-9 * np.abs(ann).max()
    assert np.abs(base.output - ann).max() > 1e-2 * np.abs(ann).max()
    assert all(v["neg"] == 0 for v in base.spikes.values())


def test_graded_spikes_settle_no_later(onnx_model):
    path, shape = onnx_model("resnet", "cqrelu", "bn", 8)
    x = _inputs(shape)
    ann = interpreter.run1(api.convert(api.load(path)), x, "float64")
    first = {}
    for gamma in (1, 4):
        res = api.simulate(api.convert(api.load(path), gamma=gamma, steps=24), x, exact=True)
        err = np.abs(res.per_step - ann).reshape(24, -1).max(1)
        first[gamma] = int(np.argmax(err <= 1e-9 * np.abs(ann).max()))
        assert err[-1] <= 1e-9 * np.abs(ann).max()
    assert first[4] <= first[1]


def test_early_stop_equals_full_run_and_records(onnx_model):
    path, shape = onnx_model("resnet", "cqrelu", "bn", 4)
    snn = api.convert(api.load(path), synapse_delay=1, steps=40)
    x = _inputs(shape)
    full = api.simulate(snn, x, exact=True)
    early = api.simulate(snn, x, early_stop=True, exact=True)
    assert early.quiescent_at is not None and early.quiescent_at < 40
    np.testing.assert_array_equal(early.output, full.output)
    np.testing.assert_array_equal(early.per_step, full.per_step)
    assert full.per_step.shape == (40, N, 10)
    assert set(full.spikes) == {n.name for n in snn.nodes.values() if n.op == "CIF"}
    assert all(v["pos"] > 0 for v in full.spikes.values())
    assert full.spikes == early.spikes


@pytest.mark.parametrize("early_stop", [False, True])
def test_layer_records_end_at_the_anns_quantized_levels(onnx_model, early_stop):
    """science.md: after settling, a CIF layer's count S = clip(floor(Σx/θ), 0, T_wake), i.e. the level its
    CQReLU gives; the records also add up to the spike totals."""
    path, shape = onnx_model("vgg", "cqrelu", "bn", 4)
    g = api.optimize(api.load(path))
    snn = api.convert(g)
    x = np.random.default_rng(3).uniform(0, 1, (8, *shape)).astype(np.float32)
    res = api.simulate(snn, x, record_layers=True, early_stop=early_stop, exact=True)
    acts = interpreter.run(snn, x, dtype="float64", keep=True)
    cif = [n for n in snn.topo() if n.op == "CIF"]
    assert set(res.layers) == {n.name for n in snn.topo() if n.op in ("CIF", "IF", "LIF")} and cif
    for n in cif:
        rec = res.layers[n.name]
        assert rec.shape == (res.steps, len(x), *snn.shapes[n.output])
        levels = acts[n.output] * n.attrs["levels"] / n.attrs["threshold"]  # the CQReLU level, 0..L
        np.testing.assert_allclose(rec[-1], levels, atol=1e-6)
        assert round(float(rec[-1].sum())) == res.spikes[n.name]["pos"] - res.spikes[n.name]["neg"]


def test_membrane_records_hold_what_each_layer_has_not_sent(onnx_model):
    """science.md: a CIF neuron ends with m = shift·θ + Σx - θ·S, and Σx = T_wake·z for its ANN input z once
    the network has settled: the residue per neuron that per-layer diagnosis reads."""
    path, shape = onnx_model("resnet", "cqrelu", "bn", 4)
    snn = api.convert(api.load(path))
    x = np.random.default_rng(4).uniform(0, 1, (8, *shape)).astype(np.float32)
    res = api.simulate(snn, x, record_layers=True, exact=True)
    acts = interpreter.run(snn, x, dtype="float64", keep=True)
    cif = [n for n in snn.topo() if n.op == "CIF"]
    assert set(res.membranes) == {n.name for n in cif}
    for n in cif:
        theta, S = n.attrs["threshold"], res.layers[n.name][-1]
        want = n.attrs.get("shift", 0.0) * theta + snn.schedule.t_wake * acts[n.inputs[0]] - theta * S
        np.testing.assert_allclose(res.membranes[n.name], want, atol=1e-9 * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
@pytest.mark.parametrize("target", ["reference", "lava-sim"])
def test_multi_step_mode_gives_the_step_modes_numbers(onnx_model, arch, target):
    """Layer by layer over all steps (batched connections) == step by step: readout at every step, spikes and
    per-layer records identical (the batched convolutions sum each sample as the per-step ones do)."""
    from neurocompile.targets.reference.simulator import ReferenceSimulator

    path, shape = onnx_model(arch, "cqrelu", "bn", 4)
    snn = api.convert(api.load(path), target=target)
    x = np.random.default_rng(11).uniform(0, 1, (16, *shape)).astype(np.float32)
    sim = ReferenceSimulator(snn, dtype="float64")
    a, b = sim.run(x, record_layers=True), sim.run(x, record_layers=True, multi_step=True)
    np.testing.assert_allclose(b.per_step, a.per_step, rtol=0, atol=1e-12 * np.abs(a.per_step).max())
    assert b.spikes == a.spikes and a.layers.keys() == b.layers.keys()
    for k in a.layers:
        np.testing.assert_array_equal(b.layers[k], a.layers[k])
    with pytest.raises(TargetError, match="cannot stop early"):
        sim.run(x, multi_step=True, early_stop=True)


def test_per_step_input_equals_the_held_input(onnx_model):
    """x of shape (N, T_x, ...) is the input of each step: the held input repeated over the wake steps gives the held
    input's numbers, step by step and layer by layer; a shape that fits neither form is refused."""
    from neurocompile.targets.reference.simulator import ReferenceSimulator

    path, shape = onnx_model("vgg", "cqrelu", "bn", 4)
    snn = api.convert(api.load(path))
    x = np.random.default_rng(12).uniform(0, 1, (6, *shape))
    frames = np.repeat(x[:, None], snn.schedule.t_wake, axis=1)
    sim = ReferenceSimulator(snn, dtype="float64")
    held = sim.run(x)
    for res in (sim.run(frames), sim.run(frames, multi_step=True), api.simulate(snn, frames, exact=True)):
        np.testing.assert_allclose(res.per_step, held.per_step, rtol=0, atol=1e-12 * np.abs(held.per_step).max())
        assert res.spikes == held.spikes
    late = frames.copy()
    late[:, -1] = 0  # the last wake step's input missing: another result
    assert sim.run(late).spikes != held.spikes
    with pytest.raises(TargetError, match="more than the run"):
        sim.run(np.repeat(x[:, None], snn.schedule.steps + 1, axis=1))
    with pytest.raises(TargetError, match="fits neither"):
        sim.run(x[:, :1])
