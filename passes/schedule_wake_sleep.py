"""schedule_wake_sleep: the time plan of the spiking network (wake/sleep, delays, balancing)."""
from __future__ import annotations

from dataclasses import dataclass, field

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph, Node
from neurocompile.ir.ops import Group, is_level_neuron, op_of, refuse_no_spiking_form, tensors
from neurocompile.ir.schedule import WakeSleepSchedule

SETTLE_MARGIN = 4  # sleep steps beyond the last arrival for a single neuron layer


def settle_margin(levels: int, neuron_depth: int, gamma: int = 1) -> int:
    """Sleep steps the network needs after its last input arrives, predicted from L, the number of
    neuron layers on the longest path and spikes per step γ. Each deeper layer may have to retract
    part of what it sent while its input was still changing, one spike (γ spikes) per step; measured
    on random CQReLU nets (benchmarks/steps_to_lossless.py) that takes at most about L/4 steps per
    extra layer. Empirical, not a proof: ``--steps`` overrides, and ``early_stop`` runs find the true
    quiescence step."""
    return SETTLE_MARGIN + -(-max(neuron_depth - 1, 0) * levels // (4 * max(gamma, 1)))


def settle_bound(g: Graph, t_wake: int, delay: dict[str, int], arrival: dict[str, int],
                 balance: dict[str, list[int]]) -> int:
    """The number of steps T after which a CIF network's readout is *proved* final (equal to the ANN's in exact
    arithmetic), for every input: unlike :func:`settle_margin`, a proof, not a measurement.

    Proof. Write S_t for a CIF neuron's count after step t (0-based), X_t for its cumulative input over its threshold
    plus its pre-charge, cap_t for its count cap (``count_cap``: t_w * rate, t_w its wake steps so far) and
    L = cap after its wake window (``max_count``). The neuron's step is exactly (``ops.LevelNeuron.count_step``,
    ``neurons.cif_count_step``) S_t = clip(S_{t-1} + clip(floor(X_t) - S_{t-1}, -γ, γ), 0, cap_t). Suppose X_t = X
    and cap_t = L for all t >= e, and let τ = clip(floor(X), 0, L). Checking the cases floor(X) >= L,
    0 <= floor(X) < L and floor(X) < 0 shows that each step moves S by min(γ, |τ - S|) toward τ and never past it.
    Since S_{e-1} and τ both lie in [0, L], |τ - S_{e-1}| <= L, so S_t = τ for every t >= e + ceil(L / γ) - 1.
    When are X_t and cap_t constant? Call f(n) the last step on which the cumulative output of node n, as its
    consumers see it (after its output delay), may change. The network input is on for steps 0..T_wake-1:
    f(input) = T_wake - 1. A linear node's cumulative output is a linear map of its inputs' cumulative outputs
    (each held back by its merge's balancing delay); its bias, a CIF neuron's count cap and an inhibition pool's
    bias change only in its wake window [arrival, arrival + T_wake); an inhibition pool's cumulative output is the
    max over each window of its cumulative input (certified.py); a CIF neuron's is its amplitude times S_t. So
    e(n) = max(max over inputs i of f(src_i) + balance_i, arrival(n) + T_wake - 1), f(n) = e(n) + output delay(n)
    for a node whose cumulative output is a function of its cumulative input (linear nodes, inhibition pools), and
    e(n) + ceil(L / γ) - 1 + output delay(n) for a CIF neuron (by the above; X and cap are constant from e(n)). The
    readout accumulates its input over all steps, so it is final after step f(output) and the bound is
    T = max over outputs of f(output) + 1. For a chain of k CIF layers each behind a synaptic delay d this is
    T_wake + (k + 1) d + k (ceil(L / γ) - 1); with T_wake = 1 and γ >= L it is the 1 + path delay of the one-step
    case in :func:`schedule_wake_sleep`. Exact mode computes these dynamics exactly; the float32 step mode up to
    rounding, so runs check quiescence as well (``ReferenceSimulator.unsettled``)."""
    prod = g.producers()
    final: dict[str, int] = {}
    for n in g.topo():
        if not n.inputs:  # the network input: on for steps 0 .. T_wake - 1
            f = t_wake - 1
        else:
            bal = balance.get(n.name) or [0] * len(n.inputs)
            f = max(final[prod[t].name] + d for t, d in zip(n.inputs, bal))
            f = max(f, arrival.get(n.name, 0) + t_wake - 1)  # biases and count caps change in the wake window
            if is_level_neuron(n):
                op = op_of(n)
                cap = int(op.max_count(n, t_wake, t_wake))
                f += -(-cap // max(op.spikes_per_step(n), 1)) - 1
        final[n.name] = f + delay.get(n.name, 0)
    return 1 + max(final[prod[t].name] for t in g.outputs)


def schedule_wake_sleep(g: Graph, t_wake: int | None = None, steps: int | None = None,
                        synapse_delay: int = 0, balance: bool = True) -> Graph:
    """Attach a :class:`WakeSleepSchedule` to the graph (``g.schedule``); nodes are unchanged.

    T_wake defaults to the neurons' quantization levels L (which must agree: a CIF layer's count is
    clipped at T_wake, so T_wake *is* L). Arrival times add ``synapse_delay`` per synaptic layer;
    with ``balance`` each merge delays its early inputs so all branches line up. The default T is
    the predicted settling step: T_wake + longest-path delay + :func:`settle_margin`; ``settle_bound`` is the step by
    which a CIF network has settled for certain (:func:`settle_bound`), what a run at the default T extends to where
    a sample has not settled by the prediction. The IF baseline has no sleep phase: input and biases run for all T,
    so its T_wake is T (the readout averages over every step).
    Invariant: the interpreter's output is unchanged; the schedule references existing nodes only.
    """
    refuse_no_spiking_form(g)
    neurons, lif, t_wake = _neuron_kinds(g, t_wake)
    t_wake, L, is_if = _wake_phase(neurons, t_wake)
    own = _own_delays(g, neurons, lif)
    tm = _timing(g, synapse_delay, balance, own)
    prod = g.producers()
    outs = [prod[t].name for t in g.outputs]
    last = max(tm.lag[n] for n in outs)  # a T-step run of the network itself, held back by the synaptic delays
    settle = _predicted_settle(neurons, bool(lif), is_if, t_wake, L, last, max(tm.ndepth[n] for n in outs))
    # the proved bound exists for a CIF network (LIF: nothing to settle; the IF baseline never settles)
    bound = settle_bound(g, t_wake, tm.delay, tm.arrival, tm.balance) if neurons and not is_if else None
    total = int(steps if steps is not None else settle)
    if is_if:  # no sleep phase: input and biases run for all T steps, so the readout averages over T
        t_wake = total
    sched = WakeSleepSchedule(
        t_wake=int(t_wake), steps=total, synapse_delay=int(synapse_delay),
        sleep=not is_if,
        inputs=[n.name for n in g.input_nodes],
        gated_bias=[n.name for n in g.topo() if _has_bias(g, n)],
        delay={k: v for k, v in tm.delay.items() if v}, own_delay=own,
        arrival={k: v for k, v in tm.arrival.items() if v},
        balance=tm.balance, depth=max(tm.depth.values(), default=0), predicted_settle=int(settle),
        settle_bound=None if bound is None else int(bound))
    if sched.steps < 1:
        raise ConversionError(f"steps must be >= 1, got {sched.steps}")
    g.schedule = sched
    return g


def _neuron_kinds(g: Graph, t_wake: int | None) -> tuple[list[Node], list[Node], int | None]:
    """(CIF/IF neurons, other spiking neurons (a LIF student's), T_wake): one kind of network at a time; a student
    takes its T from the caller or the export's metadata."""
    neurons = [n for n in g.topo() if is_level_neuron(n)]
    lif = [n for n in g.topo() if op_of(n).spiking and not is_level_neuron(n)]
    if lif and neurons:
        raise ConversionError("a graph mixes LIF with CIF/IF neurons: convert one kind of network at a time",
                              node=lif[0].name, op="LIF")
    if lif:  # IDSNN student: T steps of direct input, each layer's bias in its own window, no sleep margin
        if g.meta.get("encoding", "direct") != "direct":
            raise ConversionError(f"input encoding '{g.meta['encoding']}' is not supported (direct only)")
        t_wake = t_wake or g.meta.get("time_steps")
        if not t_wake:
            raise ConversionError("a LIF network needs its time steps T (ONNX: the export metadata "
                                  "neurocompile.time_steps; NIR, which has none: --steps T, or time_steps=T at load)",
                                  node=lif[0].name, op="LIF")
    return neurons, lif, t_wake


def _wake_phase(neurons: list[Node], t_wake: int | None) -> tuple[int, int, bool]:
    """(T_wake, L, whether the network is the IF baseline): the neurons' one L, and T_wake = L / rate by default."""
    levels = sorted({int(n.attrs["levels"]) for n in neurons})
    if len(levels) > 1:
        raise ConversionError(f"layers use different quantization levels {levels}; CIF conversion needs one L "
                              "(T_wake = L)", node=neurons[0].name, op=neurons[0].op)
    is_if = any(not op_of(n).sleep_phase for n in neurons)
    L = levels[0] if levels else (t_wake or 8)
    rates = {op_of(n).rate(n) for n in neurons}  # CIF: L / T_wake (encode_spikes' latency mode), else 1
    if t_wake is None:
        t_wake = L // max(rates, default=1)
    elif not is_if and levels and t_wake * max(rates) != L:
        raise ConversionError(f"T_wake={t_wake} differs from the network's levels L={L}: a CIF network is lossless "
                              "only when its neurons were encoded for this wake phase (encode_spikes t_wake)")
    return t_wake, L, is_if


def _own_delays(g: Graph, neurons: list[Node], lif: list[Node]) -> dict[str, int]:
    """The delays in the network itself (NIR's Delay), by node: for spiking students only."""
    own = {n.name: op_of(n).output_delay(n) for n in g.topo() if op_of(n).output_delay(n)}
    if own and (neurons or not lif):
        n = g.nodes[next(iter(own))]
        raise ConversionError("a delay in the network itself (NIR's Delay) is for spiking students: a CIF network's wake "
                              "phase would miss the delayed input", node=n.name, op=n.op)
    return own


@dataclass
class _Timing:
    """Per node: ``delay`` (synaptic and its own), ``arrival`` (of its latest input), ``balance`` (a merge's delay of
    each early input), ``lag`` (arrival + synaptic delay: the network's own delays are computed, not balanced),
    ``depth`` (synaptic layers) and ``ndepth`` (neuron layers on the longest path)."""

    delay: dict[str, int] = field(default_factory=dict)
    arrival: dict[str, int] = field(default_factory=dict)
    balance: dict[str, list[int]] = field(default_factory=dict)
    lag: dict[str, int] = field(default_factory=dict)
    depth: dict[str, int] = field(default_factory=dict)
    ndepth: dict[str, int] = field(default_factory=dict)


def _timing(g: Graph, synapse_delay: int, balance: bool, own: dict[str, int]) -> _Timing:
    """Arrival times, delays and branch balancing of every node, in topological order."""
    tm = _Timing()
    prod = g.producers()
    for n in g.topo():
        srcs = [prod[t].name for t in n.inputs]
        arr = [tm.lag[s] for s in srcs]
        start = max(arr, default=0)
        if op_of(n).merge and balance and len(set(arr)) > 1:
            tm.balance[n.name] = [start - a for a in arr]
        tm.delay[n.name] = (synapse_delay if op_of(n).synaptic else 0) + own.get(n.name, 0)
        tm.arrival[n.name] = start
        tm.lag[n.name] = start + tm.delay[n.name] - own.get(n.name, 0)
        tm.depth[n.name] = max([tm.depth[s] for s in srcs], default=0) + (1 if op_of(n).synaptic else 0)
        tm.ndepth[n.name] = max([tm.ndepth[s] for s in srcs], default=0) + (1 if is_level_neuron(n) else 0)
    return tm


def _predicted_settle(neurons: list[Node], lif: bool, is_if: bool, t_wake: int, L: int, last: int,
                      neuron_depth: int) -> int:
    """The default T: the step by which the readout is predicted (or, in the cases below, proved) final."""
    gamma = min([op_of(n).spikes_per_step(n) for n in neurons], default=1)
    if lif:  # a LIF student runs exactly T steps (plus the path delay): there is nothing to settle
        return t_wake + last
    if not is_if and t_wake == 1 and gamma >= L:
        # one wake step and spikes of up to L: every layer receives its whole input in one step and sends its whole
        # count at once (floor(m / θ') is in [0, L] or capped; nothing is left to correct), so the readout is final
        # when the last layer's spikes arrive: proved, not predicted
        return 1 + last
    # a neuron sends at most gamma per step: its L-spike count takes ceil(L / gamma) steps at least
    return max(t_wake, -(-L // gamma)) + last + settle_margin(L, neuron_depth, gamma)


def _has_bias(g: Graph, n) -> bool:
    """An affine node with a constant term (the op table's ``bias``), which sleeps with the wake phase."""
    op = op_of(n)
    return n.op in Group.AFFINE and op.bias(n, tensors(n), g.shapes[n.output]) is not None
