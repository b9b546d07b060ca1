"""encode_spikes: activations become neurons, max pooling becomes lateral inhibition (CASC); a student's max pooling
becomes a per-step max pool (step_max_pools)."""
from __future__ import annotations

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph
from neurocompile.ir.ops import Group, op_of, refuse_no_spiking_form

NEURONS = ("cif", "if")


def encode_spikes(g: Graph, neuron: str = "cif", gamma: int = 1, t_wake: int | None = None) -> Graph:
    """Replace every CQReLU(L, λ) by a CIF (default) or IF neuron with threshold θ = λ, and every
    MaxPool by an InhibitionMaxPool. Linear ops (Conv, Dense, pools, Add, Concat, Flatten) keep
    their meaning; the graph output stays a readout (no neuron is added after the last layer).
    A CIF wake phase ``t_wake`` shorter than L (it must divide L) gives each neuron ``rate`` = L / t_wake: spikes
    of θ / rate, up to ``rate`` per wake step, the same count after t_wake steps as after L (the latency mode).

    Invariant: the interpreter's output is unchanged (a neuron's ANN meaning is the CQReLU it
    replaced); afterwards no op of role 'activation' or 'maxpool' remains.
    """
    if neuron not in NEURONS:
        raise ConversionError(f"unknown neuron '{neuron}' (choose from {', '.join(NEURONS)})")
    if gamma < 1:
        raise ConversionError(f"gamma must be >= 1, got {gamma}")
    refuse_no_spiking_form(g)
    for node in g.topo():
        op = op_of(node)
        if op.quantizer and not op.spiking:  # a CQReLU
            clip, levels, shift = (op.attr(node, k) for k in ("clip", "levels", "shift"))  # the op's defaults apply
            node.op = "CIF" if neuron == "cif" else "IF"
            node.attrs = {"threshold": float(clip), "levels": int(levels), "shift": float(shift)}
            if neuron == "cif":
                node.attrs["gamma"] = int(gamma)
                if t_wake is not None and int(t_wake) != node.attrs["levels"]:
                    node.attrs["rate"] = _rate(node, int(t_wake))
        elif node.op in Group.MAXPOOL:
            node.op = "InhibitionMaxPool"
        elif node.op in Group.ACTIVATION:
            raise ConversionError("activation left after threshold normalization", node=node.name, op=node.op,
                                  hint="Run recognize_cqrelu and normalize_thresholds first")
    g.meta["neuron"] = neuron
    return g


def _rate(node, t_wake: int) -> int:
    levels = int(op_of(node).attr(node, "levels"))
    if t_wake < 1 or levels % t_wake:
        divisors = [d for d in range(1, levels + 1) if levels % d == 0]
        raise ConversionError(f"a CIF wake phase of {t_wake} steps does not divide the levels L={levels}: the count "
                              f"after T_wake steps equals the L-step count only for T_wake in {divisors}",
                              node=node.name, op="CIF")
    return levels // t_wake


def step_max_pools(g: Graph) -> Graph:
    """Replace every MaxPool of a LIF student (already spiking: its neurons are the graph's) by a StepMaxPool, the
    max of each window of each step's values, which its PyTorch module computes every step.

    Invariant: every step computes what the student computes on that step (a pool has no ANN meaning to keep here).
    """
    for node in g.topo():
        if node.op in Group.MAXPOOL:
            node.op = "StepMaxPool"
    return g
