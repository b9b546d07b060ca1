"""IR -> NIR: a converted spiking graph written as a NIR file (nir 1.0.8) that other tools load.

The input is a converted graph (``api.convert``: it has a wake/sleep schedule). NIR edges carry no delay, so the file
is the network as the reference target runs it without synaptic delays; a graph converted for a target with delays
is written the same way when its schedule balances every merge (the delays then only shift each layer in time).
Discretization: ``dt`` (default 1e-4 s) with snnTorch's convention, forward Euler, tau = dt / (1 - beta),
r = tau / dt, so the input gain r dt / tau is 1 and snnTorch's importer (beta = 1 - dt / tau) and neurocompile's
(:func:`neurocompile.frontends.nir.snntorch_beta`) recover beta.

Exact mapping (LIF students: ONNX models of the PyTorch kit, graphs imported from NIR):

=====================  ===================================================================================
IR                     NIR
=====================  ===================================================================================
Input / outputs        Input / Output (a graph output is read out as the mean over the T steps)
Conv                   Conv2d (symmetric pads; bias, zeros when it has none: snnTorch's importer needs one)
Dense                  Affine (with bias) or Linear
AvgPool                AvgPool2d (padding 0, whole windows); GlobalAvgPool: AvgPool2d over the whole map
StepMaxPool            a student's max pool (each step's values; MaxPool in its ONNX file): no NIR node, the
                       extension's labelled AvgPool2d approximation (below), so such a student is exact for
                       neurocompile only
Flatten, Reshape       Flatten (a Reshape only where it merges adjacent dims)
Add (data inputs)      no node: every consumer gets an edge from each addend (NIR sums the edges into a node)
Mul by a constant      Scale (the constant broadcast to the tensor's shape); a Mul the NIR importer made for a
                       neuron's input gain is folded back into that neuron's r
LIF                    LIF with per-neuron arrays (snnTorch's importer needs them): tau, r, v_leak 0,
                       v_threshold, v_reset 0; a neuron imported from NIR as IF or Threshold is written as such
                       with the values it had
CubaLIF                CubaLIF with per-neuron arrays: tau_syn = dt/(1 - alpha), w_in = tau_syn/dt,
                       tau_mem = dt/(1 - beta), r = tau_mem/dt (snnTorch's Synaptic export), v_leak 0, v_threshold,
                       v_reset 0; one imported from NIR with the values it had
LI                     LI (tau = dt/(1 - beta), r = tau/dt, v_leak 0), I when beta = 1 (r = 1/dt), CubaLI when it has
                       a synaptic current (alpha: as CubaLIF, no threshold); one imported from NIR as LI, I or
                       CubaLI is written as such with the values it had
Identity, Dropout      nothing
=====================  ===================================================================================

Every node's metadata (``node.metadata``, kept by ``nir.write``/``nir.read``) holds ``"neurocompile"``: a JSON string
with what neurocompile's importer needs to rebuild the IR node exactly (``op``; for LIF ``beta`` and ``threshold``,
for CubaLIF ``alpha``, ``beta`` and ``threshold``, for LI ``beta`` and, with a current, ``alpha``; also written as
plain numbers). A parameter that differs from neuron to neuron (``ops.Op.per_neuron``) is written per neuron by the
same rules (tau = dt / (1 - beta) for each neuron, the threshold as v_threshold) and its metadata lists the layer's
distinct values (``beta_values``, ``alpha_values``), from which the importer takes each neuron's exactly. The graph's metadata holds ``"neurocompile"`` (JSON: ``format`` =
:data:`EXTENSION`, ``kind``, ``dt``, ``time_steps``, ``t_wake``, ``steps``, ``readout``) and, as plain numbers,
``dt``, ``time_steps`` (students: T) or ``t_wake`` and ``steps`` (CASC).

**The neurocompile CASC extension** (converted CQReLU ANNs; science.md section 1). NIR has no signed spikes, no
subtractive reset, no count clip and no wake/sleep schedule, so each CIF (or IF-baseline) layer is written as

- a standard ``nir.IF`` (r = 1/dt, v_threshold = the firing threshold theta / rate, v_reset 0) followed by a
  ``nir.Scale`` of the spike amplitude (what one spike is worth to the next layer): what other tools load. It is an
  **approximation**, labelled so in the node's metadata (``"approximation"``): NIR's IF resets to 0 and never sends
  negative spikes; the CIF neuron resets by subtraction, retracts earlier spikes with negative ones, clips its count
  to the wake steps seen and sends up to gamma spikes per step. The IF node's ``"neurocompile"`` metadata holds
  the exact neuron (``op`` CIF or IF and every attribute: threshold, levels, gamma, rate, shift, amplitude); the
  Scale's names it (``role`` "amplitude", ``of``).
- **max pooling** (InhibitionMaxPool, the lateral-inhibition pool of a CASC network; a student's StepMaxPool, the max of each
  step's values, alike): NIR
  1.0.8 has no max pool, so it is a standard ``nir.AvgPool2d`` with the pool's kernel, stride and (symmetric)
  padding, the same windows and output shape: what other tools load. It is an **approximation**, labelled so in
  the node's metadata (``"approximation"``): for non-negative inputs (the spikes other tools see), a window's average
  never exceeds its maximum and equals it where the window's inputs agree (a SumPool2d would exceed it up to kernel-size
  times, and snnTorch 1.0.0's importer maps AvgPool2d but not SumPool2d); NIR pads with 0 where the max pool pads
  with -inf. The node's ``"neurocompile"`` metadata holds the exact pool (``op`` and every attribute: kernel,
  stride, pads, ceil_mode). A pool the AvgPool2d cannot mirror is refused: asymmetric pads, or a partial (ceil_mode)
  window (NIR's pools have none: another output shape). A torch AvgPool2d refuses padding over half the kernel,
  which the IR's pool allows (pads below the kernel): such a file is valid NIR that snnTorch cannot build.
- **wake-gated biases as a gated input channel**: a bias is on only during the wake phase, so it is not written
  into its Conv2d/Affine. Instead the file has gate Input nodes (``role`` "gate") named ``wake_<shape>``: shape
  (1, H, W) for a conv bias on an (C, H, W) map, (1,) for a dense bias. Each bias is a branch from its gate,
  a 1x1 Conv2d with weights ``bias[c]`` or a Linear with weights ``bias[:, None]`` (``role`` "bias", ``of``: the
  layer), into the same consumers as its layer. Feed every gate 1 on the T_wake wake steps and 0 after, and the
  data input x on the wake steps and 0 after; run ``steps`` steps; the readout is the sum of the Output over all
  steps divided by T_wake.

neurocompile's importer reads the extension back to the same IR (the CIF attributes, the biases on their layers,
the max pools with their attributes), so the file converts (``api.convert(g, steps=T)``) to the network that was
exported: the same readout in the float64 reference simulator. Other tools see a labelled approximation.

Refused (ConversionError naming the node and op): fixed-point graphs (Lava's truncating decays and integer units
have no NIR form), a lowered graph, unbalanced delays, Concat, Div, Sub,
BatchNorm or Affine that was not folded, an Add with a constant or integer gains or an input added to itself,
asymmetric pads, average pools with padding or partial windows, max pools with asymmetric pads or a partial
(ceil_mode) window, a Reshape that is no Flatten, a LIF with a fixed-point
``dv``, a decay outside [0, 1) (no tau = dt / (1 - decay); a layer whose beta is 1 throughout is an IF or I, one
where only some neurons' is 1 is refused), and for students
any constant term outside a Conv/Dense bias.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from neurocompile.ir import ops
from neurocompile.errors import ConversionError
from neurocompile.frontends.nir.discretize import DEFAULT_DT, export_r, export_tau
from neurocompile.frontends.nir.extension import EXTENSION, META, Part, node_meta
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import is_level_neuron, op_of

_APPROX = ("nir.IF approximation of a neurocompile {op} neuron: NIR's IF resets to 0 and sends no negative spikes; "
           "the exact neuron (subtractive reset, signed spikes, count clipped to the wake steps) is in the "
           "'neurocompile' metadata")
_HINT = "Export neurocompile's own artifact instead: neurocompile export MODEL -o net.h5"
_POOL_APPROX = ("nir.AvgPool2d approximation of a neurocompile {op}: NIR has no max pool; the window average (the "
                "same kernel, stride and padding) never exceeds the window's maximum and equals it where the window's "
                "inputs agree; the exact pool ({what}) is in the 'neurocompile' metadata")
# what a max pool op computes, for its approximation's label (StepMaxPool and a MaxPool: the maximum of each step's)
_POOL_RULES = {"InhibitionMaxPool": "lateral inhibition: each window accumulates its inputs and sends the largest "
                                    "accumulator"}


@dataclass
class NirExport:
    """What was written: the NIR graph, the kind of network and counts for the CLI's line."""

    graph: Any
    kind: str                      # "student" or "casc"
    dt: float
    time_steps: int                # students: T; CASC: the total steps of the zero-delay run
    t_wake: int
    types: dict[str, int] = field(default_factory=dict)  # NIR node type -> count

    def approximations(self) -> dict[str, str]:
        """IR op -> the NIR type written as its labelled approximation (metadata ``"approximation"``): what other tools
        run in place of the exact node that neurocompile's extension records."""
        found = {}
        for node in self.graph.nodes.values():
            meta = getattr(node, "metadata", None) or {}
            if "approximation" in meta and META in meta:
                found[json.loads(meta[META])["op"]] = type(node).__name__
        return dict(sorted(found.items()))


def write_nir(graph: Graph, path: str, dt: float = DEFAULT_DT) -> NirExport:
    """Write the converted ``graph`` to ``path`` as a NIR file (HDF5, ``nir.write`` without compression: h5py
    refuses gzip for 0-d arrays), atomically: a refused graph or a failed write leaves no file."""
    import io

    import nir

    from neurocompile.atomic import write_atomic

    exp = to_nir(graph, dt)
    buf = io.BytesIO()
    nir.write(buf, exp.graph, compression=None)
    data = buf.getvalue()
    write_atomic({path: lambda f: f.write(data)})
    return exp


def to_nir(graph: Graph, dt: float = DEFAULT_DT) -> NirExport:
    """The ``nir.NIRGraph`` of a converted graph (see the module docstring for what is exact and what is refused)."""
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ConversionError(f"dt must be a positive time step in seconds, got {dt!r}")
    return _Exporter(graph, float(dt)).run()


def _key(name: str) -> str:
    """A NIR node key from an IR name: HDF5 group names cannot hold '/' (ONNX names do: '/c1/Conv' -> 'c1_Conv')."""
    return name.strip("/").replace("/", "_") or "node"


def _f32(a: Any) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, np.float32))


class _Exporter:
    def __init__(self, graph: Graph, dt: float):
        if graph.schedule is None:
            raise ConversionError("NIR export takes a converted network (it has no wake/sleep schedule yet)",
                                  hint="Convert it first: api.convert(graph), or use api.export_nir(model, path)")
        if graph.meta.get("fixed_point"):
            raise ConversionError("a fixed-point network has no NIR form (Lava's integer units and truncating decays "
                                  "are no NIR neuron)", hint="Export the floating-point conversion (drop --fixed-point)")
        if graph.meta.get("lowered"):
            raise ConversionError("a lowered graph (biases moved to the neurons) cannot be exported to NIR",
                                  hint="Export the converted graph before lowering")
        import nir

        self.nir, self.g, self.dt = nir, graph, dt
        self.s = graph.schedule
        self.casc = any(is_level_neuron(n) for n in graph.nodes.values())
        self.nir_meta = graph.meta.get("nir", {})
        self.neuron_records: dict[str, dict] = self.nir_meta.get("neurons", {}) if self._same_dt() else {}
        self.gain_nodes = {r["gain_node"]: k for k, r in self.neuron_records.items() if "gain_node" in r}
        self.nodes: dict[str, Any] = {}
        self.edges: list[tuple[str, str]] = []
        self.terms: dict[str, list[str]] = {}   # IR tensor -> the NIR nodes whose outputs sum to it
        self.keys: dict[str, str] = {}          # IR node name -> NIR key
        self.gates: dict[tuple[int, ...], str] = {}

    def _same_dt(self) -> bool:
        """Records of a NIR import apply when the file is written with the dt it was read with."""
        return self.nir_meta.get("dt") is not None and float(self.nir_meta["dt"]) == self.dt

    # -- driver ----------------------------------------------------------------------------
    def run(self) -> NirExport:
        g = self.g
        self._check_delays()
        cons = g.consumers()
        for n in g.topo():
            self._node(n, cons)
        outs = list(dict.fromkeys(g.outputs))
        names = self.nir_meta.get("outputs", {})  # a NIR import's Output names
        for i, t in enumerate(outs):
            key = self._new_key(_key(names.get(t, "output" if len(outs) == 1 else f"output_{i}")))
            self.nodes[key] = self.nir.Output(output_type=np.array(g.shapes[t]))
            self._connect(t, key)
        steps, t_wake = self._steps()
        kind = "casc" if self.casc else "student"
        doc = {"format": EXTENSION, "kind": kind, "dt": self.dt, "discretization": "snntorch (forward Euler, "
               "tau = dt / (1 - beta), r = tau / dt)", "t_wake": t_wake, "steps": steps,
               "readout": ("sum of the Output over all steps / t_wake; input and gates on for the first t_wake steps"
                           if self.casc else "mean of the Output over the T steps; the input on every step"),
               "source": g.name}
        if not self.casc:
            doc["time_steps"] = steps
        meta = {META: json.dumps(doc), "dt": self.dt,
                **({"t_wake": t_wake, "steps": steps} if self.casc else {"time_steps": steps})}
        graph = self.nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=meta, type_check=False)
        types: dict[str, int] = {}
        for v in self.nodes.values():
            types[type(v).__name__] = types.get(type(v).__name__, 0) + 1
        return NirExport(graph, kind, self.dt, steps, t_wake, types)

    def _check_delays(self) -> None:
        """Delays are a target's: the file is the zero-delay network, the same when every merge is balanced."""
        s, g = self.s, self.g
        if not s.synapse_delay and not s.delay:
            return
        prod = g.producers()
        for n in g.topo():
            if not op_of(n).merge or len(n.inputs) < 2:
                continue
            extra = s.balance.get(n.name, [0] * len(n.inputs))
            arr = {s.lag(prod[t].name) + e for t, e in zip(n.inputs, extra)}
            if len(arr) > 1:
                raise ConversionError("the schedule does not balance this merge's branches (converted with "
                                      "--no-balance): the network depends on its synaptic delays, which NIR edges do not "
                                      "carry", node=n.name, op=n.op, hint="Convert with balancing, or for the reference "
                                                                         "target")

    def _steps(self) -> tuple[int, int]:
        """(steps, t_wake) of the zero-delay run: the schedule's steps less the readout's arrival."""
        s, prod = self.s, self.g.producers()
        last = max((s.lag(prod[t].name) for t in self.g.outputs), default=0)
        return int(s.steps) - int(last), int(s.t_wake)

    # -- helpers ---------------------------------------------------------------------------
    def _new_key(self, base: str) -> str:
        key, i = base, 1
        while key in self.nodes:
            key, i = f"{base}_{i}", i + 1
        return key

    def _emit(self, n: Node, node: Any, suffix: str = "") -> str:
        key = self._new_key(_key(n.name) + suffix)
        self.nodes[key] = node
        return key

    def _connect(self, tensor: str, dst: str) -> None:
        for src in self.terms[tensor]:
            self.edges.append((src, dst))

    def _after_input(self, n: Node, node: Any) -> None:
        """``node`` for ``n``: fed by ``n``'s input, standing for its output."""
        key = self._emit(n, node)
        self._connect(n.inputs[0], key)
        self.terms[n.output] = [key]

    def _refuse(self, n: Node, why: str, hint: str = _HINT) -> None:
        raise ConversionError(f"{why}: NIR has no exact form for it", node=n.name, op=n.op, hint=hint)

    def _shape(self, t: str) -> tuple[int, ...]:
        return tuple(int(d) for d in self.g.shapes[t])

    # -- nodes -----------------------------------------------------------------------------
    def _node(self, n: Node, cons: dict) -> None:
        op = op_of(n)
        if n.name in self.gain_nodes:  # the NIR importer's input gain of a neuron: written back as that neuron's r
            self.terms[n.output] = self.terms[n.inputs[0]]
            return
        handler = getattr(self, f"_{n.op}", None)
        if handler is None:
            why = {"Concat": "a concatenation", "Div": "a division by a constant "
                   "(x / c and x * (1/c) round differently)", "Readout": "a readout of a lowered graph"}
            self._refuse(n, why.get(n.op, f"the op {n.op}"))
        handler(n, op)

    def _Input(self, n: Node, op: ops.Op) -> None:
        key = self._emit(n, self.nir.Input(input_type=np.array(self._shape(n.output))))
        self.terms[n.output] = [key]

    def _StepDelay(self, n: Node, op: ops.Op) -> None:
        """A delay of the network itself: NIR's Delay, in seconds (steps times dt) for every element."""
        self._after_input(n, self.nir.Delay(delay=np.full(self._shape(n.output), op.output_delay(n) * self.dt),
                                           metadata=node_meta(op=n.op, steps=op.output_delay(n))))

    def _Identity(self, n: Node, op: ops.Op) -> None:
        self.terms[n.output] = self.terms[n.inputs[0]]

    _Dropout = _Identity

    def _Add(self, n: Node, op: ops.Op) -> None:
        if "const" in n.params:
            self._refuse(n, "an addition of a constant")
        if any(k != 1 for k in op.input_gains(n)):
            self._refuse(n, "an addition with integer gains (fixed point)")
        terms = [k for t in n.inputs for k in self.terms[t]]
        if len(set(terms)) != len(terms):
            self._refuse(n, "a tensor added to itself (NIR edges are a set: tools drop a duplicate edge)",
                         hint="Write x + x as a Mul by 2")
        self.terms[n.output] = terms

    def _layer(self, n: Node, node: Any, bias: np.ndarray | None, gate_shape: tuple[int, ...]) -> None:
        """A synaptic layer's node, fed by its input; a CASC bias becomes a branch from the wake gate."""
        key = self._emit(n, node)
        self._connect(n.inputs[0], key)
        self.keys[n.name] = key
        self.terms[n.output] = [key]
        if bias is not None and self.casc:
            self.terms[n.output].append(self._gated_bias(n, key, bias, gate_shape))

    def _gated_bias(self, n: Node, of: str, bias: np.ndarray, gate_shape: tuple[int, ...]) -> str:
        nir = self.nir
        gate = self.gates.get(gate_shape)
        if gate is None:
            gate = self._new_key("wake_" + "x".join(map(str, gate_shape)))
            self.nodes[gate] = nir.Input(input_type=np.array(gate_shape),
                                         metadata=Part.GATE.record())
            self.gates[gate_shape] = gate
        b = _f32(bias)
        info = Part.BIAS.record(of=of)
        if len(gate_shape) == 3:
            node = nir.Conv2d(input_shape=np.array(gate_shape[1:]), weight=b.reshape(-1, 1, 1, 1), stride=np.array([1, 1]),
                              padding=np.array([0, 0]), dilation=np.array([1, 1]), groups=1,
                              bias=np.zeros(b.size, np.float32), metadata=info)
        else:
            node = nir.Linear(weight=b.reshape(-1, 1), metadata=info)
        key = self._new_key(f"{of}.bias")
        self.nodes[key] = node
        self.edges.append((gate, key))
        return key

    def _Conv(self, n: Node, op: ops.Op) -> None:
        t, l, b, r = (int(v) for v in op.attr(n, "pads"))
        if (t, l) != (b, r):
            self._refuse(n, f"asymmetric pads {[t, l, b, r]} (NIR's Conv2d pads both sides alike)")
        w = _f32(n.params["weight"])
        bias = n.params.get("bias")
        stored = bias if bias is not None and not self.casc else None
        in_shape, out_shape = self._shape(n.inputs[0]), self._shape(n.output)
        node = self.nir.Conv2d(input_shape=np.array(in_shape[1:]), weight=w,
                               stride=np.array(ops.pair(op.attr(n, "stride"))), padding=np.array([t, l]),
                               dilation=np.array(ops.pair(op.attr(n, "dilation"))), groups=int(op.attr(n, "groups")),
                               bias=_f32(stored) if stored is not None else np.zeros(w.shape[0], np.float32),
                               metadata=node_meta(op="Conv"))
        self._layer(n, node, bias, (1, *out_shape[1:]))

    def _Dense(self, n: Node, op: ops.Op) -> None:
        w = _f32(n.params["weight"])
        bias = n.params.get("bias")
        if bias is not None and not self.casc:
            node = self.nir.Affine(weight=w, bias=_f32(bias), metadata=node_meta(op="Dense"))
        else:
            node = self.nir.Linear(weight=w, metadata=node_meta(op="Dense"))
        self._layer(n, node, bias, (1,))

    def _Mul(self, n: Node, op: ops.Op) -> None:
        shape = self._shape(n.output)
        c = np.asarray(n.params["const"])
        try:
            scale = np.broadcast_to(c, shape)
        except ValueError:
            self._refuse(n, f"a Mul by a constant of shape {c.shape} that does not broadcast to {shape}")
        self._after_input(n, self.nir.Scale(scale=_f32(scale), metadata=node_meta(op="Mul")))

    def _pool(self, n: Node, kernel: tuple[int, int], stride: tuple[int, int], op_name: str) -> None:
        self._after_input(n, self.nir.AvgPool2d(kernel_size=np.array(kernel), stride=np.array(stride),
                                                padding=np.array([0, 0]), metadata=node_meta(op=op_name)))

    def _AvgPool(self, n: Node, op: ops.Op) -> None:
        if any(int(v) for v in op.attr(n, "pads")) or op.attr(n, "divisor_override") is not None:
            self._refuse(n, f"an AvgPool with pads {list(op.attr(n, 'pads'))} (NIR does not say whether padded zeros "
                         "count)", hint="Pool without padding")
        k, s = ops.pair(op.attr(n, "kernel")), ops.pair(op.attr(n, "stride"))
        (_, H, W), (_, Ho, Wo) = self._shape(n.inputs[0]), self._shape(n.output)
        if (Ho, Wo) != ((H - k[0]) // s[0] + 1, (W - k[1]) // s[1] + 1):
            self._refuse(n, "an AvgPool with a partial (ceil_mode) window")
        self._pool(n, k, s, "AvgPool")

    def _GlobalAvgPool(self, n: Node, op: ops.Op) -> None:
        if op.attr(n, "divisor_override") is not None:
            self._refuse(n, "a GlobalAvgPool with a divisor override (fixed point)")
        _, H, W = self._shape(n.inputs[0])
        self._pool(n, (H, W), (H, W), "GlobalAvgPool")

    def _MaxPool(self, n: Node, op: ops.Op) -> None:
        """StepMaxPool (students; MaxPool before conversion) / InhibitionMaxPool (CASC): the extension, a labelled nir.AvgPool2d approximation with
        the pool's kernel, stride and padding, the exact pool (op and every attribute) in its metadata."""
        if "bias" in n.params:
            self._refuse(n, "a lowered pool (the current reaching it moved to it)")
        t, l, b, r = (int(v) for v in op.attr(n, "pads"))
        hint = ("Pool with symmetric pads and whole windows, or export neurocompile's own artifact: "
                "neurocompile export MODEL -o net.h5")
        if (t, l) != (b, r):
            self._refuse(n, f"a max pool with asymmetric pads {[t, l, b, r]} (NIR's pools pad both sides alike)", hint)
        k, s = ops.pair(op.attr(n, "kernel")), ops.pair(op.attr(n, "stride"))
        (_, H, W), (_, Ho, Wo) = self._shape(n.inputs[0]), self._shape(n.output)
        if (Ho, Wo) != ((H + 2 * t - k[0]) // s[0] + 1, (W + 2 * l - k[1]) // s[1] + 1):
            self._refuse(n, f"a max pool with a partial (ceil_mode) window: {(Ho, Wo)} windows where NIR's pools "
                         f"have {((H + 2 * t - k[0]) // s[0] + 1, (W + 2 * l - k[1]) // s[1] + 1)}", hint)
        attrs = {a: (v.tolist() if hasattr(v, "tolist") else v) for a, v in n.attrs.items()}  # numpy -> JSON
        what = _POOL_RULES.get(n.op, "the maximum over each window of each step's values") + ", padding -inf"
        meta = {**node_meta(op=n.op, attrs=attrs), "approximation": _POOL_APPROX.format(op=n.op, what=what)}
        self._after_input(n, self.nir.AvgPool2d(kernel_size=np.array(k), stride=np.array(s), padding=np.array([t, l]),
                                                metadata=meta))

    _InhibitionMaxPool = _StepMaxPool = _MaxPool

    def _Flatten(self, n: Node, op: ops.Op) -> None:
        in_shape = self._shape(n.inputs[0])
        self._flatten(n, in_shape, 0, len(in_shape) - 1)

    def _Reshape(self, n: Node, op: ops.Op) -> None:
        a, b = self._shape(n.inputs[0]), self._shape(n.output)
        for start in range(len(a)):
            for end in range(start, len(a)):
                if (*a[:start], int(np.prod(a[start:end + 1])), *a[end + 1:]) == b:
                    return self._flatten(n, a, start, end)
        self._refuse(n, f"a Reshape {a} -> {b} that merges no adjacent dims")

    def _flatten(self, n: Node, in_shape: tuple[int, ...], start: int, end: int) -> None:
        end = -1 if end == len(in_shape) - 1 else end  # what snnTorch writes for nn.Flatten() (and nir's default)
        self._after_input(n, self.nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=start, end_dim=end,
                                             metadata=node_meta(op=n.op)))

    # -- neurons ---------------------------------------------------------------------------
    def _param(self, n: Node, op: ops.Op, key: str) -> Any:
        """A neuron parameter: its attribute (a float; None where unset), or its per-neuron param (a float64 array)."""
        if key in op.varying(n):
            return np.asarray(n.params[key], np.float64)
        v = op.attr(n, key)
        return None if v is None else float(v)

    def _full(self, n: Node) -> Callable[[Any], np.ndarray]:
        """Per-neuron arrays of the layer's shape (snnTorch's importer needs them) from a value or an array."""
        shape = self._shape(n.output)
        return lambda v: np.array(np.broadcast_to(np.asarray(v, np.float64), shape))  # noqa: E731

    @staticmethod
    def _metadata(info: dict[str, Any], **per_neuron: Any) -> dict[str, Any]:
        """A neuron node's metadata: ``info`` as neurocompile's JSON record, its one-value parameters also as plain
        numbers (for other tools), and its decays that differ from neuron to neuron as float64 arrays of the layer's
        shape (``per_neuron``), from which neurocompile's importer takes each neuron's exactly."""
        return {**node_meta(**info), **{k: v for k, v in info.items() if k != "op"},
                **{k: np.asarray(v, np.float64) for k, v in per_neuron.items() if np.ndim(v)}}

    @staticmethod
    def _exact(**values: Any) -> dict[str, Any]:
        """The one-value parameters among ``values`` (per-neuron ones go to the node's arrays: a threshold as its
        v_threshold, a decay also as a metadata array, :meth:`_metadata`)."""
        return {k: float(v) for k, v in values.items() if v is not None and np.ndim(v) == 0}

    def _input_gain(self, n: Node) -> Any:
        """The input gain the NIR import put before this neuron (a Mul, skipped by the export), 1 if none: folded back
        into the neuron's r when it is written by snnTorch's convention."""
        src = self.g.producers()[n.inputs[0]]
        if self.gain_nodes.get(src.name) != n.name:
            return 1.0
        g = np.asarray(src.params["const"], np.float64)
        return float(g) if g.ndim == 0 else g

    def _record(self, n: Node, nir_types: tuple[str, ...], **decays: Any) -> dict | None:
        """The NIR import's record of this node, if it still describes it: read as one of ``nir_types`` with these
        decays, every value in it one for the layer (a per-neuron one is recorded as its range only), and its input
        gain, if it had one, still the Mul before it (the record's r holds that gain). Else None: the node is written
        by snnTorch's convention."""
        rec = self.neuron_records.get(n.name)
        if (rec is None or rec.get("nir_type") not in nir_types or any(np.ndim(v) for v in decays.values())
                or any(rec.get(k) != v for k, v in decays.items())
                or any(np.ndim(v) for v in rec.values() if not isinstance(v, (str, dict)))):
            return None
        gain_node = rec.get("gain_node")
        if gain_node is not None and self.g.producers()[n.inputs[0]].name != gain_node:
            return None
        return rec

    def _LIF(self, n: Node, op: ops.Op) -> None:
        if op.attr(n, "dv") is not None or "bias" in n.params:
            self._refuse(n, "a fixed-point (or lowered) LIF")
        beta, thr = self._param(n, op, "beta"), self._param(n, op, "threshold")
        full, gain = self._full(n), self._input_gain(n)
        rec = self._record(n, ("IF", "Threshold", "LIF"), beta=beta)
        meta = self._metadata(dict(op="LIF", **self._exact(beta=beta, threshold=thr)), beta=beta)
        if rec is not None and rec["nir_type"] == "IF":  # imported from NIR: written back with its own r
            node = self.nir.IF(r=full(rec["r"]), v_threshold=full(thr), v_reset=full(0.0), metadata=meta)
        elif rec is not None and rec["nir_type"] == "Threshold":
            node = self.nir.Threshold(threshold=full(thr), metadata=meta)
        elif np.all(beta == 1.0):  # a LIF without leak: NIR's IF, with r dt = its input gain
            node = self.nir.IF(r=full(export_r(1.0, self.dt, gain)), v_threshold=full(thr), v_reset=full(0.0),
                               metadata=meta)
        else:
            if rec is not None:
                tau, r = float(rec["tau"]), float(rec["r"])  # the file's own values (a gain folded back into r)
            else:
                tau = self._decay_tau(n, "beta", beta)
                r = export_r(tau, self.dt, gain)
            node = self.nir.LIF(tau=full(tau), r=full(r), v_leak=full(0.0), v_threshold=full(thr), v_reset=full(0.0),
                                metadata=meta)
        self._after_input(n, node)

    def _decay_tau(self, n: Node, what: str, d: Any) -> Any:
        """tau = dt / (1 - d) of a decay d (snnTorch's convention; per neuron for an array), which needs 0 <= d < 1."""
        bad = ~((0 <= np.asarray(d)) & (np.asarray(d) < 1))
        if bad.any():
            v = float(np.asarray(d).reshape(-1)[int(np.flatnonzero(bad.reshape(-1))[0])])
            self._refuse(n, f"a {n.op} with {what} = {v:g} (tau = dt / (1 - {what}) needs 0 <= {what} < 1)")
        return export_tau(d, self.dt)

    def _cuba_taus(self, n: Node, rec: dict | None, alpha: Any, beta: Any) -> dict[str, Any]:
        """tau_syn, tau_mem, r, w_in of a CubaLIF / CubaLI: the file's own values when the node came from NIR (a gain
        folded back into r), else snnTorch's Synaptic export: tau = dt / (1 - decay), w_in = tau_syn / dt,
        r = tau_mem / dt times the input gain."""
        if rec is not None:
            return {k: float(rec[k]) for k in ("tau_syn", "tau_mem", "r", "w_in")}
        ts, tm = self._decay_tau(n, "alpha", alpha), self._decay_tau(n, "beta", beta)
        return {"tau_syn": ts, "tau_mem": tm, "r": export_r(tm, self.dt, self._input_gain(n)),
                "w_in": export_r(ts, self.dt)}

    def _CubaLIF(self, n: Node, op: ops.Op) -> None:
        if "bias" in n.params:
            self._refuse(n, "a lowered CubaLIF (its bias moved to it)")
        alpha, beta, thr = (self._param(n, op, k) for k in ("alpha", "beta", "threshold"))
        full = self._full(n)
        p = self._cuba_taus(n, self._record(n, ("CubaLIF",), alpha=alpha, beta=beta), alpha, beta)
        meta = self._metadata(dict(op="CubaLIF", **self._exact(alpha=alpha, beta=beta, threshold=thr)), alpha=alpha,
                              beta=beta)
        node = self.nir.CubaLIF(**{k: full(v) for k, v in p.items()}, v_leak=full(0.0), v_threshold=full(thr),
                                v_reset=full(0.0), metadata=meta)
        self._after_input(n, node)

    def _LI(self, n: Node, op: ops.Op) -> None:
        if "bias" in n.params:
            self._refuse(n, "a lowered LI (its bias moved to it)")
        alpha, beta = self._param(n, op, "alpha"), self._param(n, op, "beta")
        full, gain = self._full(n), self._input_gain(n)
        meta = self._metadata(dict(op="LI", **self._exact(beta=beta, alpha=alpha)), alpha=alpha, beta=beta)
        if alpha is not None:  # CubaLI
            p = self._cuba_taus(n, self._record(n, ("CubaLI",), alpha=alpha, beta=beta), alpha, beta)
            node = self.nir.CubaLI(**{k: full(v) for k, v in p.items()}, v_leak=full(0.0), metadata=meta)
        else:
            rec = self._record(n, ("LI", "I"), beta=beta)
            if rec is not None and rec["nir_type"] == "I":
                node = self.nir.I(r=full(rec["r"]), metadata=meta)
            elif rec is not None:
                node = self.nir.LI(tau=full(rec["tau"]), r=full(rec["r"]), v_leak=full(0.0), metadata=meta)
            elif np.all(beta == 1.0):  # no leak: NIR's integrator I, with r dt = its input gain
                node = self.nir.I(r=full(export_r(1.0, self.dt, gain)), metadata=meta)
            else:
                tau = self._decay_tau(n, "beta", beta)
                node = self.nir.LI(tau=full(tau), r=full(export_r(tau, self.dt, gain)), v_leak=full(0.0),
                                   metadata=meta)
        self._after_input(n, node)

    def _level_neuron(self, n: Node, op: ops.Op) -> None:
        """CIF / IF baseline: the extension (a labelled nir.IF approximation, the exact neuron in metadata)."""
        if "bias" in n.params:
            self._refuse(n, "a lowered neuron (its bias moved to it)")
        shape = self._shape(n.output)
        theta, amp = op.firing_threshold(n), op.spike_amplitude(n)
        attrs = {k: v for k, v in n.attrs.items()}
        meta = {**node_meta(op=n.op, attrs=attrs), "approximation": _APPROX.format(op=n.op),
                "threshold": float(op.attr(n, "threshold")), "levels": int(op.attr(n, "levels"))}
        node = self.nir.IF(r=np.full(shape, 1.0 / self.dt), v_threshold=np.full(shape, theta),
                           v_reset=np.zeros(shape), metadata=meta)
        key = self._emit(n, node)
        self._connect(n.inputs[0], key)
        scale = self._new_key(f"{key}.amplitude")
        self.nodes[scale] = self.nir.Scale(scale=np.full(shape, amp, np.float32),
                                           metadata=Part.AMPLITUDE.record(of=key))
        self.edges.append((key, scale))
        self.terms[n.output] = [scale]

    _CIF = _level_neuron
    _IF = _level_neuron
