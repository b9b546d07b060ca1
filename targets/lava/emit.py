"""IR -> a graph of Lava processes: one emitter per op kind, in the table ``EMITTERS``.

Emission reads the lowered graph (passes/lower_to_blocks.py), the same one the reference simulator runs.
Layout: an IR tensor of per-sample shape (C, H, W) lives in Lava as (W, H, C), Lava's convolution
layout; in general the Lava shape is the IR shape reversed, so flattening and reshaping go through
virtual transpose ports.

Where the currents go: every *sink* (a neuron layer, a lateral-inhibition pool, the readout) is a
process with an ``a_in`` port and the sink's ``bias``, gated to its wake window; every other IR node is
either a lava connection process (an op's ``weight_map``: Conv, Dense, pools and scalings; one step of
delay each, as the schedule's ``synapse_delay = 1`` says) or no process at all (Add = several ports
into one ``a_in``, which Lava sums; Flatten/Reshape/Concat = virtual ports).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from neurocompile.errors import TargetError
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import Group, NoWeightMap, WeightMap, op_of
from neurocompile.passes.blocks import first_readout_start, sample_period, sink_ends
from neurocompile.passes.lower_to_blocks import lowered
from neurocompile.ir.schedule import WakeSleepSchedule


def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(reversed(tuple(shape)))


def to_lava(a: np.ndarray) -> np.ndarray:
    """Per-sample IR array -> Lava layout (axes reversed)."""
    return np.ascontiguousarray(np.transpose(a, tuple(reversed(range(a.ndim)))))


def from_lava(a: np.ndarray, lead: int) -> np.ndarray:
    """Lava-layout array with ``lead`` leading (sample/time) axes -> IR layout."""
    axes = tuple(range(lead)) + tuple(reversed(range(lead, a.ndim)))
    return np.transpose(a, axes)


@dataclass
class Stream:
    """How samples stream through the process graph: one every ``period`` steps, each run for ``steps``.

    With a sleep phase (CIF, LIF students) every process is ``staggered``: it starts each sample at its own
    arrival step, when the sample's first data reaches it, exactly one synaptic delay after its sources do.
    A layer's work on a sample then fits in ``period`` = steps - (earliest readout arrival) steps (what it
    does later reaches no readout within the sample's steps), so samples follow each other with no flush
    and overlap in depth. Without a sleep phase (the IF baseline: biases on from step 0, before any data
    arrives) processes are not staggered and each period ends with flush steps that drain what is in flight.
    """

    steps: int
    period: int
    staggered: bool
    arrival: dict[str, int]

    @classmethod
    def plan(cls, g: Graph, steps: int | None = None) -> "Stream":
        """The stream of a lowered graph run for ``steps`` (default: the schedule's T) per sample."""
        s = g.schedule
        T = int(steps if steps is not None else s.steps)
        first = first_readout_start(g)
        if g.meta.get("fixed_point") and T >= 2 ** 8:  # readout sums of 24-bit currents must fit int32
            raise TargetError(f"{T} steps: Lava's fixed-point readout sums T currents below 2**23 in int32, so T "
                              "must stay below 256", hint="Run fewer steps")
        if s.sleep and T <= first:
            raise TargetError(f"{T} steps end before any current reaches the readout (step {first})",
                              hint=f"Run at least {first + 1} steps (the default is the schedule's {s.steps})")
        return cls(T, sample_period(g, T), bool(s.sleep), dict(s.arrival))

    def offset(self, name: str) -> int:
        return self.arrival.get(name, 0) if self.staggered else 0

    def total_steps(self, n_samples: int) -> int:
        """Steps until the last of ``n_samples`` samples has been read out."""
        return n_samples * self.period + (max(self.arrival.values(), default=0) if self.staggered else 0)


@dataclass
class Emitted:
    """The process graph, and where to read results."""

    input: Any                             # InputGate: its ``a_in`` takes the input current
    readouts: dict[str, Any]               # graph output tensor -> Readout process (``s_out``: running sums)
    neurons: dict[str, Any]                # IR neuron node -> process with spike ``counts``
    processes: list[Any] = field(default_factory=list)


@dataclass
class _Build:
    """What the emitters share while one process graph is built."""

    g: Graph
    s: WakeSleepSchedule
    stream: Stream
    n_samples: int
    out: Emitted
    ends: dict[str, int] = field(default_factory=dict)  # a student's sinks: the step they stop at (sink_ends)

    @property
    def lanes(self) -> int:
        return int(self.g.meta.get("lanes", 1))

    @property
    def timing(self) -> dict[str, Any]:
        return dict(t_wake=self.s.t_wake, steps=self.stream.steps, period=self.stream.period, sleep=self.s.sleep)

    def add(self, p):
        self.out.processes.append(p)
        return p

    def gating(self, n: Node) -> dict[str, Any]:
        """The wake-window arguments of a sink's process (its arrival and stagger; the shared timing, and the steps it
        is active for: a student's sink stops after its own T steps, passes.blocks.sink_ends)."""
        return dict(arrival=self.s.arrival.get(n.name, 0), offset=self.stream.offset(n.name),
                    **{**self.timing, "steps": self.steps(n)})

    def steps(self, n: Node) -> int:
        """The step of each sample from which the sink ``n`` is silent and its spikes are no longer counted."""
        return self.ends.get(n.name, self.stream.steps)

    def bias(self, n: Node) -> np.ndarray:
        """The sink's constant current in Lava layout (zeros if it has none)."""
        shape = self.g.shapes[n.inputs[0]]
        b = n.params.get("bias")
        return to_lava(np.zeros(shape) if b is None else np.broadcast_to(np.asarray(b, np.float64), shape))


def _into(port_in, terms: list) -> None:
    for t in terms:
        t.connect(port_in)


Ports = list  # the Lava out ports whose sum is one IR tensor


def emit(g: Graph, stream: Stream, n_samples: int = 1) -> Emitted:
    """Build the processes (not yet compiled) of a stream of samples; spike counts are kept for the first
    ``n_samples``. The input current enters at ``Emitted.input.a_in``."""
    from neurocompile.targets.lava.processes.routing import DelayLine

    g = lowered(g)
    s = g.schedule
    b = _Build(g, s, stream, n_samples, Emitted(input=None, readouts={}, neurons={}), sink_ends(g, stream.steps))
    terms: dict[str, Ports] = {}
    for n in g.topo():
        ins = [terms[t] for t in n.inputs]
        delays = s.balance.get(n.name, [0] * len(n.inputs))  # delay the early branches of a merge
        for i, (d, k) in enumerate(zip(delays, op_of(n).input_gains(n))):
            if d or k != 1:  # and scale an identity shortcut (fixed point)
                line = b.add(DelayLine(shape=lava_shape(g.shapes[n.inputs[i]]), delay=d, gain=int(k),
                                       name=f"{n.name}/delay{i}"))
                _into(line.a_in, ins[i])
                ins[i] = [line.s_out]
        terms[n.output] = emitter(n)(b, n, ins)
    return b.out


def _input(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    from neurocompile.targets.lava.processes.routing import InputGate

    if b.out.input is not None:
        raise TargetError("Lava runs single-input graphs", node=n.name, op=n.op)
    b.out.input = b.add(InputGate(shape=lava_shape(b.g.shapes[n.output]), name=n.name, **b.timing))
    return [b.out.input.s_out]


def _level_neuron(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    from neurocompile.targets.lava.processes.neurons import SpikingNeuron

    op = op_of(n)
    p = b.add(SpikingNeuron(shape=lava_shape(b.g.shapes[n.output]), sleep_phase=op.sleep_phase,
                            threshold=op.firing_threshold(n), rate=op.rate(n), bias=b.bias(n),
                            gamma=op.spikes_per_step(n),
                            shift=float(op.attr(n, "shift")), amplitude=op.attr(n, "amplitude"),
                            n_samples=b.n_samples, lanes=b.lanes, name=n.name, **b.gating(n)))
    _into(p.a_in, ins[0])
    b.out.neurons[n.name] = p
    return [p.s_out]


def _lif(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    """lava's own LIF: du = 1 (current = this step's input), dv = 1 - β, hard reset; LIFReset clears u and v
    at the first step of every period (Lava's time_step is 1-based); the bias comes from a gated source."""
    op = op_of(n)
    if op.varying(n):
        return _leaky_neuron(b, n, ins)
    dv = op.attr(n, "dv")  # fixed point: Lava's bit-accurate LIF (du 4095: the current is this step's input)
    decays = dict(du=1.0, dv=1.0 - float(op.attr(n, "beta"))) if dv is None else dict(du=4095, dv=int(dv))
    vth = float(op.attr(n, "threshold"))
    return _lava_lif(b, n, ins, decays, vth if dv is None else int(vth))


def _cuba_lif(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    """A CubaLIF as lava's own (CUBA) LIF, floating point: u = u (1 - du) + a_in, v = v (1 - dv) + u, spike when
    v > vth, v <- 0, with du = 1 - alpha and dv = 1 - beta: the op's I = alpha I + X, U = beta U + I (exactly
    where 1 - (1 - alpha) = alpha in floating point, as for every alpha in [0.5, 1]; else to rounding)."""
    _floating_only(b.g, n)
    op = op_of(n)
    if op.varying(n):
        return _leaky_neuron(b, n, ins)
    return _lava_lif(b, n, ins, dict(du=1.0 - float(op.attr(n, "alpha")), dv=1.0 - float(op.attr(n, "beta"))),
                     float(op.attr(n, "threshold")))


def _neuron_values(b: _Build, n: Node) -> dict[str, np.ndarray | None]:
    """The op's :attr:`~ops.Op.per_neuron` parameters as arrays of the layer's shape in Lava layout (None: unset)."""
    op, shape = op_of(n), b.g.shapes[n.output]
    values = {k: n.params[k] if k in n.params else op.attr(n, k) for k in op.per_neuron}
    return {k: None if v is None else to_lava(np.broadcast_to(np.asarray(v, np.float64), shape))
            for k, v in values.items()}


def _leaky_neuron(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    """An LIF or CubaLIF whose parameters differ within the layer as neurocompile's LeakyNeuron process (the rules
    of neurons.py, per-neuron arrays), its bias added in its wake window, its spikes counted."""
    from neurocompile.targets.lava.processes.neurons import LeakyNeuron
    from neurocompile.targets.lava.processes.routing import SpikeCounter

    _floating_only(b.g, n)
    v, lshape = _neuron_values(b, n), lava_shape(b.g.shapes[n.output])
    p = b.add(LeakyNeuron(shape=lshape, beta=v["beta"], threshold=v["threshold"], alpha=v.get("alpha"),
                          bias=b.bias(n), name=n.name, **b.gating(n)))
    _into(p.a_in, ins[0])
    counter = b.add(SpikeCounter(shape=lshape, offset=b.stream.offset(n.name), steps=b.steps(n),
                                 period=b.stream.period, n_samples=b.n_samples, lanes=b.lanes, name=f"{n.name}/count"))
    p.s_out.connect(counter.s_in)
    b.out.neurons[n.name] = counter
    return [p.s_out]


def _floating_only(g: Graph, n: Node) -> None:
    if g.meta.get("fixed_point"):
        raise TargetError("this neuron has no fixed-point mapping on Lava", node=n.name, op=n.op,
                          hint="Run the network in floating point (drop --fixed-point)")


def _lava_lif(b: _Build, n: Node, ins: list[Ports], decays: dict, vth) -> Ports:
    """lava's LIFReset with ``decays`` (du, dv) and threshold ``vth``, reset at the first step of every period, its
    bias from a gated source into ``a_in`` (part of the input current), its spikes counted."""
    from lava.proc.lif.process import LIFReset

    from neurocompile.targets.lava.processes.routing import GatedBias, SpikeCounter

    lshape = lava_shape(b.g.shapes[n.output])
    period = b.stream.period  # reset at the sample's first step: Lava's time_step is 1-based
    p = b.add(LIFReset(shape=lshape, **decays, vth=vth, bias_mant=0,
                       reset_interval=period, reset_offset=(b.stream.offset(n.name) + 1) % period, name=n.name))
    _into(p.a_in, ins[0])
    if "bias" in n.params:
        src = b.add(GatedBias(bias=b.bias(n), name=f"{n.name}/bias", **b.gating(n)))
        src.s_out.connect(p.a_in)
    counter = b.add(SpikeCounter(shape=lshape, offset=b.stream.offset(n.name), steps=b.steps(n), period=period,
                                 n_samples=b.n_samples, lanes=b.lanes, name=f"{n.name}/count"))
    p.s_out.connect(counter.s_in)
    b.out.neurons[n.name] = counter
    return [p.s_out]


def _leaky_integrator(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    """An LI (CubaLI, I) as neurocompile's LeakyIntegrator process (neurons.li_step): it sends its membrane every
    step; its bias is added in its wake window; floating point only."""
    from neurocompile.targets.lava.processes.neurons import LeakyIntegrator

    _floating_only(b.g, n)
    v = _neuron_values(b, n)  # arrays (one value per neuron) whether the layer's values differ or not
    p = b.add(LeakyIntegrator(shape=lava_shape(b.g.shapes[n.output]), beta=v["beta"], alpha=v["alpha"],
                              bias=b.bias(n), name=n.name, **b.gating(n)))
    _into(p.a_in, ins[0])
    return [p.s_out]


def _max_pool(b: _Build, n: Node, ins: list[Ports], inhibition: bool) -> Ports:
    """A CASC network's InhibitionMaxPool (``inhibition``) or a student's StepMaxPool as the window-max process."""
    from neurocompile.targets.lava.processes.pooling import InhibitionMaxPool

    in_shape, shape = b.g.shapes[n.inputs[0]], b.g.shapes[n.output]
    p = b.add(InhibitionMaxPool(in_shape=lava_shape(in_shape), out_shape=lava_shape(shape),
                                index=_pool_index(n, in_shape, shape), bias=b.bias(n),
                                inhibition=inhibition, name=n.name, **b.gating(n)))
    _into(p.a_in, ins[0])
    return [p.s_out]


def _inhibition_pool(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    return _max_pool(b, n, ins, inhibition=True)


def _step_max_pool(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    return _max_pool(b, n, ins, inhibition=False)


def _readout(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    from neurocompile.targets.lava.processes.routing import Readout

    r = b.add(Readout(shape=lava_shape(b.g.shapes[n.output]), bias=b.bias(n), name=n.name, **b.gating(n)))
    _into(r.a_in, ins[0])
    b.out.readouts[n.output] = r
    return []


def _sum(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    if op_of(n).attr(n, "reverse"):
        raise TargetError("const - x has no Lava mapping", node=n.name, op=n.op,
                          hint="Export x - const or a Mul by -1 instead")
    return [t for ts in ins for t in ts]  # Lava sums ports into one a_in


def _reshape(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    return [_reshape_port(t, b.g.shapes[n.inputs[0]], b.g.shapes[n.output]) for t in ins[0]]


def _step_delay(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    """A delay of the network itself (NIR's Delay): a delay line of its steps; it sums the currents it receives."""
    from neurocompile.targets.lava.processes.routing import DelayLine

    stagger = dict(period=b.stream.period, offset=b.stream.offset(n.name)) if b.stream.staggered else {}
    line = b.add(DelayLine(shape=lava_shape(b.g.shapes[n.output]), delay=op_of(n).output_delay(n), name=n.name,
                           **stagger))
    _into(line.a_in, ins[0])
    return [line.s_out]


def _concat(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    if any(len(ts) != 1 for ts in ins):
        raise TargetError("Concat of summed currents is not supported on Lava", node=n.name, op=n.op)
    axis = len(b.g.shapes[n.output]) - int(op_of(n).attr(n, "axis"))
    return [ins[0][0].concat_with([ts[0] for ts in ins[1:]], axis=axis)]


def _connection(b: _Build, n: Node, ins: list[Ports]) -> Ports:
    """A synaptic op as lava's Conv or Dense with the op's fixed weights (one step of delay)."""
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense

    if b.s.delay.get(n.name, 0) != 1:  # e.g. an unfolded BatchNorm: the schedule gave it no synapse
        raise TargetError("the schedule does not delay this connection by Lava's one step", node=n.name, op=n.op,
                          hint="Convert the graph for target='lava-sim'")
    kind, args = lava_connection(b.g, n)
    exp = int(op_of(n).attr(n, "weight_exp") or 0)  # fixed point: 8-bit mantissas and the layer's exponent
    args["weight"] = args["weight"] / 2.0 ** exp
    if kind == "dense":
        p = b.add(Dense(weights=args["weight"], num_message_bits=24, num_weight_bits=8, weight_exp=exp, name=n.name))
    else:
        p = b.add(Conv(**args, num_message_bits=24, weight_exp=exp, name=n.name))
        if tuple(p.a_out.shape) != lava_shape(b.g.shapes[n.output]):
            raise TargetError(f"Lava Conv gives shape {p.a_out.shape}, expected {lava_shape(b.g.shapes[n.output])}",
                              node=n.name, op=n.op)
    _into(p.s_in, ins[0])
    return [p.a_out]


Emitter = Callable[[_Build, Node, list], Ports]

# op name -> emitter (Lava's one table); other synaptic ops are connections
EMITTERS: dict[str, Emitter] = {
    "Input": _input, **dict.fromkeys(Group.LEVEL_NEURON, _level_neuron), "LIF": _lif, "CubaLIF": _cuba_lif,
    "LI": _leaky_integrator, "InhibitionMaxPool": _inhibition_pool, "StepMaxPool": _step_max_pool,
    "Readout": _readout, "Add": _sum, "Sub": _sum, "Flatten": _reshape, "Reshape": _reshape,
    "Concat": _concat, "StepDelay": _step_delay}


def emitter(n: Node) -> Emitter:
    """The emitter of ``n``'s op, or the TargetError that says Lava has none."""
    if n.op in EMITTERS:
        return EMITTERS[n.op]
    if op_of(n).synaptic:
        return _connection
    raise TargetError("no Lava mapping for this op", node=n.name, op=n.op,
                      hint="Supported: Conv, Dense, AvgPool, GlobalAvgPool, Affine, Mul/Div by constants, Add, Sub, "
                           "Flatten, Reshape, Concat, StepDelay, CIF, IF, LIF, CubaLIF, LI, InhibitionMaxPool, StepMaxPool")


def lava_connection(g: Graph, n: Node) -> tuple[str, dict[str, Any]]:
    """("conv" | "dense", arguments of lava's Conv / Dense) for a synaptic node: its op's weight map in Lava's
    layout. Lava's Conv is a true convolution in (C_out, W, H, C_in) with symmetric padding."""
    in_shape = g.shapes[n.inputs[0]]
    try:
        wm: WeightMap = op_of(n).weight_map(n, in_shape)
    except NoWeightMap as exc:
        raise TargetError(f"{exc}, so Lava cannot run it", node=n.name, op=n.op,
                          hint=exc.hint or "Run it on the reference target") from None
    if wm.kind == "dense":
        return "dense", dict(weight=wm.weight)
    t, l, bt, r = wm.pads
    if (t, l) != (bt, r):
        raise TargetError(f"asymmetric pads {list(wm.pads)} have no Lava Conv equivalent", node=n.name, op=n.op,
                          hint="Export with symmetric pads, or run on the reference target")
    C, H, W = in_shape
    w = np.transpose(wm.weight, (0, 3, 2, 1))[:, ::-1, ::-1, :]  # transpose, then flip W and H
    return "conv", dict(weight=np.ascontiguousarray(w), input_shape=(W, H, C), padding=(l, t),
                        stride=wm.stride[::-1], dilation=wm.dilation[::-1], groups=wm.groups)


def _reshape_port(port, src: tuple[int, ...], dst: tuple[int, ...]):
    """A Lava-layout port of IR shape ``src`` viewed as IR shape ``dst`` (C-order reshape in IR layout)."""
    if len(src) > 1:
        port = port.transpose(list(reversed(range(len(src)))))
    port = port.reshape(tuple(dst))
    if len(dst) > 1:
        port = port.transpose(list(reversed(range(len(dst)))))
    return port


def _pool_index(n: Node, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> np.ndarray:
    """(Wo, Ho, C, kh*kw) flat indices into the Lava-layout (W, H, C) input; -1 marks padding. The windows
    are the op table's own (``padded``: pads, ceil_mode overhang and end crop), taken over an index map."""
    C, H, W = in_shape
    lava_index = np.arange(W * H * C, dtype=np.float64).reshape(W, H, C)  # exact in float64
    ir_index = torch.from_numpy(np.ascontiguousarray(lava_index.transpose(2, 1, 0)))[None]  # (1, C, H, W)
    xp, (kh, kw), (sh, sw) = op_of(n).padded(n, ir_index, -1.0)
    cols = xp.unfold(2, kh, sh).unfold(3, kw, sw)[0]  # C, Ho, Wo, kh, kw
    return np.ascontiguousarray(cols.reshape(*out_shape, kh * kw).permute(2, 1, 0, 3).numpy().astype(np.int64))


def check_lowering(g: Graph) -> None:
    """Raise the TargetError that emission would, before Lava starts: ops without a Lava mapping, connections
    without a Lava form (pools Lava cannot compute exactly, asymmetric pads)."""
    g = lowered(g)
    for n in g.topo():
        e = emitter(n)
        if e is _connection:
            lava_connection(g, n)
        elif e is _sum and op_of(n).attr(n, "reverse"):
            _sum(None, n, [])  # raises its refusal
        elif e in (_cuba_lif, _leaky_integrator):
            _floating_only(g, n)
