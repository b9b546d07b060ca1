"""Ops that route values without computing on them: Input, Flatten, Reshape, Identity, Dropout, StepDelay and the
Readout (a lowered graph's output)."""
from __future__ import annotations

from neurocompile.ir.ops.base import Op, Role
from neurocompile.ir.ops.registry import register
from neurocompile.ir.ops.rules import Int, Ints, Real


@register
class Input(Op):
    role = Role.INPUT
    attrs = {"shape": None, "scale": None}  # scale: fixed point's unit of the input (quantize_fixed_point)
    attr_rules = {"shape": Ints(min=1), "scale": Real(gt=0.0, null=True)}



@register
class Flatten(Op):
    homogeneous = exact_in_integers = True
    def forward(self, node, xs, p):
        return xs[0].reshape(xs[0].shape[0], -1)


@register
class Reshape(Op):
    """Reshape keeping the batch dimension; ``shape`` is the per-sample target shape."""

    homogeneous = exact_in_integers = True
    attrs = {"shape": [-1]}
    attr_rules = {"shape": Ints(min=-1)}  # -1: the size that keeps the element count (shape inference checks it)

    def forward(self, node, xs, p):
        return xs[0].reshape(xs[0].shape[0], *self.attr(node, "shape"))



@register
class Identity(Op):
    homogeneous = exact_in_integers = True
    role = Role.IDENTITY

    def forward(self, node, xs, p):
        return xs[0]


@register
class Dropout(Identity):
    pass


@register
class StepDelay(Op):
    """The input, ``steps`` steps late (NIR's Delay): its value is the identity (no ANN meaning changes), and the schedule
    adds ``steps`` to the node's output delay, which every target applies. Spiking students only (a CIF network's wake
    phase would miss a delayed input)."""

    homogeneous = exact_in_integers = True
    attrs = {"steps": 1}
    attr_rules = {"steps": Int(0, "MAX_STEPS")}

    def output_delay(self, node):
        return int(self.attr(node, "steps"))

    def forward(self, node, xs, p):
        return xs[0]


@register
class Readout(Op):
    """A graph output of a lowered graph (a sink): sums the currents reaching it plus its ``bias``, the
    constant current of the layers before it, gated to its wake window."""

    role = Role.READOUT
    sink = True
    optional = ("bias",)

    def forward(self, node, xs, p):
        return xs[0] + p["bias"] if "bias" in p else xs[0]

