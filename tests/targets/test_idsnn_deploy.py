"""IDSNN students deploy spike for spike: torch == reference simulator (500 images) == lava-sim (20)."""
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from neurocompile import api
from neurocompile.torch import export_onnx, spiking_resnet
from neurocompile.torch.modules import LIF


def _student(T: int):
    torch.manual_seed(0)
    s = spiking_resnet(None, 10, 1, 8, blocks=(1, 1), time_steps=T).eval()
    g = torch.Generator().manual_seed(1)
    for m in s.modules():  # BN statistics that make every layer fire
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.2 + 0.1)
    return s


def _torch_run(student, x):
    """Output and spikes per LIF layer (in execution order), from forward hooks."""
    counts = []
    hooks = [m.register_forward_hook(lambda mod, i, o: counts.append(int(o.sum().item())))
             for m in student.modules() if isinstance(m, LIF)]
    with torch.no_grad():
        out = student(torch.tensor(x)).numpy()
    for h in hooks:
        h.remove()
    return out, counts


def _digits(n):
    return (load_digits().images[:n] / 16.0).astype(np.float32)[:, None]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    student = _student(T=4)
    path = export_onnx(student, torch.zeros(2, 1, 8, 8), tmp_path_factory.mktemp("idsnn") / "student.onnx")
    return student, path


def _layer_counts(res, snn):
    return [res.spikes[n.name]["pos"] for n in snn.topo() if n.op == "LIF"]


@pytest.mark.parametrize("target", ["reference", "lava-sim"])
def test_student_runs_spike_for_spike(exported, target):
    student, path = exported
    x = _digits(500 if target == "reference" else 20)
    want, want_counts = _torch_run(student, x)
    snn = api.convert(api.load(path), target=target)
    assert snn.schedule.t_wake == 4 and snn.schedule.synapse_delay == (1 if target == "lava-sim" else 0)
    res = api.compile(snn, target).run(x)
    assert all(c > 0 for c in want_counts)
    assert _layer_counts(res, snn) == want_counts
    np.testing.assert_allclose(res.output, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(res.output.argmax(1), want.argmax(1))
