"""The op table: one small class per op kind with its parameters, attribute defaults and ANN meaning.

Every op's meaning is written once, in torch (``forward``), and used three ways:
- the interpreter runs it on real tensors (float32 or float64, CPU or CUDA);
- shape inference runs it on ``meta`` tensors (no data, no FLOPs), so there is no separate
  shape rule to drift from the semantics;
- the reference SNN simulator calls ``linear`` / ``bias`` of affine ops step by step.
Torch rather than numpy because the reference simulator must run on CUDA, and one definition
of a strided, padded, grouped convolution is better than two.

``role`` tells the converter what a node becomes in a spiking network:
``affine`` (linear map + constant term, kept), ``activation`` (replaced by a neuron),
``neuron`` (stateful in time; its ANN meaning is the activation it stands for),
``maxpool`` (becomes lateral inhibition), ``identity`` (removed by canonicalize), ``input``.
"""
from __future__ import annotations

import json

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from neurocompile import neurons
from neurocompile.neurons import cqrelu
from neurocompile.ir import Graph, Node, Shape

Tensor = torch.Tensor


# ---- attribute rules: the valid values of every op attribute, declared beside its default (``Op.attr_rules``) ----
@dataclass(frozen=True)
class Rule:
    """The values one attribute may take. ``kind``: "int" (an integer: JSON's 2.0 counts as 2; 2.5, booleans and
    strings do not), "real" (a number: never NaN, inf only where not ``finite``) or "flag" (0, 1, false, true).
    ``lo`` / ``hi``: bounds, inclusive unless ``lo_open`` / ``hi_open``; a bound given as a name is that constant of
    :mod:`neurocompile.limits`, read when checking (limits imports this module: it cannot be read here).
    ``size``: a list of that many values (``"inputs"``: one per data input of the node, ``"any"``: of any length);
    ``null``: None (the op's "unset") is allowed. :func:`check_attrs` applies the rules."""

    kind: str
    lo: float | str | None = None
    hi: float | str | None = None
    lo_open: bool = False
    hi_open: bool = False
    finite: bool = True
    size: int | str | None = None
    null: bool = False

    def bounds(self) -> tuple[Any, Any]:
        """(lo, hi) as numbers (None: no bound), limits constants read now (a test may lower one)."""
        from neurocompile import limits  # noqa: PLC0415 - limits imports ops

        return tuple(getattr(limits, b) if isinstance(b, str) else b for b in (self.lo, self.hi))

    def valid(self, value: Any, n_inputs: int = 1) -> bool:
        """Whether ``value`` is one the rule allows (``n_inputs``: the node's data inputs, for ``size="inputs"``)."""
        if value is None:
            return self.null
        if self.size is None:
            return self._one(value)
        if not isinstance(value, (list, tuple)):
            return False
        size = {"inputs": n_inputs, "any": len(value)}.get(self.size, self.size)  # type: ignore[arg-type]
        return len(value) == size and all(self._one(v) for v in value)

    def _one(self, v: Any) -> bool:
        if isinstance(v, (bool, np.bool_)):
            return self.kind == "flag"
        if not isinstance(v, (int, float, np.integer, np.floating)):
            return False  # strings, lists, None inside a list
        if self.kind == "flag":
            return v == 0 or v == 1
        if isinstance(v, (float, np.floating)):
            if math.isnan(v) or (math.isinf(v) and (self.finite or self.kind == "int")):
                return False
            if self.kind == "int" and not float(v).is_integer():  # 2.0 is the integer 2, 2.5 is none
                return False
        lo, hi = self.bounds()
        return bool((lo is None or (v > lo if self.lo_open else v >= lo))
                    and (hi is None or (v < hi if self.hi_open else v <= hi)))

    def bad_elements(self, a: np.ndarray) -> np.ndarray:
        """Mask of the elements of a per-neuron array (a "real" rule) that break it."""
        a = np.asarray(a, np.float64)
        lo, hi = self.bounds()
        ok = ~np.isnan(a) & (np.isfinite(a) if self.finite else True)
        if lo is not None:
            ok &= a > lo if self.lo_open else a >= lo
        if hi is not None:
            ok &= a < hi if self.hi_open else a <= hi
        return ~ok

    def describe(self, n_inputs: int = 1) -> str:
        """What :meth:`valid` accepts, as the end of "attribute 'k' must be ..." (with the limits constant a bound
        comes from)."""
        limits = []
        for sign, name, b in zip((">" if self.lo_open else ">=", "<" if self.hi_open else "<="), (self.lo, self.hi),
                                 self.bounds()):
            if b is not None:
                limits.append(f"{sign} {b:,}" if isinstance(b, int) else f"{sign} {b:g}")
                limits[-1] += f" (neurocompile.limits.{name})" if isinstance(name, str) else ""
        one, many = {"int": ("an integer", "integers"), "flag": ("0 or 1", "values 0 or 1"),
                     "real": ("a finite number", "finite numbers") if self.finite else
                     ("a number (not NaN)", "numbers (not NaN)")}[self.kind]
        count = {"inputs": f"{n_inputs} ", "any": ""}.get(self.size, f"{self.size} ")  # type: ignore[arg-type]
        text = " ".join([one if self.size is None else f"a list of {count}{many}", " and ".join(limits)]).strip()
        text += ", one per data input" if self.size == "inputs" else ""
        return f"null or {text}" if self.null else text


def Int(min: int | str | None = None, max: int | str | None = None, null: bool = False) -> Rule:  # noqa: A002
    """An integer in [min, max] (a bound may name a limits constant)."""
    return Rule("int", min, max, null=null)


def Ints(min: int | None = None, size: int | str = "any", null: bool = False) -> Rule:  # noqa: A002
    """A list of ``size`` integers >= min."""
    return Rule("int", min, size=size, null=null)


def Real(min: float | None = None, max: float | None = None,  # noqa: A002
         gt: float | None = None, lt: float | None = None, finite: bool = True, null: bool = False) -> Rule:
    """A number in [min, max], or (gt, lt) for strict bounds; NaN never, inf only with ``finite=False``."""
    return Rule("real", min if gt is None else gt, max if lt is None else lt, gt is not None, lt is not None,
                finite, null=null)


FLAG = Rule("flag")  # an ONNX-style boolean: 0 or 1 (false, true)
DECAY = Real(0.0, 1.0)  # a per-step decay factor (beta, alpha): the state keeps that share of itself
POSITIVE = Real(gt=0.0)  # a threshold that divides (CIF, IF), a clip λ, a scale
LEVELS = Int(1, "MAX_LEVELS")  # quantization levels L
SHIFT = Real(min=0.0, lt=1.0)  # a CQReLU's offset inside its floor (0: CASC, 0.5: QCFS), a share of one level
WEIGHT_EXP = Int(-8, 7)  # fixed point: Loihi's per-layer weight exponent


def _shown(v: Any) -> str:
    """An attribute value as a user wrote it (numpy scalars as plain numbers)."""
    return repr(v.item() if isinstance(v, np.generic) else v)


def check_attrs(node: Node) -> None:
    """Raise :class:`ValidationError` (naming node, op, attribute, value and valid range) for the first attribute of
    ``node``, or per-neuron parameter (``Op.per_neuron``, checked elementwise), outside its op's ``attr_rules``:
    the one check every loader passes through (``Graph.validate``; the ONNX importer before shape inference), so
    nothing computes with a value such as levels 2.5 or a NaN decay. An integral float of an integer attribute
    (JSON's 2.0) is stored as the int it stands for. Attributes the op does not read are left alone."""
    from neurocompile.errors import ValidationError  # noqa: PLC0415 - kept with the other lazy imports of this module

    op = OPS[node.op]
    for key, value in node.attrs.items():
        rule = op.attr_rules.get(key)
        if rule is None:
            continue
        if not rule.valid(value, len(node.inputs)):
            raise ValidationError(f"attribute '{key}' must be {rule.describe(len(node.inputs))}, got {_shown(value)}",
                                  node=node.name, op=node.op)
        if rule.kind == "int" and value is not None and any(type(v) is not int for v in
                                                             (value if rule.size is not None else [value])):
            node.attrs[key] = [int(v) for v in value] if rule.size is not None else int(value)
    for key in op.varying(node):
        a = np.asarray(node.params[key])
        bad = op.attr_rules[key].bad_elements(a) if a.dtype.kind in "biuf" else np.ones(a.shape, bool)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValidationError(f"per-neuron parameter '{key}' must hold values that are each "
                                  f"{op.attr_rules[key].describe()}; {int(bad.sum())} of {a.size} are not (the first, "
                                  f"at index {first}: {_shown(a[first])})", node=node.name, op=node.op)


class Op:
    """Base class. ``params`` are required, ``optional`` may be present; ``attrs`` are defaults and ``attr_rules``
    their valid values (a :class:`Rule` for every attribute the op reads, :func:`check_attrs`).

    Traits that passes and targets query (instead of lists of op names of their own):
    ``synaptic``: carries a weight map, so a target makes it a connection process that delays its output
    by the synapse delay; ``merge``: joins several data inputs, whose branches must arrive together;
    ``homogeneous``: f(a·x) = a·f(x) for a > 0 with nothing to rescale, so a tensor's unit passes through;
    ``exact_in_integers``: only moves or selects values, so integer inputs stay integers (nothing to
    quantize); ``rescalable``: the (weight, bias) parameters a change of unit rescales, or None;
    ``quantizer``: the ANN meaning is a CQReLU (attributes give L and λ); ``calibratable``: a plain
    activation that data-based λ turns into a CQReLU (lossy); ``spiking``: a neuron that emits spikes
    (role "neuron" also covers the lateral-inhibition pool, which is stateful but sends values);
    ``stateful``: simulators keep state for it between steps (``init_state`` / ``step``); ``sink``: the
    currents stop there, so a lowered graph stores the constant current reaching it as its ``bias``
    (neurons, the inhibition pool, the readout); ``sleep_phase``: a neuron whose schedule has a sleep
    phase after the wake steps (CIF; the IF baseline has none); ``rounding``: the offset a rounding op
    adds inside its floor (Floor 0, Round 0.5), None for other ops; ``additive``: adds data tensors and
    constants (Add, Sub), so a constant term is in the unit of the data it is added to; ``count_domain``: a stateful
    op whose cumulative output is a function of its cumulative input: a neuron without leak and with a subtractive
    reset, whose count after a step depends on floor(X_t), X_t its cumulative input over its threshold
    (``count_step``, ``max_count``), or the inhibition pool (``forward`` of the cumulative input); the exact mode's
    count-domain executor (targets/reference/certified.py) runs networks of these; ``per_neuron``: the neuron
    attributes (LIF, CubaLIF, LI: decays, threshold) a param of the same name may give per neuron instead, an array
    that broadcasts to the layer's shape (``varying``, ``neuron_values``; floating point only).
    """

    role = "affine"
    params: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    attrs: dict[str, Any] = {}
    attr_rules: dict[str, Rule] = {}
    synaptic = False
    merge = False
    homogeneous = False
    exact_in_integers = False
    rescalable: tuple[str, str] | None = None
    quantizer = False
    calibratable = False
    spiking = False
    stateful = False
    sink = False
    sleep_phase = False
    rounding: float | None = None
    additive = False
    count_domain = False

    def attr(self, node: Node, key: str) -> Any:
        if key in node.params and key in self.per_neuron:  # the class default would stand in for per-neuron values
            raise ValueError(f"{node.name}: {key} is given per neuron (node.params); read it with neuron_values")
        return node.attrs.get(key, self.attrs.get(key))

    def forward(self, node: Node, xs: Sequence[Tensor], p: dict[str, Tensor]) -> Tensor:
        """ANN meaning on a batch."""
        raise NotImplementedError

    # affine ops: forward(x) == linear(x) + bias
    def linear(self, node: Node, xs: Sequence[Tensor], p: dict[str, Tensor]) -> Tensor:
        return self.forward(node, xs, p)

    def bias(self, node: Node, p: dict[str, Tensor], shape: Shape) -> Tensor | None:
        """Constant term broadcastable to ``(N, *shape)``, or None."""
        return None

    def drop_constant(self, node: Node, shape: Shape) -> None:
        """Rewrite ``node`` in place to its linear part (``linear``): lowering moves constant terms to sinks."""

    def input_gains(self, node: Node) -> list[float]:
        """The integer factor each data input is multiplied by before the op (Add's ``gains``; else 1)."""
        return [1] * len(node.inputs)

    def output_delay(self, node: Node) -> int:
        """Steps the network itself delays the op's output (StepDelay's ``steps``; 0 for others): part of what it
        computes, unlike a target's synaptic delay, which the schedule balances away."""
        return 0

    def weight_map(self, node: Node, in_shape: Shape) -> "WeightMap":
        """The node's linear map as one connection with fixed weights (what Lava runs); synaptic ops only."""
        raise NoWeightMap("this op has no fixed-weight form")

    # pattern matching (recognize_cqrelu): an elementwise map by a scalar constant
    def bounds(self, node: Node) -> tuple[float, float] | None:
        """(lo, hi) if the op is a clamp to [lo, hi], else None."""
        return None

    def scalar_scale(self, node: Node) -> float | None:
        """k if the op is x * k for a scalar constant k, else None."""
        return None

    def scalar_offset(self, node: Node) -> float | None:
        """c if the op is x + c for a scalar constant c, else None."""
        return None

    def no_spiking_form(self, node: Node) -> tuple[str, str] | None:
        """(why, hint) if a spiking network cannot compute this node, else None: conversion refuses it."""
        return None

    # spiking neurons (``spiking``): the neuron spec simulators run, built on neurons.py
    def init_state(self, node: Node, x: Tensor) -> dict[str, Any]:
        """State at rest for input currents shaped like ``x``."""
        raise NotImplementedError

    def step(self, node: Node, state: dict[str, Any], x: Tensor, wake_seen: int) -> Tensor:
        """One time step with input current ``x`` (``wake_seen``: wake steps counted so far, t_w);
        updates ``state`` and returns the values sent (spikes times :meth:`spike_amplitude`)."""
        raise NotImplementedError

    def spike_amplitude(self, node: Node) -> float:
        """The value one spike sends: spike counts are sent values divided by it."""
        return 1.0

    def membrane(self, node: Node, state: dict[str, Any]) -> Tensor:
        """The membrane potential in ``state`` (for per-layer records)."""
        return state["m"]

    def binary_spikes(self, node: Node) -> bool:
        """At most one spike (of either sign) per neuron and step."""
        return True

    # neuron parameters given per neuron (``per_neuron``: the attributes a param of the same name may replace)
    per_neuron: tuple[str, ...] = ()

    def varying(self, node: Node) -> list[str]:
        """The :attr:`per_neuron` parameters this node gives per neuron (params broadcastable to its output shape)
        instead of one attribute value for the layer."""
        return [k for k in self.per_neuron if k in node.params]

    def neuron_values(self, node: Node, like: Tensor) -> dict[str, Any]:
        """Each :attr:`per_neuron` parameter as the simulators use it: the attribute (a float, None where unset), or
        the per-neuron param as a tensor of ``like``'s dtype and device (broadcasting over the batch)."""
        out = {}
        for k in self.per_neuron:
            v = node.params.get(k)
            if v is not None:
                out[k] = torch.as_tensor(np.asarray(v), dtype=like.dtype, device=like.device)
            else:
                a = self.attr(node, k)
                out[k] = None if a is None else float(a)
        return out


class NoWeightMap(ValueError):
    """A linear map with no fixed-weight connection form; ``hint`` says how to export one that has."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass
class WeightMap:
    """A linear map as one fixed-weight connection, in the IR layout: ``conv`` weights (C_out, C_in / groups,
    kh, kw) with stride, pads [top, left, bottom, right], dilation and groups; ``dense`` weights (out, in)."""

    kind: str
    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


def pair(v: Any) -> tuple[int, int]:
    """An ONNX 2-D attribute (one int or two) as a pair."""
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def pad2d(x: Tensor, pads: Sequence[int], value: float = 0.0) -> tuple[Tensor, tuple[int, int]]:
    """ONNX pads [top, left, bottom, right]: symmetric ones go to the op, others are applied here."""
    t, l, b, r = (int(v) for v in pads)
    if t == b and l == r:
        return x, (t, l)
    return F.pad(x, (l, r, t, b), value=value), (0, 0)


def channel(v: Tensor, ndim: int) -> Tensor:
    """Reshape a per-channel vector to broadcast over (N, C, ...)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))


def _scalar(node: Node) -> float | None:
    c = node.params.get("const")
    return float(np.asarray(c).reshape(())) if c is not None and np.size(c) == 1 else None


def _channel_scale_map(node: Node, scale: np.ndarray, in_shape: Shape) -> WeightMap:
    """A scalar or per-channel factor as a diagonal map: depthwise 1x1 conv on (C, H, W), diagonal dense on (C,)."""
    C = int(in_shape[0])
    v = np.asarray(scale, np.float64).reshape(-1)
    if v.size not in (1, C) or len(in_shape) not in (1, 3):
        raise NoWeightMap(f"a factor of shape {np.shape(scale)} on a tensor of shape {tuple(in_shape)} is neither "
                          "scalar nor per-channel")
    v = np.broadcast_to(v, (C,))
    return WeightMap("conv", v.reshape(C, 1, 1, 1).copy(), groups=C) if len(in_shape) == 3 else WeightMap("dense", np.diag(v))


class Input(Op):
    role = "input"
    attrs = {"shape": None, "scale": None}  # scale: fixed point's unit of the input (quantize_fixed_point)
    attr_rules = {"shape": Ints(min=1), "scale": Real(gt=0.0, null=True)}


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


class MatMul(Op):
    """x @ B with constant B; canonicalize -> Dense (merging a following Add of a constant)."""

    params = ("B",)

    def forward(self, node, xs, p):
        return xs[0] @ p["B"]


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
        return _scalar(node)

    def forward(self, node, xs, p):
        y = self.linear(node, xs, p)
        return y + p["const"] if "const" in p else y


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
        k = None if self.attr(node, "reverse") else _scalar(node)
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


class Mul(Op):
    synaptic = homogeneous = True  # a scalar or per-channel scaling: a diagonal weight map
    params = ("const",)

    def weight_map(self, node, in_shape):
        return _channel_scale_map(node, node.params["const"], in_shape)

    def scalar_scale(self, node):
        return _scalar(node)

    def forward(self, node, xs, p):
        return xs[0] * p["const"]


class Div(Op):
    """x / const (kept as a division: x / c and x * (1/c) round differently at quantization steps)."""

    synaptic = homogeneous = True
    params = ("const",)

    def weight_map(self, node, in_shape):
        return _channel_scale_map(node, 1.0 / node.params["const"].astype(np.float64), in_shape)

    def scalar_scale(self, node):
        k = _scalar(node)
        return None if not k else 1.0 / k

    def forward(self, node, xs, p):
        return xs[0] / p["const"]


class Relu(Op):
    calibratable = True
    role = "activation"

    def bounds(self, node):
        return 0.0, math.inf

    def forward(self, node, xs, p):
        return torch.relu(xs[0])


class Clip(Op):
    calibratable = True
    role = "activation"
    attrs = {"min": None, "max": None}
    attr_rules = {"min": Real(finite=False, null=True), "max": Real(finite=False, null=True)}  # inf: no bound

    def bounds(self, node):
        lo, hi = self.attr(node, "min"), self.attr(node, "max")
        return (-math.inf if lo is None else float(lo)), (math.inf if hi is None else float(hi))

    def forward(self, node, xs, p):
        lo, hi = self.attr(node, "min"), self.attr(node, "max")
        return xs[0] if lo is None and hi is None else torch.clamp(xs[0], lo, hi)  # ONNX: no bounds, no-op


class LeakyRelu(Op):
    """x for x >= 0, alpha * x below: imported so the ANN can be inspected and run, refused by conversion."""

    role = "activation"
    attrs = {"alpha": 0.01}
    attr_rules = {"alpha": Real()}

    def forward(self, node, xs, p):
        return F.leaky_relu(xs[0], float(self.attr(node, "alpha")))

    def no_spiking_form(self, node):
        alpha = float(self.attr(node, "alpha"))
        return (f"LeakyRelu (alpha={alpha:.7g}) has no spiking form: its negative outputs alpha*x have no "
                "equivalent in CIF/IF neurons, whose spike counts stand for the levels 0..L of a clipped ReLU",
                "Train with ReLU, or with CQReLU (neurocompile.torch.CQReLU) for a lossless conversion")


class Floor(Op):
    role = "activation"
    rounding = 0.0

    def forward(self, node, xs, p):
        return torch.floor(xs[0])


class Round(Op):
    """ONNX Round: to the nearest integer, ties to even (torch.round does the same)."""

    role = "activation"
    rounding = 0.5  # round(y) = floor(y + 0.5) but at exact ties

    def forward(self, node, xs, p):
        return torch.round(xs[0])


class CQReLU(Op):
    quantizer = True
    role = "activation"
    attrs = {"levels": 8, "clip": 1.0, "shift": 0.0, "calibrated": False}  # calibrated: λ from data (a note)
    attr_rules = {"levels": LEVELS, "clip": POSITIVE, "shift": SHIFT, "calibrated": FLAG}

    def forward(self, node, xs, p):
        return cqrelu(xs[0], int(self.attr(node, "levels")), float(self.attr(node, "clip")),
                      float(self.attr(node, "shift")))


class _Neuron(Op):
    """A spiking neuron. Its ANN meaning is the CQReLU it stands for: levels L, clip = threshold;
    a spike carries ``amplitude`` (default: the threshold; 1 in fixed point, where spikes are counts)."""

    quantizer = spiking = stateful = sink = sleep_phase = True
    role = "neuron"
    optional = ("bias",)  # set by lowering: the constant current reaching the neuron (see Op.sink)
    attrs = {"threshold": 1.0, "levels": 8, "shift": 0.0, "amplitude": None}
    attr_rules = {"threshold": POSITIVE, "levels": LEVELS, "shift": SHIFT, "amplitude": Real(gt=0.0, null=True)}

    def init_state(self, node, x):
        theta = self.firing_threshold(node)
        m0 = torch.full_like(x, float(self.attr(node, "shift")) * theta)  # QCFS: membrane pre-charged to 0.5 θ
        return {"m": m0, "S": torch.zeros_like(x), "theta": theta, "amp": self.spike_amplitude(node)}

    def rate(self, node) -> int:
        """Spikes the count may gain per wake step: 1, or L / T_wake for a short wake phase (CIF's ``rate``)."""
        return 1

    def firing_threshold(self, node) -> float:
        """The membrane threshold of one spike: θ, or θ / rate in a short wake phase (a T_wake-step sum of the input
        then reaches the L-step sum's spike count)."""
        return float(self.attr(node, "threshold")) / self.rate(node)

    def count_cap(self, node, wake_seen: int) -> int:
        """The most a neuron's count may be after ``wake_seen`` wake steps (the clip at λ once the wake phase ends)."""
        return wake_seen * self.rate(node)

    def spike_amplitude(self, node):
        amp = self.attr(node, "amplitude")
        return self.firing_threshold(node) if amp is None else float(amp)

    # count domain (targets/reference/certified.py): no leak and a subtractive reset make the count after step t a
    # function of floor(X_t), X_t = the cumulative input over the firing threshold plus the pre-charge ``shift``
    count_domain = True

    def count_step(self, node: Node, count: Tensor, floor_x: Tensor, wake_seen: int,
                   out: Tensor | None = None) -> Tensor:
        """The count after a step whose floor(X_t) is ``floor_x`` (the rule :meth:`step` follows, exactly), into
        ``out`` when given."""
        raise NotImplementedError

    def max_count(self, node: Node, t_wake: int, steps: int) -> int:
        """The largest count the neuron can reach in a run of ``steps`` steps (counts are never negative)."""
        raise NotImplementedError

    def forward(self, node, xs, p):
        theta, levels = float(self.attr(node, "threshold")), int(self.attr(node, "levels"))
        amp = self.attr(node, "amplitude")
        xs = [xs[0] + p["bias"]] if "bias" in p else xs
        if amp is None:
            return cqrelu(xs[0], levels, theta, float(self.attr(node, "shift")), divide=True)
        # spikes of another amplitude (fixed point: 1 per spike); q * (amp / L) stays exact in integers
        r = xs[0] * levels / theta + float(self.attr(node, "shift"))
        return torch.clamp(torch.floor(r), 0, levels) * (float(amp) / levels)


class CIF(_Neuron):
    """Consistent IF (signed spikes, count clipped to wake steps); ``gamma`` bounds spikes per step. ``rate`` = L / T_wake
    (default 1: T_wake = L) shortens the wake phase: each spike is worth θ / rate of membrane and the count may gain
    ``rate`` per wake step, so the count after T_wake steps is the one of L steps and the readout is unchanged."""

    attrs = {**_Neuron.attrs, "gamma": 1, "rate": 1}
    attr_rules = {**_Neuron.attr_rules, "gamma": Int(1, "MAX_GAMMA"), "rate": Int(1, "MAX_LEVELS")}

    def rate(self, node) -> int:
        return int(self.attr(node, "rate"))

    def step(self, node, state, x, wake_seen):  # in place, the simulator's hot path (same numbers as cif_step)
        return neurons.cif_step_(state["m"], state["S"], x, state["theta"], self.count_cap(node, wake_seen),
                                 int(self.attr(node, "gamma")), state, state["amp"])

    def binary_spikes(self, node):
        return int(self.attr(node, "gamma")) == 1

    def count_step(self, node, count, floor_x, wake_seen, out=None):
        return neurons.cif_count_step(count, floor_x, self.count_cap(node, wake_seen), int(self.attr(node, "gamma")),
                                      out)

    def max_count(self, node, t_wake, steps):
        return self.count_cap(node, t_wake)


class IF(_Neuron):
    """Soft-reset IF baseline: no clip, no negative spikes, no sleep phase. Lossy by design."""

    sleep_phase = False

    def step(self, node, state, x, wake_seen):
        s, state["m"] = neurons.if_step(state["m"], x, state["theta"])
        return s * state["amp"]

    def count_step(self, node, count, floor_x, wake_seen, out=None):
        return neurons.if_count_step(count, floor_x, out)

    def max_count(self, node, t_wake, steps):
        return steps


class LIF(Op):
    """Leaky IF with hard reset (IDSNN students). Has no ANN meaning; only simulators run it. In fixed point
    (``dv`` set) it is Lava's bit-accurate LIF: integer threshold ``vth``, 12-bit voltage decay ``dv``."""

    spiking = stateful = sink = True
    role = "neuron"
    per_neuron = ("beta", "threshold")  # floating point only: a param of the same name gives one per neuron
    optional = ("bias", *per_neuron)
    attrs = {"beta": 0.25, "threshold": 0.5, "dv": None}
    # F = [U > threshold] is defined for every finite threshold (NIR's Threshold is one at 0); dv: v * (4096 - dv) >> 12
    attr_rules = {"beta": DECAY, "threshold": Real(), "dv": Int(0, 4096, null=True)}

    def forward(self, node, xs, p):
        raise NotImplementedError("LIF has no ANN meaning: run it in a spiking simulator")

    def init_state(self, node, x):
        return {"u": torch.zeros_like(x), "p": self.neuron_values(node, x)}

    def membrane(self, node, state):
        return state["u"]

    def step(self, node, state, x, wake_seen):
        dv = self.attr(node, "dv")
        if dv is not None:
            f, state["u"] = neurons.lif_step_fixed(state["u"], x, int(dv), int(self.attr(node, "threshold")))
        else:
            p = state["p"]
            f, state["u"] = neurons.lif_step(state["u"], x, p["beta"], p["threshold"])
        return f


def _shape_only(op_name: str, xs: Sequence[Tensor]) -> Tensor:
    """``forward`` of a neuron without an ANN meaning: on meta tensors (shape inference, :func:`infer_shape`) it is
    elementwise; on data it refuses."""
    if xs[0].is_meta:
        return torch.empty_like(xs[0])
    raise NotImplementedError(f"{op_name} has no ANN meaning: run it in a spiking simulator")


class CubaLIF(Op):
    """Current-based LIF with hard reset to 0 (NIR's CubaLIF; snnTorch's Synaptic): a synaptic current I decays by
    ``alpha`` and takes the input, the membrane decays by ``beta`` and takes the new current, F = [U > threshold],
    then U <- 0 (``neurons.cuba_lif_step``). Floating point only; no ANN meaning."""

    spiking = stateful = sink = True
    role = "neuron"
    per_neuron = ("alpha", "beta", "threshold")  # a param of the same name gives one per neuron
    optional = ("bias", *per_neuron)  # bias: set by lowering, the constant current reaching the neuron (part of X)
    attrs = {"alpha": 0.5, "beta": 0.9, "threshold": 1.0}
    attr_rules = {"alpha": DECAY, "beta": DECAY, "threshold": Real()}  # F = [U > threshold], as LIF's

    def forward(self, node, xs, p):
        return _shape_only("CubaLIF", xs)

    def init_state(self, node, x):
        return {"i": torch.zeros_like(x), "u": torch.zeros_like(x), "p": self.neuron_values(node, x)}

    def membrane(self, node, state):
        return state["u"]

    def step(self, node, state, x, wake_seen):
        p = state["p"]
        f, state["i"], state["u"] = neurons.cuba_lif_step(state["i"], state["u"], x, p["alpha"], p["beta"],
                                                          p["threshold"])
        return f


class LI(Op):
    """Leaky integrator that never spikes (NIR's LI; with a synaptic current decaying by ``alpha`` its CubaLI, with
    ``beta`` 1 its I): V = beta V + X, or I = alpha I + X, V = beta V + I (``neurons.li_step``). Each step it sends
    its membrane V: a network's non-spiking readout, whose graph output read out over T steps is the mean membrane.
    Stateful, a sink (a constant current reaching it is its ``bias``, on in its wake window), not spiking; floating
    point only; no ANN meaning."""

    stateful = sink = True
    role = "neuron"
    per_neuron = ("alpha", "beta")  # a param of the same name gives one per neuron (an alpha param: a CubaLI)
    optional = ("bias", *per_neuron)
    attrs = {"beta": 0.9, "alpha": None}  # alpha None: no synaptic current (LI, I); a number: CubaLI
    attr_rules = {"beta": DECAY, "alpha": Real(0.0, 1.0, null=True)}

    def forward(self, node, xs, p):
        return _shape_only("LI", xs)

    def has_current(self, node: Node) -> bool:
        return "alpha" in node.params or self.attr(node, "alpha") is not None

    def init_state(self, node, x):
        return {"v": torch.zeros_like(x), **({"i": torch.zeros_like(x)} if self.has_current(node) else {}),
                "p": self.neuron_values(node, x)}

    def membrane(self, node, state):
        return state["v"]

    def step(self, node, state, x, wake_seen):
        p = state["p"]
        i, state["v"] = neurons.li_step(state["v"], x, p["beta"], state.get("i"), p["alpha"])
        if i is not None:
            state["i"] = i
        return state["v"]


def pool_axis(size: int, k: int, s: int, pb: int, pe: int, ceil: bool) -> int:
    """Number of windows along one pooled axis, by the rule onnxruntime and the ONNX spec share: window i
    covers [i*s - pb, i*s - pb + k); ceil_mode adds a last partial window only if it starts inside the
    input or the begin padding (one that would start in the end padding is dropped)."""
    span = size + pb + pe - k
    if span < 0:
        raise ValueError(f"a {k}-wide pooling window does not fit the padded size {size + pb + pe}")
    n = (-(-span // s) if ceil else span // s) + 1
    return n - 1 if ceil and (n - 1) * s >= size + pb else n


class _Pool(Op):
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


class AvgPool(_Pool):
    """``count_overhang`` (with count_include_pad): a ceil_mode window's overhang past the end pads counts
    too, so every window divides by kh*kw: what onnxruntime does for AveragePool opsets < 19."""

    synaptic = homogeneous = True
    attrs = {**_Pool.attrs, "count_include_pad": 0, "count_overhang": 0, "divisor_override": None}
    attr_rules = {**_Pool.attr_rules, "count_include_pad": FLAG, "count_overhang": FLAG,
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


class MaxPool(_Pool):
    homogeneous = True
    role = "maxpool"

    def forward(self, node, xs, p):
        x, k, s = self.padded(node, xs[0], float("-inf"))  # every window holds an input element
        return F.max_pool2d(x, k, s)


class InhibitionMaxPool(MaxPool):
    """MaxPool of a spiking network, done by lateral inhibition per window (same ANN meaning)."""

    exact_in_integers = True  # selects one input of its window per step
    stateful = sink = count_domain = True  # cumulative output = max over each window of the cumulative input
    role = "neuron"
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
            acc = state["A"].add_(x)
            out = F.max_pool2d(acc, (kh, kw), (kh, kw))
            acc.view(N, C, Ho, kh, Wo, kw).sub_(out.view(N, C, Ho, 1, Wo, 1))
            return out
        return neurons.inhibition_maxpool_step_(state["A"], self.windows(node, x)).reshape(N, C, Ho, Wo)


class StepMaxPool(MaxPool):
    """MaxPool of a LIF student, each step on that step's values (what its PyTorch module computes every step: for
    binary spikes the OR of each window). A sink, so the constant current reaching it is added first (its ``bias``:
    max(x + b) is not max(x) + b for a per-pixel b); it keeps no state between steps."""

    exact_in_integers = True  # selects one input of its window per step
    stateful = sink = True
    role = "neuron"
    optional = ("bias",)

    def forward(self, node, xs, p):  # a lowered pool adds its bias (the current reaching it) first
        return super().forward(node, [xs[0] + p["bias"]] if "bias" in p else xs, p)

    def init_state(self, node, x):
        return {}

    def step(self, node, state, x, wake_seen):
        return super().forward(node, [x], {})


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


class Flatten(Op):
    homogeneous = exact_in_integers = True
    def forward(self, node, xs, p):
        return xs[0].reshape(xs[0].shape[0], -1)


class Reshape(Op):
    """Reshape keeping the batch dimension; ``shape`` is the per-sample target shape."""

    homogeneous = exact_in_integers = True
    attrs = {"shape": [-1]}
    attr_rules = {"shape": Ints(min=-1)}  # -1: the size that keeps the element count (shape inference checks it)

    def forward(self, node, xs, p):
        return xs[0].reshape(xs[0].shape[0], *self.attr(node, "shape"))


class Concat(Op):
    merge = True
    attrs = {"axis": 1}
    attr_rules = {"axis": Int(min=1)}  # counts the batch axis (0), which no per-sample op may concatenate along

    def forward(self, node, xs, p):
        return torch.cat(list(xs), dim=int(self.attr(node, "axis")))


class Identity(Op):
    homogeneous = exact_in_integers = True
    role = "identity"

    def forward(self, node, xs, p):
        return xs[0]


class Dropout(Identity):
    pass


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


class Readout(Op):
    """A graph output of a lowered graph (a sink): sums the currents reaching it plus its ``bias``, the
    constant current of the layers before it, gated to its wake window."""

    role = "readout"
    sink = True
    optional = ("bias",)

    def forward(self, node, xs, p):
        return xs[0] + p["bias"] if "bias" in p else xs[0]


OPS: dict[str, Op] = {cls.__name__: cls() for cls in (
    Input, Conv, Dense, Gemm, MatMul, BatchNorm, Affine, Add, Sub, Mul, Div, Relu, LeakyRelu, Clip, Floor, Round,
    CQReLU, CIF, IF, LIF, AvgPool, MaxPool, InhibitionMaxPool, GlobalAvgPool, Flatten, Reshape, Concat, Identity,
    Dropout, Readout)}


OPS.update({cls.__name__: cls() for cls in (CubaLIF, LI, StepDelay)})  # NIR's neurons and delays (frontends/nir.py)
OPS["StepMaxPool"] = StepMaxPool()  # a LIF student's max pool (passes/encode_spikes.step_max_pools)


def op_of(node: Node) -> Op:
    """The op table entry of ``node``: what its traits say is what the compiler does with it."""
    return OPS[node.op]


def is_level_neuron(node: Node) -> bool:
    """A spiking neuron whose ANN meaning is a CQReLU with L levels (CIF, IF; not LIF)."""
    op = OPS[node.op]
    return op.spiking and op.quantizer


def refuse_no_spiking_form(g: Graph) -> None:
    """Raise the ConversionError of the first node a spiking network cannot compute (``Op.no_spiking_form``)."""
    from neurocompile.errors import ConversionError

    for n in g.topo():
        why = OPS[n.op].no_spiking_form(n)
        if why is not None:
            raise ConversionError(why[0], node=n.name, op=n.op, hint=why[1])


def tensors(node: Node, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The node's parameters as torch tensors."""
    return {k: torch.tensor(v, dtype=dtype, device=device) for k, v in node.params.items()}


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
    op = OPS[node.op]
    if isinstance(op, LIF):  # no ANN meaning to run: elementwise
        shape = tuple(in_shapes[0])
    else:
        xs = [torch.empty((1, *s), device="meta") for s in in_shapes]
        p = {k: torch.empty(v.shape, device="meta") for k, v in node.params.items()}
        shape = tuple(op.forward(node, xs, p).shape[1:])
    if len(_SHAPES) < 100_000:
        _SHAPES[key] = shape
    return shape
