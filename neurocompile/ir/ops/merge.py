"""Ops that join data tensors: Add, Sub (with a constant term) and Concat."""
from __future__ import annotations

import torch

from neurocompile.ir.ops.base import Op, scalar_const
from neurocompile.ir.ops.registry import register
from neurocompile.ir.ops.rules import FLAG, Int, Ints


@register
class Add(Op):
    """Sum of two or more data tensors, or one tensor plus a constant ``const`` (ONNX broadcasting).
    ``gains`` (fixed point) weighs each data input by an integer: the factor that brings a branch without
    weights (an identity shortcut) to the unit of the other branches at the neuron they meet."""

    merge = additive = True
    optional = ("const",)
    attrs = {"gains": None}
    attr_rules = {"gains": Ints(min=1, size="inputs", null=True)}

    def input_gains(self, node):
        return list(self.attr(node, "gains") or [1] * len(node.inputs))

    def linear(self, node, xs, p):
        gains = self.input_gains(node)
        y = xs[0] if gains[0] == 1 else xs[0] * float(gains[0])
        for x, k in zip(xs[1:], gains[1:]):
            y = y + (x if k == 1 else x * float(k))
        return y

    def bias(self, node, p, shape):
        return p.get("const")

    def drop_constant(self, node, shape):
        node.params.pop("const", None)

    def scalar_offset(self, node):
        return scalar_const(node)

    def forward(self, node, xs, p):
        y = self.linear(node, xs, p)
        return y + p["const"] if "const" in p else y


@register
class Sub(Op):
    """x - const, const - x when ``reverse``, or x0 - x1 of two data tensors (the ``q - c`` of a
    straight-through estimator ``c + (q - c).detach()``, which canonicalize removes)."""

    additive = True
    optional = ("const",)
    attrs = {"reverse": 0}
    attr_rules = {"reverse": FLAG}

    def linear(self, node, xs, p):
        if len(xs) == 2:
            return xs[0] - xs[1]
        return -xs[0] if self.attr(node, "reverse") else xs[0]

    def bias(self, node, p, shape):
        if "const" not in p:
            return None
        return p["const"] if self.attr(node, "reverse") else -p["const"]

    def drop_constant(self, node, shape):
        node.params.pop("const", None)  # const - x keeps ``reverse``: its linear part is -x

    def scalar_offset(self, node):
        k = None if self.attr(node, "reverse") else scalar_const(node)
        return None if k is None else -k

    def no_spiking_form(self, node):
        if len(node.inputs) == 2:
            return ("a difference of two data tensors has no spiking form",
                    "neurocompile removes the straight-through estimator c + (q - c).detach(); other Sub nodes "
                    "between two branches are not supported")
        return None

    def forward(self, node, xs, p):
        if len(xs) == 2 or "const" not in p:  # a lowered Sub is its linear part
            return self.linear(node, xs, p)
        return p["const"] - xs[0] if self.attr(node, "reverse") else xs[0] - p["const"]



@register
class Concat(Op):
    merge = True
    attrs = {"axis": 1}
    attr_rules = {"axis": Int(min=1)}  # counts the batch axis (0), which no per-sample op may concatenate along

    def forward(self, node, xs, p):
        return torch.cat(list(xs), dim=int(self.attr(node, "axis")))

