"""snnTorch's own NIR export of a residual block, traced by nirtorch 2.x's torch.fx tracer, runs spike for spike.

snnTorch 1.0.0's ``export_to_nir`` traces with nirtorch's deprecated ``extract_nir_graph``, which sees module calls
only (``nirtorch.graph.GraphTracer`` wraps ``nn.Module.__call__``): the ``+`` of a skip connection is a tensor op, so
the sum it makes has no producer and the branch's last connection no consumer. The export then wires that connection
to the Output, and nir's ``infer_types`` gives the neuron after the add an Input of its own ("input_lif2"): the skip
edge and the block's output are gone (:func:`test_export_to_nir_drops_the_residual_add` pins this).

``nirtorch.torch_to_nir`` (torch.fx) treats the add as a bypass node: each of its inputs gets an edge to the add's
users, so the neuron after the block has the two fan-in edges that are NIR's sum. Its module map is snnTorch's own
per-module exporter (``snntorch.export_nir._extract_snntorch_module``, what ``export_to_nir`` maps each module with);
``snn.Leaky`` returns (spk, mem) and is named a stateful module (index 0 is the signal, the state is dropped). The
trace is symbolic (no sample data), so a net that starts with a convolution gets its Input type before
``infer_types``, as ``export_to_nir`` gets it from its sample.

Exactness as in tests/test_nir.py: float64 on both sides; spikes compared per layer and step after checking that no
snnTorch membrane comes within MARGIN of its threshold.
"""
from __future__ import annotations

import json

import numpy as np
import torch

import nir
from neurocompile import api, cli
from neurocompile.frontends.nir import load_nir
from tests.test_nir import MARGIN, _compare_layers, _write

T = 8
SHAPE = (1, 6, 6)


def _leaky(shape, beta, thr, init_hidden):
    import snntorch as snn

    # per-neuron tensors: snnTorch's exporter writes a scalar as shape (), which nir's type check refuses for a conv
    # layer; reset to zero (what NIR's v_reset = 0 means; NIR cannot express snnTorch's default subtraction)
    return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, thr), reset_mechanism="zero",
                     init_hidden=init_hidden)


class ResidualNet(torch.nn.Module):
    """conv1 -> lif1 -> [conv2, plus lif1's spikes: the skip] -> lif2 -> flat -> fc -> lif3, one time step a call."""

    def __init__(self, init_hidden: bool = False):
        super().__init__()
        self.init_hidden = init_hidden
        self.conv1 = torch.nn.Conv2d(1, 2, 3, padding=1)
        self.lif1 = _leaky((2, 6, 6), 0.9, 1.0, init_hidden)
        self.conv2 = torch.nn.Conv2d(2, 2, 3, padding=1)
        self.lif2 = _leaky((2, 6, 6), 0.8, 0.8, init_hidden)
        self.flat = torch.nn.Flatten()
        self.fc = torch.nn.Linear(72, 4)
        self.lif3 = _leaky((4,), 0.7, 1.0, init_hidden)

    def forward(self, x):
        if self.init_hidden:  # the modules return their spikes
            s1 = self.lif1(self.conv1(x))
            s2 = self.lif2(self.conv2(s1) + s1)
            return self.lif3(self.fc(self.flat(s2)))
        s1, _ = self.lif1(self.conv1(x))
        s2, _ = self.lif2(self.conv2(s1) + s1)
        s3, _ = self.lif3(self.fc(self.flat(s2)))
        return s3


def _net(init_hidden: bool = False) -> ResidualNet:
    torch.manual_seed(0)
    net = ResidualNet(init_hidden)
    with torch.no_grad():
        net.conv1.weight.mul_(4.0)
        net.conv1.bias.add_(0.5)
        net.conv2.weight.mul_(2.0)
        net.fc.weight.mul_(8.0)
        net.fc.bias.add_(0.2)
    return net


def export(net: torch.nn.Module, input_shape=SHAPE) -> nir.NIRGraph:
    """The route: nirtorch's fx tracer with snnTorch's per-module mapper."""
    import nirtorch
    import snntorch as snn
    from snntorch.export_nir import _extract_snntorch_module

    mapped = (torch.nn.Conv2d, torch.nn.Linear, torch.nn.AvgPool2d, torch.nn.Flatten, snn.Leaky, snn.Synaptic)
    g = nirtorch.torch_to_nir(net, {cls: _extract_snntorch_module for cls in mapped}, default_dict={},
                              type_check=False, stateful_modules={snn.Leaky, snn.Synaptic})
    inputs = [k for k, v in g.nodes.items() if isinstance(v, nir.Input)]
    assert len(inputs) == 1
    g.nodes[inputs[0]] = nir.Input(input_type=np.array(input_shape))
    g.infer_types()
    g.check_types()
    return g


def _run_snntorch(net: torch.nn.Module, x: np.ndarray, steps: int):
    """The net's own forward, step by step in float64: per Leaky, its spikes (steps, N, ...); the smallest
    |U - threshold| a Leaky compared (snnTorch resets at the next step, so its mem after a call is U(t))."""
    import snntorch as snn

    net = net.double()
    leaks = {k: m for k, m in net.named_modules() if isinstance(m, snn.Leaky)}
    spikes: dict[str, list] = {k: [] for k in leaks}
    margin = [np.inf]

    def record(k):
        def hook(mod, _inp, out):
            # snnTorch's Heaviside returns float32 0/1: handed on as float64 (exact), which the next layer computes in
            spk = (out[0] if isinstance(out, tuple) else out).double()
            spikes[k].append(spk.numpy().copy())
            margin[0] = min(margin[0], float((mod.mem - mod.threshold).abs().min()))
            return (spk, *out[1:]) if isinstance(out, tuple) else spk
        return hook

    hooks = []
    for k, m in leaks.items():
        m.mem = torch.zeros(0, dtype=torch.float64)  # a fresh state (a Leaky re-zeros it for a new input shape)
        hooks.append(m.register_forward_hook(record(k)))
    xin = torch.as_tensor(x, dtype=torch.float64)
    try:
        with torch.no_grad():
            for _ in range(steps):
                net(xin)
    finally:
        for h in hooks:
            h.remove()
    return {k: np.stack(v) for k, v in spikes.items()}, margin[0]


def test_export_to_nir_drops_the_residual_add():
    """snnTorch 1.0.0's export_to_nir (nirtorch's module-call tracer): the neuron after the add reads an Input of its
    own, the branch's connection feeds the Output, and lif1 -> lif2 (the skip) is missing."""
    import warnings

    from snntorch.export_nir import export_to_nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # nirtorch's extract_nir_graph is deprecated
        g = export_to_nir(_net(), torch.rand(1, *SHAPE), ignore_dims=[0])
    assert isinstance(g.nodes.get("input_lif2"), nir.Input) and ("input_lif2", "lif2") in g.edges
    assert ("conv2", "output") in g.edges and ("lif1", "lif2") not in g.edges and ("conv2", "lif2") not in g.edges


def test_snntorch_residual_net_exported_by_nirtorch_fx_runs_spike_for_spike_on_both_targets(tmp_path):
    net = _net()
    graph = export(net)
    assert ("conv2", "lif2") in graph.edges and ("lif1", "lif2") in graph.edges  # the block's fan-in: NIR's sum
    assert ("lif3", "output") in graph.edges and sum(isinstance(v, nir.Input) for v in graph.nodes.values()) == 1
    again = export(_net(init_hidden=True))  # init_hidden=True (modules return their spikes): the same graph
    assert sorted(again.edges) == sorted(graph.edges) and again.nodes.keys() == graph.nodes.keys()
    path = tmp_path / "residual.nir"
    _write(path, graph)
    g = load_nir(str(path), time_steps=T)
    assert [n.op for n in g.topo()] == ["Input", "Conv", "LIF", "Conv", "Add", "LIF", "Flatten", "Dense", "LIF"]
    assert sorted(g.nodes["lif2.sum"].inputs) == ["conv2", "lif1"]
    meta = g.meta["nir"]
    for name, beta in (("lif1", 0.9), ("lif2", 0.8), ("lif3", 0.7)):  # snnTorch's float32 betas, recovered exactly
        assert g.nodes[name].attrs["beta"] == float(np.float32(beta)) and meta["neurons"][name]["gain"] == 1.0
    x = np.random.default_rng(5).uniform(0, 1, (4, *SHAPE)).astype(np.float32).astype(np.float64)  # as the CLI reads it
    res = api.simulate(api.convert(g), x, exact=True, record_layers=True)
    ref, margin = _run_snntorch(net, x, T)
    assert margin > MARGIN, f"a reference membrane lies within {margin:.3g} of its threshold: a boundary case"
    counts = _compare_layers(res, ref)
    assert all(0 < c < ref[k].size for k, c in counts.items()), counts  # neither silent nor saturated
    np.testing.assert_array_equal(res.output, ref["lif3"].mean(0))  # the readout: lif3's spike rate
    # the CLI on both targets: Lava's delay-balanced fan-in gives the reference's (and snnTorch's) spikes and readout
    assert sorted(api.convert(g, target="lava-sim").schedule.balance["lif2.sum"]) == [0, 1]  # the skip waits a step
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    args = [str(path), "--steps", str(T), "--input", str(tmp_path / "x.npy"), "--quiet"]
    assert cli.main([*args, "--target", "reference", "--exact", "--json", str(tmp_path / "ref.json")]) == 0
    assert cli.main([*args, "--target", "lava-sim", "--json", str(tmp_path / "lava.json")]) == 0
    r, v = (json.loads((tmp_path / f).read_text()) for f in ("ref.json", "lava.json"))
    want = {k: {"pos": int(s.sum()), "neg": 0} for k, s in ref.items()}
    assert r["spikes"] == want and v["spikes"] == want, (r["spikes"], v["spikes"], want)
    assert r["steps"] == T < v["steps"] and v["max_abs_error"] == 0.0
    np.testing.assert_array_equal(np.asarray(v["outputs"]), np.asarray(r["outputs"]))
    print("snnTorch residual net (nirtorch fx export) spikes per layer:", counts)
