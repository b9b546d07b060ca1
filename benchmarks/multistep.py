"""Reference simulator, step by step vs multi-step (layer by layer over all T steps), float64 and float32: seconds
per batch and the check that both modes give the same readout, spikes and per-layer records.

    .venv/bin/python benchmarks/multistep.py [--batch 256] [--rounds 3]
"""
import argparse
import os
import time

import numpy as np
import torch
from _common import ROOT, export_tmp, machine, models, table

from neurocompile import api
from neurocompile.targets.reference.simulator import ReferenceSimulator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median is shown")
    a = ap.parse_args()
    cases = [("digits CNN (bundled)", os.path.join(ROOT, "examples", "digits_cqrelu.onnx"),
              np.load(os.path.join(ROOT, "examples", "digits_test.npy")))]
    for b in (models.vgg, models.resnet):
        torch.manual_seed(0)
        path, shape = export_tmp(b, "bn", act="cqrelu", levels=8)
        cases.append((f"{b.__name__} (generated)", path,
                      np.random.default_rng(0).uniform(0, 1, (a.batch, *shape)).astype(np.float32)))
    rows = []
    for name, path, x in cases:
        snn = api.convert(api.load(path))
        for dt in ("float64", "float32"):
            sim = ReferenceSimulator(snn, dtype=dt)
            s, m = sim.run(x, record_layers=True), sim.run(x, record_layers=True, multi_step=True)
            same = (np.array_equal(s.per_step, m.per_step) and s.spikes == m.spikes
                    and all(np.array_equal(s.layers[k], m.layers[k]) for k in s.layers))
            times = {"step": [], "multi": []}
            for _ in range(a.rounds):
                for mode in times:
                    t0 = time.perf_counter()
                    sim.run(x, record=False, multi_step=mode == "multi")
                    times[mode].append(time.perf_counter() - t0)
            ts, tm = (float(np.median(times[k])) for k in ("step", "multi"))
            rows.append([name, dt, len(x), f"{ts:.3f}", f"{tm:.3f}", f"{ts / tm:.2f}x", "yes" if same else "NO"])
    print(f"machine: {machine()}")
    print(table(rows, ["network", "dtype", "batch", "step s", "multi-step s", "speed-up", "same numbers"]))


if __name__ == "__main__":
    main()
