"""Quantization boundary cases: where a float32 ANN may legitimately differ from the exact one by a level.

A CQReLU floors ``x·L/λ``. The spiking network reproduces the ANN computed exactly (the float64
interpreter); a float32 runtime (onnxruntime, PyTorch) sums the same terms in another order and rounds
each step, so a pre-activation lying within float32 rounding of a level boundary can floor to the next
level down or up there. Such a neuron is a *boundary case*: its float32 result depends on the runtime's
summation order (and so on the CPU), not on the conversion. This module finds them from the float64
interpreter alone, so the count is the same on every machine. A pre-activation exactly on a level (residual
sums of quantized values can tie) is a boundary case even in float64: the spiking neuron computes
``Σx·L/λ`` where the exported chain computes ``x·(L/λ)``, and the two may round to either side.

The rounding bound of a pre-activation ``z = Σ w·x + b`` is ``K · u · M`` with ``u = 2**-24`` (float32 unit
roundoff) and ``M = Σ |w|·|x| + |b|`` propagated through the graph (computed with the op table's ``linear``
and ``bias`` on absolute values). ``K`` = :data:`ROUNDING_FACTOR` covers blocked/FMA summation and the
quantizer's own multiply by ``L/λ``, measured on onnxruntime well below it (benchmarks/boundary_cases.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch
from torch import Tensor

from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import OPS, Group, tensors

U32 = 2.0 ** -24
ROUNDING_FACTOR = 16.0


@dataclass
class BoundaryReport:
    """``samples``: indices of the samples with at least one boundary neuron; ``neurons``: their count
    over all samples; ``per_layer``: boundary neurons per quantizer node."""

    samples: list[int] = field(default_factory=list)
    neurons: int = 0
    per_layer: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"samples": self.samples, "neurons": self.neurons, "per_layer": self.per_layer,
                "rounding_bound": f"{ROUNDING_FACTOR:g} * 2**-24 * sum|w x|"}


def _quantizer(node) -> tuple[int, float, float] | None:
    """(L, λ, shift) of a quantizing node, or None."""
    op = OPS[node.op]
    if not op.quantizer or op.attr(node, "amplitude") is not None:  # fixed point: no float levels
        return None
    lam = op.attr(node, "clip" if "clip" in op.attrs else "threshold")  # a CQReLU's λ, a neuron's threshold
    return int(op.attr(node, "levels")), float(lam), float(op.attr(node, "shift"))


def quantizer_inputs(graph: Graph, x: np.ndarray) -> Iterator[tuple[Node, tuple[int, float, float], Tensor, Tensor]]:
    """For every quantizer of ``graph`` on inputs ``x``: (node, (L, λ, shift), its float64 input z, the rounding
    magnitude M = Σ|w·x| + |b| of z), in topological order."""
    values: dict[str, Tensor] = {}
    mags: dict[str, Tensor] = {}
    with torch.no_grad():
        for n in graph.topo():
            if n.op in Group.INPUT:
                values[n.output] = torch.as_tensor(np.asarray(x), dtype=torch.float64)
                mags[n.output] = values[n.output].abs()
                continue
            op, p = OPS[n.op], tensors(n, torch.float64)
            xs, ms = [values[t] for t in n.inputs], [mags[t] for t in n.inputs]
            y = op.forward(n, xs, p)
            q = _quantizer(n)
            if q is not None:
                yield n, q, xs[0], ms[0]
                mags[n.output] = y.abs()  # a level is exact: rounding starts afresh after a quantizer
            elif n.op in Group.AFFINE:
                absp = {k: v.abs() for k, v in p.items()}
                m = op.linear(n, ms, absp).abs()
                b = op.bias(n, absp, graph.shapes[n.output])
                mags[n.output] = m + b.abs() if b is not None else m
            else:  # Relu, Clip, MaxPool: monotone, the rounding of the input passes through
                mags[n.output] = op.forward(n, ms, p).abs() if n.op not in Group.ACTIVATION else ms[0]
            values[n.output] = y


def find_boundary_cases(graph: Graph, x: np.ndarray, factor: float = ROUNDING_FACTOR) -> BoundaryReport:
    """Boundary cases of an ANN-level graph (CQReLU nodes, or a converted graph's CIF/IF nodes, whose ANN
    meaning is the same) on inputs ``x`` of shape (N, ...)."""
    flagged = torch.zeros(len(x), dtype=torch.bool)
    rep = BoundaryReport()
    for n, (levels, lam, shift), z, m in quantizer_inputs(graph, x):
        r = z * (levels / lam) + shift
        # the level boundary nearest r among those a floor can cross (1..L): with the bound at a level or more (huge
        # Σ|w·x|: terms 1e20 apart) r itself may lie far outside [0, L] while the exact value lies inside
        k = torch.round(r).clamp(1, levels)
        bound = factor * U32 * m
        hits = ((r - k).abs() * (lam / levels) <= bound) | ~torch.isfinite(r) | ~torch.isfinite(bound)
        hits = hits.reshape(len(x), -1)
        if hits.any():
            rep.per_layer[n.name] = int(hits.sum())
            flagged |= hits.any(1)
    rep.samples = [int(i) for i in torch.nonzero(flagged).reshape(-1)]
    rep.neurons = int(sum(rep.per_layer.values()))
    return rep
