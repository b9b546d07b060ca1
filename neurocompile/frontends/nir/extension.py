"""The schema of neurocompile's NIR extension (format ``neurocompile-nir/1``), shared by its writer
(:mod:`neurocompile.exporters.nir`) and its reader: the metadata key, the graph's record and its checks, the parts the
extension adds beside the network's nodes (:class:`Part`: wake gates, gated biases, amplitude Scales) and the NIR
types each recorded op is written as; and the importer's reading of it.

Files neurocompile wrote (graph metadata ``neurocompile``, format ``neurocompile-nir/1``; see
:mod:`neurocompile.exporters.nir`) come back as the IR they were written from: a LIF takes the beta its
metadata records when the file's tau is dt / (1 - beta) at the dt given (else the discretization's beta), a CubaLIF,
LI or CubaLI its alpha and beta likewise; the CASC
extension's IF nodes become the CIF / IF neurons their metadata records, their amplitude Scales are pass-throughs,
the wake gate Inputs and bias branches go (each bias back onto its Conv2d/Affine/Linear), an AvgPool2d written
for a GlobalAvgPool is one again, one written for a max pool (the extension's labelled approximation) is the
MaxPool or InhibitionMaxPool its record names with the record's attributes (kernel, stride, pads -inf, ceil_mode;
they must have the AvgPool2d's kernel, stride and padding, else ModelLoadError). The fields such a record makes
redundant must still be what the exporter writes (an edited file is refused, ModelLoadError): a layer's own bias
beside its gated bias is 0, a CIF / IF's IF node has r = 1/dt, v_threshold its firing threshold and v_reset 0, its
amplitude Scale the neuron's amplitude, and a record's pool or neuron op is on the NIR type the exporter writes it as
(an AvgPool record on a SumPool2d contradicts it); T comes from the metadata when
``time_steps`` is not given (students), and a CASC graph converts with ``api.convert(g, steps=T)`` (T in
``meta["nir"]["extension"]["steps"]``).
"""
from __future__ import annotations

import json
import math
from enum import Enum
from typing import Any

import numpy as np

from neurocompile import limits
from neurocompile.errors import ModelLoadError
from neurocompile.frontends.nir.discretize import Value, export_tau, one
from neurocompile.frontends.nir.fields import check_fields, check_param, first_bad, numbers
from neurocompile.ir import Shape
from neurocompile.ir.ops import OPS, Group

EXTENSION = "neurocompile-nir/1"
META = "neurocompile"  # the metadata key of the JSON that neurocompile's importer reads
KINDS = ("student", "casc")  # the graph record's ``kind``: a LIF student, a converted CQReLU network
PASS = "Pass"  # a node the importer passes through: a flattened subgraph's Input/Output, an amplitude Scale
AMPLITUDE_TYPE = "Scale (spike amplitude)"  # an amplitude Scale's type in the importer's messages


class Part(str, Enum):
    """The nodes the extension adds beside the network's own (metadata ``role``; a str, so the JSON reads the same)."""

    GATE = "gate"            # an Input: 1 on the wake steps, 0 after
    BIAS = "bias"            # a layer's wake-gated bias: a branch from a gate into the layer's consumers
    AMPLITUDE = "amplitude"  # a Scale after a CIF / IF's nir.IF: what one spike is worth

    @property
    def rule(self) -> str:
        return _PART_RULES[self]

    def record(self, of: str | None = None) -> dict[str, Any]:
        """The part's metadata as the writer writes it (``of``: the layer or neuron it belongs to)."""
        return node_meta(role=self.value, **({"of": of} if of is not None else {}), rule=self.rule)


_PART_RULES = {Part.GATE: "1 on the wake steps, 0 after",
               Part.BIAS: "the layer's bias, on during the wake phase only",
               Part.AMPLITUDE: "what one spike is worth to the next layer"}


# the extension's record ops whose node the importer reads by its record, and the NIR types the exporter writes them
# as: a record on another type (a SumPool2d that says AvgPool, say) contradicts its node
_POOL_TYPES = ("AvgPool2d",)
RECORD_TYPES = {"AvgPool": _POOL_TYPES, "GlobalAvgPool": _POOL_TYPES, "MaxPool": _POOL_TYPES,
                "StepMaxPool": _POOL_TYPES, "InhibitionMaxPool": _POOL_TYPES, "CIF": ("IF",), "IF": ("IF",)}


def node_meta(**kw: Any) -> dict[str, Any]:
    """A node's metadata holding its neurocompile record ``kw`` (JSON under :data:`META`)."""
    return {META: json.dumps(kw)}


def node_record(metadata: dict, k: str, typ: str) -> dict:
    """The JSON record under metadata key ``neurocompile`` ({} if none)."""
    raw = metadata.get(META)
    if raw is None:
        return {}
    try:
        doc = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError as exc:
        raise ModelLoadError(f"the 'neurocompile' metadata is not JSON ({exc})", node=k or None, op=typ) from None
    if not isinstance(doc, dict):
        raise ModelLoadError("the 'neurocompile' metadata is not a JSON object", node=k or None, op=typ)
    return doc


def graph_record(graph: Any) -> dict:
    """The graph's record of neurocompile's extension (metadata ``neurocompile``, format ``neurocompile-nir/1``; {} if
    the file has none), its numbers checked where they are read (ModelLoadError): ``dt`` a positive number of
    seconds, ``time_steps``, ``steps`` and ``t_wake`` integers >= 1 (2.5 refused, not truncated), ``kind`` "student"
    or "casc"."""
    doc = node_record(graph.metadata if isinstance(getattr(graph, "metadata", None), dict) else {}, "", "NIRGraph")
    if doc.get("format") != EXTENSION:
        return {}

    def bad(key: str, what: str) -> ModelLoadError:
        return ModelLoadError(f"neurocompile's extension record of the graph has {key} = {doc[key]!r}: {what}",
                              op="NIRGraph", hint="The file was damaged or edited; export it again")

    if doc.get("kind") not in KINDS:
        raise bad("kind", "expected 'student' or 'casc'") if "kind" in doc else \
            ModelLoadError("neurocompile's extension record of the graph has no 'kind'", op="NIRGraph")
    dt = doc.get("dt")
    if dt is not None and (isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt)
                           or dt <= 0):
        raise bad("dt", "expected a positive number of seconds")
    for key in ("time_steps", "steps", "t_wake"):
        v = doc.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v != int(v):
            raise bad(key, "expected an integer")
        if not 1 <= v <= limits.MAX_STEPS:
            raise bad(key, f"expected 1 to {limits.MAX_STEPS:,} steps (neurocompile.limits.MAX_STEPS)")
        doc[key] = int(v)
    if doc.get("t_wake") is not None and doc.get("steps") is not None and doc["t_wake"] > doc["steps"]:
        raise bad("t_wake", f"more wake steps than the {doc['steps']} steps of the run")
    if "readout" in doc and not isinstance(doc["readout"], str):  # a description, never read: a number is damage
        raise bad("readout", "expected the exporter's text describing the readout")
    return doc


def _part(info: dict) -> Part | None:
    """The extension part a node's record names (its ``role``), None for a node of the network itself."""
    try:
        return Part(info.get("role"))
    except ValueError:  # none (None), or no part's (a number, a list: a node of the network all the same)
        return None


class ExtensionReader:
    """The importer's reading of a file neurocompile wrote (a mixin of
    :class:`neurocompile.frontends.nir.importer.Importer`): the records, the parts, and the checks that the fields a
    record makes redundant are still what the writer writes."""

    def _extension(self, graph: Any, time_steps: int | None) -> dict:
        """Read a file neurocompile wrote (graph metadata ``neurocompile``: format ``neurocompile-nir/1``): each node's
        record of the IR node it came from, the amplitude Scales (pass-throughs: the neuron sends its amplitude) and
        the gated biases, whose gate Inputs and branches are removed (the bias goes back onto its layer)."""
        doc = graph_record(graph)
        if not doc:
            return {}
        drop: set[str] = set()
        for k, node in list(self.nodes.items()):
            if isinstance(node, tuple):
                continue
            info = node_record(getattr(node, "metadata", None) or {}, k, self.types[k])
            part = _part(info)
            if part is not None:
                if _READ_PART[part](self, k, node, info):
                    drop.add(k)
            elif "op" in info:
                implied = RECORD_TYPES.get(info["op"])
                if implied is not None and self.types[k] not in implied:
                    raise ModelLoadError(f"the neurocompile record of this node says {info['op']!r}, which is written "
                                         f"as a NIR {' or '.join(implied)}, not a {self.types[k]}: the node type "
                                         "contradicts its record (an edited file)", node=k, op=self.types[k],
                                         hint="Export it again")
                self.exact[k] = info
        self.nodes = {k: v for k, v in self.nodes.items() if k not in drop}
        self.edges = [(a, b) for a, b in self.edges if a not in drop and b not in drop]
        out = self.out.meta
        out["nir"]["extension"] = doc
        if doc.get("kind") == "casc":
            out["neuron"] = "cif" if any(r.get("op") == "CIF" for r in self.exact.values()) else "if"
        elif time_steps is None and doc.get("time_steps") is not None:
            out["time_steps"] = doc["time_steps"]
        return doc

    def _read_gate(self, k: str, node: Any, info: dict) -> bool:
        """A wake gate Input: dropped (True), but still part of the file: NaN in its shape is damage all the same."""
        check_fields(k, self.types[k], node, "its wake gate's ")
        return True

    def _read_bias(self, k: str, node: Any, info: dict) -> bool:
        """A gated bias branch: dropped (True), its weights go back onto its layer (:meth:`_gated_bias`)."""
        of = str(info.get("of"))
        if of not in self.nodes or self.types[of] not in ("Conv2d", "Affine", "Linear"):
            raise ModelLoadError(f"a gated bias of '{of}', which is no Conv2d, Affine or Linear of the graph",
                                 node=k, op=self.types[k])
        self.gated[of] = node
        return True

    def _read_amplitude(self, k: str, node: Any, info: dict) -> bool:
        """An amplitude Scale: the neuron's spikes times their amplitude, which the IR neuron sends itself (a
        pass-through, checked by :meth:`_check_amplitude`)."""
        self.nodes[k] = (PASS, node)
        self.types[k] = AMPLITUDE_TYPE
        return False

    def _gated_bias(self, k: str, typ: str, n_out: int) -> dict:
        """{"bias": b} of a layer whose bias the file holds as a wake-gated branch, else {}."""
        node = self.gated.get(k)
        if node is None:
            return {}
        check_fields(k, typ, node, "its gated bias's ")
        own = getattr(self.nodes[k], "bias", None)  # the exporter writes zeros (snnTorch's importer needs a bias)
        own = None if own is None else numbers(own, k, typ, "bias")
        if own is not None and np.any(own != 0):
            raise ModelLoadError(f"the node's own bias holds {first_bad(own, own == 0)!r} "
                                 "although the file holds a gated bias for it (the exporter writes a zero bias "
                                 "beside one): an edited file", node=k, op=typ, hint="Export it again")
        b = numbers(node.weight, k, typ, "weight of its gated bias").reshape(-1)
        if b.size != n_out:
            raise ModelLoadError(f"inconsistent shapes: a gated bias of {b.size} values for {n_out} outputs", node=k,
                                 op=typ)
        return {"bias": b}

    def _check_level_neuron(self, k: str, node: Any, y: str, shape: Shape) -> None:
        """The IF approximation of a CIF / IF the extension's record describes: its fields are not used, but must be
        what the exporter writes for that neuron (r = 1/dt, v_threshold its firing threshold, v_reset 0), else the
        file was edited (a changed field would mean a network neurocompile does not import)."""
        n = self.out.nodes[y]
        expected = {"v_threshold": OPS[n.op].firing_threshold(n), "v_reset": 0.0}
        if self.ext.get("dt") is not None:
            expected["r"] = 1.0 / float(self.ext["dt"])
        for field, want in expected.items():
            v = getattr(node, field, None)
            if v is None:
                continue
            v = numbers(v, k, "IF", field)
            check_param(k, "IF", field, v, shape)
            if not np.allclose(v, want, rtol=1e-6, atol=0.0):
                raise ModelLoadError(f"{field} holds {first_bad(v, np.isclose(v, want, rtol=1e-6, atol=0.0))!r} where "
                                     f"the neurocompile record of this {n.op} neuron implies {want!r} (what the "
                                     "exporter writes): an edited file", node=k, op="IF", hint="Export it again")

    def _check_amplitude(self, k: str, node: Any, x: str) -> None:
        """An amplitude Scale (a pass-through: the IR neuron sends its amplitude itself) must hold the amplitude of
        the neuron it follows, as the exporter writes it (float32), else the file was edited."""
        n = self.out.nodes.get(x)
        if n is None or getattr(node, "scale", None) is None or n.op not in Group.LEVEL_NEURON:
            return
        want = float(OPS[n.op].spike_amplitude(n))
        v = numbers(node.scale, k, "Scale", "scale")
        if not np.allclose(v, want, rtol=1e-6, atol=0.0):
            raise ModelLoadError(f"the amplitude Scale holds {first_bad(v, np.isclose(v, want, rtol=1e-6, atol=0.0))!r}"
                                 f" where the {n.op} neuron it follows sends {want!r}: an edited file", node=k,
                                 op="Scale", hint="Export it again")

    def _written(self, k: str, key: str, tau: np.ndarray) -> Value | None:
        """The decay ``key`` neurocompile's exporter wrote for this node if the file's tau is dt / (1 - it) (for every
        neuron: a per-neuron decay is written as a metadata array of the layer's shape, beside the tau it gives)."""
        if self.ext.get("dt") != self.dt:
            return None
        if tau.ndim:
            v = (getattr(self.nodes.get(k), "metadata", None) or {}).get(key)
        else:
            v = self.exact.get(k, {}).get(key)
        if v is None:
            return None
        try:  # a record that is no array of numbers, or of another shape, is not this file's decay: tau decides
            d = np.broadcast_to(np.asarray(v, np.float64), tau.shape)
        except (TypeError, ValueError):
            return None
        with np.errstate(divide="ignore"):
            ok = (0 <= d) & (d < 1) & (export_tau(d, self.dt) == tau)
        return one(d) if ok.all() else None


# the extension's part -> the importer's reading of it (True: the node is dropped from the network)
_READ_PART = {Part.GATE: ExtensionReader._read_gate, Part.BIAS: ExtensionReader._read_bias,
              Part.AMPLITUDE: ExtensionReader._read_amplitude}
