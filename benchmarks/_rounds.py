"""Timing across interpreters: neurocompile runs on Python 3.10 (lava-nc) and SpikingJelly 2.0 on Python 3.11, which
cannot share a process. Each side's worker is one process that warms up, times each of its contenders once and
writes JSON; ``alternate`` runs the workers A B A B ... for the rounds, so both see the same machine state in turn,
and the table reports medians and per-round ratios."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from _common import ROOT

BENCH_PYTHON = os.path.join(ROOT, ".venv-bench", "bin", "python")  # made by `make bench` (requirements-sj2.txt)


def sj2_command(task: str, *args: str) -> list[str] | None:
    """The SpikingJelly 2.0 worker's command line, or None where `make bench` has not made its interpreter."""
    if not os.path.isfile(BENCH_PYTHON):
        return None
    return [BENCH_PYTHON, os.path.join(ROOT, "benchmarks", "sj2_worker.py"), "--task", task, *args]


def run_worker(cmd: list[str], timeout: float = 3600) -> dict:
    """One worker process: its JSON (written to a temporary --out file); its stderr on failure."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.path.join(ROOT, "examples")]),
           "TQDM_DISABLE": "1"}
    with tempfile.TemporaryDirectory(prefix="nc-bench-") as d:
        out = os.path.join(d, "out.json")
        r = subprocess.run([*cmd, "--out", out], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0 or not os.path.isfile(out):
            raise RuntimeError(f"worker failed ({' '.join(cmd[:4])} ...): {r.stderr.strip()[-2000:]}")
        with open(out) as f:
            return json.load(f)


def alternate(workers: dict[str, list[str]], rounds: int, first_args: dict[str, list[str]] | None = None
              ) -> dict[str, list[dict]]:
    """``rounds`` rounds, each running every worker once in order (A B A B ...); per worker its rounds' JSON.
    ``first_args``: extra arguments for a worker's first round only (what is measured once, e.g. agreement)."""
    out: dict[str, list[dict]] = {k: [] for k in workers}
    for r in range(rounds):
        for name, cmd in workers.items():
            extra = (first_args or {}).get(name, []) if r == 0 else []
            print(f"   round {r + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
            out[name].append(run_worker([*cmd, *extra]))
    return out


def per_round_ratios(num: list[float], den: list[float]) -> tuple[float, float, float]:
    """Median, min and max over rounds of num[r] / den[r] (seconds of the slower side over the faster's)."""
    r = np.asarray(num, float) / np.asarray(den, float)
    return float(np.median(r)), float(r.min()), float(r.max())
