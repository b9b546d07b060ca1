"""The options several commands share (how a model converts, how a NIR file's ODEs become steps) and what they turn
into: the loaded model and api.convert's keyword arguments. Also the usage error every command raises (exit 2)."""
from __future__ import annotations

import argparse
import math
from typing import Any, NoReturn

from neurocompile.errors import NeurocompileError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one paragraph (argparse prints the whole usage block first)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see '{self.prog} --help')\n")


class UsageError(NeurocompileError):
    """A bad option value or output path: exit 2, like argparse's own usage errors."""


def _nir_options(p: argparse.ArgumentParser) -> None:
    """How a NIR file's ODE neurons become steps (every subcommand that reads a model takes them)."""
    p.add_argument("--dt", type=float, help="NIR files: the time step in seconds that discretizes the neurons' ODEs "
                   "(default 1e-4, snnTorch's); --steps is then the number of input steps T")
    p.add_argument("--discretization", choices=("snntorch", "euler", "zoh"),
                   help="NIR files: how LIF ODEs become steps (default snntorch: forward Euler, beta = 1 - dt/tau, "
                        "as snnTorch exports and imports)")


def _conversion_options(p: argparse.ArgumentParser) -> None:
    """The options that decide how a model converts: a run and an export take the same ones."""
    from neurocompile.limits import MAX_GAMMA, MAX_LEVELS, MAX_STEPS

    p.add_argument("--steps", type=int, help=f"total time steps T, at most {MAX_STEPS:,} (default: the schedule's predicted settling step)")
    p.add_argument("--levels", type=int, help=f"quantization levels L, at most {MAX_LEVELS:,} (for calibrated ReLU nets; must match a CQReLU net)")
    p.add_argument("--neuron", choices=["cif", "if"], default="cif", help="cif (lossless) or if (baseline)")
    p.add_argument("--gamma", type=int, default=1, help=f"max spikes per step for CIF (>1: graded spikes; at most {MAX_GAMMA:,})")
    p.add_argument("--calibrate", help=".npy calibration inputs for plain-ReLU (lossy) conversion")
    p.add_argument("--percentile", type=float, default=99.9, help="calibration percentile in (0, 100] (default 99.9)")
    p.add_argument("--fixed-point", action="store_true",
                   help="integer weights/thresholds (8-bit weights, lossy); lava-sim runs Lava's fixed_pt models")
    p.add_argument("--t-wake", type=int, help="CIF wake steps, a divisor of L (default L): a shorter wake phase with "
                   "graded spikes (--gamma) reaches the exact readout in fewer steps")
    p.add_argument("--latency", choices=("default", "min"), default="default",
                   help="min: choose --t-wake and --gamma for the fewest steps to the exact readout within "
                        "--max-payload-bits (with T_wake = 1 and gamma = L: depth x delay + 1 steps); default: T_wake = L")
    p.add_argument("--max-payload-bits", type=int, default=24,
                   help="signed graded-spike payload for --latency min (default 24, Loihi 2's largest)")
    _nir_options(p)


def _load(a: argparse.Namespace) -> Any:
    """The model, with the NIR import options (a NIR file has no T: --steps gives it)."""
    from neurocompile import api
    from neurocompile.frontends.nir import is_nir

    if is_nir(a.model):
        if a.dt is not None and not (math.isfinite(a.dt) and a.dt > 0):
            raise UsageError(f"--dt {a.dt:g}: the time step must be a positive number of seconds")
        return api.load(a.model, dt=a.dt, discretization=a.discretization, time_steps=getattr(a, "steps", None))
    if a.dt is not None or a.discretization is not None:
        raise UsageError(f"--dt and --discretization apply to NIR files (.nir); {a.model} is not one")
    return api.load(a.model)


def _steps_to_convert(a: argparse.Namespace, g: Any) -> int | None:
    """T for api.convert: --steps; for a NIR student none (it took --steps as its T at import); for a CIF network read
    from neurocompile's NIR extension, --steps or else, on the reference target (no synaptic delay, as the file was
    written), the T it was exported with."""
    from neurocompile import api

    nir = g.meta.get("nir")
    if not nir:
        return a.steps
    if api.is_student(g):
        return None
    exported = (nir.get("extension") or {}).get("steps") if getattr(a, "target", "reference") == "reference" else None
    return a.steps or exported


def _convert(a: argparse.Namespace, g: Any, **options: Any) -> Any:
    """api.convert, its refusals naming the model file."""
    from neurocompile import api

    try:
        return api.convert(g, **options)
    except NeurocompileError as err:
        raise err.at(a.model)


def _conversion_kwargs(a: argparse.Namespace, g: Any) -> dict[str, Any]:
    """api.convert's options as the user gave them; --latency min resolves to (t_wake, gamma) from the levels."""
    from neurocompile import api

    kw = dict(neuron=a.neuron, gamma=a.gamma, levels=a.levels, percentile=a.percentile,
              steps=_steps_to_convert(a, g), fixed_point=a.fixed_point, t_wake=a.t_wake)
    if a.latency == "min":
        if a.t_wake is not None or a.gamma != 1:
            raise UsageError("--latency min chooses --t-wake and --gamma itself: give either --latency min or them")
        if a.neuron != "cif" or api.is_student(g):
            raise UsageError("--latency min shortens a CIF network's wake phase: "
                             + ("an LIF student runs its own T steps" if api.is_student(g) else "drop --neuron if"))
        levels = api.network_levels(g) or a.levels or 8
        kw["t_wake"], kw["gamma"] = api.latency_options(levels, a.max_payload_bits)
    elif a.max_payload_bits != 24:
        raise UsageError("--max-payload-bits applies to --latency min", hint="Add --latency min, or drop it")
    return kw


def _latency_given(a: argparse.Namespace) -> list[tuple[str, bool]]:
    return [("--t-wake", a.t_wake is not None), ("--latency", a.latency != "default"),
            ("--max-payload-bits", a.max_payload_bits != 24)]
