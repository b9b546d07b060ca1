"""The ``evaluate`` driver: simulate a spiking network on a data set and measure it against its ANN, in steps.

    ev = evaluate("model.onnx", x, labels, at=[4, 8, 16])   # array, or any iterable of (x, y) / x batches
    print(ev.table()); json.dump(ev.to_dict(), f)           # neurocompile.analysis.report: plots and one HTML page

What is measured, streamed over batches (only a batch's simulation records are held at a time):

- **per step t** (1-based, after step t; all T steps are computed, ``at`` selects the ones reported): SNN accuracy
  (with labels), argmax agreement SNN vs ANN, max and mean |logit error| relative to the largest |ANN logit| of the
  whole data set. The **ANN** is the float64 interpreter on the converted graph: each neuron node computes the
  CQReLU it stands for (for a calibrated plain-ReLU network this is the calibrated ANN the SNN approximates, not the
  original one). An IDSNN student (LIF) has no ANN: SNN accuracy and spike statistics only.
- **first steps**: ``first_argmax_step`` (the first step at which every sample's SNN argmax equals the ANN's),
  ``first_exact_step`` (every logit within ``tolerance`` relative: :data:`EXACT_RTOL` in float64 exact mode,
  :data:`FLOAT32_RTOL` in the float32 fast mode, where the readout differs from the float64 ANN by float32 rounding
  and, at a boundary case, by a whole level); ``stable_*`` the first step from which that holds through T.
- **per neuron layer** (CASC, Fig. 4): at each step, the fraction of (sample, neuron) pairs whose signed cumulative
  spike count is above ("more spikes") or below ("less spikes") the ANN's quantized level count
  round(q * L / A) (q the ANN activation, A the value of one level: the ``amplitude`` attribute, else the
  threshold); ``settle_step``: the first step from which every count equals its level through T; the first layer
  (topological order) off at the final step. Early in the wake phase the counts are still building up, so "less"
  starts near the fraction of nonzero levels. Only CIF layers (a sleep phase: the count is the level) are compared;
  IF and LIF layers have no level count to equal.
- **spike statistics** per layer: spikes per sample (positive, negative), firing rate (spikes per neuron and step),
  fraction of negative spikes, sparsity (fraction of (sample, neuron) pairs that never spike), dead fraction
  (neurons that never spike for any sample), a histogram of per-neuron rates; synaptic operations per inference
  against the ANN's MACs from :func:`neurocompile.analysis.estimate.estimate` on the first ``synops_samples`` samples (it runs
  its own float64 simulation).
- ``baseline=True`` also converts the ANN with the IF neuron (science.md, "Baseline") at the same T and reports its
  accuracy and agreement per step.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from neurocompile import io, limits, pipeline
from neurocompile.errors import NeurocompileError
from neurocompile.ir import Graph, interpreter
from neurocompile.ir.ops import OPS, is_level_neuron
from neurocompile.analysis import distributed as dist
from neurocompile.analysis.evaluate.data import (_batches, _checked, _fit_batch, _given_labels, _known_total, _labels,
                                                 _pieces)
from neurocompile.analysis.evaluate.result import EXACT_RTOL, FLOAT32_RTOL, Evaluation
from neurocompile.analysis.evaluate.stats import _fill_steps, _LayerStats, _level_scale, _StepStats
from neurocompile.analysis.evaluate.synops import _add_synops


@dataclass
class _Plan:
    """One evaluation's network and settings, resolved from its arguments before any simulation."""

    name: str                      # the model's name in the tables
    path: str | None               # the model's file (None: a Graph was given)
    given: Graph                   # the model as given (the ANN the IF baseline converts)
    snn: Graph                     # the spiking network simulated
    T: int
    reported: list[int]            # the steps reported (1-based)
    exact: bool
    batch: int                     # the batch asked for
    fit: int                       # the batch simulated: the largest <= batch that fits MAX_RUN_BYTES
    synops: bool
    synops_samples: int            # samples the synops estimate runs on (shrunk to fit MAX_RUN_BYTES)
    baseline: bool
    convert_options: dict[str, Any]
    spiking: list                  # the spiking nodes, in topological order
    has_ann: bool                  # False for a spiking student (no ANN to compare with)
    compared: list                 # spiking nodes whose counts are compared with ANN levels (CIF layers)
    level_scale: dict[str, float]  # per compared node: ANN activation -> level count (_level_scale)
    classes: int                   # the readout's size: labels index it
    shape: tuple[int, ...]         # one sample's input shape
    dtype: type                    # float64 (exact) or float32


@dataclass
class _Tally:
    """An evaluation's sums so far (this process's until _combine adds every rank's) and what it drew."""

    steps: _StepStats
    baseline: _StepStats | None
    layers: dict[str, _LayerStats] = field(default_factory=dict)
    precision: str = ""
    labelled: bool | None = None                 # None: no batch yet
    first_x: list[np.ndarray] = field(default_factory=list)  # the synops sample
    firsts: list | None = None                   # distributed: (global positions, samples) of the synops sample


def evaluate(graph_or_path: "Graph | str | os.PathLike", x: Any, labels: Any = None, steps: int | None = None,
             at: Iterable[int] | None = None, exact: bool = True, batch: int = 256, device: str | None = None,
             progress: Callable[[int, int | None], None] | None = None, baseline: bool = False,
             synops: bool = True, synops_samples: int = 64, distributed: bool | None = None,
             **convert_options: Any) -> Evaluation:
    """Simulate a spiking network on a data set and measure it against its ANN, per step and per layer.

    ``graph_or_path``: an ONNX model, saved IR or artifact path, or a Graph; one without a wake/sleep schedule is
    converted with ``pipeline.convert(g, steps=steps, **convert_options)`` (e.g. ``neuron``, ``gamma``, ``t_wake``,
    ``fixed_point``), a converted one runs as it is (``steps`` then overrides its T). ``x``: an array (N, *shape),
    a ``.npy`` path, or any iterable of (x, y) or x batches (a torch DataLoader; tensors are fine); ``labels``:
    class indices in [0, classes) (or one-hot rows; classes: the readout's size) beside an array (or an x-only
    iterable), or a ``.npy`` path; other labels are refused (:func:`_labels`). ``at``: the steps reported
    (1-based, each <= T; default all). ``exact``: float64 simulation (else the float32 fast mode).
    ``batch``: samples simulated at a time (an array input; an iterable's own batches are used as they come, cut
    where larger): memory holds one batch's per-layer records, T x batch x neurons float32 several times over, so
    the batch shrinks (a note says so) to fit neurocompile.limits.MAX_RUN_BYTES, and a T for which not even one
    sample fits is refused naming that limit (:func:`_fit_batch`). ``progress(done, total)`` is called
    after each batch with the samples done and the total (an array's length, a DataLoader's sampler length, else
    None).
    ``baseline``: also run the IF baseline (neuron="if") at the same T (needs an unconverted ANN).
    ``synops``: synaptic operations vs MACs from :func:`neurocompile.analysis.estimate.estimate` on the first
    ``synops_samples`` samples (fewer where their per-layer records would not fit MAX_RUN_BYTES; a note says how
    many).

    ``distributed``: under ``torchrun --nproc-per-node N`` (or in a process group the caller initialized) each
    process evaluates a shard and the metrics are all-reduced (:mod:`neurocompile.analysis.distributed`, gloo), so every
    process returns the evaluation of the whole data set, equal to a one-process run's (bit for bit in exact mode;
    in the float32 mode up to float32 rounding of the logit errors, as for another ``batch``). None (the default):
    whenever such a launch or group has more than one process; False: each process on its own (rank 0 alone
    under torchrun must say so, or it waits for the others); True: as None, but an error outside such a launch.
    The shards: an array's sample i goes to rank i % N (DistributedSampler's order, without its padding); a
    DataLoader with a DistributedSampler is its own shard (the duplicates it pads with are dropped, so no sample
    counts twice; its labels must come in its (x, y) batches); any other iterable is drawn whole by every
    process and batch i is evaluated by rank i % N. ``progress`` then counts this process's samples, and
    ``device="cuda"`` is the process's ``cuda:LOCAL_RANK``. Rank 0 estimates the synaptic operations. A group
    made from torchrun's environment stays for later evaluations; ``neurocompile.analysis.distributed.shutdown()`` ends it.
    """
    batch = _positive_batch(batch)
    given, path, name = _model(graph_or_path)
    classes = int(np.prod(given.shapes[given.outputs[0]]))  # the readout's size: labels index it
    labels = _given_labels(labels, classes)
    snn, T = _spiking(given, steps, convert_options, path)
    plan = _plan(name, path, given, snn, T, at, exact, batch, baseline, synops, synops_samples, convert_options,
                 classes)
    if isinstance(x, (str, os.PathLike)):
        x = io.load_input(str(x), plan.shape)
    if baseline and (given.schedule is not None or pipeline.is_student(given)):
        raise NeurocompileError("the IF baseline converts the ANN again, and "
                                + ("the model is converted already" if given.schedule is not None else
                                   "a spiking student has no ANN to convert"), file=path,
                                hint="Give the unconverted CQReLU model, or drop baseline")

    with dist.session(distributed) as comm:
        if comm is not None:
            device = dist.local_device(device)
        tally = _simulate(plan, x, labels, comm, device, progress)
        if tally.steps.n == 0:
            raise NeurocompileError("the input holds no samples")
        ev = _evaluation(plan, tally)
        if plan.synops:
            _add_synops(ev, snn, tally.first_x, T, comm)
        return ev


def _positive_batch(batch: Any) -> int:
    """``batch`` as a positive int, or an error naming it."""
    try:
        ok = not isinstance(batch, bool) and int(batch) == batch and int(batch) >= 1
    except (TypeError, ValueError, OverflowError):  # "8", NaN, inf
        ok = False
    if not ok:
        raise NeurocompileError(f"batch must be a positive integer, got {batch!r}")
    return int(batch)


def _model(graph_or_path: "Graph | str | os.PathLike") -> tuple[Graph, str | None, str]:
    """(the graph, its file or None, its name in the tables)."""
    path = None if isinstance(graph_or_path, Graph) else str(graph_or_path)
    name = os.path.basename(path) if path is not None else str(graph_or_path.meta.get("name") or "graph")
    g = pipeline.load(str(graph_or_path)) if not isinstance(graph_or_path, Graph) else graph_or_path
    return g, path, name


def _spiking(g: Graph, steps: int | None, convert_options: dict[str, Any], path: str | None) -> tuple[Graph, int]:
    """(the spiking network, its T): ``g`` converted, or ``g`` itself where it is converted already."""
    if g.schedule is None:
        snn = pipeline.convert(g, steps=steps, **convert_options)
        return snn, int(snn.schedule.steps)
    if convert_options:
        raise NeurocompileError(f"the model is converted already; conversion options "
                                f"({', '.join(sorted(convert_options))}) do not apply", file=path)
    limits.check_options(steps=steps)
    return g, int(steps if steps is not None else g.schedule.steps)


def _plan(name: str, path: str | None, given: Graph, snn: Graph, T: int, at: Iterable[int] | None, exact: bool,
          batch: int, baseline: bool, synops: bool, synops_samples: int, convert_options: dict[str, Any],
          classes: int) -> _Plan:
    """The plan: the reported steps, the batch that fits (refused where one sample cannot), the synops sample that
    fits, and the layers compared with ANN levels."""
    reported = _steps_at(at, T)
    fit, fixed_bytes = _fit_batch(snn, T, batch, baseline)  # refused here if one sample's records cannot fit
    if synops:  # neurocompile.analysis.estimate keeps every layer's records of its samples at once
        synops_samples = max(0, min(int(synops_samples), (limits.MAX_RUN_BYTES - fixed_bytes)
                                    // limits.record_bytes(snn, T, record_layers=True)))
    spiking = [n for n in snn.topo() if OPS[n.op].spiking]
    has_ann = not pipeline.is_student(snn)
    compared = [n for n in spiking if is_level_neuron(n) and OPS[n.op].sleep_phase] if has_ann else []
    return _Plan(name=name, path=path, given=given, snn=snn, T=T, reported=reported, exact=exact, batch=batch,
                 fit=fit, synops=synops, synops_samples=synops_samples, baseline=baseline,
                 convert_options=convert_options, spiking=spiking, has_ann=has_ann, compared=compared,
                 level_scale={n.name: _level_scale(n) for n in compared}, classes=classes,
                 shape=tuple(snn.shapes[snn.input_nodes[0].output]), dtype=np.float64 if exact else np.float32)


def _steps_at(at: Iterable[int] | None, T: int) -> list[int]:
    if at is None:
        return list(range(1, T + 1))
    out = []
    for t in at:
        try:
            whole = not isinstance(t, bool) and int(t) == t
        except (TypeError, ValueError, OverflowError):  # "4", NaN, inf
            whole = False
        if not whole:
            raise NeurocompileError(f"steps to report must be integers, got {t!r}")
        if int(t) < 1:  # step t is the state after t steps: there is no step 0
            raise NeurocompileError(f"step {t} cannot be reported: steps are numbered from 1 (step t is the state "
                                    f"after t steps) and must be in [1, {T}]")
        if int(t) > T:
            raise NeurocompileError(f"step {t} is beyond the run's steps 1..{T}",
                                    hint="Run more steps (steps=...) or report fewer")
        out.append(int(t))
    if not out:
        raise NeurocompileError("no steps to report (at is empty)")
    return sorted(set(out))


def _simulate(plan: _Plan, x: Any, labels: np.ndarray | None, comm, device: str | None,
              progress: Callable[[int, int | None], None] | None) -> _Tally:
    """Every batch (this rank's shard, under torchrun) simulated and summed; under torchrun the ranks' sums are
    then combined, so every rank holds the whole data set's."""
    from neurocompile.analysis.sharding import _combine, _shard  # here: sharding imports this package's data, stats

    tally = _Tally(_StepStats(plan.T), _StepStats(plan.T) if plan.baseline else None)
    failure: Exception | None = None
    try:  # distributed: a failure here (one rank's data, its GPU) is told to every rank in _combine
        exe, base_exe = _executables(plan, device)
        if comm is None:
            batches, total = _batches(x, labels, plan.fit, plan.classes), _known_total(x)
        else:
            batches, total, tally.firsts = _shard(x, labels, plan.fit, comm.rank, comm.world,
                                                  plan.synops_samples if plan.synops else 0)
        for xb, yb in _pieces(batches, plan.fit):
            _add_batch(plan, tally, exe, base_exe, xb, yb, device, keep_first=comm is None)
            if progress is not None:
                progress(tally.steps.n, total)
    except Exception as exc:  # noqa: BLE001 - told to the other ranks below, then raised here
        if comm is None:
            raise
        failure = exc
    if comm is not None:
        tally.labelled, tally.precision, tally.layers, firsts_x = _combine(
            comm, failure, tally.steps, tally.baseline, tally.layers, tally.labelled, tally.precision, plan.T,
            tally.firsts if plan.synops else None, plan.shape, plan.dtype)
        tally.first_x = [] if firsts_x is None else [firsts_x]
    return tally


def _executables(plan: _Plan, device: str | None) -> tuple[Any, Any]:
    """The compiled network, and the IF baseline's (None without ``baseline``)."""
    exe = pipeline.compile(plan.snn, "reference", device=device, exact=plan.exact)
    if not plan.baseline:
        return exe, None
    opts = {k: v for k, v in plan.convert_options.items() if k not in ("neuron", "gamma", "t_wake")}
    base_g = pipeline.convert(plan.given, neuron="if", steps=plan.T, **opts)
    return exe, pipeline.compile(base_g, "reference", device=device, exact=plan.exact)


def _add_batch(plan: _Plan, tally: _Tally, exe, base_exe, xb: np.ndarray, yb: np.ndarray | None,
               device: str | None, keep_first: bool) -> None:
    """One batch simulated (and its ANN run) and added to ``tally``; ``keep_first``: keep the synops sample."""
    T = plan.T
    xb = _checked(xb, plan.shape, plan.dtype)
    yb = None if yb is None else _labels(yb, plan.classes)  # an iterable's own labels, as they come
    if tally.labelled is None:
        tally.labelled = yb is not None
    elif tally.labelled != (yb is not None):
        raise NeurocompileError("some batches have labels and some do not")
    limits.check_work(plan.snn, len(xb), T, "reference")
    res = _run(exe, xb, T, record_layers=True)
    tally.steps.unsettled += sum(1 for i in (exe.unsettled or ()) if i < len(xb))  # a lone sample ran paired
    tally.precision = res.precision
    ann, levels = _ann(plan, xb, device) if plan.has_ann else (None, {})
    tally.steps.add(res.per_step, ann, yb)
    for lname, rec in res.layers.items():
        node = plan.snn.nodes.get(lname)
        if lname not in tally.layers:
            op = node.op if node is not None else "?"
            tally.layers[lname] = _LayerStats(lname, op, int(np.prod(rec.shape[2:])), T, lname in levels)
        tally.layers[lname].add(rec, levels.get(lname), res.spikes.get(lname, {}))
    del res
    if base_exe is not None:
        bres = _run(base_exe, xb, T, record_layers=False)
        tally.baseline.add(bres.per_step, ann, yb)
    if keep_first and plan.synops and sum(len(a) for a in tally.first_x) < plan.synops_samples:
        tally.first_x.append(xb[:plan.synops_samples - sum(len(a) for a in tally.first_x)])


def _ann(plan: _Plan, xb: np.ndarray, device: str | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The ANN's readout of a batch (the float64 interpreter), and each compared layer's level counts."""
    snn = plan.snn
    keep = [n.output for n in plan.compared]
    vals = interpreter.run(snn, _paired(xb).astype(np.float64), "float64", device=device or "cpu",
                           keep=[*keep, snn.outputs[0]])
    vals = {k: v[:len(xb)] for k, v in vals.items()}
    levels = {n.name: vals[n.output] * plan.level_scale[n.name] for n in plan.compared}
    return vals[snn.outputs[0]], levels


def _paired(xb: np.ndarray) -> np.ndarray:
    """A batch of one sample as two (the sample twice): torch's matrix-vector path (one sample) rounds a float32
    readout differently from its matrix-matrix path, by more than batch shapes do among themselves. It narrows, but
    cannot close, the float32 differences between batchings: the kernel a math library picks for a batch shape and
    CPU decides the last bits (exact mode alone is bit-identical across batchings and processes)."""
    return np.concatenate([xb, xb]) if len(xb) == 1 else xb


def _run(exe, xb: np.ndarray, T: int, record_layers: bool):
    """``exe.run`` on a batch; a lone sample runs paired (:func:`_paired`) and its twin is dropped."""
    res = exe.run(_paired(xb), steps=T, record_layers=record_layers)
    if len(xb) == 1:
        res.per_step = res.per_step[:, :1]
        if res.layers is not None:
            res.layers = {k: v[:, :1] for k, v in res.layers.items()}
        res.spikes = {k: {sign: c // 2 for sign, c in v.items()} for k, v in res.spikes.items()}
    return res


def _evaluation(plan: _Plan, tally: _Tally) -> Evaluation:
    """The Evaluation from the sums of every batch (and rank)."""
    stats, labelled, T = tally.steps, bool(tally.labelled), plan.T
    kinds = sorted({n.op for n in plan.spiking})
    ev = Evaluation(model=plan.name, neuron="/".join(k.lower() for k in kinds) or "none", samples=stats.n, steps=T,
                    t_wake=int(plan.snn.schedule.t_wake), at=plan.reported, precision=tally.precision,
                    exact=bool(plan.exact),
                    tolerance=(EXACT_RTOL if plan.exact or plan.snn.meta.get("fixed_point") else FLOAT32_RTOL)
                    if plan.has_ann else None, has_labels=labelled, has_ann=plan.has_ann)
    _fill_steps(ev, stats, plan.has_ann, labelled)
    if tally.baseline is not None:
        b = Evaluation(model=plan.name, neuron="if", samples=stats.n, steps=T, t_wake=T, at=plan.reported,
                       precision=tally.precision, exact=bool(plan.exact), tolerance=ev.tolerance,
                       has_labels=labelled, has_ann=plan.has_ann)
        _fill_steps(b, tally.baseline, plan.has_ann, labelled)
        ev.baseline = {"neuron": "if", "steps": T, "snn_accuracy": b.snn_accuracy, "agreement": b.agreement,
                       "max_rel_error": b.max_rel_error, "mean_rel_error": b.mean_rel_error,
                       "first_argmax_step": b.first_argmax_step, "first_exact_step": b.first_exact_step}
    ev.layers = [s.result(stats.n) for s in tally.layers.values()]
    off = [ly.name for ly in ev.layers if ly.compared and ly.more[-1] + ly.less[-1] > 0]
    ev.first_error_layer = off[0] if off else None
    ev.notes += _notes(plan, stats)
    return ev


def _notes(plan: _Plan, stats: _StepStats) -> list[str]:
    """What a reader of the tables should know: layers not compared, unsettled samples, a lossy conversion, a
    smaller batch, no synops."""
    snn, T, notes = plan.snn, plan.T, []
    if plan.has_ann and not plan.compared:
        notes.append("no CIF layer: spike counts are not compared with ANN levels (IF counts have no level "
                     "to equal)")
    bound = snn.schedule.settle_bound if pipeline.lossless_kind(snn) else None
    if stats.unsettled and (bound is None or T < bound):  # the error at T is then not the conversion's (at the
        # proven bound the readout is final even where neurons still send, as the latency mode's do at T=1)
        notes.append(f"{stats.unsettled} sample(s) had not settled by the last step T={T}" + (
            f": the proven settling bound is T={bound} (steps={bound}, CLI --steps {bound})"
            if bound is not None and bound > T else ""))
    if snn.meta.get("lossy_layers"):
        notes.append(f"lossy conversion (calibrated layers {snn.meta['lossy_layers']}): the ANN is the "
                     "calibrated CQReLU network, not the original")
    if plan.fit < plan.batch and stats.n > plan.fit:
        notes.append(f"simulated in batches of {plan.fit:,} sample(s) instead of {plan.batch:,}, so that the records "
                     f"of {T:,} steps fit the memory limit of {limits.gib(limits.MAX_RUN_BYTES)} "
                     "(neurocompile.limits.MAX_RUN_BYTES)")
    if plan.synops and plan.synops_samples < 1:
        notes.append(f"synaptic operations not estimated: one sample's per-layer records of {T:,} steps "
                     f"exceed the memory limit of {limits.gib(limits.MAX_RUN_BYTES)} "
                     "(neurocompile.limits.MAX_RUN_BYTES)")
    return notes
