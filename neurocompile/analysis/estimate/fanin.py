"""Fan-in splitting: a layer whose single compartment needs more than one core (more distinct senders than a core's
input axons, or more synaptic memory than a core has) is computed as ``k`` partial sums.

The layer's senders (the channels of a (C, H, W) sender tensor, equal chunks of any other) are cut, in order,
into ``k`` groups; part ``i`` has one partial-sum compartment per compartment of the layer, which integrates the
connections from group ``i`` only and passes its current on as a graded spike; the layer's compartment then has
``k`` input connections of unit weight, one from each of its partial sums. Groups are sized so that one
compartment's connections from a group are at most half a core's input axons (and half its memory): a core then
holds several partial sums of neighbouring compartments, which share most of their senders.

ASSUMPTION, said wherever a split layer is reported: Loihi 2's programmable neurons pass a current on as a graded
spike (the relays of a block already do), one synaptic delay: every path through a split layer is one step longer
(all of the layer's fan-in goes through partial sums, so its inputs stay aligned), and the latency counts it; a
partial sum sends at most one message per step, and none in a step without input.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from neurocompile.analysis.estimate.connections import BlockConnections, IndicatorMaps
from neurocompile.ir import Graph

CHUNKS_MAX = 512  # units a flat sender tensor is cut into (a (C, H, W) tensor: its channels)


@dataclass
class SenderGroup:
    """One part's senders: a 0/1 mask over each sender tensor's elements (flat, C order)."""

    masks: dict[str, np.ndarray]


def _units(shape: tuple[int, ...]) -> list[np.ndarray]:
    """The sender elements that move between groups together: a channel of a (C, H, W) tensor, else a chunk."""
    n = int(np.prod(shape))
    if len(shape) == 3:
        per = int(shape[1] * shape[2])
        return [np.arange(c * per, (c + 1) * per) for c in range(int(shape[0]))]
    return [c for c in np.array_split(np.arange(n), min(n, CHUNKS_MAX)) if len(c)]


def incoming(g: Graph, ind: IndicatorMaps, b: BlockConnections, x: dict[str, np.ndarray],
             tensors: list[tuple[str, int, np.ndarray]]) -> np.ndarray:
    """Per compartment of block ``b`` (compartment order: ``tensors`` as the placement lays them out), the sum over
    its connections of ``x[sender][element]``: with 0/1 masks the connections from the masked senders (a part's
    fan-in); with messages per sender element, the messages that arrive."""
    out = []
    for t, _, order in tensors:
        y = np.zeros(int(np.prod(g.shapes[t])))
        for c in b.conns:
            if c.target != t:
                continue
            for s in c.senders:
                if s in x and np.any(x[s]):
                    src = torch.as_tensor(x[s], dtype=torch.float64).reshape(1, *g.shapes[s])
                    y += ind.evaluate({s: src}, c.target, c.node)[0].numpy().reshape(-1)
        out.append(y[order])
    return np.concatenate(out)


def sender_groups(g: Graph, ind: IndicatorMaps, b: BlockConnections, tensors: list[tuple[str, int, np.ndarray]],
                  cap: int) -> list[SenderGroup]:
    """The senders of ``b`` in groups whose connections into any one compartment are at most ``cap`` (each unit
    counted at its largest fan-in into one compartment: a bound on the group's), as few groups as that allows
    (units kept in order, the groups near equal)."""
    senders = list(dict.fromkeys(s for c in b.conns for s in c.senders))
    units: list[tuple[str, np.ndarray, float]] = []
    for s in senders:
        n = int(np.prod(g.shapes[s]))
        for u in _units(tuple(int(v) for v in g.shapes[s])):
            mask = np.zeros(n)
            mask[u] = 1.0
            units.append((s, u, float(incoming(g, ind, b, {s: mask}, tensors).max())))
    total = sum(w for _, _, w in units)
    if any(w > cap for _, _, w in units):
        return []  # one unit alone is over the cap: the caller refuses the layer
    share = total / max(1, math.ceil(total / cap))
    groups: list[list[tuple[str, np.ndarray, float]]] = [[]]
    load = 0.0
    for unit in units:
        if groups[-1] and (load + unit[2] > cap or load + unit[2] > share * 1.0001):
            groups.append([])
            load = 0.0
        groups[-1].append(unit)
        load += unit[2]
    out = []
    for grp in groups:
        masks = {s: np.zeros(int(np.prod(g.shapes[s]))) for s in senders}
        for s, u, _ in grp:
            masks[s][u] = 1.0
        out.append(SenderGroup({s: m for s, m in masks.items() if m.any()}))
    return out
