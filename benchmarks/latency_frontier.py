"""The latency frontier of CIF: the first step T from which the readout equals the ANN exactly, for each wake phase
T_wake (a divisor of L) and spikes per step gamma (graded payload), with and without Lava's one-step synapse delay.

    .venv/bin/python benchmarks/latency_frontier.py [--model M.onnx --input X.npy] [--samples 256]

Default models: the bundled digits CQReLU CNN on its test images and, when out/twins/cqrelu.onnx exists
(examples/train_twins.py), the 28x28 twin CNN on its test images. "exact" is the float64 simulator against the float64
interpreter within 1e-9 of the largest logit; "pred" is the schedule's own T (what a run without --steps uses).
"""
import argparse
import os

import numpy as np
from _common import ROOT, machine, table

from neurocompile import api
from neurocompile.ir import interpreter


def first_exact_step(snn, x, ann, steps: int) -> int:
    res = api.simulate(snn, x, steps=steps, exact=True)
    err = np.abs(res.per_step - ann[None]).reshape(res.steps, -1).max(1)
    bad = np.nonzero(err > 1e-9 * np.abs(ann).max())[0]
    return 1 if len(bad) == 0 else int(bad[-1]) + 2


def frontier(path: str, x: np.ndarray, delay: int) -> tuple[list[list], int, int]:
    levels = api.network_levels(api.load(path))
    default = api.convert(api.load(path), synapse_delay=delay)
    ann = interpreter.run1(default, x, "float64")
    gammas = sorted({1, 2, 4, levels} & set(range(1, levels + 1)))
    waits = [d for d in range(levels, 0, -1) if levels % d == 0]
    rows = []
    for t_wake in waits:
        row = [f"T_wake={t_wake}" + (" (L)" if t_wake == levels else "")]
        for gamma in gammas:
            snn = api.convert(api.load(path), t_wake=t_wake, gamma=gamma, synapse_delay=delay)
            horizon = max(snn.schedule.steps, default.schedule.steps) + 8
            row.append(f"{first_exact_step(snn, x, ann, horizon)} / {snn.schedule.steps}")
        rows.append(row)
    return rows, levels, default.schedule.depth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="CQReLU ONNX model (default: the bundled digits CNN and the twin CNN if trained)")
    ap.add_argument("--input", help=".npy inputs for --model")
    ap.add_argument("--samples", type=int, default=256)
    a = ap.parse_args()
    cases = []
    if a.model:
        cases.append((a.model, np.load(a.input) if a.input else None))
    else:
        cases.append((os.path.join(ROOT, "examples", "digits_cqrelu.onnx"),
                      np.load(os.path.join(ROOT, "examples", "digits_test.npy"))))
        twin = os.path.join(ROOT, "out", "twins")
        if os.path.exists(os.path.join(twin, "cqrelu.onnx")):
            cases.append((os.path.join(twin, "cqrelu.onnx"), np.load(os.path.join(twin, "test_x.npy"))))
    print(f"machine: {machine()}")
    for path, x in cases:
        if x is None:
            x = np.random.default_rng(0).uniform(0, 1, (a.samples, *api.first_input_shape(api.load(path))))
        x = np.asarray(x, dtype=np.float64)[: a.samples]
        for delay in (0, 1):
            rows, levels, depth = frontier(path, x, delay)
            gammas = sorted({1, 2, 4, levels} & set(range(1, levels + 1)))
            t_wake, gamma = api.latency_options(levels)
            print(f"\n{os.path.relpath(path, ROOT)}: L={levels}, {depth} synaptic layers, delay {delay}/layer, "
                  f"{len(x)} samples; cells: exact from T / T the schedule runs")
            print(table(rows, ["", *(f"gamma={g} ({1 + int(np.ceil(np.log2(g + 1)))}-bit)" for g in gammas)]))
            print(f"--latency min chooses T_wake={t_wake}, gamma={gamma}: exact at T = 1 + {delay} x {depth} "
                  f"= {1 + delay * depth} (proved: one step per layer)")


if __name__ == "__main__":
    main()
