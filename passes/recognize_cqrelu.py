"""recognize_cqrelu: find clip-quantized ReLUs written as chains of standard ops."""
from __future__ import annotations

import math

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import op_of


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
    A chain whose clip bounds the floor at a non-integer number of level steps (clip 1 with Mul(7.5)/Div(7.5):
    L = 7.5) is refused (ConversionError naming the Floor): its top level is narrower than the others, and reading
    it as L = 7 or 8 would show the user levels the model does not say.
    """
    for floor in [n for n in g.topo() if op_of(n).rounding is not None]:
        if floor.name not in g.nodes:
            continue
        before, after = _run(g, floor, backward=True), _run(g, floor, backward=False)
        best, odd = None, None
        for i in range(len(before) + 1):           # longest match wins
            for j in range(len(after), -1, -1):
                chain = before[i:] + [floor] + after[:j]
                why: list[tuple[float, float]] = []
                match = _match(before[i:], after[:j], op_of(floor).rounding, why)
                if match and (best is None or len(chain) > len(best[0])):
                    best = (chain, match)
                elif why and (odd is None or len(chain) > len(odd[0])):
                    odd = (chain, why[0])
        if odd is not None and (best is None or len(odd[0]) > len(best[0])):
            chain, (top, scale) = odd
            raise ConversionError(
                f"the clip-quantized ReLU {' -> '.join(n.op for n in chain)} has a non-integer number of levels: "
                f"its clip {top / scale:.7g} times its scale {scale:.7g} is L = {top:.7g}; the levels of a CQReLU "
                "are 0..L for an integer L", node=floor.name, op=floor.op,
                hint=f"Scale by an integer L over the clip (e.g. Mul/Div {round(top) / (top / scale):.7g} for "
                     f"L = {round(top)}), as neurocompile.torch.CQReLU exports it")
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


def _match(pre: list[Node], post: list[Node], offset: float = 0.0,
           why: list[tuple[float, float]] | None = None) -> tuple[int, float, float] | None:
    """``offset`` is added inside the floor (0.5 for Round). A chain that would match but for a non-integer
    number of levels appends (its levels, its scale a) to ``why``."""
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
    # The clip that sets L must stand for a whole number of level steps: a bound of the floor's argument at L (less
    # its offset; a QCFS may clip the shifted value at L too) or of the floor's result at L, within float32
    # rounding (an exported clip sits an ulp above L: chain_clip_bound). One such bound among those reaching q_hi
    # suffices; else (clip 1, scale 7.5) the chain's L is not an integer.
    whole = lambda v: abs(v - round(v)) <= 1e-6 * max(1.0, abs(v))  # noqa: E731
    tops = []  # (levels the bound stands for, whether that is whole)
    if hi < math.inf and math.floor(hi + 1e-6) == q_hi:
        tops.append((hi - c, whole(hi - c) or whole(hi)))
    if hi2 < math.inf and math.floor(hi2 / b + 1e-6) == q_hi:
        tops.append((hi2 / b, whole(hi2 / b)))
    if tops and not any(ok for _, ok in tops):
        if why is not None:
            why.append((tops[0][0], a))
        return None
    levels = int(q_hi)
    return levels, float(f"{b * levels:.7g}"), shift
