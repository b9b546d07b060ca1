"""Mutation fuzzing of the CLI: outcome counts per kind and one line per finding.

Kinds: onnx (tests/fuzz_mutants.py: a seed model or its input array changed in one structured way, judged
against onnxruntime), artifact, nir and evaluate (tests/fuzz_files.py: an exported artifact, a NIR file, or
evaluate's inputs, labels and options changed; each with its own oracle, described there). Each mutant runs
through `neurocompile.cli.main` in a worker process (every --every-th as a real `python -m neurocompile.cli`
subprocess) under an 8 GB address-space limit (a mutant that declares a huge array fails instead of
swapping a shared machine).

    .venv/bin/python benchmarks/fuzz_cli.py [--kind onnx|artifact|nir|evaluate|all] [--n 400] [--seed 0]
                                            [--every 10] [--json results.json]
"""
import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections import Counter

from _common import ROOT, table
from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, ROOT)
from tests import fuzz_files as FF  # noqa: E402
from tests import fuzz_mutants as F  # noqa: E402

COLUMNS = [("match", "success, matches onnxruntime"), ("no_ort", "accepted without onnxruntime"),
           ("boundary", "differs at a quantization boundary"), ("refused_1", "clean refusal, exit 1"),
           ("refused_2", "clean refusal, exit 2"), ("internal_error", "internal error (exit 3)"),
           ("traceback", "traceback"), ("hang", f"hang (> {F.TIMEOUT_S} s)"), ("crash", "crash / other exit code"),
           ("exit0_nonfinite", "exit 0 with NaN/inf"), ("wrong_numbers", "exit 0, wrong numbers"),
           ("accepted_ort_refused", "exit 0, onnxruntime refuses, JSON says onnxruntime"),
           ("no_json", "exit 0 without --json file"), ("bad_refusal", "refusal not one paragraph"),
           ("file_left", "files left by a failed run")]
# the file kinds' own outcomes (tests/fuzz_files.py)
FILE_COLUMNS = [("not_verified", "verify: exit 1, NOT verified (its report)"),
                ("accepted", "accepted, no independent reference (review)"),
                ("accepted_unchanged", "accepted, changed file, unchanged outputs (review)"),
                ("accepted_changed", "exit 0 on a changed artifact payload"),
                ("accepted_nonfinite", "exit 0 on NaN/inf parameters"),
                ("accepted_bad_input", "exit 0 on invalid inputs/labels/options"),
                ("refused_valid", "the unmutated seed refused")]
KINDS = ("onnx", *FF.KINDS)
AS_LIMIT = 8 << 30  # bytes of address space per worker (and its subprocesses)


def _worker(conn) -> None:
    import resource

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    import torch

    torch.set_num_threads(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # onnxruntime's C++ log lines: only subprocess runs judge them
    while (job := conn.recv()) is not None:
        m, via = job
        with tempfile.TemporaryDirectory(prefix="nc-fuzz-") as d:
            kind, detail, out = (F.check if isinstance(m, F.Mutant) else FF.check)(m, d, via)
        conn.send((kind, detail, out.rc, F.first_line(out), out.seconds))


class Worker:
    """One warm worker process; killed and replaced when a mutant takes it down or past the timeout."""

    def __init__(self):
        self.ctx, self.proc = mp.get_context("spawn"), None

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(10)

    def run(self, m, via: str):
        if self.proc is None or not self.proc.is_alive():
            self.conn, child = self.ctx.Pipe()
            self.proc = self.ctx.Process(target=_worker, args=(child,), daemon=True)
            self.proc.start()
        self.conn.send((m, via))
        if self.conn.poll(F.TIMEOUT_S + 90):  # the worker's own alarm fires at TIMEOUT_S
            try:
                return self.conn.recv()
            except EOFError:
                pass
        self.proc.kill()
        self.proc.join()
        code, self.proc = self.proc.exitcode, None
        return ("hang", "worker gave no answer", None, "", None) if code == -9 else \
            ("crash", f"worker died with exit code {code}", code, "", None)


def _flags(m) -> list[str]:
    return m.args + (["--save-ir"] if getattr(m, "save_ir", False) else [])


def fuzz(kind: str, worker: Worker, n: int, seed_: int, every: int) -> list[dict]:
    """Run n mutants of one kind (hypothesis draws them from seed_) and return one row per mutant."""
    rows, t0 = [], time.perf_counter()

    @seed(seed_)
    @settings(max_examples=n, database=None, derandomize=False, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(F.mutants() if kind == "onnx" else FF.mutants(kind))
    def drive(m):
        via = "subprocess" if every and len(rows) % every == every - 1 else "in-process"
        outcome, detail, rc, first, secs = worker.run(m, via)
        rows.append({"kind_of_mutant": kind, "seed": m.seed, "mutation": m.desc, "flags": _flags(m), "via": via,
                     "kind": outcome, "detail": detail, "rc": rc, "stderr": first, "seconds": secs})
        if len(rows) % 50 == 0:
            print(f"{kind}: {len(rows)} mutants, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    drive()
    return rows


def report(kind: str, rows: list[dict], seconds: float, a) -> None:
    counts = Counter(r["kind"] for r in rows)
    cols = COLUMNS + (FILE_COLUMNS if kind != "onnx" else [])
    print(f"fuzz_cli --kind {kind}: {len(rows)} mutants (seed {a.seed}, every {a.every}th via subprocess) in "
          f"{seconds:.0f} s ({len(rows) / max(seconds, 1e-9):.2f} mutants/s)\n")
    print(table([[label, counts.get(k, 0)] for k, label in cols], ["outcome", "mutants"]))
    findings = [r for r in rows if r["kind"] in (F.FINDINGS if kind == "onnx" else FF.FINDINGS)]
    print(f"\n{len(findings)} finding(s)")
    for r in findings:
        print(f"[{r['kind']}] {r['seed']}: {r['mutation']} {' '.join(r['flags'])} ({r['via']}) -> exit {r['rc']}: "
              f"{r['stderr'] or r['detail']}")
    notes = [r for r in rows if r["kind"] in ("boundary", "no_ort", "accepted", "accepted_unchanged")]
    if notes:
        print(f"\n{len(notes)} accepted with a caveat (boundary cases, reference not onnxruntime, no reference)")
    for r in notes:
        print(f"[{r['kind']}] {r['seed']}: {r['mutation']} {' '.join(r['flags'])} -> {r['detail']}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", choices=[*KINDS, "all"], default="onnx", help="what to mutate (default onnx)")
    ap.add_argument("--n", type=int, default=400, help="number of mutants (per kind)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=10, help="run every k-th mutant as a subprocess")
    ap.add_argument("--json", help="also write every result here")
    a = ap.parse_args()
    worker, rows = Worker(), []
    try:
        for kind in KINDS if a.kind == "all" else (a.kind,):
            t0 = time.perf_counter()
            got = fuzz(kind, worker, a.n, a.seed, a.every)
            report(kind, got, time.perf_counter() - t0, a)
            rows += got
    finally:
        worker.close()
    if a.json:
        json.dump(rows, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
