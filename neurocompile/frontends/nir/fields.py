"""The checked reading of a NIR node's fields: arrays of finite numbers, integers, strings, for the importer's
messages (each refusal names the node, its NIR type and the field)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from neurocompile.errors import ModelLoadError
from neurocompile.ir import Shape

# the integer fields of NIR's convs, pools and Flatten, and their least values (padding may also be "same" or "valid")
GEOMETRY = {"stride": 1, "dilation": 1, "kernel_size": 1, "padding": 0, "groups": 1,
            "start_dim": None, "end_dim": None}

# the fields where +inf means something (no leak: snnTorch writes a clamped beta of 1 as tau = inf, and r = inf beside
# it, the gain r·dt/tau staying finite): a time constant anywhere, an input gain only where its time constant is inf
INF_OK = {"tau": (), "tau_syn": (), "tau_mem": (), "r": ("tau", "tau_mem"), "w_in": ("tau_syn",)}


def as_str(a: Any) -> str:
    return a.decode("utf8") if isinstance(a, bytes) else str(a)


def as_array(v: Any) -> np.ndarray:
    """A parameter as a numpy array (in-memory graphs may hold torch tensors)."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def ints(v: Any, n: int | None, k: str, typ: str, what: str, least: int | None = None) -> list[int]:
    """An int or n ints (NIR writes either; ``n`` None: any number) as a list of n ints, each >= ``least`` if given
    (a non-integer such as 2.5, NaN or inf is refused, not truncated)."""
    a = as_array(v).reshape(-1)
    if a.size == 1 and n is not None:
        a = np.repeat(a, n)
    count = ("an integer" if a.size == 1 else "integers") if n is None else f"an integer or {n} integers"
    if (n is not None and a.size != n) or a.dtype.kind not in "iuf" or not np.all(np.isfinite(a)) \
            or np.any(a != np.round(a)):
        raise ModelLoadError(f"{what} {brief(v)}: expected {count}", node=k, op=typ)
    if least is not None and np.any(a < least):
        raise ModelLoadError(f"{what} {brief(v)}: each must be >= {least}", node=k, op=typ)
    return [int(x) for x in a]


def check_fields(k: str, typ: str, node: Any, what: str = "") -> None:
    """Every numeric field of a NIR node holds finite numbers, whether or not the importer uses it (a field the
    extension's record supersedes is still part of the file: NaN there is damage), except +inf where it means
    something (:data:`INF_OK`). ModelLoadError naming the field."""
    fields = dict(vars(node)) if hasattr(node, "__dict__") else {}  # a copy: the port shapes are added below
    for field, types in list(fields.items()):  # input_type / output_type: {port: shape}, shapes of finite numbers
        if field != "metadata" and isinstance(types, dict):
            fields.update({f"{field}[{port!r}]": v for port, v in types.items() if not isinstance(v, (str, bytes))})
    for field, v in fields.items():
        if field == "metadata" or v is None or isinstance(v, (str, bytes, dict)):
            continue
        try:
            a = np.asarray(v)
        except Exception:  # noqa: BLE001 - not array-like: the handlers judge such fields
            continue
        if a.dtype.kind not in "fc" or np.isfinite(a).all():
            continue
        bad = ~np.isfinite(a)
        if field in INF_OK:
            ok = a == np.inf
            taus = [np.asarray(fields[t]) for t in INF_OK[field] if fields.get(t) is not None]
            if taus:  # an input gain: +inf only where its time constant is +inf too
                try:
                    ok &= np.broadcast_to(taus[0] == np.inf, a.shape)
                except ValueError:
                    ok &= False
            elif INF_OK[field]:
                ok &= False
            bad &= ~ok
        if bad.any():
            first = float(a[bad].flat[0])
            shown = "NaN" if math.isnan(first) else repr(first)
            raise ModelLoadError(f"{what}{field} holds {shown} (a non-finite value; "
                                 "every numeric field of a NIR node is checked, used or not)", node=k, op=typ,
                                 hint="The file was damaged or edited; write it again")


def numbers(v: Any, k: str, typ: str, field: str) -> np.ndarray:
    """A NIR array field as float64; one that holds no numbers (a string, say) is a malformed node."""
    a = as_array(v)
    if a.dtype.kind not in "iuf":
        raise ModelLoadError(f"{field} {brief(v)} is not an array of numbers", node=k, op=typ)
    return a.astype(np.float64)


def brief(v: Any) -> str:
    """A file's value for a message: a short list, not an array repr over several lines."""
    a = as_array(v)
    return repr(a.tolist()) if a.size <= 8 else f"of shape {a.shape}"


def summary(v: Any) -> Any:
    """A parameter as recorded in ``meta['nir']['neurons']``: its value, or [min, max] of per-neuron values."""
    return float(v) if np.ndim(v) == 0 else [float(np.min(v)), float(np.max(v))]


def first_bad(a: Any, ok: Any = None) -> float:
    """The first element of ``a`` that is not finite (or, given ``ok``, where ``ok`` is False)."""
    a = np.asarray(a, np.float64)
    bad = ~np.isfinite(a) if ok is None else ~np.asarray(ok)
    return float(a.reshape(-1)[int(np.flatnonzero(bad.reshape(-1))[0])]) if bad.any() else float(a.reshape(-1)[0])


def check_param(k: str, typ: str, field: str, v: np.ndarray, shape: Shape) -> None:
    """One value, one per neuron, or an array of the layer's rank whose other axes are 1 (per channel: (C, 1, 1));
    a lower-rank array would line up with the last axes (a (C,) tau along W), which no writer means."""
    fits = v.size == 1 or (v.ndim == len(shape) and all(a in (1, b) for a, b in zip(v.shape, shape)))
    if not fits:
        raise ModelLoadError(f"inconsistent shapes: {field} of shape {v.shape} for an input of shape "
                             f"{tuple(shape)} (one value, one per neuron, or one per channel as (C, 1, 1))",
                             node=k, op=typ)
