"""IDSNN on Fashion-MNIST, smoke tests of the whole path (--quick: 300 training and 200 test images, one epoch):
benchmarks/idsnn_convergence.py (three students, two seeds, the table, the plot, resuming from checkpoints) and
examples/train_idsnn_fmnist.py (the student exported, `neurocompile evaluate`, lava-sim float and fixed point
spike for spike, `neurocompile estimate`). Accuracies after one epoch on 300 images mean nothing and are not
asserted. Debian's Fashion-MNIST is used where it is installed; elsewhere the same loader reads IDX files written
here from scikit-learn's digits (upscaled to 28x28), so the smoke test never depends on a system package."""
import os
import sys
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
import datasets  # noqa: E402
import idsnn_convergence  # noqa: E402
import train_idsnn_fmnist  # noqa: E402

from tests.test_examples import _write_idx  # noqa: E402


@pytest.fixture(scope="module")
def fashion(tmp_path_factory):
    """Where the Fashion-MNIST files are: Debian's, or digits written as IDX files in their place."""
    try:
        datasets.fashion_mnist_dir()
        yield "debian"
        return
    except datasets.DatasetUnavailable:
        pass
    root = tmp_path_factory.mktemp("data")
    d = root / "fashion-mnist"
    d.mkdir()
    x, y = datasets.load_digits()
    img = np.kron(x[:, 0], np.ones((3, 3), np.float32))  # 24x24
    img = np.pad(img, ((0, 0), (2, 2), (2, 2))) * 255
    test = np.arange(10000) % len(y)  # the loader takes the last 10,000 images as the test set, as Debian's are
    for part, idx in (("train", np.arange(1000)), ("t10k", test)):
        _write_idx(d / f"{part}-images-idx3-ubyte.gz", img[idx])
        _write_idx(d / f"{part}-labels-idx1-ubyte.gz", y[idx])
    before = datasets.FASHION_GLOBS
    datasets.FASHION_GLOBS = (str(root / "*fashion*"),)
    yield "digits as IDX"
    datasets.FASHION_GLOBS = before


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("idsnn"))


def test_convergence_quick_prints_the_study_and_resumes(fashion, out_dir, capsys):
    png = os.path.join(out_dir, "convergence.png")
    t = time.perf_counter()
    res = idsnn_convergence.main(["--quick", "--out-dir", out_dir, "--plot", png, "--long-baseline", "2"])
    first = time.perf_counter() - t
    text = capsys.readouterr().out
    assert set(res["curves"]) == {"direct", "init", "init+kd"}
    for curves in res["curves"].values():
        assert sorted(curves) == [0, 1] and all(len(c) == 1 and 0.0 <= c[0] <= 1.0 for c in curves.values())
    for seed, s in res["summary"]["seeds"].items():
        assert s["target"] == res["curves"]["direct"][seed][-1] and s["reach"]["direct"] == 1
        assert s["speedup"]["direct"] == 1.0
    assert "speed-up" in text and "final acc T=6" in text and "ANN teacher" in text and "Long baseline" in text
    long = res["long_baseline"]
    assert long["seed"] == 0 and len(long["curve"]) == 2 and set(long["reach"]) == set(res["curves"])
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # every model was checkpointed: a second run trains nothing and gives the same study
    again = idsnn_convergence.main(["--quick", "--out-dir", out_dir, "--quiet", "--long-baseline", "2"])
    assert again["curves"] == res["curves"] and again["student_seconds"] == res["student_seconds"]
    print(f"--quick on {fashion}: {first:.1f} s")  # the budget: under a minute


def test_example_quick_deploys_the_student_spike_for_spike(fashion, out_dir, capsys):
    """The example reuses the benchmark's teacher and init + KD student (same configuration, same checkpoints),
    exports it and runs the product's commands on it."""
    res = train_idsnn_fmnist.main(["--quick", "--out-dir", out_dir])
    text = capsys.readouterr().out
    assert "$ neurocompile evaluate" in text and "$ neurocompile estimate" in text
    assert len(res["evaluate_per_step"]) == len(res["evaluate_fixed_per_step"]) == 6  # T = 6: after every step
    lava = res["lava"]
    assert lava["samples"] == 2 and lava["layers"] == 7 and lava["spikes"] > 0
    assert lava["float_spikes_equal"] and lava["float_argmax_equal"] and lava["float_max_abs_error"] < 1e-4
    assert lava["fixed_spikes_equal"] and lava["fixed_readout_equal"] and lava["fixed_spikes"] > 0
    assert os.path.exists(res["onnx"]) and len(res["student"]["accuracy"]) == 1
