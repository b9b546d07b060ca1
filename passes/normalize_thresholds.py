"""normalize_thresholds: give every activation a clip value λ (its spiking threshold)."""
from __future__ import annotations

import math

import numpy as np
import torch

from neurocompile.ir import interpreter
from neurocompile.errors import ConversionError
from neurocompile.ir import Graph
from neurocompile.ir.ops import op_of


def plain_activations(g: Graph) -> list[str]:
    """Activations that are not CQReLU (plain ReLU, ReLU6-style Clip): their conversion is lossy."""
    return [n.name for n in g.topo() if op_of(n).calibratable]


def normalize_thresholds(g: Graph, calibration: np.ndarray | None = None, percentile: float = 99.9,
                         levels: int = 8) -> Graph:
    """Set λ for every activation, so that encode_spikes can use θ = λ.

    CQReLU nodes already carry λ (their clip): nothing to do, no data needed, lossless.
    Plain Relu / Clip(0, c) nodes get λ = the ``percentile`` of their activations over
    ``calibration`` (Rueckauer et al.; capped at c for a Clip) and become CQReLU(levels, λ) marked
    ``calibrated``; the graph's ``meta['lossy_layers']`` lists them, because the result then
    approximates the original network instead of reproducing it.
    Invariant: CQReLU-only graphs are unchanged; otherwise every activation is a CQReLU.
    """
    _refuse_unrecognized_quantizers(g)
    plain = plain_activations(g)
    if not plain:
        return g
    if calibration is None:
        raise ConversionError(
            f"{len(plain)} activation(s) are plain ReLU/Clip, not CQReLU: {', '.join(plain[:8])}"
            + (" ..." if len(plain) > 8 else ""), node=plain[0], op=g.nodes[plain[0]].op,
            hint="Train with CQReLU for lossless conversion, or pass calibration data (--calibrate data.npy) "
                 "for a lossy, percentile-normalized conversion")
    for name in plain:
        node = g.nodes[name]
        if op_of(node).bounds(node)[0] != 0:
            raise ConversionError(f"only a {node.op} with lower bound 0 can become a spiking activation", node=name,
                                  op=node.op)
    # one batched pass; only the activations are kept, as torch tensors (no copies)
    values = interpreter.run(g, calibration.astype(np.float32), keep=[g.nodes[n].output for n in plain],
                             numpy=False)
    for name in plain:
        node = g.nodes[name]
        hi = op_of(node).bounds(node)[1]
        lam = percentile_of_positive(values[node.output], percentile)
        if hi < math.inf:  # a ReLU6-style Clip: λ at most its upper bound
            lam = min(lam, hi)
        node.op = "CQReLU"
        node.attrs = {"levels": int(levels), "clip": lam, "shift": 0.0, "calibrated": True}
    g.meta["lossy_layers"] = plain
    g.meta["calibration_percentile"] = percentile
    return g


def percentile_of_positive(act: torch.Tensor, q: float) -> float:
    """numpy's default (linear) ``np.percentile(act[act > 0], q)`` by selection (Rueckauer et al. take λ over the
    positive activations; 1.0 if there are none). The two order statistics it interpolates are found among the
    values above a threshold guessed from a strided sample, so a high percentile reads the tensor twice and
    sorts a few thousand values; where the guess leaves too few above it, among all positive values."""
    flat = act.reshape(-1)
    n = int(torch.count_nonzero(flat > 0))
    if n == 0:
        return 1.0
    rank = (n - 1) * float(q) / 100.0
    lo = int(math.floor(rank))
    frac = rank - lo
    need = n - lo  # the order statistics sought are the need-th and (need-1)-th largest positive values
    top = None
    if need < n // 4:  # guess a threshold with about twice as many values above it as needed
        sample = flat[:: max(1, flat.numel() // 65536)]
        guess = float(torch.kthvalue(sample, max(1, sample.numel() - (2 * need * sample.numel()) // flat.numel()
                                                 - 16)).values)
        above = flat[flat >= guess] if guess > 0 else None
        if above is not None and above.numel() >= need:
            top = torch.topk(above, need).values  # descending; exact: every value >= the need-th largest is here
    if top is None:
        top = torch.topk(flat[flat > 0], need).values
    a = float(top[need - 1])
    if frac == 0 or need == 1:
        return a
    b = float(top[need - 2])
    return a + (b - a) * frac if frac < 0.5 else b - (b - a) * (1 - frac)  # numpy's _lerp, both halves


QUANTIZER_FORMS = ("(λ/L)·floor(clip(x, 0, λ)·L/λ) (CQReLU, with Clip, Relu+Min, Mul or Div, λ = 1 folded away)",
                   "λ·clip(floor(x·L/λ + 0.5), 0, L)/L or round(x·L/λ) (QCFS)",
                   "either with a straight-through estimator c + (q - c).detach()",
                   "or the custom node neurocompile::CQReLU(levels, clip)")


def _refuse_unrecognized_quantizers(g: Graph) -> None:
    """A Floor/Round that recognize_cqrelu could not match is a quantizer of another form: converting
    it as anything else would give wrong numbers, so say which forms are known."""
    left = [n for n in g.topo() if op_of(n).rounding is not None]
    if left:
        prod, readers = g.producers(), g.consumers()
        n = left[0]
        before = prod[n.inputs[0]].op if n.inputs[0] in prod else "?"
        after = ", ".join(r.op for r in readers.get(n.output, [])) or "graph output"
        raise ConversionError(
            f"{len(left)} {n.op} node(s) are not part of a recognized CQReLU/QCFS quantizer (this one reads "
            f"{before} and feeds {after})", node=n.name, op=n.op,
            hint="neurocompile recognizes " + "; ".join(QUANTIZER_FORMS) + ". Export the activation in one "
                 "of these forms (neurocompile.torch.CQReLU does)")
