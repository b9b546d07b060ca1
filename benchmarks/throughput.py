"""Reference-simulator throughput on a CIFAR-sized VGG-11 CQReLU SNN (L = 8, T = 16, batch 64) against
running the same network's ANN forward T times in torch on the same CPU.

    .venv/bin/python benchmarks/throughput.py [--device cpu|cuda] [--batches 3]
"""
import argparse
import time

import numpy as np
import torch
from _common import export_tmp, machine, models, table

from neurocompile import api, interpreter


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batches", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=16)
    a = ap.parse_args()
    L, T, B = 8, a.steps, a.batch
    torch.manual_seed(0)
    net, shape = models.vgg11(act="cqrelu", levels=L)
    path, _ = export_tmp(models.vgg11, "bn", act="cqrelu", levels=L)
    snn = api.convert(api.load(path), steps=T)
    x = np.random.default_rng(0).uniform(0, 1, (B, *shape)).astype(np.float32)
    sim = api.compile(snn, "reference", device=a.device, dtype="float32")
    xt = torch.tensor(x, device=a.device)
    net = net.to(a.device)

    def timed(fn):
        fn()  # warm-up
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(a.batches):
            out = fn()
        if a.device.startswith("cuda"):
            torch.cuda.synchronize()
        return (time.perf_counter() - t0) / a.batches, out

    with torch.no_grad():
        t_ann, _ = timed(lambda: [net(xt) for _ in range(T)][-1])
    t_snn, res = timed(lambda: sim.run(x, steps=T, record=False))
    t_early, res_e = timed(lambda: sim.run(x, steps=T, record=False, early_stop=True))
    ann = interpreter.run1(snn, x, "float32")
    err = np.abs(res.output - ann).max() / np.abs(ann).max()
    rows = [[f"ANN forward x {T} (torch)", f"{B / t_ann:.1f}", "1.00"],
            [f"SNN reference sim, T={T}", f"{B / t_snn:.1f}", f"{t_ann / t_snn:.2f}"],
            [f"SNN reference sim, early stop (quiescent at {res_e.quiescent_at})", f"{B / t_early:.1f}", f"{t_ann / t_early:.2f}"]]
    print(f"machine: {machine()}; device {a.device}; VGG-11 CQReLU L={L}, batch {B}, float32")
    print(table(rows, ["run", "images/s", "speed vs ANN x T"]))
    print(f"SNN vs ANN (float32) max rel. logit error at T={T}: {err:.2e}")


if __name__ == "__main__":
    main()
