"""Reference interpreter: runs an ANN-level graph on a batch with the op table's meanings."""
from __future__ import annotations

from typing import Any, Collection, Mapping

import numpy as np
import torch

from neurocompile.errors import NeurocompileError
from neurocompile.ir import Graph
from neurocompile.ir.ops import OPS, Group, tensors

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def run(graph: Graph, inputs: Mapping[str, np.ndarray] | np.ndarray, dtype: str = "float32",
        device: str = "cpu", keep: bool | Collection[str] = False, numpy: bool = True) -> dict[str, Any]:
    """Evaluate ``graph`` on ``inputs`` (a dict by input name, or one array for a single-input graph).

    Returns the graph outputs by name, every tensor when ``keep`` is true (for per-layer checks), or the
    tensors named in ``keep``; as numpy arrays, or as the torch tensors themselves with ``numpy=False``.
    """
    tdt = DTYPES[dtype]
    feeds = _feeds(graph, inputs)
    sched = graph.schedule  # fixed point: integer input currents and a scaled readout
    in_scale, out_scale = (None, 1.0) if sched is None else (sched.input_scale, float(sched.readout_scale))
    values: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for node in graph.topo():
            if node.op in Group.INPUT:
                x = torch.as_tensor(np.asarray(feeds[node.output]), dtype=tdt, device=device)
                values[node.output] = x if in_scale is None else (x * in_scale).round()
                continue
            try:
                y = OPS[node.op].forward(node, [values[t] for t in node.inputs], tensors(node, tdt, device))
            except NotImplementedError as exc:
                raise NeurocompileError(f"the interpreter cannot run this node: {exc}", node=node.name,
                                        op=node.op) from exc
            values[node.output] = y
    names = list(values) if keep is True else list(keep) if keep else graph.outputs
    if not numpy:  # the tensors themselves (the input's aliases the caller's array)
        return {k: values[k] / out_scale if k in graph.outputs and out_scale != 1.0 else values[k] for k in names}
    return {k: (values[k] / (out_scale if k in graph.outputs else 1.0)).cpu().numpy() for k in names}


def run1(graph: Graph, x: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """Single input, single output convenience."""
    return run(graph, x, dtype)[graph.outputs[0]]


def _feeds(graph: Graph, inputs: Mapping[str, np.ndarray] | np.ndarray) -> Mapping[str, np.ndarray]:
    names = [n.output for n in graph.input_nodes]
    if not isinstance(inputs, Mapping):
        if len(names) != 1:
            raise NeurocompileError(f"graph has inputs {names}: pass a dict")
        inputs = {names[0]: inputs}
    for n in names:
        x = inputs.get(n)
        if x is None:
            raise NeurocompileError(f"no value given for graph input '{n}'")
        want = graph.shapes[n]
        if tuple(np.shape(x)[1:]) != tuple(want):
            raise NeurocompileError(f"input '{n}' has per-sample shape {tuple(np.shape(x)[1:])}, model expects {tuple(want)}")
    return inputs
