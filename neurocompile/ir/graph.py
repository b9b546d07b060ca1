"""The graph IR: a small, typed dataflow graph of :class:`Node` s over named tensors.

Conventions (they keep every pass and target simple):
- every node has exactly one output tensor, named ``node.output``;
- every tensor has a leading batch dimension that the IR leaves symbolic: ``Graph.shapes`` stores
  per-sample shapes only (``(3, 32, 32)`` for an NCHW image);
- parameters are numpy arrays on the node, attributes are JSON-able scalars/lists;
- ``Graph.nodes`` is the source of truth; ``Graph.nx()`` builds the networkx view used for
  ordering and cycle checks.
"""
from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from typing import Any, Iterator

import networkx as nx
import numpy as np

from neurocompile.errors import ModelLoadError, ValidationError
from neurocompile.ir.schedule import WakeSleepSchedule

Shape = tuple[int, ...]


def is_saved_ir(path: str) -> bool:
    """A path names a saved IR (``Graph.save``'s .json + .npz pair), not an ONNX file, by its extension."""
    return str(path).lower().endswith(".json")


@dataclass
class Node:
    """One operation: ``op`` reads ``inputs`` (tensor names) and writes the tensor ``output``."""

    name: str
    op: str
    inputs: list[str]
    output: str
    attrs: dict[str, Any] = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))


@dataclass
class Graph:
    """A network: nodes keyed by name (insertion order is kept), per-sample tensor shapes,
    output tensor names, free-form metadata and, after scheduling, a wake/sleep schedule."""

    name: str = "graph"
    nodes: dict[str, Node] = field(default_factory=dict)
    shapes: dict[str, Shape] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    schedule: WakeSleepSchedule | None = None  # a dict given for it (a saved IR's form) is converted

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "schedule" and value is not None and not isinstance(value, WakeSleepSchedule):
            value = WakeSleepSchedule.from_dict(dict(value))
        object.__setattr__(self, name, value)

    # ---- construction -------------------------------------------------------------------
    def add(self, node: Node, shape: Shape | None = None) -> Node:
        if node.name in self.nodes:
            raise ValidationError(f"duplicate node name '{node.name}'", node=node.name, op=node.op)
        self.nodes[node.name] = node
        if shape is not None:
            self.shapes[node.output] = tuple(int(d) for d in shape)
        return node

    def copy(self) -> "Graph":
        return copy.deepcopy(self)

    # ---- queries ------------------------------------------------------------------------
    @property
    def input_nodes(self) -> list[Node]:
        from neurocompile.ir.ops import Group  # ops imports ir: import here

        return [n for n in self.nodes.values() if n.op in Group.INPUT]

    def producers(self) -> dict[str, Node]:
        """Map tensor name -> the node writing it."""
        return {n.output: n for n in self.nodes.values()}

    def consumers(self) -> dict[str, list[Node]]:
        """Map tensor name -> nodes reading it (a node reading it twice appears once)."""
        out: dict[str, list[Node]] = {n.output: [] for n in self.nodes.values()}
        for n in self.nodes.values():
            for t in dict.fromkeys(n.inputs):
                out.setdefault(t, []).append(n)
        return out

    def nx(self) -> nx.DiGraph:
        """networkx view: one vertex per node name, an edge per producer -> consumer."""
        g = nx.DiGraph()
        prod = self.producers()
        for n in self.nodes.values():
            g.add_node(n.name)
            for t in n.inputs:
                if t in prod:
                    g.add_edge(prod[t].name, n.name)
        return g

    def topo(self) -> list[Node]:
        """Nodes in a topological order that is stable (ties broken by insertion order)."""
        order = {name: i for i, name in enumerate(self.nodes)}
        try:
            names = nx.lexicographical_topological_sort(self.nx(), key=order.__getitem__)
            return [self.nodes[k] for k in names]
        except nx.NetworkXUnfeasible as exc:
            cycle = nx.find_cycle(self.nx())
            raise ValidationError(f"graph has a cycle through {[a for a, _ in cycle]}") from exc

    def __iter__(self) -> Iterator[Node]:
        return iter(self.topo())

    def remove(self, name: str, replace_with: str | None = None) -> None:
        """Delete node ``name``; if ``replace_with`` is given, readers of its output read that tensor."""
        node = self.nodes.pop(name)
        if replace_with is not None:
            self.rename_tensor(node.output, replace_with)
        self.shapes.pop(node.output, None)

    def rename_tensor(self, old: str, new: str) -> None:
        """Make every reader of ``old`` (and the graph outputs) read ``new`` instead."""
        for n in self.nodes.values():
            n.inputs = [new if t == old else t for t in n.inputs]
        self.outputs = [new if t == old else t for t in self.outputs]

    def unique_name(self, base: str) -> str:
        taken = set(self.nodes) | set(self.shapes)
        if base not in taken:
            return base
        i = 1
        while f"{base}_{i}" in taken:
            i += 1
        return f"{base}_{i}"

    def num_params(self) -> int:
        return sum(n.num_params() for n in self.nodes.values())

    # ---- checks -------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise :class:`ValidationError` unless the IR is consistent: known ops with their params,
        attributes within their op's rules (``ops.check_attrs``: before anything computes with them), unique
        outputs, every input produced, outputs produced, no cycle, stored shapes equal to the shapes the op table
        infers."""
        from neurocompile.ir.ops import OPS, Group, check_attrs, infer_shape  # ops imports ir: import here

        if not self.nodes:
            raise ValidationError("graph is empty")
        prod: dict[str, str] = {}
        for n in self.nodes.values():
            if n.op not in OPS:
                raise ValidationError("unknown op", node=n.name, op=n.op)
            if n.output in prod:
                raise ValidationError(f"tensor '{n.output}' written by two nodes ('{prod[n.output]}' too)",
                                      node=n.name, op=n.op)
            prod[n.output] = n.name
            missing = [p for p in OPS[n.op].params if p not in n.params]
            if missing:
                raise ValidationError(f"missing parameters {missing}", node=n.name, op=n.op)
            odd = [k for k, v in n.params.items() if np.asarray(v).dtype.kind not in "biuf"]
            if odd:  # strings or objects (a hand-made .npz) would fail in the checks below
                raise ValidationError(f"parameter(s) {odd} are not arrays of numbers", node=n.name, op=n.op)
            broken = [k for k, v in n.params.items() if not np.isfinite(v).all()]
            if broken:  # a pass derived NaN/inf (e.g. folding a degenerate BatchNorm): never compute with it
                raise ValidationError(f"parameter(s) {broken} hold non-finite values", node=n.name, op=n.op)
            check_attrs(n)
        for n in self.nodes.values():
            for t in n.inputs:
                if t not in prod:
                    raise ValidationError(f"input tensor '{t}' is produced by no node", node=n.name, op=n.op)
        for t in self.outputs:
            if t not in prod:
                raise ValidationError(f"graph output '{t}' is produced by no node")
        if not self.outputs:
            raise ValidationError("graph has no outputs")
        for n in self.topo():  # raises on cycles; producers first, so every input's shape was checked
            have = self.shapes.get(n.output)
            if have is None:
                raise ValidationError(f"no shape stored for tensor '{n.output}'", node=n.name, op=n.op)
            if not isinstance(have, (tuple, list)) or not all(
                    isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in have):
                shown = list(have) if isinstance(have, (tuple, list)) else have
                raise ValidationError(f"the shape stored for tensor '{n.output}' is {shown!r}, not positive integers",
                                      node=n.name, op=n.op)
            try:
                want = infer_shape(n, [self.shapes[t] for t in n.inputs]) if n.op not in Group.INPUT else None
            except Exception as exc:  # noqa: BLE001 - the op refuses its inputs (a weight of the wrong shape, ...)
                raise ValidationError(f"cannot infer the output shape ({type(exc).__name__}: "
                                      f"{' '.join(str(exc).split())})", node=n.name, op=n.op) from None
            if want is not None and tuple(want) != tuple(have):
                raise ValidationError(f"stored shape {have} != inferred {tuple(want)}", node=n.name, op=n.op)
            for k in OPS[n.op].varying(n):  # per-neuron parameters: one value per neuron of the layer, or broadcast
                v = np.asarray(n.params[k])
                try:
                    fits = np.broadcast_shapes(v.shape, tuple(have)) == tuple(have)
                except ValueError:
                    fits = False
                if not fits:
                    raise ValidationError(f"per-neuron {k} of shape {v.shape} does not broadcast to the layer's shape "
                                          f"{tuple(have)}", node=n.name, op=n.op)

    # ---- display ------------------------------------------------------------------------
    def summary(self) -> str:
        """A readable table: the model's module, node, op, inputs, output shape, parameter count, key attributes."""
        from neurocompile.ir.ops import OPS  # ops imports ir: import here

        rows = [("module", "node", "op", "inputs", "shape", "params", "attributes")]
        for n in self.topo():
            attrs = ", ".join([f"{k}={_short(v)}" for k, v in n.attrs.items()]
                              + [f"{k}={float(np.min(n.params[k])):.4g}..{float(np.max(n.params[k])):.4g} per neuron"
                                 for k in OPS[n.op].varying(n)])
            rows.append((module_name(n.name), n.name, n.op, ", ".join(n.inputs),
                         "x".join(["N", *map(str, self.shapes.get(n.output, ()))]), f"{n.num_params():,}", attrs))
        widths = [min(max(len(r[i]) for r in rows), 40) for i in range(6)]
        lines = []
        for j, r in enumerate(rows):
            cells = [r[i][:40].ljust(widths[i]) for i in range(6)]
            lines.append("  ".join(cells + [r[6]]).rstrip())
            if j == 0:
                lines.append("-" * (sum(widths) + 14 + 10))
        lines.append(f"{len(self.nodes)} nodes, {self.num_params():,} parameters, outputs: {', '.join(self.outputs)}")
        if self.schedule is not None:
            s = self.schedule
            lines.append(f"schedule: T_wake={s.t_wake}, T={s.steps}, delay/layer={s.synapse_delay}")
        return "\n".join(lines)

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str) -> None:
        """Write ``path`` (JSON structure) and ``path`` with ``.npz`` (parameters), atomically: both
        files appear together or (on any error or interrupt) neither does, and no temp file is left."""
        from neurocompile.atomic import write_atomic

        base = os.path.splitext(path)[0]
        doc, arrays = self.to_doc()
        text = json.dumps(doc, indent=1, default=_json_default).encode()  # fails before any file exists
        write_atomic({base + ".json": lambda f: f.write(text),
                      base + ".npz": lambda f: np.savez(f, **arrays)})  # a file object: savez adds no suffix

    def to_doc(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The saved form: a JSON-able structure and the parameters by ``node/param`` (what ``from_saved``
        reads; the .json + .npz pair and the artifact file both hold it)."""
        doc = {
            "format": "neurocompile-ir/1",
            "name": self.name,
            "outputs": self.outputs,
            "meta": self.meta,
            "schedule": None if self.schedule is None else self.schedule.to_dict(),
            "shapes": {k: list(v) for k, v in self.shapes.items()},
            "nodes": [{"name": n.name, "op": n.op, "inputs": n.inputs, "output": n.output, "attrs": n.attrs,
                       "params": sorted(n.params)} for n in self.nodes.values()],
        }
        arrays = {f"{n.name}/{k}": v for n in self.nodes.values() for k, v in n.params.items()}
        return json.loads(json.dumps(doc, default=_json_default)), arrays

    @classmethod
    def load(cls, path: str) -> "Graph":
        base = os.path.splitext(path)[0]
        try:
            with open(base + ".json") as f:
                doc = json.load(f)
            arrays = np.load(base + ".npz")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"cannot read saved IR: {exc}", file=path) from exc
        return cls.from_saved(doc, arrays, path)

    @classmethod
    def from_saved(cls, doc: Any, arrays: Any, path: str) -> "Graph":
        """The graph of a saved form (``to_doc``), checked: a damaged one is a ModelLoadError naming ``path``."""
        if not isinstance(doc, dict) or doc.get("format") != "neurocompile-ir/1":
            raise ModelLoadError("not a neurocompile IR file", file=path)
        try:
            g = cls._from_doc(doc, arrays)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"the saved IR is damaged ({type(exc).__name__}: {exc})", file=path) from None
        try:
            g.validate()
        except ValidationError as err:
            raise err.at(path)
        return g

    @classmethod
    def _from_doc(cls, doc: dict, arrays) -> "Graph":
        if doc.get("schedule") is not None:
            try:
                WakeSleepSchedule.from_dict(doc["schedule"]).check()
            except (TypeError, ValueError) as exc:
                raise ValueError(f"its schedule is invalid: {exc}") from None
        g = cls(name=doc["name"], outputs=doc["outputs"], meta=doc["meta"], schedule=doc["schedule"])
        g.shapes = {k: tuple(v) for k, v in doc["shapes"].items()}
        for d in doc["nodes"]:
            if not isinstance(d["attrs"], dict) or not isinstance(d["params"], list):
                raise TypeError(f"node {d['name']!r}: its attrs must be an object and its params a list")
            params = {k: arrays[f"{d['name']}/{k}"] for k in d["params"]}
            g.nodes[d["name"]] = Node(d["name"], d["op"], d["inputs"], d["output"], d["attrs"], params)
        return g


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_short(x) for x in v) + "]"
    return str(v)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(type(o))


def module_name(node: str) -> str:
    """The exporting model's own module path of a node, from a torch-style ONNX scope name: "/features/features.2/Floor"
    is "features.2", "/layers/layers.1/a1/Floor" is "layers.1.a1" (a component that extends the path so far replaces
    it, another one is appended), "/2/Floor" is "2". A name without a scope (the input, a hand-built graph) is kept."""
    parts = [p for p in node.split("/") if p]
    if not node.startswith("/") or len(parts) < 2:
        return node
    path = ""
    for p in parts[:-1]:
        path = p if not path or p.startswith(path + ".") else f"{path}.{p}"
    return path
