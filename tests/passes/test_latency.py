"""The latency mode: a CIF wake phase T_wake < L with graded spikes stays exact, in fewer steps.

Each neuron of rate r = L / T_wake fires at θ / r and its count may gain r per wake step, so after T_wake steps
its count is the one an L-step wake phase gives (science.md's invariant with Σx over T_wake steps)."""
import subprocess
import sys

import numpy as np
import pytest

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.errors import ConversionError
from tests.conftest import ort_run

N = 64


def _inputs(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 1.5, (N, *shape)).astype(np.float32)


def _first_exact_step(res, ann, tol=1e-9):
    err = np.abs(res.per_step - ann[None]).reshape(res.steps, -1).max(1)
    bad = np.nonzero(err > tol * np.abs(ann).max())[0]
    return 1 if len(bad) == 0 else int(bad[-1]) + 2


@pytest.mark.parametrize("levels,bits,expected", [(8, 24, (1, 8)), (8, 4, (2, 7)), (8, 3, (4, 3)), (8, 2, (8, 1)),
                                                   (4, 24, (1, 4)), (16, 5, (2, 15)), (6, 3, (2, 3))])
def test_latency_options_fit_the_payload(levels, bits, expected):
    t_wake, gamma = api.latency_options(levels, bits)
    assert (t_wake, gamma) == expected
    assert levels % t_wake == 0 and gamma <= 2 ** (bits - 1) - 1


def test_latency_options_refuse_a_payload_without_levels():
    with pytest.raises(ConversionError, match="at least 2 bits"):
        api.latency_options(8, 1)


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
@pytest.mark.parametrize("delay", [0, 1])
def test_one_wake_step_with_gamma_L_is_exact_after_the_path_delay(onnx_model, arch, delay):
    """T_wake = 1, gamma = L: each layer gets its whole input in one step and sends its whole count at once, so the
    readout is exact at T = 1 + delay x depth (the schedule's proved settling step), max pooling and residual merges
    included."""
    path, shape = onnx_model(arch, "cqrelu", "bn", 8)
    t_wake, gamma = api.latency_options(8)
    snn = api.convert(api.load(path), t_wake=t_wake, gamma=gamma, synapse_delay=delay)
    s = snn.schedule
    assert (s.t_wake, s.steps) == (1, 1 + delay * s.depth)
    x = _inputs(shape)
    res = api.simulate(snn, x, steps=s.steps + 4, exact=True)
    ann64 = interpreter.run1(snn, x, "float64")
    assert _first_exact_step(res, ann64) <= s.steps
    assert np.abs(res.per_step[s.steps - 1] - ann64).max() <= 1e-9 * np.abs(ann64).max()
    rep = api.compare(res.output, ort_run(path, x))
    assert rep["argmax_agreement"] == 1.0


@pytest.mark.parametrize("arch", ["vgg", "resnet"])
@pytest.mark.parametrize("t_wake", [1, 2, 4])
@pytest.mark.parametrize("gamma", [1, 2, 8])
def test_short_wake_phase_is_exact_by_the_predicted_step(onnx_model, arch, t_wake, gamma):
    path, shape = onnx_model(arch, "cqrelu", "bn", 8)
    snn = api.convert(api.load(path), t_wake=t_wake, gamma=gamma, synapse_delay=1)
    assert {n.attrs.get("rate") for n in snn.nodes.values() if n.op == "CIF"} == {8 // t_wake}
    x = _inputs(shape, 1)
    res = api.simulate(snn, x, exact=True)
    ann64 = interpreter.run1(snn, x, "float64")
    assert res.steps == snn.schedule.predicted_settle
    assert np.abs(res.output - ann64).max() <= 1e-9 * np.abs(ann64).max()


def test_the_latency_mode_is_faster_than_the_default(onnx_model):
    path, shape = onnx_model("vgg", "cqrelu", "bn", 8)
    x = _inputs(shape, 2)
    default = api.convert(api.load(path), synapse_delay=1)
    fast = api.convert(api.load(path), synapse_delay=1, **dict(zip(("t_wake", "gamma"), api.latency_options(8))))
    ann64 = interpreter.run1(default, x, "float64")
    first = [_first_exact_step(api.simulate(g, x, steps=default.schedule.steps, exact=True), ann64) for g in (default, fast)]
    assert first[1] == 1 + fast.schedule.depth < first[0]


def test_wake_phase_must_divide_the_levels(onnx_model):
    path, _ = onnx_model("mlp", "cqrelu", "bn", 8)
    with pytest.raises(ConversionError, match=r"does not divide the levels L=8.*\[1, 2, 4, 8\]"):
        api.convert(api.load(path), t_wake=3)


@pytest.mark.parametrize("options,match", [(dict(neuron="if", t_wake=2), "IF baseline has no wake phase")])
def test_short_wake_phase_refusals(onnx_model, options, match):  # fixed point takes a short wake phase (issue 28)
    path, _ = onnx_model("mlp", "cqrelu", "bn", 8)
    with pytest.raises(ConversionError, match=match):
        api.convert(api.load(path), **options)


@pytest.mark.slow
def test_lava_runs_the_latency_mode_like_the_reference(onnx_model):
    path, shape = onnx_model("resnet", "cqrelu", "bn", 8)
    snn = api.convert(api.load(path), target="lava-sim", t_wake=1, gamma=8)
    x = np.random.default_rng(5).uniform(0, 1.5, (3, *shape)).astype(np.float32)
    ref = api.simulate(snn, x, exact=True)
    res = api.compile(snn, "lava-sim").run(x)
    assert np.abs(res.per_step - ref.per_step).max() <= 1e-6 * np.abs(ref.per_step).max()
    assert res.spikes == ref.spikes


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "neurocompile.cli", *args], capture_output=True, text=True, timeout=300)


def test_cli_latency_min_runs_in_one_step_and_says_so():
    r = _cli("examples/digits_cqrelu.onnx", "--input", "examples/digits_test.npy", "--latency", "min")
    assert r.returncode == 0, r.stderr
    assert "T=1 (wake 1, sleep 0)" in r.stdout and "gamma=8" in r.stdout
    assert "argmax agreement 100.0 %" in r.stdout


@pytest.mark.parametrize("args,match", [(["--max-payload-bits", "4"], "applies to --latency min"),
                                        (["--latency", "min", "--gamma", "2"], "chooses --t-wake and --gamma"),
                                        (["--latency", "min", "--neuron", "if"], "drop --neuron if")])
def test_cli_latency_option_refusals(args, match):
    r = _cli("examples/digits_cqrelu.onnx", *args)
    assert r.returncode != 0 and match in r.stderr and "Traceback" not in r.stderr
