"""--target loihi2 and neurocompile estimate, as a user runs them: the deployable files, their verification on
lava-sim's fixed_pt models, the resource estimate, and the one-paragraph stop where the Loihi extension is absent."""
import json

import h5py

from tests.test_cli import cli
from tests.test_netx import _student


def test_loihi2_writes_verified_artifacts_then_stops_clearly(tmp_path):
    model = _student("mlp", tmp_path)
    out = tmp_path / "deploy"
    r = cli(model, "--target", "loihi2", "--artifacts", out, "--json", tmp_path / "r.json")
    assert r.returncode == 1
    files = [out / "mlp.h5", out / "mlp.net", out / "mlp.resources.json"]
    for f in files:
        assert f.exists() and f"wrote      {f}" in r.stdout
    assert "verified   lava-sim fixed_pt reproduces the exported readout" in r.stdout
    err = r.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err and "NameError" not in err
    assert "Loihi extension of Lava" in err and all(str(f) in err for f in files)
    res = json.loads((out / "mlp.resources.json").read_text())
    assert res["totals"]["cores"] >= 1 and res["rows"]
    with h5py.File(out / "mlp.net") as f:
        assert f["layer/0/type"][()] == b"input"
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["verify"]["ok"] and doc["netx"] == str(out / "mlp.net")


def test_loihi2_of_a_cqrelu_net_skips_netx_with_the_reason(tmp_path):
    out = tmp_path / "d"
    r = cli("examples/digits_cqrelu.onnx", "--target", "loihi2", "--artifacts", out)
    assert r.returncode == 1 and (out / "digits_cqrelu.h5").exists() and not (out / "digits_cqrelu.net").exists()
    assert "netx       not written" in r.stdout and "CIF" in r.stdout
    assert "verified   lava-sim fixed_pt reproduces" in r.stdout and "argmax agreement" in r.stdout


def test_estimate_prints_the_table_and_writes_json(tmp_path):
    r = cli("estimate", "examples/digits_cqrelu.onnx", "--input", "examples/digits_test.npy", "--samples", "4",
            "--json", tmp_path / "e.json")
    assert r.returncode == 0, r.stderr
    assert "cores" in r.stdout and "synops/inf" in r.stdout and "davies2018" in r.stdout
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["totals"]["neurons"] > 0
    r = cli("estimate", "examples/digits_cqrelu.onnx", "--hw", "loihi9")
    assert r.returncode == 2 and "invalid choice" in r.stderr
