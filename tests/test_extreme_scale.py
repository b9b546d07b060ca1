"""A layer scaled by an extreme factor (issue 26 §4): the bundled digits CNN with one layer's weights times 1e20,
1e-20, 1e30 or 1e38, and a layer whose terms 1e20 apart cancel. Exact mode's spike decisions stay exact: it equals
the float64 step simulator at any T and the float64 interpreter once the network has settled, and it says which
samples have not settled by T (the default T is a prediction made for ordinary weights: these nets settle at step 17,
one step after it). Where float64 itself cannot add a layer's terms exactly, exact mode refuses the run; every sample
where the exact SNN and onnxruntime's float32 disagree is a boundary case; a float32 overflow is refused, never NaN."""
import json
from fractions import Fraction
from math import floor
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import helper, numpy_helper

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.analysis.boundary import find_boundary_cases
from neurocompile.errors import TargetError
from neurocompile.frontends.onnx.importer import import_model
from neurocompile.targets.reference.certified import TIE, Run, run_certified
from neurocompile.targets.reference.simulator import ReferenceSimulator
from tests.onnx_util import make_model, tensor
from tests.test_cli import EXAMPLE, cli

X = np.load(Path(EXAMPLE).with_name("digits_test.npy"))[:12]
T_SETTLED = 32  # every scaled net here has settled by then (the 1e20 one at step 17)


def _convs(model: onnx.ModelProto) -> list[str]:
    """The weight initializers of the Conv nodes, first to last."""
    return [n.input[1] for n in model.graph.node if n.op_type == "Conv"]


def _save(model: onnx.ModelProto, path: Path) -> str:
    onnx.save(model, str(path))
    return str(path)


def _scaled(tmp_path: Path, factor: float, which=(-1,)) -> str:
    """The digits CNN with the weights of its convs ``which`` (indices: -1 the last) multiplied by ``factor``."""
    m = onnx.load(EXAMPLE)
    names = {_convs(m)[i] for i in which}
    for i, t in enumerate(m.graph.initializer):
        if t.name in names:
            w = numpy_helper.to_array(t).astype(np.float64) * factor
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(w.astype(np.float32), t.name))
    return _save(m, tmp_path / f"scaled-{factor:g}.onnx")


def _cancelling(tmp_path: Path, which: int = -1, big: float = 1e20) -> str:
    """Conv ``which`` with +big and -big on input channel 0 at the left and right of each kernel's middle row: where
    the two inputs are equal they cancel exactly, leaving the ordinary terms, which float32 and float64 both lose."""
    m = onnx.load(EXAMPLE)
    conv = _convs(m)[which]
    for i, t in enumerate(m.graph.initializer):
        if t.name == conv:
            w = numpy_helper.to_array(t).copy()
            w[:, 0, 1, 0], w[:, 0, 1, 2] = big, -big
            m.graph.initializer[i].CopyFrom(numpy_helper.from_array(w, t.name))
    return _save(m, tmp_path / f"cancelling-{which}.onnx")


def _exact_levels(g, x: np.ndarray, conv: str) -> np.ndarray:
    """The levels of the quantizer after Conv ``conv`` computed exactly (Python integers and Fractions) from the float64
    interpreter's input levels to it (exact: multiples of 1/L, no earlier boundary case on these samples)."""
    vals = interpreter.run(g, x, "float64", keep=True)
    node = g.nodes[conv]
    q = next(n for n in g.topo() if n.inputs and n.inputs[0] == node.output)
    L, lam, shift = int(q.attrs["levels"]), Fraction(float(q.attrs["clip"])), Fraction(float(q.attrs.get("shift", 0)))
    w, b = node.params["weight"].astype(np.float64), node.params["bias"].astype(np.float64)
    assert node.attrs["pads"] == [1, 1, 1, 1] and list(w.shape[2:]) == [3, 3]
    scale = 2 ** 149  # float32 weights and biases are integer multiples of 2**-149
    wi = np.array([[int(Fraction(float(v)) * scale) for v in row] for row in w.reshape(len(w), -1)], dtype=object)
    xin = vals[node.inputs[0]] * L  # integers
    assert np.array_equal(xin, np.round(xin))
    out = np.zeros((len(x), *vals[node.output].shape[1:]), np.int64)
    for s in range(len(x)):
        pad = np.pad(xin[s].astype(np.int64), ((0, 0), (1, 1), (1, 1))).astype(object)
        H, W = out.shape[2:]
        patches = np.array([pad[:, i:i + 3, j:j + 3].reshape(-1) for i in range(H) for j in range(W)], dtype=object)
        z = patches.dot(wi.T)  # (H*W, C_out): z * L * 2**149
        for o in range(out.shape[1]):
            bo = Fraction(float(b[o]))
            for k in range(H * W):
                r = (Fraction(int(z[k, o]), scale * L) + bo) * L / lam + shift
                out[s, o, k // W, k % W] = min(max(floor(r), 0), L)
    return out


# -- exact mode on a scaled layer ----------------------------------------------------------------------------
@pytest.mark.parametrize("factor, which", [(1e20, (-1,)), (1e-20, (-1,)), (1e30, (-1,)), (1e20, (0,)),
                                           (1e30, (0, 1, 2))])
def test_exact_mode_equals_the_float64_interpreter_on_a_scaled_layer(tmp_path, factor, which):
    """Before: the same numbers (the spike decisions were exact) but at the default T 0.031 off the ANN, reported as
    the error outside boundary cases. Run until settled, exact mode gives the float64 interpreter's readout."""
    g = api.load(_scaled(tmp_path, factor, which))
    res = api.simulate(api.convert(g), X, steps=T_SETTLED, exact=True)
    ann = interpreter.run1(api.ann_graph(g), X, "float64")
    np.testing.assert_allclose(res.output, ann, rtol=0, atol=1e-12 * np.abs(ann).max())


def test_the_float64_interpreter_is_exact_on_the_1e20_layer(tmp_path):
    """The oracle itself, checked in exact rational arithmetic: its terms are 1e20 apart, but a pre-activation lies
    within reach of a level only where all its inputs are zero, which float64 sums exactly."""
    g = api.ann_graph(api.load(_scaled(tmp_path, 1e20)))
    conv = [n.name for n in g.topo() if n.op == "Conv"][-1]
    q = next(n for n in g.topo() if n.inputs and n.inputs[0] == g.nodes[conv].output)
    x = X[:2]
    got = interpreter.run(g, x, "float64", keep=True)[q.output] * int(q.attrs["levels"])
    np.testing.assert_array_equal(got, _exact_levels(g, x, conv))


def test_a_huge_layer_costs_exact_mode_no_float64(tmp_path):
    """δ (the float32 error bound) is about 1e16 thresholds there, yet almost every decision is proved in float32:
    a value beyond the range where the count step saturates needs no float64 (before: 19 % of the decisions went to
    float64, all of that layer's)."""
    snn = api.convert(api.load(_scaled(tmp_path, 1e20)))
    sim = api.compile(snn, exact=True)
    sim.run(X, steps=T_SETTLED)
    assert sim._plan(T_SETTLED).sinks["/9/Floor"].mode == "split"
    assert sim.proof["float64 level 1"] < sim.proof["decisions"] / 100


def test_the_default_T_is_exact_spike_for_spike_and_unsettled_samples_are_named(tmp_path):
    """At the default T (16) the 1e20 net has not settled (it does at 17): exact mode still makes every decision as
    float64 does step by step, and every sample whose readout is not yet the ANN's is reported unsettled."""
    g = api.load(_scaled(tmp_path, 1e20))
    snn = api.convert(g)
    T = int(snn.schedule.steps)
    sim = api.compile(snn, exact=True)
    exact = sim.run(X)
    step = ReferenceSimulator(snn, dtype="float64").run(X)  # every decision in float64, step by step
    np.testing.assert_allclose(exact.output, step.output, rtol=0, atol=1e-12 * np.abs(step.output).max())
    assert exact.spikes == step.spikes
    xin = torch.as_tensor(X, dtype=torch.float64)
    out = run_certified(sim._plan(T), xin, T, record=False)
    ann = interpreter.run1(api.ann_graph(g), X, "float64")
    off = np.nonzero(np.abs(exact.output - ann).max(1) > 1e-9)[0]
    assert set(off.tolist()) <= set(out["unsettled"])
    assert out["quiescent_at"] is None if out["unsettled"] else out["quiescent_at"] <= T
    # run long enough, it settles at the step the step mode's early stop finds
    long = run_certified(sim._plan(T_SETTLED), xin, T_SETTLED, record=False)
    early = ReferenceSimulator(snn, dtype="float64").run(X, steps=T_SETTLED, early_stop=True)
    assert long["unsettled"] == [] and long["quiescent_at"] == early.quiescent_at is not None


def test_the_bundled_net_settles_by_its_default_T():
    snn = api.convert(api.load(EXAMPLE))
    T = int(snn.schedule.steps)
    sim = api.compile(snn, exact=True)
    out = run_certified(sim._plan(T), torch.as_tensor(X, dtype=torch.float64), T, record=False)
    early = ReferenceSimulator(snn, dtype="float64").run(X, early_stop=True)
    assert out["unsettled"] == [] and out["quiescent_at"] == early.quiescent_at is not None


# -- what float64 cannot sum, and float32 overflow ---------------------------------------------------------------
@pytest.mark.parametrize("which, sink, conv", [(-1, "/9/Floor", "/7/Conv"), (0, "/2/Floor", "/0/Conv")])
def test_exact_mode_refuses_terms_float64_cannot_add(tmp_path, which, sink, conv):
    """The last conv (counts in, split weights) and the first (the real-valued input). Before: exact mode made those
    decisions in float64 as they came out (off by whole levels, the float64 interpreter agreeing with it: both
    wrong), reported as exact."""
    snn = api.convert(api.load(_cancelling(tmp_path, which)))
    with pytest.raises(TargetError) as err:
        api.simulate(snn, X, steps=T_SETTLED, exact=True)
    assert err.value.node == sink and err.value.op == "CIF" and f"'{conv}'" in str(err.value)


def test_cli_exact_refuses_terms_float64_cannot_add(tmp_path):
    path, out = _cancelling(tmp_path), tmp_path / "out.json"
    np.save(tmp_path / "x.npy", X)
    r = cli(path, "--input", tmp_path / "x.npy", "--exact", "--json", out, "--quiet")
    err = r.stderr.strip()
    assert r.returncode == 1, err
    assert "exact mode cannot decide" in err and "'/9/Floor'" in err and "op CIF" in err and "'/7/Conv'" in err
    assert "Traceback" not in err and err.count("\n") == 0 and not out.exists()


def test_a_layer_float32_cannot_hold_runs_in_float64(tmp_path):
    """Weights times 1e38: its float32 sums could overflow, so exact mode computes that layer in float64 (the
    interpreter's numbers); onnxruntime's float32 does overflow (NaN), and the CLI refuses rather than report NaN."""
    path = _scaled(tmp_path, 1e38)
    g = api.load(path)
    snn = api.convert(g)
    sim = api.compile(snn, exact=True)
    res = sim.run(X, steps=T_SETTLED)
    assert sim._plan(T_SETTLED).sinks["/9/Floor"].mode == "plain"
    ann = interpreter.run1(api.ann_graph(g), X, "float64")
    assert np.isfinite(ann).all()
    np.testing.assert_allclose(res.output, ann, rtol=0, atol=1e-12 * np.abs(ann).max())
    np.save(tmp_path / "x.npy", X)
    r = cli(path, "--input", tmp_path / "x.npy", "--exact", "--json", tmp_path / "out.json", "--quiet")
    assert r.returncode == 1 and "non-finite" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out.json").exists()


# -- boundary cases against onnxruntime --------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [1e20, 1e-20])
def test_cli_exact_disagrees_with_onnxruntime_only_on_boundary_cases(tmp_path, factor):
    path, out = _scaled(tmp_path, factor), tmp_path / "out.json"
    np.save(tmp_path / "x.npy", X)
    r = cli(path, "--input", tmp_path / "x.npy", "--exact", "--steps", T_SETTLED, "--json", out, "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    snn, ort = np.array(doc["outputs"]), np.array(doc["ann_outputs"])
    ann = interpreter.run1(api.ann_graph(api.load(path)), X, "float64")
    np.testing.assert_allclose(snn, ann, rtol=0, atol=1e-12 * np.abs(ann).max())
    disagree = np.nonzero(np.abs(snn - ort).max(1) > 1e-4 * max(1.0, np.abs(ort).max()))[0]
    assert set(disagree.tolist()) <= set(doc["boundary_cases"]["samples"])


def test_a_bound_beyond_a_level_flags_a_value_far_outside_the_levels():
    """z = A·x1 - A·x2 = 1024 (A = 2**30, x2 = 1 - 2**-20): r = 8192 lies far above L = 8, but float32 rounds z by up
    to 16·2**-24·Σ|w·x| = 2048, enough to bring it below 1 (level 8's boundary). Before, only the boundary nearest r
    (8192, no level) was tried and the sample was missed. x = (0.5, 0.25): z = 2**28, far beyond any rounding."""
    A = 2.0 ** 30
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h"]),
             helper.make_node("CQReLU", ["h"], ["q"], domain="neurocompile", levels=8, clip=1.0),
             helper.make_node("MatMul", ["q", "W2"], ["y"])]
    m = make_model(nodes, [tensor("W1", [[A], [-A]]), tensor("W2", [[1.0]])], in_shape=(None, 2), custom=True)
    g = api.ann_graph(import_model(m))
    rep = find_boundary_cases(g, np.array([[1.0, 1.0 - 2.0 ** -20], [0.5, 0.25]], np.float32))
    assert rep.samples == [0] and rep.neurons == 1


def test_boundary_cases_cover_onnxruntime_on_cancelling_terms(tmp_path):
    """Where onnxruntime's float32 loses the cancelling terms (a level or more off), the sample is a boundary case."""
    path = _cancelling(tmp_path)
    x = np.load(Path(EXAMPLE).with_name("digits_test.npy"))[60:80]
    g = api.load(path)
    ort, _ = api.ann_outputs(path, x)
    ann = interpreter.run1(api.ann_graph(g), x, "float64")
    disagree = np.nonzero(np.abs(ort - ann).max(1) > 1e-4)[0]
    assert set(disagree.tolist()) <= set(api.boundary_cases(g, x).samples)


# -- the certificate's two new rules, by hand ---------------------------------------------------------------------
def _bare_run(n: int) -> Run:
    run = Run.__new__(Run)
    run.N, run.proof = n, {"decisions": 0, "float64 level 1": 0, "float64 level 2": 0}
    return run


def test_saturated_decisions_need_no_float64():
    """δ = 1e12: ±2**63 lie beyond [-γ, cap + γ] = [-1, 9] by far more, so their floors stand; 3.0 goes to
    float64."""
    run = _bare_run(1)
    big = 2.0 ** 63
    X = torch.tensor([[big, -big, 3.0]], dtype=torch.float32)
    exact = torch.tensor([[big, -big, 3.0 - 1e-9]], dtype=torch.float64)
    F = run._certify(X.clone(), torch.empty_like(X), 1e12, lambda idx: exact[idx], None, sat=(-1.0, 9.0))
    assert F.tolist() == [[big, -big, 2.0]] and run.proof["float64 level 1"] == 1


def test_a_float64_value_too_coarse_for_its_level_is_refused_and_a_tie_is_kept():
    """The last level's float64 values: 2.0 with an error bound of 0.3 cannot be decided (refused); 2.0 within
    float64 rounding (TIE / 2) is a tie taken as float64 makes it; 5.5 is clear at either bound."""
    run = _bare_run(1)
    X = torch.tensor([[2.0, 5.5]], dtype=torch.float64)
    for bound, refused in ((0.3, True), (TIE / 2, False)):
        final = (torch.full((1, 2), bound, dtype=torch.float64), lambda s, b=bound: torch.full((len(s), 2), b))
        if refused:
            with pytest.raises(TargetError, match="exact mode cannot decide"):
                run._decide64(X, final, (-1.0, 9.0), None)
        else:
            assert run._decide64(X, final, (-1.0, 9.0), None).tolist() == [[2.0, 5.0]]
