"""NIR -> IR: ``load_nir`` and the walk over a NIR graph that gives each node to its handler (a table from NIR
node type to handler: :mod:`.layers`, :mod:`.neurons`).

NIR (the Neuromorphic Intermediate Representation, nir 1.0.8) stores a network as a graph of continuous-time
nodes: affine maps, convolutions, pools, and neurons written as ODEs (LIF: tau dv/dt = (v_leak - v) + r I;
spike when v > v_threshold, then v <- v_reset; IF: dv/dt = r I). Edges are identities and several edges into
one node are summed. A simulator must choose a time step ``dt`` and a discretization; neurocompile makes both
explicit options and records what it chose in ``graph.meta["nir"]``.

See :mod:`.discretize` for the discretizations, :mod:`.neurons` for leaky-integrator readouts and per-neuron
parameters, :mod:`.extension` for files neurocompile wrote.

Node mapping (nothing lossy is mapped; what has no exact IR form is refused naming the node):

===============  ===========================================================================================
NIR              IR
===============  ===========================================================================================
Input / Output   Input / a graph output (several edges into an Output: an Add); only Output nodes are outputs, in
                 the file's order of them; a node that reaches no Output node is dropped (``meta['nir']['unused']``)
Affine / Linear  Dense (weight (out, in), bias / none); the input must be a vector of ``in`` elements
Scale            Mul by the scale array
Conv2d           Conv; padding int, pair, ``"valid"`` or ``"same"`` (PyTorch's rule: the odd pad at the end;
                 stride 1 only, as in PyTorch); ``input_shape`` None is inferred, a given one is checked;
                 an all-zero bias (what snnTorch writes for bias=False) is dropped
Conv1d           Reshape (C, L) -> (C, 1, L), Conv with a (1, k) kernel, Reshape back
SumPool2d        Conv, depthwise with weights 1 (window sums)
AvgPool2d        AvgPool (padding 0 only: NIR does not say whether padded zeros count); one carrying
                 neurocompile's max-pool record: that MaxPool / InhibitionMaxPool (:mod:`.extension`)
Flatten          Flatten (all dims) or Reshape; dims exclude the batch, negative ones count from the end
Delay            StepDelay of round(delay / dt) steps (a whole number, the same for every element; 0: nothing):
                 the schedule delays the node's output by it and, unlike a target's synaptic delays, never
                 balances it away; spiking students only
Threshold        LIF with beta 0 (U = X, F = [X > threshold]): the stateless Heaviside, exactly
IF               LIF with beta 1 (hard reset to 0) after a Mul by g unless g = 1
LIF              LIF (beta, threshold; hard reset to 0) after a Mul by g unless g = 1
CubaLIF          CubaLIF (alpha, beta, threshold; hard reset to 0) after a Mul by g_syn g_mem unless it is 1
LI               LI (beta; no spikes, it sends its membrane) after a Mul by g unless g = 1
CubaLI           LI with a synaptic current (alpha, beta) after a Mul by g_syn g_mem unless it is 1
I                LI with beta 1 after a Mul by r dt unless it is 1
NIRGraph         flattened (its nodes named ``sub.node``); edges into it go to its Input node(s)
fan-in           Add of the edges into a node (all the same shape)
===============  ===========================================================================================

Refused: unknown node types, malformed nodes, inconsistent shapes, a graph without Output node, an edge given twice
(NIR's edges are a set, as nir's own ``validate_structure`` says), a stride, dilation, kernel size, group count or
padding that is no integer or below 1 (padding 0), names or strings that are not UTF-8, HDF5 links nir.write does not
write, and arrays larger than :data:`neurocompile.limits.MAX_FILE_ARRAY_ELEMENTS` (each dataset's declared size is
checked before it is read), a damaged HDF5 file (any exception h5py raises; a structure on which the HDF5 library
loops for ever is caught by a forked probe with a timeout, :mod:`neurocompile.hdf5_probe`), a NaN or infinity in any
numeric field of any node, used or not (+inf only in a time constant, and in r / w_in beside an infinite one)
(ModelLoadError); attribute values outside the op table's rules, e.g. an extension record's
CIF gamma -1 or levels 2.5 (``ops.check_attrs``, ValidationError); recurrent cycles, non-zero
v_leak, v_reset != 0, forward Euler with dt > tau (or tau_syn, tau_mem; for any neuron), AvgPool2d padding, a Delay
that is no whole number of steps or differs between elements, a graph with leaky integrators but no spiking neuron
(ConversionError); later, fixed point for CubaLIF and LI (Lava's bit-accurate models have none) and for parameters
that differ from neuron to neuron.

A NIR file carries no number of time steps: ``time_steps`` (T) goes to ``meta["time_steps"]``, what the idsnn
pipeline schedules (T steps of direct input); without it conversion refuses and asks for T.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable

import networkx as nx
import numpy as np

from neurocompile import limits
from neurocompile.errors import ConversionError, ModelLoadError, NeurocompileError
from neurocompile.frontends.nir import layers, neurons
from neurocompile.frontends.nir.discretize import DEFAULT_DT, DISCRETIZATIONS, GAIN_TOLERANCE, RULES
from neurocompile.frontends.nir.extension import AMPLITUDE_TYPE, PASS, ExtensionReader, graph_record
from neurocompile.frontends.nir.fields import as_array, check_fields, ints
from neurocompile.frontends.nir.reader import read_nir
from neurocompile.ir import Graph, Node, Shape
from neurocompile.ir.ops import check_attrs, infer_shape

# NIR node type -> its handler, (importer, k, node, x, shape) -> the IR tensor of the node's output (Input, Output and
# the pass-throughs are the walk's own)
HANDLERS: dict[str, Callable[..., str]] = {**layers.HANDLERS, **neurons.HANDLERS}


def load_nir(path: str, dt: float | None = None, discretization: str = "snntorch",
             time_steps: int | None = None) -> Graph:
    """Read a NIR file (HDF5, written by ``nir.write``) and import it (:func:`import_nir`). Raises
    :class:`ModelLoadError` for an unreadable or inconsistent file and :class:`ConversionError` for a NIR graph
    that has no exact IR form, both naming the file and, where one is involved, the node and its NIR type."""
    if not os.path.isfile(path):
        raise ModelLoadError("no such file", file=path)
    try:
        graph, version = read_nir(path)
        g = import_nir(graph, dt=dt, discretization=discretization, time_steps=time_steps,
                       name=os.path.splitext(os.path.basename(path))[0])
    except NeurocompileError as err:
        raise err.at(path)
    g.meta["nir"]["version"] = version
    return g


def import_nir(graph: Any, dt: float | None = None, discretization: str = "snntorch", time_steps: int | None = None,
               name: str = "nir") -> Graph:
    """Build the IR of a ``nir.NIRGraph`` (see the module docstring for the mapping and conventions). ``dt`` None:
    the time step a file neurocompile wrote records (its extension's ``dt``), else :data:`DEFAULT_DT`
    (``meta['nir']['dt_from']`` says which)."""
    dt_from = "given"
    if dt is None:
        recorded = graph_record(graph).get("dt")
        dt, dt_from = (recorded, "the file (neurocompile's extension)") if recorded is not None else \
            (DEFAULT_DT, "default (snnTorch's)")
    if discretization not in DISCRETIZATIONS:
        raise ConversionError(f"unknown NIR discretization {discretization!r} (choose from "
                              f"{', '.join(DISCRETIZATIONS)})")
    try:
        dt = float(dt)
    except (TypeError, ValueError):
        raise ConversionError(f"dt must be a number of seconds, got {dt!r}") from None
    if not (math.isfinite(dt) and dt > 0):
        raise ConversionError(f"dt must be a positive time step in seconds, got {dt!r}")
    if time_steps is not None and (int(time_steps) != time_steps or int(time_steps) < 1):
        raise ConversionError(f"time_steps must be a positive integer, got {time_steps!r}")
    g = Importer(graph, dt, discretization, time_steps, name).run()
    g.meta["nir"]["dt_from"] = dt_from
    return g


class Importer(ExtensionReader, layers.Layers, neurons.Neurons):
    """One import: the NIR graph flattened (subgraphs inlined), checked and pruned, then walked in topological order,
    each node given to its handler (:data:`HANDLERS`), which adds the IR nodes it maps to."""

    def __init__(self, graph: Any, dt: float, discretization: str, time_steps: int | None, name: str):
        import nir

        if not isinstance(graph, nir.NIRGraph):
            raise ModelLoadError(f"expected a nir.NIRGraph, got {type(graph).__name__}")
        self.nir = nir
        self.dt, self.disc = dt, discretization
        self.out = Graph(name=name)
        self.out.meta = {
            "producer": "nir",
            "encoding": "direct",
            "nir": {"dt": dt, "discretization": discretization, "rule": RULES[discretization],
                    "reset": "hard reset to 0 (NIR v_reset = 0; anything else is refused)",
                    "gain_tolerance": GAIN_TOLERANCE, "neurons": {}},
        }
        if time_steps is not None:
            self.out.meta["time_steps"] = int(time_steps)
        self.nodes: dict[str, Any] = {}     # flattened name -> NIR node (or PASS marker tuple)
        self.types: dict[str, str] = {}     # flattened name -> NIR type name
        self.edges: list[tuple[str, str]] = []
        self._flatten(graph, "")
        self._check_edges()
        self.tensor: dict[str, str] = {}    # flattened NIR name -> IR tensor carrying its output
        self.neurons: dict[str, Any] = self.out.meta["nir"]["neurons"]
        self.membrane_outputs: dict[str, str] = {}  # IR LI node -> its NIR node (it sends its membrane)
        self.exact: dict[str, dict] = {}    # node -> neurocompile's record of the IR node it was written from
        self.gated: dict[str, Any] = {}     # layer -> the NIR node of its wake-gated bias (CASC extension)
        self.ext = self._extension(graph, time_steps)
        self._prune()

    # -- structure -------------------------------------------------------------------------
    def _flatten(self, g: Any, prefix: str) -> tuple[list[str], list[str]]:
        """Add ``g``'s nodes (subgraphs recursively, names prefixed) and edges; return its Input and Output
        node names. A subgraph's Input/Output nodes become pass-through nodes."""
        nir = self.nir
        ports: dict[str, tuple[list[str], list[str]]] = {}
        ins, outs = [], []
        for key, node in g.nodes.items():
            full = f"{prefix}{key}"
            if isinstance(node, nir.NIRGraph):
                ports[key] = self._flatten(node, f"{full}.")
                continue
            if full in self.nodes:
                raise ModelLoadError("two NIR nodes flatten to the same name", node=full, op=type(node).__name__)
            self.nodes[full] = node
            self.types[full] = type(node).__name__
            if isinstance(node, nir.Input):
                ins.append(full)
            elif isinstance(node, nir.Output):
                outs.append(full)
        if prefix:  # a subgraph's ports are identities inside the outer graph
            for p in ins + outs:
                self.types[p] = f"{self.types[p]} of subgraph '{prefix[:-1]}'"
                self.nodes[p] = (PASS, self.nodes[p])
        for a, b in g.edges:
            src = self._endpoint(g, prefix, ports, str(a), out=True)
            dst = self._endpoint(g, prefix, ports, str(b), out=False)
            self.edges.append((src, dst))
        return ins, outs

    def _check_edges(self) -> None:
        """NIR's edges are a set (nir's own ``validate_structure`` refuses a repeated one): an edge given twice would be
        an input summed twice by one reading and once by another, so it is refused, not guessed."""
        seen: set[tuple[str, str]] = set()
        for a, b in self.edges:
            if (a, b) in seen:
                raise ModelLoadError(f"the edge '{a}' -> '{b}' is given twice; NIR's edges are a set (nir refuses a "
                                     "duplicate edge too)", node=b, op=self.types[b],
                                     hint="Remove the repeated edge; to add an input twice, put a Scale of 2 on it")
            seen.add((a, b))

    def _prune(self) -> None:
        """Only the graph's NIR Output nodes are its outputs. A node from which no Output node is reached (a dead
        branch) affects no output: it is dropped, and listed in ``meta['nir']['unused']``. (nir's ``infer_types``
        adds an Output node after every leaf when it builds a graph; a file without one says the leaf is no output.)
        Input nodes stay: they are the graph's inputs."""
        outs = [k for k, v in self.nodes.items() if isinstance(v, self.nir.Output)]
        if not outs:
            raise ModelLoadError("the NIR graph has no Output node: NIR's outputs are its Output nodes",
                                 hint="Add an Output node after each result (nir.NIRGraph.infer_types adds one per "
                                      "leaf)")
        back = nx.DiGraph()
        back.add_nodes_from(self.nodes)
        back.add_edges_from((b, a) for a, b in self.edges)
        live = set(outs).union(*(nx.descendants(back, k) for k in outs))
        dead = [k for k, v in self.nodes.items() if k not in live and not isinstance(v, self.nir.Input)]
        if dead:
            self.out.meta["nir"]["unused"] = {
                "nodes": {k: self.types[k] for k in dead},
                "rule": "no Output node is reached from these nodes: they affect no output and were dropped"}
            self.nodes = {k: v for k, v in self.nodes.items() if k not in dead}
            self.edges = [(a, b) for a, b in self.edges if a in self.nodes and b in self.nodes]

    def _endpoint(self, g: Any, prefix: str, ports: dict, key: str, out: bool) -> str:
        if key in ports:  # the subgraph itself: its single Output (source) or Input (destination)
            names = ports[key][1] if out else ports[key][0]
            if len(names) != 1:
                raise ModelLoadError(f"an edge {'from' if out else 'into'} subgraph '{prefix}{key}' must name one of "
                                     f"its {len(names)} {'Output' if out else 'Input'} nodes ('{prefix}{key}.NAME')",
                                     node=f"{prefix}{key}", op="NIRGraph")
            return names[0]
        full = f"{prefix}{key}"
        if full not in self.nodes:
            raise ModelLoadError(f"an edge names node '{key}', which the graph does not have", node=full)
        return full

    def _order(self) -> list[str]:
        dg = nx.DiGraph()
        dg.add_nodes_from(self.nodes)
        dg.add_edges_from(self.edges)
        try:
            cycle = nx.find_cycle(dg)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            path = " -> ".join([a for a, _ in cycle] + [cycle[0][0]])
            first = cycle[0][0]
            raise ConversionError(f"the NIR graph is recurrent (cycle {path}); neurocompile compiles feed-forward "
                                  "networks only", node=first, op=self.types[first],
                                  hint="Unroll or remove the recurrent connection (e.g. snnTorch's RLeaky/RSynaptic)")
        order = {k: i for i, k in enumerate(self.nodes)}
        return list(nx.lexicographical_topological_sort(dg, key=order.__getitem__))

    # -- driver ----------------------------------------------------------------------------
    def run(self) -> Graph:
        nir = self.nir
        order = self._order()
        preds: dict[str, list[str]] = {k: [] for k in self.nodes}
        for a, b in self.edges:
            preds[b].append(a)
        inputs = [k for k in order if isinstance(self.nodes[k], nir.Input)]
        if not inputs:
            raise ModelLoadError("the NIR graph has no Input node")
        outputs: list[str] = []
        for k in order:
            node, typ = self.nodes[k], self.types[k]
            if isinstance(node, nir.Input):
                if preds[k]:
                    raise ModelLoadError("an Input node has incoming edges", node=k, op=typ)
                self._input(k, node)
                continue
            if not preds[k]:
                raise ModelLoadError("the node has no incoming edge and is not an Input", node=k, op=typ)
            x, shape = self._fan_in(k, typ, preds[k])
            if isinstance(node, tuple) and node[0] == PASS:
                if self.types[k] == AMPLITUDE_TYPE:
                    check_fields(k, "Scale", node[1])
                    self._check_amplitude(k, node[1], x)
                self.tensor[k] = x
            elif isinstance(node, nir.Output):
                self._check_declared(k, typ, node.output_type.get("output"), shape, "output")
                self.tensor[k] = x
                outputs.append(k)
            else:
                handler = HANDLERS.get(typ)
                if handler is None:  # a type nir knows but neurocompile cannot map yet
                    raise ConversionError(f"NIR {typ} neurons are not supported by neurocompile yet", node=k, op=typ,
                                          hint="Supported neurons: LIF, IF, Threshold, CubaLIF (hard reset to "
                                               "0); LI, CubaLI, I")
                self.tensor[k] = handler(self, k, node, x, shape)  # (only Output nodes are outputs: see _prune)
                check_fields(k, typ, node)  # after the handler: its own messages come first for the fields it uses
        if not outputs:
            raise ModelLoadError("the NIR graph has no Output node reached from its inputs")
        outputs.sort(key=list(self.nodes).index)  # in the file's order of its Output nodes, whatever the graph's shape
        for k in outputs:
            self.out.meta["nir"].setdefault("outputs", {}).setdefault(self.tensor[k], k)  # its name, for the export
        self.out.outputs = list(dict.fromkeys(self.tensor[k] for k in outputs))
        self._check_neurons()
        membranes = [t for t in self.out.outputs if t in self.membrane_outputs]
        if membranes:
            self.out.meta["nir"]["readout"] = {
                "membrane_outputs": membranes,
                "rule": "an LI / CubaLI / I output sends its membrane V each step: the run's readout (SimResult.output) "
                        "is the mean of V over the T steps, api.readout_membrane(graph, result) gives V after every "
                        "step (its last row: the membrane after the last step)"}
        self.out.validate()
        return self.out

    def _shape(self, t: str) -> Shape:
        return self.out.shapes[t]

    def _add(self, name: str, op: str, inputs: list[str], attrs: dict, params: dict, nir_name: str, typ: str) -> str:
        """Add one IR node (its output tensor named like it); the shape the op table infers is stored."""
        node = Node(self.out.unique_name(name), op, inputs, "", attrs,
                    {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()})
        node.output = node.name
        check_attrs(node)  # the op's attribute rules (Graph.validate's check), before shape inference uses them
        try:
            shape = infer_shape(node, [self._shape(t) for t in inputs])
        except Exception as exc:  # noqa: BLE001 - the op's own shape rule refuses the input
            raise ModelLoadError(f"inconsistent shapes: the {typ} node cannot take an input of shape "
                                 f"{[self._shape(t) for t in inputs]} ({exc})", node=nir_name, op=typ) from None
        if math.prod(shape) > limits.MAX_FILE_ARRAY_ELEMENTS:  # before a per-neuron parameter is spread over it
            raise ModelLoadError(f"the {typ} node's output has shape {tuple(shape)}, {math.prod(shape):,} elements per "
                                 f"sample: over the limit of {limits.MAX_FILE_ARRAY_ELEMENTS:,} "
                                 "(neurocompile.limits.MAX_FILE_ARRAY_ELEMENTS)", node=nir_name, op=typ)
        self.out.add(node, shape)
        return node.output

    def _fan_in(self, k: str, typ: str, srcs: list[str]) -> tuple[str, Shape]:
        tensors = [self.tensor[s] for s in srcs]
        shapes = [self._shape(t) for t in tensors]
        if len(tensors) == 1:
            return tensors[0], shapes[0]
        if len(set(shapes)) > 1:
            listing = ", ".join(f"'{s}' {sh}" for s, sh in zip(srcs, shapes))
            raise ModelLoadError(f"inconsistent shapes: the {len(srcs)} edges into the node carry {listing}; NIR sums "
                                 "the edges into a node, which needs one shape", node=k, op=typ)
        return self._add(f"{k}.sum", "Add", tensors, {}, {}, k, typ), shapes[0]

    def _check_declared(self, k: str, typ: str, declared: Any, shape: Shape, what: str) -> None:
        """A shape the file declares (None or () when it declares none, as for snnTorch's scalar neurons) must be
        the one computed."""
        if declared is None:
            return
        d = tuple(ints(declared, None, k, typ, f"the declared {what} shape", 0)) if as_array(declared).size else ()
        if d and d != tuple(shape):
            raise ModelLoadError(f"inconsistent shapes: the file declares the {what} shape {d}, the graph computes "
                                 f"{tuple(shape)}", node=k, op=typ)

