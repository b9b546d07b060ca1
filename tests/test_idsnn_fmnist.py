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
    assert long["seed"] == 0 and len(long["curve"]) == 2
    assert set(long["reach"]) == set(long["worth"]) == set(res["curves"])
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
    # fixed point: integers, so Lava and the reference simulator agree exactly
    assert lava["fixed_spikes_equal"] and lava["fixed_readout_equal"] and lava["fixed_spikes"] > 0
    # float32 in two code paths (torch, Lava): a membrane within a rounding of the threshold may fire in one only,
    # so each layer's count is compared within 1 % (the example prints whether they are equal: on the full run they
    # were, 506,480 spikes in 8 images)
    for want, got in zip(lava["torch_layer_spikes"], lava["float_layer_spikes"]):
        assert want > 0 and abs(got - want) <= 0.01 * want
    assert os.path.exists(res["onnx"]) and len(res["student"]["accuracy"]) == 1


def test_summary_counts_epochs_to_the_baselines_final_accuracy():
    """Made-up curves: non-monotonic, reached late, never reached; the long-run comparison both ways."""
    curves = {"direct": {0: [0.5, 0.7, 0.6, 0.8], 1: [0.5, 0.6, 0.7, 0.7]},
              "init": {0: [0.6, 0.8, 0.8, 0.85], 1: [0.4, 0.5, 0.6, 0.65]},
              "init+kd": {0: [0.8, 0.75, 0.9, 0.9], 1: [0.7, 0.7, 0.8, 0.8]}}
    s = idsnn_convergence.summarize(curves, teacher_acc=0.95)
    assert s["seeds"][0]["target"] == 0.8 and s["seeds"][0]["reach"] == {"direct": 4, "init": 2, "init+kd": 1}
    assert s["seeds"][0]["speedup"] == {"direct": 1.0, "init": 2.0, "init+kd": 4.0}
    assert s["seeds"][1]["reach"] == {"direct": 3, "init": None, "init+kd": 1}  # 0.7 first at epoch 3; init never
    assert s["seeds"][1]["speedup"]["init"] is None and s["seeds"][1]["speedup"]["init+kd"] == 3.0
    long = idsnn_convergence.long_summary([0.5, 0.75, 0.8, 0.82, 0.9, 0.95], curves, seed=0)
    assert long["reach"] == {"direct": None, "init": None, "init+kd": None}  # nobody reaches 0.95 in 4 epochs
    assert long["worth"] == {"direct": 3, "init": 5, "init+kd": 5}  # the long run reaches 0.8, 0.85, 0.9
    assert idsnn_convergence.first_reaching([0.1, 0.3, 0.2], 0.25) == 2
    assert idsnn_convergence.first_reaching([0.1], 0.25) is None


@pytest.mark.parametrize("argv", [["--epochs", "0"], ["--teacher-epochs", "-1"], ["--long-baseline", "0"],
                                  ["--train-limit", "x"]])
def test_bad_sizes_are_refused_by_the_parser(argv, capsys):
    with pytest.raises(SystemExit) as e:
        idsnn_convergence.parse(argv)
    assert e.value.code == 2 and "error:" in capsys.readouterr().err


def test_quick_keeps_sizes_given_explicitly():
    a = idsnn_convergence.parse(["--quick", "--epochs", "3"])
    assert a.epochs == 3 and a.train_limit == 300 and a.teacher_epochs == 1 and a.out_dir.endswith("-quick")
    a = idsnn_convergence.parse([])
    assert (a.epochs, a.train_limit, a.test_limit, a.teacher_epochs) == (8, 10000, None, 8)
