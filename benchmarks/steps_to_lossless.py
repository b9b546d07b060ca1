"""First step at which the SNN readout equals the ANN (float64, rel. error <= 1e-9 at that step and
every later one), per model x L x neuron, with and without one step of delay per synaptic layer.
Where a run never becomes lossless by T = 4L (+ path delay), the relative error there is shown.

    .venv/bin/python benchmarks/steps_to_lossless.py [--batch 64]
"""
import argparse
import os

import numpy as np
from _common import ROOT, export_tmp, machine, models, table

from neurocompile import api
from neurocompile.ir import interpreter

MODELS = {
    "mlp (3 layers)": (models.mlp, {}),
    "vgg (5 convs, max+avg pool)": (models.vgg, {}),
    "resnet (2 blocks)": (models.resnet, {}),
    "vgg11 (width 8)": (models.vgg11, {"width": 8}),
    "resnet18 (width 8..64)": (models.resnet, {"blocks": (2, 2, 2, 2), "widths": (8, 16, 32, 64), "hw": 32}),
}
NEURONS = {"CIF": ("cif", 1), "CIF graded (γ=4)": ("cif", 4), "IF baseline": ("if", 1)}


def first_lossless(per_step: np.ndarray, ann: np.ndarray) -> tuple[int | None, float]:
    scale = np.abs(ann).max()
    err = np.abs(per_step - ann).reshape(len(per_step), -1).max(1) / scale
    ok = err <= 1e-9
    if not ok[-1]:
        return None, float(err[-1])
    return len(ok) - int(np.argmin(ok[::-1])) + 1 if not ok.all() else 1, 0.0


def cases(batch: int):
    """(name, L, path, inputs): generated nets on uniform inputs at each L, then the trained twin CNN
    (examples/train_twins.py, out/twins) on its test images when it exists."""
    for name, (builder, kw) in MODELS.items():
        for L in (2, 4, 8, 16):
            path, shape = export_tmp(builder, "bn", act="cqrelu", levels=L, **kw)
            yield name, L, path, np.random.default_rng(0).uniform(0, 1, (batch, *shape)).astype(np.float32)
    twin = os.path.join(ROOT, "out", "twins")
    if os.path.exists(os.path.join(twin, "cqrelu.onnx")):
        yield ("twin CNN (trained, test images)", 8, os.path.join(twin, "cqrelu.onnx"),
               np.load(os.path.join(twin, "test_x.npy"))[:batch])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    a = ap.parse_args()
    rows, late = [], 0
    for name, L, path, x in cases(a.batch):
        g = api.load(path)
        ann = interpreter.run1(api.convert(g), x, "float64")
        for label, (neuron, gamma) in NEURONS.items():
            cells = []
            for delay in (0, 1):
                snn = api.convert(g, neuron=neuron, gamma=gamma, synapse_delay=delay, steps=4 * L)
                s = snn.schedule
                T = 4 * L + (max(s.arrival.values(), default=0) + delay if delay else 0)
                if neuron == "if":
                    snn = api.convert(g, neuron=neuron, synapse_delay=delay, steps=T)
                res = api.simulate(snn, x, steps=T, exact=True)
                first, err = first_lossless(res.per_step, ann)
                cells.append(str(first) if first else f"never (err {err:.1e} @T={T})")
                default_T = api.convert(g, neuron=neuron, gamma=gamma, synapse_delay=delay).schedule.steps
                cells.append(str(default_T))
                late += bool(first is not None and neuron == "cif" and default_T < first)
            rows.append([name, L, s.depth, label, *cells])
    print(f"machine: {machine()}; batch {a.batch} inputs (uniform [0,1), test images for the trained twin); lossless = rel. logit error <= 1e-9 (float64)")
    print(table(rows, ["model", "L", "depth", "neuron", "first lossless (no delay)", "default T",
                       "first lossless (delay 1/layer)", "default T"]))
    print("default T is the schedule's predicted settling step (what a run without --steps uses); CIF rows where it "
          f"comes before the first lossless step: {late}. The latency mode (--latency min): benchmarks/latency_frontier.py")


if __name__ == "__main__":
    main()
