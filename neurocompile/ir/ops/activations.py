"""ANN activations: Relu, Clip, LeakyRelu, Floor, Round and the CQReLU (what conversion makes neurons)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from neurocompile.ir.neurons import cqrelu
from neurocompile.ir.ops.base import Op, Role
from neurocompile.ir.ops.registry import register
from neurocompile.ir.ops.rules import FLAG, LEVELS, POSITIVE, SHIFT, Real


@register
class Relu(Op):
    calibratable = True
    role = Role.ACTIVATION

    def bounds(self, node):
        return 0.0, math.inf

    def forward(self, node, xs, p):
        return torch.relu(xs[0])


@register
class Clip(Op):
    calibratable = True
    role = Role.ACTIVATION
    attrs = {"min": None, "max": None}
    attr_rules = {"min": Real(finite=False, null=True), "max": Real(finite=False, null=True)}  # inf: no bound

    def bounds(self, node):
        lo, hi = self.attr(node, "min"), self.attr(node, "max")
        return (-math.inf if lo is None else float(lo)), (math.inf if hi is None else float(hi))

    def forward(self, node, xs, p):
        lo, hi = self.attr(node, "min"), self.attr(node, "max")
        return xs[0] if lo is None and hi is None else torch.clamp(xs[0], lo, hi)  # ONNX: no bounds, no-op


@register
class LeakyRelu(Op):
    """x for x >= 0, alpha * x below: imported so the ANN can be inspected and run, refused by conversion."""

    role = Role.ACTIVATION
    attrs = {"alpha": 0.01}
    attr_rules = {"alpha": Real()}

    def forward(self, node, xs, p):
        return F.leaky_relu(xs[0], float(self.attr(node, "alpha")))

    def no_spiking_form(self, node):
        alpha = float(self.attr(node, "alpha"))
        return (f"LeakyRelu (alpha={alpha:.7g}) has no spiking form: its negative outputs alpha*x have no "
                "equivalent in CIF/IF neurons, whose spike counts stand for the levels 0..L of a clipped ReLU",
                "Train with ReLU, or with CQReLU (neurocompile.torch.CQReLU) for a lossless conversion")


@register
class Floor(Op):
    role = Role.ACTIVATION
    rounding = 0.0

    def forward(self, node, xs, p):
        return torch.floor(xs[0])


@register
class Round(Op):
    """ONNX Round: to the nearest integer, ties to even (torch.round does the same)."""

    role = Role.ACTIVATION
    rounding = 0.5  # round(y) = floor(y + 0.5) but at exact ties

    def forward(self, node, xs, p):
        return torch.round(xs[0])


@register
class CQReLU(Op):
    quantizer = True
    role = Role.ACTIVATION
    attrs = {"levels": 8, "clip": 1.0, "shift": 0.0, "calibrated": False}  # calibrated: λ from data (a note)
    attr_rules = {"levels": LEVELS, "clip": POSITIVE, "shift": SHIFT, "calibrated": FLAG}

    def forward(self, node, xs, p):
        return cqrelu(xs[0], int(self.attr(node, "levels")), float(self.attr(node, "clip")),
                      float(self.attr(node, "shift")))

