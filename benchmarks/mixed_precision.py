"""Where float64 membranes fed by float32 synaptic currents land between the float32 default and float64
throughout, beside the exact mode (count domain, every decision proved): speed, logit error against the float64
ANN, and argmax agreement, on the trained twin CNN
(examples/train_twins.py, out/twins; trained there first if missing) and the bundled digits CNN.

    .venv/bin/python benchmarks/mixed_precision.py [--images 1024] [--rounds 3]

"mixed" is measured, not offered: the connections run in float32 (mkldnn), each neuron layer casts its current
to float64, keeps its membrane there and sends float32 spikes (exact: small integers times its threshold).
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
from _common import ROOT, machine, table

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.targets.reference import simulator

sys.path.insert(0, os.path.join(ROOT, "examples"))


def mixed_step(original):
    def step(n, state, x, wake_seen, counts, bias=None):
        val = original(n, state, x.double(), wake_seen, counts, None if bias is None else bias.double())
        out = val.float()
        out._nc_silent = getattr(val, "_nc_silent", None)  # keep the silent-input shortcut
        return out
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args()
    torch.set_num_threads(2)
    twins = os.path.join(ROOT, "out", "twins")
    if not os.path.exists(os.path.join(twins, "cqrelu.onnx")):
        import train_twins

        train_twins.main(["--out", twins])
    cases = [("twin CNN (trained)", os.path.join(twins, "cqrelu.onnx"), np.load(os.path.join(twins, "test_x.npy"))),
             ("digits CNN (bundled)", os.path.join(ROOT, "examples", "digits_cqrelu.onnx"),
              np.load(os.path.join(ROOT, "examples", "digits_test.npy")))]
    original = simulator.step_stateful
    print(f"machine: {machine()}; batch {a.batch}, default T, median of {a.rounds} interleaved rounds")
    for name, path, x in cases:
        x = x[: a.images].astype(np.float32)
        snn = api.convert(api.load(path))
        ann = interpreter.run1(snn, x, "float64")
        scale = np.abs(ann).max()
        sims = {"float32 (default)": (api.compile(snn, "reference"), original),
                "mixed: float32 currents, float64 membranes": (api.compile(snn, "reference"), mixed_step(original)),
                "float64 throughout": (api.compile(snn, "reference", dtype="float64"), original),
                "exact (float32, each decision proved or made in float64)": (api.compile(snn, "reference", exact=True),
                                                                             original)}
        secs, outs = {k: [] for k in sims}, {}
        for _ in range(a.rounds):
            for k, (sim, step) in sims.items():
                simulator.step_stateful = step
                try:
                    t0 = time.perf_counter()
                    outs[k] = np.concatenate([sim.run(x[i:i + a.batch], record=False).output
                                              for i in range(0, len(x), a.batch)])
                    secs[k].append(time.perf_counter() - t0)
                finally:
                    simulator.step_stateful = original
        rows = []
        for k in sims:
            err = np.abs(outs[k] - ann).max(axis=1) / scale
            rows.append([k, f"{len(x) / np.median(secs[k]):,.0f}", f"{err.max():.1e}",
                         int((err > 1e-3).sum()), f"{100 * (outs[k].argmax(1) == ann.argmax(1)).mean():.2f}"])
        print(f"\n{name}: {len(x)} images, T={snn.schedule.steps}")
        print(table(rows, ["precision", "images/s", "max rel. logit error", "samples off by a level (> 1e-3)",
                           "argmax agreement %"]))


if __name__ == "__main__":
    main()
