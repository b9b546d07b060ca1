"""Mutation fuzzing of the CLI over valid ONNX models: outcome counts and one line per finding.

Each mutant (tests/fuzz_mutants.py: a seed model or its input array changed in one structured way)
runs through `neurocompile.cli.main` in a worker process (every --every-th as a real
`python -m neurocompile.cli` subprocess) and is judged against onnxruntime.

    .venv/bin/python benchmarks/fuzz_cli.py [--n 400] [--seed 0] [--every 10] [--json results.json]
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
from tests import fuzz_mutants as F  # noqa: E402

COLUMNS = [("match", "success, matches onnxruntime"), ("no_ort", "accepted without onnxruntime"),
           ("boundary", "differs at a quantization boundary"), ("refused_1", "clean refusal, exit 1"),
           ("refused_2", "clean refusal, exit 2"), ("internal_error", "internal error (exit 3)"),
           ("traceback", "traceback"), ("hang", f"hang (> {F.TIMEOUT_S} s)"), ("crash", "crash / other exit code"),
           ("exit0_nonfinite", "exit 0 with NaN/inf"), ("wrong_numbers", "exit 0, wrong numbers"),
           ("accepted_ort_refused", "exit 0, onnxruntime refuses, JSON says onnxruntime"),
           ("no_json", "exit 0 without --json file"), ("bad_refusal", "refusal not one paragraph"),
           ("file_left", "files left by a failed run")]


def _worker(conn) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # onnxruntime's C++ log lines: only subprocess runs judge them
    while (job := conn.recv()) is not None:
        m, via = job
        with tempfile.TemporaryDirectory(prefix="nc-fuzz-") as d:
            kind, detail, out = F.check(m, d, via)
        conn.send((kind, detail, out.rc, F.first_line(out), out.seconds))


class Worker:
    """One warm worker process; killed and replaced when a mutant takes it down or past the timeout."""

    def __init__(self):
        self.ctx, self.proc = mp.get_context("spawn"), None

    def close(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.conn.send(None)
            self.proc.join(10)

    def run(self, m: F.Mutant, via: str):
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=400, help="number of mutants")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--every", type=int, default=10, help="run every k-th mutant as a subprocess")
    ap.add_argument("--json", help="also write every result here")
    a = ap.parse_args()
    worker, rows, t0 = Worker(), [], time.perf_counter()

    @seed(a.seed)
    @settings(max_examples=a.n, database=None, derandomize=False, phases=[Phase.generate], deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(F.mutants())
    def drive(m):
        via = "subprocess" if a.every and len(rows) % a.every == a.every - 1 else "in-process"
        kind, detail, rc, first, secs = worker.run(m, via)
        rows.append({"seed": m.seed, "mutation": m.desc, "flags": m.args + (["--save-ir"] if m.save_ir else []),
                     "via": via, "kind": kind, "detail": detail, "rc": rc, "stderr": first, "seconds": secs})
        if len(rows) % 50 == 0:
            print(f"{len(rows)} mutants, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)

    drive()
    worker.close()
    counts = Counter(r["kind"] for r in rows)
    print(f"fuzz_cli: {len(rows)} mutants (seed {a.seed}, every {a.every}th via subprocess) in "
          f"{time.perf_counter() - t0:.0f} s\n")
    print(table([[label, counts.get(k, 0)] for k, label in COLUMNS], ["outcome", "mutants"]))
    findings = [r for r in rows if r["kind"] in F.FINDINGS]
    print(f"\n{len(findings)} finding(s)")
    for r in findings:
        print(f"[{r['kind']}] {r['seed']}: {r['mutation']} {' '.join(r['flags'])} ({r['via']}) -> exit {r['rc']}: "
              f"{r['stderr'] or r['detail']}")
    notes = [r for r in rows if r["kind"] in ("boundary", "no_ort")]
    if notes:
        print(f"\n{len(notes)} accepted with a caveat (boundary cases, reference not onnxruntime)")
    for r in notes:
        print(f"[{r['kind']}] {r['seed']}: {r['mutation']} {' '.join(r['flags'])} -> {r['detail']}")
    if a.json:
        json.dump(rows, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
