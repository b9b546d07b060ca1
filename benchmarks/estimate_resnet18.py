"""Loihi 2 resource and energy estimate of the CIFAR ResNet-18 (3x32x32, widths 64..512, generated weights,
CQReLU with L levels) converted to a CIF SNN: per layer neurons, synapses, memory, fan-in, axons and cores,
spikes and synaptic operations per inference from the reference simulator on a few random images, the
energy they imply, and the ANN's MACs beside them (neurocompile.analysis.estimate); then its placement on cores
(placement.py: per core, per chip, packing efficiency; or the refusal that says which limit no core can meet), the
traffic between cores and chips, time per step, latency and energy (runtime.py).

    .venv/bin/python benchmarks/estimate_resnet18.py [--samples 4] [--levels 4] [--json out.json]
"""
import argparse
import json
import time

import numpy as np
from _common import export_tmp, machine, models

from neurocompile import api
from neurocompile.analysis.estimate import estimate
from neurocompile.analysis.estimate.placement import PlacementError, place
from neurocompile.analysis.estimate.placement_report import table as placement_table
from neurocompile.analysis.estimate.runtime import runtime, traffic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=4, help="random input images, uniform in [0, 1] (seed 0)")
    ap.add_argument("--levels", type=int, default=4, help="CQReLU levels L (= wake steps)")
    ap.add_argument("--json", help="also write the estimate as JSON")
    a = ap.parse_args()
    t0 = time.perf_counter()
    path, shape = export_tmp(models.resnet18, act="cqrelu", levels=a.levels)
    snn = api.convert(api.load(path))
    x = np.random.default_rng(0).uniform(0, 1, (a.samples, *shape)).astype(np.float32)
    t1 = time.perf_counter()
    e = estimate(snn, "loihi2", x=x)
    t2 = time.perf_counter()
    s = snn.schedule
    print(f"machine: {machine()}")
    print(f"ResNet-18 (CIFAR, tests/models.py, generated weights), CQReLU L={a.levels} -> CIF SNN: T_wake={s.t_wake}, "
          f"T={s.steps} steps; {a.samples} random image(s) 3x32x32 uniform in [0, 1] (seed 0)")
    print(f"build + convert {t1 - t0:.1f} s, estimate (simulation included) {t2 - t1:.1f} s")
    print()
    print(e.table())
    print()
    try:
        p = place(snn, e)
    except PlacementError as err:
        print(f"placement: {err}")
    else:
        tr = traffic(snn, p, x)
        print(placement_table(p, e, tr, runtime(e, tr)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(e.to_dict(), f, indent=1)


if __name__ == "__main__":
    main()
