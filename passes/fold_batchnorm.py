"""fold_batchnorm: inference-time BatchNorm becomes part of the layer before it."""
from __future__ import annotations

import numpy as np

from neurocompile.ir import Graph
from neurocompile.ir.ops import op_of


def fold_batchnorm(g: Graph) -> Graph:
    """Fold every BatchNorm into the Conv or Dense that feeds it, or turn it into an Affine node.

    A BN folds when its producer is a Conv/Dense read by nothing else and not a graph output:
    W <- W * s (per output channel), b <- (b - mean) * s + beta, with s = gamma / sqrt(var + eps).
    Otherwise it becomes Affine(scale=s, shift=beta - mean * s).
    Invariant: interpreter outputs are unchanged (float64 exact up to rounding); no BatchNorm remains.
    """
    prod = g.producers()
    readers = g.consumers()
    for bn in [n for n in g.topo() if n.op == "BatchNorm"]:  # this pass's own pattern
        p = {k: v.astype(np.float64) for k, v in bn.params.items()}
        s = p["scale"] / np.sqrt(p["var"] + float(op_of(bn).attr(bn, "eps")))
        shift = p["bias"] - p["mean"] * s
        src = prod.get(bn.inputs[0])
        # a Conv/Dense: its (weight, bias) are what a per-output-channel change of scale rescales
        foldable = (src is not None and op_of(src).rescalable == ("weight", "bias") and len(readers[src.output]) == 1
                    and src.output not in g.outputs)
        if foldable:
            w = src.params["weight"].astype(np.float64)
            src.params["weight"] = (w * s.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
            b = src.params.get("bias", np.zeros(w.shape[0])).astype(np.float64)
            src.params["bias"] = (b * s + shift).astype(np.float32)
            out = bn.output
            g.remove(bn.name)
            g.rename_tensor(out, src.output)
        else:
            bn.op, bn.attrs = "Affine", {}
            bn.params = {"scale": s.astype(np.float32), "shift": shift.astype(np.float32)}
    return g
