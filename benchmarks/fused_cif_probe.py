"""One CIF step (gamma = 1, theta = 1) as torch's elementwise passes (``neurons.cif_step_`` without the kernel, plus
the simulator's spike statistics) against the same step in the fused C++ loop of ``neurocompile/ir/fused_cif.py``,
timed per step and checked bit for bit (membranes, counts, per-step spike sums).

    .venv/bin/python benchmarks/fused_cif_probe.py [--shape 64,16,28,28] [--steps 200] [--threads 2]

Both write their spikes into a reused tensor, as the simulator does (a fresh multi-megabyte tensor per step costs page
faults of about the step's own time). The loop vectorizes with restrict pointers local to the parallel_for body and
-fno-trapping-math (floor); both are exact: floor, min, max, add and subtract round nothing or round correctly.
"""
from __future__ import annotations

import argparse
import time

import torch
from _common import machine, table

from neurocompile.ir import fused_cif
from neurocompile.ir.neurons import cif_step_


def run(shape, xs, n, fused: bool):
    """n steps; the passes also count the spikes as the simulator does without the kernel (dot and sum)."""
    m, S, out, seen = torch.zeros(shape), torch.zeros(shape), torch.empty(shape), []
    saved = list(fused_cif._KERNEL)
    if not fused:
        fused_cif._KERNEL.clear()
    try:
        for i in range(n):
            sc = {fused_cif.OUT: out}
            s = cif_step_(m, S, xs[i % len(xs)], 1.0, min(i + 1, 8), 1, sc, 1.0)
            if fused:
                seen.append(tuple(sc[fused_cif.SUMS]))
            else:
                f = s.reshape(-1)
                seen.append((float(torch.dot(f, f)), float(f.sum())))
    finally:
        fused_cif._KERNEL[:] = saved
    return m, S, seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="64,16,28,28", help="one layer's state (default: the twin's first layer, batch 64)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    shape = tuple(int(v) for v in a.shape.split(","))
    t0 = time.perf_counter()
    if fused_cif.load() is None:
        raise SystemExit(f"the fused kernel is not available here: {fused_cif.why_not()}")
    build = time.perf_counter() - t0
    xs = [torch.randn(shape, generator=torch.Generator().manual_seed(i)) * 0.7 for i in range(8)]
    rows, res = [], []
    for name, fused in (("torch passes (cif_step_ + dot + sum)", False), ("fused C++ loop", True)):
        run(shape, xs, 10, fused)  # warm-up
        t0 = time.perf_counter()
        res.append(run(shape, xs, a.steps, fused))
        rows.append([name, f"{(time.perf_counter() - t0) / a.steps * 1e3:.3f}"])
    (m1, S1, k1), (m2, S2, k2) = res
    same = torch.equal(m1, m2) and torch.equal(S1, S2) and k1 == k2
    for r in rows:
        r.append(f"{float(rows[0][1]) / float(r[1]):.2f}")
    print(f"machine: {machine()}; state {shape}, {a.steps} steps, {a.threads} threads; load {build:.1f} s "
          "(a build the first time on a machine, cached after)")
    print(table(rows, ["CIF step", "ms/step", "speed-up"]))
    print(f"membranes, counts and per-step statistics bit for bit equal: {same}")


if __name__ == "__main__":
    main()
