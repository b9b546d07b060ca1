"""canonicalize: one spelling per meaning, so later passes match fewer patterns."""
from __future__ import annotations

import math

import numpy as np

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import Group, op_of


def canonicalize(g: Graph) -> Graph:
    """Rewrite to canonical ops without changing the function the graph computes.

    - Identity and Dropout (inference) are removed;
    - Gemm and MatMul become Dense (weight in (out, in) layout), and a MatMul followed by an Add of a
      constant vector becomes one Dense with bias;
    - Clip(min=0) with no upper bound becomes Relu; a Clip with no (or infinite) bounds is removed;
    - a straight-through estimator ``c + (q - c)`` (``c + (q - c).detach()`` in PyTorch: Sub and Add of
      two data tensors) becomes ``q``, and so does ``c - (c - q)``.
    Invariant: interpreter outputs are unchanged (up to float rounding of alpha/beta scaling, and of
    ``c + (q - c)``, which float arithmetic does not always round to ``q``).
    """
    for node in list(g.topo()):
        if node.name not in g.nodes:  # removed with a straight-through pair
            continue
        if node.op in Group.IDENTITY:
            _bypass(g, node)
        elif node.op in RULES:
            RULES[node.op](g, node)
    return g


def _clip(g: Graph, node: Node) -> None:
    """Infinite bounds are no bounds; no bounds is the identity; [0, inf) is Relu."""
    for key, inf in (("min", -math.inf), ("max", math.inf)):
        if node.attrs.get(key) is not None and float(node.attrs[key]) == inf:
            node.attrs[key] = None
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    if lo is None and hi is None:
        _bypass(g, node)
    elif lo == 0 and hi is None:
        node.op, node.attrs = "Relu", {}


def _gemm(g: Graph, node: Node) -> None:
    op = op_of(node)
    b = node.params["B"].T if op.attr(node, "transB") else node.params["B"]
    w = float(op.attr(node, "alpha")) * b.T
    params = {"weight": w.astype(np.float32)}
    if "C" in node.params:
        params["bias"] = _vector(float(op.attr(node, "beta")) * node.params["C"], w.shape[0], node)
    _replace(g, node, "Dense", params)


def _matmul(g: Graph, node: Node) -> None:
    """x @ B of a vector -> Dense, taking a following Add of a constant vector as its bias."""
    if len(g.shapes[node.inputs[0]]) != 1:
        return
    params = {"weight": np.ascontiguousarray(node.params["B"].T)}
    readers = g.consumers()[node.output]
    add = readers[0] if len(readers) == 1 else None
    if (add is not None and add.op == "Add" and "const" in add.params and len(add.inputs) == 1
            and node.output not in g.outputs and _fits(add.params["const"], params["weight"].shape[0])):
        params["bias"] = _vector(add.params["const"], params["weight"].shape[0], add)
        _bypass(g, add)
    _replace(g, node, "Dense", params)


def _collapse_straight_through(g: Graph, node: Node, is_add: bool) -> None:
    """``c + (q - c)`` or ``(q - c) + c`` or ``c - (c - q)`` -> ``q`` when the inner Sub has no other reader."""
    if len(node.inputs) != 2 or node.params:
        return
    prod, readers = g.producers(), g.consumers()
    for i in (1, 0) if is_add else (1,):
        inner, outer = prod.get(node.inputs[i]), node.inputs[1 - i]
        if (inner is None or inner.op != "Sub" or len(inner.inputs) != 2 or inner.params
                or len(readers[inner.output]) != 1 or inner.output in g.outputs):
            continue
        q = inner.inputs[0] if is_add else inner.inputs[1]
        c = inner.inputs[1] if is_add else inner.inputs[0]
        if c == outer and q != c:
            out = node.output
            g.remove(node.name)
            g.remove(inner.name)
            g.rename_tensor(out, q)
            return


def _collapse_add(g: Graph, node: Node) -> None:
    _collapse_straight_through(g, node, is_add=True)


def _collapse_sub(g: Graph, node: Node) -> None:
    _collapse_straight_through(g, node, is_add=False)


def _bypass(g: Graph, node: Node) -> None:
    """Remove a one-input node whose output equals its input."""
    src = node.inputs[0]
    out = node.output
    g.remove(node.name)
    g.rename_tensor(out, src)


def _replace(g: Graph, node: Node, op: str, params: dict[str, np.ndarray]) -> None:
    node.op, node.attrs, node.params = op, {}, params


def _fits(c: np.ndarray, n: int) -> bool:
    return c.size in (1, n) and (c.ndim <= 1 or all(d == 1 for d in c.shape[:-1]))


def _vector(c: np.ndarray, n: int, node: Node) -> np.ndarray:
    if not _fits(np.asarray(c), n):
        raise ConversionError(f"bias of shape {np.shape(c)} does not broadcast to ({n},)", node=node.name, op=node.op)
    return np.broadcast_to(np.asarray(c, dtype=np.float32).reshape(-1), (n,)).copy()


# op name -> its rewrite (this pass's own pattern matching); the ops of Group.IDENTITY are removed
RULES = {"Clip": _clip, "Gemm": _gemm, "MatMul": _matmul, "Add": _collapse_add, "Sub": _collapse_sub}
