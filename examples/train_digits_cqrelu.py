"""Train the bundled example: a small CQReLU CNN on scikit-learn's digits (8x8), export it to ONNX.

    python examples/train_digits_cqrelu.py            # ~20 s on 2 CPU cores
    neurocompile examples/digits_cqrelu.onnx --input examples/digits_test.npy

Writes examples/digits_cqrelu.onnx (CQReLU as the standard-op chain Clip -> Mul -> Floor -> Div,
so onnxruntime runs it as the ANN reference) and examples/digits_test.npy / digits_test_labels.npy
(the first 100 held-out images). No downloads: the digits ship with scikit-learn.
"""
from __future__ import annotations

import argparse
import os
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))


class CQReLU(nn.Module):
    """(λ/L) floor(clip(x, 0, λ) L/λ) with the straight-through gradient of clip during training."""

    def __init__(self, levels: int, clip: float = 1.0):
        super().__init__()
        self.levels, self.clip = levels, clip

    def forward(self, x):
        c = torch.clamp(x, 0, self.clip)
        q = torch.floor(c * (self.levels / self.clip)) / (self.levels / self.clip)
        return c + (q - c).detach() if self.training else q


def build(levels: int) -> nn.Module:
    def block(a, b):
        return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), CQReLU(levels)]

    return nn.Sequential(*block(1, 16), *block(16, 32), nn.MaxPool2d(2), *block(32, 32), nn.AvgPool2d(2),
                         nn.Flatten(), nn.Linear(32 * 2 * 2, 10))


def data(seed: int = 0):
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(x))
    test, train = idx[:360], idx[360:]
    return x[train], y[train], x[test], y[test]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default=os.path.join(HERE, "digits_cqrelu.onnx"))
    a = ap.parse_args()
    torch.manual_seed(0)
    xtr, ytr, xte, yte = data()
    model = build(a.levels)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, a.epochs)
    xt, yt = torch.tensor(xtr), torch.tensor(ytr)
    for epoch in range(a.epochs):
        model.train()
        for i in torch.randperm(len(xt)).split(64):
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[i]), yt[i]).backward()
            opt.step()
        sched.step()
    model.eval()
    with torch.no_grad():
        acc = (model(torch.tensor(xte)).argmax(1).numpy() == yte).mean()
    print(f"CQReLU CNN, L={a.levels}: test accuracy {100 * acc:.1f} % on {len(yte)} held-out digits")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, torch.tensor(xte[:2]), a.out, input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}}, opset_version=17)
    np.save(os.path.join(os.path.dirname(a.out), "digits_test.npy"), xte[:100])
    np.save(os.path.join(os.path.dirname(a.out), "digits_test_labels.npy"), yte[:100])
    print(f"wrote {a.out} and 100 test images beside it")


if __name__ == "__main__":
    main()
