"""evaluate's inputs, labels, options and memory (issue 26): a label no output can match, a bad labels or input
file, a bad option value is refused in one paragraph with the right exit code (never a plausible accuracy, never
an internal error); the records a run holds are bounded by neurocompile.limits.MAX_RUN_BYTES (evaluate shrinks its
batch to fit, and refuses naming the limit when one sample cannot fit); numpy warns about nothing before a
refusal; a CQReLU chain whose L is not an integer is refused at conversion.

Runs are short: 5 samples of the digits CNN, T = 4 steps."""
import os
import warnings

import numpy as np
import onnx
import pytest
from onnx import helper

from neurocompile import api, cli, limits
from neurocompile.errors import ConversionError, NeurocompileError
from neurocompile.analysis.evaluate import evaluate
from neurocompile.analysis.evaluate.data import _TABLE_BYTES, _fit_batch
from tests.onnx_util import make_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "examples", "digits_cqrelu.onnx")
X = os.path.join(ROOT, "examples", "digits_test.npy")
T = 4


@pytest.fixture(scope="module")
def data():
    return np.load(X)[:5], np.load(os.path.join(ROOT, "examples", "digits_test_labels.npy"))[:5]


@pytest.fixture(scope="module")
def snn():
    return api.convert(api.load(MODEL))


def _cli(capsys, *args) -> tuple[int, str]:
    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    return code, capsys.readouterr().err


def _paragraph(err: str, *words: str) -> None:
    """One paragraph, no traceback, not an internal error, holding every word."""
    assert err.startswith("neurocompile: error: ") and err.count("\n") == 1, err
    assert "internal error" not in err and "Traceback" not in err, err
    for w in words:
        assert w in err, (w, err)


# ----------------------------------------------------------------------------------------------------------
# 1. labels are class indices of the model's classes (or one-hot rows); 5. no numpy warning before a refusal


def _one_hot(rows, width=10):
    return np.eye(width)[rows]


_bad_one_hot = _one_hot([1, 2, 3, 4, 5])
_bad_one_hot[2, 3] = 0.5


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("labels,words", [
    (np.array([10, 1, 2, 3, 4]), ["outside the model's 10 classes 0..9", "first 10 at position 0"]),
    (np.array([1, 2, -1, 3, 4]), ["outside the model's 10 classes", "first -1 at position 2"]),
    (np.array([1e12, 1, 2, 3, 4]), ["outside the model's 10 classes", "1000000000000"]),
    (np.array([1e30, 1, 2, 3, 4]), ["outside the model's 10 classes", "1e+30"]),  # a cast would warn and wrap
    (np.array([True, False, True, False, True]), ["dtype bool"]),
    (np.array([2.5, 1, 2, 3, 4]), ["not integers", "2.5"]),
    (np.array([np.nan, 1, 2, 3, 4]), ["not integers", "nan"]),
    (np.array([np.inf, 1, 2, 3, 4]), ["not integers", "inf"]),
    (_bad_one_hot, ["not one-hot", "first row 2"]),
    (_one_hot([1, 2, 3, 4, 0], width=5), ["5 columns, the model has 10 classes"]),
    (np.zeros((5, 1, 1), np.int64), ["shape (5, 1, 1)"]),
    (np.array(["1", "2", "3", "4", "5"]), ["not integer class indices"]),
])
def test_bad_labels_are_refused_before_any_work(data, labels, words):
    x, _ = data
    with pytest.raises(NeurocompileError) as info:
        evaluate(MODEL, x, labels, steps=T, synops=False)
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_integral_labels_and_one_hot_rows_count_alike(data):
    x, y = data
    want = evaluate(MODEL, x, y, steps=T, synops=False, at=[T]).snn_accuracy
    for same in (y.astype(np.float64), y[:, None], _one_hot(y)):  # 3.0 is class 3; (N, 1); one-hot rows
        assert evaluate(MODEL, x, same, steps=T, synops=False, at=[T]).snn_accuracy == want


def test_cli_labels_outside_the_classes_exit_1_naming_the_file(tmp_path, capsys, data):
    _, y = data
    path = tmp_path / "labels.npy"
    np.save(path, np.where(np.arange(5) == 3, 10, y))  # one bad label of five: 80 % would look plausible
    code, err = _cli(capsys, "evaluate", MODEL, "--input", X, "--labels", path, "--steps", T, "--quiet")
    assert code == 1
    _paragraph(err, str(path), "outside the model's 10 classes 0..9", "first 10 at position 3")


# ----------------------------------------------------------------------------------------------------------
# 2. unreadable --labels / --input files: exit 1 naming the file, never an internal error (exit 3)


def _unreadable(tmp_path) -> dict[str, str]:
    text = tmp_path / "text.npy"
    text.write_text("1,2,3\n")
    obj = tmp_path / "object.npy"
    np.save(obj, np.array([1, "a", None], dtype=object), allow_pickle=True)
    trunc = tmp_path / "truncated.npy"
    np.save(trunc, np.arange(100))
    trunc.write_bytes(trunc.read_bytes()[:-50])
    return {"missing": str(tmp_path / "missing.npy"), "text": str(text), "object": str(obj),
            "truncated": str(trunc), "directory": str(tmp_path)}


@pytest.mark.parametrize("kind", ["missing", "text", "object", "truncated", "directory"])
def test_cli_unreadable_labels_file_exit_1_naming_it(tmp_path, capsys, kind):
    path = _unreadable(tmp_path)[kind]
    code, err = _cli(capsys, "evaluate", MODEL, "--input", X, "--labels", path, "--steps", T, "--quiet")
    assert code == 1
    _paragraph(err, f"'{path}'", "labels")


@pytest.mark.parametrize("kind", ["missing", "text", "object", "directory"])
def test_cli_unreadable_input_file_exit_1_naming_it(tmp_path, capsys, kind):
    path = _unreadable(tmp_path)[kind]
    code, err = _cli(capsys, "evaluate", MODEL, "--input", path, "--steps", T, "--quiet")
    assert code == 1
    _paragraph(err, f"'{path}'")


# ----------------------------------------------------------------------------------------------------------
# 3. option values: usage errors (exit 2) before any work; steps are 1-based


@pytest.mark.parametrize("args,words", [
    (["--at", "0", "--steps", T], ["--at 0", "numbered from 1", "[1, 4]"]),
    (["--at", "2,-1"], ["--at -1", "numbered from 1"]),
    (["--at="], ["--at ''", "comma-separated step numbers"]),  # empty: not "every step"
    (["--at", "5", "--steps", T], ["--at 5 is beyond --steps 4", "[1, 4]"]),
    (["--batch", "0"], ["--batch 0"]),
    (["--batch", "-3", "--steps", T], ["--batch -3"]),
    (["--steps", "0"], ["--steps must be >= 1"]),
    (["--steps", "100001"], ["MAX_STEPS"]),
    (["--gamma", "0"], ["--gamma"]),
])
def test_cli_bad_option_values_exit_2(capsys, args, words):
    code, err = _cli(capsys, "evaluate", MODEL, "--input", X, "--quiet", *args)
    assert code == 2
    _paragraph(err, *words)


def test_step_0_says_steps_are_1_based(data):
    x, _ = data
    with pytest.raises(NeurocompileError, match=r"numbered from 1 .* must be in \[1, 4\]") as info:
        evaluate(MODEL, x, steps=T, at=[0], synops=False)
    assert "more steps" not in str(info.value)  # the old advice was wrong: more steps do not make a step 0


# ----------------------------------------------------------------------------------------------------------
# 4. memory: the batch shrinks to fit MAX_RUN_BYTES; refused naming the limit when one sample does not fit


def _per_sample(snn) -> int:
    """What _fit_batch charges one sample of a batch (layer records, readout, tables), at T steps."""
    return limits.record_bytes(snn, T, record_layers=True) + T * limits.outputs_per_sample(snn) * _TABLE_BYTES


def test_batch_shrinks_to_fit_the_memory_limit(monkeypatch, snn, data):
    x, y = data
    full = evaluate(snn, x, y, steps=T, synops=False).to_dict()
    _, fixed = _fit_batch(snn, T, 256, False)
    monkeypatch.setattr(limits, "MAX_RUN_BYTES", fixed + 2 * _per_sample(snn) + _per_sample(snn) // 2)
    assert _fit_batch(snn, T, 256, False)[0] == 2
    ev = evaluate(snn, x, y, steps=T, synops=False)
    assert any("batches of 2 sample(s) instead of 256" in n and "MAX_RUN_BYTES" in n for n in ev.notes)
    d = ev.to_dict()
    full.pop("notes"), d.pop("notes")
    assert d == full  # exact mode: batches of 2 give the very same numbers


def test_refused_naming_the_limit_when_one_sample_does_not_fit(monkeypatch, snn, data):
    x, y = data
    _, fixed = _fit_batch(snn, T, 256, False)
    monkeypatch.setattr(limits, "MAX_RUN_BYTES", fixed + _per_sample(snn))  # a lone sample runs as two
    with pytest.raises(ConversionError, match="MAX_RUN_BYTES") as info:
        evaluate(snn, x, y, steps=T, synops=False)
    assert "fewer steps" in str(info.value)


def test_synops_sample_shrinks_to_fit(monkeypatch, snn, data):
    x, y = data
    _, fixed = _fit_batch(snn, T, 256, False)
    monkeypatch.setattr(limits, "MAX_RUN_BYTES", fixed + 2 * _per_sample(snn))
    ev = evaluate(snn, x, y, steps=T)
    assert ev.synops is not None and ev.synops["samples"] == 2
    assert any("first 2 sample(s)" in n for n in ev.notes)


def test_cli_evaluate_100000_steps_is_refused_not_killed(monkeypatch, capsys, tmp_path):
    """The digits CNN's per-layer records at T = 100,000 are ~1.4 GB per sample (float32), several times that as
    held: under a 4 GiB limit not even a lone sample fits, and the refusal comes before any simulation."""
    monkeypatch.setattr(limits, "MAX_RUN_BYTES", 4 << 30)
    x20 = tmp_path / "x20.npy"
    np.save(x20, np.load(X)[:20])
    code, err = _cli(capsys, "evaluate", MODEL, "--input", x20, "--steps", "100000", "--quiet")
    assert code == 1
    _paragraph(err, "100,000 steps", "4.0 GiB", "neurocompile.limits.MAX_RUN_BYTES", "fewer steps")


def test_every_command_checks_its_records(monkeypatch, snn, data, capsys):
    """run and verify (check_work: the readout after every step), estimate (api.simulate with layer records)."""
    x, _ = data
    monkeypatch.setattr(limits, "MAX_RUN_BYTES", 1 << 30)
    limits.check_work(snn, 100, 10_000, "reference")  # 100 x 10,000 steps x 10 readout values: 160 MB
    with pytest.raises(ConversionError, match="MAX_RUN_BYTES"):
        limits.check_work(snn, 1000, 10_000, "reference")  # 1.6 GB
    with pytest.raises(ConversionError, match="3,584 neurons' spike counts"):
        api.simulate(snn, x, steps=20_000, record_layers=True)
    code, err = _cli(capsys, "estimate", MODEL, "--input", X, "--steps", "100000")
    assert code == 1
    _paragraph(err, "neurocompile.limits.MAX_RUN_BYTES")


# ----------------------------------------------------------------------------------------------------------
# 5. inputs beyond float32: refused without a numpy warning


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_input_beyond_float32_is_refused_without_a_warning(data):
    x, _ = data
    big = x.astype(np.float64)
    big[0, 0, 0, 0] = 1e300
    with pytest.raises(NeurocompileError, match="beyond float32"):
        evaluate(MODEL, big, steps=T, exact=False, synops=False)


# ----------------------------------------------------------------------------------------------------------
# 6. a CQReLU chain (Clip -> Mul -> Floor -> Div) whose L is not an integer


def _chain_model(scale: float, clip: float = 1.0) -> onnx.ModelProto:
    """x(4) -> MatMul -> Clip(0, clip) -> Mul(scale) -> Floor -> Div(scale) -> MatMul -> y."""
    rng = np.random.default_rng(0)
    t = lambda n, v: onnx.numpy_helper.from_array(np.asarray(v, np.float32), n)  # noqa: E731
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Clip", ["h", "zero", "top"], ["c"]),
             helper.make_node("Mul", ["c", "k"], ["m"]), helper.make_node("Floor", ["m"], ["f"]),
             helper.make_node("Div", ["f", "k"], ["a"]), helper.make_node("MatMul", ["a", "w2"], ["y"])]
    inits = [t("w1", rng.normal(size=(4, 6))), t("w2", rng.normal(size=(6, 3))), t("zero", 0.0), t("top", clip),
             t("k", scale)]
    return make_model(nodes, inits)


def test_non_integer_levels_are_refused_at_conversion(tmp_path, capsys):
    path = tmp_path / "l75.onnx"
    onnx.save(_chain_model(7.5), path)
    with pytest.raises(ConversionError) as info:
        api.convert(api.load(str(path)))
    assert "Floor" in str(info.value.node) and info.value.op == "Floor"
    for w in ("non-integer number of levels", "clip 1 times its scale 7.5 is L = 7.5", "Clip -> Mul -> Floor -> Div"):
        assert w in str(info.value), str(info.value)
    code, err = _cli(capsys, path, "--quiet")
    assert code == 1
    _paragraph(err, str(path), "L = 7.5", "node '")
    # whole numbers of levels convert: scale 8 (L = 8), and scale 7.5 with the clip at 14/15 (L = 7)
    for scale, clip, L in ((8.0, 1.0, 8), (7.5, float(np.float32(7 / 7.5)), 7)):
        p = tmp_path / f"ok{L}.onnx"
        onnx.save(_chain_model(scale, clip), p)
        g = api.convert(api.load(str(p)))
        assert {int(n.attrs["levels"]) for n in g.nodes.values() if n.op == "CIF"} == {L}
