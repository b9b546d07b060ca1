"""Reference SNN simulator: runs a converted graph step by step with its WakeSleepSchedule.

Vectorized over the batch in torch (CPU, or CUDA when asked). It runs the lowered graph
(passes/lower_to_blocks.py) every target runs: connections are linear maps (the op table's ``linear``), and
each sink (neuron, inhibition pool, readout) steps by the one sink-stepping rule (stepping.py: its ``bias`` in its
wake window, then its op's ``step``, built on ``neurocompile.ir.neurons``); a student's sinks each run the
network's own T steps (``passes.blocks.sink_ends``), so synaptic delays change no number. Two shortcuts keep it
fast without changing a single value: an affine node whose inputs are the very same tensors as on the previous
step reuses its linear output (the input current is constant during wake), and one whose inputs are all zero
skips the map.
"""
from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from neurocompile.errors import TargetError
from neurocompile.ir import Graph, Node, fused_cif
from neurocompile.ir.ops import OPS, Group, is_level_neuron, tensors
from neurocompile.passes.blocks import sink_ends
from neurocompile.passes.lower_to_blocks import lowered
from neurocompile.targets import SimResult, per_step_input
from neurocompile.targets.reference.event_driven import EventConnections
from neurocompile.targets.reference.stepping import SinkStep, advance, sink_steps

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class _Delay:
    """Fixed delay line: push this step's value, get the one from ``d`` steps ago (zeros at first)."""

    def __init__(self, d: int):
        self.buf: deque = deque([None] * d)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.buf.append(x)
        y = self.buf.popleft()
        if y is None:
            y = torch.zeros_like(x)
            y._nc_silent = True
        return y


def step_stateful(n: Node, state: dict, x: torch.Tensor, wake_seen: int, counts: dict,
                  bias: torch.Tensor | None = None) -> torch.Tensor:
    """One step of a stateful sink (:func:`stepping.advance`) and, for a neuron, its spike counts."""
    op = OPS[n.op]
    val = advance(n, state, x, wake_seen, bias)
    if op.spiking:
        sums = state[n.name].pop(fused_cif.SUMS, None)
        if sums is not None:  # counted by the fused step on the way (sum |s|, sum s), in spikes
            amp = op.spike_amplitude(n)
            tally = counts[n.name].numpy()  # on the CPU, where the kernel runs: in place, no tensor per step
            tally[0] += sums[0] * amp
            tally[1] += sums[1] * amp
            val._nc_silent = sums[0] == 0
            val._nc_spikes = sums[0]  # at least its nonzeros (event_driven.py's first test)
            return val
        flat = val.reshape(-1)
        # sum |s| * amplitude: for binary/ternary spikes s*s = |s| and a dot product is the cheapest pass
        mag = torch.dot(flat, flat) / op.spike_amplitude(n) if op.binary_spikes(n) else flat.abs().sum()
        counts[n.name] += torch.stack([mag, flat.sum()]).double()
        val._nc_silent = bool(mag == 0)  # known from the count: the next map skips a silent input without a pass
        val._nc_spikes = None  # (a reused tensor may carry a count from an earlier step)
    return val


class SpikeBuffers:
    """The tensors one sink's spikes are written into, each reused once nothing outside this pool holds it (neither the
    tensor nor a view of its memory): a fresh multi-megabyte tensor per step costs page faults that took as long as
    the step itself. A value kept by a delay line, a record or a caller stays its own tensor."""

    def __init__(self):
        self.free: list[torch.Tensor] = []

    def take(self, like: torch.Tensor) -> torch.Tensor:
        for b in self.free:  # references to b here: the list, the loop variable and getrefcount's argument
            if sys.getrefcount(b) == 3 and torch._C._storage_Use_Count(b.untyped_storage()._cdata) == 1:
                return b
        b = torch.empty_like(like)
        self.free.append(b)
        return b


def is_silent(x: torch.Tensor) -> bool:
    """All zeros: known for spikes and shared zero tensors (``_nc_silent``), else one pass over ``x``."""
    known = getattr(x, "_nc_silent", None)
    return (not bool(x.any())) if known is None else known


# float64 runs on CPU go in batches of this many samples: torch has no mkldnn float64 convolution, and its fallback
# (per-sample im2col + GEMM) slows down on large batches (on 2 cores: 256 samples at once 0.7x, 64 at a time 1.0x)
F64_CPU_BATCH = 64
F32_CPU_BATCH = 64  # float32 on CPU: a batch's neuron state stays in cache (2 cores: 64 at a time 1.3-2x 256 at once)
CERTIFIED_CPU_BATCH = 128  # the count-domain executor: on 2 cores 128 ran 1.1-1.3x faster than 32, 64 or 256
CERTIFIED_PRECISION = "exact (float32, every spike decision proved or made in float64; readout in float64)"


def input_steps(xin: torch.Tensor, per_step: bool, T: int, s) -> list[torch.Tensor]:
    """The input current of each of the T steps: ``xin`` on the schedule's input steps (or its step's slice of a
    per-step input, zeros after it), a shared silent zero tensor otherwise."""
    frames = xin.transpose(0, 1).contiguous() if per_step else None  # (T_x, N, ...): each step contiguous
    zero = torch.zeros_like(xin if frames is None else frames[0])
    zero._nc_silent = True
    if frames is None:
        return [xin if s.input_on(t) else zero for t in range(T)]
    return [frames[t] if t < len(frames) and s.input_on(t) else zero for t in range(T)]


def chunk_bounds(n: int, batch: int) -> list[tuple[int, int]]:
    """[start, end) of the chunks of at most ``batch`` samples that run one after another, none of them a lone sample
    (torch computes a one-row matrix product as a matrix-vector product, which rounds float32 differently)."""
    ends = list(range(batch, n, batch)) + [n]
    if len(ends) > 1 and ends[-1] - ends[-2] == 1 and batch > 2:
        ends[-2] -= 1
    return list(zip([0] + ends[:-1], ends))


@dataclass
class _StepRun:
    """The state of one step-by-step run of ``N`` samples over ``T`` steps."""

    T: int
    N: int
    inputs: list[torch.Tensor]  # the input current of each step (input_steps)
    sinks: dict[str, SinkStep]  # each sink's stepping rule for this run
    delays: dict[str, _Delay]  # synaptic delay lines, per node
    balance: dict[str, list]  # per merge: a delay line (or None) per input
    counts: dict[str, torch.Tensor]  # per spiking node: (sum |s|, sum s) over batch and time
    layers: dict[str, list] | None  # per spiking node: its spikes after each step (record_layers)
    late: torch.Tensor  # samples active in the last max_delay + 1 steps
    state: dict[str, dict] = field(default_factory=dict)  # per stateful sink: its op's state
    cache: dict[str, tuple] = field(default_factory=dict)  # per affine node reading the input: its last map

    buffers: dict[str, SpikeBuffers] = field(default_factory=dict)  # per spiking sink: tensors for its spikes

    def advance(self, n: Node, state: dict, x: torch.Tensor, wake_seen: int,
                bias: torch.Tensor | None = None) -> torch.Tensor:
        """A stateful sink's step with its spike counts (``step_stateful``, looked up per call: benchmarks swap it),
        its spikes written into a reused tensor where its op takes one (``fused_cif.OUT``)."""
        st, pool = state.get(n.name), self.buffers.get(n.name)
        if st is None or pool is None:
            return step_stateful(n, state, x, wake_seen, self.counts, bias)
        st[fused_cif.OUT] = pool.take(x)
        try:
            return step_stateful(n, state, x, wake_seen, self.counts, bias)
        finally:
            st.pop(fused_cif.OUT, None)  # an op that took none leaves it: the pool's tensor stays free


class ReferenceSimulator:
    """Compile once, run many batches: ``ReferenceSimulator(graph).run(x, steps)``."""

    def __init__(self, graph: Graph, device: str | None = None, dtype: str | None = None, exact: bool = False):
        """``dtype`` None: float32 (fast; the readout differs from the exact one by float32 rounding, and by a level
        where a pre-activation lies within that rounding of a quantization step), float64 for a fixed-point network
        (its integers are exact there). ``exact`` (float64 dtype) is the mode proofs and exactness tests use: a run
        without early stop or layer records goes through the count domain (certified.py: float32 with every spike
        decision proved, or made in float64; readouts in float64), other runs and other neurons step in float64."""
        if graph.schedule is None:
            raise TargetError("graph has no wake/sleep schedule: convert it first (neurocompile.api.convert)")
        self.g = graph = lowered(graph)
        self.sched = graph.schedule
        self.device = torch.device(device or "cpu")
        fixed = bool(graph.meta.get("fixed_point"))
        if dtype is None:
            dtype = "float64" if fixed else "float32"
        if dtype not in DTYPES:
            raise TargetError(f"unknown dtype '{dtype}' (choose from {', '.join(DTYPES)})")
        self.dtype = DTYPES[dtype]
        if fixed and dtype != "float64":  # LIF products reach 2**35, readout sums 2**31
            raise TargetError(f"a fixed-point network runs in float64 (exact integers); {dtype} would round them",
                              hint="Drop the dtype option")
        self.precision = ("integers (exact, in float64)" if fixed else
                          "float64 (exact)" if dtype == "float64" else "float32 (fast; --exact for float64)")
        self.certified = bool(exact) and not fixed and dtype == "float64"
        self._plans: dict[int, object] = {}
        self.proof: dict[str, int] | None = None  # the last certified run's decision counts
        # the samples of the last run still spiking at its end (their readout is not final yet); None: not known
        self.unsettled: list[int] | None = None
        # a CIF network settles (its readout becomes the ANN's); an LIF student runs its T steps, the IF baseline never
        self.settles = bool(graph.schedule.sleep) and any(is_level_neuron(n) and OPS[n.op].sleep_phase
                                                          for n in graph.nodes.values())
        if self.settles and self.device.type == "cpu":
            fused_cif.load()  # CIF steps in one compiled loop, same numbers (built once per machine; optional)
        self.order = graph.topo()
        self.params = {n.name: tensors(n, self.dtype, self.device) for n in self.order}
        # sparse spikes into a connection: added event by event (event_driven.py; CIF networks on CPU, where the
        # compiled loop is loaded: whether it runs never depends on what else this process loaded)
        self.events = EventConnections(graph, self.order if self.settles else [], self.params)
        prod = graph.producers()
        self.srcs = {n.name: [prod[t].name for t in n.inputs] for n in self.order}
        for n in self.order:
            if n.op in Group.ACTIVATION or n.op in Group.MAXPOOL:
                raise TargetError("node is not spiking-ready", node=n.name, op=n.op,
                                  hint="Run the conversion passes (encode_spikes) first")
        # a tensor listed twice among the outputs (an Identity alias) is read out once (one Readout)
        self.out_tensors = list(dict.fromkeys(graph.outputs))
        self.out_names = [prod[t].name for t in self.out_tensors]
        self._zero_cache: dict[str, torch.Tensor] = {}
        self._buffers: dict[str, torch.Tensor] = {}
        inputs = {n.name for n in graph.input_nodes}
        self.reads_input = {n.name for n in self.order if self.srcs[n.name] and set(self.srcs[n.name]) <= inputs}

    def ends(self, T: int) -> dict[str, int]:
        """The step from which each sink is silent in a ``T``-step run (a student's; passes.blocks.sink_ends, the rule
        every target follows)."""
        return sink_ends(self.g, T)

    # ------------------------------------------------------------------------------------
    def run(self, x: np.ndarray | torch.Tensor, steps: int | None = None, early_stop: bool = False,
            record: bool = True, progress: Callable[[int], None] | None = None,
            record_layers: bool = False, batch: int | None = None, multi_step: bool = False) -> SimResult:
        """Simulate ``steps`` (default: the schedule's T). With ``early_stop`` the run ends once the
        network is quiescent after the wake phase; the readout is then final and is reported for all
        remaining steps, so the result equals a full run. ``record_layers`` keeps every spiking layer's
        signed spike count per neuron after each step (``SimResult.layers``; memory grows with T) and its
        membrane potential after the last step (``SimResult.membranes``: what is left unsent).
        ``batch`` runs at most that many samples at a time (bounded memory; the same result; float64 on CPU:
        :data:`F64_CPU_BATCH` by default). ``multi_step`` runs
        layer by layer over all steps (targets/reference/multistep.py: batched convolutions over time; no early
        stop). ``x`` of shape (N, *input shape) is held on every input step (direct encoding); (N, T_x, *input shape)
        gives the input of each step (spiking input), zeros after T_x (T_x <= ``steps``).
        Every run leaves in ``self.unsettled`` the samples that have not settled by its last step (:meth:`_settling`;
        None where that is not known: multi-step runs, and networks without a sleep phase)."""
        self.unsettled = None
        per_step = self._per_step_input(x, steps)
        certified = (self.certified and not early_stop and not record_layers and not per_step
                     and self._plan(steps) is not None)
        if batch is None and self.device.type == "cpu":
            batch = (CERTIFIED_CPU_BATCH if certified else F32_CPU_BATCH if self.dtype == torch.float32 else
                     None if multi_step else F64_CPU_BATCH)
        if batch is not None and len(x) > batch:
            return self._run_in_batches(x, steps, early_stop, record, progress, record_layers, int(batch), multi_step)
        if certified:
            return self._run_certified(x, steps, record, progress)
        if multi_step:
            if early_stop:
                raise TargetError("multi-step mode runs every step of every layer: it cannot stop early",
                                  hint="Drop early_stop, or run step by step")
            return self._run_multi(x, steps, record, progress, record_layers)
        return self._run_steps(x, steps, early_stop, record, progress, record_layers, per_step)

    def _run_steps(self, x, steps, early_stop: bool, record: bool, progress, record_layers: bool,
                   per_step_input: bool) -> SimResult:
        """The step-by-step run: every node on each step, in topological order (ended early where ``early_stop``
        finds the network quiescent after its wake phase)."""
        s, g = self.sched, self.g
        T = int(steps if steps is not None else s.steps)
        xin = s.encode_input(torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x,
                                             dtype=self.dtype, device=self.device))
        if len(g.input_nodes) != 1:
            raise TargetError("the reference simulator takes single-input graphs")
        r = self._start(xin, per_step_input, T, record_layers)
        acc = {o: None for o in self.out_names}
        per_step = []
        quiet_since, quiescent_at, t_done = None, None, T
        for t in range(T):
            check = early_stop and s.sleep and t >= s.wake_end
            vals, active = self._network_step(r, t, check)
            for o in self.out_names:
                acc[o] = vals[o].clone() if acc[o] is None else acc[o] + vals[o]
            if record:
                per_step.append((acc[self.out_names[0]] / (s.t_wake * s.readout_scale)).cpu().numpy())
            if progress:
                progress(t + 1)
            if check:
                quiet_since = (quiet_since if quiet_since is not None else t) if not active else None
                if quiet_since is not None and t - quiet_since >= s.max_delay:
                    quiescent_at, t_done = quiet_since, t + 1
                    break
        self.unsettled = [] if quiescent_at is not None else self._settling(r.late, T)
        if record and t_done < T:
            per_step += [per_step[-1]] * (T - t_done)
        return self._step_result(r, acc, per_step if record else None, t_done, quiescent_at)

    def _start(self, xin: torch.Tensor, per_step_input: bool, T: int, record_layers: bool) -> _StepRun:
        """A step-by-step run's state before its first step."""
        s = self.sched
        spiking = [n.name for n in self.order if OPS[n.op].spiking]
        return _StepRun(
            T=T, N=xin.shape[0], inputs=input_steps(xin, per_step_input, T, s),
            sinks=sink_steps(self.g, self.order, self.params, T),
            delays={k: _Delay(v) for k, v in s.delay.items()},
            balance={k: [_Delay(d) if d else None for d in v] for k, v in s.balance.items()},
            counts={k: torch.zeros(2, dtype=torch.float64, device=self.device) for k in spiking},
            layers={k: [] for k in spiking} if record_layers else None,
            late=torch.zeros(xin.shape[0], dtype=torch.bool, device=self.device),
            buffers={k: SpikeBuffers() for k in spiking})

    def _network_step(self, r: _StepRun, t: int, check: bool) -> tuple[dict[str, torch.Tensor], bool]:
        """Every node at step ``t``: the values each sends (after its delay line), and whether a stateful node was
        active (looked at only where ``check``: the early-stop test)."""
        N = r.N
        tail = self.settles and t >= r.T - 1 - self.sched.max_delay  # per sample only at the end: what _settling needs
        vals: dict[str, torch.Tensor] = {}
        active = False
        for n in self.order:
            if not n.inputs:  # the input
                y = r.inputs[t]
            else:
                xs = [vals[src] for src in self.srcs[n.name]]
                if n.name in r.balance:
                    xs = [b(v) if b else v for b, v in zip(r.balance[n.name], xs)]
                y = self._step(n, xs, t, r)
                if r.layers is not None and n.name in r.layers:  # spikes as sent, before any delay line
                    r.layers[n.name].append((y / OPS[n.op].spike_amplitude(n)).to(torch.float32).cpu())
                if check and not active and OPS[n.op].stateful:
                    active = not is_silent(y)
                if tail and OPS[n.op].stateful and not is_silent(y):
                    r.late |= y.reshape(N, -1).ne(0).any(1)
            if n.name in r.delays:
                y = r.delays[n.name](y)
            vals[n.name] = y
        return vals, active

    def _step_result(self, r: _StepRun, acc: dict, per_step: list | None, t_done: int,
                     quiescent_at: int | None) -> SimResult:
        """The SimResult of a step-by-step run that ran ``t_done`` of its steps (the rest quiescent)."""
        s, T, layers = self.sched, r.T, r.layers
        if layers is not None:  # quiescent steps send nothing: pad with zeros, then count up
            layers = {k: np.cumsum(torch.stack(v + [torch.zeros_like(v[0])] * (T - t_done)).numpy(), axis=0)
                      for k, v in layers.items()}
        outputs = {t_: (acc[o] / (s.t_wake * s.readout_scale)).cpu().numpy() for t_, o in zip(self.out_tensors, self.out_names)}
        return SimResult(outputs=outputs, steps=T, t_wake=s.t_wake, precision=self.precision,
                         per_step=np.stack(per_step) if per_step is not None else None,
                         spikes=self._spike_counts(r.counts),
                         quiescent_at=quiescent_at, layers=layers,
                         membranes=None if layers is None else
                         {k: OPS[self.g.nodes[k].op].membrane(self.g.nodes[k], r.state[k]).cpu().numpy().copy()
                          for k in layers if k in r.state})

    def _run_multi(self, x, steps, record: bool, progress, record_layers: bool) -> SimResult:
        from neurocompile.targets.reference.multistep import run_multistep

        s, g = self.sched, self.g
        T = int(steps if steps is not None else s.steps)
        if len(g.input_nodes) != 1:
            raise TargetError("the reference simulator takes single-input graphs")
        xin = s.encode_input(torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x,
                                             dtype=self.dtype, device=self.device))
        out = run_multistep(self, input_steps(xin, self._per_step_input(x, T), T, s), T, record_layers, progress)
        scale = s.t_wake * s.readout_scale
        sums: dict[str, list] = {}
        for o, series in out["series"].items():
            acc, run = None, []
            for v in series:
                if v is not None:
                    acc = v.clone() if acc is None else acc + v
                run.append(acc)
            zero = torch.zeros((xin.shape[0], *g.shapes[self.g.nodes[o].output]), dtype=self.dtype, device=self.device)
            sums[o] = [zero if a is None else a for a in run]
        first = sums[self.out_names[0]]
        layers = None
        if record_layers:
            layers = {k: np.cumsum(torch.stack(v).numpy(), axis=0) for k, v in out["layers"].items()}
        return SimResult(outputs={t_: (sums[o][-1] / scale).cpu().numpy() for t_, o in zip(self.out_tensors,
                                                                                          self.out_names)},
                         steps=T, t_wake=s.t_wake, precision=self.precision,
                         per_step=np.stack([(a / scale).cpu().numpy() for a in first]) if record else None,
                         spikes=self._spike_counts(out["counts"]), quiescent_at=None, layers=layers,
                         membranes=None if layers is None else
                         {k: OPS[g.nodes[k].op].membrane(g.nodes[k], out["state"][k]).cpu().numpy().copy()
                          for k in layers if k in out["state"]})

    def _per_step_input(self, x, steps: int | None) -> bool:
        return per_step_input(self.g, x, int(steps if steps is not None else self.sched.steps))

    def _plan(self, steps: int | None):
        from neurocompile.targets.reference.certified import plan

        T = int(steps if steps is not None else self.sched.steps)
        if T not in self._plans:
            self._plans[T] = plan(self, T)
        return self._plans[T]

    def _run_certified(self, x, steps, record: bool, progress) -> SimResult:
        from neurocompile.targets.reference.certified import run_certified

        s, g = self.sched, self.g
        T = int(steps if steps is not None else s.steps)
        xin = s.encode_input(torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x,
                                             dtype=torch.float64, device=self.device))
        out = run_certified(self._plan(T), xin, T, record, progress)
        self.proof, self.unsettled = out["proof"], out["unsettled"]
        scale = s.t_wake * s.readout_scale
        counts = {k: v * OPS[g.nodes[k].op].spike_amplitude(g.nodes[k]) for k, v in out["stats"].items()}
        first = out["sums"][self.out_names[0]]
        return SimResult(outputs={t_: (out["sums"][o][-1] / scale).cpu().numpy()
                                  for t_, o in zip(self.out_tensors, self.out_names)},
                         steps=T, t_wake=s.t_wake, precision=CERTIFIED_PRECISION,
                         per_step=np.stack([(a / scale).cpu().numpy() for a in first]) if record else None,
                         spikes=self._spike_counts(counts), quiescent_at=out["quiescent_at"], layers=None,
                         membranes=None)

    def _run_in_batches(self, x, steps, early_stop, record, progress, record_layers, batch: int,
                        multi_step: bool = False) -> SimResult:
        chunks = chunk_bounds(len(x), batch)
        T = int(steps if steps is not None else self.sched.steps)
        parts, proof, unsettled = [], {}, []
        for k, (i, j) in enumerate(chunks):  # progress in steps of the whole run: chunk k's step t is (k*T + t)/chunks
            tick = None if progress is None else (lambda t, k=k: progress((k * T + t) // len(chunks)))
            self.proof = None
            parts.append(self.run(x[i:j], steps, early_stop, record, tick, record_layers, batch=j - i,
                                  multi_step=multi_step))
            for key, v in (self.proof or {}).items():  # the decision counts of the whole run
                proof[key] = proof.get(key, 0) + v
            unsettled = None if unsettled is None or self.unsettled is None else unsettled + [i + k_ for k_ in
                                                                                              self.unsettled]
            if progress is not None:  # an early-stopped chunk is done with all its steps
                progress(((k + 1) * T) // len(chunks))
        self.proof, self.unsettled = proof or None, unsettled
        quiet = [p.quiescent_at for p in parts]
        return SimResult(
            outputs={t: np.concatenate([p.outputs[t] for p in parts]) for t in parts[0].outputs}, steps=T,
            t_wake=parts[0].t_wake, precision=parts[0].precision, per_step=np.concatenate([p.per_step for p in parts], axis=1) if record else None,
            spikes={k: {sign: sum(p.spikes[k][sign] for p in parts) for sign in ("pos", "neg")} for k in parts[0].spikes},
            quiescent_at=None if None in quiet else max(quiet),
            layers={k: np.concatenate([p.layers[k] for p in parts], axis=1) for k in parts[0].layers}
            if record_layers else None,
            membranes={k: np.concatenate([p.membranes[k] for p in parts]) for k in parts[0].membranes}
            if record_layers else None)

    def _settling(self, late: torch.Tensor, T: int) -> list[int] | None:
        """The samples of a ``T``-step run that have not settled: those active (a stateful node's output not zero) in
        its last ``max_delay + 1`` steps (``late``), all of them if the wake phase reaches into those steps; None for
        a network that does not settle (the IF baseline, an LIF student). The early-stop rule per sample, and the
        count domain's (certified.settling): a sample quiet that long after its wake phase has no spike in flight and
        no input left, so nothing in it changes again and its readout is final."""
        s = self.sched
        if not self.settles:
            return None
        if s.wake_end > T - 1 - s.max_delay:
            return list(range(len(late)))
        return [int(i) for i in late.nonzero().reshape(-1)]

    # ------------------------------------------------------------------------------------
    def _step(self, n: Node, xs: list[torch.Tensor], t: int, r: _StepRun) -> torch.Tensor:
        sink = r.sinks.get(n.name)
        if sink is not None:  # the sink-stepping rule (stepping.py); silent past a student's T steps, its state kept
            if sink.rests(t, lambda: is_silent(xs[0])):
                return self._zeros(n.name, (r.N, *self.g.shapes[n.output]))
            out = self._buffer(n.name, xs[0].shape) if sink.bias is not None else None  # no allocation per step
            y = sink(xs[0], t, r.state, r.advance, out)
            return self._zeros(n.name, (r.N, *self.g.shapes[n.output])) if y is None else y
        if n.op in Group.AFFINE:  # linear in a lowered graph: constant terms live at the sinks
            op, p, cache = OPS[n.op], self.params[n.name], r.cache
            key = tuple(id(x) for x in xs)
            hit = cache.get(n.name)
            if hit is not None and hit[0] == key:  # same input tensors as last step: reuse (read-only)
                return hit[1]
            if all(is_silent(x) for x in xs):  # silent input: silent output
                return self._zeros(n.name, (xs[0].shape[0], *self.g.shapes[n.output]))
            y = self.connect(n, xs)
            if len(xs) == 1 and y.data_ptr() == xs[0].data_ptr() and y.numel() == xs[0].numel():
                y._nc_silent = getattr(xs[0], "_nc_silent", None)  # a view (Flatten): silent as its input is
            if n.name in self.reads_input:  # the input current repeats every wake step: keep the result
                cache[n.name] = (key, y, xs)  # (xs kept alive so their ids stay unique)
            return y
        raise TargetError("the reference simulator cannot run this op", node=n.name, op=n.op)

    def connect(self, n: Node, xs: list[torch.Tensor]) -> torch.Tensor:
        """An affine node's linear part on its inputs: event by event where they are sparse spikes, else its op's."""
        y = self.events.linear(n, xs)
        return OPS[n.op].linear(n, xs, self.params[n.name]) if y is None else y

    def _buffer(self, name: str, shape: torch.Size) -> torch.Tensor:
        """A scratch tensor per sink for its biased input current (a step reads it before the next writes)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = torch.empty(shape, dtype=self.dtype, device=self.device)
        return buf

    def _zeros(self, name: str, shape: tuple) -> torch.Tensor:
        """A zero tensor per node, shared between steps (never written to)."""
        z = self._zero_cache.get(name)
        if z is None or tuple(z.shape) != shape:
            z = self._zero_cache[name] = torch.zeros(shape, dtype=self.dtype, device=self.device)
            z._nc_silent = True
        return z

    def _spike_counts(self, counts: dict) -> dict[str, dict[str, int]]:
        out = {}
        for k, v in counts.items():
            n = self.g.nodes[k]
            total, net = (float(x) / OPS[n.op].spike_amplitude(n) for x in v.cpu())
            if not (np.isfinite(total) and np.isfinite(net)):  # inf - inf in a membrane: float32 overflowed
                precision = str(self.dtype).replace("torch.", "")
                raise TargetError(f"the {precision} simulation overflowed: the layer's spike counts are not finite "
                                  "numbers", node=k, op=n.op, hint="The inputs are beyond the range the network can "
                                  "represent: scale them to the range it was trained on")
            out[k] = {"pos": int(round((total + net) / 2)), "neg": int(round((total - net) / 2))}
        return out
