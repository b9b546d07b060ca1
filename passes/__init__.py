"""Graph passes and the pass manager.

A pass is a plain function ``Graph -> Graph`` whose docstring states the invariant it keeps. The
manager hands each pass a copy, validates the result, and records what changed, so a failing pass
never leaves a half-rewritten graph behind and ``neurocompile --log-passes`` can show the story.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from neurocompile.errors import NeurocompileError, ValidationError
from neurocompile.ir import Graph

PassFn = Callable[[Graph], Graph]


@dataclass
class PassRecord:
    """What one pass did: op counts that changed, node counts, time taken."""

    name: str
    nodes_before: int
    nodes_after: int
    op_delta: dict[str, int]
    seconds: float

    def __str__(self) -> str:
        delta = ", ".join(f"{op} {d:+d}" for op, d in sorted(self.op_delta.items())) or "no change in ops"
        return f"{self.name:<22} {self.nodes_before:>4} -> {self.nodes_after:<4} nodes  {delta}  ({self.seconds * 1e3:.1f} ms)"


@dataclass
class PassManager:
    """Runs passes in order, validating the IR after each one."""

    passes: list[PassFn]
    validate: bool = True
    log: list[PassRecord] = field(default_factory=list)

    def run(self, graph: Graph) -> Graph:
        if self.validate:
            graph.validate()
        for p in self.passes:
            name = pass_name(p)
            before = Counter(n.op for n in graph.nodes.values())
            t0 = time.perf_counter()
            out = p(graph.copy())
            if self.validate:
                try:
                    out.validate()
                except ValidationError as err:
                    raise ValidationError(f"IR invalid after pass '{name}': {err.message}", node=err.node,
                                          op=err.op) from err
            after = Counter(n.op for n in out.nodes.values())
            delta = {op: after[op] - before[op] for op in before | after if after[op] != before[op]}
            self.log.append(PassRecord(name, sum(before.values()), len(out.nodes), delta, time.perf_counter() - t0))
            graph = out
        return graph


def pass_name(p: PassFn) -> str:
    fn = getattr(p, "func", p)  # functools.partial
    return getattr(fn, "__name__", repr(fn))


def run_passes(graph: Graph, passes: list[PassFn], validate: bool = True) -> Graph:
    return PassManager(passes, validate).run(graph)


def optimize_pipeline() -> list[PassFn]:
    """Function-preserving clean-up every pipeline starts with."""
    from neurocompile.passes.canonicalize import canonicalize
    from neurocompile.passes.fold_batchnorm import fold_batchnorm

    return [canonicalize, fold_batchnorm]


def casc_pipeline(neuron: str = "cif", gamma: int = 1, levels: int = 8, calibration=None, percentile: float = 99.9,
                  t_wake: int | None = None, steps: int | None = None, synapse_delay: int = 0,
                  balance: bool = True, normalize_weights: bool = False, fixed_point: bool = False) -> list[PassFn]:
    """CQReLU (or calibrated ReLU) ANN -> CIF/IF spiking graph with a wake/sleep schedule.
    ``normalize_weights`` rescales weights so thresholds become 1 (same function); ``fixed_point``
    makes weights, thresholds and biases integers (lossy: 8-bit weights)."""
    from functools import partial

    from neurocompile.passes.encode_spikes import encode_spikes
    from neurocompile.passes.normalize_thresholds import normalize_thresholds
    from neurocompile.passes.normalize_weights import normalize_weights as normalize_weights_pass
    from neurocompile.passes.quantize_fixed_point import quantize_fixed_point
    from neurocompile.passes.recognize_cqrelu import recognize_cqrelu
    from neurocompile.passes.schedule_wake_sleep import schedule_wake_sleep

    return [*optimize_pipeline(), recognize_cqrelu,
            partial(normalize_thresholds, calibration=calibration, percentile=percentile, levels=levels),
            *([normalize_weights_pass] if normalize_weights else []),
            partial(encode_spikes, neuron=neuron, gamma=gamma, t_wake=t_wake if neuron == "cif" else None),
            partial(schedule_wake_sleep, t_wake=t_wake, steps=steps, synapse_delay=synapse_delay, balance=balance),
            *([quantize_fixed_point] if fixed_point else [])]


def idsnn_pipeline(time_steps: int | None = None, steps: int | None = None, synapse_delay: int = 0,
                   balance: bool = True, fixed_point: bool = False) -> list[PassFn]:
    """LIF student (already spiking) -> the same graph, BN folded, with a T-step schedule; ``fixed_point``
    makes it Lava's bit-accurate LIF with integer weights (lossy: 8-bit weights, truncated decays)."""
    from functools import partial

    from neurocompile.passes.encode_spikes import step_max_pools
    from neurocompile.passes.quantize_fixed_point import quantize_fixed_point
    from neurocompile.passes.schedule_wake_sleep import schedule_wake_sleep

    return [*optimize_pipeline(), step_max_pools,
            partial(schedule_wake_sleep, t_wake=time_steps, steps=steps, synapse_delay=synapse_delay, balance=balance),
            *([quantize_fixed_point] if fixed_point else [])]


# named pipelines: what `neurocompile inspect --passes NAME` and api.run_pipeline offer
PIPELINES: dict[str, Callable[..., list[PassFn]]] = {
    "none": lambda: [], "optimize": optimize_pipeline, "casc": casc_pipeline, "idsnn": idsnn_pipeline}


def pipeline(name: str, **options) -> list[PassFn]:
    """The passes of the pipeline registered as ``name``, built with ``options``."""
    if name not in PIPELINES:
        raise NeurocompileError(f"unknown pipeline '{name}' (available: {', '.join(sorted(PIPELINES))})")
    return PIPELINES[name](**options)


__all__ = ["PIPELINES", "pipeline", "casc_pipeline", "idsnn_pipeline", "PassManager", "PassRecord", "run_passes", "optimize_pipeline", "NeurocompileError"]
