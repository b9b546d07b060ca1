"""NIR import (neurocompile.frontends.nir): networks written by the real peers run spike for spike as there.

Exactness: neurocompile runs in float64 (``exact=True``) and so do the references (snnTorch's own modules
after ``.double()``, or a hand-written torch loop). The two compute the same membrane recursion
U = beta·U·(1 - F) + X, but not in the same order everywhere (neurocompile adds a layer's bias at its neuron,
torch inside the conv/linear), so membranes agree to ~1e-15, not bit for bit. Spikes are compared exactly, and
each test first checks that no reference membrane comes within MARGIN = 1e-9 of its threshold: float64
rounding cannot then flip a spike, and a failure is a real difference, not a boundary case.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

import nir
from neurocompile import api
from neurocompile.errors import ConversionError, ModelLoadError, NeurocompileError
from neurocompile.frontends.nir import load_nir, snntorch_beta

MARGIN = 1e-9
T = 12


def _write(path, graph) -> None:
    """nir.write without compression: h5py refuses gzip for the 0-d arrays of scalar neuron parameters."""
    nir.write(path, graph, compression=None)


def _snntorch_export():
    """snnTorch's per-module NIR export (snntorch.export_nir._extract_snntorch_module). Its ``export_to_nir`` only
    adds nirtorch's graph tracing: for a Sequential the trace is the chain of modules, which
    :func:`_export_sequential` builds the same way (nodes named by index, then ``infer_types``). nirtorch (a test
    dependency since NIR export: snnTorch's importer needs it) is imported by export_nir."""
    from snntorch.export_nir import _extract_snntorch_module

    return _extract_snntorch_module


def _export_sequential(mods, input_shape) -> nir.NIRGraph:
    extract = _snntorch_export()
    nodes = {"input": nir.Input(input_type=np.array(input_shape))}
    for i, m in enumerate(mods):
        nodes[str(i)] = extract(m)
    names = list(nodes)
    g = nir.NIRGraph(nodes=nodes, edges=list(zip(names, names[1:])), type_check=False)
    g.infer_types()  # what export_to_nir ends with: fills the convs' input_shape, every type and the Output node
    g.check_types()
    return g


def _snn_cnn(leaky=None):
    """snnTorch's LIF CNN (conv, avg pool, conv, linear); ``leaky(shape, beta, threshold)`` makes each of its three
    Leaky layers (default: those values for every neuron)."""
    import snntorch as snn

    torch.manual_seed(0)
    # snnTorch's exporter needs per-neuron beta/threshold tensors for a conv layer (a scalar gives tau of shape (),
    # which nir's type check refuses against the layer's (C, H, W)); reset to zero, which NIR's v_reset = 0 means
    leaky = leaky or (lambda shape, beta, thr: snn.Leaky(beta=torch.full(shape, beta),  # noqa: E731
                                                         threshold=torch.full(shape, thr), reset_mechanism="zero"))
    mods = [torch.nn.Conv2d(1, 6, 3, padding=1), leaky((6, 8, 8), 0.9, 1.0),
            torch.nn.AvgPool2d(2),
            torch.nn.Conv2d(6, 8, 3, padding="same"), leaky((8, 4, 4), 0.7, 0.5),
            torch.nn.Flatten(), torch.nn.Linear(8 * 4 * 4, 10), leaky((10,), 0.8, 0.5)]
    with torch.no_grad():
        mods[0].weight.mul_(3.0)
        mods[3].weight.mul_(2.0)
        mods[6].weight.mul_(3.0)
        mods[6].bias.add_(0.1)
    return mods


def _run_snntorch(mods, x: np.ndarray, steps: int, per_step: bool = False):
    """snnTorch's own modules in float64, step by step: per Leaky, the spikes (steps, N, ...) and the smallest
    |U - threshold| before reset. ``per_step``: x is (N, steps, ...), step t's input x[:, t]."""
    import snntorch as snn

    mods = [m.double() for m in mods]
    xin = torch.as_tensor(x, dtype=torch.float64)
    mem: dict[int, torch.Tensor] = {}
    spikes: dict[int, list] = {i: [] for i, m in enumerate(mods) if isinstance(m, snn.Leaky)}
    margin = np.inf
    with torch.no_grad():
        for t in range(steps):
            h = xin[:, t] if per_step else xin
            for i, m in enumerate(mods):
                if isinstance(m, snn.Leaky):
                    prev = mem.get(i, torch.zeros_like(h))
                    h, mem[i] = m(h, prev)
                    h = h.double()  # snnTorch's Heaviside returns float32 0/1 (exact in either)
                    # U before reset: snnTorch resets at the next step (reset_delay), so mem[i] is U(t) itself
                    margin = min(margin, float((mem[i] - m.threshold).abs().min()))
                    spikes[i].append(h.numpy().copy())
                else:
                    h = m(h)
    return {str(i): np.stack(v) for i, v in spikes.items()}, margin


def _compare_layers(res, ref: dict[str, np.ndarray]) -> dict[str, int]:
    counts = {}
    for name, spk in ref.items():
        got = np.diff(res.layers[name], axis=0, prepend=0)  # per-step spikes from the cumulative counts
        np.testing.assert_array_equal(got, spk, err_msg=f"layer {name}")
        counts[name] = int(spk.sum())
    return counts


def test_snntorch_lif_cnn_runs_spike_for_spike(tmp_path):
    mods = _snn_cnn()
    path = tmp_path / "cnn.nir"
    nir.write(path, _export_sequential(mods, (1, 8, 8)))
    g = load_nir(str(path), time_steps=T)
    assert [n.op for n in g.topo()] == ["Input", "Conv", "LIF", "AvgPool", "Conv", "LIF", "Flatten", "Dense", "LIF"]
    assert g.nodes["3"].attrs["pads"] == [1, 1, 1, 1]  # padding='same', 3x3
    meta = g.meta["nir"]
    assert meta["dt"] == 1e-4 and meta["discretization"] == "snntorch" and meta["version"] == nir.version
    for name, beta in (("1", 0.9), ("4", 0.7), ("7", 0.8)):  # snnTorch's float32 betas, recovered exactly
        assert g.nodes[name].attrs["beta"] == float(np.float32(beta)) and meta["neurons"][name]["gain"] == 1.0
        assert meta["neurons"][name]["beta_inverts_export"]
    snn_g = api.convert(g)
    assert snn_g.schedule.steps == T and snn_g.schedule.t_wake == T
    x = np.load(api.EXAMPLE_DATA)[:8].astype(np.float64)
    res = api.simulate(snn_g, x, exact=True, record_layers=True)
    ref, margin = _run_snntorch(mods, x, T)
    assert margin > MARGIN, f"a reference membrane lies within {margin:.3g} of its threshold: a boundary case"
    counts = _compare_layers(res, ref)
    assert all(c > 0 for c in counts.values()), counts
    assert all(c < ref[k].size for k, c in counts.items()), counts  # not saturated either
    np.testing.assert_array_equal(res.output, ref["7"].mean(0))  # the readout: the output layer's spike rate
    print("snnTorch CNN spikes per layer:", counts)


def test_snntorch_lif_cnn_takes_spikes_per_step(tmp_path):
    """Spiking input (N, T, ...): each step's own spikes, on the reference simulator and through the CLI (T from the
    input), spike for spike as in snnTorch."""
    mods = _snn_cnn()
    path = tmp_path / "cnn.nir"
    nir.write(path, _export_sequential(mods, (1, 8, 8)))
    rng = np.random.default_rng(3)
    x = (rng.uniform(size=(6, T, 1, 8, 8)) < 0.4) * 2.0  # Bernoulli spikes of amplitude 2
    res = api.simulate(api.convert(load_nir(str(path), time_steps=T)), x, exact=True, record_layers=True)
    ref, margin = _run_snntorch(mods, x, T, per_step=True)
    assert margin > MARGIN
    counts = _compare_layers(res, ref)
    assert all(c > 0 for c in counts.values()), counts
    print("snnTorch CNN on spikes, spikes per layer:", counts)
    np.save(tmp_path / "spikes.npy", x)
    out = subprocess.run([sys.executable, "-m", "neurocompile.cli", str(path), "--input", str(tmp_path / "spikes.npy"),
                          "--exact", "--quiet", "--json", str(tmp_path / "r.json")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = json.loads((tmp_path / "r.json").read_text())
    assert got["steps"] == T and np.allclose(got["outputs"], res.output, rtol=1e-12, atol=0)
    held = api.simulate(api.convert(load_nir(str(path), time_steps=T)), x[:, 0], exact=True)
    assert held.spikes != res.spikes  # not the first step's spikes held


def test_snntorch_beta_inverts_the_export():
    rng = np.random.default_rng(0)
    for b in rng.uniform(0.5, 1.0, 2000).astype(np.float32):
        for tau in (1e-4 / (1 - np.float64(b)), float(np.float32(1e-4) / (np.float32(1) - b))):  # scalar, tensor
            assert snntorch_beta(float(tau), 1e-4) == (float(b), True)


def _residual_graph(dt: float):
    """input(6) -> fc1 -> lif1 (scalar parameters, input gain 2) -> block[fc -> lif, plus the block's input into lif:
    an identity shortcut, two edges into one node] -> fc2 (Linear) -> if3 (IF, gain r·dt = 0.5) -> output."""
    rng = np.random.default_rng(3)
    p = {"W1": rng.normal(0, 0.8, (8, 6)), "b1": rng.normal(0.2, 0.1, 8), "Wb": rng.normal(0, 0.6, (8, 8)),
         "bb": rng.normal(0, 0.1, 8), "W2": rng.normal(0.3, 0.8, (4, 8))}
    tau1, tau2 = 4e-3, rng.uniform(2e-3, 2e-3, 8)  # per-neuron arrays, all equal
    lif1 = nir.LIF(tau=np.array(tau1), r=np.array(2 * tau1 / dt), v_leak=np.array(0.0), v_threshold=np.array(0.6),
                   v_reset=np.array(0.0))
    block = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([8])), "fc": nir.Affine(weight=p["Wb"], bias=p["bb"]),
               "lif": nir.LIF(tau=tau2, r=tau2 / dt, v_leak=np.zeros(8), v_threshold=np.full(8, 0.8),
                              v_reset=np.zeros(8)),
               "out": nir.Output(output_type=np.array([8]))},
        edges=[("in", "fc"), ("fc", "lif"), ("in", "lif"), ("lif", "out")], type_check=False)
    g = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([6])), "fc1": nir.Affine(weight=p["W1"], bias=p["b1"]),
               "lif1": lif1, "block": block, "fc2": nir.Linear(weight=p["W2"]),
               "if3": nir.IF(r=np.full(4, 0.5 / dt), v_threshold=np.full(4, 1.0), v_reset=np.zeros(4)),
               "output": nir.Output(output_type=np.array([4]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "block"), ("block", "fc2"), ("fc2", "if3"),
               ("if3", "output")], type_check=False)
    ref = {"beta1": 1 - dt / tau1, "g1": 2.0, "th1": 0.6, "beta2": 1 - dt / 2e-3, "th2": 0.8, "g3": 0.5, "th3": 1.0}
    return g, p, ref


def _run_residual(p, c, x: np.ndarray, steps: int, delay: int = 0):
    """The residual net by hand (forward Euler), float64; ``delay``: the block's fc branch reads lif1's spikes of that
    many steps before (zeros at first)."""
    t = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in p.items()}
    xin = torch.as_tensor(x, dtype=torch.float64)
    u1 = torch.zeros(len(x), 8, dtype=torch.float64)
    u2, u3 = torch.zeros_like(u1), torch.zeros(len(x), 4, dtype=torch.float64)
    f1, f2, f3 = torch.zeros_like(u1), torch.zeros_like(u2), torch.zeros_like(u3)
    out = {"lif1": [], "block.lif": [], "if3": []}
    margin = np.inf
    seen = [torch.zeros_like(u1)] * delay
    for _ in range(steps):
        u1 = c["beta1"] * u1 * (1 - f1) + c["g1"] * (xin @ t["W1"].T + t["b1"])
        f1 = (u1 > c["th1"]).double()
        seen.append(f1)
        late = seen.pop(0)
        u2 = c["beta2"] * u2 * (1 - f2) + (late @ t["Wb"].T + t["bb"] + f1)  # the residual sum
        f2 = (u2 > c["th2"]).double()
        u3 = u3 * (1 - f3) + c["g3"] * (f2 @ t["W2"].T)
        f3 = (u3 > c["th3"]).double()
        for k, u, th in (("lif1", u1, c["th1"]), ("block.lif", u2, c["th2"]), ("if3", u3, c["th3"])):
            margin = min(margin, float((u - th).abs().min()))
        for k, f in (("lif1", f1), ("block.lif", f2), ("if3", f3)):
            out[k].append(f.numpy().copy())
    return {k: np.stack(v) for k, v in out.items()}, margin


def test_residual_nir_graph_runs_as_written(tmp_path):
    dt = 1e-3
    graph, p, c = _residual_graph(dt)
    path = tmp_path / "residual.nir"
    _write(path, graph)
    g = load_nir(str(path), dt=dt, discretization="euler", time_steps=T)
    ops = {n.name: n.op for n in g.topo()}
    assert ops["block.lif.sum"] == "Add" and ops["lif1.gain"] == "Mul" and ops["if3.gain"] == "Mul"
    assert g.nodes["if3"].attrs["beta"] == 1.0 and g.nodes["lif1"].attrs["beta"] == c["beta1"]
    assert g.meta["nir"]["neurons"]["lif1"]["gain"] == 2.0 and g.meta["nir"]["neurons"]["if3"]["gain"] == 0.5
    x = np.random.default_rng(4).uniform(0, 1, (16, 6))
    res = api.simulate(api.convert(g), x, exact=True, record_layers=True)
    ref, margin = _run_residual(p, c, x, T)
    assert margin > MARGIN, f"a reference membrane lies within {margin:.3g} of its threshold: a boundary case"
    counts = _compare_layers(res, ref)
    assert all(0 < c_ < ref[k].size for k, c_ in counts.items()), counts
    np.testing.assert_array_equal(res.output, ref["if3"].mean(0))
    print("residual net spikes per layer:", counts)


def _delayed_residual(dt: float, delay):
    graph, p, c = _residual_graph(dt)
    block = graph.nodes["block"]
    block.nodes["d"] = nir.Delay(delay=np.asarray(delay, dtype=np.float64))
    block.edges = [("in", "d"), ("d", "fc"), ("fc", "lif"), ("in", "lif"), ("lif", "out")]
    return graph, p, c


def test_a_delayed_branch_runs_as_written_on_both_targets_and_exports_back(tmp_path):
    """NIR's Delay (3 steps on the block's weighted branch, none on its shortcut): the schedule delays that branch
    and, unlike Lava's synaptic delays, never balances it away; reference and lava-sim spike for spike as the
    hand-written loop; the export writes the Delay back."""
    from neurocompile.exporters.nir import write_nir

    dt = 1e-3
    graph, p, c = _delayed_residual(dt, np.full(8, 3 * dt))
    path = tmp_path / "delayed.nir"
    _write(path, graph)
    g = load_nir(str(path), dt=dt, discretization="euler", time_steps=T)
    assert g.nodes["block.d"].op == "StepDelay" and g.nodes["block.d"].attrs["steps"] == 3
    x = np.random.default_rng(4).uniform(0, 1, (8, 6))
    snn = api.convert(g)
    res = api.simulate(snn, x, exact=True, record_layers=True)
    ref, margin = _run_residual(p, c, x, T, delay=3)
    assert margin > MARGIN
    counts = _compare_layers(res, ref)
    undelayed, _ = _run_residual(p, c, x, T)
    assert not np.array_equal(ref["block.lif"], undelayed["block.lif"])  # the delay matters here
    lava = api.convert(g, target="lava-sim")
    assert lava.schedule.delay["block.d"] == 3 and lava.schedule.own_delay == {"block.d": 3}
    on_lava = api.compile(lava, "lava-sim").run(x)
    assert on_lava.spikes == res.spikes and np.allclose(on_lava.output, res.output, rtol=1e-12, atol=0)
    write_nir(snn, str(tmp_path / "back.nir"))
    back = nir.read(str(tmp_path / "back.nir"))
    delays = [v for v in back.nodes.values() if isinstance(v, nir.Delay)]
    assert len(delays) == 1 and np.allclose(delays[0].delay, 3e-4)  # written at the export's dt = 1e-4: 3 steps
    print("delayed residual spikes per layer:", counts)
    for bad, words in ((np.full(8, 2.5 * dt), "not a whole number"), (np.linspace(0, 3 * dt, 8), "per-element")):
        _write(tmp_path / "bad.nir", _delayed_residual(dt, bad)[0])
        with pytest.raises(ConversionError, match=words):
            load_nir(str(tmp_path / "bad.nir"), dt=dt, discretization="euler", time_steps=T)


def test_inspect_takes_the_nir_options(tmp_path):
    """`neurocompile inspect net.nir --dt ... --discretization ...` shows the neurons those options give; the options
    are refused for a file that is not NIR."""
    graph, _, c = _residual_graph(1e-3)
    _write(tmp_path / "r.nir", graph)
    cli = [sys.executable, "-m", "neurocompile.cli", "inspect"]
    out = subprocess.run(cli + [str(tmp_path / "r.nir"), "--dt", "1e-3", "--discretization", "euler"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"beta={c['beta1']:g}" in out.stdout  # 1 - dt/tau = 0.75 at dt = 1e-3 (not the default 1e-4)
    bad = subprocess.run(cli + ["examples/digits_cqrelu.onnx", "--dt", "1e-3"], capture_output=True, text=True)
    assert bad.returncode == 2 and "apply to NIR files" in bad.stderr


def test_conv1d_sumpool_threshold_and_zoh(tmp_path):
    """Conv1d (through 2-D), SumPool2d (depthwise ones), Threshold (LIF beta 0) and the zoh discretization."""
    rng = np.random.default_rng(5)
    w1 = rng.normal(0, 1, (3, 2, 3))
    g1 = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2, 10])),
                             "c": nir.Conv1d(input_shape=10, weight=w1, stride=2, padding=1, dilation=1, groups=1,
                                             bias=np.array([0.1, 0.0, -0.1])),
                             "th": nir.Threshold(threshold=np.array(0.3)), "output": nir.Output(output_type=np.array([3, 5]))},
                      edges=[("input", "c"), ("c", "th"), ("th", "output")], type_check=False)
    path = tmp_path / "c1.nir"
    _write(path, g1)
    g = load_nir(str(path), time_steps=3)
    x = rng.normal(0, 1, (4, 2, 10))
    want = torch.nn.functional.conv1d(torch.as_tensor(x), torch.as_tensor(w1), torch.tensor([0.1, 0.0, -0.1],
                                      dtype=torch.float64), stride=2, padding=1) > 0.3
    res = api.simulate(api.convert(g), x, exact=True)
    np.testing.assert_array_equal(res.output, want.double().numpy())  # the same input each step: the same spikes
    g2 = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2, 4, 4])),
                             "p": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                padding=np.array([0, 0])),
                             "lif": nir.LIF(tau=np.array(1e-3), r=np.array(1.0), v_leak=np.array(0.0),
                                            v_threshold=np.array(1.0)),
                             "output": nir.Output(output_type=np.array([2, 2, 2]))},
                      edges=[("input", "p"), ("p", "lif"), ("lif", "output")], type_check=False)
    _write(tmp_path / "p.nir", g2)
    g = load_nir(str(tmp_path / "p.nir"), dt=1e-3, discretization="zoh", time_steps=4)
    n = g.nodes["lif"]
    assert n.attrs["beta"] == math.exp(-1.0) and g.meta["nir"]["neurons"]["lif"]["gain"] == 1 - math.exp(-1.0)
    assert g.nodes["p"].op == "Conv" and g.nodes["p"].attrs["groups"] == 2


# ---- refusals: one paragraph, the file, the node and its NIR type named --------------------------------------------
def _small(**over) -> nir.NIRGraph:
    nodes = {"input": nir.Input(input_type=np.array([3])), "fc": nir.Affine(weight=np.ones((3, 3)), bias=np.zeros(3)),
             "lif": nir.LIF(tau=np.array(1e-3), r=np.array(10.0), v_leak=np.array(0.0), v_threshold=np.array(1.0)),
             "output": nir.Output(output_type=np.array([3]))}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "output")]
    nodes.update(over.pop("nodes", {}))
    edges += over.pop("extra_edges", [])
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _refused(tmp_path, graph, kind, *words, edit=None):
    path = tmp_path / "bad.nir"
    _write(path, graph)
    if edit is not None:
        with h5py.File(path, "r+") as f:
            edit(f)
    with pytest.raises(kind) as info:
        load_nir(str(path), time_steps=4)
    text = str(info.value)
    assert "\n" not in text and "Traceback" not in text and str(path) in text, text
    for w in words:
        assert w in text, (w, text)
    return info.value


def _retype(f):
    del f["node/nodes/lif/type"]
    f["node/nodes/lif"].create_dataset("type", data="Spiky", dtype=h5py.string_dtype())


def test_refusals(tmp_path):
    err = _refused(tmp_path, _small(), ModelLoadError, "unknown NIR node type 'Spiky'", "node 'lif'", edit=_retype)
    assert err.node == "lif" and err.op == "Spiky"
    err = _refused(tmp_path, _small(), ModelLoadError, "nir cannot build this LIF node", "'tau'", "node 'lif'",
                   edit=lambda f: f.__delitem__("node/nodes/lif/tau"))
    err = _refused(tmp_path, _small(nodes={"back": nir.Linear(weight=np.eye(3))},
                                    extra_edges=[("lif", "back"), ("back", "fc")]),
                   ConversionError, "the NIR graph is recurrent (cycle ", "feed-forward")
    assert err.node in ("fc", "lif", "back") and err.op and all(n in err.message for n in ("fc", "lif", "back"))
    leaky = nir.LIF(tau=np.array(1e-3), r=np.array(10.0), v_leak=np.array(-0.2), v_threshold=np.array(1.0))
    _refused(tmp_path, _small(nodes={"lif": leaky}), ConversionError, "v_leak = -0.2", "node 'lif'", "op LIF")
    reset = nir.LIF(tau=np.array(1e-3), r=np.array(10.0), v_leak=np.array(0.0), v_threshold=np.array(1.0),
                    v_reset=np.array(0.5))
    _refused(tmp_path, _small(nodes={"lif": reset}), ConversionError, "v_reset = 0.5", "op LIF")
    _refused(tmp_path, _small(nodes={"fc": nir.Affine(weight=np.ones((3, 5)), bias=np.zeros(3))}), ModelLoadError,
             "inconsistent shapes", "(3, 5)", "node 'fc'", "op Affine")
    _refused(tmp_path, _small(nodes={"skip": nir.Linear(weight=np.ones((2, 3)))},
                              extra_edges=[("input", "skip"), ("skip", "lif")]),
             ModelLoadError, "inconsistent shapes", "edges into the node", "node 'lif'")
    varying = nir.LIF(tau=np.array([1e-3, 5e-5, 1e-3]), r=np.full(3, 10.0), v_leak=np.zeros(3), v_threshold=np.ones(3),
                      v_reset=np.zeros(3))  # per-neuron taus, one of them shorter than dt
    _refused(tmp_path, _small(nodes={"lif": varying}), ConversionError, "dt = 0.0001 s > tau = 5e-05 s", "node 'lif'")
    wrong = nir.LIF(tau=np.full(4, 1e-3), r=np.full(4, 10.0), v_leak=np.zeros(4), v_threshold=np.ones(4),
                    v_reset=np.zeros(4))
    _refused(tmp_path, _small(nodes={"lif": wrong}), ModelLoadError, "inconsistent shapes", "of shape (4,) for an input of shape (3,)")
    cuba = nir.CubaLIF(tau_syn=np.array(1e-3), tau_mem=np.array(1e-3), r=np.array(1.0), v_leak=np.array(0.3),
                       v_threshold=np.array(1.0))  # CubaLIF is mapped (tests/test_nir_cuba.py); a leak potential is not
    _refused(tmp_path, _small(nodes={"lif": cuba}), ConversionError, "v_leak = 0.3", "node 'lif'", "op CubaLIF")
    fast = nir.LIF(tau=np.array(1e-5), r=np.array(10.0), v_leak=np.array(0.0), v_threshold=np.array(1.0))
    _refused(tmp_path, _small(nodes={"lif": fast}), ConversionError, "beta = 1 - dt/tau", "--discretization zoh")


def test_not_nir_and_missing_time_steps(tmp_path):
    bad = tmp_path / "junk.nir"
    bad.write_bytes(b"not hdf5 at all")
    with pytest.raises(ModelLoadError) as info:
        load_nir(str(bad))
    assert "cannot read the file as NIR" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ModelLoadError, match="no such file"):
        load_nir(str(tmp_path / "absent.nir"))
    _write(tmp_path / "ok.nir", _small())
    g = load_nir(str(tmp_path / "ok.nir"))  # no T: loads, and conversion asks for it
    assert "time_steps" not in g.meta
    with pytest.raises(NeurocompileError, match="time steps"):
        api.convert(g)
    for kw in ({"dt": 0}, {"dt": float("nan")}, {"discretization": "rk4"}, {"time_steps": 0}):
        with pytest.raises(ConversionError):
            load_nir(str(tmp_path / "ok.nir"), **kw)


def test_subgraph_ports_scale_partial_flatten_zero_delay(tmp_path):
    """An edge naming a subgraph's Input ('sub.a'), Scale (Mul), a Flatten of some dims (Reshape), a Delay of 0."""
    sub = nir.NIRGraph(nodes={"a": nir.Input(input_type=np.array([2, 3, 4])), "s": nir.Scale(scale=np.full((2, 3, 4), 0.5)),
                              "o": nir.Output(output_type=np.array([2, 3, 4]))},
                       edges=[("a", "s"), ("s", "o")], type_check=False)
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2, 3, 4])), "sub": sub,
                            "d": nir.Delay(delay=np.zeros((2, 3, 4))),
                            "f": nir.Flatten(input_type={"input": np.array([2, 3, 4])}, start_dim=1, end_dim=2),
                            "th": nir.Threshold(threshold=np.zeros((2, 12))),
                            "output": nir.Output(output_type=np.array([2, 12]))},
                     edges=[("input", "sub.a"), ("sub", "d"), ("d", "f"), ("f", "th"), ("th", "output")], type_check=False)
    _write(tmp_path / "g.nir", g)
    ir = load_nir(str(tmp_path / "g.nir"), time_steps=2)
    assert [n.op for n in ir.topo()] == ["Input", "Mul", "Reshape", "LIF"] and ir.shapes["th"] == (2, 12)
    x = np.random.default_rng(6).normal(0, 1, (3, 2, 3, 4))
    res = api.simulate(api.convert(ir), x, exact=True)
    np.testing.assert_array_equal(res.output, (x.reshape(3, 2, 12) * 0.5 > 0).astype(np.float64))


def test_cli_runs_a_residual_nir_file_on_lava_like_the_reference(tmp_path):
    """`neurocompile net.nir --steps T --target lava-sim`: the fan-in (identity shortcut) is delay-balanced, and the
    Lava run equals the reference simulator's readout; the options dt/discretization are the user's."""
    import json
    import subprocess

    graph, _, _ = _residual_graph(1e-3)
    path = tmp_path / "residual.nir"
    _write(path, graph)
    x = np.random.default_rng(4).uniform(0, 1, (6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    common = [sys.executable, "-m", "neurocompile.cli", str(path), "--steps", str(T), "--dt", "1e-3",
              "--discretization", "euler", "--input", str(tmp_path / "x.npy")]
    ref = subprocess.run([*common, "--json", str(tmp_path / "ref.json")], capture_output=True, text=True, timeout=300)
    lava = subprocess.run([*common, "--target", "lava-sim", "--json", str(tmp_path / "lava.json")],
                          capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0 and lava.returncode == 0, (ref.stderr, lava.stderr)
    r, v = (json.loads((tmp_path / f).read_text()) for f in ("ref.json", "lava.json"))
    assert r["steps"] == T < v["steps"]  # T input steps, plus on Lava the path's delay (one step per connection)
    assert v["ann_reference"] == "reference simulator" and v["max_abs_error"] == 0.0
    np.testing.assert_array_equal(np.asarray(v["outputs"]), np.asarray(r["outputs"]))
    assert v["spikes"] == r["spikes"]


def test_nir_options_are_refused_for_other_files():
    import subprocess

    r = subprocess.run([sys.executable, "-m", "neurocompile.cli", "examples/digits_cqrelu.onnx", "--dt", "1e-3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "apply to NIR files" in r.stderr
