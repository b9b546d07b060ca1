"""Reference-simulator throughput beside every baseline a reader would assume: the plain ReLU ANN run T times
(the twin without quantizers: what a ReLU network costs), the CQReLU ANN run T times (its floors are slow in
torch), the SNN in its default float32 mode, in its exact float64 mode, and with early stop. On a generated
CIFAR-sized VGG-11 (L = 8, random inputs) and, when out/twins exists (examples/train_twins.py), on the trained
28x28 twin CNN with its test images, where the network is busy until the last step and early stop gains nothing.

    .venv/bin/python benchmarks/throughput.py [--device cpu|cuda] [--rounds 3] [--batch 64] [--steps 16]

SpikingJelly beside neurocompile: benchmarks/vs_spikingjelly.py.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from _common import ROOT, export_tmp, machine, models, table

from neurocompile import api
from neurocompile.ir import interpreter

sys.path.insert(0, os.path.join(ROOT, "examples"))


def cases(batch: int):
    """(name, ReLU ANN, CQReLU ANN, CQReLU ONNX path, inputs)."""
    torch.manual_seed(0)
    relu, shape = models.vgg11(act="relu", levels=8)
    torch.manual_seed(0)
    cq, _ = models.vgg11(act="cqrelu", levels=8)
    path, _ = export_tmp(models.vgg11, "bn", act="cqrelu", levels=8)
    yield ("VGG-11 (generated weights, random inputs)", relu.eval(), cq.eval(), path,
           np.random.default_rng(0).uniform(0, 1, (batch, *shape)).astype(np.float32))
    twins = os.path.join(ROOT, "out", "twins")
    if os.path.exists(os.path.join(twins, "cqrelu.onnx")):
        import train_twins

        yield ("twin CNN (trained, test images)", train_twins.load_twin(os.path.join(twins, "relu.pt")).eval(),
               train_twins.load_twin(os.path.join(twins, "cqrelu.pt")).eval(), os.path.join(twins, "cqrelu.onnx"),
               np.load(os.path.join(twins, "test_x.npy"))[:batch])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=16)
    a = ap.parse_args()
    T, B = a.steps, a.batch
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    print(f"machine: {machine()}; device {a.device}; batch {B}, T={T}, median of {a.rounds} interleaved rounds")
    for name, relu, cq, path, x in cases(B):
        snn = api.convert(api.load(path), steps=T)
        xt = torch.tensor(x, device=a.device)
        relu, cq = relu.to(a.device), cq.to(a.device)
        fast = api.compile(snn, "reference", device=a.device)
        exact = api.compile(snn, "reference", device=a.device, exact=True)
        runs = {
            f"ANN ReLU (plain twin) x {T}": lambda: [relu(xt) for _ in range(T)][-1],
            f"ANN CQReLU x {T}": lambda: [cq(xt) for _ in range(T)][-1],
            f"SNN default ({fast.precision.split(' (')[0]})": lambda: fast.run(x, record=False),
            f"SNN exact ({exact.run(x[:2], record=False).precision.split(' (')[0]})":
                lambda: exact.run(x, record=False),
            "SNN default, early stop": lambda: fast.run(x, record=False, early_stop=True),
        }
        secs = {k: [] for k in runs}
        out = {}
        with torch.no_grad():
            for fn in runs.values():
                fn()
            for _ in range(a.rounds):
                for k, fn in runs.items():
                    sync()
                    t0 = time.perf_counter()
                    out[k] = fn()
                    sync()
                    secs[k].append(time.perf_counter() - t0)
        ann = interpreter.run1(snn, x, "float64")
        base = float(np.median(secs[next(iter(runs))]))
        rows = []
        for k, v in secs.items():
            t = float(np.median(v))
            r = out[k]
            if hasattr(r, "output"):
                agree = f"{100 * float((r.output.argmax(1) == ann.argmax(1)).mean()):.1f}"
                note = f"quiescent at {r.quiescent_at}" if r.quiescent_at is not None else ""
            else:
                agree, note = "-", ""
            rows.append([k, f"{B / t:,.1f}", f"{base / t:.2f}", agree, note])
        print(f"\n{name}: CQReLU L=8, schedule T_wake={snn.schedule.t_wake}, settles by step "
              f"{snn.schedule.predicted_settle}")
        print(table(rows, ["run", "images/s", "vs plain ANN x T", "argmax agreement % (float64 ANN)", ""]))


if __name__ == "__main__":
    main()
