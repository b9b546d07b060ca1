"""The event-driven convolution (``event_conv`` of ``neurocompile/ir/fused_cif.py``, used by
``targets/reference/event_driven.py``) against torch's dense convolution, on one layer's shape at several fractions of
nonzero (signed) spikes: ms per call, the speed-up, and the threshold the simulator applies to that shape.

    .venv/bin/python benchmarks/event_conv_probe.py [--batch 64] [--threads 2] [--densities 0.02,0.06,0.12,0.25]

The default shapes are the VGG-11's 3x3 convolutions behind its pools (benchmarks/vs_spikingjelly.py) and the twin
CNN's two stride-2 convolutions. The largest difference from a float64 convolution is printed as a check.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from _common import machine, table

from neurocompile.ir import fused_cif
from neurocompile.targets.reference.event_driven import EventWeights, most_nonzero

# (input channels, height = width, output channels, stride): 3x3 kernels, padding 1
SHAPES = [(64, 16, 128, 1), (128, 8, 256, 1), (256, 8, 256, 1), (256, 4, 512, 1), (512, 4, 512, 1), (512, 2, 512, 1),
          (64, 16, 64, 1), (64, 8, 64, 2), (16, 28, 32, 2), (32, 14, 32, 2)]


def per_call(f, n: int = 5) -> float:
    f()
    t0 = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--densities", default="0.02,0.06,0.12,0.25")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if fused_cif.load() is None:
        raise SystemExit(f"the compiled loops are not available here: {fused_cif.why_not()}")
    g = torch.Generator().manual_seed(0)
    rows = []
    for C, H, O, s in SHAPES:
        w = torch.randn(O, C, 3, 3, generator=g)
        wt = w.permute(1, 2, 3, 0).contiguous()
        ho = (H + 2 - 3) // s + 1
        most = most_nonzero(EventWeights(wt, (s, s), (1, 1), (1, 1)))
        for d in (float(v) for v in a.densities.split(",")):
            x = (torch.rand(a.batch, C, H, H, generator=g) < d).float() * torch.sign(torch.randn(a.batch, C, H, H,
                                                                                                   generator=g))
            out = torch.empty(a.batch, O, ho, ho)
            dense = per_call(lambda: F.conv2d(x, w, None, s, 1))
            event = per_call(lambda: fused_cif.event_conv(x, wt, out, s, s, 1, 1, 1, 1, 1.0))
            err = float((out.double() - F.conv2d(x.double(), w.double(), None, s, 1)).abs().max())
            rows.append([f"{C}x{H}x{H} -> {O}, stride {s}", f"{d:.2f}", f"{dense * 1e3:.2f}", f"{event * 1e3:.2f}",
                         f"{dense / event:.2f}", "event" if d <= most else "dense", f"{most:.3f}", f"{err:.1e}"])
    print(f"machine: {machine()}; batch {a.batch}, 3x3 kernels, padding 1, signed spikes")
    print(table(rows, ["layer", "nonzero", "dense ms", "event ms", "speed-up", "simulator runs", "threshold",
                       "max |err| vs float64"]))


if __name__ == "__main__":
    main()
