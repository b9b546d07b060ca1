"""Refusals before any work (UsageError: exit 2): option values beyond neurocompile.limits, devices that are not
there, output paths that cannot be written or that two options would both write."""
from __future__ import annotations

import argparse
import os
from typing import Any, Sequence

from neurocompile.cli.options import UsageError
from neurocompile.cli.printing import _warn


_OPTION_NAMES = {"steps": "--steps", "levels": "--levels", "gamma": "--gamma", "delay": "--delay",
                 "percentile": "--percentile"}


def _check_conversion_options(a: argparse.Namespace) -> None:
    """The limits api.convert enforces (neurocompile.limits), before any work and named as the user typed them:
    exit 2."""
    from neurocompile import limits
    from neurocompile.errors import ConversionError

    try:
        limits.check_options(steps=a.steps, levels=a.levels, gamma=a.gamma, delay=getattr(a, "delay", None),
                             percentile=a.percentile, names=_OPTION_NAMES)
    except ConversionError as err:
        raise UsageError(err.message) from None


def _check_args(a: argparse.Namespace) -> None:
    """Refuse bad option values and unwritable outputs before any work (UsageError: exit 2)."""
    if not hasattr(a, "levels"):  # inspect: the model, which api.load checks, and a NIR file's T
        if getattr(a, "steps", None) is not None and a.steps < 1:
            raise UsageError(f"--steps {a.steps}: a network runs at least one step")
        return
    _check_conversion_options(a)
    if a.device:
        _check_device(a.device, a.target)
    from neurocompile.targets import get_target

    own = get_target(a.target).synapse_delay if a.delay is not None and a.target != "reference" else a.delay
    if a.delay != own:  # the reference simulator models any delay; a real target has its own
        raise UsageError(f"--delay {a.delay} does not match {a.target}, whose synapses delay by {own} step(s)",
                         hint="Omit --delay for this target")
    outputs = [("--json", a.json_out)] if a.json_out else []
    if a.save_ir:  # Graph.save writes BASE.json and BASE.npz whatever the extension given
        if os.path.isdir(a.save_ir):
            raise UsageError(f"--save-ir {a.save_ir} is a directory", hint="Give a file name such as model.json")
        base = os.path.splitext(a.save_ir)[0]
        outputs += [("--save-ir", base + ".json"), ("--save-ir", base + ".npz")]
    _check_outputs(outputs)


def _check_output(flag: str, path: str) -> Any:
    """The :mod:`neurocompile.atomic` rule, before any work: a symlink is written through, /dev/null, a terminal or a
    FIFO in place; a directory, a disk, a missing or unwritable folder are refused (exit 2). Returns its Target."""
    from neurocompile.atomic import OutputPathError, check_output

    try:
        return check_output(path)
    except OutputPathError as err:
        raise UsageError(f"{flag} {err.message}", hint=err.hint) from None


def _check_outputs(outputs: Sequence[tuple[str, str]]) -> None:
    """Check every (flag, path) of one command, and refuse two that would write the same regular file (compared by
    real path: a symlink, ./x and x; a device or pipe such as /dev/null may take several)."""
    seen: dict[str, str] = {}
    for flag, path in outputs:
        t = _check_output(flag, path)
        if t.direct:
            continue
        if t.real in seen:
            same = "" if os.path.abspath(path) == t.real else f" ('{t.real}')"
            raise UsageError(f"{flag} and {seen[t.real]} would both write {path}{same}", hint="Give each its own file")
        seen[t.real] = flag


def _check_folder(flag: str, path: str, files: Any = ()) -> list[tuple[str, str]]:
    """An output folder (created if missing): it, or its nearest existing ancestor, must be a directory one can
    write in (not under a regular file, not in /proc); exit 2 otherwise. Returns ``files`` (the paths the command
    writes in it) as outputs for :func:`_check_outputs` where the folder exists; in a folder still to be made they
    can clash with nothing (every other output's folder exists)."""
    from neurocompile.atomic import OutputPathError, check_folder

    try:
        real = check_folder(path)
    except OutputPathError as err:
        raise UsageError(f"{flag} {err.message}", hint=err.hint) from None
    return [(flag, f) for f in files] if os.path.isdir(real) else []


def _check_device(device: str, target: str) -> None:
    import torch

    try:
        d = torch.device(device)
    except (RuntimeError, ValueError):
        d = None
    if d is None or d.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {device} is not a device the reference simulator runs on (cpu, cuda or cuda:N)")
    if d.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise UsageError(f"--device {device}: no CUDA GPU is available here (torch.cuda.is_available() is False)",
                             hint="Use --device cpu")
        if d.index is not None and d.index >= n:
            raise UsageError(f"--device {device}: there are {n} CUDA device(s) (cuda:0 to cuda:{n - 1})")
    if target != "reference":
        _warn(f"--device is for --target reference; {target} ignores it")
