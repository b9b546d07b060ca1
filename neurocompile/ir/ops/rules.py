"""Attribute rules: the valid values of every op attribute (``Op.attr_rules``, declared beside its default) and
:func:`check_attrs`, the one check every loader passes through."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from neurocompile.ir import Node
from neurocompile.ir.ops.registry import OPS


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
