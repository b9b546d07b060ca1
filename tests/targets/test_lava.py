"""Lava target: Loihi2SimCfg readout == reference simulator (same delay model) at every step."""
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.errors import TargetError
from tests.conftest import ort_run

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def _live_members(pgid: int) -> list[int]:
    """Processes of the group that are still running (zombies waiting for init to reap them are dead)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(stat[2]) == pgid and stat[0] != "Z":
            out.append(int(pid))
    return out


def _gone(pgid: int, wait: float = 10.0) -> bool:
    deadline = time.monotonic() + wait
    while _live_members(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
@pytest.mark.parametrize("levels", [4, 8])
def test_lava_equals_reference_every_step(onnx_model, arch, levels):
    path, shape = onnx_model(arch, "cqrelu", "bn", levels)
    snn = api.convert(api.load(path), target="lava-sim")
    assert snn.schedule.synapse_delay == 1
    x = np.random.default_rng(5).uniform(0, 1.5, (3, *shape)).astype(np.float32)
    ref = api.simulate(snn, x, exact=True)
    exe = api.compile(snn, "lava-sim")
    res = exe.run(x)
    scale = np.abs(ref.per_step).max()
    assert res.per_step.shape == ref.per_step.shape
    assert np.abs(res.per_step - ref.per_step).max() <= 1e-6 * scale
    assert res.spikes == ref.spikes
    ann = ort_run(path, x)
    np.testing.assert_array_equal(res.output.argmax(1), ann.argmax(1))
    assert np.abs(res.output - interpreter.run1(snn, x, "float64")).max() <= 1e-9 * np.abs(ann).max()
    assert _gone(exe.pgid), "Lava left processes behind"


@pytest.mark.parametrize("arch", ["mlp", "vgg"])
def test_lava_takes_an_input_per_step_as_the_reference_does(onnx_model, arch):
    """x of shape (N, T_x, ...): each step's own input (spiking input), on Lava as on the reference simulator, three
    samples streamed through one process graph."""
    path, shape = onnx_model(arch, "cqrelu", "bn", 4)
    snn = api.convert(api.load(path), target="lava-sim")
    frames = np.random.default_rng(6).uniform(0, 1.5, (3, snn.schedule.t_wake, *shape))
    frames[:, 1] = 0  # a silent step
    ref = api.simulate(snn, frames, exact=True)
    res = api.compile(snn, "lava-sim").run(frames)
    assert res.spikes == ref.spikes
    assert np.abs(res.per_step - ref.per_step).max() <= 1e-6 * np.abs(ref.per_step).max()
    held = api.simulate(snn, frames[:, 0], exact=True)
    assert held.spikes != ref.spikes  # not the first frame held


def test_digits_example_is_lossless_on_lava():
    x = np.load(os.path.join(EXAMPLES, "digits_test.npy"))
    y = np.load(os.path.join(EXAMPLES, "digits_test_labels.npy"))
    path = os.path.join(EXAMPLES, "digits_cqrelu.onnx")
    snn = api.convert(api.load(path), target="lava-sim")
    res = api.compile(snn, "lava-sim").run(x)
    ann, _ = api.ann_outputs(path, x)
    assert (res.output.argmax(1) == y).mean() == (ann.argmax(1) == y).mean() >= 0.95
    assert np.abs(res.output - ann).max() <= 1e-5 * np.abs(ann).max()


def test_hung_run_is_killed_without_orphans(onnx_model):
    path, shape = onnx_model("mlp", "cqrelu", "bn", 4)
    exe = api.compile(api.convert(api.load(path), target="lava-sim"), "lava-sim")
    x = np.zeros((2, *shape), np.float32)
    with pytest.raises(TargetError, match="did not finish"):
        exe.run(x, timeout=0.5)  # the worker cannot even import Lava in half a second


def test_schedule_must_model_lavas_delay(onnx_model):
    path, _ = onnx_model("mlp", "cqrelu", "bn", 4)
    with pytest.raises(TargetError, match="synaptic delay"):
        api.compile(api.convert(api.load(path)), "lava-sim")  # converted for the reference target


def test_cli_lava_sim_runs_one_bundled_sample():
    r = subprocess.run([sys.executable, "-m", "neurocompile.cli", os.path.join(EXAMPLES, "digits_cqrelu.onnx"),
                        "--target", "lava-sim", "--quiet"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "1 bundled digits test image" in r.stdout and "argmax agreement 100.0 %" in r.stdout
    snn_pred = r.stdout.split("SNN pred")[1].split("\n")[0].strip()
    ann_pred = r.stdout.split("ANN pred")[1].split("\n")[0].strip()
    assert snn_pred == ann_pred == "[6]"


def test_workers_start_ahead_one_at_a_time_and_never_outlive_their_executable():
    """api.compile starts the run's worker (Lava and torch import while the caller goes on); a second compile
    while one waits starts none (each holds hundreds of MB); a discarded executable's worker is killed."""
    import gc

    from neurocompile.targets.lava import run as lava_run

    snn = api.convert(api.load(os.path.join(EXAMPLES, "digits_cqrelu.onnx")), target="lava-sim")
    x = np.load(os.path.join(EXAMPLES, "digits_test.npy"))[:2]
    a, b = api.compile(snn, "lava-sim"), api.compile(snn, "lava-sim")
    waiting = [w for w in lava_run._IDLE if w.usable()]
    assert len(waiting) == 1 and a._worker is waiting[0] and b._worker is None
    proc = waiting[0].proc
    ref = api.simulate(snn, x, exact=True)
    assert np.abs(b.run(x).output - ref.output).max() <= 1e-9 * np.abs(ref.output).max()  # b starts its own
    del a, waiting
    gc.collect()
    assert proc.poll() is not None and not any(w.usable() for w in lava_run._IDLE)
