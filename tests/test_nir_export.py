"""NIR export (neurocompile.exporters.nir): students read by snnTorch spike for spike, NIR -> IR -> NIR
round trips keep every parameter, CIF networks come back exactly through neurocompile's extension, and the CLI.

Exactness as in tests/test_nir.py: neurocompile runs in float64 (``exact=True``) and so does snnTorch (its imported
module after ``.double()``); spikes are compared exactly after checking that no snnTorch membrane comes within
MARGIN of its threshold, so float rounding cannot flip a spike.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import nir
from neurocompile import api, cli
from neurocompile.errors import ConversionError, ModelLoadError
from neurocompile.frontends.nir import import_nir, load_nir
from neurocompile.exporters.nir import EXTENSION, to_nir, write_nir
from neurocompile.torch import LIF, CQReLU, export_onnx
from tests.test_nir import _export_sequential, _write

MARGIN = 1e-9
T = 6


class _Student(nn.Module):
    """A kit student with BN (folded at conversion), a residual fan-in, AvgPool, Flatten and a dense readout."""

    def __init__(self):
        super().__init__()
        self.c1, self.b1, self.l1 = nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), LIF(0.25, 0.5)
        self.c2, self.l2 = nn.Conv2d(4, 4, 3, padding=1), LIF(0.5, 0.5)
        self.pool, self.flat, self.fc, self.l3 = nn.AvgPool2d(2), nn.Flatten(), nn.Linear(64, 10), LIF(0.75, 0.3)
        self.out = nn.Linear(10, 3)

    def forward(self, x):
        a = self.l1(self.b1(self.c1(x)))
        b = self.l2(self.c2(a) + a)
        return self.out(self.l3(self.fc(self.flat(self.pool(b)))))


def _student_onnx(tmp_path) -> str:
    torch.manual_seed(1)
    m = _Student()
    with torch.no_grad():
        m.b1.running_mean.uniform_(-0.1, 0.1)
        m.b1.running_var.uniform_(0.8, 1.2)
        m.c2.weight.mul_(1.5)
        m.fc.weight.mul_(2.0)
    return export_onnx(m.eval(), torch.rand(2, 1, 8, 8), tmp_path / "student.onnx", time_steps=T)


def _run_snntorch_import(path, x: np.ndarray, steps: int):
    """snnTorch 1.0.0's import_from_nir of the file, in float64, one sample at a time (its importer maps NIR's
    Flatten(start_dim=0) to torch's Flatten(0, -1), which folds a batch dimension in). Per Leaky: spikes
    (steps, N, ...); the mean output over the steps; the smallest |U - threshold| it compared."""
    import snntorch as snn
    from snntorch.import_nir import import_from_nir

    net = import_from_nir(nir.read(path)).double()
    leaks = {n: m for n, m in net.named_modules() if isinstance(m, snn.Leaky)}
    spikes: dict[str, list] = {n: [] for n in leaks}
    margin = [np.inf]
    for name, m in leaks.items():
        fire = m.fire

        def watched(mem, fire=fire, m=m):
            margin[0] = min(margin[0], float((mem - m.threshold).abs().min()))
            return fire(mem)

        m.fire = watched
        # its Heaviside returns float32 0/1 (exact): cast so the next float64 layer takes it
        m.register_forward_hook(lambda mod, inp, out, n=name: (spikes[n].append(out.double()), out.double())[1])
    outputs = []
    with torch.no_grad():
        for i in range(len(x)):
            for m in leaks.values():
                m.mem = torch.zeros(0, dtype=torch.float64)  # a fresh state per sample
            state, ys = None, []
            for _ in range(steps):
                y, state = net(torch.as_tensor(x[i:i + 1], dtype=torch.float64), state)
                ys.append(y.reshape(-1))
            outputs.append(torch.stack(ys).mean(0).numpy())
    per_layer = {n: np.stack([np.stack([s.reshape(-1).numpy() for s in v[i * steps:(i + 1) * steps]])
                              for i in range(len(x))], axis=1) for n, v in spikes.items()}
    return per_layer, np.stack(outputs), margin[0]


def test_student_exported_to_nir_runs_in_snntorch_spike_for_spike(tmp_path):
    snn_g = api.convert(api.load(_student_onnx(tmp_path)), target="reference")
    path = str(tmp_path / "student.nir")
    exp = write_nir(snn_g, path)
    assert exp.kind == "student" and exp.time_steps == T
    assert exp.types == {"Input": 1, "Conv2d": 2, "LIF": 3, "AvgPool2d": 1, "Flatten": 1, "Affine": 2, "Output": 1}
    g = nir.read(path)  # nir's own reader and type check
    assert ("l1_LIF", "l2_LIF") in g.edges and ("c2_Conv", "l2_LIF") in g.edges  # the residual: two edges in
    lif = g.nodes["l1_LIF"]
    assert lif.tau.shape == (4, 8, 8) and np.all(lif.tau == 1e-4 / 0.75) and np.all(lif.r == lif.tau / 1e-4)
    assert np.all(lif.v_leak == 0) and np.all(lif.v_reset == 0) and lif.metadata["beta"] == 0.25
    x = np.random.default_rng(0).uniform(0, 1, (8, 1, 8, 8))
    counts = _same_in_snntorch(snn_g, path, x, {"/l1/LIF": "l1_LIF", "/l2/LIF": "l2_LIF", "/l3/LIF": "l3_LIF"})
    print("student -> NIR -> snnTorch spikes per layer:", counts)


def _same_in_snntorch(snn_g, path: str, x: np.ndarray, layers: dict[str, str], steps: int = T) -> dict[str, int]:
    """The converted ``snn_g`` (float64) and snnTorch's import of its NIR file ``path`` give the same spikes in each
    of ``layers`` (IR name -> snnTorch module name) over ``steps`` and the same readout; their spike counts."""
    res = api.simulate(snn_g, x, exact=True, record_layers=True)
    ref, out, margin = _run_snntorch_import(path, x, steps)
    assert margin > MARGIN, f"an snnTorch membrane lies within {margin:.3g} of its threshold: a boundary case"
    counts = {}
    for ir_name, key in layers.items():
        got = np.diff(res.layers[ir_name], axis=0, prepend=0).reshape(steps, len(x), -1)
        np.testing.assert_array_equal(got, ref[key], err_msg=key)
        counts[key] = int(ref[key].sum())
    assert all(0 < c < ref[k].size for k, c in counts.items()), counts
    np.testing.assert_allclose(out, res.output, rtol=1e-12, atol=1e-12)  # the readout: mean of the output
    return counts


def _snn_cnn_explicit():
    """test_nir's snnTorch CNN with explicit paddings (snnTorch's 'same' string has no round-trip value)."""
    import snntorch as snn

    torch.manual_seed(0)
    leaky = lambda shape, beta, thr: snn.Leaky(beta=torch.full(shape, beta), threshold=torch.full(shape, thr),  # noqa: E731
                                                reset_mechanism="zero")
    return [nn.Conv2d(1, 6, 3, padding=1), leaky((6, 8, 8), 0.9, 1.0), nn.AvgPool2d(2),
            nn.Conv2d(6, 8, 3, padding=1, bias=False), leaky((8, 4, 4), 0.7, 0.5),
            nn.Flatten(), nn.Linear(8 * 4 * 4, 10), leaky((10,), 0.8, 0.5)]


def _flat_residual(dt: float) -> nir.NIRGraph:
    """A flat NIR graph of per-neuron parameters: LIF with input gain 2, an identity shortcut (two edges into a LIF),
    Linear, IF with gain 0.5 and a Threshold readout layer."""
    rng = np.random.default_rng(3)
    tau1, tau2 = np.full(8, 4e-3), np.full(8, 2e-3)
    return nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([6])),
               "fc1": nir.Affine(weight=rng.normal(0, 0.8, (8, 6)).astype(np.float32),
                                 bias=rng.normal(0.2, 0.1, 8).astype(np.float32)),
               "lif1": nir.LIF(tau=tau1, r=2 * tau1 / dt, v_leak=np.zeros(8), v_threshold=np.full(8, 0.6),
                               v_reset=np.zeros(8)),
               "fc": nir.Affine(weight=rng.normal(0, 0.6, (8, 8)).astype(np.float32),
                                bias=rng.normal(0, 0.1, 8).astype(np.float32)),
               "lif2": nir.LIF(tau=tau2, r=tau2 / dt, v_leak=np.zeros(8), v_threshold=np.full(8, 0.8),
                               v_reset=np.zeros(8)),
               "fc2": nir.Linear(weight=rng.normal(0.3, 0.8, (4, 8)).astype(np.float32)),
               "if3": nir.IF(r=np.full(4, 0.5 / dt), v_threshold=np.full(4, 1.0), v_reset=np.zeros(4)),
               "th": nir.Threshold(threshold=np.full(4, 0.5)),
               "output": nir.Output(output_type=np.array([4]))},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc"), ("fc", "lif2"), ("lif1", "lif2"), ("lif2", "fc2"),
               ("fc2", "if3"), ("if3", "th"), ("th", "output")], type_check=False)


_GEOMETRY = ("stride", "padding", "dilation", "kernel_size")  # an int or one per axis: NIR writes either


def _assert_same_nir(a: nir.NIRGraph, b: nir.NIRGraph) -> int:
    """Every node of ``a`` in ``b`` with the same type and every field equal (shapes and values; geometry fields may
    be an int in one and a pair in the other); the same edges. Returns the number of arrays compared."""
    assert set(a.nodes) == set(b.nodes), (sorted(a.nodes), sorted(b.nodes))
    assert sorted(map(tuple, a.edges)) == sorted(map(tuple, b.edges))
    checked = 0
    for k, na in a.nodes.items():
        nb = b.nodes[k]
        assert type(na) is type(nb), (k, type(na), type(nb))
        da, db = na.to_dict(), nb.to_dict()
        da.pop("metadata", None), db.pop("metadata", None)
        assert set(da) == set(db), (k, sorted(da), sorted(db))
        for f, va in da.items():
            vb = db[f]
            if isinstance(va, dict):
                assert set(va) == set(vb) and all(np.array_equal(va[i], vb[i]) for i in va), (k, f, va, vb)
                continue
            if isinstance(va, str) or va is None:
                assert va == vb, (k, f, va, vb)
                continue
            x, y = np.asarray(va), np.asarray(vb)
            if f in _GEOMETRY:
                x, y = np.broadcast_arrays(x, y)
            assert x.shape == y.shape and np.array_equal(x, y), (k, f, x, y)
            checked += 1
    return checked


def test_round_trip_nir_ir_nir_keeps_every_parameter(tmp_path):
    from tests.test_nir_cuba import _dense_net, _dense_nir, _mixed_graph

    cases = [("cnn", _export_sequential(_snn_cnn_explicit(), (1, 8, 8)), 1e-4, "snntorch"),
             ("residual", _flat_residual(1e-3), 1e-3, "euler"),
             ("synaptic", _dense_nir(_dense_net()), 1e-4, "snntorch"),  # snnTorch's CubaLIF, and a CubaLI readout
             ("mixed", _mixed_graph(1e-3, scalar=False)[0], 1e-3, "euler"),  # CubaLIF, LI, CubaLI, I with gains
             ("mixed_zoh", _mixed_graph(1e-3, scalar=False)[0], 1e-3, "zoh")]
    for name, graph, dt, disc in cases:
        first = tmp_path / f"{name}.nir"
        _write(first, graph)
        ir = api.convert(load_nir(str(first), dt=dt, discretization=disc, time_steps=4), target="reference")
        second = tmp_path / f"{name}_again.nir"
        write_nir(ir, str(second), dt=dt)
        n = _assert_same_nir(nir.read(first, type_check=False), nir.read(second, type_check=False))
        assert n > 10, n
        a, b = (load_nir(str(f), dt=dt, discretization=disc, time_steps=4) for f in (first, second))  # IR -> NIR -> IR
        assert [(m.name, m.op, m.attrs) for m in a.topo()] == [(m.name, m.op, m.attrs) for m in b.topo()], name
        assert all(np.array_equal(m.params[k], b.nodes[m.name].params[k]) for m in a.topo() for k in m.params), name
    again = load_nir(str(tmp_path / "residual_again.nir"), dt=1e-3, discretization="euler", time_steps=4)
    assert again.meta["nir"]["neurons"]["lif1"]["gain"] == 2.0 and again.nodes["if3"].attrs["beta"] == 1.0
    again = load_nir(str(tmp_path / "mixed_again.nir"), dt=1e-3, discretization="euler", time_steps=4)
    assert [again.meta["nir"]["neurons"][k]["nir_type"] for k in ("cuba", "li", "cubali", "integ")] == [
        "CubaLIF", "LI", "CubaLI", "I"]
    assert again.meta["nir"]["neurons"]["cuba"]["gain"] == 3.0 and again.nodes["integ"].attrs == {"beta": 1.0}


class _Casc(nn.Module):
    """A CQReLU CNN with biases (wake-gated), a residual, AvgPool and a global average pool, L = 4."""

    def __init__(self):
        super().__init__()
        self.c1, self.a1 = nn.Conv2d(1, 4, 3, padding=1), CQReLU(4, 1.0)
        self.c2, self.a2 = nn.Conv2d(4, 4, 3, padding=1), CQReLU(4, 1.0)
        self.pool, self.c3, self.a3 = nn.AvgPool2d(2), nn.Conv2d(4, 6, 3, padding=1), CQReLU(4, 0.5)
        self.gap, self.flat, self.fc = nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 5)

    def forward(self, x):
        a = self.a1(self.c1(x))
        b = self.a2(self.c2(a) + a)
        return self.fc(self.flat(self.gap(self.a3(self.c3(self.pool(b))))))


def test_cif_network_round_trips_exactly_through_the_extension(tmp_path):
    torch.manual_seed(2)
    onnx_path = export_onnx(_Casc().eval(), torch.rand(2, 1, 8, 8), tmp_path / "casc.onnx")
    snn_g = api.convert(api.load(onnx_path), target="reference", gamma=2)
    path = str(tmp_path / "casc.nir")
    exp = write_nir(snn_g, path)
    assert exp.kind == "casc" and exp.t_wake == 4 and exp.time_steps == snn_g.schedule.steps
    other = nir.read(path)  # what other tools load: standard nodes, the approximation labelled
    assert other.metadata["t_wake"] == 4 and EXTENSION in other.metadata["neurocompile"]
    ifs = {k: v for k, v in other.nodes.items() if isinstance(v, nir.IF)}
    assert len(ifs) == 3 and all("approximation" in v.metadata for v in ifs.values())
    gates = sorted(k for k, v in other.nodes.items() if isinstance(v, nir.Input) and k.startswith("wake_"))
    assert gates == ["wake_1", "wake_1x4x4", "wake_1x8x8"]
    back = load_nir(path)
    assert sorted(n.op for n in back.nodes.values()) == sorted(n.op for n in snn_g.nodes.values())
    assert [n.attrs for n in back.nodes.values() if n.op == "CIF"] == [n.attrs for n in snn_g.nodes.values()
                                                                       if n.op == "CIF"]
    again = api.convert(back, steps=exp.time_steps)
    assert again.schedule.t_wake == snn_g.schedule.t_wake and again.schedule.steps == snn_g.schedule.steps
    x = np.random.default_rng(1).uniform(0, 1, (16, 1, 8, 8))
    a = api.simulate(snn_g, x, exact=True)
    b = api.simulate(again, x, exact=True)
    np.testing.assert_array_equal(b.output, a.output)  # float64, same graph: bit for bit
    assert [v for v in b.spikes.values()] == [v for v in a.spikes.values()]
    assert sum(v["neg"] for v in a.spikes.values()) > 0  # signed spikes were exercised
    print("CIF network spikes per layer (original = re-imported):", {k: v for k, v in a.spikes.items()})
    # a network converted for Lava (one step per synapse, balanced) is written as the same zero-delay network
    lava = to_nir(api.convert(api.load(onnx_path), target="lava-sim", gamma=2))
    assert lava.time_steps == exp.time_steps and set(lava.graph.nodes) == set(other.nodes)


def test_cli_runs_a_cif_nir_file_for_the_t_it_was_exported_with(tmp_path):
    """`neurocompile casc.nir` runs the exported T on the reference target (the file's zero-delay network), --steps
    overrides it; the readout equals the original network's."""
    torch.manual_seed(2)
    onnx_path = export_onnx(_Casc().eval(), torch.rand(2, 1, 8, 8), tmp_path / "casc.onnx")
    snn_g = api.convert(api.load(onnx_path), target="reference", steps=30)
    path = str(tmp_path / "casc.nir")
    write_nir(snn_g, path)
    x = np.random.default_rng(1).uniform(0, 1, (4, 1, 8, 8))
    np.save(tmp_path / "x.npy", x)
    for extra, T in (([], 30), (["--steps", "40"], 40)):
        out = subprocess.run([sys.executable, "-m", "neurocompile.cli", path, "--input", str(tmp_path / "x.npy"),
                              "--exact", "--quiet", "--json", str(tmp_path / "r.json"), *extra],
                             capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        got = json.loads((tmp_path / "r.json").read_text())
        assert got["steps"] == T
        np.testing.assert_allclose(got["outputs"], api.simulate(snn_g, x, exact=True).output, rtol=1e-12, atol=1e-15)


DIGITS = api.EXAMPLE_DATA.replace("digits_test.npy", "digits_cqrelu.onnx")  # the bundled CQReLU CNN: a max pool


def _same_run(a, b) -> None:
    """Two runs of the reference simulator (``exact=True``) agree bit for bit: readout, spike counts and every
    layer's per-step spikes (in layer order: a re-imported graph names its nodes by their NIR keys)."""
    np.testing.assert_array_equal(b.output, a.output)
    assert list(b.spikes.values()) == list(a.spikes.values())
    assert len(a.layers) == len(b.layers) and all(np.array_equal(u, v) for u, v in zip(a.layers.values(),
                                                                                      b.layers.values()))


def test_max_pooling_casc_cnn_round_trips_exactly_through_the_extension(tmp_path):
    """The bundled digits CNN (InhibitionMaxPool /6/MaxPool) exports by the API and the CLI; nir.read (type check
    on) loads a standard AvgPool2d labelled as an approximation; neurocompile reads the exact pool back and the
    network runs bit for bit as the original."""
    snn_g = api.convert(api.load(DIGITS), target="reference")
    path = str(tmp_path / "digits.nir")
    exp = api.export_nir(DIGITS, path)
    assert exp.kind == "casc" and exp.time_steps == snn_g.schedule.steps and exp.types["AvgPool2d"] == 2
    cli_path = tmp_path / "cli.nir"
    assert cli.main(["export", DIGITS, "--format", "nir", "-o", str(cli_path)]) == 0
    other = nir.read(path)  # nir's own reader, with its type check
    assert _assert_same_nir(other, nir.read(cli_path)) > 10
    pool = other.nodes["6_MaxPool"]
    assert isinstance(pool, nir.AvgPool2d) and "approximation" in pool.metadata
    assert list(pool.kernel_size) == list(pool.stride) == [2, 2] and list(pool.padding) == [0, 0]
    assert pool.output_type["output"].tolist() == [32, 4, 4]
    assert json.loads(pool.metadata["neurocompile"]) == {"op": "InhibitionMaxPool", "attrs": snn_g.nodes[
        "/6/MaxPool"].attrs}
    back = load_nir(path)
    assert back.nodes["6_MaxPool"].op == "InhibitionMaxPool"
    assert back.nodes["6_MaxPool"].attrs == snn_g.nodes["/6/MaxPool"].attrs
    assert sorted(n.op for n in back.nodes.values()) == sorted(n.op for n in snn_g.nodes.values())
    again = api.convert(back, steps=exp.time_steps)
    assert again.schedule.t_wake == snn_g.schedule.t_wake and again.schedule.steps == snn_g.schedule.steps
    x = np.load(api.EXAMPLE_DATA)
    a = api.simulate(snn_g, x, exact=True, record_layers=True)
    b = api.simulate(again, x, exact=True, record_layers=True)
    _same_run(a, b)
    assert sum(v["neg"] for v in a.spikes.values()) > 0  # signed spikes were exercised
    print("digits CNN spikes per layer (original = re-imported):", dict(a.spikes))


class _PoolCasc(nn.Module):
    """A CQReLU CNN around one max pool ``pool`` of a 4-channel map (``out`` windows a side)."""

    def __init__(self, pool: nn.Module, out: int):
        super().__init__()
        self.c1, self.a1, self.pool = nn.Conv2d(1, 4, 3, padding=1), CQReLU(4, 1.0), pool
        self.c2, self.a2 = nn.Conv2d(4, 4, 3, padding=1), CQReLU(4, 1.0)
        self.flat, self.fc = nn.Flatten(), nn.Linear(4 * out * out, 3)

    def forward(self, x):
        return self.fc(self.flat(self.a2(self.c2(self.pool(self.a1(self.c1(x)))))))


class _PoolStudent(nn.Module):
    """A LIF student with a max pool of its spikes (a MaxPool in the converted graph)."""

    def __init__(self, pool: nn.Module, out: int):
        super().__init__()
        self.c1, self.l1, self.pool = nn.Conv2d(1, 4, 3, padding=1), LIF(0.5, 0.5), pool
        self.flat, self.fc = nn.Flatten(), nn.Linear(4 * out * out, 3)

    def forward(self, x):
        return self.fc(self.flat(self.pool(self.l1(self.c1(x)))))


def test_max_pool_attributes_round_trip_exactly(tmp_path):
    """Overlapping windows, padding (-inf for a max pool) and ceil_mode (no partial window here) come back exactly:
    an InhibitionMaxPool of a CIF network (which then runs bit for bit) and a student's MaxPool."""
    torch.manual_seed(0)
    pool = lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True)  # noqa: E731 - 9x9 -> 5x5
    attrs = {"kernel": [3, 3], "stride": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}
    casc = api.convert(api.load(export_onnx(_PoolCasc(pool(), 5).eval(), torch.rand(2, 1, 9, 9),
                                            tmp_path / "casc.onnx")), target="reference")
    student = api.convert(api.load(export_onnx(_PoolStudent(pool(), 5).eval(), torch.rand(2, 1, 9, 9),
                                               tmp_path / "student.onnx", time_steps=4)), target="reference")
    for g, op in ((casc, "InhibitionMaxPool"), (student, "StepMaxPool")):
        assert g.nodes["/pool/MaxPool"].op == op and g.nodes["/pool/MaxPool"].attrs == attrs
        path = str(tmp_path / f"{op}.nir")
        exp = write_nir(g, path)
        node = nir.read(path).nodes["pool_MaxPool"]
        assert isinstance(node, nir.AvgPool2d) and list(node.padding) == [1, 1] and list(node.kernel_size) == [3, 3]
        assert node.output_type["output"].tolist() == [4, 5, 5] and op in node.metadata["approximation"]
        back = load_nir(path)
        assert (back.nodes["pool_MaxPool"].op, back.nodes["pool_MaxPool"].attrs) == (op, attrs)
        assert back.shapes["pool_MaxPool"] == g.shapes[g.nodes["/pool/MaxPool"].output] == (4, 5, 5)
        again = tmp_path / f"{op}_again.nir"  # and NIR -> IR -> NIR gives the same file
        write_nir(api.convert(back, steps=exp.time_steps) if op == "InhibitionMaxPool" else api.convert(back),
                  str(again))
        assert _assert_same_nir(nir.read(path), nir.read(again)) > 5
        assert nir.read(again).nodes["pool_MaxPool"].metadata == node.metadata
    again = api.convert(load_nir(str(tmp_path / "InhibitionMaxPool.nir")), steps=casc.schedule.steps)
    x = np.random.default_rng(0).uniform(0, 1, (8, 1, 9, 9))
    _same_run(api.simulate(casc, x, exact=True, record_layers=True),
              api.simulate(again, x, exact=True, record_layers=True))


def test_max_pools_nir_cannot_hold_are_refused_naming_the_node(tmp_path):
    """A partial (ceil_mode) window or asymmetric pads: the standard AvgPool2d would have other windows (nir.read's
    shape inference another output shape), so the pool is refused in one paragraph naming the node."""
    torch.manual_seed(0)
    onnx = export_onnx(_PoolCasc(nn.MaxPool2d(2, ceil_mode=True), 4).eval(), torch.rand(2, 1, 7, 7),
                       tmp_path / "ceil.onnx")  # 7x7 -> 4x4 windows, 3x3 without ceil_mode
    with pytest.raises(ConversionError) as info:
        api.export_nir(onnx, str(tmp_path / "ceil.nir"))
    err = info.value
    assert (err.node, err.op) == ("/pool/MaxPool", "InhibitionMaxPool") and "partial (ceil_mode) window" in str(err)
    assert "\n" not in str(err) and not (tmp_path / "ceil.nir").exists()
    g = api.convert(api.load(DIGITS), target="reference")
    g.nodes["/6/MaxPool"].attrs["pads"] = [0, 0, 1, 1]  # 8x8 -> 4x4 windows still
    with pytest.raises(ConversionError) as info:
        to_nir(g)
    err = info.value
    assert (err.node, err.op) == ("/6/MaxPool", "InhibitionMaxPool") and "asymmetric pads [0, 0, 1, 1]" in str(err)
    assert "\n" not in str(err)
    # reading back: a max-pool record must describe the AvgPool2d it rides on
    graph = to_nir(api.convert(api.load(DIGITS), target="reference")).graph
    rec = json.loads(graph.nodes["6_MaxPool"].metadata["neurocompile"])
    graph.nodes["6_MaxPool"].metadata["neurocompile"] = json.dumps({**rec, "attrs": {**rec["attrs"], "kernel": [3, 3]}})
    with pytest.raises(ModelLoadError, match="disagrees with its AvgPool2d") as info:
        import_nir(graph)
    assert info.value.node == "6_MaxPool"


def test_refusals_name_the_node_and_op(tmp_path):
    g = api.load(DIGITS)
    with pytest.raises(ConversionError, match="converted network"):
        to_nir(g)
    student = api.load(_student_onnx(tmp_path))
    with pytest.raises(ConversionError, match="fixed-point"):
        to_nir(api.convert(student, target="lava-sim", fixed_point=True))
    with pytest.raises(ConversionError, match="no-balance"):
        to_nir(api.convert(student, target="lava-sim", balance=False))
    with pytest.raises(ConversionError, match="dt must be"):
        to_nir(api.convert(student, target="reference"), dt=0)


def test_cli_export_format_nir(tmp_path, capsys):
    student = _student_onnx(tmp_path)
    out = tmp_path / "net.nir"
    assert cli.main(["export", student, "--format", "nir", "-o", str(out)]) == 0
    line = capsys.readouterr().out
    assert line.startswith(f"wrote {out}: NIR 1.0.8 graph, 11 nodes") and f"T={T}" in line and "dt=0.0001" in line
    assert nir.read(out).metadata["time_steps"] == T
    again = tmp_path / "again.nir"  # a NIR file in, the same NIR file out
    assert cli.main(["export", str(out), "--format", "nir", "-o", str(again)]) == 0
    assert _assert_same_nir(nir.read(out), nir.read(again)) > 10
    slow = tmp_path / "slow.nir"  # another time step: the same student, tau = dt / (1 - beta)
    assert cli.main(["export", student, "--format", "nir", "--dt", "1e-3", "-o", str(slow)]) == 0
    assert np.all(nir.read(slow).nodes["l1_LIF"].tau == 1e-3 / (1 - 0.25))
    capsys.readouterr()
    bad = tmp_path / "bad.nir"
    torch.manual_seed(0)
    ceil = export_onnx(_PoolCasc(nn.MaxPool2d(2, ceil_mode=True), 4).eval(), torch.rand(2, 1, 7, 7),
                       tmp_path / "ceil.onnx")  # a partial window: refused
    assert cli.main(["export", ceil, "--format", "nir", "-o", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "node '/pool/MaxPool'" in err and "op InhibitionMaxPool" in err and "ceil.onnx" in err
    assert "\n" not in err.strip() and not bad.exists() and not list(tmp_path.glob(".neurocompile-*"))
    assert cli.main(["export", student, "--format", "nir", "--fixed-point", "-o", str(bad)]) == 2
    assert "--fixed-point cannot apply" in capsys.readouterr().err and not bad.exists()


def test_a_file_written_at_another_dt_reads_back_at_that_dt(tmp_path, capsys):
    """neurocompile's extension records the dt it wrote the file with: read back without --dt, the file is the
    network it was written from (a file of another tool still reads at snnTorch's 1e-4 s); and `export X.nir -o
    art.h5` takes the NIR options (it reloads the file with them)."""
    snn_g = api.convert(api.load(_student_onnx(tmp_path)), target="reference")
    path = str(tmp_path / "dt3.nir")
    write_nir(snn_g, path, dt=1e-3)
    back = load_nir(path)
    assert back.meta["nir"]["dt"] == 1e-3 and back.meta["nir"]["dt_from"].startswith("the file")
    lifs = [n for n in snn_g.topo() if n.op == "LIF"]
    assert [back.nodes[n.name.strip("/").replace("/", "_")].attrs["beta"] for n in lifs] == \
        [n.attrs["beta"] for n in lifs]
    x = np.random.default_rng(0).uniform(0, 1, (4, 1, 8, 8))
    a, b = (api.simulate(g, x, exact=True) for g in (snn_g, api.convert(back)))
    np.testing.assert_array_equal(b.output, a.output)
    assert load_nir(path, dt=1e-4).meta["nir"]["dt_from"] == "given"  # an explicit dt is the user's choice
    src = tmp_path / "cnn.nir"  # an snnTorch export carries no T: the artifact export takes --steps (and --dt)
    import snntorch as snn

    leaky = snn.Leaky(beta=torch.full((5,), 0.9), threshold=torch.full((5,), 1.0), reset_mechanism="zero")
    nir.write(src, _export_sequential([nn.Flatten(), nn.Linear(64, 5), leaky], (1, 8, 8)))
    assert cli.main(["export", str(src), "--steps", "6", "-o", str(tmp_path / "art.h5")]) == 0, capsys.readouterr()
    assert "(T_wake=6)" in capsys.readouterr().out
