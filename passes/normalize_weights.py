"""normalize_weights: rescale weights so that thresholds become 1 (science.md, "Thresholds")."""
from __future__ import annotations

import numpy as np

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import op_of


def normalize_weights(g: Graph) -> Graph:
    """Store every tensor in units of the clip λ of the CQReLU that reads it, so every threshold is 1.

    Each tensor t gets a unit u(t) (real value = u * stored value). A Conv/Dense/Affine picks its
    output unit: the λ of the CQReLU it feeds (through pools, reshapes and merges), or 1 for the
    readout: W <- W * u_in / u_out, b <- b / u_out. Other ops keep their input's unit; a merge whose
    fixed input (an identity shortcut) has another unit forces that unit, and the CQReLU after it
    then keeps a threshold λ / u != 1. A CQReLU reading unit u gets clip λ / u.
    Invariant: interpreter outputs are unchanged (up to float rounding of the rescaled weights).
    """
    readers = g.consumers()
    unit: dict[str, float] = {}
    for n in g.topo():
        if not n.inputs:  # the input
            unit[n.output] = 1.0
            continue
        u_in = [unit[t] for t in n.inputs]
        if op_of(n).rescalable:
            u_out = _wanted_unit(g, n, readers, unit)
            _rescale(n, u_in[0], u_out)
            unit[n.output] = u_out
        elif op_of(n).quantizer:
            n.attrs["clip"] = float(n.attrs["clip"]) / u_in[0]
            unit[n.output] = u_in[0]
        elif op_of(n).merge or op_of(n).homogeneous or op_of(n).additive:
            if len(set(u_in)) > 1:
                raise ConversionError(f"merge inputs arrive in different units {sorted(set(u_in))}", node=n.name,
                                      op=n.op, hint="Convert without weight normalization")
            if "const" in n.params and op_of(n).additive:  # a constant term is in the data's unit
                n.params["const"] = (n.params["const"] / u_in[0]).astype(np.float32)
            unit[n.output] = u_in[0]
        else:
            raise ConversionError("weight normalization does not know this op", node=n.name, op=n.op)
    for t in g.outputs:
        if abs(unit[t] - 1.0) > 1e-12:
            raise ConversionError(f"output '{t}' would be stored in unit {unit[t]:g}: weight normalization needs "
                                  "a Conv/Dense readout layer", hint="Convert without weight normalization")
    g.meta["weights_normalized"] = True
    return g


def _wanted_unit(g: Graph, n: Node, readers: dict, unit: dict) -> float:
    """Follow the output through unit-preserving ops to the CQReLU (its λ) or the graph output (1)."""
    t = n.output
    while True:
        if t in g.outputs:
            return 1.0
        rs = readers.get(t, [])
        if len(rs) != 1:
            return 1.0  # fan-out to several readers: keep real units
        r = rs[0]
        if op_of(r).quantizer:
            return float(r.attrs["clip"])
        if op_of(r).merge:
            fixed = [unit[i] for i in r.inputs if i != t and i in unit and not _adjustable(g, i)]
            if fixed:
                return fixed[0]
        elif not op_of(r).homogeneous and not (op_of(r).additive and len(r.inputs) == 1):
            return 1.0
        t = r.output


def _adjustable(g: Graph, tensor: str) -> bool:
    prod = g.producers()[tensor]
    return op_of(prod).rescalable is not None


def _rescale(n: Node, u_in: float, u_out: float) -> None:
    w, b = op_of(n).rescalable
    n.params[w] = (n.params[w].astype(np.float64) * (u_in / u_out)).astype(np.float32)
    if b in n.params:
        n.params[b] = (n.params[b].astype(np.float64) / u_out).astype(np.float32)
