"""The importer's handlers of NIR's synaptic and structural nodes (Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d,
AvgPool2d, Flatten, Delay): each checks its node's fields and shapes and adds the IR nodes it maps to (the node
mapping in :mod:`neurocompile.frontends.nir.importer`)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurocompile import limits
from neurocompile.errors import ConversionError, ModelLoadError
from neurocompile.frontends.nir.fields import as_str, check_param, ints, numbers
from neurocompile.ir import Node, Shape
from neurocompile.ir.ops import OPS, pair


class Layers:
    """Node handlers of the importer (:class:`neurocompile.frontends.nir.importer.Importer`), each
    ``(k, node, x, shape) -> the IR tensor of the node's output``."""

    def _input(self, k: str, node: Any) -> None:
        shape = node.input_type.get("input")
        dims = tuple(ints(shape, None, k, "Input", "the declared shape")) if shape is not None else ()
        if not dims or any(d < 1 for d in dims):
            raise ModelLoadError(f"the Input node declares the shape {dims}: a per-sample shape of positive sizes is "
                                 "needed", node=k, op="Input")
        if math.prod(dims) > limits.MAX_FILE_ARRAY_ELEMENTS:
            raise ModelLoadError(f"the Input node declares the shape {dims}, {math.prod(dims):,} elements per sample: "
                                 f"over the limit of {limits.MAX_FILE_ARRAY_ELEMENTS:,} "
                                 "(neurocompile.limits.MAX_FILE_ARRAY_ELEMENTS)", node=k, op="Input")
        self.out.add(Node(k, "Input", [], k, {"shape": list(dims)}), dims)
        self.tensor[k] = k

    def _dense(self, k: str, node: Any, x: str, shape: Shape, bias: np.ndarray | None, typ: str) -> str:
        w = numbers(node.weight, k, typ, "weight")
        if w.ndim != 2:
            raise ModelLoadError(f"a weight of rank {w.ndim} (only (out, in) matrices are supported)", node=k, op=typ)
        if tuple(shape) != (w.shape[1],):
            raise ModelLoadError(f"inconsistent shapes: the weight {w.shape} takes vectors of {w.shape[1]}, the input "
                                 f"has shape {tuple(shape)}", node=k, op=typ,
                                 hint="Flatten the input first (a NIR Flatten node)" if len(shape) > 1 else None)
        params = {"weight": w, **self._gated_bias(k, typ, w.shape[0])}
        if bias is not None and "bias" not in params:
            b = numbers(bias, k, typ, "bias")
            if b.shape != (w.shape[0],):
                raise ModelLoadError(f"inconsistent shapes: bias of shape {b.shape} for {w.shape[0]} outputs",
                                     node=k, op=typ)
            params["bias"] = b
        return self._add(k, "Dense", [x], {}, params, k, typ)

    def _Affine(self, k, node, x, shape):
        return self._dense(k, node, x, shape, node.bias, "Affine")

    def _Linear(self, k, node, x, shape):
        return self._dense(k, node, x, shape, None, "Linear")

    def _Scale(self, k, node, x, shape):
        s = numbers(node.scale, k, "Scale", "scale")
        try:
            ok = np.broadcast_shapes(s.shape, tuple(shape)) == tuple(shape)
        except ValueError:
            ok = False
        if not ok:
            raise ModelLoadError(f"inconsistent shapes: a scale of shape {s.shape} for an input of shape {tuple(shape)}",
                                 node=k, op="Scale")
        return self._add(k, "Mul", [x], {}, {"const": s}, k, "Scale")

    def _conv_geometry(self, k: str, typ: str, node: Any, nd: int, hw: tuple[int, ...],
                       kernel: tuple[int, ...]) -> tuple[list[int], list[int], list[int]]:
        """(stride, dilation, pads [begins..., ends...]) of a NIR conv/pool with ``nd`` spatial axes."""
        stride = ints(node.stride, nd, k, typ, "stride", 1)
        dilation = ints(getattr(node, "dilation", 1), nd, k, typ, "dilation", 1)
        pad = node.padding
        if isinstance(pad, (bytes, np.bytes_)):
            pad = pad.decode()
        if isinstance(pad, np.ndarray) and pad.dtype.kind in "SUO" and pad.size == 1:
            pad = as_str(pad.reshape(()).item())
        if isinstance(pad, str):
            if pad == "valid":
                return stride, dilation, [0] * (2 * nd)
            if pad != "same":
                raise ModelLoadError(f"padding {pad!r} (NIR allows an int, 'same' or 'valid')", node=k, op=typ)
            if any(s != 1 for s in stride):
                raise ConversionError(f"padding 'same' with stride {stride}: PyTorch's rule (which NIR follows) is "
                                      "defined for stride 1 only", node=k, op=typ, hint="Export explicit paddings")
            total = [d * (kk - 1) for d, kk in zip(dilation, kernel)]
            return stride, dilation, [t // 2 for t in total] + [t - t // 2 for t in total]  # odd pad at the end
        p = ints(pad, nd, k, typ, "padding", 0)
        return stride, dilation, p + p

    def _conv_weight(self, k: str, typ: str, node: Any, shape: Shape, nd: int):
        """A ConvNd's weight, groups and geometry, checked against its input shape (C, *spatial)."""
        w = numbers(node.weight, k, typ, "weight")
        axes = "kh, kw" if nd == 2 else "k"
        if w.ndim != nd + 2:
            raise ModelLoadError(f"a {typ} weight of rank {w.ndim} (NIR: (C_out, C_in/groups, {axes}))", node=k,
                                 op=typ)
        groups = ints(node.groups, 1, k, typ, "groups", 1)[0]
        if len(shape) != nd + 1 or shape[0] != w.shape[1] * groups:
            dims = "H, W" if nd == 2 else "L"
            raise ModelLoadError(f"inconsistent shapes: the weight {w.shape} with groups={groups} takes "
                                 f"({w.shape[1] * groups}, {dims}), the input has shape {tuple(shape)}", node=k, op=typ)
        self._check_input_shape(k, typ, node.input_shape, shape[1:])
        return (w, groups, *self._conv_geometry(k, typ, node, nd, shape[1:], w.shape[2:]))

    def _Conv2d(self, k, node, x, shape):
        w, groups, stride, dilation, p = self._conv_weight(k, "Conv2d", node, shape, 2)
        params = {"weight": w, **self._conv_bias(k, "Conv2d", node, w.shape[0])}
        y = self._add(k, "Conv", [x], {"stride": stride, "pads": [p[0], p[1], p[2], p[3]], "dilation": dilation,
                                       "groups": groups}, params, k, "Conv2d")
        self._check_declared(k, "Conv2d", node.output_type.get("output"), self._shape(y), "output")
        return y

    def _Conv1d(self, k, node, x, shape):
        w, groups, stride, dilation, p = self._conv_weight(k, "Conv1d", node, shape, 1)
        x2 = self._add(f"{k}.to2d", "Reshape", [x], {"shape": [shape[0], 1, shape[1]]}, {}, k, "Conv1d")
        params = {"weight": w[:, :, None, :], **self._conv_bias(k, "Conv1d", node, w.shape[0])}
        y = self._add(k, "Conv", [x2], {"stride": [1, stride[0]], "pads": [0, p[0], 0, p[1]],
                                        "dilation": [1, dilation[0]], "groups": groups}, params, k, "Conv1d")
        co, _, lo = self._shape(y)
        return self._add(f"{k}.to1d", "Reshape", [y], {"shape": [co, lo]}, {}, k, "Conv1d")

    def _conv_bias(self, k: str, typ: str, node: Any, c_out: int) -> dict:
        if k in self.gated:
            return self._gated_bias(k, typ, c_out)
        if getattr(node, "bias", None) is None:
            return {}
        b = numbers(node.bias, k, typ, "bias")
        if b.size == 1 and b.shape != (c_out,):
            b = np.full(c_out, float(b.reshape(())))
        if b.shape != (c_out,):
            raise ModelLoadError(f"inconsistent shapes: bias of shape {b.shape} for {c_out} output channels", node=k,
                                 op=typ)
        return {"bias": b} if b.any() else {}

    def _check_input_shape(self, k: str, typ: str, declared: Any, spatial: tuple[int, ...]) -> None:
        self._check_declared(k, typ, declared, spatial, "input_shape (spatial)")

    def _pool_geometry(self, k: str, typ: str, node: Any, shape: Shape) -> tuple[list[int], list[int], list[int]]:
        if len(shape) != 3:
            raise ModelLoadError(f"inconsistent shapes: 2-D pooling of an input of shape {tuple(shape)} (needs "
                                 "(C, H, W))", node=k, op=typ)
        kernel = ints(node.kernel_size, 2, k, typ, "kernel_size")
        stride = ints(node.stride, 2, k, typ, "stride")
        pad = ints(node.padding, 2, k, typ, "padding")
        if min(kernel) < 1 or min(stride) < 1 or min(pad) < 0:
            raise ModelLoadError(f"kernel_size {kernel}, stride {stride}, padding {pad}: sizes must be positive",
                                 node=k, op=typ)
        if any(kk > size + 2 * p for kk, size, p in zip(kernel, shape[1:], pad)):  # (before a SumPool2d's weights)
            raise ModelLoadError(f"inconsistent shapes: kernel_size {kernel} exceeds the padded input "
                                 f"{tuple(shape[1:])} + 2 x padding {pad}", node=k, op=typ)
        return kernel, stride, pad

    def _SumPool2d(self, k, node, x, shape):
        kernel, stride, pad = self._pool_geometry(k, "SumPool2d", node, shape)
        C = int(shape[0])
        return self._add(k, "Conv", [x], {"stride": stride, "pads": pad + pad, "dilation": [1, 1], "groups": C},
                         {"weight": np.ones((C, 1, *kernel))}, k, "SumPool2d")

    def _AvgPool2d(self, k, node, x, shape):
        kernel, stride, pad = self._pool_geometry(k, "AvgPool2d", node, shape)
        if self.exact.get(k, {}).get("op") in ("MaxPool", "StepMaxPool", "InhibitionMaxPool"):
            return self._max_pool(k, x, kernel, stride, pad)
        if any(pad):
            raise ConversionError(f"AvgPool2d with padding {pad}: NIR does not say whether the padded zeros count in "
                                  "a window's average", node=k, op="AvgPool2d",
                                  hint="Export the pool with padding 0, or as a SumPool2d and a Scale")
        if self.exact.get(k, {}).get("op") == "GlobalAvgPool" and kernel == stride == list(shape[1:]):
            return self._add(k, "GlobalAvgPool", [x], {}, {}, k, "AvgPool2d")
        return self._add(k, "AvgPool", [x], {"kernel": kernel, "stride": stride, "pads": [0, 0, 0, 0]}, {}, k,
                         "AvgPool2d")

    def _max_pool(self, k: str, x: str, kernel: list[int], stride: list[int], pad: list[int]) -> str:
        """The extension's max pool (its AvgPool2d is the approximation other tools load): the MaxPool or
        InhibitionMaxPool its record names, with the record's attributes, which must have the AvgPool2d's geometry
        and output shape (no partial ceil_mode window: the exporter writes none)."""
        rec = self.exact[k]
        attrs = rec.get("attrs")
        if not isinstance(attrs, dict):
            raise ModelLoadError("the neurocompile record of this pool has no attributes", node=k, op="AvgPool2d")
        y = self._add(k, rec["op"], [x], attrs, {}, k, "AvgPool2d")
        n, op = self.out.nodes[y], OPS[rec["op"]]
        got = (list(pair(op.attr(n, "kernel"))), list(pair(op.attr(n, "stride"))), [int(v) for v in op.attr(n, "pads")])
        if got != (kernel, stride, pad + pad):
            raise ModelLoadError(f"the neurocompile record of this {rec['op']} (kernel {got[0]}, stride {got[1]}, pads "
                                 f"{got[2]}) disagrees with its AvgPool2d (kernel_size {kernel}, stride {stride}, "
                                 f"padding {pad})", node=k, op="AvgPool2d")
        hw = tuple(self._shape(x)[1:])
        whole = tuple((size + 2 * p - kk) // s + 1 for size, p, kk, s in zip(hw, pad, kernel, stride))
        if tuple(self._shape(y)[1:]) != whole:
            raise ModelLoadError(f"the neurocompile record of this {rec['op']} has partial (ceil_mode) windows: "
                                 f"{tuple(self._shape(y)[1:])} windows where its AvgPool2d has {whole}", node=k,
                                 op="AvgPool2d")
        return y

    def _Flatten(self, k, node, x, shape):
        self._check_declared(k, "Flatten", node.input_type.get("input"), shape, "input")
        rank = len(shape)
        start, end = (ints(getattr(node, f), 1, k, "Flatten", f)[0] for f in ("start_dim", "end_dim"))
        start, end = start + rank if start < 0 else start, end + rank if end < 0 else end
        if not 0 <= start <= end < rank:
            raise ModelLoadError(f"inconsistent shapes: start_dim={node.start_dim}, end_dim={node.end_dim} for an "
                                 f"input of shape {tuple(shape)} (NIR dims exclude the batch)", node=k, op="Flatten")
        if start == 0 and end == rank - 1:
            return self._add(k, "Flatten", [x], {}, {}, k, "Flatten")
        target = [*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:]]
        if target == list(shape):
            return x
        return self._add(k, "Reshape", [x], {"shape": target}, {}, k, "Flatten")

    def _Delay(self, k, node, x, shape):
        """A delay of whole steps of dt, the same for every element: StepDelay (0: nothing)."""
        d = numbers(node.delay, k, "Delay", "delay")
        check_param(k, "Delay", "delay", d, shape)
        if not np.isfinite(d).all() or (d < 0).any():
            raise ModelLoadError("delay holds negative, NaN or infinite values", node=k, op="Delay")
        if d.size > 1 and np.ptp(d) != 0:
            raise ConversionError(f"per-element delays from {float(d.min()):g} to {float(d.max()):g} s: the IR delays a "
                                  "layer as a whole", node=k, op="Delay")
        steps = float(d.reshape(-1)[0]) / self.dt
        if not math.isfinite(steps) or steps > 2**53:  # a whole number of steps that round() and int() can hold
            raise ConversionError(f"a delay of {float(d.reshape(-1)[0]):g} s is {steps:.3g} steps of dt = "
                                  f"{self.dt:g} s", node=k, op="Delay")
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise ConversionError(f"a delay of {float(d.reshape(-1)[0]):g} s is {steps:.6g} steps of dt = {self.dt:g} s, "
                                  "not a whole number", node=k, op="Delay",
                                  hint="Choose --dt so that the delay is whole steps")
        if round(steps) == 0:
            return x
        return self._add(k, "StepDelay", [x], {"steps": int(round(steps))}, {}, k, "Delay")


# NIR node type -> its handler
HANDLERS = {"Affine": Layers._Affine, "Linear": Layers._Linear, "Scale": Layers._Scale, "Conv2d": Layers._Conv2d,
            "Conv1d": Layers._Conv1d, "SumPool2d": Layers._SumPool2d, "AvgPool2d": Layers._AvgPool2d,
            "Flatten": Layers._Flatten, "Delay": Layers._Delay}
