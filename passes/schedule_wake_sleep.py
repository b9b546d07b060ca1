"""schedule_wake_sleep: the time plan of the spiking network (wake/sleep, delays, balancing)."""
from __future__ import annotations

from neurocompile.errors import ConversionError
from neurocompile.ir import Graph
from neurocompile.ops import is_level_neuron, op_of, refuse_no_spiking_form, tensors
from neurocompile.schedule import WakeSleepSchedule

SETTLE_MARGIN = 4  # sleep steps beyond the last arrival for a single neuron layer


def settle_margin(levels: int, neuron_depth: int, gamma: int = 1) -> int:
    """Sleep steps the network needs after its last input arrives, predicted from L, the number of
    neuron layers on the longest path and spikes per step γ. Each deeper layer may have to retract
    part of what it sent while its input was still changing, one spike (γ spikes) per step; measured
    on random CQReLU nets (benchmarks/steps_to_lossless.py) that takes at most about L/4 steps per
    extra layer. Empirical, not a proof: ``--steps`` overrides, and ``early_stop`` runs find the true
    quiescence step."""
    return SETTLE_MARGIN + -(-max(neuron_depth - 1, 0) * levels // (4 * max(gamma, 1)))


def schedule_wake_sleep(g: Graph, t_wake: int | None = None, steps: int | None = None,
                        synapse_delay: int = 0, balance: bool = True) -> Graph:
    """Attach a :class:`WakeSleepSchedule` to the graph (``g.schedule``); nodes are unchanged.

    T_wake defaults to the neurons' quantization levels L (which must agree: a CIF layer's count is
    clipped at T_wake, so T_wake *is* L). Arrival times add ``synapse_delay`` per synaptic layer;
    with ``balance`` each merge delays its early inputs so all branches line up. The default T is
    the predicted settling step: T_wake + longest-path delay + :func:`settle_margin`. The IF baseline has no sleep phase: input and biases run for all T, so its T_wake is T (the readout averages over every step).
    Invariant: the interpreter's output is unchanged; the schedule references existing nodes only.
    """
    refuse_no_spiking_form(g)
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
    own = {n.name: op_of(n).output_delay(n) for n in g.topo() if op_of(n).output_delay(n)}
    if own and (neurons or not lif):
        n = g.nodes[next(iter(own))]
        raise ConversionError("a delay in the network itself (NIR's Delay) is for spiking students: a CIF network's wake "
                              "phase would miss the delayed input", node=n.name, op=n.op)
    delay, arrival, extra = {}, {}, {}
    lag: dict[str, int] = {}  # arrival + synaptic delay: the network's own delays are computed, not balanced
    depth: dict[str, int] = {}
    ndepth: dict[str, int] = {}  # neuron layers on the longest path
    prod = g.producers()
    for n in g.topo():
        srcs = [prod[t].name for t in n.inputs]
        arr = [lag[s] for s in srcs]
        start = max(arr, default=0)
        if op_of(n).merge and balance and len(set(arr)) > 1:
            extra[n.name] = [start - a for a in arr]
        delay[n.name] = (synapse_delay if op_of(n).synaptic else 0) + own.get(n.name, 0)
        arrival[n.name] = start
        lag[n.name] = start + delay[n.name] - own.get(n.name, 0)
        depth[n.name] = max([depth[s] for s in srcs], default=0) + (1 if op_of(n).synaptic else 0)
        ndepth[n.name] = max([ndepth[s] for s in srcs], default=0) + (1 if is_level_neuron(n) else 0)
    outs = [prod[t].name for t in g.outputs]
    last = max(lag[n] for n in outs)  # a T-step run of the network itself, held back by the synaptic delays
    gamma = min([int(n.attrs.get("gamma", 1)) for n in neurons], default=1)
    if lif:  # a LIF student runs exactly T steps (plus the path delay): there is nothing to settle
        settle = t_wake + last
    elif not is_if and t_wake == 1 and gamma >= L:
        # one wake step and spikes of up to L: every layer receives its whole input in one step and sends its whole
        # count at once (floor(m / θ') is in [0, L] or capped; nothing is left to correct), so the readout is final
        # when the last layer's spikes arrive: proved, not predicted
        settle = 1 + last
    else:  # a neuron sends at most gamma per step: its L-spike count takes ceil(L / gamma) steps at least
        settle = max(t_wake, -(-L // gamma)) + last + settle_margin(L, max(ndepth[n] for n in outs), gamma)
    total = int(steps if steps is not None else settle)
    if is_if:  # no sleep phase: input and biases run for all T steps, so the readout averages over T
        t_wake = total
    sched = WakeSleepSchedule(
        t_wake=int(t_wake), steps=total, synapse_delay=int(synapse_delay),
        sleep=not is_if,
        inputs=[n.name for n in g.input_nodes],
        gated_bias=[n.name for n in g.topo() if _has_bias(g, n)],
        delay={k: v for k, v in delay.items() if v}, own_delay=own, arrival={k: v for k, v in arrival.items() if v},
        balance=extra, depth=max(depth.values(), default=0), predicted_settle=int(settle))
    if sched.steps < 1:
        raise ConversionError(f"steps must be >= 1, got {sched.steps}")
    g.schedule = sched
    return g


def _has_bias(g: Graph, n) -> bool:
    """An affine node with a constant term (the op table's ``bias``), which sleeps with the wake phase."""
    op = op_of(n)
    return op.role == "affine" and op.bias(n, tensors(n), g.shapes[n.output]) is not None
