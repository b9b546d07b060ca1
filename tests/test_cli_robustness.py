"""Failures that must be clean: bad options, bad data, absurd sizes and unwritable outputs give one
paragraph on stderr and exit 1 (model/data) or 2 (usage), before any work; outputs appear atomically
after success only; --steps below the settling step warns. Most cases call ``cli.main`` in-process
(a CLI start-up costs ~2 s); a few run the real command line to check what a user sees."""
import json
import os
import stat

import numpy as np
import pytest

from neurocompile import api, cli, limits
from neurocompile.atomic import write_atomic
from neurocompile.errors import ConversionError, NeurocompileError
from neurocompile.ir import Graph
from tests.test_cli import cli as run_cli


def main(capsys, *args) -> tuple[int, str, str]:
    try:
        rc = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse's usage errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def one_paragraph(err: str) -> str:
    err = err.strip()
    assert err and "\n" not in err and "Traceback" not in err and "internal error" not in err, err
    return err


def files(d) -> list[str]:
    return sorted(os.listdir(d))


@pytest.fixture
def mlp(onnx_model):
    return onnx_model("mlp", "cqrelu", "bn", 8)


def test_bad_option_values_are_usage_errors(capsys, mlp, tmp_path):
    path, _ = mlp
    cases = {
        ("--percentile", "0"): "--percentile must be in (0, 100]",
        ("--percentile", "100.5"): "--percentile must be in (0, 100]",
        ("--percentile", "nan"): "--percentile must be in (0, 100]",
        ("--delay", "-1"): "--delay must be >= 0",
        ("--gamma", "0"): "--gamma must be >= 1",
        ("--steps", "0"): "--steps must be >= 1",
        ("--levels", "0"): "--levels must be >= 1",
        ("--levels", "1000000"): f"exceeds the limit of {limits.MAX_LEVELS:,}",
        ("--steps", "1000000000"): f"exceeds the limit of {limits.MAX_STEPS:,}",
        ("--gamma", "10000000"): f"exceeds the limit of {limits.MAX_GAMMA:,}",
        ("--delay", "99999"): f"exceeds the limit of {limits.MAX_DELAY:,}",
        ("--device", "foo"): "--device foo is not a device",
        ("--device", "mps"): "--device mps is not a device",
        ("--steps", "x"): "invalid int value: 'x'",
        ("--target", "nope"): "invalid choice: 'nope'",
        ("--neuron", "lif"): "invalid choice: 'lif'",
    }
    import torch

    if not torch.cuda.is_available():
        cases[("--device", "cuda")] = "no CUDA GPU is available here"
        cases[("--device", "cuda:1")] = "no CUDA GPU is available here"
    out = tmp_path / "never.json"
    for args, expect in cases.items():
        rc, stdout, err = main(capsys, path, *args, "--json", out, "--quiet")
        assert rc == 2, (args, err)
        assert expect in one_paragraph(err), (args, err)
        assert stdout == "" and not out.exists(), args  # refused before any work
    rc, _, err = main(capsys)  # no model at all: argparse's error, still one paragraph
    assert rc == 2 and "required: model" in one_paragraph(err)


def test_bad_input_arrays_are_refused_before_any_work(capsys, mlp, tmp_path):
    path, shape = mlp
    x = np.zeros((3, *shape), np.float32)
    bad = x.copy()
    bad[0, 0, 0, 0], bad[2, 0, 1, 1], bad[2, 0, 1, 2] = np.nan, np.inf, -np.inf
    arrays = {
        "empty.npy": (np.zeros((0, *shape), np.float32), "holds no samples"),
        "strings.npy": (np.full((2, *shape), "a"), "has dtype <U1, not numbers"),
        "complex.npy": (x.astype(np.complex64), "has dtype complex64, not numbers"),
        "nan.npy": (bad, "holds 3 non-finite value(s) (1 NaN, 2 inf or beyond float32) of 192, first in sample 0"),
        "huge.npy": (np.full((1, *shape), 1e300), "(0 NaN, 64 inf or beyond float32)"),
    }
    for name, (arr, _) in arrays.items():
        np.save(tmp_path / name, arr)
    np.save(tmp_path / "objects.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    np.savez(tmp_path / "archive.npz", x=x)
    expect = {name: msg for name, (_, msg) in arrays.items()}
    expect.update({"objects.npy": "holds a pickled (object) array", "archive.npz": "is an .npz archive; pass a .npy",
                   "missing.npy": "No such file or directory"})
    out = tmp_path / "out.json"
    for name, msg in expect.items():
        for flag in ("--input", "--calibrate"):
            rc, stdout, err = main(capsys, path, flag, tmp_path / name, "--json", out, "--quiet")
            assert rc == 1, (name, flag, err)
            err = one_paragraph(err)
            assert msg in err and f"file '{tmp_path / name}'" in err, (name, flag, err)
            assert stdout == "" and not out.exists()
    # the API refuses them too, and bool arrays are numbers (0 and 1)
    with pytest.raises(NeurocompileError, match="non-finite"):
        api.load_input(str(tmp_path / "nan.npy"), shape)
    with pytest.raises(NeurocompileError, match="calibration array holds 3 non-finite"):
        api.convert(api.load(path), calibration=bad)
    np.save(tmp_path / "bool.npy", np.ones((2, *shape), bool))
    assert api.load_input(str(tmp_path / "bool.npy"), shape).dtype == np.float32


def test_what_a_user_sees_for_bad_usage_and_bad_data(mlp, tmp_path):
    """The real command line: exit codes and exactly one line on stderr (no usage block, no traceback)."""
    path, shape = mlp
    r = run_cli(path, "--gamma", "0")
    assert r.returncode == 2 and one_paragraph(r.stderr) == "neurocompile: error: --gamma must be >= 1, got 0"
    r = run_cli(path, "--stepz", "3")
    assert r.returncode == 2 and "unrecognized arguments: --stepz 3" in one_paragraph(r.stderr)
    np.save(tmp_path / "nan.npy", np.full((2, *shape), np.nan, np.float32))
    r = run_cli(path, "--input", tmp_path / "nan.npy")
    assert r.returncode == 1 and "holds 128 non-finite value(s)" in one_paragraph(r.stderr)


def test_output_paths_are_checked_before_any_work(capsys, mlp, tmp_path):
    path, _ = mlp
    (tmp_path / "adir").mkdir()
    (tmp_path / "ir.npz").mkdir()  # --save-ir ir.json also writes ir.npz
    cases = [
        (["--json", tmp_path / "nodir" / "r.json"], "does not exist"),
        (["--json", tmp_path / "adir"], "is a directory"),
        (["--save-ir", tmp_path / "nodir" / "ir.json"], "does not exist"),
        (["--save-ir", tmp_path / "ir.json"], "is a directory"),
        (["--save-ir", tmp_path / "adir"], "is a directory"),
        (["--json", tmp_path / "same.json", "--save-ir", tmp_path / "same.json"], "would both write"),
    ]
    if os.path.isdir("/proc"):  # a directory nobody can create files in, even root
        cases.append((["--json", "/proc/r.json"], "cannot write in directory '/proc'"))
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
        cases.append((["--json", ro / "r.json"], "cannot write in directory"))
    for args, expect in cases:
        rc, stdout, err = main(capsys, path, *args, "--quiet")
        assert rc == 2 and expect in one_paragraph(err), (args, err)
        assert stdout == ""
    assert files(tmp_path) == ["adir", "ir.npz"] + (["ro"] if os.geteuid() != 0 else [])


def test_outputs_only_after_success_and_atomic(capsys, mlp, tmp_path, monkeypatch):
    path, _ = mlp
    d = tmp_path / "out"
    d.mkdir()
    rc, _, err = main(capsys, path, "--json", d / "r.json", "--save-ir", d / "ir.json", "--quiet")
    assert rc == 0, err
    assert files(d) == ["ir.json", "ir.npz", "r.json"]  # and no temp file
    assert json.loads((d / "r.json").read_text())["steps"] > 0
    assert Graph.load(str(d / "ir.json")).schedule == api.convert(api.load(path)).schedule
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(d / "r.json").st_mode) == 0o666 & ~umask  # not mkstemp's 0600

    # a run that fails after conversion writes neither output
    def broken(*_, **__):
        raise NeurocompileError("the target broke")

    monkeypatch.setattr(api, "compile", broken)
    for f in files(d):
        os.unlink(d / f)
    rc, _, err = main(capsys, path, "--json", d / "r.json", "--save-ir", d / "ir.json", "--quiet")
    assert rc == 1 and "the target broke" in one_paragraph(err)
    assert files(d) == []


def test_failed_writes_leave_nothing(tmp_path, mlp, monkeypatch):
    (tmp_path / "keep.json").write_text("old")

    def half(f):
        f.write(b"{half")
        raise KeyboardInterrupt  # a signal in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        write_atomic({str(tmp_path / "new.json"): lambda f: f.write(b"{}"), str(tmp_path / "keep.json"): half})
    assert files(tmp_path) == ["keep.json"] and (tmp_path / "keep.json").read_text() == "old"
    # Graph.save: the .npz fails after the .json was written: neither appears, no temp file remains
    g = api.convert(api.load(mlp[0]))
    monkeypatch.setattr(np, "savez", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        g.save(str(tmp_path / "ir.json"))
    assert files(tmp_path) == ["keep.json"]


def test_limits_in_the_api(mlp, monkeypatch):
    g = api.load(mlp[0])
    for kw, expect in [({"levels": 10**6}, "MAX_LEVELS"), ({"steps": 10**9}, "MAX_STEPS"),
                       ({"gamma": 10**6}, "MAX_GAMMA"), ({"synapse_delay": 10**6}, "MAX_DELAY"),
                       ({"synapse_delay": -1}, "synapse_delay must be >= 0"), ({"steps": 2.5}, "must be an integer"),
                       ({"percentile": 0}, r"percentile must be in \(0, 100\]")]:
        with pytest.raises(ConversionError, match=expect):
            api.convert(g, **kw)
    snn = api.convert(g)
    limits.check_work(snn, 100, 20, "lava-sim")  # fine
    with pytest.raises(ConversionError, match="MAX_LAVA_SAMPLE_STEPS"):
        limits.check_work(snn, 10**5, 20, "lava-sim")
    with pytest.raises(ConversionError, match="MAX_NEURON_STEPS"):
        limits.check_work(snn, 10**8, 20, "reference")
    with pytest.raises(ConversionError, match="MAX_STEPS"):
        limits.check_work(snn, 1, limits.MAX_STEPS + 1, "reference")


def test_enormous_run_is_refused_by_the_cli(capsys, mlp, tmp_path, monkeypatch):
    path, shape = mlp
    np.save(tmp_path / "x.npy", np.zeros((50, *shape), np.float32))
    monkeypatch.setattr(limits, "MAX_NEURON_STEPS", 10_000)  # 50 samples x 14 steps x 80 neurons is more
    rc, stdout, err = main(capsys, path, "--input", tmp_path / "x.npy", "--json", tmp_path / "r.json", "--quiet")
    assert rc == 1 and "exceeds the limit of 1e+04" in one_paragraph(err)
    assert stdout == "" and files(tmp_path) == ["x.npy"]


def test_steps_below_settling_warn(capsys, mlp):
    path, _ = mlp
    s = api.convert(api.load(path)).schedule
    rc, _, err = main(capsys, path, "--steps", s.predicted_settle - 1, "--quiet")
    assert rc == 0 and one_paragraph(err) == (
        f"neurocompile: warning: the result is not lossless: T={s.predicted_settle - 1} is below the predicted "
        f"settling step {s.predicted_settle} (omit --steps to run until then)")
    rc, _, err = main(capsys, path, "--steps", s.t_wake - 1, "--quiet")
    assert rc == 0 and one_paragraph(err).startswith(
        f"neurocompile: warning: the result is not lossless: T={s.t_wake - 1} is shorter than the wake phase")
    for quiet in (["--steps", s.predicted_settle], [], ["--neuron", "if", "--steps", 5]):  # no claim broken
        rc, _, err = main(capsys, path, *quiet, "--quiet")
        assert rc == 0 and err == "", (quiet, err)
