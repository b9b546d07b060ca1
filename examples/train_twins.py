"""Train two twin CNNs (same architecture, same seed, same data order): one with CQReLU, one with ReLU.

    python examples/train_twins.py                          # mnist5k here: about a minute on 2 CPU cores
    python examples/train_twins.py --data fashion-mnist     # (apt-get install dataset-fashion-mnist)
    python examples/train_twins.py --data digits --out out/twins-digits
    python benchmarks/vs_spikingjelly.py --twins out/twins  # what the twins are for

The architecture is the small "Fashion-MNIST CNN" (3 conv + 2 fully connected layers):

    conv 1->16 3x3 pad 1, BN, act          28x28
    conv 16->32 3x3 stride 2 pad 1, BN, act  14x14
    conv 32->32 3x3 stride 2 pad 1, BN, act   7x7
    flatten, fc -> 128, act, fc -> 10

(8x8 digits: 8 -> 4 -> 2). ``act`` is neurocompile.torch's CQReLU (L = 8 levels, clip 1; straight-through
gradient) for the twin neurocompile converts losslessly, and ``nn.ReLU`` for the twin that rate-coding
converters such as SpikingJelly's ann2snn (and neurocompile's calibrated, lossy ReLU path) take.
Both twins start from the same initial weights and see the same batches.

Files written to ``--out`` (default out/twins; bundled files in examples/ are never touched):

    cqrelu.onnx   the CQReLU twin, export_onnx(cqrelu="chain", fold_bn=True): Clip -> Mul -> Floor -> Div
    relu.onnx     the ReLU twin, BN folded (for api.convert(..., calibration=...))
    relu.pt       {"state_dict", "config", "class": "TwinCNN", ...}; rebuild with :func:`load_relu`
    cqrelu.pt     the same for the CQReLU twin (:func:`load_twin`)
    test_x.npy    float32 (N, 1, H, W) in [0, 1];  test_y.npy  int64 (N,)
    calib_x.npy   256 training images (float32), calibration data for the ReLU converters

``main(argv)`` returns the figures as a dict (accuracies, times, paths).
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
ROOT = os.path.dirname(HERE)
if HERE not in sys.path:
    sys.path.insert(0, HERE)
import datasets  # noqa: E402  (examples/datasets.py)

from neurocompile.torch import CQReLU, export_onnx  # noqa: E402

PREFERENCE = ("fashion-mnist", "mnist5k", "digits")  # the default --data: the first one installed
EPOCHS = {"fashion-mnist": 2, "mnist5k": 8, "digits": 30}
FILES = ("cqrelu.onnx", "relu.onnx", "relu.pt", "test_x.npy", "test_y.npy", "calib_x.npy")
N_CALIB = 256


class TwinCNN(nn.Module):
    """3 conv (BN, act) + 2 fully connected layers; ``act`` is "relu" or "cqrelu" (``levels``, ``clip``).
    Each activation is its own module (SpikingJelly's converter needs ReLU modules, not functions)."""

    def __init__(self, act: str = "relu", size: int = 28, in_ch: int = 1, widths=(16, 32, 32), hidden: int = 128,
                 classes: int = 10, levels: int = 8, clip: float = 1.0):
        super().__init__()
        if act not in ("relu", "cqrelu"):
            raise ValueError(f"act must be 'relu' or 'cqrelu', got {act!r}")
        self.config = dict(act=act, size=int(size), in_ch=int(in_ch), widths=tuple(int(w) for w in widths),
                           hidden=int(hidden), classes=int(classes), levels=int(levels), clip=float(clip))

        def a():
            return nn.ReLU() if act == "relu" else CQReLU(levels, clip)

        c1, c2, c3 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_ch, c1, 3, 1, 1, bias=False), nn.BatchNorm2d(c1), a(),
            nn.Conv2d(c1, c2, 3, 2, 1, bias=False), nn.BatchNorm2d(c2), a(),
            nn.Conv2d(c2, c3, 3, 2, 1, bias=False), nn.BatchNorm2d(c3), a())
        s = (((size + 1) // 2) + 1) // 2  # two stride-2 convs with padding 1
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(c3 * s * s, hidden), a(), nn.Linear(hidden, classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def build(act: str, size: int, seed: int, **kw) -> TwinCNN:
    """The twin for ``act``, initialized from ``seed`` (both twins get the same initial weights)."""
    torch.manual_seed(seed)
    return TwinCNN(act, size, **kw)


def load_twin(path: str) -> TwinCNN:
    """Rebuild a twin from its ``relu.pt`` / ``cqrelu.pt`` (eval mode)."""
    ck = torch.load(path, map_location="cpu")
    model = TwinCNN(**ck["config"])
    model.load_state_dict(ck["state_dict"])
    return model.eval()


load_relu = load_twin


def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray, batch: int = 500) -> float:
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(torch.from_numpy(x[i:i + batch])) for i in range(0, len(x), batch)])
    return float((logits.argmax(1).numpy() == y).mean())


def fit(model: nn.Module, name: str, xtr, ytr, xte, yte, epochs: int, lr: float, batch: int, seed: int,
        say) -> list[dict]:
    """Adam, cosine learning rate, cross entropy; the batch order depends only on ``seed``."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1))
    xt, yt = torch.from_numpy(xtr), torch.from_numpy(ytr)
    hist = []
    for ep in range(epochs):
        t0 = time.perf_counter()
        model.train()
        tot, n = 0.0, 0
        for i in torch.randperm(len(xt), generator=g).split(batch):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xt[i]), yt[i])
            loss.backward()
            opt.step()
            tot, n = tot + float(loss) * len(i), n + len(i)
        sched.step()
        acc = evaluate(model, xte, yte)
        hist.append(dict(epoch=ep + 1, loss=tot / max(n, 1), test_acc=acc, s=time.perf_counter() - t0))
        say(f"  {name:<6} epoch {ep + 1:>2}/{epochs}  loss {tot / max(n, 1):.4f}  test acc {100 * acc:6.2f} %  "
            f"({hist[-1]['s']:.1f} s)")
    model.eval()
    return hist


def default_data() -> str:
    """The first installed of fashion-mnist, mnist5k, digits."""
    for name in PREFERENCE:
        try:
            if name == "fashion-mnist":
                datasets.fashion_mnist_dir()
            elif name == "mnist5k":
                datasets.mnist5k_path()
            return name
        except datasets.DatasetUnavailable:
            continue
    return "digits"


def parse(argv):
    ap = argparse.ArgumentParser(
        description="Train twin CNNs (CQReLU and ReLU, same architecture and seed) and write them for "
                    "benchmarks/vs_spikingjelly.py.",
        epilog="Writes to --out: " + ", ".join(FILES) + " (and cqrelu.pt). Nothing is downloaded.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", choices=PREFERENCE, default=None,
                    help="data set (default: the first installed of fashion-mnist, mnist5k, digits; "
                         "here %s)" % default_data())
    ap.add_argument("--epochs", type=int, default=None,
                    help="training epochs per twin (default: %s)" % ", ".join(f"{k} {v}" for k, v in EPOCHS.items()))
    ap.add_argument("--out", default=os.path.join("out", "twins"),
                    help="output folder; a relative path is taken from the repository root (default: out/twins)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the batch order (default: 0)")
    ap.add_argument("--levels", type=int, default=8, help="CQReLU levels L (default: 8)")
    ap.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate, cosine schedule (default: 3e-3)")
    ap.add_argument("--batch", type=int, default=64, help="training batch size (default: 64)")
    ap.add_argument("--train-limit", type=int, default=None, help="train on at most this many images (default: all)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads while training (default: 2)")
    ap.add_argument("--quiet", action="store_true", help="print nothing (main() still returns the figures)")
    a = ap.parse_args(argv)
    a.data = a.data or default_data()
    a.epochs = EPOCHS[a.data] if a.epochs is None else a.epochs
    if a.epochs < 0:
        ap.error("--epochs must be >= 0")
    out = a.out if os.path.isabs(a.out) else os.path.join(ROOT, a.out)
    if os.path.realpath(out) == os.path.realpath(HERE):
        ap.error("--out must not be examples/ (its bundled files are never overwritten)")
    a.out = out
    return a


def main(argv: list[str] | None = None) -> dict:
    a = parse(argv)
    return datasets.run_with_threads(a.threads, _main, a)


def _main(a) -> dict:
    say = datasets.printer(a.quiet)
    t0 = time.perf_counter()
    xtr, ytr, xte, yte = datasets.load_training(a.data, a.train_limit)
    size = xtr.shape[-1]
    say(f"data {a.data}: {len(xtr)} training and {len(xte)} test images of {size}x{size}; seed {a.seed}, "
        f"{a.epochs} epochs, batch {a.batch}, {torch.get_num_threads()} threads")

    res: dict = {"data": a.data, "epochs": a.epochs, "seed": a.seed, "levels": a.levels, "n_train": len(xtr),
                 "n_test": len(xte), "size": size, "out": a.out}
    models = {}
    for act in ("cqrelu", "relu"):
        t1 = time.perf_counter()
        m = build(act, size, a.seed, levels=a.levels)
        hist = fit(m, act, xtr, ytr, xte, yte, a.epochs, a.lr, a.batch, a.seed, say)
        models[act] = m
        res[f"{act}_history"] = hist
        res[f"{act}_acc"] = evaluate(m, xte, yte)
        res[f"{act}_train_s"] = time.perf_counter() - t1

    os.makedirs(a.out, exist_ok=True)
    ex = torch.from_numpy(xte[:2])
    p = {k: os.path.join(a.out, k) for k in (*FILES, "cqrelu.pt")}
    export_onnx(models["cqrelu"], ex, p["cqrelu.onnx"], cqrelu="chain", fold_bn=True,
                input_name="image", output_name="logits")
    export_onnx(models["relu"], ex, p["relu.onnx"], fold_bn=True, input_name="image", output_name="logits")
    for act in ("relu", "cqrelu"):
        m = models[act]
        torch.save({"class": "TwinCNN", "module": "examples/train_twins.py", "config": m.config,
                    "state_dict": m.state_dict(), "data": a.data, "seed": a.seed, "epochs": a.epochs,
                    "test_acc": res[f"{act}_acc"]}, p[f"{act}.pt"])
    np.save(p["test_x.npy"], np.ascontiguousarray(xte, dtype=np.float32))
    np.save(p["test_y.npy"], yte.astype(np.int64))
    np.save(p["calib_x.npy"], np.ascontiguousarray(xtr[:N_CALIB], dtype=np.float32))
    res["files"] = p
    res["total_s"] = time.perf_counter() - t0

    say(f"twins ({a.epochs} epochs each, {res['cqrelu_train_s']:.1f} s + {res['relu_train_s']:.1f} s):")
    say(f"  CQReLU twin (L={a.levels}, clip 1) test accuracy {100 * res['cqrelu_acc']:6.2f} %  ({len(yte)} images)")
    say(f"  ReLU twin                  test accuracy {100 * res['relu_acc']:6.2f} %  ({len(yte)} images)")
    say(f"wrote {', '.join(FILES)}, cqrelu.pt to {a.out}; total {res['total_s']:.1f} s")
    return res


if __name__ == "__main__":
    main()
