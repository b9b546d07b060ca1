"""Running an emitted process graph in Lava, with the always-stop discipline."""
from __future__ import annotations

import os
import pickle
import select
import shutil
import subprocess
import sys
import tempfile
import time
import weakref
from typing import Callable

import numpy as np

from neurocompile.errors import TargetError
from neurocompile.ir import Graph
from neurocompile.targets import per_step_input
from neurocompile.ir.ops import OPS
from neurocompile.passes.lower_to_blocks import lowered
from neurocompile.ir.schedule import WakeSleepSchedule
from neurocompile.targets.lava.emit import Stream, check_lowering
from neurocompile.targets.lava.worker import STARTED, start_ticks
from neurocompile.targets import SimResult


def check_for_lava(graph: Graph) -> Graph:
    """The lowered graph Lava runs, or the TargetError that says why it cannot (before Lava starts)."""
    if graph.schedule is None:
        raise TargetError("graph has no schedule: convert it for the lava-sim target first")
    graph = lowered(graph)  # the graph every target runs; the worker gets it as is
    s = graph.schedule
    check_lowering(graph)  # what emission would refuse
    if s.synapse_delay != 1:
        raise TargetError(f"the schedule models {s.synapse_delay} step(s) of synaptic delay; Lava's Dense and "
                          "Conv delay by 1", hint="Convert with target='lava-sim' (or synapse_delay=1)")
    unbalanced = [n for n in graph.nodes.values() if OPS[n.op].merge and n.name not in s.balance
                  and _branches_differ(graph, s, n)]
    if unbalanced:
        raise TargetError("merge branches are not delay-balanced", node=unbalanced[0].name, op=unbalanced[0].op,
                          hint="Convert with balance=True")
    return graph


class LavaExecutable:
    """``run(x, steps)`` streams all samples through one ``Network`` process (one build, one compile, one
    run) in ``Loihi2SimCfg`` and always stops the Lava runtime (errors and Ctrl-C included):
    a source holding each sample period's input -> Network -> ``RingBuffer`` sink per output. ``build_seconds`` /
    ``run_seconds`` time the last call (the run includes Lava's compilation)."""

    def __init__(self, graph: Graph, select_tag: str = "floating_pt", prestart: bool = False):
        graph = check_for_lava(graph)
        if select_tag == "fixed_pt" and not graph.meta.get("fixed_point"):
            raise TargetError("Lava's fixed_pt models need integer weights and thresholds",
                              hint="Convert with fixed_point=True (CLI: --fixed-point)")
        bit_accurate = next((n for n in graph.topo() if OPS[n.op].bit_accurate(n)), None)
        if select_tag == "floating_pt" and bit_accurate is not None:  # its float model would read du, dv as fractions
            raise TargetError("a fixed-point LIF runs on Lava's fixed_pt models only (its floating_pt model reads the "
                              "integer decays as fractions: other spikes)", node=bit_accurate.name, op="LIF",
                              hint="Compile with fixed_point=True (or leave it unset: the graph's own precision)")
        self.g, self.sched, self.select_tag = graph, graph.schedule, select_tag
        self.build_seconds = self.run_seconds = 0.0
        # ``prestart``: start the first run's worker now, so its imports overlap what the caller does next
        self._worker: Worker | None = take_worker() if prestart else None  # None while another one waits

    def run(self, x: np.ndarray, steps: int | None = None, early_stop: bool = False, record: bool = True,
            progress: Callable[[int], None] | None = None, timeout: float | None = None,
            record_layers: bool = False, batch: int | None = None) -> SimResult:
        """Run in a worker process of its own session: Lava's runtime (and every process it forks)
        is killed as a group if the run fails, hangs past ``timeout`` or is interrupted, so nothing
        is left behind. ``early_stop`` is ignored: Lava runs the fixed T; so is ``batch``: the samples
        stream through one process graph."""
        if record_layers:
            raise TargetError("per-layer records are kept by the reference target only (so far)",
                              hint="Run api.simulate(graph, x, record_layers=True) on target='reference'")
        from neurocompile import limits

        T = int(steps if steps is not None else self.sched.steps)
        Stream.plan(self.g, T)  # refuse here what the worker would
        x = np.asarray(x, dtype=np.float64)
        per_step_input(self.g, x, T)  # refuses a shape that fits neither input form
        self.sched.check_input(x)  # before Lava starts, not in the worker
        limits.check_work(self.g, len(x), T, "lava-sim")  # refuse hours of Lava before starting it
        budget = timeout if timeout is not None else 120.0 + 0.5 * len(x) * T * max(len(self.g.nodes), 1)
        job = {"graph": self.g, "x": x, "steps": T, "select_tag": self.select_tag}
        worker, self._worker = self._worker, None
        res = run_isolated(job, budget, progress, worker if worker is not None and worker.usable() else None)
        self.build_seconds, self.run_seconds, self.pgid = res["build_seconds"], res["run_seconds"], res["pgid"]
        return self._result(res, len(x), T, record)

    def run_here(self, x: np.ndarray, steps: int) -> dict:
        """The Lava run itself (in the worker): build, stream, read, always stop."""
        from lava.magma.core.run_conditions import RunSteps
        from lava.proc.io.sink import RingBuffer as Sink

        from neurocompile.targets.lava.lanes import max_lanes
        from neurocompile.targets.lava.processes.network import Network
        from neurocompile.targets.lava.processes.routing import HoldSource

        n = len(x)
        t0 = time.perf_counter()
        net = Network(self.g, steps=steps, n_samples=n, lanes=min(max_lanes(self.g), n))
        total = net.steps_for(n)
        per_step = per_step_input(self.g, x, steps)
        src = HoldSource(data=net.period_data(x, per_step), period=net.period, per_step=per_step)  # not one per step
        src.s_out.connect(net.inp)
        sinks = []
        for i in range(len(net.output_names)):
            port = net.out if i == 0 else getattr(net, f"out_{i}")
            sinks.append(Sink(shape=port.shape, buffer=total))
            port.connect(sinks[-1].a_in)
        build = time.perf_counter() - t0
        cfg = run_config(self.select_tag)
        t0 = time.perf_counter()
        try:
            done = 0
            while done < total:  # a few run calls: progress, and interrupts land between them
                chunk = min(total - done, max(net.period, total // 20))
                src.run(condition=RunSteps(num_steps=chunk), run_cfg=cfg)
                done += chunk
                print(f"progress {min(n * steps, done * n * steps // total)}", flush=True)
            hist = {t: k.data.get() for t, k in zip(net.output_names, sinks)}
            spikes = net.spikes()
        finally:
            src.stop()
        per_step = {t: net.per_step(h, n, i) for i, (t, h) in enumerate(hist.items())}
        return {"per_step": per_step, "spikes": spikes, "build_seconds": build,
                "run_seconds": time.perf_counter() - t0}

    def _result(self, res: dict, n: int, T: int, record: bool) -> SimResult:
        outputs = {t: ps[-1] for t, ps in res["per_step"].items()}
        first = next(iter(res["per_step"].values()))
        precision = "integers (Lava fixed_pt, bit-accurate)" if self.select_tag == "fixed_pt" else "float64 (Lava floating_pt)"
        return SimResult(outputs=outputs, steps=T, t_wake=self.sched.t_wake, per_step=first if record else None,
                         spikes=res["spikes"], precision=precision)


class Worker:
    """``python -m neurocompile.targets.lava.worker`` in a session of its own, started ahead of its job: it
    imports Lava, torch and the process models (about 2 s) while the caller converts and checks, then waits
    for ``run``. A worker that never runs is killed when it is garbage-collected or at exit; a worker whose
    parent dies kills its own session (see worker.py), so no path leaves a process behind."""

    def __init__(self) -> None:
        # mkdtemp, not TemporaryDirectory: the latter removes its folder whenever the object dies, in a forked copy
        # of this process too (at-fork, _forget_inherited drops it there); _discard removes it, in the owner only
        self._tmp = tmp = tempfile.mkdtemp(prefix="neurocompile-lava-")
        self.jpath, self.rpath = os.path.join(tmp, "job.pkl"), os.path.join(tmp, "result.pkl")
        self._errf = open(os.path.join(tmp, "stderr.txt"), "w+")  # a file, not a pipe: it never fills up
        self.owner = os.getpid()
        # cwd: its own folder, since ``-m`` puts the working folder first on sys.path, where a folder named
        # neurocompile (a copy of the sources, say) would hide the package this process runs
        self.proc = subprocess.Popen([sys.executable, "-m", "neurocompile.targets.lava.worker", self.jpath, self.rpath,
                                      str(os.getpid()), "--wait"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._errf, text=True, start_new_session=True, cwd=tmp)
        self.started_at = start_ticks(self.proc.pid)  # the worker's pid alone may name another process later
        self._finalizer = weakref.finalize(self, Worker._discard, self.proc, self._tmp, self._errf, self.owner,
                                           self.started_at)
        _IDLE.add(self)

    def usable(self) -> bool:
        """Still waiting for its job, and started by this process (not inherited through a fork)."""
        return self.owner == os.getpid() and self._finalizer.alive and self.proc.poll() is None

    @staticmethod
    def _discard(proc: subprocess.Popen, tmp: str, errf, owner: int,
                 started_at: int | None) -> None:
        if os.getpid() != owner:  # a forked copy of the owner: the worker is not ours to kill
            return
        try:
            if proc.stdin is not None and not proc.stdin.closed:
                proc.stdin.close()
        except OSError:
            pass
        _kill_session(proc, tmp, started_at)
        errf.close()
        shutil.rmtree(tmp, ignore_errors=True)

    def run(self, job: dict, timeout: float, progress: Callable[[int], None] | None) -> dict:
        """Run ``job``; kill the whole session on error, timeout or KeyboardInterrupt (the CLI turns SIGTERM
        and SIGHUP into one too). Returns the worker's result dict. One job per worker; a worker that ended
        before it took the job (it never ran any of it) is replaced by a fresh one, once."""
        try:
            return self._run(job, timeout, progress)
        except _NeverStarted:
            return Worker()._run(job, timeout, progress, retry=False)

    def _run(self, job: dict, timeout: float, progress: Callable[[int], None] | None, retry: bool = True) -> dict:
        proc = self.proc
        _IDLE.discard(self)
        started = False
        try:
            with open(self.jpath, "wb") as f:
                pickle.dump(job, f)
            try:
                proc.stdin.write("go\n")
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass  # the worker died while waiting: its exit status and stderr say why
            started = _wait_for(proc, timeout, progress)
        finally:
            _kill_session(proc, self._tmp, self.started_at)
        self._errf.seek(0)
        err = self._errf.read()
        try:
            if proc.returncode != 0 or not os.path.exists(self.rpath):
                last = [ln for ln in err.strip().splitlines() if ln.strip()][-1:]
                if not started and retry:
                    raise _NeverStarted()
                if last:
                    why = last[0]
                elif not started:
                    why = "the worker ended before it took the job, with no message"
                else:  # exit 0 and no result: its status was lost (reaped elsewhere) after a kill from outside
                    why = "the worker ended without a result and without a message (killed from outside?)"
                raise TargetError(f"the Lava run failed (exit {proc.returncode}): {why}")
            with open(self.rpath, "rb") as f:
                res = pickle.load(f)
        finally:
            self._finalizer()
        res["pgid"] = proc.pid
        return res


class _NeverStarted(Exception):
    """A worker ended before it took its job (nothing of the job ran): the job goes to a fresh worker."""


_warm: list[Worker] = []
_IDLE: "weakref.WeakSet[Worker]" = weakref.WeakSet()  # workers started and not run yet


def _forget_inherited() -> None:
    _warm.clear()
    _IDLE.clear()


os.register_at_fork(after_in_child=_forget_inherited)  # a forked child starts its own workers


def prestart() -> None:
    """Start a worker now for the next Lava run of this process (the CLI calls it before it converts); at most
    one waits at a time (each holds Lava and torch in memory)."""
    if not any(w.usable() for w in _IDLE):
        _warm.append(Worker())


def take_worker(start: bool = True) -> Worker | None:
    """The pre-started worker if one is usable; else a new one (``start``) or None."""
    while _warm:
        w = _warm.pop()
        if w.usable():
            return w
    if start and not any(w.usable() for w in _IDLE):
        return Worker()
    return None


def run_isolated(job: dict, timeout: float, progress: Callable[[int], None] | None,
                 worker: Worker | None = None) -> dict:
    """Run ``job`` in a worker process (``worker``, else a pre-started or new one); see :class:`Worker`."""
    return (worker or take_worker(start=False) or Worker()).run(job, timeout, progress)


def _wait_for(proc: subprocess.Popen, timeout: float, progress: Callable[[int], None] | None) -> bool:
    """Relay the worker's ``progress N`` lines until it closes stdout; TargetError past ``timeout``. True if the
    worker said it took the job (its ``started`` line)."""
    started = False
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TargetError(f"the Lava run did not finish within {timeout:.0f} s and was stopped",
                              hint="A process model may have failed; rerun with fewer samples to see")
        ready, _, _ = select.select([proc.stdout], [], [], min(left, 1.0))
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            started = started or line.strip() == STARTED
            if line.startswith("progress ") and progress:
                progress(int(line.split()[1]))
    try:
        proc.wait(timeout=max(deadline - time.monotonic(), 1))
    except subprocess.TimeoutExpired:
        raise TargetError(f"the Lava worker closed its output but did not exit within {timeout:.0f} s") from None
    return started


def _kill_session(proc: subprocess.Popen, tmp: str, started_at: int | None) -> None:
    """Kill the worker's session (Lava forks its process models into it; see worker.kill_session),
    reap the worker and remove multiprocessing's temp dir, which a killed worker leaves behind.

    A worker reaped before (``usable`` polls it) no longer holds its pid: once no process of its session is left,
    the kernel may give that pid to a new process, the leader of a session of its own (another worker, anyone's
    shell), which a kill by session id would hit. Its session is killed only while the pid is still the worker's or
    free (the worker's own processes, alive, keep a pid in use as their session id from being reused)."""
    from neurocompile.targets.lava.worker import kill_session, remove_mp_tempdir

    now = start_ticks(proc.pid)
    if proc.returncode is None or now is None or now == started_at:
        try:
            kill_session(proc.pid)
        except ProcessLookupError:  # killpg of a group that is gone already
            pass
    proc.wait()
    remove_mp_tempdir(tmp)
    for pipe in (proc.stdout, proc.stdin):
        if pipe is not None and not pipe.closed:
            try:
                pipe.close()
            except OSError:
                pass


def run_config(select_tag: str):
    """Loihi2SimCfg with lava's Conv (and, in floating point, Dense) mapped to neurocompile's models (float64; int32
    group counts; weight exponents applied)."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv

    from lava.proc.dense.process import Dense

    from neurocompile.targets.lava.processes.conv64 import (PyConvModelFixedWideGroups, PyConvModelFloat64,
                                                            PyDenseModelFloatExp)

    exceptions = ({Conv: PyConvModelFloat64, Dense: PyDenseModelFloatExp} if select_tag == "floating_pt"
                  else {Conv: PyConvModelFixedWideGroups})
    return Loihi2SimCfg(select_tag=select_tag, exception_proc_model_map=_ModelTable({**_models(select_tag),
                                                                                      **exceptions}))


class _ModelTable(dict):
    """Process class -> ProcessModel class that also answers for a Process instance. lava's compiler asks the run
    config's exception map with the instance; without an answer it re-executes every module in the process's
    directory to search for models, once per process (about half of a small network's compile time)."""

    def __contains__(self, key) -> bool:
        return dict.__contains__(self, key if isinstance(key, type) else type(key))

    def __getitem__(self, key):
        return dict.__getitem__(self, key if isinstance(key, type) else type(key))


# the modules holding the models of every Process the Lava target builds (lava's own and neurocompile's)
_MODEL_MODULES = ("lava.proc.conv.models", "lava.proc.dense.models", "lava.proc.lif.models", "lava.proc.io.source",
                  "lava.proc.io.sink", "neurocompile.targets.lava.processes.neurons",
                  "neurocompile.targets.lava.processes.routing", "neurocompile.targets.lava.processes.pooling")


def _models(select_tag: str) -> dict:
    """Each Process class -> its first Python model tagged ``select_tag`` in definition order, lava's own rule (a
    subclass inherits its parent's tags: a fixed-point model derived from a float one carries both, and lava takes
    the float one, defined first)."""
    import importlib

    from lava.magma.core.model.py.model import PyLoihiProcessModel

    found: dict = {}
    for name in _MODEL_MODULES:
        for obj in vars(importlib.import_module(name)).values():
            proc = getattr(obj, "implements_process", None)
            if (isinstance(obj, type) and issubclass(obj, PyLoihiProcessModel) and proc is not None
                    and select_tag in getattr(obj, "tags", ()) and obj.__module__ == name):
                found.setdefault(proc, obj)
    return found


def _branches_differ(g: Graph, s: WakeSleepSchedule, n) -> bool:
    prod = g.producers()
    arr = {s.lag(prod[t].name) for t in n.inputs}
    return len(arr) > 1
