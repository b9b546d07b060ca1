"""The compile pipeline: load a model file, convert it to a spiking graph, compile it for a target, simulate it.

Everything below the facade (analysis, exporters, the Lava network) that needs a converted network calls these;
:mod:`neurocompile.api` re-exports them for users.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from neurocompile.errors import ConversionError, ModelLoadError
from neurocompile.io import checked_samples
from neurocompile.ir import Graph, is_saved_ir
from neurocompile.ir.ops import OPS, Group, is_level_neuron
from neurocompile.passes import PassManager, PassRecord, casc_pipeline, idsnn_pipeline, optimize_pipeline, pipeline
from neurocompile.targets import get_target
from neurocompile.targets.loihi2.spec import GRADED_SPIKE_BITS


def load(path: str, **nir_options: Any) -> Graph:
    """Read an ONNX model, a saved IR (``.json`` + ``.npz``), an artifact (``.h5``: its converted graph) or a NIR
    file (``.nir``; ``nir_options``: ``dt`` (default 1e-4 s, snnTorch's), ``discretization`` ("snntorch",
    "euler", "zoh") and ``time_steps`` T, see :mod:`neurocompile.frontends.nir`)."""
    from neurocompile.exporters import artifact
    from neurocompile.frontends.nir import is_nir, load_nir

    if is_nir(path):
        return load_nir(str(path), **{k: v for k, v in nir_options.items() if v is not None})
    if nir_options and any(v is not None for v in nir_options.values()):
        raise ModelLoadError(f"{', '.join(sorted(nir_options))} apply to NIR files (.nir) only", file=str(path))
    if artifact.is_artifact(path):
        return artifact.load(str(path)).graph
    if is_saved_ir(path):
        return Graph.load(str(path))
    from neurocompile.frontends.onnx.importer import load_onnx

    return load_onnx(str(path))


def _run(graph: Graph, passes: list, log: list[PassRecord] | None) -> Graph:
    """Run ``passes`` with validation after each; append what each did to ``log``."""
    pm = PassManager(passes)
    out = pm.run(graph)
    if log is not None:
        log.extend(pm.log)
    return out


def run_pipeline(graph: Graph, name: str = "optimize", log: list[PassRecord] | None = None, **options: Any) -> Graph:
    """Run the pipeline registered as ``name`` (neurocompile.passes.PIPELINES) with its default options."""
    return _run(graph, pipeline(name, **options), log)


def optimize(graph: Graph, log: list[PassRecord] | None = None) -> Graph:
    """canonicalize + fold_batchnorm: same function, canonical ops."""
    return _run(graph, optimize_pipeline(), log)


def ann_graph(graph: Graph) -> Graph:
    """The ANN as the converter sees it: optimized, CQReLU chains recognized (same function)."""
    from neurocompile.passes.recognize_cqrelu import recognize_cqrelu

    return _run(graph, [*optimize_pipeline(), recognize_cqrelu], None)


def convert(graph: Graph, neuron: str = "cif", gamma: int = 1, levels: int | None = None,
            calibration: np.ndarray | None = None, percentile: float = 99.9, steps: int | None = None,
            target: str = "reference", synapse_delay: int | None = None, balance: bool = True,
            normalize_weights: bool = False, fixed_point: bool = False, t_wake: int | None = None,
            log: list[PassRecord] | None = None) -> Graph:
    """ANN graph -> spiking graph with a WakeSleepSchedule for ``target``. A graph of LIF neurons
    (an exported IDSNN student) only gets BN folded and a T-step schedule (T from its metadata).

    ``fixed_point`` quantizes to integer weights/thresholds (lossy; run on lava-sim's fixed_pt models
    or the reference simulator, which then computes in exact integers). ``levels`` sets L for
    calibrated plain-ReLU layers; for a CQReLU network it must equal the trained L (checked).
    ``synapse_delay`` defaults to the target's own per-layer delay. ``t_wake`` (CIF, a divisor of L; default L) shortens
    the wake phase: with graded spikes (``gamma`` up to L) the readout is exact in fewer steps (:func:`latency_options`
    picks both for a payload limit). Options beyond
    :mod:`neurocompile.limits` are refused before any work.
    """
    from neurocompile import limits

    if graph.schedule is not None:  # converting twice would drop the schedule's fixed-point scales and T
        raise ConversionError("the graph is converted already (it has a wake/sleep schedule, e.g. a saved IR)",
                              hint="Run it as it is: api.simulate(graph, x) or api.compile(graph, target)")
    limits.check_options(steps=steps, levels=levels, gamma=gamma, delay=synapse_delay, percentile=percentile)
    if calibration is not None:  # checked only: the passes get the caller's array unchanged
        checked_samples(np.asarray(calibration), "calibration array")
    delay = get_target(target).synapse_delay if synapse_delay is None else int(synapse_delay)
    if t_wake is not None and (neuron != "cif" or is_student(graph)):
        raise ConversionError("t_wake shortens a CIF network's wake phase; "
                              + ("an IDSNN student runs its own T steps" if is_student(graph) else
                                 "the IF baseline has no wake phase (its input runs for all steps)"))
    if is_student(graph):  # an IDSNN student is spiking already
        if not graph.meta.get("time_steps") and steps is not None:  # a NIR file carries no T: steps is T
            return _run(graph, idsnn_pipeline(time_steps=steps, synapse_delay=delay, balance=balance,
                                              fixed_point=fixed_point), log)
        return _run(graph, idsnn_pipeline(steps=steps, synapse_delay=delay, balance=balance,
                                          fixed_point=fixed_point), log)
    out = _run(graph, casc_pipeline(neuron=neuron, gamma=gamma, levels=levels or 8, calibration=calibration,
                                    percentile=percentile, t_wake=t_wake if neuron == "cif" else steps,
                                    steps=steps, synapse_delay=delay, balance=balance,
                                    normalize_weights=normalize_weights, fixed_point=fixed_point), log)
    trained = {int(OPS[n.op].attr(n, "levels")) for n in out.nodes.values() if is_level_neuron(n)
               and not out.meta.get("lossy_layers")}
    if levels is not None and trained and trained != {int(levels)}:
        raise ConversionError(f"--levels {levels} differs from the network's trained levels L={sorted(trained)}",
                              hint="CQReLU networks convert losslessly only at their own L; omit --levels")
    return out


def readout_membrane(graph: Graph, result: Any) -> np.ndarray | None:
    """The membrane after every run step up to the output's own last one, (rows, N, *shape), of the first graph output
    of ``graph`` (converted, as run: the loaded graph gives None) when a leaky integrator writes it (an LI node: NIR's LI, CubaLI or I as the readout), else None (also without
    per-step records). Such an output sends its membrane V each step and is read out like every output, as the mean
    over the T wake steps: ``result.output`` is the mean membrane and result.per_step[t] = (V_0 + ... + V_t) / T,
    so V_t = T (per_step[t] - per_step[t - 1]), to the rounding of the running sum; the last row is the membrane
    after the output's last step. With synaptic delays the rows start with the steps before the output's data arrives
    (zeros) and an output reached before the latest one stops earlier than the run (fewer rows than run steps)."""
    if result.per_step is None or graph.schedule is None:
        return None
    src = graph.producers()[graph.outputs[0]]
    if src.op in Group.READOUT:  # a lowered graph: the readout's source
        src = graph.producers()[src.inputs[0]]
    if src.op not in Group.INTEGRATOR:
        return None
    s = graph.schedule
    sums = np.asarray(result.per_step, dtype=np.float64) * (s.t_wake * s.readout_scale)
    # with synaptic delays an output reached earlier than the latest ends its own T steps earlier than the run
    # (ReferenceSimulator.ends): the rows stop there, so the last one is the membrane after its last step
    prod = graph.producers()
    end = s.lag(src.name) + int(result.steps) - max(s.lag(prod[t].name) for t in graph.outputs)
    return np.diff(sums, axis=0, prepend=0.0)[:max(end, 0)]


def network_levels(graph: Graph) -> int | None:
    """The quantization levels L a CQReLU network was trained with (None for plain ReLU or a student)."""
    levels = sorted({int(OPS[n.op].attr(n, "levels")) for n in ann_graph(graph).nodes.values()
                     if OPS[n.op].quantizer})
    return levels[0] if len(levels) == 1 else None


def latency_options(levels: int, max_payload_bits: int = GRADED_SPIKE_BITS) -> tuple[int, int]:
    """(t_wake, gamma) of the fastest exact CIF schedule whose spikes fit a signed graded payload of
    ``max_payload_bits`` (Loihi 2: up to GRADED_SPIKE_BITS, 24; in floating or fixed point): gamma =
    min(L, 2**(bits-1) - 1) spikes per step, and the shortest wake phase whose rate L / T_wake a neuron can send in
    one step (the largest divisor of L <= gamma).
    benchmarks/latency_frontier.py measures the whole frontier T(gamma, T_wake)."""
    if int(max_payload_bits) < 2:
        raise ConversionError(f"a signed spike payload needs at least 2 bits (sign and one level), got {max_payload_bits}")
    gamma = min(int(levels), 2 ** (min(int(max_payload_bits), GRADED_SPIKE_BITS) - 1) - 1)
    rate = max(d for d in range(1, gamma + 1) if levels % d == 0)
    return int(levels) // rate, gamma


def is_student(graph: Graph) -> bool:
    """An IDSNN student: a network of neurons without an ANN meaning (LIF), spiking as imported, which
    converts by the idsnn pipeline rather than by CIF encoding."""
    return any(OPS[n.op].spiking and not is_level_neuron(n) for n in graph.nodes.values())


def lossless_kind(graph: Graph) -> bool:
    """A converted CIF network: neurons with a sleep phase, lossless once settled."""
    return any(is_level_neuron(n) and OPS[n.op].sleep_phase for n in graph.nodes.values())


def compile(graph: Graph, target: str = "reference", **options: Any):
    """Spiking graph -> an executable of ``target`` (``run(x, steps)`` -> SimResult)."""
    return get_target(target).compile(graph, **options)


def simulate(graph: Graph, x: np.ndarray, steps: int | None = None, target: str = "reference",
             early_stop: bool = False, progress=None, record_layers: bool = False, exact: bool = False,
             **options: Any):
    """Compile and run in one call (``x`` is checked: finite numbers, at least one sample).
    ``record_layers`` fills ``SimResult.layers`` (per-layer, per-step spike counts). The reference simulator runs in
    float32 unless ``exact`` (every spike decision exact: proved in float32 or made in float64, the readout in float64,
    so it equals the float64 interpreter's to summation rounding; fixed-point networks are always exact).
    ``SimResult.precision`` says which ran."""
    from neurocompile import limits

    if isinstance(x, np.ndarray):
        checked_samples(x, "input")  # refuses; x itself keeps its dtype (float64 inputs stay exact)
    if graph.schedule is not None:
        limits.check_work(graph, len(x), int(steps or graph.schedule.steps), target, record_layers=record_layers)
    run_options = {"record_layers": True} if record_layers else {}
    if exact and target == "reference":
        options["exact"] = True
    return compile(graph, target, **options).run(x, steps=steps, early_stop=early_stop, progress=progress,
                                                 **run_options)


def first_input_shape(graph: Graph) -> tuple[int, ...]:
    return tuple(graph.shapes[graph.input_nodes[0].output])
