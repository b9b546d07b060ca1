"""canonicalize: one spelling per meaning, so later passes match fewer patterns."""
from __future__ import annotations

import numpy as np

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph, Node


def canonicalize(g: Graph) -> Graph:
    """Rewrite to canonical ops without changing the function the graph computes.

    - Identity and Dropout (inference) are removed;
    - Gemm and MatMul become Dense (weight in (out, in) layout), and a MatMul followed by an Add of a
      constant vector becomes one Dense with bias;
    - Clip(min=0) with no upper bound becomes Relu.
    Invariant: interpreter outputs are unchanged (up to float rounding of alpha/beta scaling).
    """
    for node in list(g.topo()):
        if node.op in ("Identity", "Dropout"):
            _bypass(g, node)
        elif node.op == "Gemm":
            b = node.params["B"].T if node.attrs.get("transB", 0) else node.params["B"]
            w = float(node.attrs.get("alpha", 1.0)) * b.T
            params = {"weight": w.astype(np.float32)}
            if "C" in node.params:
                params["bias"] = _vector(float(node.attrs.get("beta", 1.0)) * node.params["C"], w.shape[0], node)
            _replace(g, node, "Dense", params)
        elif node.op == "MatMul" and len(g.shapes[node.inputs[0]]) == 1:
            params = {"weight": np.ascontiguousarray(node.params["B"].T)}
            readers = g.consumers()[node.output]
            add = readers[0] if len(readers) == 1 else None
            if (add is not None and add.op == "Add" and "const" in add.params and len(add.inputs) == 1
                    and node.output not in g.outputs and _fits(add.params["const"], params["weight"].shape[0])):
                params["bias"] = _vector(add.params["const"], params["weight"].shape[0], add)
                _bypass(g, add)
            _replace(g, node, "Dense", params)
        elif node.op == "Clip" and node.attrs.get("min") == 0 and node.attrs.get("max") is None:
            node.op, node.attrs = "Relu", {}
    return g


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
