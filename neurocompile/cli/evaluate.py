"""``neurocompile evaluate``: accuracy over time steps and a per-layer diagnosis, with optional plots and an HTML
report; under torchrun each rank evaluates a shard and rank 0 alone prints and writes."""
from __future__ import annotations

import argparse
import os
import sys

from neurocompile.cli import options, signals
from neurocompile.cli.checks import _check_conversion_options, _check_device, _check_folder, _check_outputs
from neurocompile.cli.options import UsageError, _conversion_kwargs, _conversion_options, _Parser
from neurocompile.cli.printing import _say, _write_json
from neurocompile.errors import NeurocompileError


def _evaluate_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="neurocompile evaluate", description="Accuracy over time steps and a per-layer diagnosis: "
                "ANN and SNN accuracy, argmax agreement and logit error at every step (or --at), the first step "
                "at which the SNN equals the ANN, per layer the neurons with more or fewer spikes than the ANN's "
                "level, when each layer settles and where error first appears, spike statistics and synaptic "
                "operations against the ANN's MACs; optionally PNG plots and one self-contained HTML report.",
                epilog="example: neurocompile evaluate examples/digits_cqrelu.onnx --input examples/digits_test.npy "
                       "--labels examples/digits_test_labels.npy --at 4,8,16 --plot plots --report report.html. "
                       "On N processes: torchrun --nproc-per-node N -m neurocompile evaluate ... (each evaluates a "
                       "shard, the metrics are all-reduced; rank 0 alone prints and writes the files)")
    p.add_argument("model", help="ONNX file, saved IR (.json), artifact (.h5) or NIR file (.nir)")
    p.add_argument("--input", required=True, help=".npy inputs, shape (N, *input_shape)")
    p.add_argument("--labels", help=".npy class labels (N,) for accuracies (default: agreement with the ANN only)")
    p.add_argument("--at", help="comma-separated steps to report, e.g. 4,8,16 (default: every step)")
    p.add_argument("--baseline", action="store_true", help="also run the IF baseline at the same T")
    p.add_argument("--exact", action="store_true", help="every spike decision exact (proved in float32 or made in "
                   "float64; readout in float64) instead of the fast float32 default")
    p.add_argument("--batch", type=int, default=256, help="samples simulated at a time (default 256)")
    p.add_argument("--device", help="torch device for the simulation (cpu, cuda, cuda:N; default cpu; under "
                   "torchrun, cuda is each process's cuda:LOCAL_RANK)")
    p.add_argument("--json", dest="json_out", help="write the evaluation as JSON to this file")
    p.add_argument("--plot", dest="plot_dir", help="write PNG plots into this folder (created if missing)")
    p.add_argument("--report", help="write one self-contained HTML report (plots embedded) to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _conversion_options(p)
    return p


def _check_evaluate_options(a: argparse.Namespace) -> list[int] | None:
    """evaluate's option values, before any work (UsageError: exit 2): the conversion limits, --batch, and --at
    (steps are numbered from 1: step t is the state after t steps; at most --steps where given, else the run's T
    is known only after conversion and evaluate checks it). Returns the --at steps (None: every step)."""
    _check_conversion_options(a)
    if a.batch < 1:
        raise UsageError(f"--batch {a.batch}: simulate at least one sample at a time")
    if a.at is None:  # not given: every step (--at '' is refused below, not read as "every step")
        return None
    try:
        at = [int(v) for v in a.at.split(",")]
    except ValueError:
        raise UsageError(f"--at {a.at!r}: give comma-separated step numbers, e.g. 4,8,16") from None
    span = f"[1, {a.steps}]" if a.steps else "[1, T] (T: --steps, or the schedule's settling step)"
    for t in at:
        if t < 1:
            raise UsageError(f"--at {t}: steps are numbered from 1 (step t is the state after t steps); give steps "
                             f"in {span}")
        if a.steps and t > a.steps:
            raise UsageError(f"--at {t} is beyond --steps {a.steps}: give steps in {span}")
    return at


def _check_evaluate_outputs(a: argparse.Namespace) -> None:
    """evaluate's --json, --report and --plot DIR (its PNGs) before the evaluation runs: each writable, none the
    same file as another."""
    outputs = [(flag, path) for flag, path in (("--json", a.json_out), ("--report", a.report)) if path]
    if a.plot_dir:
        from neurocompile.analysis.report import plot_paths

        outputs += _check_folder("--plot", a.plot_dir, plot_paths(a.plot_dir).values())
    _check_outputs(outputs)


def _evaluate(a: argparse.Namespace) -> int:
    """Check options and outputs, evaluate (this rank's shard under torchrun), print the table, write the files."""
    from neurocompile.analysis import distributed

    rank, world = distributed.launched()  # torchrun --nproc-per-node N: each rank evaluates a shard (evaluate)
    if world < 2:
        return _evaluate_here(a, rank, world)
    return _evaluate_as_rank(a, rank, world)


def _evaluate_as_rank(a: argparse.Namespace, rank: int, world: int) -> int:
    """One torchrun rank. Rank 0 alone prints and writes; it says an error, its own or (through the collectives)
    another rank's, and only then does any rank leave (distributed.farewell): torchrun stops every rank as soon as
    one exits non-zero, which would cut rank 0 short before it speaks."""
    import contextlib

    from neurocompile.analysis import distributed

    distributed.join()  # before any check: every error below is found while the ranks can still wait for rank 0
    if rank:
        a = argparse.Namespace(**{**vars(a), "json_out": None, "report": None, "plot_dir": None, "quiet": True})
    try:
        with contextlib.ExitStack() as quiet:
            if rank:  # silent: rank 0 says everything there is to say
                null = quiet.enter_context(open(os.devnull, "w"))
                quiet.enter_context(contextlib.redirect_stdout(null))
                quiet.enter_context(contextlib.redirect_stderr(null))
            return _evaluate_here(a, rank, world)
    except (UsageError, NeurocompileError) as err:
        if signals._state["signum"] is not None:
            raise  # interrupted: main() says so
        if not rank:
            _say(f"neurocompile: error: {err}")
            signals.said()
        distributed.farewell()
        return 2 if isinstance(err, UsageError) else 1


def _evaluate_here(a: argparse.Namespace, rank: int, world: int) -> int:
    """The evaluation of this process's shard (every sample outside torchrun); the table and files on rank 0."""
    from tqdm import tqdm

    from neurocompile import api
    from neurocompile.analysis import distributed
    from neurocompile.analysis import evaluate as evaluation  # its evaluate looked up now: tests replace it

    _check_evaluate_outputs(a)
    at = _check_evaluate_options(a)
    if a.device:
        _check_device(a.device, "reference")
    g = options._load(a)
    g.meta.setdefault("name", os.path.basename(a.model))  # the report's title
    x = api.load_input(a.input, api.first_input_shape(g))
    y = a.labels or None  # the path: evaluate reads it and checks it against the model's classes, naming the file
    kw = {} if g.schedule is not None else {k: v for k, v in _conversion_kwargs(a, g).items() if k != "steps"}
    calib = api.load_input(a.calibrate, api.first_input_shape(g)) if a.calibrate else None
    if calib is not None:
        kw["calibration"] = calib
    with tqdm(total=len(range(rank, len(x), world)), desc="evaluate" if world < 2 else f"evaluate (rank 0 of "
              f"{world})", unit="sample", disable=a.quiet or None, leave=False, file=sys.stderr) as bar:
        ev = evaluation.evaluate(g, x, labels=y, steps=None if g.meta.get("nir") else a.steps, at=at, exact=a.exact,
                      batch=a.batch, device=a.device, baseline=a.baseline,
                      progress=lambda done, total: bar.update(done - bar.n), **kw)
    distributed.shutdown()  # the process group evaluate made under torchrun (none otherwise)
    if rank:
        return 0
    print(ev.table())
    written = []
    if a.plot_dir:
        from neurocompile.analysis.report import write_plots

        written += write_plots(ev, a.plot_dir)
    if a.report:
        from neurocompile.analysis.report import write_html

        written += write_html(ev, a.report)
    if a.json_out:
        _write_json(a.json_out, ev.to_dict())
        written.append(a.json_out)
    for path in written:
        print(f"wrote {path}")
    return 0
