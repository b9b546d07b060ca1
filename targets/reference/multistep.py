"""Multi-step execution of the reference simulator: layer by layer over all T steps (SpikingJelly's and lava-dl's
multi-step mode), instead of step by step over all layers.

Each tensor is a *time series*: a list of T entries, each a tensor or None (silent). A connection runs once per
layer on every distinct non-silent entry at once (one batched convolution over k x N inputs: the wake phase's
constant input current is one entry repeated, so it is computed once), a delay shifts the list, and a sink runs its
neuron recurrence over the T steps. Same graph, same schedule, same op definitions as the step-by-step mode;
float rounding can differ only where a batched convolution sums in another order.
"""
from __future__ import annotations

from typing import Callable

import torch

from neurocompile.errors import TargetError
from neurocompile.ir.ops import OPS, Group
from neurocompile.targets.reference.stepping import SinkStep, sink_steps

Series = list  # T entries: a tensor (N, ...) or None (all zeros)
# input elements per batched call: small enough to stay in cache (2-core EPYC, benchmarks of digits, VGG, ResNet
# nets at batch 256: 65,536 ran 1.1-1.5x the step mode in float64 and float32; a whole layer at once 0.8-1.2x)
CHUNK = 65_536


def shift(series: Series, d: int) -> Series:
    """``series`` delayed by ``d`` steps (zeros first)."""
    return ([None] * d + series[:len(series) - d]) if d else series


def run_multistep(sim, inputs: list[torch.Tensor], T: int, record_layers: bool,
                  progress: Callable[[int], None] | None = None) -> dict:
    """Run ``sim`` (a ReferenceSimulator) on the encoded input current of each step (``inputs``, T entries; a silent
    one is marked so) for ``T`` steps, layer by layer. Returns the readout sums per output node after every step,
    spike counts and (on request) per-layer records."""
    s, g = sim.sched, sim.g
    uses: dict[str, int] = {}
    for n in sim.order:
        for src in sim.srcs[n.name]:
            uses[src] = uses.get(src, 0) + 1
    series: dict[str, Series] = {}
    counts = {n.name: torch.zeros(2, dtype=torch.float64, device=sim.device)
              for n in sim.order if OPS[n.op].spiking}
    layers: dict[str, list] | None = {} if record_layers else None
    state: dict[str, dict] = {}
    sinks = sink_steps(g, sim.order, sim.params, T)
    for i, n in enumerate(sim.order):
        if not n.inputs:
            y = [None if getattr(v, "_nc_silent", False) else v for v in inputs]
        else:
            ins = [series[src] for src in sim.srcs[n.name]]
            if n.name in s.balance:
                ins = [shift(x, d) for x, d in zip(ins, s.balance[n.name])]
            shape = (inputs[0].shape[0], *g.shapes[n.inputs[0]])  # a sink's input current
            if n.name in sinks:
                y = _sink(sim, sinks[n.name], ins[0], T, state, counts, layers, shape)
            elif n.op in Group.AFFINE:
                y = _linear(sim, n, ins)
            else:
                raise TargetError("the reference simulator cannot run this op", node=n.name, op=n.op)
        series[n.name] = shift(y, s.delay.get(n.name, 0))
        for src in sim.srcs[n.name]:  # free what no later node reads
            uses[src] -= 1
            if uses[src] == 0 and src not in sim.out_names:
                del series[src]
        if progress:
            progress(T * (i + 1) // len(sim.order))
    return {"series": {o: series[o] for o in sim.out_names}, "counts": counts, "layers": layers, "state": state}


def _linear(sim, n, ins: list[Series]) -> Series:
    """A connection (or Add, Flatten, ...) on every step at once: each distinct input (or tuple of inputs) once."""
    T = len(ins[0])
    keys = [tuple(id(x[t]) if x[t] is not None else None for x in ins) for t in range(T)]
    distinct = {k: t for t, k in reversed(list(enumerate(keys))) if any(v is not None for v in k)}
    if not distinct:
        return [None] * T
    if len(ins) == 1:  # batched calls over the distinct inputs, CHUNK elements at a time (they stay in cache)
        order = list(distinct)
        xs = [ins[0][distinct[k]] for k in order]
        N, per = xs[0].shape[0], max(1, CHUNK // max(1, xs[0].numel()))
        parts = {}
        for i in range(0, len(xs), per):
            group = xs[i:i + per]
            out = sim.connect(n, [torch.cat(group) if len(group) > 1 else group[0]])
            parts.update(zip(order[i:i + per], out.split(N)))
    else:  # several inputs (an Add): elementwise, zeros for the silent ones
        parts = {}
        for k, t in distinct.items():
            ref = next(x[t] for x in ins if x[t] is not None)
            parts[k] = sim.connect(n, [x[t] if x[t] is not None else torch.zeros_like(ref) for x in ins])
    return [parts.get(k) for k in keys]


def _sink(sim, sink: SinkStep, xs: Series, T: int, state: dict, counts: dict, layers: dict | None,
          shape: tuple) -> Series:
    """A neuron layer, inhibition pool or readout over the T steps by the sink-stepping rule (stepping.py: bias in
    its wake window, silent from its end)."""
    from neurocompile.targets.reference.simulator import is_silent, step_stateful

    n, op = sink.node, sink.op
    zeros = torch.zeros(shape, dtype=sim.dtype, device=sim.device)
    out: Series = []

    def advance(n, state, x, wake_seen, bias=None):  # with its spike counts
        return step_stateful(n, state, x, wake_seen, counts, bias)

    record = [] if layers is not None and op.spiking else None
    for t in range(T):
        if sink.rests(t, lambda: xs[t] is None):
            out.append(None)
            continue
        val = sink(xs[t] if xs[t] is not None else zeros, t, state, advance)
        if val is None:  # past a student's T steps
            if record is not None:
                record.append(torch.zeros((shape[0], *sim.g.shapes[n.output]), dtype=torch.float32))
            out.append(None)
            continue
        if not op.stateful:  # the readout
            out.append(val if xs[t] is not None or sink.bias is not None else None)
            continue
        if record is not None:
            record.append((val / op.spike_amplitude(n)).to(torch.float32).cpu())
        out.append(None if is_silent(val) else val)
    if record is not None:
        layers[n.name] = record
    return out
