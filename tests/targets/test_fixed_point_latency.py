"""The latency mode in fixed point: a short CIF wake phase (rate r = L / T_wake) with graded spikes of up to γ per step,
in integers. Each neuron stores the threshold r * θ_int, so its firing threshold θ_int = θ / r is an integer and
membrane, spikes and count stay exact; the count's range [0, L] and every state are bounded within 24 bits.
Checked against independent references: the float64 interpreter of the fixed-point graph (its ANN meaning, which the
reference simulator must equal exactly) and Lava's fixed_pt models (bit for bit with the reference simulator)."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from neurocompile import api
from neurocompile.errors import ConversionError
from neurocompile.ir import interpreter
from neurocompile.passes.quantize_fixed_point import STATE_MAX
from tests import models
from tests.targets.test_fixed_point import _integer_formats
from tests.test_cli import cli

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
DIGITS = os.path.join(EXAMPLES, "digits_cqrelu.onnx")


def _digits(n):
    return np.load(os.path.join(EXAMPLES, "digits_test.npy"))[:n]


def _graded_integers(q, rate, gamma):
    """The fixed-point formats, and every CIF neuron's threshold a multiple of its rate (an integer θ / rate)."""
    _integer_formats(q)
    cifs = [n for n in q.nodes.values() if n.op == "CIF"]
    assert cifs
    for n in cifs:
        assert n.attrs["rate"] == rate and n.attrs["gamma"] == gamma
        assert float(n.attrs["threshold"]) % rate == 0, n.name


def test_digits_latency_min_in_fixed_point_is_the_integer_graphs_meaning_in_one_step():
    """T_wake = 1, γ = L = 8 on the reference target (no delay): T = 1, and the readout of 100 digits equals the
    float64 interpreter of the quantized graph exactly; every state stays below 2**23; argmax as the ANN's."""
    t_wake, gamma = api.latency_options(8)
    assert (t_wake, gamma) == (1, 8)
    q = api.convert(api.load(DIGITS), fixed_point=True, t_wake=t_wake, gamma=gamma)
    assert q.schedule.steps == 1 and q.schedule.t_wake == 1
    _graded_integers(q, 8, 8)
    x = _digits(100)
    res = api.simulate(q, x, exact=True, record_layers=True)
    np.testing.assert_array_equal(res.output, interpreter.run1(q, x, "float64"))
    assert all(np.abs(m).max() < STATE_MAX for m in res.membranes.values())
    ann, _ = api.ann_outputs(DIGITS, x)
    assert (res.output.argmax(1) == ann.argmax(1)).mean() >= 0.98
    assert np.abs(res.output - ann).max() <= 0.1 * np.abs(ann).max()  # 8-bit weights: lossy, bounded


def test_digits_latency_min_on_lava_fixed_pt_is_exact_at_T6_bit_for_bit():
    """The issue's done-when: on lava-sim (one step of delay per synapse, 5 synaptic layers) T = 6; Lava's fixed_pt
    models give the reference simulator's readout at every step and its spikes per layer, and the final readout is
    the quantized graph's meaning (nothing reaches the readout before step 6)."""
    q = api.convert(api.load(DIGITS), target="lava-sim", fixed_point=True, t_wake=1, gamma=8)
    assert q.schedule.steps == 6
    x = _digits(4)
    ref = api.simulate(q, x, exact=True)
    res = api.compile(q, "lava-sim", fixed_point=True).run(x)
    assert res.steps == ref.steps == 6
    np.testing.assert_array_equal(res.per_step, ref.per_step)
    assert res.spikes == ref.spikes and all(v["pos"] > 0 for v in ref.spikes.values())
    exact = interpreter.run1(q, x, "float64")
    np.testing.assert_array_equal(res.output, exact)
    assert not np.array_equal(res.per_step[-2], exact)  # exact at step 6, not before


@pytest.mark.parametrize("t_wake,gamma", [(2, 4), (4, 2)])
def test_a_short_wake_phase_in_fixed_point_on_a_resnet(onnx_model, t_wake, gamma):
    """T_wake a divisor of L = 8 (rate 4 and 2) through identity shortcuts and their integer gains: the reference
    simulator equals the interpreter, Lava's fixed_pt models equal the reference bit for bit."""
    path, shape = onnx_model("resnet", "cqrelu", "bn", 8)
    q = api.convert(api.load(path), target="lava-sim", fixed_point=True, t_wake=t_wake, gamma=gamma)
    assert q.schedule.t_wake == t_wake
    _graded_integers(q, 8 // t_wake, gamma)
    x = np.random.default_rng(7).uniform(0, 1, (3, *shape)).astype(np.float32)
    ref = api.simulate(q, x, exact=True)
    np.testing.assert_array_equal(ref.output, interpreter.run1(q, x, "float64"))
    res = api.compile(q, "lava-sim", fixed_point=True).run(x)
    np.testing.assert_array_equal(res.per_step, ref.per_step)
    assert res.spikes == ref.spikes
    ann, _ = api.ann_outputs(path, x)
    assert np.abs(ref.output - ann).max() <= 0.05 * np.abs(ann).max()


def test_a_graded_current_that_could_overflow_24_bits_is_rescaled(tmp_path):
    """8,192 saturated neurons into one readout of positive weights: with T_wake = L a step's current carries one
    spike per input and fits 24 bits; with T_wake = 1 it carries the whole count (up to γ = L = 8 per input), which
    would not, so the range analysis halves that block's unit. An all-ones input reaches the worst case and stays
    below 2**23, equal to the interpreter."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8192), models.ChainCQReLU(8, 1.0), nn.Linear(8192, 4))
    with torch.no_grad():
        net[1].weight.copy_(torch.rand(8192, 64) * 0.1)
        net[3].weight.copy_((torch.rand(4, 8192) * 0.5 + 0.5) * 0.01)
    path = models.export(net.eval(), (1, 8, 8), tmp_path / "wide.onnx")
    rescaled = {}
    for opts in ({}, {"t_wake": 1, "gamma": 8}):
        q = api.convert(api.load(path), fixed_point=True, **opts)
        rescaled[bool(opts)] = [r["rescaled"] for r in q.meta["fixed_point_report"] if r["op"] == "Dense"][-1]
    assert rescaled == {False: 0, True: 1}
    x = np.ones((2, 1, 8, 8), np.float32)
    res = api.simulate(q, x, record_layers=True, exact=True)
    assert all(np.abs(m).max() < STATE_MAX for m in res.membranes.values())
    assert res.layers and all(np.abs(v).max() == 8 for v in res.layers.values())  # every count reaches L at once
    np.testing.assert_array_equal(res.output, interpreter.run1(q, x, "float64"))


def test_a_payload_too_small_for_a_graded_spike_is_refused():
    with pytest.raises(ConversionError, match=r"at least 2 bits \(sign and one level\), got 1"):
        api.latency_options(8, 1)
    r = cli(DIGITS, "--fixed-point", "--latency", "min", "--max-payload-bits", "1")
    assert r.returncode == 1 and "at least 2 bits" in r.stderr and "Traceback" not in r.stderr
    assert r.stderr.strip().count("\n") == 0


def test_cli_lava_fixed_point_latency_min_runs_at_T6(tmp_path):
    np.save(tmp_path / "x.npy", _digits(8))
    r = cli(DIGITS, "--target", "lava-sim", "--fixed-point", "--latency", "min", "--input", tmp_path / "x.npy")
    assert r.returncode == 0, r.stderr
    assert "T=6 (wake 1, sleep 5)" in r.stdout and "gamma=8" in r.stdout
    assert "precision  integers (Lava fixed_pt, bit-accurate)" in r.stdout
    assert "argmax agreement 100.0 %" in r.stdout


def test_the_latency_artifact_verifies_on_lava_fixed_pt(tmp_path):
    """What --target loihi2 --latency min deploys (api.deploy_loihi2 exports, then verifies): an artifact converted
    to fixed point with T_wake = 1, γ = 8 is reproduced bit for bit by lava-sim's fixed_pt models."""
    out = tmp_path / "digits.h5"
    api.export(DIGITS, str(out), inputs=_digits(4), n_reference=4, target="lava-sim", fixed_point=True,
               t_wake=1, gamma=8)
    art = api.load(str(out))
    assert art.schedule.steps == 6 and art.meta["fixed_point"]
    v = api.verify(str(out), ("lava-sim",))
    assert v["ok"] and v["lava-sim"]["matches_export"] and v["lava-sim"]["max_rel_error_vs_export"] == 0


def test_cli_loihi2_latency_refusals(tmp_path):
    """--t-wake stays Loihi 2's own setting; --max-payload-bits needs --latency min; a converted artifact keeps its
    schedule. All usage errors (exit 2) before anything is written."""
    out = tmp_path / "d"
    for args, match in ((["--t-wake", "2"], "--t-wake cannot apply"),
                        (["--max-payload-bits", "4"], "applies to --latency min")):
        r = cli(DIGITS, "--target", "loihi2", "--artifacts", out, *args)
        assert r.returncode == 2 and match in r.stderr and "Traceback" not in r.stderr, r.stderr
    art = tmp_path / "net.h5"
    api.export(DIGITS, str(art), n_reference=2, target="lava-sim", fixed_point=True)
    r = cli(art, "--target", "loihi2", "--artifacts", out, "--latency", "min")
    assert r.returncode == 2 and "converted already" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()


def test_cli_loihi2_latency_min_verifies_its_artifact(tmp_path):
    """--target loihi2 --latency min (needs api.deploy_loihi2's t_wake and gamma): the artifact is converted with
    T_wake = 1, γ = 8 (T = 6 with Lava's delays) and lava-sim's fixed_pt models reproduce it bit for bit."""
    out = tmp_path / "d"
    r = cli(DIGITS, "--target", "loihi2", "--latency", "min", "--artifacts", out)
    assert r.returncode == 1 and "Loihi extension of Lava" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert "verified   lava-sim fixed_pt reproduces the exported readout" in r.stdout
    assert "(max rel. error 0)" in r.stdout and "argmax agreement" in r.stdout
    g = api.load(str(out / "digits_cqrelu.h5"))
    assert (g.schedule.steps, g.schedule.t_wake) == (6, 1) and g.meta["fixed_point"]
    assert {n.attrs["gamma"] for n in g.nodes.values() if n.op == "CIF"} == {8}


def test_evaluate_compares_fixed_point_latency_counts_with_their_levels():
    """evaluate's per-layer comparison (CASC's Fig. 4) in fixed point with T_wake = 1: every CIF count equals its ANN
    level (level = q L / A, A = ops level_value: amplitude 1 times rate 8) from step 1."""
    from neurocompile.analysis.evaluate import evaluate

    x = _digits(16)
    ev = evaluate(DIGITS, x, fixed_point=True, t_wake=1, gamma=8, synops=False)
    compared = [ly for ly in ev.layers if ly.compared]
    assert len(compared) == 3 and all(ly.settle_step == 1 and ly.more[-1] == ly.less[-1] == 0 for ly in compared)
