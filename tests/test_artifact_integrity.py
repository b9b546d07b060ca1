"""Tamper-evident artifacts: a SHA-256 digest of every part, checked on every load, names the part that differs;
behind it (a test reseals an edited file with artifact.seal) the size limits and the reference data checks
refuse what a digest cannot: absurd sizes before any allocation or simulation, non-finite or empty reference
data, stored ANN outputs beyond the tolerance recorded at export. A damaged file never is an internal error."""
import json
import os
import shutil
import time

import h5py
import numpy as np
import pytest

from neurocompile import api, cli
from neurocompile.exporters import artifact
from neurocompile.errors import ModelLoadError
from neurocompile.targets.lava.processes.network import Network  # at import, as Lava wants: it sets fork

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "examples")
MODEL = os.path.join(EXAMPLES, "digits_cqrelu.onnx")
X = np.load(os.path.join(EXAMPLES, "digits_test.npy"))[:3]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("integrity") / "net.h5"
    api.export(MODEL, str(path), inputs=X, n_reference=3, target="reference")
    return path


@pytest.fixture
def net(exported, tmp_path):
    """A fresh copy of the exported artifact to tamper with."""
    shutil.copy(exported, tmp_path / "net.h5")
    return tmp_path / "net.h5"


def _edit(path, change, reseal=False):
    """Apply ``change(f)`` to the open file; ``reseal``: write a new digest, to reach the checks behind it."""
    with h5py.File(path, "a") as f:
        change(f)
        if reseal:
            artifact.seal(f)


def _weight(f):
    return next(d for d in f["graph"].values() if d.attrs["key"].endswith("/weight"))


def _verify(path, capsys, *args):
    """``neurocompile verify`` on the reference target, in process: (exit code, stdout, stderr)."""
    code = cli.main(["verify", str(path), "--target", "reference", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _refused(path, capsys, *words, cmd=("verify", "--target", "reference")):
    """Exit 1 with one paragraph naming the file and ``words``, no traceback, nothing simulated."""
    code = cli.main([cmd[0], str(path), *cmd[1:]] if cmd[0] == "verify" else [str(path), *cmd])
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert err.count("\n") == 1 and "Traceback" not in err and str(path) in err, err
    for w in words:
        assert w in err, err
    assert "matches the export" not in out
    return err


def test_an_untampered_artifact_verifies_and_runs(exported, capsys, tmp_path):
    code, out, err = _verify(exported, capsys)
    assert code == 0, err
    assert "intact: every part matches the SHA-256 digest" in out and "<= tolerance 1e-05 recorded at export" in out
    assert "reference  matches the export" in out and out.rstrip().endswith("verified")
    with h5py.File(exported) as f:
        assert f.attrs["format"] == "neurocompile-artifact/2"
        rec = json.loads(f.attrs["digest"])
    assert rec["algorithm"] == "sha256" and len(rec["total"]) == 64
    assert {"the graph document", "the schedule", "the provenance", "the reference inputs", "the stored ANN outputs",
            "the stored SNN outputs", "the ANN tolerance", "parameter '/12/Gemm/weight'"} <= set(rec["parts"])
    art = artifact.load(str(exported))
    assert art.ann_tolerance == 1e-5 and artifact.ann_error(art.ann_outputs, art.snn_outputs) < 1e-6
    np.save(tmp_path / "x.npy", X)
    assert cli.main([str(exported), "--input", str(tmp_path / "x.npy"), "--quiet"]) == 0
    assert "argmax agreement 100.0 %" in capsys.readouterr().out


def test_a_weight_changed_by_1e_3_fails_the_digest(net, capsys):
    _edit(net, lambda f: _weight(f).__setitem__((0,) * _weight(f).ndim, _weight(f)[(0,) * _weight(f).ndim] + 1e-3))
    with h5py.File(net) as f:
        key = _weight(f).attrs["key"]
    _refused(net, capsys, "does not match the SHA-256 digest", f"changed: parameter '{key}'")


def test_an_ann_output_set_to_nan_is_refused(net, capsys):
    def nan(f):
        f["reference/ann_outputs"][0, 3] = np.nan

    _edit(net, nan)
    _refused(net, capsys, "changed: the stored ANN outputs")
    _edit(net, nan, reseal=True)  # a matching digest: the data check refuses it
    _refused(net, capsys, "stored ANN outputs hold 1 non-finite value(s)", "first in sample 0")


def test_an_ann_output_shifted_by_5_is_refused(net, capsys):
    def shift(f):
        f["reference/ann_outputs"][1, 2] += 5

    _edit(net, shift)
    _refused(net, capsys, "changed: the stored ANN outputs")
    _edit(net, shift, reseal=True)  # beyond the tolerance of 1e-5 the export recorded
    _refused(net, capsys, "the stored ANN and SNN outputs differ by", "(worst in sample 1)",
             "above the tolerance 1e-05 recorded at export")


def test_a_changed_snn_output_is_refused(net, capsys):
    def change(f):
        f["reference/snn_outputs"][2, 0] += 1e-3

    _edit(net, change)
    _refused(net, capsys, "changed: the stored SNN outputs")
    _edit(net, change, reseal=True)
    _refused(net, capsys, "the stored ANN and SNN outputs differ by", "(worst in sample 2)")


def test_a_flipped_byte_is_refused_by_run_and_verify(net, capsys):
    with h5py.File(net) as f:  # the middle byte of the largest parameter, in the middle of the file
        ds = max(f["graph"].values(), key=lambda d: d.nbytes)
        key, at = ds.attrs["key"], ds.id.get_offset() + ds.nbytes // 2
    data = bytearray(net.read_bytes())
    data[at] ^= 0x40
    net.write_bytes(bytes(data))
    _refused(net, capsys, f"changed: parameter '{key}'")
    _refused(net, capsys, f"changed: parameter '{key}'", cmd=("--quiet",))  # run: no logits of a damaged network


def test_any_flipped_byte_is_a_clear_refusal_or_harmless(exported, tmp_path):
    """Flip one byte at offsets across the whole file (HDF5 metadata included): each load either refuses with a
    ModelLoadError naming the file or returns exactly the exported artifact (a byte in unused space)."""
    original = exported.read_bytes()
    want = artifact.load(str(exported))
    path = tmp_path / "flip.h5"
    for at in range(0, len(original), max(len(original) // 300, 1)):
        data = bytearray(original)
        data[at] ^= 0xFF
        path.write_bytes(bytes(data))
        try:
            art = artifact.load(str(path))
        except ModelLoadError as err:
            assert "flip.h5" in str(err)
            continue
        np.testing.assert_array_equal(art.snn_outputs, want.snn_outputs)
        assert art.graph.schedule == want.graph.schedule and sorted(art.graph.nodes) == sorted(want.graph.nodes)


def test_a_schedule_of_1e9_steps_is_refused_before_any_simulation(net, capsys):
    def steps(f):
        doc = json.loads(f["graph"].attrs["doc"])
        doc["schedule"]["steps"] = 10**9
        f["graph"].attrs["doc"] = json.dumps(doc)

    _edit(net, steps)
    _refused(net, capsys, "changed: the schedule")
    _edit(net, steps, reseal=True)  # the digest matches: the size check refuses it, at once
    start = time.monotonic()
    _refused(net, capsys, "T=1,000,000,000 steps exceeds the limit of 100,000 (neurocompile.limits.MAX_STEPS)")
    assert time.monotonic() - start < 5


def test_empty_or_non_finite_stored_inputs_are_refused(net, capsys):
    def empty(f):
        del f["reference/inputs"]
        f["reference"].create_dataset("inputs", data=np.zeros((0, 1, 8, 8), np.float32))

    _edit(net, empty, reseal=True)
    _refused(net, capsys, "holds no reference inputs (shape (0, 1, 8, 8))")

    def nan(f):
        del f["reference/inputs"]
        f["reference"].create_dataset("inputs", data=np.full((3, 1, 8, 8), np.nan, np.float32))

    _edit(net, nan, reseal=True)
    _refused(net, capsys, "reference inputs hold 192 non-finite value(s)")


def test_a_huge_declared_dataset_is_not_allocated(net, capsys):
    def huge(f):  # 4 TB declared, nothing stored: reading it would allocate all of it
        del f["reference/inputs"]
        f["reference"].create_dataset("inputs", shape=(10**12,), dtype=np.float32)

    _edit(net, huge)
    assert os.path.getsize(net) < 10**6
    _refused(net, capsys, "declares 1,000,000,000,000 values in /reference/inputs",
             "(neurocompile.limits.MAX_ARTIFACT_BYTES)")
    with pytest.raises(ModelLoadError, match="MAX_ARTIFACT_BYTES"):
        api.load(str(net))  # run, evaluate, estimate and Network load through here


def test_old_format_artifacts_are_refused_with_a_reason(net, capsys):
    def old(f):
        f.attrs["format"] = "neurocompile-artifact/1"
        del f.attrs["digest"]

    _edit(net, old)
    _refused(net, capsys, "old format 'neurocompile-artifact/1'", "carries no digest", "Export it again")
    _edit(net, lambda f: f.attrs.__setitem__("format", "neurocompile-artifact/2"))  # a /2 file without its digest
    _refused(net, capsys, "carries no digest")
    _edit(net, lambda f: f.attrs.__setitem__("digest", "{not json"))
    _refused(net, capsys, "digest record is damaged")


def test_an_altered_digest_record_is_refused(net, capsys):
    def total(f):
        rec = json.loads(f.attrs["digest"])
        rec["total"] = "0" * 64
        f.attrs["digest"] = json.dumps(rec)

    _edit(net, total)
    _refused(net, capsys, "the digest record itself was altered")


def test_the_lava_network_process_refuses_a_tampered_artifact(net):
    _edit(net, lambda f: f["reference/snn_outputs"].__setitem__((0, 0), 0.0))
    with pytest.raises(ModelLoadError, match="changed: the stored SNN outputs"):
        Network(str(net))


def test_a_file_that_makes_hdf5_loop_is_refused_within_the_timeout(net, capsys, monkeypatch):
    """32 bytes zeroed in the first global heap (where the format and digest strings live): the HDF5 library loops
    for ever reading it (C code: no signal stops it). The forked probe is killed at the timeout (1 s here) and the
    file refused, naming it; this process never enters the loop."""
    import time

    from neurocompile import hdf5_probe

    monkeypatch.setattr(hdf5_probe, "BASE_TIMEOUT_S", 1.0)
    data = net.read_bytes()
    at = data.index(b"GCOL") + 10
    net.write_bytes(data[:at] + bytes(32) + data[at + 32:])
    start = time.monotonic()
    _refused(net, capsys, "HDF5 structure is damaged", "did not finish within 1 s")
    assert time.monotonic() - start < 10


@pytest.mark.parametrize("exc", [KeyError("bad object header message count"), RuntimeError("bad local heap"),
                                 OSError("truncated")])
def test_any_h5py_exception_is_a_damaged_file_refusal(net, capsys, monkeypatch, exc):
    """h5py raises KeyError, RuntimeError, ... (not only OSError) on damaged files: never an internal error."""
    def broken(f, path):
        raise exc

    monkeypatch.setattr(artifact, "_read", broken)
    _refused(net, capsys, "the artifact is damaged", type(exc).__name__)


def test_a_file_that_is_no_hdf5_is_refused(net, capsys):
    net.write_bytes(b"not an HDF5 file at all")
    _refused(net, capsys, "the artifact is damaged", "OSError")
