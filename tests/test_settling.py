"""A run at the default T reports the settled network, never an unsettled one (issue 26 §4).

The default T is the schedule's *predicted* settling step (passes/schedule_wake_sleep.settle_margin, measured, not
proved). The bundled digits CNN with its last conv's weights times 1e20 has not settled by it (quiescent at step 17,
T=16): before, `neurocompile run` reported its 0.031 error vs the ANN as if the conversion were lossy. Now the schedule
carries a proved bound (``settle_bound``), the reference simulator says which samples are still spiking at the last
step (``ReferenceSimulator.unsettled``), and the CLI extends a default-T run to the bound where one is, or says so
where the user's --steps ends it early."""
import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.cli.settling import _run_settled
from neurocompile.ir import Graph
from neurocompile.ir.schedule import WakeSleepSchedule
from neurocompile.targets import SimResult
from tests.test_cli import EXAMPLE, cli
from tests.test_extreme_scale import _scaled

X = np.load(Path(EXAMPLE).with_name("digits_test.npy"))[:12]
SETTLING = ("settling   not settled at the predicted T=16 (12 sample(s) still spiking): ran T=29, the proven settling "
            "bound")


def _lines(out: str, label: str) -> list[str]:
    """The report's lines under ``label``."""
    return [line for line in out.splitlines() if line.startswith(label + " ")]


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    """The digits CNN, last conv's weights times 1e20 (tests/test_extreme_scale.py's builder), and its inputs."""
    tmp = tmp_path_factory.mktemp("settling")
    np.save(tmp / "x.npy", X)
    return _scaled(tmp, 1e20), tmp / "x.npy"


# -- the proved bound ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw, bound", [({}, 29), ({"synapse_delay": 1}, 34), ({"gamma": 4}, 11),
                                       ({"t_wake": 1, "gamma": 8}, 1), ({"neuron": "if"}, None)])
def test_the_settle_bound_of_the_digits_cnn(kw, bound):
    """Three CIF layers of L = 8 behind five synaptic layers: T_wake + 5 d + 3 (ceil(L / γ) - 1); with T_wake = 1 and
    γ = L the one-step special case's 1 + path delay; the IF baseline never settles (no bound). The default T stays
    the prediction."""
    s = api.convert(api.load(EXAMPLE), **kw).schedule
    assert s.settle_bound == bound
    assert s.steps == s.predicted_settle


@pytest.mark.parametrize("arch, levels, kw", [("mlp", 8, {}), ("vgg", 4, {"synapse_delay": 1}),
                                              ("resnet", 4, {"gamma": 2}),
                                              ("resnet", 4, {"synapse_delay": 1, "balance": False}),
                                              ("vgg", 8, {"t_wake": 2, "gamma": 4})])
def test_random_cqrelu_nets_settle_by_the_bound(onnx_model, arch, levels, kw):
    """Run step by step in float64 well past the bound with early stop: quiescent no later than the bound, and the
    readout after step bound - 1 is already the float64 interpreter's."""
    path, shape = onnx_model(arch, "cqrelu", "bn", levels)
    snn = api.convert(api.load(path), **kw)
    s = snn.schedule
    x = np.random.default_rng(1).uniform(0, 1.5, (16, *shape)).astype(np.float32)
    T = s.settle_bound + s.max_delay + 8
    res = api.simulate(snn, x, steps=T, early_stop=True, exact=True)
    assert res.quiescent_at is not None and res.quiescent_at <= s.settle_bound
    ann = interpreter.run1(snn, x, "float64")
    assert np.abs(res.per_step[s.settle_bound - 1] - ann).max() <= 1e-9 * np.abs(ann).max()


def test_the_1e20_net_settles_after_its_prediction_and_before_its_bound(huge):
    snn = api.convert(api.load(huge[0]))
    s = snn.schedule
    early = api.simulate(snn, X, steps=s.settle_bound, early_stop=True, exact=True)
    assert s.predicted_settle < early.quiescent_at <= s.settle_bound


def test_the_schedule_checks_and_saves_its_bound(tmp_path):
    snn = api.convert(api.load(EXAMPLE))
    snn.save(tmp_path / "snn")
    assert Graph.load(tmp_path / "snn").schedule.settle_bound == 29
    for bad in (0, -3, True, 2.5):
        with pytest.raises(ValueError, match="settle_bound"):
            WakeSleepSchedule(t_wake=8, steps=16, settle_bound=bad).check()
    WakeSleepSchedule(t_wake=8, steps=16, settle_bound=None).check()  # an IR saved before the bound existed


# -- the simulator names the samples still spiking ----------------------------------------------------------------
def test_both_simulator_modes_name_the_same_unsettled_samples(huge):
    """The count domain (exact) and the step mode (float64, in batches of 5: indices offset) agree per sample, at the
    predicted T (every sample still spiking), one step later (some) and at the bound (none)."""
    snn = api.convert(api.load(huge[0]))
    exact, step = api.compile(snn, exact=True), api.compile(snn, dtype="float64")
    seen = []
    for T in (16, 17, 29):
        exact.run(X, steps=T)
        step.run(X, steps=T, batch=5)
        assert exact.unsettled == step.unsettled is not None
        seen.append(len(exact.unsettled))
    assert seen[0] == len(X) and seen[-1] == 0


def test_networks_that_do_not_settle_report_none():
    """The IF baseline never settles and an unknown is not an empty list."""
    sim = api.compile(api.convert(api.load(EXAMPLE), neuron="if"))
    sim.run(X)
    assert sim.unsettled is None


# -- the CLI ------------------------------------------------------------------------------------------------------
def test_cli_extends_a_default_T_run_to_the_proven_bound(huge, tmp_path):
    """Before: T=16, max error 0.031 vs the ANN reported as the conversion's. After: run to T=29, said in one line;
    the readout equals the float64 interpreter's, and onnxruntime's outside boundary cases within float32 rounding."""
    path, xs = huge
    out = tmp_path / "out.json"
    r = cli(path, "--input", xs, "--exact", "--json", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert SETTLING in r.stdout.splitlines() and not _lines(r.stdout, "unsettled")
    doc = json.loads(out.read_text())
    assert doc["steps"] == 29 and doc["predicted_steps"] == 16 and doc["settle_bound"] == 29
    assert doc["unsettled_at_predicted"] == list(range(len(X))) and doc["unsettled_samples"] == []
    snn, ort = np.array(doc["outputs"]), np.array(doc["ann_outputs"])
    ann = interpreter.run1(api.ann_graph(api.load(path)), X, "float64")
    assert np.abs(snn - ann).max() <= 1e-9 * np.abs(ann).max()
    inside = set(doc["boundary_cases"]["samples"])
    keep = [i for i in range(len(X)) if i not in inside]
    assert np.abs(snn[keep] - ort[keep]).max() <= 1e-5 * np.abs(ort).max()


def test_cli_extends_in_float32_and_with_early_stop_too(huge, tmp_path):
    path, xs = huge
    for extra in ([], ["--early-stop"]):
        out = tmp_path / "out.json"
        r = cli(path, "--input", xs, "--json", out, "--quiet", *extra)
        assert r.returncode == 0, r.stderr
        doc = json.loads(out.read_text())
        assert SETTLING in r.stdout and doc["steps"] == 29 and doc["unsettled_samples"] == []
        ann = interpreter.run1(api.ann_graph(api.load(path)), X, "float64")
        assert np.abs(np.array(doc["outputs"]) - ann).max() <= 1e-4 * np.abs(ann).max()  # float32 rounding


def test_cli_bundled_model_is_unchanged(tmp_path):
    out = tmp_path / "out.json"
    np.save(tmp_path / "x.npy", X)
    r = cli(EXAMPLE, "--input", tmp_path / "x.npy", "--exact", "--json", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "T=16 (wake 8, sleep 8)" in r.stdout
    assert not _lines(r.stdout, "settling") and not _lines(r.stdout, "unsettled")
    doc = json.loads(out.read_text())
    assert doc["steps"] == 16 and doc["unsettled_at_predicted"] == [] and doc["unsettled_samples"] == []


def test_cli_steps_given_is_not_extended_but_says_unsettled(huge, tmp_path):
    path, xs = huge
    out = tmp_path / "out.json"
    r = cli(path, "--input", xs, "--exact", "--steps", 16, "--json", out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert not _lines(r.stdout, "settling")
    assert ("unsettled  12 sample(s) still spiking at T=16 (0, 1, 2, 3, 4, 5, 6, 7, ...): their readout is not final "
            "yet, so their error vs the ANN is not a conversion error (the proven settling bound is T=29)") in r.stdout
    doc = json.loads(out.read_text())
    assert doc["steps"] == 16 and doc["unsettled_samples"] == list(range(len(X)))
    assert doc["unsettled_at_predicted"] is None


class _Lava:
    """A stand-in for lava-sim's executable: records the T it runs (Lava reports no quiescence)."""

    def __init__(self):
        self.runs = []

    def run(self, x, steps=None, early_stop=False, progress=None):
        self.runs.append(steps)
        return SimResult(outputs={"y": np.zeros((len(x), 10))}, steps=steps, t_wake=8)


@pytest.mark.parametrize("model", ["huge", "bundled"])
def test_lava_sim_decides_T_with_a_reference_run_first(huge, model):
    """On lava-sim the reference (exact mode) runs the predicted T first; Lava then runs once, at the proven bound only
    where a sample has not settled by the prediction (T=21 with Lava's one step of delay per layer)."""
    snn = api.convert(api.load(huge[0] if model == "huge" else EXAMPLE), target="lava-sim")
    s = snn.schedule
    assert (s.steps, s.settle_bound) == (21, 34)
    lava = _Lava()
    res, settle = _run_settled(argparse.Namespace(target="lava-sim", quiet=True, early_stop=False), snn, lava, X,
                               s.steps, s.settle_bound)
    assert lava.runs == ([34] if model == "huge" else [21]) and res.steps == lava.runs[0]
    assert settle["unsettled_samples"] == []  # at the bound by proof; at 21 by the reference run
    assert bool(settle["unsettled_at_predicted"]) == (model == "huge")  # [] for the bundled net: checked, all settled


def test_evaluate_names_samples_unsettled_at_its_last_step(tmp_path):
    """evaluate at the predicted T of the 1e20 net: the samples still spiking at T are named with the proven bound
    (their error is not the conversion's); at the bound there are none and the SNN equals the ANN."""
    from neurocompile.analysis.evaluate import evaluate

    model = _scaled(tmp_path, 1e20)
    x = np.load(Path(EXAMPLE).parent / "digits_test.npy")[:12]
    ev = evaluate(model, x, synops=False)
    bound = api.convert(api.load(model)).schedule.settle_bound
    assert ev.steps < bound and any(f"the proven settling bound is T={bound}" in n for n in ev.notes), ev.notes
    settled = evaluate(model, x, steps=bound, synops=False)
    assert not any("not settled" in n for n in settled.notes) and settled.first_exact_step is not None


def test_the_latency_mode_at_its_proven_T_names_no_unsettled_sample(tmp_path):
    """--latency min runs the digits net at T=1 on the reference: every neuron still sends at that step (all spikes
    come at once), but T=1 is the proven settling bound, so the readout is final and no sample is called unsettled."""
    r = cli(EXAMPLE, "--latency", "min", "--json", tmp_path / "r.json", "--quiet")
    doc = json.loads((tmp_path / "r.json").read_text())
    assert r.returncode == 0 and doc["steps"] == doc["settle_bound"] == 1, r.stderr
    assert doc["unsettled_samples"] == [] and "unsettled" not in r.stdout


def test_evaluate_at_the_proven_T_of_the_latency_mode_notes_no_unsettled_sample():
    from neurocompile.analysis.evaluate import evaluate

    x = np.load(Path(EXAMPLE).parent / "digits_test.npy")[:8]
    ev = evaluate(EXAMPLE, x, t_wake=1, gamma=8, synops=False)
    assert ev.steps == 1 and not any("had not settled" in n for n in ev.notes), ev.notes
