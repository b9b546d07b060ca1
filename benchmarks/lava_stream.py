"""Seconds per sample on lava-sim for N samples: the bundled digits CNN and a residual CIFAR-sized net
(3x32x32, generated weights), with the check that every readout equals the reference simulator's.

    .venv/bin/python benchmarks/lava_stream.py [--samples 100] [--models digits,resnet]

Uses only the public API (api.compile(snn, "lava-sim").run(x), its build_seconds / run_seconds), so the same
script measures an older checkout for a before/after comparison (PYTHONPATH=<old tree>).
"""
import argparse
import os
import time

import numpy as np
import torch
from _common import ROOT, export_tmp, machine, models, table

from neurocompile import api


def _model(name: str):
    if name == "digits":
        path = os.path.join(ROOT, "examples", "digits_cqrelu.onnx")
        return path, np.load(os.path.join(ROOT, "examples", "digits_test.npy"))
    torch.manual_seed(0)
    path, shape = export_tmp(models.resnet, "bn", act="cqrelu", levels=4, hw=32, widths=(8, 16))
    return path, np.random.default_rng(0).uniform(0, 1, (512, *shape)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--models", default="digits,resnet")
    a = ap.parse_args()
    rows = []
    for name in a.models.split(","):
        path, data = _model(name)
        x = data[: a.samples]
        snn = api.convert(api.load(path), target="lava-sim")
        exe = api.compile(snn, "lava-sim")
        t0 = time.perf_counter()
        res = exe.run(x, record=False)
        whole = time.perf_counter() - t0
        ref = api.simulate(snn, x, record=False, exact=True).output
        err = np.abs(res.output - ref).max() / np.abs(ref).max()
        rows.append([name, f"{len(snn.nodes)}", f"{snn.schedule.steps}", f"{len(x)}", f"{exe.build_seconds:.2f}",
                     f"{exe.run_seconds:.2f}", f"{exe.run_seconds / len(x) * 1e3:.1f}", f"{whole / len(x) * 1e3:.1f}",
                     f"{err:.1e}"])
    print(f"machine: {machine()}")
    print(table(rows, ["model", "IR nodes", "T", "samples", "build s", "Lava run s", "run ms/sample",
                       "whole call ms/sample", "max rel |Lava - reference|"]))


if __name__ == "__main__":
    main()
