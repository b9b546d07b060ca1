"""export_onnx: CQReLU as a custom node or a standard-op chain, spiking nodes per step, metadata,
and the round trip through neurocompile's importer, interpreter and reference simulator."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.frontends.onnx.importer import load_onnx
from neurocompile.passes import optimize_pipeline, run_passes
from neurocompile.passes.recognize_cqrelu import recognize_cqrelu
from neurocompile.passes.schedule_wake_sleep import schedule_wake_sleep
from neurocompile.ir.schedule import WakeSleepSchedule
from neurocompile.targets.reference.simulator import ReferenceSimulator
from neurocompile.torch import (CIF, IF, LIF, CQReLU, TimeDistributed, export_onnx, replace_relu, resnet,
                                spiking_resnet)
from neurocompile.torch.modules import chain_clip_bound
from tests.conftest import rel_err


def _randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1 + 0.1)
    return model.eval()


def cqrelu_cnn(levels=8, clip=1.0, seed=0):
    torch.manual_seed(seed)

    def block(a, b):
        return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), CQReLU(levels, clip)]

    return _randomize_bn(nn.Sequential(*block(1, 6), nn.MaxPool2d(2), *block(6, 8), nn.AvgPool2d(2), nn.Flatten(),
                                       nn.Linear(8 * 2 * 2, 10)), seed)


def _x(n=16, seed=0):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * 1.5


def _ort(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]


def _nodes(path):
    return [(n.domain, n.op_type) for n in onnx.load(str(path)).graph.node]


@pytest.mark.parametrize("fold_bn", [False, True])
def test_custom_cqrelu_export_imports_and_matches_torch(tmp_path, fold_bn):
    model, x = cqrelu_cnn(levels=8, clip=1.0), _x()
    path = export_onnx(model, x[:2], tmp_path / "m.onnx", fold_bn=fold_bn)
    proto = onnx.load(path)
    cq = [n for n in proto.graph.node if n.op_type == "CQReLU"]
    assert len(cq) == 2 and all(n.domain == "neurocompile" for n in cq)
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in cq[0].attribute}
    assert attrs == {"levels": 8, "clip": 1.0}
    assert any(n.op_type == "BatchNormalization" for n in proto.graph.node) != fold_bn
    assert not proto.metadata_props  # not spiking, no time_steps: no time metadata

    g = load_onnx(path)
    assert [n.attrs for n in g.nodes.values() if n.op == "CQReLU"] == [{"levels": 8, "clip": 1.0, "shift": 0.0}] * 2
    with torch.no_grad():
        want = model(x).numpy()
    assert rel_err(interpreter.run1(g, x.numpy(), "float64"), want) <= 1e-5
    assert np.all(want != 0)


def test_chain_export_runs_in_onnxruntime_and_is_recognized(tmp_path):
    L, lam = 8, 0.22819548845291138  # λ * float32(L/λ) < L in float32: the Clip bound must be nudged
    assert chain_clip_bound(L, lam) > float(np.float32(lam))
    model, x = cqrelu_cnn(levels=L, clip=lam, seed=1), _x(seed=1)
    path = export_onnx(model, x[:2], tmp_path / "chain.onnx", cqrelu="chain")
    ops = _nodes(path)
    assert all(d in ("", "ai.onnx") for d, _ in ops)
    assert [o for _, o in ops].count("Floor") == 2
    with torch.no_grad():
        want = model(x).numpy()
        top = model[:3](x)  # the first CQReLU's output reaches level L: the chain must reach it too
    assert torch.isclose(top.max(), torch.tensor(model[2].clip))
    assert rel_err(_ort(path, x), want) <= 1e-6

    g = run_passes(load_onnx(path), [*optimize_pipeline(), recognize_cqrelu])
    cq = [n.attrs for n in g.nodes.values() if n.op == "CQReLU"]
    assert len(cq) == 2 and all(a["levels"] == L and abs(a["clip"] - lam) < 1e-6 for a in cq)
    assert rel_err(interpreter.run1(g, x.numpy(), "float64"), want) <= 1e-5


def test_cqrelu_resnet_export_converts_losslessly(tmp_path):
    """A CQReLU teacher written by the kit goes through the CASC pipeline and its spiking network
    reproduces the torch model's logits (residual Adds included)."""
    torch.manual_seed(0)
    teacher = _randomize_bn(replace_relu(resnet(None, 10, 1, 4, blocks=(1, 1)), levels=4, clip=1.0))
    x = _x(8, seed=3)
    snn = api.convert(api.load(export_onnx(teacher, x[:2], tmp_path / "t.onnx")), neuron="cif")
    res = api.simulate(snn, x.numpy(), exact=True)
    with torch.no_grad():
        want = teacher(x).numpy()
    assert rel_err(res.output, want) <= 1e-5


def test_chain_clip_bound_reaches_every_level_in_float32():
    x = torch.linspace(-0.5, 5.0, 200001)
    for lam in np.linspace(0.05, 4, 40):
        for L in (2, 3, 5, 7, 8, 16):
            lam32 = float(np.float32(lam))
            b, r = chain_clip_bound(L, lam32), float(np.float32(L / lam32))
            assert lam32 <= b and L <= b * r < L + 1
            chain = torch.floor(torch.clamp(x, 0.0, b) * r)
            assert torch.equal(chain, torch.clamp(torch.floor(x * r), 0, L))


class StepNet(nn.Module):
    """A spiking MLP on (T, N, 16) built from the kit's pieces, with IF, CIF and LIF."""

    time_steps = 8

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(TimeDistributed(nn.Linear(16, 12)), IF(0.75), TimeDistributed(nn.Linear(12, 12)),
                                  CIF(0.5, levels=8, gamma=2), TimeDistributed(nn.Linear(12, 8)), LIF(0.5, 0.25),
                                  TimeDistributed(nn.Linear(8, 3)))

    def forward(self, x):
        return self.body(x)


def test_spiking_nodes_export_per_step_and_import(tmp_path):
    path = export_onnx(StepNet(), torch.rand(2, 16), tmp_path / "s.onnx", encoding="rate")
    proto = onnx.load(path)
    custom = {n.op_type: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
              for n in proto.graph.node if n.domain == "neurocompile"}
    assert custom == {"IF": {"threshold": 0.75}, "CIF": {"threshold": 0.5, "levels": 8, "gamma": 2},
                      "LIF": {"beta": 0.5, "threshold": 0.25}}
    assert {p.key: p.value for p in proto.metadata_props} == {"neurocompile.time_steps": "8",
                                                              "neurocompile.encoding": "rate"}
    assert [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim] == ["N", ""]  # (N, 16): one step
    g = load_onnx(path)
    g.validate()
    assert {n.op: n.attrs for n in g.nodes.values() if n.op in ("IF", "CIF", "LIF")} == {
        "IF": {"threshold": 0.75, "levels": 8}, "CIF": {"threshold": 0.5, "levels": 8, "gamma": 2},
        "LIF": {"beta": 0.5, "threshold": 0.25}}
    assert g.meta["time_steps"] == 8 and g.meta["encoding"] == "rate"
    assert g.shapes[g.outputs[0]] == (3,)


@pytest.mark.parametrize("T", [1, 4])
@pytest.mark.parametrize("fold_bn", [False, True])
def test_spiking_student_export_simulates_like_torch(tmp_path, T, fold_bn):
    """The exported one-step graph, run for T steps by the reference simulator with input and biases on
    every step (no sleep) and the readout averaged over T, reproduces the torch student's output."""
    torch.manual_seed(0)
    student = _randomize_bn(spiking_resnet(None, 10, 1, 4, blocks=(1, 1), time_steps=T))
    x = _x(16, seed=2)
    path = export_onnx(student, x[:2], tmp_path / "student.onnx", fold_bn=fold_bn)
    ops = [o for _, o in _nodes(path)]
    assert ops.count("LIF") == 5 and ("BatchNormalization" in ops) != fold_bn
    g = run_passes(load_onnx(path), optimize_pipeline())
    assert g.meta["time_steps"] == T and g.meta["encoding"] == "direct"
    g.schedule = WakeSleepSchedule(t_wake=T, steps=T, sleep=False, inputs=[n.name for n in g.input_nodes]).to_dict()
    res = ReferenceSimulator(g, dtype="float64").run(x.numpy())
    with torch.no_grad():
        want = student(x).numpy()
    assert rel_err(res.output, want) <= 1e-5
    assert sum(c["pos"] for c in res.spikes.values()) > 0


def test_spiking_student_with_synapse_delays_needs_gated_biases(tmp_path):
    """With Lava's one-step synaptic delay the same export still matches torch when biases are gated to
    each layer's data window [arrival, arrival + T) and residual branches are balanced: exactly what
    schedule_wake_sleep(t_wake=T, synapse_delay=1) plans (its T + depth steps include a few spare ones,
    harmless: silent LIF layers stay silent). Input and biases on for all those steps (sleep=False) drive
    the neurons outside their window and break the match."""
    T = 4
    torch.manual_seed(0)
    student = _randomize_bn(spiking_resnet(None, 10, 1, 4, blocks=(1, 1), time_steps=T))
    x = _x(16, seed=2)
    g = run_passes(load_onnx(export_onnx(student, x[:2], tmp_path / "student.onnx")), optimize_pipeline())
    g = schedule_wake_sleep(g, t_wake=g.meta["time_steps"], synapse_delay=1)
    assert g.schedule.balance  # the residual Adds get delay lines
    with torch.no_grad():
        want = student(x).numpy()
    assert rel_err(ReferenceSimulator(g, dtype="float64").run(x.numpy()).output, want) <= 1e-5
    g.schedule = {**g.schedule.to_dict(), "sleep": False}  # input and biases on every step
    assert rel_err(ReferenceSimulator(g, dtype="float64").run(x.numpy()).output, want) > 0.1


def test_export_restores_mode_and_validates_arguments(tmp_path):
    model = cqrelu_cnn().train()
    export_onnx(model, _x(2), tmp_path / "a.onnx")
    assert model.training
    with pytest.raises(ValueError, match="encoding"):
        export_onnx(model, _x(2), tmp_path / "b.onnx", encoding="poisson-ish")
    with pytest.raises(ValueError, match="cqrelu"):
        export_onnx(model, _x(2), tmp_path / "b.onnx", cqrelu="fused")
    net = nn.Sequential(TimeDistributed(nn.Linear(4, 4)), LIF())
    with pytest.raises(ValueError, match="time_steps"):
        export_onnx(net, torch.rand(2, 4), tmp_path / "c.onnx")
    with pytest.raises(ValueError, match="time_steps"):
        export_onnx(net, torch.rand(2, 4), tmp_path / "c.onnx", time_steps=0)
    with pytest.raises(RuntimeError, match="export_onnx"):  # a plain export would unroll time
        torch.onnx.export(net, (torch.rand(3, 2, 4),), str(tmp_path / "d.onnx"))
