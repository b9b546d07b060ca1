"""quantize_fixed_point: integer weights, thresholds and biases in Loihi 2's formats, chosen per block.

Every tensor is stored as integers: real value = stored / unit. A *block* (passes/lower_to_blocks.py) is a
sink with the connections that reach it; all currents meeting at a sink must share one unit, the block's
unit U (nengo-loihi's per-block discretization). Connections with weights (Conv, Dense) adapt to U through
their 8-bit mantissas and a per-layer exponent; a branch without weights (an identity shortcut) keeps its
source's unit and meets U through an integer gain at the Add it enters (``Add.gains``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import numpy as np

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import OPS, Group, NoWeightMap, is_level_neuron, op_of
from neurocompile.passes.blocks import blocks
from neurocompile.passes.lower_to_blocks import lowered
from neurocompile.targets.loihi2.spec import (BIAS_MANT_MAX, DECAY_UNITY, LIF_SHIFT, LIF_VTH_MAX, READOUT_BITS,
                                              STATE_BITS, STATE_MAX, WEIGHT_EXP_MAX, WEIGHT_MAX)

# the neurons with an integer form, Lava's bit-accurate LIF: those whose op takes its 12-bit decay ``dv``
FIXED_POINT_LIF = frozenset(name for name, op in OPS.items() if "dv" in op.attrs)


@dataclass
class LayerReport:
    """How one layer was quantized: its unit (stored = real * unit), weight exponent, and the relative RMS error
    of its weights (0: exact); ``rescaled``: halvings of the block unit that kept every state within 24 bits."""

    node: str
    op: str
    unit: float
    exponent: int = 0
    weight_error: float = 0.0
    rescaled: int = 0
    note: str = ""
    total_peak: float = 0.0  # sinks: the largest |sum of input currents| over a sample (worst case)


def quantize_fixed_point(g: Graph, input_scale: float = 255.0) -> Graph:
    """Store every tensor as integers, block by block (sinks in topological order).

    The input is rounded to ``x * input_scale`` (255: images in [0, 1] as 8-bit pixels). A block's unit U is
    the largest at which each of its weighted connections uses its full 8-bit mantissa (the others take a
    weight exponent: W_int = mant * 2**e, mant even and |mant| <= WEIGHT_MAX); an identity branch from a
    source of unit u meets U with the integer gain U / u (U is rounded to make it one). Averaging pools sum
    their windows (``divisor_override`` 1) and scale the unit by the window. At the sink: a CIF/IF neuron
    gets the integer firing threshold θ_int = round(θ U / rate) and sends spikes of amplitude 1 (its output unit
    is U / θ_int: spike counts, so units never compound with depth); a short wake phase (rate L / T_wake > 1, the
    latency mode's graded spikes) stores the threshold rate * θ_int, so θ / rate stays an integer; an LIF neuron gets Lava's bit-accurate parameters (vth = round(θ U),
    dv = round(4096 (1 - β)); binary spikes, unit 1); an inhibition pool keeps U; a readout divides by U
    (``schedule.readout_scale``). Sink biases become round(b U).
    The worst-case current of every step and every state over the schedule's T steps are bounded below
    2**23: where they would not be, U is halved (reported as ``rescaled``) or, when an identity gain cannot
    halve, the conversion is refused.
    Invariant: the simulators compute in exact integer arithmetic (all values < 2**23); the function
    approximates the float graph within the weight rounding (lossy; ``meta['fixed_point_report']`` says
    per layer how much).
    """
    if g.schedule is None:
        raise ConversionError("quantize_fixed_point runs after schedule_wake_sleep")
    varying = next((n for n in g.topo() if n.op in FIXED_POINT_LIF and op_of(n).varying(n)), None)
    if varying is not None:  # (CubaLIF and LI have no integer form at all: refused below)
        keys = op_of(varying).varying(varying)
        raise ConversionError(f"this layer's {' and '.join(keys)} {'differs' if len(keys) == 1 else 'differ'} from "
                              "neuron to neuron: Lava's bit-accurate LIF takes one decay and one threshold per layer",
                              node=varying.name, op=varying.op,
                              hint="Run this network in floating point (drop --fixed-point)")
    g = lowered(g)
    q = _Quantizer(g, float(input_scale))
    for blk in blocks(g):
        q.block(g.nodes[blk.sink])
    units = {q.unit[n.output] for n in g.topo() if n.op in Group.READOUT}
    if len(units) > 1:
        raise ConversionError(f"the graph outputs reach fixed point in different units ({sorted(units)}): one "
                              "readout scale serves them all", hint="Convert a single-output graph for fixed point")
    g.schedule.input_scale = float(input_scale)
    g.schedule.readout_scale = float(units.pop())
    g.meta["fixed_point"] = True
    g.meta["fixed_point_report"] = [asdict(r) for r in q.report]
    return g


Interval = tuple[float, float]


@dataclass(frozen=True)
class _Range:
    """What a tensor's stored values can be: on one step (``step``), and summed over a sample's steps so far
    (``total``: what a membrane integrates). A CIF neuron's net spike count stays in [0, t_wake] at every step
    however its spikes are spread, so totals bound membranes far tighter than T times the step bound."""

    step: Interval
    total: Interval

    def scaled(self, k: float) -> "_Range":
        return _Range(_scale(self.step, k), _scale(self.total, k))

    def through(self, w_int: np.ndarray) -> "_Range":
        return _Range(_through(w_int, self.step), _through(w_int, self.total))

    def __add__(self, o: "_Range") -> "_Range":
        return _Range((self.step[0] + o.step[0], self.step[1] + o.step[1]),
                      (self.total[0] + o.total[0], self.total[1] + o.total[1]))

    def union(self, o: "_Range") -> "_Range":
        return _Range((min(self.step[0], o.step[0]), max(self.step[1], o.step[1])),
                      (min(self.total[0], o.total[0]), max(self.total[1], o.total[1])))


def _scale(iv: Interval, k: float) -> Interval:
    return (iv[0] * k, iv[1] * k) if k >= 0 else (iv[1] * k, iv[0] * k)


def _peak(iv: Interval) -> float:
    return max(-iv[0], iv[1])


_ABOVE = ("above",)  # a branch slot to be filled by the caller: the Add input the path reaches first


@dataclass
class _Branch:
    """A path from a sink's input back to where its unit is decided: a weighted connection (``node``) or a
    source tensor (``tensor``: an identity branch; ``slot``: the (Add, input index) that can scale it).
    ``coef``: the unit wanted there is U * coef (a sum pool on the way multiplies the unit by its window)."""

    coef: float
    node: Node | None = None
    tensor: str | None = None
    slot: tuple[str, int] | None = None


class _Quantizer:
    def __init__(self, g: Graph, input_scale: float):
        self.g, self.prod = g, g.producers()
        s = g.schedule
        self.steps, self.t_wake = int(s.steps), int(s.t_wake)
        self.wake_steps = self.t_wake if s.sleep else self.steps  # steps with input and biases on
        src = g.input_nodes[0].output
        self.unit: dict[str, float] = {src: input_scale}
        # the input: [0, 1] as 8-bit pixels (encode_input refuses other values), on in every wake step
        self.bound: dict[str, _Range] = {src: _Range((0.0, input_scale), (0.0, input_scale * self.wake_steps))}
        g.input_nodes[0].attrs["scale"] = input_scale
        self.report: list[LayerReport] = []
        self.owner: dict[str, str] = {}  # node -> the sink whose block quantized it

    # -- one block -------------------------------------------------------------------------------
    def block(self, sink: Node) -> None:
        branches = self._branches(sink.inputs[0], 1.0, None, {})
        for b in branches:
            if b.node is not None and self.owner.setdefault(b.node.name, sink.name) != sink.name:
                raise ConversionError(f"this connection feeds two neuron layers ({self.owner[b.node.name]} and "
                                      f"{sink.name}): fixed point gives each layer's inputs one unit", node=b.node.name,
                                      op=b.node.op, hint="Run this network in floating point")
        U, rescaled = self._unit(sink, branches), 0
        while True:
            gains = self._gains(sink, branches, U)
            weights = {b.node.name: self._weights(b.node, U * b.coef) for b in branches if b.node is not None}
            current = _Range((0.0, 0.0), (0.0, 0.0))
            for b in branches:
                current = current + self._branch_bound(b, weights, gains)
            b_int = None if "bias" not in sink.params else np.round(sink.params["bias"].astype(np.float64) * U)
            if b_int is not None:
                step = (min(0.0, float(b_int.min())), max(0.0, float(b_int.max())))
                current = current + _Range(step, _scale(step, self.wake_steps))
            why = self._sink_overflow(sink, U, current)
            exps = [weights[b.node.name][1] for b in branches if b.node is not None]
            if why is None and max(exps, default=0) > WEIGHT_EXP_MAX:
                why = f"a weight exponent of {max(exps)} would pass Loihi's {WEIGHT_EXP_MAX}"
            if why is None and b_int is not None and sink.op in FIXED_POINT_LIF and np.abs(b_int).max() > BIAS_MANT_MAX:
                why = f"the bias {np.abs(b_int).max():.0f} would pass the 13-bit mantissa of Lava's LIF bias"
            if why is None:
                break
            if not self._can_halve(branches, gains):
                raise ConversionError(f"{why}, beyond {STATE_BITS}-bit state, and an identity branch fixes the "
                                      "block's unit", node=sink.name, op=sink.op,
                                      hint="Lower the weights feeding this layer, or run it in floating point")
            U, rescaled = U / 2, rescaled + 1
        for name in dict.fromkeys(b.node.name for b in branches if b.node is not None):  # a node reached twice once
            b = next(b for b in branches if b.node is not None and b.node.name == name)
            self._store_weights(b.node, U * b.coef, *weights[name], rescaled)
        for (add, i), k in gains.items():
            node = self.g.nodes[add]
            ks = op_of(node).input_gains(node)
            ks[i] = int(k)
            node.attrs["gains"] = ks
        if b_int is not None:
            sink.params["bias"] = b_int.astype(np.float32)
        self._sink(sink, U, current, rescaled)

    def _branches(self, t: str, coef: float, slot, seen: dict) -> list[_Branch]:
        """The branches reaching tensor ``t`` of a block whose sink input has unit U (``coef`` relative to U)."""
        n = self.prod[t]
        op = op_of(n)
        if op.sink or not n.inputs:
            return [_Branch(coef, tensor=t, slot=slot)]
        if n.name in seen:  # a node reached along two paths (Add(y, y)): its branches count on both
            first, cached = seen[n.name]
            if not math.isclose(first, coef, rel_tol=1e-12):
                raise ConversionError("this node reaches one neuron layer along paths with different units",
                                      node=n.name, op=n.op)
            return [replace(b, slot=slot if b.slot is _ABOVE else b.slot) for b in cached]
        found = self._branches_of(n, coef, seen)
        seen[n.name] = (coef, found)
        return [replace(b, slot=slot if b.slot is _ABOVE else b.slot) for b in found]

    def _branches_of(self, n: Node, coef: float, seen: dict) -> list[_Branch]:
        """``n``'s branches; an identity branch with no Add between it and ``n`` gets the slot ``_ABOVE`` (the
        caller's)."""
        op = op_of(n)
        if op.rescalable == ("weight", "bias"):  # Conv, Dense: their weights take the unit
            return [_Branch(coef, node=n)]
        if op.synaptic and hasattr(op, "window"):  # averaging pools sum their windows: unit * window
            return self._branches(n.inputs[0], coef / self._sum_pool(n), _ABOVE, seen)
        if op.merge and op.additive:  # Add: an identity branch can be scaled at its own input
            return [b for i, u in enumerate(n.inputs) for b in self._branches(u, coef, (n.name, i), seen)]
        if op.exact_in_integers:  # moves values (Flatten, Reshape, Concat): the unit passes
            return [b for u in n.inputs for b in self._branches(u, coef, None if op.merge else _ABOVE, seen)]
        raise ConversionError("fixed point has no integer form for this op (supported: Conv, Dense, average and "
                              "max pools, Add, Flatten, Reshape, Concat, CIF, IF, LIF)", node=n.name, op=n.op)

    def _sum_pool(self, n: Node) -> int:
        """Make an averaging pool sum its windows (``divisor_override`` 1); returns the window it no longer
        divides by. A pool whose divisor varies between windows has no such form: refused."""
        op, in_shape = op_of(n), self.g.shapes[n.inputs[0]]
        try:
            op.weight_map(n, in_shape)
        except NoWeightMap as exc:
            raise ConversionError(f"{exc}, so it has no integer form", node=n.name, op=n.op, hint=exc.hint) from None
        n.attrs["divisor_override"] = 1
        return op.window(n, in_shape[1:])

    def _unit(self, sink: Node, branches: list[_Branch]) -> float:
        """The block's unit before any rescale: fixed by an identity branch without a gain, else the largest at
        which a weighted branch uses its full mantissa, rounded so the first identity gain is an integer."""
        fixed = [self.unit[b.tensor] / b.coef for b in branches if b.tensor is not None and b.slot is None]
        if fixed:
            return fixed[0]
        free = [self._best_unit(b.node) / b.coef for b in branches if b.node is not None
                and np.any(b.node.params["weight"])]
        scaled = [b for b in branches if b.tensor is not None]
        if not scaled:
            if not free:  # every weight is zero: any unit will do
                return 1.0
            if len(free) == 1:
                return free[0]
            # branches meeting at one sink: at the largest unit the others take exponents; a unit up to 2x
            # smaller may round their mantissas better. Keep the one with the smallest worst weight error.
            weighted = [b for b in branches if b.node is not None]
            candidates = [max(free) * 2 ** (-k / 16) for k in range(17)]
            return min(candidates, key=lambda U: max(self._weights(b.node, U * b.coef)[2] for b in weighted))
        u = self.unit[scaled[0].tensor] / scaled[0].coef
        return u * max(1, round(max(free) / u)) if free else u

    def _gains(self, sink: Node, branches: list[_Branch], U: float) -> dict[tuple[str, int], float]:
        gains: dict[tuple[str, int], float] = {}
        for b in branches:
            if b.tensor is None:
                continue
            k = U * b.coef / self.unit[b.tensor]
            if b.slot is None and not math.isclose(k, 1.0, rel_tol=1e-9):
                raise ConversionError("two branches without weights meet at this layer in different units",
                                      node=sink.name, op=sink.op, hint="Run this network in floating point")
            if b.slot is None:
                continue
            if abs(k - round(k)) > 1e-6 * k or round(k) < 1 or gains.get(b.slot, round(k)) != round(k):
                raise ConversionError(f"an identity branch would need the gain {k:.4g}, not an integer",
                                      node=sink.name, op=sink.op, hint="Run this network in floating point")
            gains[b.slot] = float(round(k))
        return gains

    @staticmethod
    def _can_halve(branches: list[_Branch], gains: dict) -> bool:
        return (not any(b.tensor is not None and b.slot is None for b in branches)
                and all(k % 2 == 0 for k in gains.values()))

    def _branch_bound(self, b: _Branch, weights: dict, gains: dict) -> _Range:
        """The range of the current a branch sends to the sink (the sum pools on its way multiply its values
        by 1 / coef)."""
        if b.node is not None:
            return self.bound[self._forward(b.node.inputs[0])].through(weights[b.node.name][0]).scaled(1 / b.coef)
        return self.bound[b.tensor].scaled(gains.get(b.slot, 1.0) / b.coef)

    # -- weighted connections -------------------------------------------------------------------
    def _in_unit(self, n: Node) -> float:
        return self.unit[self._forward(n.inputs[0])]

    def _forward(self, t: str) -> str:
        """``t`` with its unit and bound known: a tensor inside a block upstream of a weighted connection
        (a pool before a Dense, a Conv feeding a Conv) gets them from its own inputs."""
        if t in self.unit:
            return t
        n = self.prod[t]
        op = op_of(n)
        ins = [self._forward(u) for u in n.inputs]
        units = {self.unit[u] for u in ins}
        if op.rescalable == ("weight", "bias"):  # a connection not followed by a sink: its own best unit
            u_out = self._best_unit(n) if np.any(n.params["weight"]) else 1.0
            w_int, e, err = self._weights(n, u_out)
            self._store_weights(n, u_out, w_int, e, err, 0)
            self.unit[t], self.bound[t] = u_out, self.bound[ins[0]].through(w_int)
            return t
        if len(units) != 1:
            raise ConversionError("branches without weights meet here in different units", node=n.name, op=n.op,
                                  hint="Run this network in floating point")
        u = units.pop()
        if op.synaptic and hasattr(op, "window"):
            w = self._sum_pool(n)
            self.unit[t], self.bound[t] = u * w, self.bound[ins[0]].scaled(w)
        elif op.merge and op.additive:
            self.unit[t], self.bound[t] = u, sum((self.bound[v] for v in ins[1:]), self.bound[ins[0]])
        elif op.exact_in_integers:
            self.unit[t], self.bound[t] = u, self.bound[ins[0]]
            for v in ins[1:]:
                self.bound[t] = self.bound[t].union(self.bound[v])
        else:
            raise ConversionError("fixed point has no integer form for this op", node=n.name, op=n.op)
        return t

    def _best_unit(self, n: Node) -> float:
        """The output unit at which ``n``'s weights are stored best: exactly, when they lie on a grid of at most
        127 steps (trained with quantized weights: even mantissas 2k); else with the largest at WEIGHT_MAX."""
        w = n.params["weight"].astype(np.float64)
        delta = _grid(w)
        if delta is not None:
            return 2.0 * self._in_unit(n) / delta
        return WEIGHT_MAX * self._in_unit(n) / float(np.abs(w).max())

    def _weights(self, n: Node, u_out: float) -> tuple[np.ndarray, int, float]:
        """(W_int, exponent, relative RMS error): the smallest exponent whose even mantissas fit 8 bits."""
        w = n.params["weight"].astype(np.float64)
        x = w * u_out / self._in_unit(n)
        peak = float(np.abs(x).max())
        e = max(0, math.ceil(math.log2(peak / WEIGHT_MAX))) if peak > WEIGHT_MAX else 0
        w_int = 2.0 * np.round(x / 2.0 ** (e + 1)) * 2.0 ** e
        norm = float(np.sqrt(np.mean(x ** 2)))
        err = float(np.sqrt(np.mean((w_int - x) ** 2)) / norm) if norm else 0.0
        return w_int, e, err

    def _store_weights(self, n: Node, u_out: float, w_int: np.ndarray, e: int, err: float, rescaled: int) -> None:
        n.params["weight"] = w_int.astype(np.float32)
        n.attrs["weight_exp"] = int(e)
        self.unit[n.output] = u_out
        self.report.append(LayerReport(n.name, n.op, float(u_out), int(e), err, rescaled))

    # -- sinks ----------------------------------------------------------------------------------
    def _sink_overflow(self, sink: Node, U: float, current: _Range) -> str | None:
        """Why this sink's state could leave 24 bits in a sample at unit U, or None."""
        op, step = op_of(sink), _peak(current.step)
        if step >= STATE_MAX:
            return f"a step's input current could reach {step:.3g}"
        # u = a_in << 6 (wraps past 24 bits); v = β v + u, below vth << 6 unless it spikes
        if sink.op in FIXED_POINT_LIF:
            beta_real, theta_real = float(op.attr(sink, "beta")), float(sink.attrs["threshold"])
            if not 0.0 < beta_real <= 1.0 or theta_real <= 0.0:
                raise ConversionError(f"Lava's LIF needs 0 < beta <= 1 (a 12-bit decay) and a positive threshold; this "
                                      f"layer has beta {beta_real:g}, threshold {theta_real:g}", node=sink.name,
                                      op=sink.op, hint="Run this network in floating point")
            beta = 1.0 - self._dv(sink) / DECAY_UNITY
            vth = round(float(sink.attrs["threshold"]) * U)
            if vth > LIF_VTH_MAX:
                return f"the threshold would exceed Lava's 17-bit vth ({LIF_VTH_MAX})"
            u = step * 2 ** LIF_SHIFT
            v = max(beta * vth * 2 ** LIF_SHIFT + current.step[1] * 2 ** LIF_SHIFT,
                    -current.step[0] * 2 ** LIF_SHIFT / max(1e-9, 1.0 - beta))
            if max(u, v) >= STATE_MAX:
                return f"the LIF state (input << {LIF_SHIFT}) could reach {max(u, v):.3g}"
            return None
        if is_level_neuron(sink):  # m = m0 + (currents so far) - θ S, 0 <= S <= rate t_wake (CIF) or the steps (IF)
            theta = self._firing_theta(sink, U)
            counted = op.max_count(sink, self.t_wake, self.steps)
            m0 = float(op.attr(sink, "shift")) * theta  # the QCFS pre-charge
            m = max(m0 + current.total[1], theta * counted - current.total[0] - m0)
        elif op.stateful:  # an inhibition pool's accumulators: one window input's total minus another's
            m = current.total[1] - current.total[0]
        else:  # the readout's running sum (Lava keeps it in int32)
            m = _peak(current.total) / 2 ** (READOUT_BITS - STATE_BITS)
        if m >= STATE_MAX:
            return f"the state could reach {m:.3g} in a sample"
        return None

    def _sink(self, sink: Node, U: float, current: _Range, rescaled: int) -> None:
        op, out = op_of(sink), sink.output
        note = ""
        if is_level_neuron(sink):
            theta_real, rate = float(sink.attrs["threshold"]), op.rate(sink)
            theta = self._firing_theta(sink, U)  # a spike is worth θ / rate: the output unit is U / (θ / rate)
            sink.attrs["threshold"], sink.attrs["amplitude"] = theta * rate, 1.0
            gamma = float(op.spikes_per_step(sink))
            self.unit[out] = U / theta
            if op.sleep_phase:  # signed graded spikes, net count in [0, rate t_wake]
                self.bound[out] = _Range((-gamma, gamma), (0.0, float(op.max_count(sink, self.t_wake, self.steps))))
            else:  # IF: at most one spike per step
                self.bound[out] = _Range((0.0, 1.0), (0.0, float(self.steps)))
            note = (f"threshold {theta * rate:g}" + (f" = {rate} x {theta:g}" if rate > 1 else "")
                    + f" (error {abs(theta * rate - theta_real * U) / (theta_real * U):.2%})")
        elif sink.op in FIXED_POINT_LIF:
            vth = max(1.0, float(np.round(float(sink.attrs["threshold"]) * U)))
            dv = self._dv(sink)
            beta = float(op.attr(sink, "beta"))
            sink.attrs["threshold"], sink.attrs["dv"] = vth, int(dv)
            self.unit[out], self.bound[out] = 1.0, _Range((0.0, 1.0), (0.0, float(self.steps)))  # binary spikes
            note = f"vth {vth:g}, dv {dv}" + ("" if dv == DECAY_UNITY * (1 - beta) else f" (beta {beta} rounded)")
        elif op.stateful and sink.op not in Group.POOL:  # CubaLIF, LI (NIR): no integer form yet
            raise ConversionError("fixed point has no integer form for this neuron (Lava's bit-accurate models take "
                                  "CIF, IF and LIF)", node=sink.name, op=sink.op,
                                  hint="Run this network in floating point (drop --fixed-point)")
        else:  # a readout, or a max pool (each step sends a value within its input's range)
            self.unit[out], self.bound[out] = U, current
        self.report.append(LayerReport(sink.name, sink.op, float(U), 0, 0.0, rescaled, note, _peak(current.total)))

    @staticmethod
    def _firing_theta(sink: Node, U: float) -> float:
        """A CIF/IF neuron's integer firing threshold at block unit U: round(θ U / rate), at least 1 and even where a
        QCFS pre-charge shift θ must be an integer too. The neuron stores rate times it as its threshold, so the
        firing threshold θ / rate of a short wake phase stays an integer: membrane, spikes and count stay exact."""
        op = op_of(sink)
        ideal = float(sink.attrs["threshold"]) * U / op.rate(sink)
        theta, shift = max(1.0, float(np.round(ideal))), float(op.attr(sink, "shift"))
        if not float(shift * theta).is_integer():
            theta = max(2.0, 2.0 * round(ideal / 2.0)) if shift == 0.5 else theta
            if not float(shift * theta).is_integer():
                raise ConversionError(f"shift {shift} has no integer pre-charge", node=sink.name, op=sink.op)
        return theta

    @staticmethod
    def _dv(sink: Node) -> int:
        if "dv" in sink.attrs:
            return int(sink.attrs["dv"])
        return int(round(DECAY_UNITY * (1.0 - float(op_of(sink).attr(sink, "beta")))))


def _through(w_int: np.ndarray, bound: tuple[float, float]) -> tuple[float, float]:
    """The range of W x over outputs, for inputs x in [lo, hi] (per output: positive weights take one end,
    negative weights the other)."""
    w = w_int.reshape(w_int.shape[0], -1)
    pos, neg = np.clip(w, 0, None).sum(1), np.clip(w, None, 0).sum(1)
    lo, hi = bound
    return float((pos * lo + neg * hi).min(initial=0.0)), float((pos * hi + neg * lo).max(initial=0.0))


def _grid(w: np.ndarray) -> float | None:
    """The step δ if every weight is an integer multiple k δ with |k| <= WEIGHT_MAX / 2 (weights trained on an
    8-bit grid: float32 multiples of a power-of-two step, or of the step of the smallest weight), else None."""
    nz = np.abs(w[w != 0])
    if nz.size == 0:
        return None
    for delta in [nz.min() / d for d in (1, 2, 3, 4)] + [2.0 ** math.floor(math.log2(nz.min()))]:
        k = w / delta
        if np.abs(k).max() <= WEIGHT_MAX // 2 and np.abs(k - np.round(k)).max() <= 1e-6:
            return float(delta)
    return None
