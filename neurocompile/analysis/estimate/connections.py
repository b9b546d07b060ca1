"""The connections of one block as the estimate counts them, derived from a block of ``passes.blocks.blocks()``.

A block is a sink with the synaptic nodes whose currents reach it. Here each synaptic node becomes a connection
into the tensor it delivers to: the sink's input current, or a *relay* (the input of another connection of the
block, whose compartments pass the current on as graded spikes). A unit (the input, another block's sink) that
reaches such a tensor through no synaptic node is an identity connection (a residual shortcut); an inhibition
pool's windows are one more connection. Every connection is then measured exactly with its 0/1 structure
(:class:`IndicatorMaps`): fan-out per sender element, fan-in per target element, the weights its map stores and the
operations the ANN spends on it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import Group, op_of, pad2d, pair
from neurocompile.passes.blocks import Block


@dataclass
class Connection:
    """One connection: ``kind`` conv | dense (a synaptic node's weight map), window (a max pool's windows) or
    identity (a shortcut); ``node`` the synaptic or pool node (None for identity); ``target`` the tensor whose
    compartments it ends in; ``senders`` the tensors it reads (a unit's output or a relay tensor)."""

    kind: str
    node: str | None
    target: str
    senders: list[str]
    weights: int = 0
    connections: int = 0
    ann_macs: int = 0
    ann_adds: int = 0
    fanout: dict[str, np.ndarray] = field(default_factory=dict)   # sender tensor -> connections per element
    fanin: np.ndarray | None = None                                # per target element


@dataclass
class BlockConnections:
    """A block with its connections: ``target`` the tensor whose elements are the sink's compartments (a pool's
    output, else the sink's input current), ``relays`` the tensors whose compartments pass a current on."""

    sink: Node
    kind: str                    # "neuron" | "pool" | "readout"
    target: str
    synapses: list[str]          # the block's synaptic nodes (blocks(): in topological order)
    relays: list[str] = field(default_factory=list)
    conns: list[Connection] = field(default_factory=list)


def is_unit(n: Node) -> bool:
    """A sender of messages between blocks: the input or a sink (neuron, pool; a readout sends nothing)."""
    return not n.inputs or op_of(n).sink


def block_connections(g: Graph, bl: Block, ind: "IndicatorMaps") -> BlockConnections:
    """The measured connections of the block ``bl`` of the lowered graph ``g``."""
    sink = g.nodes[bl.sink]
    kind = "readout" if not op_of(sink).stateful else ("pool" if sink.op in Group.POOL else "neuron")  # LI: a neuron
    b = BlockConnections(sink, kind, sink.output if kind == "pool" else sink.inputs[0], list(bl.synapses))
    wiring = _Wiring(g, b, set(bl.synapses))
    if kind == "pool":
        wiring.connect("window", sink, sink.output, sink.inputs[0])
    else:
        wiring.into(b.target)
    for c in b.conns:
        _measure(g, ind, c)
    return b


class _Wiring:
    """Which of the block's synaptic nodes and which units feed each tensor of the block, through the nodes that
    join or move currents between them (Add, Flatten, Concat, ...)."""

    def __init__(self, g: Graph, b: BlockConnections, synapses: set[str]):
        self.g, self.b, self.synapses = g, b, synapses
        self.prod = g.producers()

    def feeders(self, t: str) -> list[Node]:
        """The block's synaptic nodes and the units whose outputs reach tensor ``t`` through no synaptic node."""
        out, stack, seen = [], [t], set()
        while stack:
            p = self.prod[stack.pop()]
            if p.name in seen:
                continue
            seen.add(p.name)
            if is_unit(p) or p.name in self.synapses:
                out.append(p)
            else:
                stack.extend(reversed(p.inputs))
        return out

    def into(self, target: str) -> None:
        """The connections ending in ``target`` (the sink input or a relay tensor)."""
        for f in self.feeders(target):
            if f.name in self.synapses:
                self.connect(None, f, target, f.inputs[0])
            else:
                self.b.conns.append(Connection("identity", None, target, [f.output]))

    def connect(self, kind: str | None, node: Node, target: str, t_in: str) -> None:
        """The connection of ``node`` (reading ``t_in``) into ``target``, after those into ``t_in`` if it is a relay."""
        fs = self.feeders(t_in)
        if any(f.name in self.synapses for f in fs):  # the input is a current of other connections: relays
            if t_in not in self.b.relays:
                self.b.relays.append(t_in)
                self.into(t_in)
            senders = [t_in]
        else:
            senders = list(dict.fromkeys(f.output for f in fs))
        if kind is None:
            kind = "conv" if node.op in Group.POOL else op_of(node).weight_map(node, self.g.shapes[t_in]).kind
        self.b.conns.append(Connection(kind, node.name, target, senders))


def _window_sum(node: Node, x: torch.Tensor) -> torch.Tensor:
    """Sum over each pooling window of ``x`` (padding and ceil-mode overhang contribute zero): with a 0/1
    input this counts the input elements each window holds (the op table's own windows, ``padded``)."""
    xp, (kh, kw), (sh, sw) = op_of(node).padded(node, x, 0.0)
    return xp.unfold(2, kh, sh).unfold(3, kw, sw).sum(dim=(-1, -2))


class IndicatorMaps:
    """Structural (0/1) versions of a block's maps: which input-output pairs a connection joins."""

    def __init__(self, g: Graph):
        self.g = g
        self.prod = g.producers()
        self._maps: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}

    def map(self, n: Node) -> Callable[[torch.Tensor], torch.Tensor]:
        if n.name not in self._maps:
            if n.op in Group.POOL:
                self._maps[n.name] = lambda x, n=n: _window_sum(n, x)
            else:
                wm = op_of(n).weight_map(n, self.g.shapes[n.inputs[0]])
                ind = torch.tensor((np.abs(wm.weight) > 0).astype(np.float64))
                if wm.kind == "dense":
                    self._maps[n.name] = lambda x, ind=ind: F.linear(x, ind)
                else:
                    def conv(x, wm=wm, ind=ind):
                        xp, pad = pad2d(x, wm.pads)
                        return F.conv2d(xp, ind, None, wm.stride, pad, wm.dilation, wm.groups)
                    self._maps[n.name] = conv
        return self._maps[n.name]

    def evaluate(self, sources: dict[str, torch.Tensor], target: str, only: str | None) -> torch.Tensor:
        """``target`` (batch 1) from ``sources`` through the connection ``only`` (its indicator map; None: through
        non-synaptic nodes only, an identity connection). The sources reach only ``only``'s input side and every
        other sender and connection contributes zero, so a sender that also reaches the target by another path
        (a shortcut around the connection) is not counted twice."""
        if only is None:
            return self._eval(dict(sources), target)
        n = self.g.nodes[only]
        y = self.map(n)(self._eval(dict(sources), n.inputs[0]))
        return self._eval({n.output: y}, target)

    def _eval(self, memo: dict[str, torch.Tensor], target: str) -> torch.Tensor:
        def val(t: str) -> torch.Tensor:
            if t in memo:
                return memo[t]
            p = self.prod[t]
            op = op_of(p)
            if is_unit(p) or op.synaptic:
                y = torch.zeros((1, *self.g.shapes[t]), dtype=torch.float64)
            else:
                xs = [val(i) for i in p.inputs]
                # adds and subtractions join tensors elementwise (integer gains and signs do not change which
                # pairs are joined); reshapes and concatenations move elements
                y = sum(xs[1:], xs[0]) if op.additive else op.linear(p, xs, {})
            memo[t] = y
            return y

        return val(target)


def _measure(g: Graph, ind: IndicatorMaps, c: Connection) -> None:
    """Fan-out per sender element, fan-in per target element and the connection count of ``c``."""
    fanin = None
    for s in c.senders:
        x = torch.ones((1, *g.shapes[s]), dtype=torch.float64, requires_grad=True)
        y = ind.evaluate({s: x}, c.target, c.node)
        if y.requires_grad:
            y.sum().backward()
            c.fanout[s] = x.grad[0].numpy().copy()
        else:
            c.fanout[s] = np.zeros(g.shapes[s])
        y = y.detach()[0].numpy()
        fanin = y if fanin is None else fanin + y
    c.fanin = fanin
    c.connections = int(round(float(fanin.sum())))
    shape_t = g.shapes[c.target]
    if c.kind == "identity":
        c.weights = int(shape_t[0])  # one gain per channel (per element of a vector)
        c.ann_adds = c.connections
        return
    n = g.nodes[c.node]
    op = op_of(n)
    in_shape = g.shapes[n.inputs[0]]
    if n.op in Group.POOL:
        kh, kw = pair(op.attr(n, "kernel"))
        c.weights = int(in_shape[0]) * kh * kw
        c.ann_adds = c.connections
        return
    wm = op.weight_map(n, in_shape)
    c.weights = int(wm.weight.size)
    out_elems = int(np.prod(g.shapes[n.output]))
    if op.homogeneous:  # pooling and scalings: one add (or multiply) per joined pair in the ANN
        c.ann_adds = c.connections
    elif wm.kind == "conv":
        c.ann_macs = out_elems * int(np.prod(wm.weight.shape[1:]))
    else:
        c.ann_macs = int(wm.weight.size)
