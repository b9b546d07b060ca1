"""Limits on what neurocompile agrees to run: an absurd option is refused with the limit instead of
running for hours (or allocating a delay line of a billion steps). One place for all of them, checked
by ``api.convert`` (options), the CLI before any work, and the Lava target (work of a run).

The limits are generous: the largest useful CQReLU networks use L <= 256 and settle within a few
thousand steps; raise a constant here if you really need more.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from neurocompile.errors import ConversionError
from neurocompile.ops import OPS

MAX_LEVELS = 4096          # quantization levels L (= wake steps T_wake of a CIF network)
MAX_GAMMA = MAX_LEVELS     # spikes per step of graded CIF: more than L can never be emitted in one step
MAX_STEPS = 100_000        # total time steps T per sample
MAX_DELAY = 1024           # per-layer synaptic delay D (each layer holds a D-step delay line)
MAX_NEURON_STEPS = 10**11  # samples x T x neurons per sample of one run: about an hour of reference simulation
MAX_LAVA_SAMPLE_STEPS = 10**6  # samples x steps on lava-sim: Lava's CPU runtime takes ~1-5 ms per step


def check_options(*, steps: int | None = None, levels: int | None = None, gamma: int = 1,
                  delay: int | None = None, percentile: float = 99.9,
                  names: Mapping[str, str] | None = None) -> None:
    """Raise :class:`ConversionError` for the first conversion option out of range. ``names`` maps a
    parameter to how the caller's user spells it (the CLI passes ``{"steps": "--steps", ...}``)."""
    name = {"steps": "steps", "levels": "levels", "gamma": "gamma", "delay": "synapse_delay",
            "percentile": "percentile", **(names or {})}
    ranges = [("steps", steps, 1, MAX_STEPS, "MAX_STEPS"), ("levels", levels, 1, MAX_LEVELS, "MAX_LEVELS"),
              ("gamma", gamma, 1, MAX_GAMMA, "MAX_GAMMA"), ("delay", delay, 0, MAX_DELAY, "MAX_DELAY")]
    for key, value, lo, hi, const in ranges:
        if value is None:
            continue
        if isinstance(value, bool) or int(value) != value:
            raise ConversionError(f"{name[key]} must be an integer, got {value!r}")
        if value < lo:
            raise ConversionError(f"{name[key]} must be >= {lo}, got {value}")
        if value > hi:
            raise ConversionError(f"{name[key]} {value} exceeds the limit of {hi:,} (neurocompile.limits.{const})")
    # NaN fails both comparisons, so it is refused as well
    if not (0 < float(percentile) <= 100):
        raise ConversionError(f"{name['percentile']} must be in (0, 100], got {percentile}")


def neurons_per_sample(graph) -> int:
    """Spiking neurons of one sample (CIF, IF and LIF outputs)."""
    return sum(int(np.prod(graph.shapes[n.output])) for n in graph.nodes.values() if OPS[n.op].spiking)


def check_work(graph, n_samples: int, steps: int, target: str) -> None:
    """Refuse a run whose amount of work would take hours: T above MAX_STEPS (a schedule's own
    settling step can be, for a large L on a deep network), samples x steps x neurons above
    MAX_NEURON_STEPS, or samples x steps above MAX_LAVA_SAMPLE_STEPS on lava-sim."""
    if steps > MAX_STEPS:
        raise ConversionError(f"T={steps:,} steps exceeds the limit of {MAX_STEPS:,} (neurocompile.limits.MAX_STEPS)")
    work = n_samples * steps * max(neurons_per_sample(graph), 1)
    if work > MAX_NEURON_STEPS:
        raise ConversionError(
            f"the run is too large: {n_samples:,} sample(s) x {steps:,} steps x {neurons_per_sample(graph):,} "
            f"neurons = {work:.3g} neuron-steps exceeds the limit of {MAX_NEURON_STEPS:.0e} "
            "(neurocompile.limits.MAX_NEURON_STEPS)", hint="Run fewer samples or fewer steps at a time")
    if target == "lava-sim" and n_samples * steps > MAX_LAVA_SAMPLE_STEPS:
        raise ConversionError(
            f"the Lava run is too large: {n_samples:,} sample(s) x {steps:,} steps = {n_samples * steps:,} "
            f"exceeds the limit of {MAX_LAVA_SAMPLE_STEPS:,} (neurocompile.limits.MAX_LAVA_SAMPLE_STEPS)",
            hint="Run fewer samples, or use --target reference for large evaluations")
