"""IDSNN on Fashion-MNIST: a ResNet teacher, a spiking ResNet student (LIF, T = 6) initialized from it and
distilled, then deployed through neurocompile (evaluate, lava-sim float and fixed point, estimate).

    python examples/train_idsnn_fmnist.py                 # train (resumable), deploy; about 15 min on 2 cores
    python examples/train_idsnn_fmnist.py --skip-deploy   # train only
    python examples/train_idsnn_fmnist.py --quick         # 300 images, one epoch: a smoke test (seconds)

Sizes, chosen so that benchmarks/idsnn_convergence.py (three students x two seeds) runs on 2 CPU cores within
the hour (measured: 56 min, a student's epoch about 40 s of training and 15 s of evaluation on the test set):
the first 10,000 of the 60,000 training images (all 60,000 would take five hours); the official 10,000 test
images. Teacher: ResNet (ReLU) width 16, stages of (2, 2, 2) blocks, 8 epochs at learning rate 0.05.
Student: spiking ResNet width 8, (1, 1, 1) blocks, LIF (beta 0.25, threshold 0.5), T = 6 with direct encoding,
8 epochs at 0.1 -- half the teacher's width and depth, as IDSNN's students are smaller than their teachers.
Both: SGD (momentum 0.9, weight decay 1e-4), batch 64, cosine decay to 0. Distillation: alpha 0.3, T_kd 4 (the
IDSNN reference code's values).

Every run keeps one checkpoint per model under --out-dir, named by its configuration's hash: an interrupted
run started again continues after the last finished epoch, and a finished model is loaded, not retrained.
The Fashion-MNIST files come from Debian's dataset-fashion-mnist (`apt-get install dataset-fashion-mnist`);
nothing is downloaded. ``main(argv)`` returns the figures as a dict.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import datasets  # noqa: E402  (examples/datasets.py)

from neurocompile import api  # noqa: E402
from neurocompile.torch import (History, export_onnx, fit, init_student_from_teacher, resnet,  # noqa: E402
                                spiking_resnet)
from neurocompile.torch.modules import LIF  # noqa: E402

ROOT = os.path.dirname(HERE)
# name -> (initialized from the teacher, distilled from it)
VARIANTS = {"direct": (False, False), "init": (True, False), "init+kd": (True, True)}
LABELS = {"direct": "direct training (CE)", "init": "init only (CE)", "init+kd": "IDSNN (init + KD)"}
# The sizes --quick changes; an option given explicitly wins over both.
SIZES = dict(train_limit=10000, test_limit=None, teacher_epochs=8, epochs=8, lava_samples=8)
QUICK = dict(train_limit=300, test_limit=200, teacher_epochs=1, epochs=1, lava_samples=2)


def positive(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def add_options(ap: argparse.ArgumentParser) -> None:
    """The data, model and training options (shared with benchmarks/idsnn_convergence.py)."""
    ap.add_argument("--train-limit", type=positive, help="training images, the first N of 60,000 (default 10,000)")
    ap.add_argument("--test-limit", type=positive, help="test images (default: all 10,000)")
    ap.add_argument("--teacher-width", type=positive, default=16)
    ap.add_argument("--teacher-blocks", type=positive, nargs="+", default=[2, 2, 2], help="blocks per stage")
    ap.add_argument("--teacher-epochs", type=positive, help="default 8")
    ap.add_argument("--teacher-lr", type=float, default=0.05)
    ap.add_argument("--student-width", type=positive, default=8)
    ap.add_argument("--student-blocks", type=positive, nargs="+", default=[1, 1, 1])
    ap.add_argument("--T", type=positive, default=6, help="student time steps")
    ap.add_argument("--epochs", type=positive, help="student epochs (default 8)")
    ap.add_argument("--lr", type=float, default=0.1, help="student learning rate, the same for every variant")
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--T-kd", dest="T_kd", type=float, default=4.0)
    ap.add_argument("--batch", type=positive, default=64)
    ap.add_argument("--threads", type=positive, default=2, help="torch CPU threads")
    ap.add_argument("--out-dir", help="checkpoints and outputs (default out/idsnn-fmnist, with --quick "
                                      "out/idsnn-fmnist-quick)")
    ap.add_argument("--quick", action="store_true", help="300 training and 200 test images, one epoch each (unless "
                    "given): a smoke test of the whole path in seconds (accuracies mean nothing)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars or tables (main() returns the figures)")


def finish_options(a: argparse.Namespace) -> argparse.Namespace:
    """The sizes left unset from SIZES (QUICK with --quick), and the output folder."""
    for key in SIZES:
        if getattr(a, key, SIZES) is None:  # an option of this parser, not given
            setattr(a, key, (QUICK if a.quick else SIZES)[key])
    if a.out_dir is None:
        a.out_dir = os.path.join(ROOT, "out", "idsnn-fmnist" + ("-quick" if a.quick else ""))
    return a


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(ap)
    ap.add_argument("--seed", type=int, default=0, help="the student's seed (the teacher's is always 0)")
    ap.add_argument("--skip-deploy", action="store_true", help="train only")
    ap.add_argument("--lava-samples", type=positive, help="test images run spike for spike on lava-sim (default 8)")
    return finish_options(ap.parse_args(argv))


# ---- data and training ---------------------------------------------------------------------------
class Data:
    """Fashion-MNIST cut to the run's sizes, as tensors, with the evaluation loader."""

    def __init__(self, a: argparse.Namespace):
        xtr, ytr, xte, yte = datasets.load_training("fashion-mnist", a.train_limit)
        if a.test_limit:
            xte, yte = xte[:a.test_limit], yte[:a.test_limit]
        self.xtr, self.ytr, self.xte, self.yte = xtr, ytr, xte, yte
        self.test = DataLoader(TensorDataset(torch.from_numpy(xte), torch.from_numpy(yte)), batch_size=500)

    def train_loader(self, batch: int, seed: int) -> DataLoader:
        return DataLoader(TensorDataset(torch.from_numpy(self.xtr), torch.from_numpy(self.ytr)), batch_size=batch,
                          shuffle=True, generator=torch.Generator().manual_seed(seed))


def _checkpoint(a: argparse.Namespace, role: str, config: dict) -> str:
    """The checkpoint of one model: its role plus a hash of everything that shapes its training."""
    config = dict(config, train=a.train_limit, test=a.test_limit, batch=a.batch)
    tag = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:10]
    os.makedirs(a.out_dir, exist_ok=True)
    return os.path.join(a.out_dir, f"{role}-{tag}.pt")


def teacher_config(a: argparse.Namespace) -> dict:
    return dict(width=a.teacher_width, blocks=list(a.teacher_blocks), epochs=a.teacher_epochs, lr=a.teacher_lr)


def train_teacher(a: argparse.Namespace, data: Data) -> tuple[torch.nn.Module, History]:
    """The ANN teacher (seed 0), trained or resumed from its checkpoint."""
    torch.manual_seed(0)
    teacher = resnet(None, 10, 1, a.teacher_width, blocks=a.teacher_blocks)
    hist = fit(teacher, data.train_loader(a.batch, 0), a.teacher_epochs, lr=a.teacher_lr, cosine=True,
               eval_loader=data.test, checkpoint=_checkpoint(a, "teacher", teacher_config(a)),
               progress=not a.quiet, desc="teacher ")
    return teacher.eval(), hist


def train_student(a: argparse.Namespace, data: Data, teacher: torch.nn.Module, variant: str, seed: int,
                  epochs: int | None = None) -> tuple[torch.nn.Module, History]:
    """One student of ``variant`` (see VARIANTS) from ``seed``, trained or resumed from its checkpoint."""
    init, kd = VARIANTS[variant]
    epochs = a.epochs if epochs is None else epochs
    torch.manual_seed(seed)
    student = spiking_resnet(None, 10, 1, a.student_width, blocks=a.student_blocks, time_steps=a.T)
    if init:
        init_student_from_teacher(teacher, student)
    config = dict(width=a.student_width, blocks=list(a.student_blocks), T=a.T, epochs=epochs, lr=a.lr, seed=seed,
                  variant=variant, teacher=teacher_config(a) if (init or kd) else None,
                  kd=(a.alpha, a.T_kd) if kd else None)
    hist = fit(student, data.train_loader(a.batch, seed), epochs, teacher if kd else None, lr=a.lr, alpha=a.alpha,
               T_kd=a.T_kd, cosine=True, eval_loader=data.test, checkpoint=_checkpoint(a, f"{variant}-s{seed}", config),
               progress=not a.quiet, desc=f"{variant} seed {seed} ")
    return student.eval(), hist


# ---- deployment ----------------------------------------------------------------------------------
def _shown(arg: str) -> str:
    """A path as the user would type it here: relative where it lies below the working folder."""
    if not os.path.isabs(arg):
        return arg
    rel = os.path.relpath(arg)
    return arg if rel.startswith("..") else rel


def _cli(say, *args: str) -> None:
    """One neurocompile command, printed as a user would type it, run in this interpreter; its output passes
    through. A failure raises (the example stops with the command's error above)."""
    say("$ neurocompile " + " ".join(_shown(x) for x in args))
    subprocess.run([sys.executable, "-m", "neurocompile", *args], check=True)


def _torch_spikes(student: torch.nn.Module, x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """The PyTorch student's output and its spikes per LIF layer (execution order), from forward hooks."""
    counts: list[int] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: counts.append(int(o.sum())))
             for m in student.modules() if isinstance(m, LIF)]
    try:
        with torch.no_grad():
            out = student(torch.from_numpy(x)).numpy()
    finally:
        for h in hooks:
            h.remove()
    return out, counts


def lava_check(path: str, student: torch.nn.Module, x: np.ndarray) -> dict:
    """Spike for spike on lava-sim: float (against the PyTorch student: every LIF layer's spike count, the
    logits to float32 rounding) and fixed point (against the reference simulator's integer model: every
    layer's spikes and the readout at every step, equal)."""
    want, want_counts = _torch_spikes(student, x)
    snn = api.convert(api.load(path), target="lava-sim")
    res = api.compile(snn, "lava-sim").run(x)
    counts = [res.spikes[n.name]["pos"] for n in snn.topo() if n.op == "LIF"]
    q = api.convert(api.load(path), target="lava-sim", fixed_point=True)
    ref = api.simulate(q, x, exact=True)
    fixed = api.compile(q, "lava-sim", fixed_point=True).run(x)
    return {"samples": len(x), "layers": len(counts), "spikes": int(sum(want_counts)),
            "torch_layer_spikes": want_counts, "float_layer_spikes": counts,
            "float_spikes_equal": counts == want_counts,
            "float_max_abs_error": float(np.abs(res.output - want).max()),
            "float_argmax_equal": bool((res.output.argmax(1) == want.argmax(1)).all()),
            "fixed_spikes": int(sum(v["pos"] for v in ref.spikes.values())),
            "fixed_spikes_equal": fixed.spikes == ref.spikes,
            "fixed_readout_equal": bool(np.array_equal(fixed.per_step, ref.per_step))}


def deploy(a: argparse.Namespace, data: Data, student: torch.nn.Module, say) -> dict:
    """Export the student, evaluate it over the test set (float32 and fixed point), run a few images on lava-sim,
    estimate Loihi 2."""
    onnx = os.path.join(a.out_dir, "student.onnx")
    x_path, y_path = os.path.join(a.out_dir, "test_images.npy"), os.path.join(a.out_dir, "test_labels.npy")
    few = os.path.join(a.out_dir, "test_images_few.npy")
    export_onnx(student, torch.from_numpy(data.xte[:2]), onnx, input_name="image", output_name="logits")
    np.save(x_path, data.xte)
    np.save(y_path, data.yte)
    np.save(few, data.xte[:a.lava_samples])
    quiet = ["--quiet"] if a.quiet else []
    per_step = {}
    for mode, extra in (("float", []), ("fixed", ["--fixed-point"])):
        report = os.path.join(a.out_dir, f"evaluate-{mode}.json")
        _cli(say, "evaluate", onnx, "--input", x_path, "--labels", y_path, "--json", report, *extra, *quiet)
        with open(report) as f:
            per_step[mode] = [row["snn_accuracy"] for row in json.load(f)["per_step"]]
    torch_acc = datasets.accuracy(datasets.model_logits(student, data.xte, 500), data.yte)
    say(f"test accuracy at T = {a.T}: PyTorch student {100 * torch_acc:.2f} %, neurocompile float32 "
        f"{100 * per_step['float'][-1]:.2f} %, fixed point (8-bit weights, Loihi 2's formats) "
        f"{100 * per_step['fixed'][-1]:.2f} %")
    t = time.perf_counter()
    lava = lava_check(onnx, student, data.xte[:a.lava_samples])
    lava["seconds"] = time.perf_counter() - t
    fixed_equal = lava["fixed_spikes_equal"] and lava["fixed_readout_equal"]
    differ = sum(a != b for a, b in zip(lava["torch_layer_spikes"], lava["float_layer_spikes"]))  # float32 boundary
    say(f"lava-sim, {lava['samples']} test images, {lava['layers']} LIF layers, {lava['spikes']:,} spikes: float "
        f"{'spike for spike' if lava['float_spikes_equal'] else f'{differ} of the layer spike counts differ'} with "
        f"the PyTorch student (max "
        f"|logit error| {lava['float_max_abs_error']:.1e}); fixed point (Lava's fixed_pt models) "
        f"{'spike for spike, readout equal' if fixed_equal else 'DIFFERS'}"
        f" with the reference simulator's integer model ({lava['fixed_spikes']:,} spikes); {lava['seconds']:.1f} s")
    _cli(say, "estimate", onnx, "--input", few)
    return {"onnx": onnx, "torch_accuracy": torch_acc, "evaluate_per_step": per_step["float"],
            "evaluate_fixed_per_step": per_step["fixed"], "lava": lava}


# ---- the example ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    a = parse(argv)
    return datasets.run_with_threads(a.threads, _main, a)


def _main(a: argparse.Namespace) -> dict:
    say = datasets.printer(a.quiet)
    t0 = time.perf_counter()
    data = Data(a)
    say(f"Fashion-MNIST: {len(data.xtr):,} training and {len(data.xte):,} test images; torch threads "
        f"{torch.get_num_threads()}; checkpoints in {_shown(a.out_dir)}")
    teacher, th = train_teacher(a, data)
    say(f"teacher (ResNet width {a.teacher_width}, blocks {a.teacher_blocks}, {a.teacher_epochs} epochs): test "
        f"accuracy {100 * th.accuracy[-1]:.2f} %")
    student, sh = train_student(a, data, teacher, "init+kd", a.seed)
    say(f"student (spiking ResNet width {a.student_width}, blocks {a.student_blocks}, LIF, T = {a.T}; init + KD, "
        f"{a.epochs} epochs, seed {a.seed}): test accuracy {100 * sh.accuracy[-1]:.2f} % "
        f"(per epoch: {', '.join(f'{100 * v:.2f}' for v in sh.accuracy)})")
    res = {"teacher": asdict(th), "student": asdict(sh), "n_train": len(data.xtr), "n_test": len(data.xte)}
    if not a.skip_deploy:
        res.update(deploy(a, data, student, say))
    res["total_s"] = time.perf_counter() - t0
    say(f"total {res['total_s']:.1f} s")
    return res


if __name__ == "__main__":
    main()
