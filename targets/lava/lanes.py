"""Lanes: B samples side by side in one Lava process graph.

Lava's simulator costs about the same per process and step whatever the process computes, so running B
samples at once in every process divides the cost per sample by about B. ``lane_graph`` widens a lowered
graph so that every tensor holds B samples along its first (channel) axis, lane-major (sample b owns the
b-th block): elementwise ops, neurons, pools and delays act per channel and need nothing; a Conv becomes
a grouped Conv with its weights repeated B times (groups x B), a Dense a block-diagonal Dense, per-channel
constants and biases repeat B times, and a Reshape/Flatten keeps each lane's block contiguous (C order of
(B*C, H, W) is lane-major). The schedule is unchanged: every node keeps its name and timing.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from neurocompile.errors import TargetError
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import op_of

DENSE_BUDGET = 4_000_000  # weights of all block-diagonal Dense layers together (they grow with B**2)
# elements of the largest tensor with all lanes (512 KiB of float64, 256 KiB of int32): past it a step's messages leave the
# caches and a step costs more than the lanes save (residual 3x32x32 net, 2 cores: 25 ms/sample at 8 lanes
# of 8x32x32, 45 ms at 16)
TENSOR_BUDGET = 65_536


def max_lanes(g: Graph, limit: int = 16) -> int:
    """The most lanes (at most ``limit``) the graph allows: 1 with a Concat (lane blocks would interleave),
    fewer where block-diagonal Dense weights would pass DENSE_BUDGET or the largest tensor TENSOR_BUDGET."""
    if any(n.op in ONE_LANE for n in g.nodes.values()):
        return 1
    dense = sum(n.params["weight"].size for n in g.nodes.values() if WIDEN.get(n.op) is _block_diagonal)
    largest = max(int(np.prod(s)) for s in g.shapes.values())
    b = max(1, min(limit, TENSOR_BUDGET // largest))
    while b > 1 and dense * b * b > DENSE_BUDGET:
        b -= 1
    return b


def lane_graph(g: Graph, lanes: int) -> Graph:
    """``g`` (lowered) with ``lanes`` samples side by side: per-sample shapes (B*d0, d1, ...)."""
    if lanes == 1:
        return g
    if lanes > max_lanes(g, lanes):
        raise TargetError(f"this graph cannot run {lanes} lanes (at most {max_lanes(g, lanes)})")
    out = g.copy()
    for n in out.topo():
        _widen(n, lanes, out)
    out.shapes = {t: (lanes * s[0], *s[1:]) for t, s in out.shapes.items()}
    out.meta["lanes"] = lanes
    out.validate()
    return out


def _input_shape(n: Node, B: int, g: Graph) -> None:
    if n.attrs.get("shape"):
        n.attrs["shape"] = [B * int(n.attrs["shape"][0]), *n.attrs["shape"][1:]]


def _grouped_conv(n: Node, B: int, g: Graph) -> None:
    n.params["weight"] = np.tile(n.params["weight"], (B, 1, 1, 1))
    n.attrs["groups"] = B * int(op_of(n).attr(n, "groups"))


def _block_diagonal(n: Node, B: int, g: Graph) -> None:
    n.params["weight"] = np.kron(np.eye(B, dtype=n.params["weight"].dtype), n.params["weight"])


def _target_shape(n: Node, B: int, g: Graph) -> None:
    shape = g.shapes[n.output]
    n.attrs["shape"] = [B * int(shape[0]), *map(int, shape[1:])]


# op name -> what its node changes to take B lanes (the rest act per channel: only their constants repeat, _widen)
WIDEN: dict[str, Callable[[Node, int, Graph], None]] = {
    "Input": _input_shape, "Conv": _grouped_conv, "Dense": _block_diagonal, "Reshape": _target_shape}
ONE_LANE = frozenset({"Concat"})  # ops with no lane form: the lane blocks of their inputs would interleave


def _widen(n: Node, B: int, g: Graph) -> None:
    op = op_of(n)
    if n.op in WIDEN:
        WIDEN[n.op](n, B, g)
    for key in ("const", "bias", *op.varying(n)):  # per-channel constants, sink biases and per-neuron parameters
        # repeat per lane; scalars stay
        v = n.params.get(key)
        if v is not None and v.ndim == len(g.shapes[n.output]) + 0 and v.ndim >= 1 and v.shape[0] > 1:
            n.params[key] = np.tile(v, (B,) + (1,) * (v.ndim - 1))
        elif v is not None and v.ndim >= 1 and v.shape[0] > 1:
            raise TargetError(f"a constant of shape {v.shape} has no lane form", node=n.name, op=n.op)
