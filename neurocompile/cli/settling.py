"""How long a run of ``neurocompile run`` lasts: a CIF network's readout is final only once every sample has settled,
so a run at the default (predicted) T is extended to the proven settling bound where a sample has not."""
from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np


def _extends_to(a: argparse.Namespace, g: Any, snn: Any, steps: int) -> int | None:
    """The proven settling bound (schedule ``settle_bound``) to which a run at the default T is extended where a sample
    has not settled by then; None where T is the user's (--steps, a NIR file's, a saved IR converted with a T of its
    own), the network does not settle (the IF baseline, an LIF student) or the prediction reaches the bound."""
    from neurocompile import api

    s = snn.schedule
    bound = s.settle_bound
    if (a.steps is not None or g.meta.get("nir") or bound is None or steps != s.predicted_settle
            or bound <= steps or not api.lossless_kind(snn)):
        return None
    return int(bound)


def _run_settled(a: argparse.Namespace, snn: Any, exe: Any, x: np.ndarray, steps: int, bound: int | None):
    """Run ``steps`` steps, where a CIF network's readout is final only once every sample has settled (the default
    T is a prediction, passes/schedule_wake_sleep.settle_margin). With ``bound`` (:func:`_extends_to`: the default T)
    a run in which the reference finds samples still spiking at the last step runs again, every sample, to the
    proven bound (one run: spike totals and per-step records stay those of one T). On lava-sim, which reports no
    quiescence, a reference run at the predicted T (exact mode; a fixed-point network's integers) decides T first.
    Returns the result and the --json keys on settling: ``predicted_steps`` (the schedule's predicted settling step,
    the default T),
    ``settle_bound``, ``unsettled_at_predicted`` (samples not settled at the predicted T: None where not checked) and
    ``unsettled_samples`` (at the T run; None where not known, e.g. lava-sim below the proven bound)."""
    from neurocompile import api

    predicted = snn.schedule.predicted_settle
    settle = {"predicted_steps": int(predicted) if predicted else None,
              "settle_bound": snn.schedule.settle_bound, "unsettled_at_predicted": None}
    known = None  # the samples not settled at the T run, where a run of the reference found them
    if bound is not None and a.target == "lava-sim":
        probe = api.compile(snn, "reference", exact=True)
        probe.run(x, steps=steps, record=False)
        settle["unsettled_at_predicted"] = known = probe.unsettled
        if known and _settle_work(snn, x, bound, a.target):
            steps, known = bound, None
    res = _with_progress(exe, x, steps, a)
    if a.target == "reference":
        known = exe.unsettled
        if bound is not None:
            settle["unsettled_at_predicted"] = known
            if known and _settle_work(snn, x, bound, a.target):
                res = _with_progress(exe, x, bound, a)
                known = exe.unsettled
    proved = settle["settle_bound"] is not None and res.steps >= settle["settle_bound"] and api.lossless_kind(snn)
    settle["unsettled_samples"] = [] if proved else known  # at the proven bound the readout is final, spiking or not
    return res, settle


def _settle_work(snn: Any, x: np.ndarray, bound: int, target: str) -> int | None:
    """``bound`` where a run of that many steps is within the work limits, else None (the run keeps its T and reports
    its unsettled samples)."""
    from neurocompile import limits
    from neurocompile.errors import ConversionError

    try:
        limits.check_work(snn, len(x), bound, target)
    except ConversionError:
        return None
    return bound


def _with_progress(exe: Any, x: np.ndarray, steps: int, a: argparse.Namespace):
    """``exe.run`` with a progress bar on stderr (none with --quiet or off a terminal)."""
    from tqdm import tqdm

    total = steps * (len(x) if a.target != "reference" else 1)  # Lava runs samples one after another
    with tqdm(total=total, desc=f"{a.target}", unit="step", disable=a.quiet or None, leave=False,
              file=sys.stderr) as bar:
        return exe.run(x, steps=steps, early_stop=a.early_stop, progress=lambda t: bar.update(t - bar.n))
