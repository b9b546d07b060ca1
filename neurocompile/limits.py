"""Limits on what neurocompile agrees to run: an absurd option is refused with the limit instead of
running for hours (or allocating a delay line of a billion steps). One place for all of them, checked
by ``api.convert`` (options), the CLI before any work, and the Lava target (work of a run). A run's records
(the readout after every step, and per-layer counts where kept) are held in memory: MAX_RUN_BYTES bounds them
before the run starts, instead of the kernel killing a process that grew beyond RAM.

The limits are generous: the largest useful CQReLU networks use L <= 256 and settle within a few
thousand steps; raise a constant here if you really need more.
"""
from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from neurocompile.errors import ConversionError
from neurocompile.ir.ops import OPS

MAX_LEVELS = 4096          # quantization levels L (= wake steps T_wake of a CIF network)
MAX_GAMMA = MAX_LEVELS     # spikes per step of graded CIF: more than L can never be emitted in one step
MAX_STEPS = 100_000        # total time steps T per sample
MAX_DELAY = 1024           # per-layer synaptic delay D (each layer holds a D-step delay line)
MAX_NEURON_STEPS = 10**11  # samples x T x neurons per sample of one run: about an hour of reference simulation
MAX_LAVA_SAMPLE_STEPS = 10**6  # samples x steps on lava-sim: Lava's CPU runtime takes ~1-5 ms per step
MAX_FILE_ARRAY_ELEMENTS = 10**8  # array elements one model file may declare in all (HDF5 datasets of a .nir
# file, checked before any is read: h5py creates a declared 1e11-element dataset without writing it) and in
# one tensor it implies (a layer's neurons); 1e8 float32 = 400 MB, four times a ResNet-50's weights
MAX_ARTIFACT_BYTES = 2**32  # declared bytes of an artifact's datasets together, checked before any is read
# (4 GiB; a large CNN's parameters take < 1 GiB)


def _machine_memory() -> int:
    """Bytes of memory this process may use: physical memory, or a container's (cgroup) limit where lower;
    16 GiB where neither can be read."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        total = 16 << 30
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as f:
                total = min(total, int(f.read().strip()))
        except (OSError, ValueError):  # absent, or "max" (no limit)
            pass
    return int(total)


# Memory the arrays of one run may take: a quarter of this machine's memory (other processes, torch and the
# model need the rest). Records grow with samples x T x neurons: evaluate's per-layer spike counts at T = 100,000
# on a 3,584-neuron CNN are 1.4 GB per sample, and a run beyond RAM is killed by the kernel without a word. Runs
# are checked against it before they start (check_work); evaluate shrinks its batch to fit it first.
MAX_RUN_BYTES = _machine_memory() // 4
READOUT_BYTES = 16  # per readout value and step: float64, held twice (the per-step list and its stacked copy)
RECORD_BYTES = 24   # per spiking neuron and step with layer records (record_layers): float32 counts held up to
                    # three times (per-step list, stack, cumulative sum; a chunked run's concatenation) and what
                    # their readers derive from them (neurocompile.analysis.estimate's differences and replays: ~23 measured)


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


def outputs_per_sample(graph) -> int:
    """Readout values of one sample (every graph output)."""
    return sum(int(np.prod(graph.shapes[t])) for t in dict.fromkeys(graph.outputs))


def record_bytes(graph, steps: int, record_layers: bool = False) -> int:
    """Bytes one sample's records of a ``steps``-step run take: the readout after every step and, with
    ``record_layers``, every spiking layer's count after every step (READOUT_BYTES, RECORD_BYTES)."""
    per_step = outputs_per_sample(graph) * READOUT_BYTES
    if record_layers:
        per_step += neurons_per_sample(graph) * RECORD_BYTES
    return int(steps) * per_step


def gib(n: float) -> str:
    """Bytes as GiB (or MiB below one GiB) for messages."""
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.1f} MiB"


def check_memory(need: int, what: str, hint: str | None = None) -> None:
    """Refuse ``what`` (e.g. "the records of 20 sample(s) x 100,000 steps") when it needs more than MAX_RUN_BYTES."""
    if need > MAX_RUN_BYTES:
        raise ConversionError(f"{what} need about {gib(need)} of memory, more than the limit of {gib(MAX_RUN_BYTES)} "
                              "(neurocompile.limits.MAX_RUN_BYTES: a quarter of this machine's memory)", hint=hint)


def check_work(graph, n_samples: int, steps: int, target: str, record_layers: bool = False) -> None:
    """Refuse a run whose amount of work would take hours: T above MAX_STEPS (a schedule's own
    settling step can be, for a large L on a deep network), samples x steps x neurons above
    MAX_NEURON_STEPS, or samples x steps above MAX_LAVA_SAMPLE_STEPS on lava-sim; or whose records
    (the readout after every step; with ``record_layers`` every layer's counts) exceed MAX_RUN_BYTES."""
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
    kept = (f"{neurons_per_sample(graph):,} neurons' spike counts and " if record_layers else "") + \
        f"{outputs_per_sample(graph):,} readout values"
    check_memory(n_samples * record_bytes(graph, steps, record_layers),
                 f"the records of the run ({kept} after each of {steps:,} steps, for {n_samples:,} sample(s))",
                 hint="Run fewer samples at a time, or fewer steps")
