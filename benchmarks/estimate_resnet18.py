"""Loihi 2 resource and energy estimate of the CIFAR ResNet-18 (3x32x32, widths 64..512, generated weights,
CQReLU with L levels) converted to a CIF SNN: per layer neurons, synapses, memory, fan-in, axons and cores,
spikes and synaptic operations per inference from the reference simulator on a few random images, the
energy they imply, and the ANN's MACs beside them (neurocompile.analysis.estimate); then its placement on cores
(placement.py: per chip, packing efficiency; the stage-4 convolutions' fan-in split into partial sums, fanin.py), the
traffic between cores and chips, time per step, latency and energy (runtime.py), for the default schedule
(T_wake = L) and the latency mode (T_wake = 1, graded spikes), side by side. Converted as `neurocompile estimate`
converts (for lava-sim: one step of delay per synaptic layer, as on Loihi 2).

    .venv/bin/python benchmarks/estimate_resnet18.py [--samples 4] [--levels 4] [--json out.json]
"""
import argparse
import json
import time

import numpy as np
from _common import export_tmp, machine, models

from neurocompile import api
from neurocompile.analysis.estimate import estimate
from neurocompile.analysis.estimate.placement_report import place_and_run, side_by_side, summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=4, help="random input images, uniform in [0, 1] (seed 0)")
    ap.add_argument("--levels", type=int, default=4, help="CQReLU levels L (= wake steps)")
    ap.add_argument("--json", help="also write the estimate as JSON")
    a = ap.parse_args()
    t0 = time.perf_counter()
    path, shape = export_tmp(models.resnet18, act="cqrelu", levels=a.levels)
    ann = api.load(path)
    snn = api.convert(ann, target="lava-sim")
    t_wake, gamma = api.latency_options(a.levels)
    fast = api.convert(api.load(path), target="lava-sim", t_wake=t_wake, gamma=gamma)
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
    cases = [place_and_run(f"T_wake = L = {s.t_wake}", snn, x, est=e),
             place_and_run(f"latency mode (T_wake={t_wake}, gamma={gamma})", fast, x)]
    t3 = time.perf_counter()
    u = summary(cases[0].placement, e)
    print(f"placement: {u['cores']:,} cores on {u['chips']} chips (per chip: "
          f"{', '.join(str(v) for v in u['cores_per_chip_used'].values())}); the estimate's per-layer bound "
          f"{u['estimate_cores']:,} cores -> packing efficiency {u['packing_efficiency']:.3f}; everything pooled "
          f"{u['pooled_bound_cores']:,} -> {u['pooled_efficiency']:.3f}")
    split = {k: v["fanin_parts"] for k, v in cases[0].placement.layers.items() if "fanin_parts" in v}
    print(f"fan-in split into partial sums: {', '.join(f'{k} ({v} parts)' for k, v in split.items()) or 'none'}")
    print(f"placed, traffic and runtime for both schedules in {t3 - t2:.1f} s")
    print()
    print(side_by_side(cases))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(e.to_dict(), f, indent=1)


if __name__ == "__main__":
    main()
