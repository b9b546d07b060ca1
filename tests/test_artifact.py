"""The single-file artifact: export, verify without the ONNX file, load, run; damage is refused clearly."""
import json
import os
import shutil

import h5py
import numpy as np
import pytest

from neurocompile import api
from neurocompile.exporters import artifact
from neurocompile.errors import ModelLoadError
from tests.test_cli import cli

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
MODEL = os.path.join(EXAMPLES, "digits_cqrelu.onnx")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The bundled model exported by the CLI, then moved alone into a fresh directory."""
    d = tmp_path_factory.mktemp("export")
    shutil.copy(MODEL, d / "model.onnx")
    np.save(d / "x.npy", np.load(os.path.join(EXAMPLES, "digits_test.npy"))[:5])
    r = cli("export", "model.onnx", "-o", "net.h5", "--input", "x.npy", "--samples", "4", cwd=d)
    assert r.returncode == 0, r.stderr
    assert "wrote net.h5" in r.stdout and "onnxruntime" in r.stdout
    fresh = tmp_path_factory.mktemp("elsewhere")
    shutil.move(d / "net.h5", fresh / "net.h5")
    return fresh / "net.h5"


def test_verify_needs_only_the_artifact(exported):
    r = cli("verify", exported.name, "--json", "report.json", cwd=exported.parent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("matches the export") == 2 and "verified" in r.stdout
    rep = json.loads((exported.parent / "report.json").read_text())
    assert rep["ok"] and rep["samples"] == 4 and rep["provenance"]["source"] == "model.onnx"
    assert rep["provenance"]["source_sha256"] == artifact.sha256(MODEL)
    for t in ("reference", "lava-sim"):
        assert rep[t]["max_rel_error_vs_export"] == 0.0 and rep[t]["argmax_agreement"] == 1.0
        assert rep[t]["max_abs_error"] <= 1e-5 * rep[t]["max_abs_logit"]  # lossless against onnxruntime


def test_the_artifact_loads_and_runs_like_the_converted_model(exported, tmp_path):
    g = api.load(str(exported))
    snn = api.convert(api.load(MODEL), target="lava-sim")
    assert g.schedule == snn.schedule and sorted(g.nodes) == sorted(snn.nodes)
    x = np.load(os.path.join(EXAMPLES, "digits_test.npy"))[:3]
    np.testing.assert_array_equal(api.simulate(g, x, exact=True).output, api.simulate(snn, x, exact=True).output)
    np.save(tmp_path / "x.npy", x)
    r = cli(exported, "--target", "lava-sim", "--input", tmp_path / "x.npy", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "argmax agreement 100.0 %" in r.stdout
    r = cli(exported, "--fixed-point")  # a converted network: conversion options cannot apply
    assert r.returncode == 2 and "--fixed-point" in r.stderr


def test_fixed_point_artifacts_verify_bit_for_bit(tmp_path):
    art = api.export(MODEL, str(tmp_path / "fx.h5"), n_reference=3, fixed_point=True)
    assert art.graph.meta["fixed_point"]
    rep = api.verify(str(tmp_path / "fx.h5"))
    assert rep["ok"] and rep["reference"]["max_rel_error_vs_export"] == 0 == rep["lava-sim"]["max_rel_error_vs_export"]


def _one_paragraph_refusal(r):
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1 and "net.h5" in r.stderr


def test_truncated_corrupted_and_foreign_files_are_refused(exported, tmp_path):
    data = exported.read_bytes()
    (tmp_path / "net.h5").write_bytes(data[: len(data) // 2])
    _one_paragraph_refusal(cli("verify", tmp_path / "net.h5"))
    (tmp_path / "net.h5").write_bytes(b"not hdf5 at all")
    _one_paragraph_refusal(cli(tmp_path / "net.h5"))
    with h5py.File(tmp_path / "net.h5", "w") as f:  # HDF5, but not an artifact
        f.attrs["format"] = "netx"
    _one_paragraph_refusal(cli("verify", tmp_path / "net.h5"))
    shutil.copy(exported, tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5", "a") as f:  # a graph whose parameters are gone
        del f["graph"]["p0"]
    _one_paragraph_refusal(cli("verify", tmp_path / "net.h5"))
    with pytest.raises(ModelLoadError, match="damaged"):
        api.load(str(tmp_path / "net.h5"))


def test_an_edited_network_fails_verification(exported, tmp_path):
    shutil.copy(exported, tmp_path / "net.h5")
    with h5py.File(tmp_path / "net.h5", "a") as f:
        ds = next(d for d in f["graph"].values() if d.attrs["key"].endswith("/weight"))
        ds[...] = ds[()] * 1.5
        artifact.seal(f)  # a new digest: the re-run is what tells (tests/test_artifact_integrity.py: without it)
    r = cli("verify", tmp_path / "net.h5", "--target", "reference")
    assert r.returncode == 1 and "DIFFERS from the export" in r.stdout and "NOT verified" in r.stdout


def test_export_refuses_before_any_work(tmp_path):
    r = cli("export", MODEL, "-o", tmp_path / "missing" / "net.h5")
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = cli("export", MODEL, "-o", tmp_path / "net.h5", "--samples", "0")
    assert r.returncode == 2 and not (tmp_path / "net.h5").exists()


def test_a_target_that_cannot_run_the_artifact_is_reported(tmp_path):
    api.export(MODEL, str(tmp_path / "ref.h5"), n_reference=2, target="reference")  # no Lava synaptic delay
    r = cli("verify", tmp_path / "ref.h5")
    assert r.returncode == 1 and "reference  matches the export" in r.stdout
    assert "lava-sim   cannot run the network" in r.stdout and "synaptic delay" in r.stdout
