"""Probe for issue 29: one CIF step (gamma = 1, theta = 1) as torch's elementwise passes (the reference simulator's
``cif_step_`` and its spike statistics) against the same step fused into one C++ loop (built with
torch.utils.cpp_extension.load_inline; needs a C++ compiler and ninja; about 20 s the first time, cached after). The
fused loop does the same IEEE operations in the same order (-ffp-contract=off: no fused multiply-add), so its
membranes, counts and spikes are checked bit for bit against the passes.

    .venv/bin/python benchmarks/fused_cif_probe.py [--shape 64,16,28,28] [--steps 200]

The loop vectorizes only with restrict pointers local to the parallel_for body and with -fno-trapping-math (floor;
exact either way: floor, min, max, add and subtract are exact or correctly rounded IEEE operations, and nothing traps).
Measured here: pointers captured by reference, 2x slower than the passes; without -fno-trapping-math, 1.5x faster;
with both, about 5x.
"""
from __future__ import annotations

import argparse
import time

import torch
from _common import machine, table

from neurocompile.ir.neurons import cif_step_

SOURCE = r'''
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
// m += x; d = clip(floor(m), -g, g); S' = clip(S + d, 0, cap); s = S' - S; S = S'; m -= s; out = s
// returns (sum |s|, sum s)
std::vector<double> cif_step(torch::Tensor m, torch::Tensor S, torch::Tensor x, torch::Tensor out, double g,
                             double cap) {
  float* bm = m.data_ptr<float>(); float* bS = S.data_ptr<float>(); const float* bx = x.data_ptr<float>();
  float* bo = out.data_ptr<float>();
  const float fg = (float)g, fc = (float)cap;
  std::vector<double> mag(at::get_num_threads(), 0.0), net(at::get_num_threads(), 0.0);
  at::parallel_for(0, m.numel(), 8192, [=, &mag, &net](int64_t b, int64_t e) {
    float* __restrict__ pm = bm + b; float* __restrict__ pS = bS + b; const float* __restrict__ px = bx + b;
    float* __restrict__ po = bo + b;
    int a = 0, c = 0;
    for (int64_t i = 0; i < e - b; ++i) {
      float v = pm[i] + px[i];
      float d = std::min(std::max(std::floor(v), -fg), fg);
      float s0 = pS[i];
      float s1 = std::min(std::max(s0 + d, 0.f), fc);
      float s = s1 - s0;
      pS[i] = s1; pm[i] = v - s; po[i] = s;
      int si = (int)s; a += si < 0 ? -si : si; c += si;
    }
    mag[at::get_thread_num()] += a; net[at::get_thread_num()] += c;
  });
  double A = 0, C = 0;
  for (size_t t = 0; t < mag.size(); ++t) { A += mag[t]; C += net[t]; }
  return {A, C};
}
'''


def passes(shape, xs, n):
    """The simulator's step and statistics (dot for the magnitude of ternary spikes, sum for the net)."""
    m, S, sc, seen = torch.zeros(shape), torch.zeros(shape), {}, []
    for i in range(n):
        s = cif_step_(m, S, xs[i % len(xs)], 1.0, min(i + 1, 8), 1, sc)
        f = s.reshape(-1)
        seen.append((float(torch.dot(f, f)), float(f.sum())))
    return m, S, seen


def fused(mod, shape, xs, n):
    m, S, out, seen = torch.zeros(shape), torch.zeros(shape), torch.empty(shape), []
    for i in range(n):
        seen.append(tuple(mod.cif_step(m, S, xs[i % len(xs)], out, 1.0, float(min(i + 1, 8)))))
    return m, S, seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="64,16,28,28", help="one layer's state (default: the twin's first layer, batch 64)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    shape = tuple(int(v) for v in a.shape.split(","))
    from torch.utils.cpp_extension import load_inline

    t0 = time.perf_counter()
    mod = load_inline("nc_fused_cif_probe3", cpp_sources=SOURCE, functions=["cif_step"], verbose=False,
                      extra_cflags=["-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno",
                                    "-fno-trapping-math", "-fopenmp"],
                      extra_ldflags=["-fopenmp"])
    build = time.perf_counter() - t0
    xs = [torch.randn(shape, generator=torch.Generator().manual_seed(i)) * 0.7 for i in range(8)]
    rows, res = [], {}
    for name, fn in (("torch passes (cif_step_ + dot + sum)", lambda: passes(shape, xs, a.steps)),
                     ("fused C++ loop", lambda: fused(mod, shape, xs, a.steps))):
        fn()  # warm-up
        t0 = time.perf_counter()
        res[name] = fn()
        rows.append([name, f"{(time.perf_counter() - t0) / a.steps * 1e3:.3f}"])
    (m1, S1, k1), (m2, S2, k2) = res.values()
    same = torch.equal(m1, m2) and torch.equal(S1, S2) and k1 == k2
    base = float(rows[0][1])
    for r in rows:
        r.append(f"{base / float(r[1]):.2f}")
    print(f"machine: {machine()}; state {shape}, {a.steps} steps, build {build:.1f} s (cached after the first)")
    print(table(rows, ["CIF step", "ms/step", "speed-up"]))
    print(f"membranes, counts and per-step statistics bit for bit equal: {same}")


if __name__ == "__main__":
    main()
