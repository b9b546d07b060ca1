"""The CLI as a user runs it: subprocesses, exit codes, one-paragraph errors, JSON output."""
import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from tests.onnx_util import make_model

EXE = [sys.executable, "-m", "neurocompile.cli"]
EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "examples", "digits_cqrelu.onnx")


def cli(*args, cwd=None):
    return subprocess.run([*EXE, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_inspect_resnet(onnx_model):
    path, _ = onnx_model("resnet", "relu", "bn")
    r = cli("inspect", path, "--log-passes")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Conv" in out and "Nx16x8x8" in out and "GlobalAvgPool" in out and "Dense" in out
    assert "5,194 parameters" in out  # BN folded into 6 convs
    assert "fold_batchnorm" in out and "BatchNorm -6" in out


def _bad_files(tmp_path, onnx_model):
    path, _ = onnx_model("mlp")
    data = open(path, "rb").read()
    (tmp_path / "corrupt.onnx").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.onnx").write_text("hello, I am a text file\n")
    empty = helper.make_model(helper.make_graph([], "e", [], []))
    onnx.save(empty, str(tmp_path / "empty.onnx"))
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="r"), helper.make_node("Softmax", ["a"], ["y"], name="sm")]
    onnx.save(make_model(nodes), str(tmp_path / "softmax.onnx"))
    return {"corrupt.onnx": "cannot parse", "notes.onnx": "cannot parse", "empty.onnx": "empty",
            "softmax.onnx": "'sm' (Softmax)"}


@pytest.mark.parametrize("command", [["inspect"], []])
def test_bad_inputs_give_one_paragraph_and_nonzero_exit(tmp_path, onnx_model, command):
    for name, expect in _bad_files(tmp_path, onnx_model).items():
        r = cli(*command, tmp_path / name)
        assert r.returncode == 1, (name, r.stderr)
        err = r.stderr.strip()
        assert expect in err and name in err
        assert "Traceback" not in err and err.count("\n") == 0, err
    r = cli(*command, tmp_path / "missing.onnx")
    assert r.returncode == 1 and "no such file" in r.stderr


def test_run_with_input_and_json(tmp_path, onnx_model):
    path, shape = onnx_model("vgg", "cqrelu", "bn", 4)
    x = np.random.default_rng(0).uniform(0, 1, (8, *shape)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "result.json"
    r = cli(path, "--target", "reference", "--input", tmp_path / "x.npy", "--json", out, "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert set(doc) >= {"target", "steps", "wake_steps", "outputs", "ann_outputs", "max_abs_error",
                        "argmax_agreement", "per_step_max_abs_error"}
    assert doc["wake_steps"] == 4 and len(doc["per_step_max_abs_error"]) == doc["steps"]
    assert doc["argmax_agreement"] == 1.0
    assert doc["max_abs_error"] <= 1e-5 * np.abs(doc["ann_outputs"]).max()
    assert "argmax agreement 100.0 %" in r.stdout


def test_run_if_baseline_and_steps(tmp_path, onnx_model):
    path, shape = onnx_model("mlp", "cqrelu", "bn", 8)
    out = tmp_path / "if.json"
    r = cli(path, "--neuron", "if", "--steps", "12", "--json", out, "--quiet")
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    assert doc["steps"] == 12 and doc["neuron"] == "if" and doc["max_abs_error"] > 0


def test_bad_input_array_shape(tmp_path, onnx_model):
    path, _ = onnx_model("mlp", "cqrelu", "bn", 8)
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 3), np.float32))
    out = tmp_path / "never.json"
    r = cli(path, "--input", tmp_path / "wrong.npy", "--json", out)
    assert r.returncode == 1 and "expects (N, 1, 8, 8)" in r.stderr
    assert not out.exists()  # nothing half-written


def test_bundled_example_runs_losslessly():
    labels = np.load(os.path.join(os.path.dirname(EXAMPLE), "digits_test_labels.npy"))
    r = cli(EXAMPLE, "--input", os.path.join(os.path.dirname(EXAMPLE), "digits_test.npy"), "--quiet")
    assert r.returncode == 0, r.stderr
    assert "argmax agreement 100.0 %" in r.stdout
    assert len(labels) == 100


def test_top_level_help_lists_every_subcommand_with_an_example():
    from neurocompile.cli.entry import _subcommands

    r = cli("--help")
    assert r.returncode == 0
    for name, c in _subcommands().items():
        assert f"  {name} " in r.stdout and f"example: {c.example}" in r.stdout
        sub = cli(name, "--help")
        assert sub.returncode == 0 and sub.stdout.startswith(f"usage: neurocompile {name}")
    bare = cli()  # no arguments: a one-paragraph usage error that points to the help
    assert bare.returncode == 2 and "neurocompile --help" in bare.stderr and bare.stderr.count("\n") == 1


def test_version_and_run_subcommand():
    from importlib.metadata import version

    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"neurocompile {version('neurocompile')}"
    a, b = cli("run", EXAMPLE), cli(EXAMPLE)  # 'neurocompile MODEL' is 'neurocompile run MODEL'
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout


def test_inspect_counts_neurons_and_synapses():
    r = cli("inspect", EXAMPLE)
    assert r.returncode == 0, r.stderr
    # digits CNN: 16x8x8 + 32x8x8 + 32x4x4 neurons; synapses = the ANN's MACs (each output unit times its fan-in)
    assert "neurons: 3,584 in 3 layer(s) per sample; synapses: 452,864 connections (15,248 weights" in r.stdout
