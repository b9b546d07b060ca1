"""Event-driven connections: a convolution whose input is mostly zeros (spikes) computed by adding, for each nonzero
input, its weight column to the outputs it reaches, instead of a dense product over every input.

Why: in a converted network a layer sends a spike from a few percent of its neurons per step (the CIF VGG-11 of
benchmarks/vs_spikingjelly.py: 0-12 %, most layers 5-8 %), so a dense convolution multiplies mostly zeros. The compiled
loop (``event_conv`` in neurocompile/ir/fused_cif.py's source) counts the nonzeros first and declines, writing nothing,
where more than :func:`most_nonzero` of the input is nonzero; the dense convolution runs then. Narrow layers (the
twin CNN's 32 channels at stride 2) and dense layers, which oneDNN computes very efficiently, stay dense: there the
loop won only below 1-3 % nonzero (benchmarks/event_conv_probe.py).

Numbers: each sample's outputs are sums of the same products as the dense connection's, in a fixed order of their
own (input position, then kernel offset; per sample, whatever the batch, thread count or CPU), where oneDNN sums in the
order its kernel for the CPU and batch shape picks. float32 results therefore differ from the dense ones by rounding
(the default mode's contract: equal to the exact readout to float32 rounding, boundary cases counted); float64 and
fixed-point runs (integers, exact in float64) are unchanged in practice and in fact, respectively. The exact mode's
count domain (certified.py) uses it on the changes of the counts from step to step, where its weight pieces make every
sum exact and the remainder's rounding is bounded (certified_plan.py's ``Branch.event_bound``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from neurocompile.ir import Graph, Node, fused_cif
from neurocompile.ir.ops import OPS

# The largest nonzero fraction of an input at which the event-driven loop runs, for 128 output channels at stride 1.
# On a 2-core AMD EPYC (AVX2), batch 64, VGG-11 layer shapes (64-512 channels, 16x16 to 2x2): at 2 % nonzero the loop
# ran 5.6-15x the dense convolution, at 6 % 2-9x, at 12 % 1.1-4.9x, at 25 % 0.7-2.3x; at 64 channels it broke even
# near 12 % (stride 1) and 10 % (stride 2), at 32 channels and stride 2 below 5 % (benchmarks/event_conv_probe.py).
MOST_NONZERO = 0.15


@dataclass(frozen=True)
class EventWeights:
    """A convolution's weight laid out for the loop, (C_in, kh, kw, C_out), and its geometry (ONNX pads: the loop
    takes the leading ones; the output shape it is given carries the trailing ones)."""

    weight: torch.Tensor
    stride: tuple[int, int]
    pads: tuple[int, int]
    dilation: tuple[int, int]


def most_nonzero(ew: EventWeights) -> float:
    """The nonzero fraction up to which the loop beats the dense convolution, scaled from :data:`MOST_NONZERO` by the
    measured trend: wider outputs vectorize better, a stride wastes kernel offsets."""
    return MOST_NONZERO * min(ew.weight.shape[3] / 128, 1.5) / max(ew.stride)


def event_weights(g: Graph, n: Node, p: dict[str, torch.Tensor]) -> EventWeights | None:
    """The layout of ``n``'s weight for the loop, or None where the loop does not apply: not a weight-carrying
    convolution of one group, or not a CPU tensor of float32 or float64."""
    op = OPS[n.op]
    w = p.get("weight")
    if op.params != ("weight",) or not op.synaptic or w is None or w.dim() != 4 or w.device.type != "cpu" or \
            w.dtype not in fused_cif.DTYPES:
        return None
    m = op.weight_map(n, g.shapes[n.inputs[0]])
    if m.kind != "conv" or m.groups != 1:
        return None
    return EventWeights(w.permute(1, 2, 3, 0).contiguous(), m.stride, m.pads[:2], m.dilation)


class EventConnections:
    """The event-driven form of a network's convolutions: :meth:`linear` gives a convolution's output, or None where
    the dense product is to run (no compiled loop, an input too dense, a shape the loop does not take)."""

    def __init__(self, g: Graph, order: list[Node], params: dict[str, dict[str, torch.Tensor]]):
        self.g = g
        self.weights: dict[str, EventWeights] = {}
        if not fused_cif.loaded():
            return
        for n in order:
            if n.inputs:
                w = event_weights(g, n, params[n.name])
                if w is not None:
                    self.weights[n.name] = w

    def linear(self, n: Node, xs: list[torch.Tensor]) -> torch.Tensor | None:
        ew = self.weights.get(n.name)
        if ew is None or len(xs) != 1:
            return None
        return event_conv(ew, xs[0], self.g.shapes[n.output][1:], getattr(xs[0], "_nc_spikes", None))


def event_conv(ew: EventWeights, x: torch.Tensor, out_hw: tuple, counted: float | None = None,
               most: float | None = None) -> torch.Tensor | None:
    """The convolution of ``x`` (N, C, H, W) with ``ew`` by events, output (N, C_out, *out_hw); None where the
    dense product is to run: ``x`` not a contiguous CPU tensor of the weight's type, more of it nonzero than ``most``
    (default :func:`most_nonzero`), or ``counted`` (spikes a neuron's step counted: at least its nonzeros) already
    beyond that, which spares the scan."""
    if not (x.dim() == 4 and x.dtype == ew.weight.dtype and x.device.type == "cpu" and x.is_contiguous()):
        return None
    most = most_nonzero(ew) if most is None else most
    if counted is not None and counted > most * x.numel():  # too many: no scan
        return None
    out = torch.empty((x.shape[0], ew.weight.shape[3], *out_hw), dtype=x.dtype)
    (sh, sw), (ph, pw), (dh, dw) = ew.stride, ew.pads, ew.dilation
    return out if fused_cif.event_conv(x, ew.weight, out, sh, sw, ph, pw, dh, dw, most) else None
