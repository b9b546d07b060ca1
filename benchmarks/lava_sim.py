"""Lava-sim cost for the bundled digits model: time to build the process graph, wall time per
sample in Loihi2SimCfg (floating_pt), and the same batch on the reference simulator.

    .venv/bin/python benchmarks/lava_sim.py [--samples 20]
"""
import argparse
import os
import time

import numpy as np
from _common import ROOT, machine, table

from neurocompile import api


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=20)
    a = ap.parse_args()
    path = os.path.join(ROOT, "examples", "digits_cqrelu.onnx")
    x = np.load(os.path.join(ROOT, "examples", "digits_test.npy"))[: a.samples]
    t0 = time.perf_counter()
    snn = api.convert(api.load(path), target="lava-sim")
    t_convert = time.perf_counter() - t0
    exe = api.compile(snn, "lava-sim")
    t0 = time.perf_counter()
    res = exe.run(x)
    t_total = time.perf_counter() - t0
    ref_exe = api.compile(snn, "reference", exact=True)
    t0 = time.perf_counter()
    ref = ref_exe.run(x)
    t_ref = time.perf_counter() - t0
    T = res.steps
    rows = [["import + passes (ONNX -> spiking IR)", f"{t_convert:.3f} s"],
            ["build Lava process graph (emit)", f"{exe.build_seconds:.3f} s"],
            [f"Lava run, {a.samples} samples x {T} steps (one stream)", f"{exe.run_seconds:.2f} s"],
            ["Lava wall time per sample", f"{exe.run_seconds / a.samples * 1e3:.0f} ms"],
            ["whole call incl. worker start-up", f"{t_total:.2f} s"],
            ["reference simulator, same batch and delay model", f"{t_ref:.3f} s"],
            ["max |Lava - reference| readout", f"{np.abs(res.output - ref.output).max():.1e}"]]
    print(f"machine: {machine()}; digits CQReLU CNN, {len(snn.nodes)} IR nodes, T={T}")
    print(table(rows, ["what", "figure"]))


if __name__ == "__main__":
    main()
