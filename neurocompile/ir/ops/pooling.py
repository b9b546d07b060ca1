"""Pooling: the windowed Pool base (ONNX pads, ceil_mode), AvgPool, MaxPool, the spiking max pools
(InhibitionMaxPool, StepMaxPool) and GlobalAvgPool."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from neurocompile.ir import neurons
from neurocompile.ir import Node
from neurocompile.ir.ops.base import NoWeightMap, Op, Role, Tensor, WeightMap, pair
from neurocompile.ir.ops.registry import register
from neurocompile.ir.ops.rules import FLAG, Ints, Real


def pool_axis(size: int, k: int, s: int, pb: int, pe: int, ceil: bool) -> int:
    """Number of windows along one pooled axis, by the rule onnxruntime and the ONNX spec share: window i
    covers [i*s - pb, i*s - pb + k); ceil_mode adds a last partial window only if it starts inside the
    input or the begin padding (one that would start in the end padding is dropped)."""
    span = size + pb + pe - k
    if span < 0:
        raise ValueError(f"a {k}-wide pooling window does not fit the padded size {size + pb + pe}")
    n = (-(-span // s) if ceil else span // s) + 1
    return n - 1 if ceil and (n - 1) * s >= size + pb else n


class Pool(Op):
    """2-D pooling with ONNX's explicit pads [top, left, bottom, right] and ceil_mode. The padding is applied
    here rather than by torch's pooling, which refuses pads over half the kernel and places ceil_mode
    windows by its own (symmetric-pad) rule."""

    attrs = {"kernel": [2, 2], "stride": [2, 2], "pads": [0, 0, 0, 0], "ceil_mode": 0}
    attr_rules = {"kernel": Ints(min=1, size=2), "stride": Ints(min=1, size=2), "pads": Ints(min=0, size=4),
                  "ceil_mode": FLAG}

    def geometry(self, node: Node, hw: Sequence[int]) -> list[tuple[int, int, int, int, int]]:
        """Per spatial axis (kernel, stride, begin pad, end pad, number of windows)."""
        k, s = pair(self.attr(node, "kernel")), pair(self.attr(node, "stride"))
        t, l, b, r = (int(v) for v in self.attr(node, "pads"))
        if max(t, b) >= k[0] or max(l, r) >= k[1]:  # a window could then lie in padding only
            raise ValueError(f"pads {[t, l, b, r]} must be smaller than the kernel {list(k)}")
        return [(k[i], s[i], pb, pe, pool_axis(int(hw[i]), k[i], s[i], pb, pe, bool(self.attr(node, "ceil_mode"))))
                for i, (pb, pe) in enumerate(((t, b), (l, r)))]

    def padded(self, node: Node, x: Tensor, value: float) -> tuple[Tensor, tuple[int, int], tuple[int, int]]:
        """``x`` padded with ``value`` and padded or cropped at the ends so that the windows tile it exactly
        (ceil_mode overhang included), with the kernel and stride: an unpadded pool of it is the op."""
        (kh, sh, t, _, nh), (kw, sw, l, _, nw) = self.geometry(node, x.shape[-2:])
        ends = ((nw - 1) * sw + kw - x.shape[-1] - l, (nh - 1) * sh + kh - x.shape[-2] - t)  # < 0 crops
        return F.pad(x, (l, ends[0], t, ends[1]), value=value), (kh, kw), (sh, sw)


@register
class AvgPool(Pool):
    """``count_overhang`` (with count_include_pad): a ceil_mode window's overhang past the end pads counts
    too, so every window divides by kh*kw: what onnxruntime does for AveragePool opsets < 19."""

    synaptic = homogeneous = True
    attrs = {**Pool.attrs, "count_include_pad": 0, "count_overhang": 0, "divisor_override": None}
    attr_rules = {**Pool.attr_rules, "count_include_pad": FLAG, "count_overhang": FLAG,
                  "divisor_override": Real(gt=0.0, null=True)}

    def divisor(self, node: Node, hw: Sequence[int], device: Any = None, dtype: Any = None) -> Tensor:
        """(Ho, Wo): how many elements each window averages. The input elements it covers; with
        count_include_pad also its explicit padding, but not the ceil_mode overhang past the end pads (the
        ONNX spec's, PyTorch's and onnxruntime's rule from opset 19) unless ``count_overhang``."""
        cip, overhang = bool(self.attr(node, "count_include_pad")), bool(self.attr(node, "count_overhang"))
        override = self.attr(node, "divisor_override")
        if override is not None:  # fixed point: window sums (the unit takes the 1/window)
            return torch.full([g[4] for g in self.geometry(node, hw)], float(override), device=device, dtype=dtype)
        counts = []
        for size, (k, s, pb, pe, n) in zip(hw, self.geometry(node, hw)):
            start = torch.arange(n, device=device, dtype=dtype) * s - pb
            # k past the end pads lies beyond every window: nothing is clipped there
            lo, hi = (-pb, int(size) + pe + (k if overhang else 0)) if cip else (0, int(size))
            counts.append(torch.clamp(start + k, max=hi) - torch.clamp(start, min=lo))
        return counts[0][:, None] * counts[1][None, :]

    def is_conv(self, node: Node, hw: Sequence[int]) -> bool:
        """The pool is a depthwise convolution with weights 1/(kh*kw) and the same stride and pads (what
        Lava and fixed point run): every window lies within the padded input and divides by kh*kw."""
        geo = self.geometry(node, hw)
        if any((n - 1) * s + k > size + pb + pe for size, (k, s, pb, pe, n) in zip(hw, geo)):
            return False  # a ceil_mode window overhangs the end pads: no convolution has it
        if self.attr(node, "divisor_override") is not None:  # set (by fixed point) on such pools only
            return True
        return bool((self.divisor(node, hw, dtype=torch.float64) == self.window(node)).all())

    def window(self, node: Node, hw: Sequence[int] | None = None) -> int:
        """Elements per window (kh*kw): the one divisor of a pool that is a convolution."""
        kh, kw = pair(self.attr(node, "kernel"))
        return kh * kw

    def weight_map(self, node, in_shape):
        C, H, W = in_shape
        if not self.is_conv(node, (H, W)):
            raise NoWeightMap("this AvgPool is not a fixed-weight Conv: its windows average over different counts "
                              "(padding with count_include_pad=0) or one overhangs the end pads (ceil_mode)",
                              hint="Export the pool with count_include_pad=1 and no ceil_mode overhang, or run on "
                                   "the reference target")
        kh, kw = pair(self.attr(node, "kernel"))
        override = self.attr(node, "divisor_override")
        w = 1.0 / (kh * kw if override is None else float(override))
        return WeightMap("conv", np.full((C, 1, kh, kw), w), pair(self.attr(node, "stride")),
                         tuple(int(v) for v in self.attr(node, "pads")), groups=C)

    def forward(self, node, xs, p):
        x, k, s = self.padded(node, xs[0], 0.0)
        total = F.avg_pool2d(x, k, s, divisor_override=1)  # window sums; ORT also sums, then divides
        return total / self.divisor(node, xs[0].shape[-2:], xs[0].device, xs[0].dtype)


@register
class MaxPool(Pool):
    homogeneous = True
    role = Role.MAXPOOL

    def forward(self, node, xs, p):
        x, k, s = self.padded(node, xs[0], float("-inf"))  # every window holds an input element
        return F.max_pool2d(x, k, s)


@register
class InhibitionMaxPool(MaxPool):
    """MaxPool of a spiking network, done by lateral inhibition per window (same ANN meaning)."""

    exact_in_integers = True  # selects one input of its window per step
    stateful = sink = count_domain = True  # cumulative output = max over each window of the cumulative input
    rests_when_silent = True  # after a step every window's largest accumulator is 0: no input, nothing sent
    role = Role.NEURON
    optional = ("bias",)

    def windows(self, node: Node, x: Tensor) -> Tensor:
        """(N, C, Ho*Wo, kh*kw) view of each pooling window: the ANN's own windows (``padded``); padding and
        ceil_mode overhang are -inf (every window holds an input)."""
        xp, (kh, kw), (sh, sw) = self.padded(node, x, float("-inf"))
        cols = xp.unfold(2, kh, sh).unfold(3, kw, sw)  # N, C, Ho, Wo, kh, kw
        return cols.reshape(x.shape[0], x.shape[1], cols.shape[2] * cols.shape[3], kh * kw)

    def _tiles(self, node: Node, hw: Sequence[int]) -> bool:
        """Non-overlapping unpadded windows that tile the input exactly."""
        geo = self.geometry(node, hw)
        return all(k == s and pb == pe == 0 and n * k == size for size, (k, s, pb, pe, n) in zip(hw, geo))

    def init_state(self, node, x):
        tiles = self._tiles(node, x.shape[-2:])
        return {"A": torch.zeros_like(x if tiles else self.windows(node, x)), "tiles": tiles}

    def forward(self, node, xs, p):  # a lowered pool adds its bias (the current reaching it) first
        return super().forward(node, [xs[0] + p["bias"]] if "bias" in p else xs, p)

    def step(self, node, state, x, wake_seen):
        """Lateral inhibition: each window accumulates its inputs and sends (and subtracts) the largest
        accumulator. Tiling windows keep the accumulator in the input's own layout (no copies)."""
        (kh, _, _, _, Ho), (kw, _, _, _, Wo) = self.geometry(node, x.shape[-2:])
        N, C = x.shape[:2]
        if state["tiles"]:
            return neurons.inhibition_maxpool_tiles_step_(state["A"], x, (kh, kw))
        return neurons.inhibition_maxpool_step_(state["A"], self.windows(node, x)).reshape(N, C, Ho, Wo)


@register
class StepMaxPool(MaxPool):
    """MaxPool of a LIF student, each step on that step's values (what its PyTorch module computes every step: for
    binary spikes the OR of each window). A sink, so the constant current reaching it is added first (its ``bias``:
    max(x + b) is not max(x) + b for a per-pixel b); it keeps no state between steps."""

    exact_in_integers = True  # selects one input of its window per step
    stateful = sink = True
    role = Role.NEURON
    optional = ("bias",)

    def forward(self, node, xs, p):  # a lowered pool adds its bias (the current reaching it) first
        return super().forward(node, [xs[0] + p["bias"]] if "bias" in p else xs, p)

    def init_state(self, node, x):
        return {}

    def step(self, node, state, x, wake_seen):
        return super().forward(node, [x], {})


@register
class GlobalAvgPool(Op):
    """Mean over the spatial axes; ``divisor_override`` (fixed point) divides the sum by it instead."""

    synaptic = homogeneous = True
    attrs = {"divisor_override": None}
    attr_rules = {"divisor_override": Real(gt=0.0, null=True)}

    def window(self, node: Node, hw: Sequence[int]) -> int:
        return int(np.prod(hw))

    def weight_map(self, node, in_shape):
        C, H, W = in_shape
        override = self.attr(node, "divisor_override")
        return WeightMap("conv", np.full((C, 1, H, W), 1.0 / (H * W if override is None else float(override))),
                         groups=C)

    def forward(self, node, xs, p):
        override = self.attr(node, "divisor_override")
        dims = tuple(range(2, xs[0].ndim))
        return xs[0].mean(dim=dims, keepdim=True) if override is None else xs[0].sum(dim=dims, keepdim=True) / override

