"""Questions asked of the whole op table, answered once every family is registered: :class:`Group` (named sets of
op names), :func:`is_level_neuron`, :func:`refuse_no_spiking_form` and :func:`infer_shape`."""
from __future__ import annotations

import json
from typing import Any

import torch

from neurocompile.ir import Graph, Node, Shape
from neurocompile.ir.ops import activations, linear, merge, neurons, pooling, structure  # noqa: F401 - fill OPS
from neurocompile.ir.ops.base import Role
from neurocompile.ir.ops.pooling import Pool
from neurocompile.ir.ops.registry import OPS


def _named(rule) -> frozenset[str]:
    return frozenset(name for name, op in OPS.items() if rule(op))


class Group:
    """Named sets of op names, each made by the one rule beside it (tinygrad's ``GroupOp``): what a pass or target
    asks of a node is ``node.op in Group.X``. Built from :data:`OPS`, so a new op class joins by its traits."""

    INPUT = _named(lambda op: op.role is Role.INPUT)                  # where the input current enters
    AFFINE = _named(lambda op: op.role is Role.AFFINE)                # linear map + constant term: kept, lowered
    ACTIVATION = _named(lambda op: op.role is Role.ACTIVATION)        # ANN nonlinearity: conversion makes it a neuron
    NEURON = _named(lambda op: op.role is Role.NEURON)                # stateful in time (neurons, inhibition pools)
    MAXPOOL = _named(lambda op: op.role is Role.MAXPOOL)              # a max pool: encode_spikes makes it inhibition
    IDENTITY = _named(lambda op: op.role is Role.IDENTITY)            # passes its input through: canonicalize drops it
    READOUT = _named(lambda op: op.role is Role.READOUT)              # integrates an output, never fires
    LEVEL_NEURON = _named(lambda op: op.spiking and op.quantizer)     # CIF, IF: a CQReLU with L levels in time
    POOL = _named(lambda op: isinstance(op, Pool))                    # windowed pooling (kernel, strides, pads)
    INTEGRATOR = _named(lambda op: op.integrator)                     # sends its membrane each step, never spikes (LI)


def is_level_neuron(node: Node) -> bool:
    """A spiking neuron whose ANN meaning is a CQReLU with L levels (CIF, IF; not LIF)."""
    return node.op in Group.LEVEL_NEURON


def refuse_no_spiking_form(g: Graph) -> None:
    """Raise the ConversionError of the first node a spiking network cannot compute (``Op.no_spiking_form``)."""
    from neurocompile.errors import ConversionError

    for n in g.topo():
        why = OPS[n.op].no_spiking_form(n)
        if why is not None:
            raise ConversionError(why[0], node=n.name, op=n.op, hint=why[1])


_SHAPES: dict[tuple, Shape] = {}  # (op, attrs, parameter shapes, input shapes) -> output shape


def _plain(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else repr(v)  # arrays in full (a repr would elide their middle)


def infer_shape(node: Node, in_shapes: list[Shape]) -> Shape:
    """Per-sample output shape, computed by running the op on meta tensors (batch 1). Meta tensors carry shapes
    only, so the answer depends on the op, its attributes and the shapes alone: it is kept (the pass manager
    validates the graph after every pass, and most nodes are unchanged)."""
    key = (node.op, json.dumps(node.attrs, sort_keys=True, default=_plain),
           tuple((k, tuple(v.shape)) for k, v in sorted(node.params.items())), tuple(tuple(s) for s in in_shapes))
    hit = _SHAPES.get(key)
    if hit is not None:
        return hit
    xs = [torch.empty((1, *s), device="meta") for s in in_shapes]
    p = {k: torch.empty(v.shape, device="meta") for k, v in node.params.items()}
    shape = tuple(OPS[node.op].forward(node, xs, p).shape[1:])  # neurons without an ANN meaning: elementwise
    if len(_SHAPES) < 100_000:
        _SHAPES[key] = shape
    return shape
