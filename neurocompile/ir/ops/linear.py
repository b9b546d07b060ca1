"""Linear ops: Conv, Dense, Gemm, MatMul, BatchNorm, Affine, Mul, Div (a linear map and a constant term)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from neurocompile.ir import Node, Shape
from neurocompile.ir.ops.base import NoWeightMap, Op, WeightMap, channel, pad2d, pair, scalar_const, tensors
from neurocompile.ir.ops.registry import register
from neurocompile.ir.ops.rules import FLAG, WEIGHT_EXP, Int, Ints, Real


def _channel_scale_map(node: Node, scale: np.ndarray, in_shape: Shape) -> WeightMap:
    """A scalar or per-channel factor as a diagonal map: depthwise 1x1 conv on (C, H, W), diagonal dense on (C,)."""
    C = int(in_shape[0])
    v = np.asarray(scale, np.float64).reshape(-1)
    if v.size not in (1, C) or len(in_shape) not in (1, 3):
        raise NoWeightMap(f"a factor of shape {np.shape(scale)} on a tensor of shape {tuple(in_shape)} is neither "
                          "scalar nor per-channel")
    v = np.broadcast_to(v, (C,))
    return WeightMap("conv", v.reshape(C, 1, 1, 1).copy(), groups=C) if len(in_shape) == 3 else WeightMap("dense", np.diag(v))


@register
class Conv(Op):
    synaptic, rescalable = True, ("weight", "bias")
    params = ("weight",)
    optional = ("bias",)
    attrs = {"stride": [1, 1], "pads": [0, 0, 0, 0], "dilation": [1, 1], "groups": 1, "weight_exp": 0}
    attr_rules = {"stride": Ints(min=1, size=2), "pads": Ints(min=0, size=4), "dilation": Ints(min=1, size=2),
                  "groups": Int(min=1), "weight_exp": WEIGHT_EXP}

    def linear(self, node, xs, p):
        x, pad = pad2d(xs[0], self.attr(node, "pads"))
        return F.conv2d(x, p["weight"], None, pair(self.attr(node, "stride")), pad,
                        pair(self.attr(node, "dilation")), int(self.attr(node, "groups")))

    def bias(self, node, p, shape):
        return channel(p["bias"], 1 + len(shape)) if "bias" in p else None

    def drop_constant(self, node, shape):
        node.params.pop("bias", None)

    def weight_map(self, node, in_shape):
        return WeightMap("conv", node.params["weight"].astype(np.float64), pair(self.attr(node, "stride")),
                         tuple(int(v) for v in self.attr(node, "pads")), pair(self.attr(node, "dilation")),
                         int(self.attr(node, "groups")))

    def forward(self, node, xs, p):
        y = self.linear(node, xs, p)
        return y + channel(p["bias"], y.ndim) if "bias" in p else y


@register
class Dense(Op):
    """y = x @ W.T + b with W of shape (out, in): torch's Linear layout."""

    synaptic, rescalable = True, ("weight", "bias")
    params = ("weight",)
    optional = ("bias",)
    attrs = {"weight_exp": 0}  # fixed point: the stored integer weights are mantissa * 2**weight_exp
    attr_rules = {"weight_exp": WEIGHT_EXP}

    def linear(self, node, xs, p):
        return F.linear(xs[0], p["weight"])

    def bias(self, node, p, shape):
        return p.get("bias")

    def drop_constant(self, node, shape):
        node.params.pop("bias", None)

    def weight_map(self, node, in_shape):
        return WeightMap("dense", node.params["weight"].astype(np.float64))

    def forward(self, node, xs, p):
        return F.linear(xs[0], p["weight"], p.get("bias"))


@register
class Gemm(Op):
    """ONNX Gemm with a constant B (and C): alpha * x @ op(B) + beta * C. canonicalize -> Dense."""

    params = ("B",)
    optional = ("C",)
    attrs = {"alpha": 1.0, "beta": 1.0, "transB": 0}
    attr_rules = {"alpha": Real(), "beta": Real(), "transB": FLAG}

    def forward(self, node, xs, p):
        b = p["B"].T if self.attr(node, "transB") else p["B"]
        y = self.attr(node, "alpha") * (xs[0] @ b)
        return y + self.attr(node, "beta") * p["C"] if "C" in p else y


@register
class MatMul(Op):
    """x @ B with constant B; canonicalize -> Dense (merging a following Add of a constant)."""

    params = ("B",)

    def forward(self, node, xs, p):
        return xs[0] @ p["B"]


@register
class BatchNorm(Op):
    params = ("scale", "bias", "mean", "var")
    attrs = {"eps": 1e-5}
    attr_rules = {"eps": Real(min=0.0)}

    def _scale_shift(self, node, p):
        s = p["scale"] / torch.sqrt(p["var"] + self.attr(node, "eps"))
        return s, p["bias"] - p["mean"] * s

    def linear(self, node, xs, p):
        return xs[0] * channel(self._scale_shift(node, p)[0], xs[0].ndim)

    def bias(self, node, p, shape):
        return channel(self._scale_shift(node, p)[1], 1 + len(shape))

    def drop_constant(self, node, shape):
        s, _ = self._scale_shift(node, tensors(node, torch.float64))
        _to_channel_mul(node, s.numpy(), shape)

    def forward(self, node, xs, p):
        s, t = self._scale_shift(node, p)
        return xs[0] * channel(s, xs[0].ndim) + channel(t, xs[0].ndim)


@register
class Affine(Op):
    """Per-channel y = x * scale + shift: what a BatchNorm with no foldable producer becomes."""

    synaptic, rescalable = True, ("scale", "shift")
    params = ("scale", "shift")

    def linear(self, node, xs, p):
        return xs[0] * channel(p["scale"], xs[0].ndim)

    def bias(self, node, p, shape):
        return channel(p["shift"], 1 + len(shape))

    def drop_constant(self, node, shape):
        _to_channel_mul(node, node.params["scale"], shape)

    def weight_map(self, node, in_shape):
        return _channel_scale_map(node, node.params["scale"], in_shape)

    def forward(self, node, xs, p):
        return self.linear(node, xs, p) + channel(p["shift"], xs[0].ndim)


def _to_channel_mul(node: Node, scale: np.ndarray, shape: Shape) -> None:
    """Make ``node`` the Mul by a per-channel factor (its linear part)."""
    c = np.asarray(scale, np.float64).reshape((-1,) + (1,) * (len(shape) - 1))  # float64: no second rounding
    node.op, node.attrs, node.params = "Mul", {}, {"const": c}



@register
class Mul(Op):
    synaptic = homogeneous = True  # a scalar or per-channel scaling: a diagonal weight map
    params = ("const",)

    def weight_map(self, node, in_shape):
        return _channel_scale_map(node, node.params["const"], in_shape)

    def scalar_scale(self, node):
        return scalar_const(node)

    def forward(self, node, xs, p):
        return xs[0] * p["const"]


@register
class Div(Op):
    """x / const (kept as a division: x / c and x * (1/c) round differently at quantization steps)."""

    synaptic = homogeneous = True
    params = ("const",)

    def weight_map(self, node, in_shape):
        return _channel_scale_map(node, 1.0 / node.params["const"].astype(np.float64), in_shape)

    def scalar_scale(self, node):
        k = scalar_const(node)
        return None if not k else 1.0 / k

    def forward(self, node, xs, p):
        return xs[0] / p["const"]
