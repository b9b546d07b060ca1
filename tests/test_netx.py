"""lava-dl netx export: a fixed-point LIF student written as netx HDF5, loaded by lava-dl's own
``netx.hdf5.Network`` and run on Lava's fixed_pt models, spikes layer by layer as neurocompile's reference
simulator (== neurocompile's own Lava emission, tests/targets/test_fixed_point.py), bit for bit."""
import numpy as np
import pytest
import torch
from lava.lib.dl import netx
from lava.magma.core.run_configs import Loihi2SimCfg
from lava.magma.core.run_conditions import RunSteps
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source
from sklearn.datasets import load_digits
from torch import nn

from neurocompile import api
from neurocompile.errors import ConversionError
from neurocompile.exporters.netx import write_netx
from neurocompile.targets.lava.emit import from_lava, to_lava
from neurocompile.torch import export_onnx
from neurocompile.torch.modules import LIF

T = 4


class _Student(nn.Module):
    """A feed-forward LIF student: what netx holds (the export runs one step; T goes to the metadata)."""

    def __init__(self, layers):
        super().__init__()
        self.layers, self.time_steps = nn.Sequential(*layers), T

    def forward(self, x):
        return self.layers(x)


def _student(kind: str, tmp_path):
    torch.manual_seed(0)
    if kind == "mlp":
        layers = [nn.Flatten(), nn.Linear(64, 32), LIF(0.25, 0.5), nn.Linear(32, 16), LIF(0.25, 0.5), nn.Linear(16, 10)]
    else:
        layers = [nn.Conv2d(1, 4, 3, padding=1), LIF(0.25, 0.5), nn.Conv2d(4, 8, 3, stride=2, padding=1),
                  LIF(0.25, 0.5), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)]
    model = _Student(layers).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                m.weight.mul_(2.0)  # every layer fires
    return export_onnx(model, torch.zeros(2, 1, 8, 8), tmp_path / f"{kind}.onnx")


def _digits(n):
    return (load_digits().images[:n] / 16.0)[:, None]


def _run_netx(path, q, x):
    """Stream ``x`` through lava-dl's Network: (spikes per layer (steps, W, H, C) or (steps, F), readout v)."""
    net = netx.hdf5.Network(net_config=str(path), reset_interval=T, reset_offset=1, input_message_bits=8)
    n = len(x)
    steps = n * T + len(net.layers)  # until the last sample's readout window ends
    cur = q.schedule.encode_input(x)
    # a first conv takes (W, H, C); a first dense the C-order flat vector (netx flattens between layers only)
    frame = (lambda c: to_lava(c)) if len(net.inp.shape) == 3 else (lambda c: c.reshape(-1))
    data = np.stack([frame(cur[k]) for k in range(n) for _ in range(T)] +
                    [np.zeros(net.inp.shape)] * (steps - n * T), axis=-1)
    src = Source(data=data)
    src.s_out.connect(net.inp)
    sinks = []
    for layer in net.layers:
        sink = Sink(shape=layer.out.shape, buffer=steps)
        layer.out.connect(sink.a_in)
        sinks.append(sink)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = [np.moveaxis(s.data.get(), -1, 0) for s in sinks]
        v = net.layers[-1].neuron.v.get()
    finally:
        net.stop()
    return spikes, v


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_netx_runs_the_student_spike_for_spike(tmp_path, kind):
    q = api.convert(api.load(_student(kind, tmp_path)), target="lava-sim", fixed_point=True)
    layers = write_netx(q, tmp_path / "student.net")
    assert [l.type for l in layers][0] == "input" and layers[-1].type == "dense"
    x = _digits(3)
    ref = api.simulate(q, x, record_layers=True, exact=True)
    spikes, v = _run_netx(tmp_path / "student.net", q, x)
    lif = [n.name for n in q.topo() if n.op == "LIF"]
    assert len(spikes) == len(lif) + 1  # the LIF layers and the readout layer (which never fires)
    for i, name in enumerate(lif):  # layer i's window for sample k: Lava steps k T + 2 + i .. k T + T + 1 + i
        per_step = np.diff(ref.layers[name], axis=0, prepend=0)  # (steps, N, ...) in IR layout
        assert per_step.sum() > 0
        for k in range(len(x)):
            got = spikes[i][k * T + 1 + i: k * T + T + 1 + i]  # 0-based index of Lava step k T + 2 + i
            want = per_step[1 + i: T + 1 + i, k]
            np.testing.assert_array_equal(from_lava(got, 1), want, err_msg=f"{name}, sample {k}")
    assert not spikes[-1].any()
    # the readout neuron's membrane holds 64 x the readout sum of the last sample
    s = q.schedule
    np.testing.assert_array_equal(v, 64 * np.round(ref.output[-1] * s.t_wake * s.readout_scale))


def test_netx_refuses_what_it_cannot_hold(tmp_path, onnx_model):
    path, _ = onnx_model("resnet", "cqrelu", "bn", 4)
    q = api.convert(api.load(path), target="lava-sim", fixed_point=True)
    with pytest.raises(ConversionError) as info:
        write_netx(q, tmp_path / "resnet.net")
    assert info.value.node and "neurocompile export" in (info.value.hint or "")
    assert not (tmp_path / "resnet.net").exists()
    float_student = api.convert(api.load(_student("mlp", tmp_path)), target="lava-sim")
    with pytest.raises(ConversionError, match="fixed-point"):
        write_netx(float_student, tmp_path / "float.net")


def test_cli_exports_netx_and_refuses_an_ann(tmp_path):
    from tests.test_cli import cli

    out = tmp_path / "student.net"
    r = cli("export", _student("mlp", tmp_path), "--format", "netx", "-o", out)
    assert r.returncode == 0, r.stderr
    assert f"wrote {out}" in r.stdout and "reset_interval=4, reset_offset=1" in r.stdout and out.exists()
    assert netx.hdf5.Network(net_config=str(out), reset_interval=T, reset_offset=1, input_message_bits=8).layers
    r = cli("export", "examples/digits_cqrelu.onnx", "--format", "netx", "-o", tmp_path / "ann.net")
    assert r.returncode == 1 and "netx holds feed-forward LIF students" in r.stderr
    assert "Traceback" not in r.stderr and not (tmp_path / "ann.net").exists()


def test_netx_refuses_dense_weights_it_would_load_differently():
    """All-negative weights whose smallest is -128: lava-dl scales them to -256, lava's Dense clips to -255."""
    from neurocompile.ir import Node
    from neurocompile.exporters.netx import _check_netx_dense

    _check_netx_dense(Node("d", "Dense", ["x"], "y"), np.array([[126.0, -128.0], [2.0, 0.0]]))  # mixed: exact
    with pytest.raises(ConversionError, match="differently"):
        _check_netx_dense(Node("d", "Dense", ["x"], "y"), np.array([[-128.0, -64.0], [-2.0, 0.0]]))
