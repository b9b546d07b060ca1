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

    def to_dict(self) -> dict[str, Any]:
        return {"chip": self.chip, "core": self.core, "layer": self.layer, "neurons": [self.start, self.stop],
                "synaptic_bits": self.synaptic_bits, "input_axons": self.input_axons}


@dataclass
class _Layer:
    """A block's compartments: the tensors they are (sink target, relays) with their offsets, the fan-in prefix
    sums, and the cut positions by preference (channel, row, element)."""

    name: str
    block: BlockConnections
    tensors: list[tuple[str, int, np.ndarray]]            # (tensor, offset, element of each compartment)
    fanin_cum: np.ndarray                                 # connections into compartments [0, i): int64, len n + 1
    cuts: list[np.ndarray]                                # allowed cut positions, coarse to fine

    @property
    def size(self) -> int:
        return int(len(self.fanin_cum) - 1)


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
    fanin_cum: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

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
    layers = [_layer(g, b) for b in built]
    p = Placement(lim, {}, [], int(LOIHI2_MESH.columns.value), wbits)
    for lay, r in zip(layers, est.rows):
        p.layers[lay.name] = {"neurons": lay.size, "sink_neurons": r.neurons, "relays": r.relays,
                              "synaptic_bits": r.memory_bits, "input_axons": r.axons, "estimate_cores": r.cores,
                              "order": "element" if np.array_equal(lay.tensors[0][2], np.arange(len(lay.tensors[0][2])))
                              else "position-major"}
        p.fanin_cum[lay.name] = lay.fanin_cum
        for t, off, order in lay.tensors:
            p.senders[t] = (lay.name, off, np.argsort(order))
        # a sink's output tensor is sent from the compartments of its target (a neuron's input current: same shape)
        p.senders.setdefault(lay.block.sink.output, p.senders[lay.block.target])
    _Packer(g, ind, p, lim, wbits).run(layers)
    check_placement(p, est)
    return p


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
            op=lay.block.sink.op, hint="Splitting one neuron's fan-in over cores (partial sums on dendritic "
            "compartments) is not implemented; the estimate's core count assumes it")

    def _next_core(self) -> None:
        self.index += 1
        self.used = {"neurons": 0, "bits": 0, "axons": 0}

    def _put(self, lay: _Layer, start: int, stop: int, fan: dict[str, np.ndarray]) -> None:
        bits = int(lay.fanin_cum[stop] - lay.fanin_cum[start]) * self.wbits
        axons = _axons(fan)
        chip, core = divmod(self.index, self.lim["cores_per_chip"])
        self.p.cores.append(Slot(chip, core, lay.name, start, stop, bits, axons, self.index, fan))
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
        """Connections from each sender element into compartments [start, stop) of ``lay`` (flat per sender)."""
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
    """Raise :class:`PlacementError` listing every violation: a layer not the estimate's, a compartment placed
    twice or never, a layer's memory not counted in full on its cores (or, for a :class:`Placement`, a core's
    memory not its range's fan-in), a core over a limit or a chip over its core count."""
    p = placement.to_dict() if isinstance(placement, Placement) else placement
    lim, bad = p["limits"], []
    rows = {r.name: r for r in est.rows}
    if list(p["layers"]) != list(rows):
        bad.append(f"layers {list(p['layers'])} are not the estimate's rows {list(rows)}")
    by_layer: dict[str, list[dict]] = {}
    for s in p["cores"]:
        by_layer.setdefault(s["layer"], []).append(s)
    for name, r in rows.items():
        bad += _check_layer(name, r.neurons + r.relays, r.memory_bits, r.axons, by_layer.get(name, []))
        if isinstance(placement, Placement) and name in placement.fanin_cum:
            cum = placement.fanin_cum[name]
            for s in by_layer.get(name, []):
                a, b = s["neurons"]
                if 0 <= a < b <= len(cum) - 1 and s["synaptic_bits"] != int(cum[b] - cum[a]) * placement.weight_bits:
                    bad.append(f"{name} on chip {s['chip']} core {s['core']}: {s['synaptic_bits']} synaptic bits, "
                               f"but its targets' fan-in needs {int(cum[b] - cum[a]) * placement.weight_bits}")
    bad += _check_cores(p["cores"], lim)
    if bad:
        raise PlacementError(f"invalid placement: {'; '.join(bad[:8])}" + (f"; and {len(bad) - 8} more"
                                                                          if len(bad) > 8 else ""))


def _check_layer(name: str, n: int, bits: int, axons: int, slots: list[dict]) -> list[str]:
    """Every compartment of the layer exactly once, its memory in full, its senders on some core."""
    bad = []
    ranges = sorted(tuple(s["neurons"]) for s in slots)
    pos = 0
    for a, b in ranges:
        if a != pos or b <= a:
            bad.append(f"{name}: compartments [{a}, {b}) " + ("overlap or repeat" if a < pos else "leave a gap")
                       + f" after {pos}")
        pos = max(pos, b)
    if pos != n:
        bad.append(f"{name}: {pos} of {n} compartments placed")
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
