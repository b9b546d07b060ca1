"""An open core mapper: every compartment and every synapse of a converted network placed on Loihi 2 cores.

``place(graph, est)`` places the blocks of ``estimate``'s rows (same lowered graph, same blocks, same measured
connections: ``connections.py``), in their topological order, on cores under the per-core limits of
``targets/loihi2/spec.py`` (neurons, synaptic memory bits, input axons) and the chip's core count:

- **compartments** of a layer: its sink's target elements, then its relays' elements (``relays`` order); a
  (C, H, W) tensor position-major (index (h x W + w) x C + c: all channels of a position together), any other in
  element order; ``neurons: [start, stop)`` in the placement is a range of these (``layers[NAME]["neurons"]`` = neurons + relays,
  the compartments ``estimate`` counts toward the cores).
- **synaptic bits** of a core's range: the connections ending in its compartments (their exact fan-in) x the weight
  bits (``estimate``'s memory rule): summed over a layer's cores they are the row's ``memory_bits``, exactly.
- **input axons** of a core's range: the distinct sender elements (input, other layers' sinks, relays) with at least
  one connection into it, counted exactly (the indicator maps' transpose on a 0/1 mask of the range). A core holding
  several layers counts each layer's axons apart (conservative: no input axon shared between layers).
- **splitting**: a layer is cut into contiguous compartment ranges: a convolution's by spatial tile (whole rows
  of positions first, then positions, with all their output channels, then single channels), a dense layer's by
  output element: each core takes the largest range that still fits
  all three limits (memory and neurons by prefix sums, axons by a binary search, which is exact because axons only
  grow with the range). A split dense layer's cores each need every input they read: the axons say so.
- **fan-in splitting** (``fanin.py``): a layer with a compartment that no empty core holds (more distinct senders
  than a core's input axons, or more memory than a core's) becomes ``k`` parts of partial-sum compartments, each
  integrating one group of the senders, placed like layers before the layer itself, whose compartments then each
  read ``k`` partial sums (one unit-weight connection each). The placement file lists a part's cores with
  ``"part": [i, k]`` and the layer's ``"fanin_parts": k``; the latency counts the step each split adds.
- **packing**: the next layer continues on the open core while any of its range fits, so small consecutive layers
  share a core; a residual block's branches are consecutive blocks, hence on consecutive (neighbouring) cores.
- **chips and mesh**: global core k is core k mod 128 of chip k // 128, at mesh position (row, column) =
  divmod(core, columns) (row-major; ``LOIHI2_MESH`` states the assumed grid).

:func:`check_placement` verifies a placement (this one or one read from JSON) against the estimate: every
compartment placed exactly once, every layer's memory counted in full on the cores holding its targets, every core
within every limit. ``place`` calls it before returning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neurocompile.analysis.estimate.connections import BlockConnections, IndicatorMaps, block_connections
from neurocompile.analysis.estimate.result import Estimate
from neurocompile.errors import NeurocompileError
from neurocompile.ir import Graph
from neurocompile.targets.loihi2.spec import LOIHI2_MESH, HardwareLimits


class PlacementError(NeurocompileError):
    """A placement that breaks a rule (a compartment placed twice or never, memory not counted, a limit exceeded),
    or a layer with a compartment that no core can hold."""


@dataclass
class Slot:
    """One layer's compartment range on one core (a core holding several layers has one slot per layer)."""

    chip: int
    core: int
    layer: str
    start: int
    stop: int
    synaptic_bits: int
    input_axons: int
    index: int                                                        # global core number: chip x cores per chip + core
    fanout: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # sender -> connections into this range
    part: tuple[int, int] | None = None    # (i, k): partial sums of part i of a layer split k ways (fanin.py)

    @property
    def key(self) -> str:
        """The layer, or the layer's part, whose compartments the slot holds."""
        return _key(self.layer, self.part)

    def to_dict(self) -> dict[str, Any]:
        d = {"chip": self.chip, "core": self.core, "layer": self.layer, "neurons": [self.start, self.stop],
             "synaptic_bits": self.synaptic_bits, "input_axons": self.input_axons}
        return {**d, "part": list(self.part)} if self.part else d


def _key(layer: str, part: tuple[int, int] | None) -> str:
    return f"{layer} part {part[0] + 1}/{part[1]}" if part else layer


@dataclass
class _Layer:
    """A block's compartments: the tensors they are (sink target, relays) with their offsets, the fan-in prefix
    sums, and the cut positions by preference (channel, row, element)."""

    name: str
    block: BlockConnections
    tensors: list[tuple[str, int, np.ndarray]]            # (tensor, offset, element of each compartment)
    fanin_cum: np.ndarray                                 # connections into compartments [0, i): int64, len n + 1
    cuts: list[np.ndarray]                                # allowed cut positions, coarse to fine
    part: tuple[int, int] | None = None                   # (i, k): the partial sums of sender group i of k
    senders_only: dict[str, np.ndarray] | None = None     # a part's senders: a 0/1 mask per sender tensor
    combines: int = 0                                     # k: a split layer's own compartments read k partial sums

    @property
    def size(self) -> int:
        return int(len(self.fanin_cum) - 1)

    @property
    def key(self) -> str:
        return _key(self.name, self.part)


@dataclass
class Placement:
    """Cores (slots) of every layer, the limits they were checked against and the layers' sizes."""

    limits: dict[str, int]
    layers: dict[str, dict[str, int]]
    cores: list[Slot]
    mesh_columns: int
    weight_bits: int
    # sender tensor -> (layer, offset, compartment of each element): where each element's messages start
    senders: dict[str, tuple[str, int, np.ndarray]] = field(default_factory=dict, repr=False)
    fanin_cum: dict[str, np.ndarray] = field(default_factory=dict, repr=False)   # by layer (or part) key
    # a part's partial-sum tensor -> messages per partial sum from messages per sender element (runtime.traffic)
    partial_inputs: dict[str, Any] = field(default_factory=dict, repr=False)
    split_steps: int = 0         # steps the split layers add to the longest path (one per split layer on it)

    @property
    def n_cores(self) -> int:
        return len({s.index for s in self.cores})

    @property
    def n_chips(self) -> int:
        return len({s.chip for s in self.cores})

    def position(self, index: int) -> tuple[int, int, int]:
        """(chip, mesh row, mesh column) of global core ``index``."""
        chip, core = divmod(index, self.limits["cores_per_chip"])
        return (chip, *divmod(core, self.mesh_columns))

    def per_core(self) -> dict[int, list[Slot]]:
        out: dict[int, list[Slot]] = {}
        for s in self.cores:
            out.setdefault(s.index, []).append(s)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The placement file: limits, layers, one entry per (core, layer)."""
        return {"limits": dict(self.limits), "layers": {k: dict(v) for k, v in self.layers.items()},
                "mesh": {"columns": self.mesh_columns, "order": "row-major"},
                "cores": [s.to_dict() for s in self.cores]}


def limits_of(L: HardwareLimits) -> dict[str, int]:
    return {"neurons_per_core": int(L.neurons_per_core.value),
            "synaptic_bits_per_core": int(L.synaptic_memory_bits_per_core.value),
            "input_axons_per_core": int(L.input_axons_per_core.value),
            "cores_per_chip": int(L.cores_per_chip.value)}


def place(graph: Graph, est: Estimate) -> Placement:
    """Place ``graph`` (the converted network ``est`` was computed from) on cores; checked before it is returned."""
    from neurocompile.passes.blocks import blocks
    from neurocompile.passes.lower_to_blocks import lowered

    g = lowered(graph)
    ind = IndicatorMaps(g)
    built = [block_connections(g, bl, ind) for bl in blocks(g)]
    if [b.sink.name for b in built] != [r.name for r in est.rows]:
        raise PlacementError("the placement's blocks are not the estimate's rows",
                             hint="Pass the estimate computed from this graph")
    wbits = int(est.limits.weight_bits.value)
    lim = limits_of(est.limits)
    p = Placement(lim, {}, [], int(LOIHI2_MESH.columns.value), wbits)
    packer = _Packer(g, ind, p, lim, wbits)
    placed: list[_Layer] = []
    depth: dict[str, int] = {}  # split layers on the longest path into each layer
    for b, r in zip(built, est.rows):
        lay = _layer(g, b)
        p.layers[lay.name] = {"neurons": lay.size, "sink_neurons": r.neurons, "relays": r.relays,
                              "synaptic_bits": r.memory_bits, "input_axons": r.axons, "estimate_cores": r.cores,
                              "order": "element" if np.array_equal(lay.tensors[0][2], np.arange(len(lay.tensors[0][2])))
                              else "position-major"}
        parts = _split(packer, lay)
        if parts:
            p.layers[lay.name]["fanin_parts"] = len(parts) - 1
        from_layers = {p.senders[s][0] for c in b.conns for s in c.senders if s in p.senders}
        depth[lay.name] = max((depth[n] for n in from_layers), default=0) + bool(parts)
        for part in parts or [lay]:
            p.fanin_cum[part.key] = part.fanin_cum
            placed.append(part)
        for t, off, order in lay.tensors:
            p.senders[t] = (lay.name, off, np.argsort(order))
        # a sink's output tensor is sent from the compartments of its target (a neuron's input current: same shape)
        p.senders.setdefault(lay.block.sink.output, p.senders[lay.block.target])
    p.split_steps = max(depth.values(), default=0)
    packer.run(placed)
    check_placement(p, est)
    return p


def _split(packer: "_Packer", lay: _Layer) -> list[_Layer]:
    """A layer that needs fan-in splitting as its parts and then itself reading their partial sums (fanin.py);
    [] where every compartment fits a core (or where no split helps: the packer then refuses the layer)."""
    from neurocompile.analysis.estimate.fanin import incoming, sender_groups

    lim, wbits = packer.lim, packer.wbits
    fan = np.diff(lay.fanin_cum)
    worst = int(np.argmax(fan)) if len(fan) else 0
    if not len(fan) or (fan[worst] * wbits <= lim["synaptic_bits_per_core"]
                        and (fan[worst] <= lim["input_axons_per_core"]
                             or _axons(packer._fanout(lay, worst, worst + 1)) <= lim["input_axons_per_core"])):
        return []
    cap = min(lim["input_axons_per_core"], lim["synaptic_bits_per_core"] // wbits) // 2
    groups = sender_groups(packer.g, packer.ind, lay.block, lay.tensors, cap)
    if len(groups) < 2:
        return []
    k, n = len(groups), lay.size
    p = packer.p
    parts = []
    for i, grp in enumerate(groups):
        fan_i = np.rint(incoming(packer.g, packer.ind, lay.block, grp.masks, lay.tensors)).astype(np.int64)
        part = _Layer(lay.name, lay.block, lay.tensors, np.concatenate([[0], np.cumsum(fan_i)]), lay.cuts,
                      part=(i, k), senders_only=grp.masks)
        partial = f"{part.key} partial sums"
        p.senders[partial] = (part.key, 0, np.arange(n))
        p.partial_inputs[partial] = (lambda x, grp=grp: incoming(
            packer.g, packer.ind, lay.block, {s: x[s] * m for s, m in grp.masks.items() if s in x}, lay.tensors))
        parts.append(part)
    combine = _Layer(lay.name, lay.block, lay.tensors, np.arange(n + 1, dtype=np.int64) * k, lay.cuts, combines=k)
    return [*parts, combine]


def _order(shape: tuple[int, ...]) -> np.ndarray:
    """The tensor element (C-order flat index) held by each compartment: position-major for a (C, H, W) tensor
    (all channels of a position together, positions row by row), so a core's range is a spatial tile whose input
    window all its channels share; element order otherwise."""
    n = int(np.prod(shape))
    if len(shape) == 3 and shape[1] * shape[2] > 1:
        return np.arange(n).reshape(shape).transpose(1, 2, 0).reshape(-1)
    return np.arange(n)


def _layer(g: Graph, b: BlockConnections) -> _Layer:
    """The compartments of block ``b``: its target tensor's elements, then its relays'."""
    tensors, off = [], 0
    fanin = []
    cuts: list[list[int]] = [[], [], []]
    for t in [b.target, *b.relays]:
        shape = tuple(int(s) for s in g.shapes[t])
        n, order = int(np.prod(shape)), _order(shape)
        f = np.zeros(n, np.float64)
        for c in b.conns:
            if c.target == t:
                f += c.fanin.reshape(-1)
        fanin.append(np.rint(f[order]).astype(np.int64))
        tensors.append((t, off, order))
        spatial = len(shape) == 3 and shape[1] * shape[2] > 1
        # cut preferences: (row of positions, position, element) for a spatial tensor; element otherwise
        steps = (shape[0] * shape[2], shape[0], 1) if spatial else (n, 1, 1)
        for lvl, step in enumerate(steps):
            cuts[lvl].extend(range(off + step, off + n + 1, step))
        off += n
    cum = np.concatenate([[0], np.cumsum(np.concatenate(fanin))]).astype(np.int64)
    return _Layer(b.sink.name, b, tensors, cum, [np.unique(np.asarray(c + [off], np.int64)) for c in cuts])


class _Packer:
    """Fills cores in order: each takes the largest range of the current layer that fits what is left of it."""

    def __init__(self, g: Graph, ind: IndicatorMaps, p: Placement, lim: dict[str, int], wbits: int):
        self.g, self.ind, self.p, self.lim, self.wbits = g, ind, p, lim, wbits
        self.index = 0
        self._graphs: dict[tuple, tuple[torch.Tensor, torch.Tensor] | None] = {}
        self.used = {"neurons": 0, "bits": 0, "axons": 0}

    def run(self, layers: list[_Layer]) -> None:
        for lay in layers:
            pos = 0
            while pos < lay.size:
                stop, fan = self._largest_fit(lay, pos)
                if stop == pos:
                    if not any(self.used.values()):
                        self._too_big(lay, pos)
                    self._next_core()
                    continue
                self._put(lay, pos, stop, fan)
                pos = stop
            self._graphs.clear()  # the next layer has other connections

    def _too_big(self, lay: _Layer, pos: int) -> None:
        """The refusal of a compartment that no empty core holds: its fan-in's memory or distinct senders."""
        fanin = int(lay.fanin_cum[pos + 1] - lay.fanin_cum[pos])
        axons = _axons(self._fanout(lay, pos, pos + 1))
        raise PlacementError(
            f"layer {lay.name}: compartment {pos} alone needs more than one core: fan-in {fanin:,} connections "
            f"({fanin * self.wbits:,} of {self.lim['synaptic_bits_per_core']:,} synaptic bits) from {axons:,} "
            f"senders ({self.lim['input_axons_per_core']:,} input axons per core)", node=lay.name,
            op=lay.block.sink.op, hint="Its fan-in is split into partial sums where one sender's connections "
            "into a compartment fit half a core; here they do not: the per-core limits are too small for this layer")

    def _next_core(self) -> None:
        self.index += 1
        self.used = {"neurons": 0, "bits": 0, "axons": 0}

    def _put(self, lay: _Layer, start: int, stop: int, fan: dict[str, np.ndarray]) -> None:
        bits = int(lay.fanin_cum[stop] - lay.fanin_cum[start]) * self.wbits
        axons = _axons(fan)
        chip, core = divmod(self.index, self.lim["cores_per_chip"])
        self.p.cores.append(Slot(chip, core, lay.name, start, stop, bits, axons, self.index, fan, lay.part))
        for k, v in (("neurons", stop - start), ("bits", bits), ("axons", axons)):
            self.used[k] += v

    def _additive_stop(self, lay: _Layer, start: int, cand: np.ndarray) -> int:
        """How many of the sorted candidate stops fit the open core's neurons and memory (prefix sums: monotone)."""
        bits = (lay.fanin_cum[cand] - lay.fanin_cum[start]) * self.wbits
        ok = ((self.used["neurons"] + cand - start <= self.lim["neurons_per_core"])
              & (self.used["bits"] + bits <= self.lim["synaptic_bits_per_core"]))
        return int(np.argmin(ok)) if not ok.all() else len(cand)

    def _largest_fit(self, lay: _Layer, start: int) -> tuple[int, dict[str, np.ndarray]]:
        """The largest stop (a cut at the coarsest level that allows one, refined at finer levels) such that
        [start, stop) fits what is left of the open core, with its senders' fan-out; ``start`` if none does."""
        best, best_fan = start, {}
        room = self.lim["input_axons_per_core"] - self.used["axons"]
        upper = lay.size
        for cuts in lay.cuts:
            cand = cuts[(cuts > best) & (cuts <= upper)]
            cand = cand[: self._additive_stop(lay, start, cand)]
            lo, hi = 0, len(cand) - 1
            while lo <= hi:  # axons only grow with stop: binary search the last candidate that fits, largest first
                mid = hi if lo == 0 and hi == len(cand) - 1 else (lo + hi) // 2
                fan = self._fanout(lay, start, int(cand[mid]))
                if _axons(fan) <= room:
                    best, best_fan, lo = int(cand[mid]), fan, mid + 1
                else:
                    hi = mid - 1
            nxt = cuts[cuts > best]
            upper = int(nxt[0]) if len(nxt) else lay.size  # refine only up to the next coarse cut
        return best, best_fan

    def _fanout(self, lay: _Layer, start: int, stop: int) -> dict[str, np.ndarray]:
        """Connections from each sender element into compartments [start, stop) of ``lay`` (flat per sender; a
        part: from its senders only; a split layer: one from each partial sum of each compartment)."""
        if lay.combines:
            one = np.zeros(lay.size)
            one[start:stop] = 1.0
            return {f"{_key(lay.name, (i, lay.combines))} partial sums": one for i in range(lay.combines)}
        out: dict[str, np.ndarray] = {}
        for t, off, order in lay.tensors:
            n = len(order)
            a, b = max(start - off, 0), min(stop - off, n)
            if a >= b:
                continue
            mask = torch.zeros(n, dtype=torch.float64)
            mask[torch.as_tensor(order[a:b])] = 1.0
            mask = mask.reshape(self.g.shapes[t])
            for c in lay.block.conns:
                if c.target != t:
                    continue
                for s in c.senders:
                    grad = self._vjp(c, s, mask)
                    if grad is not None:
                        out[s] = grad.copy() if s not in out else out[s] + grad
        if lay.senders_only is not None:
            out = {s: v * lay.senders_only[s] for s, v in out.items() if s in lay.senders_only}
        return out

    def _vjp(self, c: Any, s: str, mask: torch.Tensor) -> np.ndarray | None:
        """Connections from each element of sender ``s`` into the masked targets of ``c``: the indicator map's
        transpose applied to the mask (its forward pass built once per connection and sender, then kept)."""
        key = (c.node, c.target, s)
        if key not in self._graphs:
            x = torch.ones((1, *self.g.shapes[s]), dtype=torch.float64, requires_grad=True)
            y = self.ind.evaluate({s: x}, c.target, c.node)
            self._graphs[key] = (x, y) if y.requires_grad else None
        if self._graphs[key] is None:
            return None
        x, y = self._graphs[key]
        (grad,) = torch.autograd.grad(y, x, grad_outputs=mask[None], retain_graph=True)
        return grad[0].numpy().reshape(-1)


def _axons(fan: dict[str, np.ndarray]) -> int:
    return int(sum(int((v > 0.5).sum()) for v in fan.values()))


def check_placement(placement: "Placement | dict[str, Any]", est: Estimate) -> None:
    """Raise :class:`PlacementError` listing every violation: a layer not the estimate's, a compartment (or a part's
    partial sum) placed twice or never, a layer's memory not counted in full on the cores holding its targets (or
    its parts'), a split layer's compartments without their partial sums' connections (or, for a
    :class:`Placement`, a core's memory not its range's fan-in), a core over a limit or a chip over its core count."""
    p = placement.to_dict() if isinstance(placement, Placement) else placement
    lim, bad = p["limits"], []
    wbits = int(est.limits.weight_bits.value)
    rows = {r.name: r for r in est.rows}
    if list(p["layers"]) != list(rows):
        bad.append(f"layers {list(p['layers'])} are not the estimate's rows {list(rows)}")
    by_key: dict[str, list[dict]] = {}
    for s in p["cores"]:
        part = tuple(s["part"]) if s.get("part") is not None else None
        by_key.setdefault(_key(s["layer"], part), []).append(s)  # type: ignore[arg-type]
    for name, r in rows.items():
        n = r.neurons + r.relays
        k = p["layers"].get(name, {}).get("fanin_parts", 1)
        own = by_key.pop(name, [])
        bad += _check_ranges(name, n, own)
        if k == 1:
            bad += _check_memory(name, r.memory_bits, r.axons, own)
            continue
        parts = [by_key.pop(_key(name, (i, k)), []) for i in range(k)]
        for i, slots in enumerate(parts):
            bad += _check_ranges(_key(name, (i, k)), n, slots)
        bad += _check_memory(f"{name} (its {k} parts)", r.memory_bits, r.axons, [s for sl in parts for s in sl])
        bad += _check_memory(f"{name} (reading its {k} partial sums)", n * k * wbits, n * k, own)
    bad += [f"{key}: not a layer (or a part) of the placement" for key in by_key]
    if isinstance(placement, Placement):
        bad += _check_fanin(placement)
    bad += _check_cores(p["cores"], lim)
    if bad:
        raise PlacementError(f"invalid placement: {'; '.join(bad[:8])}" + (f"; and {len(bad) - 8} more"
                                                                          if len(bad) > 8 else ""))


def _check_fanin(p: Placement) -> list[str]:
    """Each core's memory is its range's fan-in (a :class:`Placement` knows every layer's and part's fan-in)."""
    bad = []
    for s in p.cores:
        cum = p.fanin_cum.get(s.key)
        if cum is not None and 0 <= s.start < s.stop <= len(cum) - 1:
            need = int(cum[s.stop] - cum[s.start]) * p.weight_bits
            if s.synaptic_bits != need:
                bad.append(f"{s.key} on chip {s.chip} core {s.core}: {s.synaptic_bits} synaptic bits, but its "
                           f"targets' fan-in needs {need}")
    return bad


def _check_ranges(name: str, n: int, slots: list[dict]) -> list[str]:
    """Every one of the ``n`` compartments exactly once."""
    bad = []
    pos = 0
    for a, b in sorted(tuple(s["neurons"]) for s in slots):
        if a != pos or b <= a:
            bad.append(f"{name}: compartments [{a}, {b}) " + ("overlap or repeat" if a < pos else "leave a gap")
                       + f" after {pos}")
        pos = max(pos, b)
    if pos != n:
        bad.append(f"{name}: {pos} of {n} compartments placed")
    return bad


def _check_memory(name: str, bits: int, axons: int, slots: list[dict]) -> list[str]:
    """The memory in full, the senders on some core."""
    bad = []
    placed_bits = sum(s["synaptic_bits"] for s in slots)
    if placed_bits != bits:
        bad.append(f"{name}: {placed_bits} synaptic bits on its cores, the estimate counts {bits}")
    if sum(s["input_axons"] for s in slots) < axons:
        bad.append(f"{name}: fewer input axons on its cores than its {axons} distinct senders")
    return bad


def _check_cores(slots: list[dict], lim: dict[str, int]) -> list[str]:
    """Every core within every limit, every core number on a chip."""
    bad, cores = [], {}
    for s in slots:
        if not 0 <= s["core"] < lim["cores_per_chip"] or s["chip"] < 0:
            bad.append(f"chip {s['chip']} core {s['core']}: no such core ({lim['cores_per_chip']} per chip)")
        u = cores.setdefault((s["chip"], s["core"]), [0, 0, 0])
        u[0] += s["neurons"][1] - s["neurons"][0]
        u[1] += s["synaptic_bits"]
        u[2] += s["input_axons"]
    for (chip, core), u in cores.items():
        for v, k in zip(u, ("neurons_per_core", "synaptic_bits_per_core", "input_axons_per_core")):
            if v > lim[k]:
                bad.append(f"chip {chip} core {core}: {v:,} > {lim[k]:,} {k}")
    return bad


def pooled_bound(est: Estimate) -> int:
    """Cores no placement can beat: the network's compartments, memory and axons pooled over all cores."""
    lim = limits_of(est.limits)
    t = est.totals
    return max(math.ceil((t.neurons + t.relays) / lim["neurons_per_core"]),
               math.ceil(t.memory_bits / lim["synaptic_bits_per_core"]),
               math.ceil(sum(r.axons for r in est.rows) / lim["input_axons_per_core"]), 1)
