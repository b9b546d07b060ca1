"""recognize_cqrelu: find clip-quantized ReLUs written as chains of standard ops."""
from __future__ import annotations

import math

from neurocompile.ir import Graph, Node
from neurocompile.ops import op_of


def _pre(n: Node) -> bool:
    """May stand before the Floor: a clamp, or a scaling or shift by a scalar constant."""
    op = op_of(n)
    return op.bounds(n) is not None or op.scalar_scale(n) is not None or op.scalar_offset(n) is not None


def _post(n: Node) -> bool:
    """May stand after it: a clamp or a scaling by a scalar constant."""
    op = op_of(n)
    return len(n.inputs) == 1 and (op.bounds(n) is not None or op.scalar_scale(n) is not None)


def recognize_cqrelu(g: Graph) -> Graph:
    """Replace every chain equivalent to CQReLU(L, λ) (or QCFS, shift 0.5) by one CQReLU node.

    A chain is a run of single-reader elementwise nodes around one Floor or Round (round(y) is
    floor(y + 0.5), so ``round(x*L/λ)`` is QCFS and ``round(x*L/λ - 0.5)`` is CQReLU): bounds (Relu, Clip,
    Min/Max imported as Clip) and scalar Mul/Div/Add/Sub before it, bounds and scalar Mul/Div after.
    Each side is reduced symbolically to ``b * clamp(floor(a*x + c), q_lo, q_hi)``; the chain is a
    CQReLU when q_lo = 0, q_hi = L >= 1, a*b = 1 and c is 0 (CQReLU) or 0.5 (QCFS); λ = b*L.
    Invariant: interpreter outputs are unchanged up to float rounding at quantization steps
    (x*(L/λ) vs. the chain's own order of operations; Round's ties go to even, a neuron's up).
    """
    for floor in [n for n in g.topo() if op_of(n).rounding is not None]:
        if floor.name not in g.nodes:
            continue
        before, after = _run(g, floor, backward=True), _run(g, floor, backward=False)
        best = None
        for i in range(len(before) + 1):           # longest match wins
            for j in range(len(after), -1, -1):
                chain = before[i:] + [floor] + after[:j]
                match = _match(before[i:], after[:j], op_of(floor).rounding)
                if match and (best is None or len(chain) > len(best[0])):
                    best = (chain, match)
        if best:
            chain, (levels, clip, shift) = best
            first, last = chain[0], chain[-1]
            node = Node(floor.name, "CQReLU", [first.inputs[0]], last.output,
                        {"levels": levels, "clip": clip, "shift": shift})
            for n in chain:
                del g.nodes[n.name]
            g.nodes[node.name] = node
    return g


def _single_reader(g: Graph, n: Node) -> bool:
    return len(g.consumers()[n.output]) == 1 and n.output not in g.outputs


def _run(g: Graph, floor: Node, backward: bool) -> list[Node]:
    """Maximal run of candidate nodes before (in order) or after the Floor."""
    prod, out = g.producers(), []
    cur = floor
    while True:
        if backward:
            nxt = prod.get(cur.inputs[0])
            ok = nxt is not None and _pre(nxt) and _single_reader(g, nxt)
        else:
            if not _single_reader(g, cur):
                break
            readers = g.consumers()[cur.output]
            nxt = readers[0] if readers else None
            ok = nxt is not None and _post(nxt)
        if not ok:
            break
        out.append(nxt)
        cur = nxt
    return out[::-1] if backward else out


def _match(pre: list[Node], post: list[Node], offset: float = 0.0) -> tuple[int, float, float] | None:
    """``offset`` is added inside the floor (0.5 for Round)."""
    a, c, lo, hi = 1.0, 0.0, -math.inf, math.inf     # value = clamp(a*x + c, lo, hi)
    for n in pre:
        op = op_of(n)
        k, d = op.scalar_scale(n), op.scalar_offset(n)
        if op.bounds(n) is not None:
            l2, h2 = op.bounds(n)
            lo, hi = max(lo, l2), min(hi, h2)
        elif k is not None:
            if k <= 0:
                return None
            a, c, lo, hi = a * k, c * k, lo * k, hi * k
        else:
            c, lo, hi = c + d, lo + d, hi + d
        if lo > hi:
            return None
    c, lo, hi = c + offset, lo + offset, hi + offset  # q = floor(value + offset)
    b, lo2, hi2 = 1.0, -math.inf, math.inf           # value = clamp(b*q, lo2, hi2), q = floor(...)
    for n in post:
        op = op_of(n)
        if op.bounds(n) is not None:
            l2, h2 = op.bounds(n)
            lo2, hi2 = max(lo2, l2), min(hi2, h2)
        else:
            k = op.scalar_scale(n)
            if k <= 0:
                return None
            b, lo2, hi2 = b * k, lo2 * k, hi2 * k
    q_lo = max(math.floor(lo) if lo > -math.inf else -math.inf, math.ceil(lo2 / b - 1e-6) if lo2 > -math.inf else -math.inf)
    q_hi = min(math.floor(hi + 1e-6) if hi < math.inf else math.inf, math.floor(hi2 / b + 1e-6) if hi2 < math.inf else math.inf)
    if q_lo != 0 or not (1 <= q_hi < math.inf) or abs(a * b - 1.0) > 1e-6:
        return None
    shift = 0.0 if abs(c) < 1e-9 else (0.5 if abs(c - 0.5) < 1e-9 else None)
    if shift is None:
        return None
    levels = int(q_hi)
    return levels, float(f"{b * levels:.7g}"), shift
