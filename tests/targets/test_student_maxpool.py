"""A LIF student's max pooling (ops.StepMaxPool): each step the max of each window of that step's values, as its
PyTorch module computes every step; torch (a hand loop in float64) == reference simulator == lava-sim, and fixed
point on Lava == fixed point on the reference simulator."""
import numpy as np
import pytest
import torch
from torch import nn

from neurocompile import api
from neurocompile.ir import neurons
from neurocompile.errors import TargetError
from neurocompile.torch import export_onnx
from neurocompile.torch.modules import LIF

T = 5


class _Student(nn.Module):
    """conv1 -> LIF -> max pool of its spikes (2x2) -> conv2 -> max pool of the currents (3x3, stride 2, padding 1,
    ceil_mode: overlapping, padded windows; conv2's bias reaches the pool) -> LIF -> fc."""

    def __init__(self):
        super().__init__()
        self.c1, self.l1, self.p1 = nn.Conv2d(1, 4, 3, padding=1), LIF(0.5, 0.5), nn.MaxPool2d(2)
        self.c2, self.p2 = nn.Conv2d(4, 6, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)
        self.l2, self.flat, self.fc = LIF(0.6, 0.4), nn.Flatten(), nn.Linear(6 * 3 * 3, 3)

    def forward(self, x):  # one time step (what export_onnx traces)
        return self.fc(self.flat(self.l2(self.p2(self.c2(self.p1(self.l1(self.c1(x))))))))


def _student() -> _Student:
    torch.manual_seed(0)
    s = _Student().eval()
    with torch.no_grad():
        s.c1.weight.mul_(2.0)
        s.c2.bias.add_(torch.linspace(-0.3, 0.3, 6))
    return s.double()


def _torch_run(s: _Student, x: np.ndarray):
    """The student over T steps of the held input, in float64: the mean output and the spikes of each LIF."""
    x = torch.as_tensor(x, dtype=torch.float64)
    u1 = u2 = 0.0
    outs, n1, n2 = [], 0, 0
    with torch.no_grad():
        for _ in range(T):
            f1, u1 = neurons.lif_step(u1, s.c1(x), s.l1.beta, s.l1.threshold)
            f2, u2 = neurons.lif_step(u2, s.p2(s.c2(s.p1(f1))), s.l2.beta, s.l2.threshold)
            outs.append(s.fc(s.flat(f2)))
            n1, n2 = n1 + int(f1.sum()), n2 + int(f2.sum())
    return torch.stack(outs).mean(0).numpy(), [n1, n2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    s = _student()
    path = export_onnx(s.float(), torch.zeros(2, 1, 8, 8), tmp_path_factory.mktemp("pool") / "student.onnx",
                       time_steps=T)
    return s.double(), path


def test_student_max_pools_run_spike_for_spike_on_both_targets(exported):
    s, path = exported
    x = np.random.default_rng(0).uniform(0, 1, (6, 1, 8, 8)).astype(np.float32).astype(np.float64)
    want, want_counts = _torch_run(s, x)
    assert all(c > 0 for c in want_counts), want_counts
    for target in ("reference", "lava-sim"):
        snn = api.convert(api.load(path), target=target)
        assert [n.op for n in snn.topo()].count("StepMaxPool") == 2
        res = api.compile(snn, target).run(x[:3] if target == "lava-sim" else x)
        counts = [res.spikes[n.name]["pos"] for n in snn.topo() if n.op == "LIF"]
        if target == "reference":
            assert counts == want_counts
            np.testing.assert_allclose(res.output, want, rtol=1e-5, atol=1e-6)  # float32 weights against float64
            ref3 = api.simulate(api.convert(api.load(path)), x[:3], exact=True)
        else:
            assert res.spikes == ref3.spikes, (res.spikes, ref3.spikes)
            np.testing.assert_allclose(res.output, ref3.output, rtol=1e-9, atol=1e-12)
    print("student max pools, spikes per LIF layer:", want_counts)


def test_student_max_pools_in_fixed_point_on_lava_equal_the_reference(exported):
    _, path = exported
    x = np.random.default_rng(1).uniform(0, 1, (3, 1, 8, 8))
    q = api.convert(api.load(path), target="lava-sim", fixed_point=True)
    ref = api.simulate(q, x, exact=True)
    lava = api.compile(q, "lava-sim").run(x)  # the graph's own precision: Lava's fixed_pt models
    with pytest.raises(TargetError, match="fixed_pt models only") as info:  # whose float models give other spikes
        api.compile(q, "lava-sim", fixed_point=False)
    assert (info.value.node, info.value.op) == ("/l1/LIF", "LIF")
    assert lava.spikes == ref.spikes and all(c["pos"] > 0 for c in ref.spikes.values()), (lava.spikes, ref.spikes)
    np.testing.assert_array_equal(lava.output, ref.output)
