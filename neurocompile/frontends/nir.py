"""NIR -> IR.

NIR (the Neuromorphic Intermediate Representation, nir 1.0.8) stores a network as a graph of continuous-time
nodes: affine maps, convolutions, pools, and neurons written as ODEs (LIF: tau dv/dt = (v_leak - v) + r I;
spike when v > v_threshold, then v <- v_reset; IF: dv/dt = r I). Edges are identities and several edges into
one node are summed. A simulator must choose a time step ``dt`` and a discretization; neurocompile makes both
explicit options and records what it chose in ``graph.meta["nir"]``.

Discretizations (``discretization=``), for LIF with per-step input I[t]:

- ``"snntorch"`` (default): forward Euler, v[t] = beta v[t-1] + g I[t] with beta = 1 - dt/tau and g = r dt/tau,
  beta as the float32 value snnTorch held. This is snnTorch's convention: its exporter writes tau = dt/(1 - beta)
  and r = tau/dt from the float32 beta of its Leaky (dt = 1e-4), so g = 1, and :func:`snntorch_beta` inverts
  that export (exactly, in tests of 20,000 random betas each, for every scalar beta and every tensor beta >= 0.5).
- ``"euler"``: forward Euler as above, beta kept in float64 (the rule ../shared/science.md gives for Norse, with
  its dt = 1e-3; not checked against Norse itself, which is not installed).
- ``"zoh"``: exact integration with the input held over the step: beta = exp(-dt/tau), g = r (1 - beta).

IF integrates without a leak (beta = 1) with g = r dt in every discretization (the three agree for a constant
input over the step); snnTorch's importer makes it a Leaky with beta 0.9, which is not an IF. A gain within
:data:`GAIN_TOLERANCE` of 1 is taken as exactly 1 (float rounding of the stored tau and r); any other uniform
gain becomes a Mul by it (kept in float64) before the neuron.

Current-based neurons (CubaLIF: tau_syn dI/dt = -I + w_in S, tau_mem dv/dt = (v_leak - v) + r I, spike and reset as
LIF; CubaLI: the same without spikes) step each compartment by the same rule, the membrane taking the step's new
current (as snnTorch's Synaptic and Lava's CUBA LIF do):

    I[t] = alpha I[t-1] + g_syn S[t];   v[t] = beta v[t-1] + g_mem I[t];   (CubaLIF) spike if v > v_threshold, v <- 0

``"snntorch"``: alpha = 1 - dt/tau_syn and beta = 1 - dt/tau_mem as snnTorch's float32 values, g_syn = w_in dt/tau_syn,
g_mem = r dt/tau_mem (snnTorch's Synaptic export writes w_in = tau_syn/dt and r = tau_mem/dt: both gains 1);
``"euler"``: the same in float64; ``"zoh"``: alpha = exp(-dt/tau_syn), g_syn = w_in (1 - alpha), beta = exp(-dt/tau_mem),
g_mem = r (1 - beta), each compartment integrated exactly with its input held over the step (the current's and the
membrane's steps in sequence: exponential Euler, which is not the exact solution of the coupled pair). Since g_mem
scales a linear current, the IR's CubaLIF holds alpha and beta and the product g_syn g_mem is its input gain (one Mul
before it); its membrane is the file's v exactly. snnTorch's own importer reads a CubaLIF as ``Synaptic(...,
reset_delay=False)``, this neuron; snnTorch's default ``Synaptic(reset_mechanism="zero")`` (``reset_delay=True``) is
another one, which a file cannot tell apart: after a spike its membrane stays 0 for one step ((beta v + I) (1 -
F[t-1])), so export such nets with ``reset_delay=False``. LI (tau dv/dt = (v_leak - v) + r I) steps like LIF without
spikes; I (dv/dt = r I) with beta 1 and g = r dt, like IF.

**Leaky integrators as readouts.** An LI, CubaLI or I node becomes the IR's non-spiking ``LI`` op, which sends its
membrane v each step (also to later layers, where it is not the last). A graph output is read out, as every output of
neurocompile, as the mean over the T steps of what reaches it: for an LI output the mean membrane (``SimResult.output``,
what the CLI's predictions and ``--json`` "outputs" are), and ``api.readout_membrane(graph, result)`` gives its
membrane after every step (T x N x ...; the last row is the membrane after the last step, the CLI's "readout" line and
``--json`` "membrane_last"). ``graph.meta["nir"]["readout"]`` names such outputs. snnTorch 1.0.0 maps neither LI nor
CubaLI (its LI-style readout is a Leaky / Synaptic with ``reset_mechanism="none"``, which it exports as a LIF /
CubaLIF with a threshold it never applies). A graph whose neurons are all leaky integrators is refused (no spiking
network to schedule).

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
                 neurocompile's max-pool record: that MaxPool / InhibitionMaxPool (see below)
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

**Per-neuron parameters.** NIR gives every neuron parameter as an array (one value, or one per neuron; any shape
that broadcasts to the layer's). Where all its values are equal (what snnTorch writes for a scalar) it is one value
for the layer, an attribute of the IR neuron; where they differ (snnTorch's tensor beta or threshold, per-neuron
tau, tau_syn, tau_mem, r, w_in, v_threshold) the IR neuron holds the derived beta, alpha or threshold as a float64
param of the layer's shape (``ops.Op.per_neuron``: what the reference simulator and Lava's LeakyNeuron /
LeakyIntegrator processes run), and an input gain that differs is a Mul by an array. Each neuron's value follows the
same rule as a layer's (snnTorch's float32 beta per distinct tau); ``meta['nir']['neurons']`` records such a
parameter as its [min, max] under ``per_neuron``. A subtractive reset has no NIR form: snnTorch writes v_reset = 0
for a ``Leaky(reset_mechanism="subtract")`` too, which this file cannot detect; export such nets with
``reset_mechanism="zero"``.

Files neurocompile wrote (graph metadata ``neurocompile``, format ``neurocompile-nir/1``; see
:mod:`neurocompile.frontends.nir_export`) come back as the IR they were written from: a LIF takes the beta its
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

A NIR file carries no number of time steps: ``time_steps`` (T) goes to ``meta["time_steps"]``, what the idsnn
pipeline schedules (T steps of direct input); without it conversion refuses and asks for T.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Union

import networkx as nx
import numpy as np

from neurocompile import hdf5_probe, limits
from neurocompile.errors import ConversionError, ModelLoadError, NeurocompileError
from neurocompile.ir import Graph, Node, Shape
from neurocompile.ops import check_attrs, infer_shape

DISCRETIZATIONS = ("snntorch", "euler", "zoh")
DEFAULT_DT = 1e-4  # snnTorch's export and import
GAIN_TOLERANCE = 1e-6  # |g - 1| below this is float rounding of the stored tau and r: g = 1
MAPPED = ("Input", "Output", "NIRGraph", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
          "Flatten", "Delay", "Threshold", "IF", "LIF", "CubaLIF", "LI", "CubaLI", "I")
NOT_YET: tuple[str, ...] = ()  # NIR node types neurocompile reads but cannot map yet
Value = Union[float, np.ndarray]  # a neuron parameter: one value for the layer, or one per neuron (the layer's shape)
_EXP = np.vectorize(math.exp, otypes=[float])  # libm's exp, element by element (numpy's may differ in the last bit)
_PASS = "Pass"  # a flattened subgraph's Input/Output: an identity (a sum where several edges meet)


def is_nir(path: str) -> bool:
    """A path names a NIR file (by its extension, as nir.write's users name them)."""
    return str(path).lower().endswith(".nir")


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


def read_nir(path: str):
    """(nir.NIRGraph, the file's NIR version) by nir's own parsing: what ``nir.read`` does (``hdf2dict``, here
    :func:`_hdf2dict`, then ``dict2NIRNode`` per node), node by node, so a node nir cannot build (``nir.read`` raises a
    bare AssertionError for an unknown type, KeyError for a missing field) is named in the error; and without nir's
    type check, which refuses the scalar neuron parameters snnTorch writes (shape () against a layer's shape):
    :func:`import_nir` checks shapes itself."""
    import nir

    def read(f: Any) -> dict:
        if "node" not in f:
            raise ModelLoadError("the file is HDF5 but not NIR (no 'node' group)", hint="Write the graph with nir.write")
        return _hdf2dict(f)

    # the file is read once into memory (a file larger than its arrays' limit allows is refused first) and read in a
    # forked child before it is read here (hdf5_probe: the HDF5 library loops for ever on some damaged files, and
    # raises any exception type on others)
    data = hdf5_probe.read_bytes(path, 2 * 8 * limits.MAX_FILE_ARRAY_ELEMENTS + (64 << 20), "NIR file")
    root = hdf5_probe.read_checked(data, read, "NIR file", lead="cannot read the file as NIR (damaged HDF5)",
                                   hint="Is it a .nir file written by nir.write, and was it written completely?")
    doc, version = root["node"], root.get("version", "unknown")
    if not isinstance(doc, dict):
        raise ModelLoadError("the file is HDF5 but not NIR ('node' is not a group)",
                             hint="Write the graph with nir.write")
    version = version.decode("utf8", "backslashreplace") if isinstance(version, bytes) else str(version)
    typ = doc.get("type")
    if not isinstance(typ, str) or typ != "NIRGraph":
        shown = repr(typ) if isinstance(typ, str) else _shown(typ)
        raise ModelLoadError(f"the file holds a single {shown} node, not a NIRGraph",
                             hint="Write a nir.NIRGraph (e.g. nir.NIRGraph.from_list(...))")
    return _from_dict(doc, "", nir), version


def _hdf2dict(group: Any) -> dict:
    """nir's ``hdf2dict`` (groups as dicts, datasets as their values, byte strings decoded as UTF-8) with what a
    damaged or hostile file needs checked first (ModelLoadError naming the HDF5 path): every dataset's declared size,
    before it is read, against :data:`neurocompile.limits.MAX_FILE_ARRAY_ELEMENTS` in all (h5py creates a declared
    1e11-element dataset instantly, without writing it, and reading it would take the memory); names and strings that
    are not UTF-8 (nir decodes them unchecked); links to other files or objects and objects reached twice (a cycle of
    hard links would recurse for ever), none of which ``nir.write`` writes."""
    import h5py

    seen: set = set()
    total = 0

    def name_of(key: Any, at: str) -> str:
        if isinstance(key, bytes):  # h5py hands back a name that is not UTF-8 as bytes
            try:
                key = key.decode("utf8")
            except UnicodeDecodeError:
                shown = key.decode("utf8", "backslashreplace")
                raise ModelLoadError(f"the HDF5 name '{at}/{shown}' is not valid UTF-8 (NIR names nodes and fields by "
                                     "UTF-8 strings)", node=shown,
                                     hint="Rename it in the program that wrote the file") from None
        return str(key)

    def read(g: Any, at: str) -> dict:
        out: dict = {}
        for raw in g.keys():
            key = name_of(raw, at)
            where = f"{at}/{key}"
            link = g.get(raw, getlink=True)
            if not isinstance(link, h5py.HardLink):
                raise ModelLoadError(f"the HDF5 object '{where}' is a {type(link).__name__} (nir.write writes none)")
            item = g[raw]
            if item.id in seen:
                raise ModelLoadError(f"the HDF5 object '{where}' is linked from two places (nir.write writes a tree)")
            seen.add(item.id)
            if isinstance(item, h5py.Group):
                out[key] = read(item, where)
            elif isinstance(item, h5py.Dataset):
                out[key] = value(item, where)
        return out

    def value(d: Any, where: str) -> Any:
        nonlocal total
        # an element wider than 8 bytes (a fixed-length string) counts as itemsize / 8 elements
        size = max(int(d.size or 0), -(-int(d.size or 0) * int(d.dtype.itemsize) // 8))
        total += size
        if total > limits.MAX_FILE_ARRAY_ELEMENTS:
            raise ModelLoadError(f"the HDF5 dataset '{where}' declares {size:,} elements of shape {d.shape}, which "
                                 f"takes the file's arrays over the limit of {limits.MAX_FILE_ARRAY_ELEMENTS:,} "
                                 "elements "
                                 "(neurocompile.limits.MAX_FILE_ARRAY_ELEMENTS); refused before reading it",
                                 hint="Raise the limit in neurocompile/limits.py if the network really is that large")
        try:
            v = d[()]
        except (OSError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"cannot read the HDF5 dataset '{where}' ({exc})") from None
        if isinstance(v, bytes):
            try:
                return v.decode("utf8")
            except UnicodeDecodeError:
                raise ModelLoadError(f"the HDF5 dataset '{where}' holds a string that is not valid UTF-8") from None
        return v

    return read(group, "")


def _from_dict(d: dict, name: str, nir) -> Any:
    typ = d.get("type") if isinstance(d, dict) else None
    if typ is None:
        raise ModelLoadError("malformed NIR node (no 'type')", node=name or None)
    if not isinstance(typ, str):
        raise ModelLoadError(f"malformed NIR node (its 'type' is {_shown(typ)}, not a string)", node=name or None)
    if not isinstance(d.get("metadata", {}), dict):
        raise ModelLoadError("malformed NIR node (its 'metadata' is no group)", node=name or None, op=typ)
    if typ == "NIRGraph":
        if "nodes" not in d or "edges" not in d:
            raise ModelLoadError("malformed NIR subgraph (no 'nodes' or 'edges')", node=name or None, op=typ)
        if not isinstance(d["nodes"], dict):
            raise ModelLoadError("malformed NIR subgraph (its 'nodes' is no group)", node=name or None, op=typ)
        prefix = f"{name}." if name else ""
        nodes = {str(k): _from_dict(v, f"{prefix}{k}", nir) for k, v in d["nodes"].items()}
        try:
            edges = [(_str(a), _str(b)) for a, b in np.asarray(d["edges"]).reshape(-1, 2)]
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"malformed edge list ({exc})", node=name or None, op=typ) from None
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=dict(d.get("metadata", {})), type_check=False)
    if typ not in MAPPED + NOT_YET:
        raise ModelLoadError(f"unknown NIR node type {typ!r}", node=name, op=str(typ),
                             hint=f"NIR {_nir_version()} defines {', '.join(sorted(MAPPED + NOT_YET))}")
    for field, least in _GEOMETRY.items():  # before nir's constructors, which compute shapes with them (stride 0: inf)
        if field in d and not (field == "padding" and _arr(d[field]).dtype.kind in "SUO"):
            _ints(d[field], None, name, typ, field, least)
    try:
        return nir.dict2NIRNode(dict(d))
    except (AssertionError, ArithmeticError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise ModelLoadError(f"nir cannot build this {typ} node ({detail})", node=name, op=typ,
                             hint="The file's fields for this node are missing or malformed") from None


def _str(a: Any) -> str:
    return a.decode("utf8") if isinstance(a, bytes) else str(a)


def _nir_version() -> str:
    try:
        import nir
        return str(nir.__version__)
    except Exception:  # noqa: BLE001
        return ""


def _arr(v: Any) -> np.ndarray:
    """A parameter as a numpy array (in-memory graphs may hold torch tensors)."""
    if hasattr(v, "detach"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def import_nir(graph: Any, dt: float | None = None, discretization: str = "snntorch", time_steps: int | None = None,
               name: str = "nir") -> Graph:
    """Build the IR of a ``nir.NIRGraph`` (see the module docstring for the mapping and conventions). ``dt`` None:
    the time step a file neurocompile wrote records (its extension's ``dt``), else :data:`DEFAULT_DT`
    (``meta['nir']['dt_from']`` says which)."""
    dt_from = "given"
    if dt is None:
        recorded = _extension_doc(graph).get("dt")
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
    g = _Importer(graph, dt, discretization, time_steps, name).run()
    g.meta["nir"]["dt_from"] = dt_from
    return g


class _Importer:
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
            "nir": {"dt": dt, "discretization": discretization, "rule": _RULES[discretization],
                    "reset": "hard reset to 0 (NIR v_reset = 0; anything else is refused)",
                    "gain_tolerance": GAIN_TOLERANCE, "neurons": {}},
        }
        if time_steps is not None:
            self.out.meta["time_steps"] = int(time_steps)
        self.nodes: dict[str, Any] = {}     # flattened name -> NIR node (or _PASS marker tuple)
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

    # -- the neurocompile extension (frontends/nir_export.py) ----------------------------------------------------
    def _extension(self, graph: Any, time_steps: int | None) -> dict:
        """Read a file neurocompile wrote (graph metadata ``neurocompile``: format ``neurocompile-nir/1``): each node's
        record of the IR node it came from, the amplitude Scales (pass-throughs: the neuron sends its amplitude) and
        the gated biases, whose gate Inputs and branches are removed (the bias goes back onto its layer)."""
        doc = _extension_doc(graph)
        if not doc:
            return {}
        drop: set[str] = set()
        for k, node in list(self.nodes.items()):
            if isinstance(node, tuple):
                continue
            info = _ext_doc(getattr(node, "metadata", None) or {}, k, self.types[k])
            role = info.get("role")
            if role == "gate":  # dropped, but still part of the file: NaN in its shape is damage all the same
                _check_fields(k, self.types[k], node, "its wake gate's ")
                drop.add(k)
            elif role == "bias":
                of = str(info.get("of"))
                if of not in self.nodes or self.types[of] not in ("Conv2d", "Affine", "Linear"):
                    raise ModelLoadError(f"a gated bias of '{of}', which is no Conv2d, Affine or Linear of the graph",
                                         node=k, op=self.types[k])
                self.gated[of] = node
                drop.add(k)
            elif role == "amplitude":  # the neuron's spikes times their amplitude: the IR neuron sends that itself
                self.nodes[k] = (_PASS, node)
                self.types[k] = "Scale (spike amplitude)"
            elif "op" in info:
                implied = _RECORD_TYPES.get(info["op"])
                if implied is not None and self.types[k] not in implied:
                    raise ModelLoadError(f"the neurocompile record of this node says {info['op']!r}, which is written "
                                         f"as a NIR {' or '.join(implied)}, not a {self.types[k]}: the node type "
                                         "contradicts its record (an edited file)", node=k, op=self.types[k],
                                         hint="Export it again")
                self.exact[k] = info
        self.nodes = {k: v for k, v in self.nodes.items() if k not in drop}
        self.edges = [(a, b) for a, b in self.edges if a not in drop and b not in drop]
        meta = self.out.meta
        meta["nir"]["extension"] = doc
        if doc.get("kind") == "casc":
            meta["neuron"] = "cif" if any(r.get("op") == "CIF" for r in self.exact.values()) else "if"
        elif time_steps is None and doc.get("time_steps") is not None:
            meta["time_steps"] = doc["time_steps"]
        return doc

    def _gated_bias(self, k: str, typ: str, n_out: int) -> dict:
        """{"bias": b} of a layer whose bias the file holds as a wake-gated branch, else {}."""
        node = self.gated.get(k)
        if node is None:
            return {}
        _check_fields(k, typ, node, "its gated bias's ")
        own = getattr(self.nodes[k], "bias", None)  # the exporter writes zeros (snnTorch's importer needs a bias)
        own = None if own is None else _numbers(own, k, typ, "bias")
        if own is not None and np.any(own != 0):
            raise ModelLoadError(f"the node's own bias holds {_first_bad(own, own == 0)!r} "
                                 "although the file holds a gated bias for it (the exporter writes a zero bias "
                                 "beside one): an edited file", node=k, op=typ, hint="Export it again")
        b = _numbers(node.weight, k, typ, "weight of its gated bias").reshape(-1)
        if b.size != n_out:
            raise ModelLoadError(f"inconsistent shapes: a gated bias of {b.size} values for {n_out} outputs", node=k,
                                 op=typ)
        return {"bias": b}

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
                self.nodes[p] = (_PASS, self.nodes[p])
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
            if isinstance(node, tuple) and node[0] == _PASS:
                if self.types[k] == "Scale (spike amplitude)":
                    _check_fields(k, "Scale", node[1])
                    self._check_amplitude(k, node[1], x)
                self.tensor[k] = x
            elif isinstance(node, nir.Output):
                self._check_declared(k, typ, node.output_type.get("output"), shape, "output")
                self.tensor[k] = x
                outputs.append(k)
            else:
                handler = getattr(self, f"_{typ}", None)
                if handler is None:  # a type nir knows but neurocompile cannot map yet
                    raise ConversionError(f"NIR {typ} neurons are not supported by neurocompile yet", node=k, op=typ,
                                          hint="Supported neurons: LIF, IF, Threshold, CubaLIF (hard reset to "
                                               "0); LI, CubaLI, I")
                self.tensor[k] = handler(k, node, x, shape)  # (only Output nodes are outputs: see _prune)
                _check_fields(k, typ, node)  # after the handler: its own messages come first for the fields it uses
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
        d = tuple(_ints(declared, None, k, typ, f"the declared {what} shape", 0)) if _arr(declared).size else ()
        if d and d != tuple(shape):
            raise ModelLoadError(f"inconsistent shapes: the file declares the {what} shape {d}, the graph computes "
                                 f"{tuple(shape)}", node=k, op=typ)

    # -- nodes -----------------------------------------------------------------------------
    def _input(self, k: str, node: Any) -> None:
        shape = node.input_type.get("input")
        dims = tuple(_ints(shape, None, k, "Input", "the declared shape")) if shape is not None else ()
        if not dims or any(d < 1 for d in dims):
            raise ModelLoadError(f"the Input node declares the shape {dims}: a per-sample shape of positive sizes is "
                                 "needed", node=k, op="Input")
        if math.prod(dims) > limits.MAX_FILE_ARRAY_ELEMENTS:
            raise ModelLoadError(f"the Input node declares the shape {dims}, {math.prod(dims):,} elements per sample: "
                                 f"over the limit of {limits.MAX_FILE_ARRAY_ELEMENTS:,} "
                                 "(neurocompile.limits.MAX_FILE_ARRAY_ELEMENTS)", node=k, op="Input")
        self.out.add(Node(k, "Input", [], k, {"shape": list(dims)}), dims)
        self.tensor[k] = k

    def _dense(self, k: str, node: Any, x: str, shape: Shape, bias: np.ndarray | None, typ: str) -> str:
        w = _numbers(node.weight, k, typ, "weight")
        if w.ndim != 2:
            raise ModelLoadError(f"a weight of rank {w.ndim} (only (out, in) matrices are supported)", node=k, op=typ)
        if tuple(shape) != (w.shape[1],):
            raise ModelLoadError(f"inconsistent shapes: the weight {w.shape} takes vectors of {w.shape[1]}, the input "
                                 f"has shape {tuple(shape)}", node=k, op=typ,
                                 hint="Flatten the input first (a NIR Flatten node)" if len(shape) > 1 else None)
        params = {"weight": w, **self._gated_bias(k, typ, w.shape[0])}
        if bias is not None and "bias" not in params:
            b = _numbers(bias, k, typ, "bias")
            if b.shape != (w.shape[0],):
                raise ModelLoadError(f"inconsistent shapes: bias of shape {b.shape} for {w.shape[0]} outputs",
                                     node=k, op=typ)
            params["bias"] = b
        return self._add(k, "Dense", [x], {}, params, k, typ)

    def _Affine(self, k, node, x, shape):
        return self._dense(k, node, x, shape, node.bias, "Affine")

    def _Linear(self, k, node, x, shape):
        return self._dense(k, node, x, shape, None, "Linear")

    def _Scale(self, k, node, x, shape):
        s = _numbers(node.scale, k, "Scale", "scale")
        try:
            ok = np.broadcast_shapes(s.shape, tuple(shape)) == tuple(shape)
        except ValueError:
            ok = False
        if not ok:
            raise ModelLoadError(f"inconsistent shapes: a scale of shape {s.shape} for an input of shape {tuple(shape)}",
                                 node=k, op="Scale")
        return self._add(k, "Mul", [x], {}, {"const": s}, k, "Scale")

    def _conv_geometry(self, k: str, typ: str, node: Any, nd: int, hw: tuple[int, ...],
                       kernel: tuple[int, ...]) -> tuple[list[int], list[int], list[int]]:
        """(stride, dilation, pads [begins..., ends...]) of a NIR conv/pool with ``nd`` spatial axes."""
        stride = _ints(node.stride, nd, k, typ, "stride", 1)
        dilation = _ints(getattr(node, "dilation", 1), nd, k, typ, "dilation", 1)
        pad = node.padding
        if isinstance(pad, (bytes, np.bytes_)):
            pad = pad.decode()
        if isinstance(pad, np.ndarray) and pad.dtype.kind in "SUO" and pad.size == 1:
            pad = _str(pad.reshape(()).item())
        if isinstance(pad, str):
            if pad == "valid":
                return stride, dilation, [0] * (2 * nd)
            if pad != "same":
                raise ModelLoadError(f"padding {pad!r} (NIR allows an int, 'same' or 'valid')", node=k, op=typ)
            if any(s != 1 for s in stride):
                raise ConversionError(f"padding 'same' with stride {stride}: PyTorch's rule (which NIR follows) is "
                                      "defined for stride 1 only", node=k, op=typ, hint="Export explicit paddings")
            total = [d * (kk - 1) for d, kk in zip(dilation, kernel)]
            return stride, dilation, [t // 2 for t in total] + [t - t // 2 for t in total]  # odd pad at the end
        p = _ints(pad, nd, k, typ, "padding", 0)
        return stride, dilation, p + p

    def _conv_weight(self, k: str, typ: str, node: Any, shape: Shape, nd: int):
        """A ConvNd's weight, groups and geometry, checked against its input shape (C, *spatial)."""
        w = _numbers(node.weight, k, typ, "weight")
        axes = "kh, kw" if nd == 2 else "k"
        if w.ndim != nd + 2:
            raise ModelLoadError(f"a {typ} weight of rank {w.ndim} (NIR: (C_out, C_in/groups, {axes}))", node=k,
                                 op=typ)
        groups = _ints(node.groups, 1, k, typ, "groups", 1)[0]
        if len(shape) != nd + 1 or shape[0] != w.shape[1] * groups:
            dims = "H, W" if nd == 2 else "L"
            raise ModelLoadError(f"inconsistent shapes: the weight {w.shape} with groups={groups} takes "
                                 f"({w.shape[1] * groups}, {dims}), the input has shape {tuple(shape)}", node=k, op=typ)
        self._check_input_shape(k, typ, node.input_shape, shape[1:])
        return (w, groups, *self._conv_geometry(k, typ, node, nd, shape[1:], w.shape[2:]))

    def _Conv2d(self, k, node, x, shape):
        w, groups, stride, dilation, p = self._conv_weight(k, "Conv2d", node, shape, 2)
        params = {"weight": w, **self._conv_bias(k, "Conv2d", node, w.shape[0])}
        y = self._add(k, "Conv", [x], {"stride": stride, "pads": [p[0], p[1], p[2], p[3]], "dilation": dilation,
                                       "groups": groups}, params, k, "Conv2d")
        self._check_declared(k, "Conv2d", node.output_type.get("output"), self._shape(y), "output")
        return y

    def _Conv1d(self, k, node, x, shape):
        w, groups, stride, dilation, p = self._conv_weight(k, "Conv1d", node, shape, 1)
        x2 = self._add(f"{k}.to2d", "Reshape", [x], {"shape": [shape[0], 1, shape[1]]}, {}, k, "Conv1d")
        params = {"weight": w[:, :, None, :], **self._conv_bias(k, "Conv1d", node, w.shape[0])}
        y = self._add(k, "Conv", [x2], {"stride": [1, stride[0]], "pads": [0, p[0], 0, p[1]],
                                        "dilation": [1, dilation[0]], "groups": groups}, params, k, "Conv1d")
        co, _, lo = self._shape(y)
        return self._add(f"{k}.to1d", "Reshape", [y], {"shape": [co, lo]}, {}, k, "Conv1d")

    def _conv_bias(self, k: str, typ: str, node: Any, c_out: int) -> dict:
        if k in self.gated:
            return self._gated_bias(k, typ, c_out)
        if getattr(node, "bias", None) is None:
            return {}
        b = _numbers(node.bias, k, typ, "bias")
        if b.size == 1 and b.shape != (c_out,):
            b = np.full(c_out, float(b.reshape(())))
        if b.shape != (c_out,):
            raise ModelLoadError(f"inconsistent shapes: bias of shape {b.shape} for {c_out} output channels", node=k,
                                 op=typ)
        return {"bias": b} if b.any() else {}

    def _check_input_shape(self, k: str, typ: str, declared: Any, spatial: tuple[int, ...]) -> None:
        self._check_declared(k, typ, declared, spatial, "input_shape (spatial)")

    def _pool_geometry(self, k: str, typ: str, node: Any, shape: Shape) -> tuple[list[int], list[int], list[int]]:
        if len(shape) != 3:
            raise ModelLoadError(f"inconsistent shapes: 2-D pooling of an input of shape {tuple(shape)} (needs "
                                 "(C, H, W))", node=k, op=typ)
        kernel = _ints(node.kernel_size, 2, k, typ, "kernel_size")
        stride = _ints(node.stride, 2, k, typ, "stride")
        pad = _ints(node.padding, 2, k, typ, "padding")
        if min(kernel) < 1 or min(stride) < 1 or min(pad) < 0:
            raise ModelLoadError(f"kernel_size {kernel}, stride {stride}, padding {pad}: sizes must be positive",
                                 node=k, op=typ)
        if any(kk > size + 2 * p for kk, size, p in zip(kernel, shape[1:], pad)):  # (before a SumPool2d's weights)
            raise ModelLoadError(f"inconsistent shapes: kernel_size {kernel} exceeds the padded input "
                                 f"{tuple(shape[1:])} + 2 x padding {pad}", node=k, op=typ)
        return kernel, stride, pad

    def _SumPool2d(self, k, node, x, shape):
        kernel, stride, pad = self._pool_geometry(k, "SumPool2d", node, shape)
        C = int(shape[0])
        return self._add(k, "Conv", [x], {"stride": stride, "pads": pad + pad, "dilation": [1, 1], "groups": C},
                         {"weight": np.ones((C, 1, *kernel))}, k, "SumPool2d")

    def _AvgPool2d(self, k, node, x, shape):
        kernel, stride, pad = self._pool_geometry(k, "AvgPool2d", node, shape)
        if self.exact.get(k, {}).get("op") in ("MaxPool", "StepMaxPool", "InhibitionMaxPool"):
            return self._max_pool(k, x, kernel, stride, pad)
        if any(pad):
            raise ConversionError(f"AvgPool2d with padding {pad}: NIR does not say whether the padded zeros count in "
                                  "a window's average", node=k, op="AvgPool2d",
                                  hint="Export the pool with padding 0, or as a SumPool2d and a Scale")
        if self.exact.get(k, {}).get("op") == "GlobalAvgPool" and kernel == stride == list(shape[1:]):
            return self._add(k, "GlobalAvgPool", [x], {}, {}, k, "AvgPool2d")
        return self._add(k, "AvgPool", [x], {"kernel": kernel, "stride": stride, "pads": [0, 0, 0, 0]}, {}, k,
                         "AvgPool2d")

    def _max_pool(self, k: str, x: str, kernel: list[int], stride: list[int], pad: list[int]) -> str:
        """The extension's max pool (its AvgPool2d is the approximation other tools load): the MaxPool or
        InhibitionMaxPool its record names, with the record's attributes, which must have the AvgPool2d's geometry
        and output shape (no partial ceil_mode window: the exporter writes none)."""
        from neurocompile.ops import OPS, pair

        rec = self.exact[k]
        attrs = rec.get("attrs")
        if not isinstance(attrs, dict):
            raise ModelLoadError("the neurocompile record of this pool has no attributes", node=k, op="AvgPool2d")
        y = self._add(k, rec["op"], [x], attrs, {}, k, "AvgPool2d")
        n, op = self.out.nodes[y], OPS[rec["op"]]
        got = (list(pair(op.attr(n, "kernel"))), list(pair(op.attr(n, "stride"))), [int(v) for v in op.attr(n, "pads")])
        if got != (kernel, stride, pad + pad):
            raise ModelLoadError(f"the neurocompile record of this {rec['op']} (kernel {got[0]}, stride {got[1]}, pads "
                                 f"{got[2]}) disagrees with its AvgPool2d (kernel_size {kernel}, stride {stride}, "
                                 f"padding {pad})", node=k, op="AvgPool2d")
        hw = tuple(self._shape(x)[1:])
        whole = tuple((size + 2 * p - kk) // s + 1 for size, p, kk, s in zip(hw, pad, kernel, stride))
        if tuple(self._shape(y)[1:]) != whole:
            raise ModelLoadError(f"the neurocompile record of this {rec['op']} has partial (ceil_mode) windows: "
                                 f"{tuple(self._shape(y)[1:])} windows where its AvgPool2d has {whole}", node=k,
                                 op="AvgPool2d")
        return y

    def _Flatten(self, k, node, x, shape):
        self._check_declared(k, "Flatten", node.input_type.get("input"), shape, "input")
        rank = len(shape)
        start, end = (_ints(getattr(node, f), 1, k, "Flatten", f)[0] for f in ("start_dim", "end_dim"))
        start, end = start + rank if start < 0 else start, end + rank if end < 0 else end
        if not 0 <= start <= end < rank:
            raise ModelLoadError(f"inconsistent shapes: start_dim={node.start_dim}, end_dim={node.end_dim} for an "
                                 f"input of shape {tuple(shape)} (NIR dims exclude the batch)", node=k, op="Flatten")
        if start == 0 and end == rank - 1:
            return self._add(k, "Flatten", [x], {}, {}, k, "Flatten")
        target = [*shape[:start], int(np.prod(shape[start:end + 1])), *shape[end + 1:]]
        if target == list(shape):
            return x
        return self._add(k, "Reshape", [x], {"shape": target}, {}, k, "Flatten")

    def _Delay(self, k, node, x, shape):
        """A delay of whole steps of dt, the same for every element: StepDelay (0: nothing)."""
        d = _numbers(node.delay, k, "Delay", "delay")
        self._check_param(k, "Delay", "delay", d, shape)
        if not np.isfinite(d).all() or (d < 0).any():
            raise ModelLoadError("delay holds negative, NaN or infinite values", node=k, op="Delay")
        if d.size > 1 and np.ptp(d) != 0:
            raise ConversionError(f"per-element delays from {float(d.min()):g} to {float(d.max()):g} s: the IR delays a "
                                  "layer as a whole", node=k, op="Delay")
        steps = float(d.reshape(-1)[0]) / self.dt
        if not math.isfinite(steps) or steps > 2**53:  # a whole number of steps that round() and int() can hold
            raise ConversionError(f"a delay of {float(d.reshape(-1)[0]):g} s is {steps:.3g} steps of dt = "
                                  f"{self.dt:g} s", node=k, op="Delay")
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
            raise ConversionError(f"a delay of {float(d.reshape(-1)[0]):g} s is {steps:.6g} steps of dt = {self.dt:g} s, "
                                  "not a whole number", node=k, op="Delay",
                                  hint="Choose --dt so that the delay is whole steps")
        if round(steps) == 0:
            return x
        return self._add(k, "StepDelay", [x], {"steps": int(round(steps))}, {}, k, "Delay")

    # -- neurons ---------------------------------------------------------------------------
    # A neuron parameter is one value for the layer (a float) or, where a file's per-neuron values differ within the
    # layer, an array of the layer's shape; the arithmetic below works on both (numpy broadcasting).
    def _check_param(self, k: str, typ: str, field: str, v: np.ndarray, shape: Shape) -> None:
        """One value, one per neuron, or an array of the layer's rank whose other axes are 1 (per channel: (C, 1, 1));
        a lower-rank array would line up with the last axes (a (C,) tau along W), which no writer means."""
        fits = v.size == 1 or (v.ndim == len(shape) and all(a in (1, b) for a, b in zip(v.shape, shape)))
        if not fits:
            raise ModelLoadError(f"inconsistent shapes: {field} of shape {v.shape} for an input of shape "
                                 f"{tuple(shape)} (one value, one per neuron, or one per channel as (C, 1, 1))",
                                 node=k, op=typ)

    def _values(self, k: str, typ: str, node: Any, field: str, shape: Shape) -> Value:
        """A neuron parameter: its one value (a scalar, or per-neuron values that are all equal, as snnTorch writes a
        scalar), else its per-neuron values as a float64 array of the layer's shape."""
        v = _numbers(getattr(node, field), k, typ, field)
        self._check_param(k, typ, field, v, shape)
        if np.isnan(v).any():
            raise ModelLoadError(f"{field} holds NaN", node=k, op=typ)
        lo, hi = float(v.min()), float(v.max())
        return lo if lo == hi else np.ascontiguousarray(np.broadcast_to(v, tuple(shape)))

    def _zero(self, k: str, typ: str, node: Any, field: str, shape: Shape, what: str) -> None:
        v = getattr(node, field, None)
        if v is None:
            return
        v = _numbers(v, k, typ, field)
        self._check_param(k, typ, field, v, shape)
        if np.any(v != 0):
            raise ConversionError(f"{field} = {float(v.flat[np.flatnonzero(v)[0]]):g} (non-zero): {what}", node=k, op=typ)

    def _gain(self, k: str, typ: str, x: str, gain: Value) -> tuple[str, Value]:
        """``x`` times the input gain g (a Mul node; per neuron where g differs within the layer) unless g is 1 within
        :data:`GAIN_TOLERANCE` for every neuron."""
        g = np.asarray(gain, np.float64)
        if not np.isfinite(g).all():
            raise ConversionError(f"the input gain r·dt/tau = {_first_bad(g)!r} is not finite", node=k, op=typ)
        if np.all(np.abs(g - 1.0) <= GAIN_TOLERANCE):
            return x, 1.0
        gain = _one(g)
        if np.ndim(gain) == 3 and np.all(gain == gain[:, :1, :1]):  # one gain per channel: what Lava's scale map takes
            gain = np.ascontiguousarray(gain[:, :1, :1])
        y = self._add(f"{k}.gain", "Mul", [x], {}, {"const": np.array(gain)}, k, typ)
        self.out.nodes[y].params["const"] = np.array(gain, np.float64)  # kept in float64: not rounded to float32
        return y, gain

    def _cell(self, k: str, typ: str, op: str, x: str, values: dict[str, Value], gain: Value, record: dict) -> str:
        """The IR neuron ``op`` after the input gain: its parameters ``values`` are attributes where they are one
        value for the layer and float64 params (its ``per_neuron`` form) where they differ. Recorded in
        ``meta['nir']['neurons']`` (a per-neuron parameter as its range)."""
        x, used = self._gain(k, typ, x, gain)
        attrs = {f: float(v) for f, v in values.items() if np.ndim(v) == 0}
        varying = {f: v for f, v in values.items() if np.ndim(v)}
        y = self._add(k, op, [x], attrs, {}, k, typ)
        self.out.nodes[y].params.update({f: np.asarray(v, np.float64) for f, v in varying.items()})
        self.neurons[y] = {"nir_type": typ, **record, **attrs, "gain": _summary(used),
                           **({"per_neuron": {f: [float(v.min()), float(v.max())] for f, v in varying.items()}}
                              if varying else {}),
                           **({"gain_node": x} if np.ndim(used) or used != 1.0 else {})}
        return y

    def _neuron(self, k: str, typ: str, x: str, beta: Value, threshold: Value, gain: Value, record: dict) -> str:
        if not np.isfinite(threshold).all():
            raise ConversionError(f"v_threshold = {_first_bad(threshold)!r} is not finite", node=k, op=typ)
        return self._cell(k, typ, "LIF", x, {"beta": beta, "threshold": threshold}, gain, record)

    def _Threshold(self, k, node, x, shape):
        thr = self._values(k, "Threshold", node, "threshold", shape)
        return self._neuron(k, "Threshold", x, 0.0, thr, 1.0, {"rule": "z = [x > threshold] (LIF with beta 0)"})

    def _IF(self, k, node, x, shape):
        rec = self.exact.get(k, {})
        if rec.get("op") in ("CIF", "IF"):  # the CASC extension: the exact neuron, not the IF approximation
            attrs = rec.get("attrs")
            if not isinstance(attrs, dict):
                raise ModelLoadError("the neurocompile record of this neuron has no attributes", node=k, op="IF")
            missing = [a for a in ("threshold", "levels") if a not in attrs]  # the exporter writes both, always
            if missing:
                raise ModelLoadError(f"the neurocompile record of this {rec['op']} neuron lacks "
                                     f"{' and '.join(missing)}", node=k, op="IF",
                                     hint="The file was damaged or edited; export it again")
            y = self._add(k, rec["op"], [x], attrs, {}, k, "IF")
            self._check_level_neuron(k, node, y, shape)
            return y
        self._zero(k, "IF", node, "v_reset", shape, "neurocompile's neurons reset to 0 (hard reset)")
        r = self._values(k, "IF", node, "r", shape)
        thr = self._values(k, "IF", node, "v_threshold", shape)
        return self._neuron(k, "IF", x, 1.0, thr, _one(np.multiply(r, self.dt)),
                            {"r": _summary(r), "rule": "v = v + r·dt·I (LIF with beta 1)"})

    def _check_level_neuron(self, k: str, node: Any, y: str, shape: Shape) -> None:
        """The IF approximation of a CIF / IF the extension's record describes: its fields are not used, but must be
        what the exporter writes for that neuron (r = 1/dt, v_threshold its firing threshold, v_reset 0), else the
        file was edited (a changed field would mean a network neurocompile does not import)."""
        from neurocompile.ops import OPS

        n = self.out.nodes[y]
        expected = {"v_threshold": OPS[n.op].firing_threshold(n), "v_reset": 0.0}
        if self.ext.get("dt") is not None:
            expected["r"] = 1.0 / float(self.ext["dt"])
        for field, want in expected.items():
            v = getattr(node, field, None)
            if v is None:
                continue
            v = _numbers(v, k, "IF", field)
            self._check_param(k, "IF", field, v, shape)
            if not np.allclose(v, want, rtol=1e-6, atol=0.0):
                raise ModelLoadError(f"{field} holds {_first_bad(v, np.isclose(v, want, rtol=1e-6, atol=0.0))!r} where "
                                     f"the neurocompile record of this {n.op} neuron implies {want!r} (what the "
                                     "exporter writes): an edited file", node=k, op="IF", hint="Export it again")

    def _check_amplitude(self, k: str, node: Any, x: str) -> None:
        """An amplitude Scale (a pass-through: the IR neuron sends its amplitude itself) must hold the amplitude of
        the neuron it follows, as the exporter writes it (float32), else the file was edited."""
        from neurocompile.ops import OPS

        n = self.out.nodes.get(x)
        if n is None or getattr(node, "scale", None) is None or n.op not in ("CIF", "IF"):
            return
        want = float(OPS[n.op].spike_amplitude(n))
        v = _numbers(node.scale, k, "Scale", "scale")
        if not np.allclose(v, want, rtol=1e-6, atol=0.0):
            raise ModelLoadError(f"the amplitude Scale holds {_first_bad(v, np.isclose(v, want, rtol=1e-6, atol=0.0))!r}"
                                 f" where the {n.op} neuron it follows sends {want!r}: an edited file", node=k,
                                 op="Scale", hint="Export it again")

    def _LIF(self, k, node, x, shape):
        self._zero(k, "LIF", node, "v_leak", shape, "the IR's LIF leaks towards 0 (a leak potential would be a "
                   "constant current (1 - beta)·v_leak, not supported yet)")
        self._zero(k, "LIF", node, "v_reset", shape, "neurocompile's neurons reset to 0 (hard reset)")
        tau = self._values(k, "LIF", node, "tau", shape)
        r = self._values(k, "LIF", node, "r", shape)
        thr = self._values(k, "LIF", node, "v_threshold", shape)
        beta, c, note = self._decay(k, "LIF", tau, "tau", "beta")
        return self._neuron(k, "LIF", x, beta, thr, _input_gain(r, c, tau),
                            {"tau": _summary(tau), "r": _summary(r), **note})

    # -- decays (LIF, CubaLIF; LI, CubaLI) -----------------------------------------------------------------------
    def _decay(self, k: str, typ: str, tau: Value, field: str, key: str) -> tuple[Value, Value, dict]:
        """One compartment ``tau dx/dt = -x + w u`` as a step x[t] = d x[t-1] + w c u[t]: (d, c, what was chosen),
        by the discretization (Euler d = 1 - dt/tau, c = dt/tau, d as snnTorch's float32 value by default; zoh
        d = exp(-dt/tau), c = 1 - d), per neuron where ``tau`` is an array. ``key`` names the decay in neurocompile's
        metadata (``alpha`` for a synaptic current, ``beta`` for a membrane), taken exactly when this file's tau is
        dt / (1 - d)."""
        t = np.asarray(tau, np.float64)
        if not np.all(t > 0):
            raise ConversionError(f"{field} = {_first_bad(t, t > 0):g}: a time constant must be positive", node=k,
                                  op=typ, hint=f"snnTorch writes {field} = dt / (1 - {key}): a negative one is a "
                                               f"{key} above 1, which snnTorch's neuron clamps to 1; clamp it before "
                                               "export")
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.disc == "zoh":
                d = _EXP(-self.dt / t)
                return _one(d), _one(np.where(np.isfinite(t), 1.0 - d, self.dt / t)), {}
            d, c = 1.0 - self.dt / t, self.dt / t
        if np.any(d < 0):
            bad = float(t[d < 0].min()) if t.ndim else float(t)
            raise ConversionError(f"forward Euler with dt = {self.dt:.7g} s > {field} = {bad:.7g} s gives {key} = "
                                  f"1 - dt/{field} = {1.0 - self.dt / bad:.6g} < 0 (snnTorch would clamp it to 0: not "
                                  "the ODE)", node=k, op=typ,
                                  hint="Pass a smaller dt (--dt), or the zoh discretization (--discretization zoh)")
        written = self._written(k, key, t)
        if written is not None:
            return written, _one(c), {f"{key}_from": "metadata"}
        if self.disc == "snntorch":
            d, exact = snntorch_betas(t, self.dt)
            return d, _one(c), {f"{key}_inverts_export": exact}
        return _one(d), _one(c), {}

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
            ok = (0 <= d) & (d < 1) & (self.dt / (1.0 - d) == tau)
        return _one(d) if ok.all() else None

    # -- current-based and non-spiking neurons (CubaLIF; LI, CubaLI, I) ----------------------------------------------
    def _cuba_params(self, k: str, typ: str, node: Any, shape: Shape, spiking: bool) -> dict:
        """The checked parameters of a CubaLIF / CubaLI (one value per layer or per neuron); v_leak (and v_reset)
        must be 0."""
        self._zero(k, typ, node, "v_leak", shape, "neurocompile's neurons leak towards 0 (a leak potential would be a "
                   "constant current (1 - beta)·v_leak, not supported yet)")
        fields = ("tau_syn", "tau_mem", "r", "w_in") + (("v_threshold",) if spiking else ())
        if spiking:
            self._zero(k, typ, node, "v_reset", shape, "neurocompile's neurons reset to 0 (hard reset)")
        return {f: self._values(k, typ, node, f, shape) for f in fields}

    def _cuba(self, k: str, typ: str, node: Any, shape: Shape, spiking: bool) -> tuple[dict, Value, dict]:
        """(alpha, beta and, for a CubaLIF, the threshold; the input gain g_syn g_mem; the record) of a CubaLIF /
        CubaLI."""
        p = self._cuba_params(k, typ, node, shape, spiking)
        alpha, c_syn, n_syn = self._decay(k, typ, p["tau_syn"], "tau_syn", "alpha")
        beta, c_mem, n_mem = self._decay(k, typ, p["tau_mem"], "tau_mem", "beta")
        gain = _one(np.asarray(_input_gain(p["w_in"], c_syn, p["tau_syn"])) * _input_gain(p["r"], c_mem, p["tau_mem"]))
        thr = {"threshold": p.pop("v_threshold")} if spiking else {}
        if not np.isfinite(thr.get("threshold", 0.0)).all():
            raise ConversionError(f"v_threshold = {_first_bad(thr['threshold'])!r} is not finite", node=k, op=typ)
        return {"alpha": alpha, "beta": beta, **thr}, gain, {**{f: _summary(v) for f, v in p.items()}, **n_syn, **n_mem}

    def _CubaLIF(self, k, node, x, shape):
        values, gain, record = self._cuba(k, "CubaLIF", node, shape, spiking=True)
        return self._cell(k, "CubaLIF", "CubaLIF", x, values, gain, record)

    def _integrator(self, k: str, typ: str, x: str, values: dict, gain: Value, record: dict) -> str:
        """An LI node (the IR's non-spiking integrator) after the input gain; its output is its membrane."""
        y = self._cell(k, typ, "LI", x, values, gain, record)
        self.membrane_outputs[y] = k
        return y

    def _LI(self, k, node, x, shape):
        self._zero(k, "LI", node, "v_leak", shape, "neurocompile's LI leaks towards 0 (a leak potential would be a "
                   "constant current (1 - beta)·v_leak, not supported yet)")
        tau, r = self._values(k, "LI", node, "tau", shape), self._values(k, "LI", node, "r", shape)
        beta, c, note = self._decay(k, "LI", tau, "tau", "beta")
        return self._integrator(k, "LI", x, {"beta": beta}, _input_gain(r, c, tau),
                                {"tau": _summary(tau), "r": _summary(r), **note})

    def _CubaLI(self, k, node, x, shape):
        decays, gain, record = self._cuba(k, "CubaLI", node, shape, spiking=False)
        return self._integrator(k, "CubaLI", x, decays, gain, record)

    def _I(self, k, node, x, shape):
        r = self._values(k, "I", node, "r", shape)
        return self._integrator(k, "I", x, {"beta": 1.0}, _one(np.multiply(r, self.dt)),
                                {"r": _summary(r), "rule": "v = v + r·dt·I (LI with beta 1)"})

    def _check_neurons(self) -> None:
        """A network of leaky integrators only (no spiking neuron) is refused: its T would not be scheduled."""
        from neurocompile.ops import OPS

        if self.membrane_outputs and not any(OPS[n.op].spiking for n in self.out.nodes.values()):
            y = next(iter(self.membrane_outputs))
            k = self.membrane_outputs[y]
            raise ConversionError("the NIR graph has leaky integrators but no spiking neuron: neurocompile runs spiking "
                                  "networks (LI, CubaLI and I as layers or readouts of one)", node=k, op=self.types[k],
                                  hint="Run a purely linear filter in its own tool; add a spiking layer to compile it")


def _one(a: Any) -> Any:
    """``a`` as one float where all its elements are equal (or it is a scalar), else as a float64 array."""
    a = np.asarray(a, np.float64)
    return float(a.reshape(-1)[0]) if a.size and (a.ndim == 0 or np.all(a == a.reshape(-1)[0])) else a


def _input_gain(r: Any, c: Any, tau: Any) -> Any:
    """The input gain r c of a compartment (c: dt/tau or 1 - exp(-dt/tau)); where tau and r are both infinite, as
    snnTorch exports a decay of exactly 1 (tau = dt / 0, r = tau / dt), it is 1, what snnTorch's r = tau / dt means."""
    r, c, tau = (np.asarray(v, np.float64) for v in (r, c, tau))
    with np.errstate(invalid="ignore"):
        g = r * c
    return _one(np.where(np.isinf(tau) & np.isinf(r), 1.0, g))


def _summary(v: Any) -> Any:
    """A parameter as recorded in ``meta['nir']['neurons']``: its value, or [min, max] of per-neuron values."""
    return float(v) if np.ndim(v) == 0 else [float(np.min(v)), float(np.max(v))]


def _first_bad(a: Any, ok: Any = None) -> float:
    """The first element of ``a`` that is not finite (or, given ``ok``, where ``ok`` is False)."""
    a = np.asarray(a, np.float64)
    bad = ~np.isfinite(a) if ok is None else ~np.asarray(ok)
    return float(a.reshape(-1)[int(np.flatnonzero(bad.reshape(-1))[0])]) if bad.any() else float(a.reshape(-1)[0])


def _ext_doc(metadata: dict, k: str, typ: str) -> dict:
    """The JSON record under metadata key ``neurocompile`` ({} if none)."""
    raw = metadata.get("neurocompile")
    if raw is None:
        return {}
    try:
        doc = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    except ValueError as exc:
        raise ModelLoadError(f"the 'neurocompile' metadata is not JSON ({exc})", node=k or None, op=typ) from None
    if not isinstance(doc, dict):
        raise ModelLoadError("the 'neurocompile' metadata is not a JSON object", node=k or None, op=typ)
    return doc


def _extension_doc(graph: Any) -> dict:
    """The graph's record of neurocompile's extension (metadata ``neurocompile``, format ``neurocompile-nir/1``; {} if
    the file has none), its numbers checked where they are read (ModelLoadError): ``dt`` a positive number of
    seconds, ``time_steps``, ``steps`` and ``t_wake`` integers >= 1 (2.5 refused, not truncated), ``kind`` "student"
    or "casc"."""
    doc = _ext_doc(graph.metadata if isinstance(getattr(graph, "metadata", None), dict) else {}, "", "NIRGraph")
    if doc.get("format") != "neurocompile-nir/1":
        return {}

    def bad(key: str, what: str) -> ModelLoadError:
        return ModelLoadError(f"neurocompile's extension record of the graph has {key} = {doc[key]!r}: {what}",
                              op="NIRGraph", hint="The file was damaged or edited; export it again")

    if doc.get("kind") not in ("student", "casc"):
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


_RULES = {
    "snntorch": "forward Euler: v = beta·v + (r·dt/tau)·I, beta = 1 - dt/tau rounded to float32 (snnTorch's Leaky)",
    "euler": "forward Euler: v = beta·v + (r·dt/tau)·I, beta = 1 - dt/tau",
    "zoh": "exact for input held over the step: v = beta·v + r·(1 - beta)·I, beta = exp(-dt/tau)",
}


def snntorch_beta(tau: float, dt: float) -> tuple[float, bool]:
    """The float32 beta of an snnTorch ``Leaky`` whose export wrote ``tau``: snnTorch computes tau = dt / (1 - beta)
    from its float32 beta, in float64 for a scalar beta and in float32 for a tensor one. Among the float32 values
    within 3 ulps of 1 - dt/tau, the one whose export (either way) gives ``tau`` exactly, the nearest if several
    do; (beta, True). If none does (a file snnTorch did not write): 1 - dt/tau rounded to float32, (beta, False).
    Rounding alone misses about 0.4 % of the betas in [0.5, 1) that snnTorch writes as float32 tau; below 0.5
    several float32 betas give the same float32 tau and the nearest is taken (snnTorch's export lost the rest)."""
    approx = 1.0 - dt / tau
    b0 = np.float32(approx)
    cands, lo, hi = [b0], b0, b0
    for _ in range(3):
        lo, hi = np.nextafter(lo, np.float32(-1)), np.nextafter(hi, np.float32(2))
        cands += [lo, hi]
    hits = []
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for b in cands:
            if not 0 <= b <= 1:
                continue
            t32 = np.float32(dt) / (np.float32(1) - b)
            t64 = dt / (1.0 - np.float64(b))
            if float(t32) == tau or float(t64) == tau:
                hits.append(b)
    if not hits:
        return float(b0), False
    return float(min(hits, key=lambda b: abs(float(b) - approx))), True


def snntorch_betas(tau: Any, dt: float) -> tuple[Any, bool]:
    """:func:`snntorch_beta` of one tau or of per-neuron taus (each distinct value once): (beta or betas, whether every
    one inverts snnTorch's export)."""
    t = np.asarray(tau, np.float64)
    if t.ndim == 0:
        return snntorch_beta(float(t), dt)
    distinct, where = np.unique(t, return_inverse=True)
    found = [snntorch_beta(float(v), dt) for v in distinct]
    return _one(np.array([b for b, _ in found])[where].reshape(t.shape)), all(e for _, e in found)


def _ints(v: Any, n: int | None, k: str, typ: str, what: str, least: int | None = None) -> list[int]:
    """An int or n ints (NIR writes either; ``n`` None: any number) as a list of n ints, each >= ``least`` if given
    (a non-integer such as 2.5, NaN or inf is refused, not truncated)."""
    a = _arr(v).reshape(-1)
    if a.size == 1 and n is not None:
        a = np.repeat(a, n)
    count = ("an integer" if a.size == 1 else "integers") if n is None else f"an integer or {n} integers"
    if (n is not None and a.size != n) or a.dtype.kind not in "iuf" or not np.all(np.isfinite(a)) \
            or np.any(a != np.round(a)):
        raise ModelLoadError(f"{what} {_shown(v)}: expected {count}", node=k, op=typ)
    if least is not None and np.any(a < least):
        raise ModelLoadError(f"{what} {_shown(v)}: each must be >= {least}", node=k, op=typ)
    return [int(x) for x in a]


# the extension's record ops whose node the importer reads by its record, and the NIR types the exporter writes them
# as: a record on another type (a SumPool2d that says AvgPool, say) contradicts its node
_POOL_TYPES = ("AvgPool2d",)
_RECORD_TYPES = {"AvgPool": _POOL_TYPES, "GlobalAvgPool": _POOL_TYPES, "MaxPool": _POOL_TYPES,
                 "StepMaxPool": _POOL_TYPES, "InhibitionMaxPool": _POOL_TYPES, "CIF": ("IF",), "IF": ("IF",)}
# the fields where +inf means something (no leak: snnTorch writes a clamped beta of 1 as tau = inf, and r = inf beside
# it, the gain r·dt/tau staying finite): a time constant anywhere, an input gain only where its time constant is inf
_INF_OK = {"tau": (), "tau_syn": (), "tau_mem": (), "r": ("tau", "tau_mem"), "w_in": ("tau_syn",)}


def _check_fields(k: str, typ: str, node: Any, what: str = "") -> None:
    """Every numeric field of a NIR node holds finite numbers, whether or not the importer uses it (a field the
    extension's record supersedes is still part of the file: NaN there is damage), except +inf where it means
    something (:data:`_INF_OK`). ModelLoadError naming the field."""
    fields = dict(vars(node)) if hasattr(node, "__dict__") else {}  # a copy: the port shapes are added below
    for field, types in list(fields.items()):  # input_type / output_type: {port: shape}, shapes of finite numbers
        if field != "metadata" and isinstance(types, dict):
            fields.update({f"{field}[{port!r}]": v for port, v in types.items() if not isinstance(v, (str, bytes))})
    for field, v in fields.items():
        if field == "metadata" or v is None or isinstance(v, (str, bytes, dict)):
            continue
        try:
            a = np.asarray(v)
        except Exception:  # noqa: BLE001 - not array-like: the handlers judge such fields
            continue
        if a.dtype.kind not in "fc" or np.isfinite(a).all():
            continue
        bad = ~np.isfinite(a)
        if field in _INF_OK:
            ok = a == np.inf
            taus = [np.asarray(fields[t]) for t in _INF_OK[field] if fields.get(t) is not None]
            if taus:  # an input gain: +inf only where its time constant is +inf too
                try:
                    ok &= np.broadcast_to(taus[0] == np.inf, a.shape)
                except ValueError:
                    ok &= False
            elif _INF_OK[field]:
                ok &= False
            bad &= ~ok
        if bad.any():
            first = float(a[bad].flat[0])
            shown = "NaN" if math.isnan(first) else repr(first)
            raise ModelLoadError(f"{what}{field} holds {shown} (a non-finite value; "
                                 "every numeric field of a NIR node is checked, used or not)", node=k, op=typ,
                                 hint="The file was damaged or edited; write it again")


def _numbers(v: Any, k: str, typ: str, field: str) -> np.ndarray:
    """A NIR array field as float64; one that holds no numbers (a string, say) is a malformed node."""
    a = _arr(v)
    if a.dtype.kind not in "iuf":
        raise ModelLoadError(f"{field} {_shown(v)} is not an array of numbers", node=k, op=typ)
    return a.astype(np.float64)


def _shown(v: Any) -> str:
    """A file's value for a message: a short list, not an array repr over several lines."""
    a = _arr(v)
    return repr(a.tolist()) if a.size <= 8 else f"of shape {a.shape}"


# the integer fields of NIR's convs, pools and Flatten, and their least values (padding may also be "same" or "valid")
_GEOMETRY = {"stride": 1, "dilation": 1, "kernel_size": 1, "padding": 0, "groups": 1,
             "start_dim": None, "end_dim": None}
