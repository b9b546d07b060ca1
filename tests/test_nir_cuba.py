"""NIR's current-based and non-spiking neurons (CubaLIF; LI, CubaLI and I readouts) against the real peer.

snnTorch 1.0.0 writes ``snn.Synaptic`` as ``nir.CubaLIF`` (tau_syn = dt/(1 - alpha), w_in = tau_syn/dt,
tau_mem = dt/(1 - beta), r = tau_mem/dt, dt = 1e-4) and reads it back as a Synaptic with ``reset_delay=False``; it
has no mapping for ``nir.LI`` or ``nir.CubaLI`` in either direction. Its leaky-integrator readout is a Leaky or a
Synaptic with ``reset_mechanism="none"``, which its exporter writes as a LIF / CubaLIF with a threshold and a reset
that the module never applies; the tests write those nodes as the ``nir.LI`` / ``nir.CubaLI`` they are (the same
tau, r, w_in and v_leak, no threshold), which is what this file means by "snnTorch's LI readout".

Exactness as in tests/test_nir.py: neurocompile runs in float64 (``exact=True``) and so do snnTorch's modules (after
``.double()``); spikes are compared exactly per layer and step after checking that no snnTorch membrane comes within
MARGIN of its threshold, and the readout's membranes to 1e-9 relative.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import nir
from neurocompile import api, cli
from neurocompile.errors import ConversionError
from neurocompile.frontends.nir import load_nir
from tests.test_nir import _export_sequential, _refused, _small, _write

MARGIN = 1e-9
T = 12
DT = 1e-4


def _li_of(node) -> nir.NIRNode:
    """The leaky integrator an snnTorch readout (reset_mechanism="none") is: its exported LIF / CubaLIF without the
    threshold and reset it never applies."""
    if isinstance(node, nir.CubaLIF):
        return nir.CubaLI(tau_syn=node.tau_syn, tau_mem=node.tau_mem, r=node.r, v_leak=node.v_leak, w_in=node.w_in)
    return nir.LI(tau=node.tau, r=node.r, v_leak=node.v_leak)


def _synaptic(shape, alpha, beta, thr, readout=False):
    import snntorch as snn

    full = lambda v: torch.full(shape, v)  # noqa: E731 - per-neuron tensors: nir's type check needs the layer shape
    return snn.Synaptic(alpha=full(alpha), beta=full(beta), threshold=full(1e9 if readout else thr),
                        reset_mechanism="none" if readout else "zero", reset_delay=False, init_hidden=True)


def _dense_net():
    """Linear -> Synaptic -> Linear -> Synaptic -> Linear -> Synaptic readout (CubaLI), per-neuron parameters."""
    torch.manual_seed(0)
    mods = torch.nn.Sequential(torch.nn.Linear(16, 24), _synaptic((24,), 0.85, 0.9, 1.0),
                               torch.nn.Linear(24, 12), _synaptic((12,), 0.6, 0.75, 0.5),
                               torch.nn.Linear(12, 4), _synaptic((4,), 0.5, 0.8, None, readout=True))
    with torch.no_grad():
        mods[0].weight.mul_(1.5)
        mods[0].bias.add_(0.05)
        mods[2].weight.mul_(2.0)
    return mods


def _dense_nir(mods) -> nir.NIRGraph:
    """snnTorch's own export_to_nir (nirtorch's tracing; ignore_dims=[0] drops the batch it traces with), the readout
    written as the CubaLI it is."""
    from snntorch.export_nir import export_to_nir

    g = export_to_nir(mods, torch.rand(1, 16), ignore_dims=[0])
    assert isinstance(g.nodes["1"], nir.CubaLIF) and isinstance(g.nodes["5"], nir.CubaLIF)
    g.nodes["5"] = _li_of(g.nodes["5"])
    return g


def _export_dense(mods, path) -> None:
    _write(path, _dense_nir(mods))


def _run_snntorch(mods, x: np.ndarray, steps: int):
    """snnTorch's modules in float64 over ``steps`` steps of the constant input ``x``: per spiking neuron layer the
    spikes (steps, N, ...); the readout's membrane (steps, N, ...); the smallest |U - threshold| a spiking layer
    compared."""
    import snntorch as snn

    mods = [m.double() for m in mods]
    neurons = {i: m for i, m in enumerate(mods) if isinstance(m, (snn.Synaptic, snn.Leaky))}
    readout = max(neurons)
    margin = [np.inf]
    for i, m in neurons.items():
        m.syn, m.mem = torch.zeros(0), torch.zeros(0)  # a fresh state
        if i != readout:
            fire = m.fire

            def watched(mem, fire=fire, m=m):
                margin[0] = min(margin[0], float((mem - m.threshold).abs().min()))
                return fire(mem)

            m.fire = watched
    spikes = {str(i): [] for i in neurons if i != readout}
    mem = []
    xin = torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(steps):
            h = xin
            for i, m in enumerate(mods):
                h = m(h)
                if i in neurons:
                    h = h.double()  # snnTorch's Heaviside returns float32 0/1 (exact in either)
                    if i == readout:
                        mem.append(m.mem.numpy().copy())
                    else:
                        spikes[str(i)].append(h.numpy().copy())
    return {k: np.stack(v) for k, v in spikes.items()}, np.stack(mem), margin[0]


def _compare(res, ref: dict[str, np.ndarray]) -> dict[str, int]:
    counts = {}
    for name, spk in ref.items():
        got = np.diff(res.layers[name], axis=0, prepend=0)
        np.testing.assert_array_equal(got, spk, err_msg=f"layer {name}")
        counts[name] = int(spk.sum())
    assert all(0 < c < ref[k].size for k, c in counts.items()), counts  # neither silent nor saturated
    return counts


def _assert_membranes(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12 * float(np.abs(want).max()))


def test_snntorch_synaptic_net_with_cubali_readout_runs_spike_for_spike(tmp_path):
    mods = _dense_net()
    path = tmp_path / "synaptic.nir"
    _export_dense(mods, path)
    g = load_nir(str(path), time_steps=T)
    assert [n.op for n in g.topo()] == ["Input", "Dense", "CubaLIF", "Dense", "CubaLIF", "Dense", "LI"]
    meta = g.meta["nir"]
    for name, alpha, beta in (("1", 0.85, 0.9), ("3", 0.6, 0.75), ("5", 0.5, 0.8)):  # snnTorch's float32 values
        n = g.nodes[name]
        assert n.attrs["alpha"] == float(np.float32(alpha)) and n.attrs["beta"] == float(np.float32(beta))
        assert meta["neurons"][name]["alpha_inverts_export"] and meta["neurons"][name]["gain"] == 1.0
    assert meta["neurons"]["5"]["nir_type"] == "CubaLI" and meta["readout"]["membrane_outputs"] == ["5"]
    snn_g = api.convert(g)
    x = np.random.default_rng(0).uniform(0, 1, (8, 16))
    res = api.simulate(snn_g, x, exact=True, record_layers=True)
    ref, mem, margin = _run_snntorch(mods, x, T)
    assert margin > MARGIN, f"a reference membrane lies within {margin:.3g} of its threshold: a boundary case"
    counts = _compare(res, ref)
    got = api.readout_membrane(snn_g, res)
    assert got.shape == (T, 8, 4)
    _assert_membranes(got, mem)  # the readout's membrane after every step
    _assert_membranes(res.output, mem.mean(0))  # the run's readout: the mean membrane over the T steps
    print("snnTorch Synaptic net (CubaLI readout) spikes per layer:", counts)
    # snnTorch's default Synaptic (reset_delay=True) is another neuron, which the file cannot tell apart: after a spike
    # its membrane stays 0 for one step, (beta U + I) (1 - F(t-1)); NIR's reset, and snnTorch's importer, reset at once
    for i in (1, 3):
        mods[i].reset_delay = True
    delayed, _, _ = _run_snntorch(mods, x, T)
    assert all(delayed[k].sum() < ref[k].sum() for k in ref), ({k: int(v.sum()) for k, v in delayed.items()}, counts)


def _conv_net():
    """Conv2d -> Synaptic (4, 8, 8) -> AvgPool2d -> Flatten -> Linear -> Leaky readout (LI)."""
    import snntorch as snn

    torch.manual_seed(1)
    mods = [torch.nn.Conv2d(1, 4, 3, padding=1), _synaptic((4, 8, 8), 0.7, 0.8, 1.0), torch.nn.AvgPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(64, 10),
            snn.Leaky(beta=torch.full((10,), 0.9), threshold=torch.full((10,), 1e9), reset_mechanism="none",
                      init_hidden=True)]
    with torch.no_grad():
        mods[0].weight.mul_(2.0)
        mods[4].weight.mul_(3.0)
    return mods


def test_snntorch_synaptic_cnn_with_li_readout_runs_spike_for_spike(tmp_path):
    mods = _conv_net()
    graph = _export_sequential(mods, (1, 8, 8))  # snnTorch's per-module exporter, as tests/test_nir.py
    graph.nodes["5"] = _li_of(graph.nodes["5"])
    path = tmp_path / "cnn.nir"
    _write(path, graph)
    g = load_nir(str(path), time_steps=T)
    assert [n.op for n in g.topo()] == ["Input", "Conv", "CubaLIF", "AvgPool", "Flatten", "Dense", "LI"]
    assert g.nodes["5"].attrs == {"beta": float(np.float32(0.9))}
    x = np.load(api.EXAMPLE_DATA)[:8].astype(np.float64)
    snn_g = api.convert(g)
    res = api.simulate(snn_g, x, exact=True, record_layers=True)
    ref, mem, margin = _run_snntorch(mods, x, T)
    assert margin > MARGIN, f"a reference membrane lies within {margin:.3g} of its threshold: a boundary case"
    counts = _compare(res, ref)
    _assert_membranes(api.readout_membrane(snn_g, res), mem)
    _assert_membranes(res.output, mem.mean(0))
    print("snnTorch Synaptic CNN (LI readout) spikes per layer:", counts)


def test_cli_runs_the_synaptic_net_on_lava_like_the_reference(tmp_path, capsys):
    """`neurocompile net.nir --steps T --target lava-sim`: Lava's CUBA LIF (du = 1 - alpha) and neurocompile's
    LeakyIntegrator process give the reference simulator's readout and spikes; the CLI prints the membrane."""
    mods = _dense_net()
    path = tmp_path / "synaptic.nir"
    _export_dense(mods, path)
    x = np.random.default_rng(0).uniform(0, 1, (4, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = [str(path), "--steps", str(T), "--input", str(tmp_path / "x.npy"), "--quiet"]
    assert cli.main([*args, "--exact", "--json", str(tmp_path / "ref.json")]) == 0  # float64
    out = capsys.readouterr().out
    assert "readout    membrane of the leaky integrator '5'" in out, out
    assert cli.main([*args, "--target", "lava-sim", "--json", str(tmp_path / "lava.json")]) == 0
    r, v = (json.loads((tmp_path / f).read_text()) for f in ("ref.json", "lava.json"))
    assert r["steps"] == T < v["steps"] and v["ann_reference"] == "reference simulator"
    assert v["spikes"] == r["spikes"] and all(c["pos"] > 0 for c in r["spikes"].values()), (v["spikes"], r["spikes"])
    scale = float(np.abs(r["outputs"]).max())
    assert v["max_abs_error"] <= 1e-9 * scale
    np.testing.assert_allclose(v["outputs"], r["outputs"], rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(v["membrane_last"], r["membrane_last"], rtol=1e-9, atol=1e-12 * scale)
    ref, mem, _ = _run_snntorch(mods, x.astype(np.float64), T)  # and both are snnTorch's
    np.testing.assert_allclose(r["membrane_last"], mem[-1], rtol=1e-9, atol=1e-12 * scale)
    print("Lava spikes per layer:", {k: c["pos"] for k, c in v["spikes"].items()})


# ---- every node type, discretization and gain, by hand ------------------------------------------------------------
def _mixed_graph(dt: float, scalar: bool = True) -> tuple[nir.NIRGraph, dict]:
    """input(5) -> fc1 -> cuba (CubaLIF, w_in·r gain 3) -> fc2 -> li (LI in the middle, gain 0.5) -> fc3 -> lif ->
    fc4 -> { cubali (CubaLI) -> output, integ (I) -> output2 }: the CubaLIF's parameters scalars (shape ()) unless
    not ``scalar``, the others per-neuron arrays."""
    rng = np.random.default_rng(7)
    w = {"W1": rng.normal(0.3, 0.8, (6, 5)), "b1": rng.normal(0.1, 0.1, 6), "W2": rng.normal(0, 0.6, (6, 6)),
         "W3": rng.normal(0.2, 0.8, (4, 6)), "b3": rng.normal(0.1, 0.1, 4), "W4": rng.normal(0, 1.0, (3, 4))}
    w = {k: v.astype(np.float32) for k, v in w.items()}
    c = {"ts": 3e-3, "tm": 5e-3, "thr": 0.9, "tau_li": 4e-3, "tau_lif": 2e-3, "thr_lif": 0.7,
         "ts2": 2e-3, "tm2": 6e-3, "r_i": 0.4 / dt}
    sc = (lambda v: np.array(v)) if scalar else (lambda v: np.full(6, v))  # noqa: E731
    nodes = {
        "input": nir.Input(input_type=np.array([5])), "fc1": nir.Affine(weight=w["W1"], bias=w["b1"]),
        "cuba": nir.CubaLIF(tau_syn=sc(c["ts"]), tau_mem=sc(c["tm"]), r=sc(1.5 * c["tm"] / dt), v_leak=sc(0.0),
                            v_threshold=sc(c["thr"]), v_reset=sc(0.0), w_in=sc(2 * c["ts"] / dt)),
        "fc2": nir.Linear(weight=w["W2"]),
        "li": nir.LI(tau=np.full(6, c["tau_li"]), r=np.full(6, 0.5 * c["tau_li"] / dt), v_leak=np.zeros(6)),
        "fc3": nir.Affine(weight=w["W3"], bias=w["b3"]),
        "lif": nir.LIF(tau=np.full(4, c["tau_lif"]), r=np.full(4, c["tau_lif"] / dt), v_leak=np.zeros(4),
                       v_threshold=np.full(4, c["thr_lif"]), v_reset=np.zeros(4)),
        "fc4": nir.Linear(weight=w["W4"]),
        "cubali": nir.CubaLI(tau_syn=np.full(3, c["ts2"]), tau_mem=np.full(3, c["tm2"]), r=np.full(3, c["tm2"] / dt),
                             v_leak=np.zeros(3), w_in=np.full(3, c["ts2"] / dt)),
        "integ": nir.I(r=np.full(3, c["r_i"])),
        "output": nir.Output(output_type=np.array([3])), "output2": nir.Output(output_type=np.array([3]))}
    edges = [("input", "fc1"), ("fc1", "cuba"), ("cuba", "fc2"), ("fc2", "li"), ("li", "fc3"), ("fc3", "lif"),
             ("lif", "fc4"), ("fc4", "cubali"), ("cubali", "output"), ("fc4", "integ"), ("integ", "output2")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), {**w, **c}


def _decays(tau: float, dt: float, disc: str) -> tuple[float, float]:
    """(decay, input factor) of tau dx/dt = -x + w u for one step: Euler (1 - dt/tau, dt/tau), zoh (e, 1 - e)."""
    if disc == "zoh":
        d = math.exp(-dt / tau)
        return d, 1 - d
    return 1 - dt / tau, dt / tau


def _run_mixed(p: dict, x: np.ndarray, steps: int, dt: float, disc: str):
    """The mixed graph by hand in float64 from its NIR parameters: each ODE tau dx/dt = -x + w u stepped as
    documented, x = d x + (w c) u (the membrane takes the step's new current)."""
    a1, ca = _decays(p["ts"], dt, disc)
    b1, cb = _decays(p["tm"], dt, disc)
    bl, cl = _decays(p["tau_li"], dt, disc)
    bf, cf = _decays(p["tau_lif"], dt, disc)
    a2, ca2 = _decays(p["ts2"], dt, disc)
    b2, cb2 = _decays(p["tm2"], dt, disc)
    g1 = (2 * p["ts"] / dt * ca) * (1.5 * p["tm"] / dt * cb)  # w_in c_syn · r c_mem
    gl, gf = 0.5 * p["tau_li"] / dt * cl, p["tau_lif"] / dt * cf
    gs2, gm2 = p["ts2"] / dt * ca2, p["tm2"] / dt * cb2
    W = {k: np.asarray(v, np.float64) for k, v in p.items() if k[0] in "Wb"}
    N = len(x)
    i1, u1, vl, uf = np.zeros((N, 6)), np.zeros((N, 6)), np.zeros((N, 6)), np.zeros((N, 4))
    i2, v2, vi = np.zeros((N, 3)), np.zeros((N, 3)), np.zeros((N, 3))
    out = {"cuba": [], "lif": [], "cubali": [], "integ": []}
    margin = np.inf
    for _ in range(steps):
        i1 = a1 * i1 + g1 * (x @ W["W1"].T + W["b1"])
        u1 = b1 * u1 + i1
        f1 = (u1 > p["thr"]).astype(float)
        margin = min(margin, float(np.abs(u1 - p["thr"]).min()))
        u1 = u1 * (1 - f1)
        vl = bl * vl + gl * (f1 @ W["W2"].T)
        uf = bf * uf + gf * (vl @ W["W3"].T + W["b3"])
        ff = (uf > p["thr_lif"]).astype(float)
        margin = min(margin, float(np.abs(uf - p["thr_lif"]).min()))
        uf = uf * (1 - ff)
        cur = ff @ W["W4"].T
        i2 = a2 * i2 + gs2 * cur
        v2 = b2 * v2 + gm2 * i2
        vi = vi + p["r_i"] * dt * cur
        for k, v in (("cuba", f1), ("lif", ff), ("cubali", v2), ("integ", vi)):
            out[k].append(v.copy())
    return {k: np.stack(v) for k, v in out.items()}, margin


@pytest.mark.parametrize("disc", ["euler", "zoh"])
def test_every_node_type_and_discretization_as_written(tmp_path, disc):
    dt = 1e-3
    graph, p = _mixed_graph(dt)
    _write(tmp_path / "mixed.nir", graph)
    g = load_nir(str(tmp_path / "mixed.nir"), dt=dt, discretization=disc, time_steps=T)
    ops_ = {n.name: n.op for n in g.topo()}
    assert ops_["cuba"] == "CubaLIF" and ops_["li"] == ops_["cubali"] == ops_["integ"] == "LI"
    assert ops_["cuba.gain"] == ops_["li.gain"] == ops_["integ.gain"] == "Mul"
    assert ("cubali.gain" in ops_) == (disc == "zoh")  # w_in·c_syn·r·c_mem is 1 in Euler (snnTorch's convention)
    gains = {k: g.meta["nir"]["neurons"][k]["gain"] for k in ("cuba", "li", "integ")}
    want_gain = (2 * p["ts"] / dt * _decays(p["ts"], dt, disc)[1]) * (1.5 * p["tm"] / dt * _decays(p["tm"], dt, disc)[1])
    assert disc == "zoh" or math.isclose(want_gain, 3.0)
    assert math.isclose(gains["cuba"], want_gain, rel_tol=1e-12) and math.isclose(gains["integ"], 0.4, rel_tol=1e-12)
    assert g.nodes["integ"].attrs == {"beta": 1.0} and g.nodes["cubali"].attrs["alpha"] == _decays(p["ts2"], dt, disc)[0]
    x = np.random.default_rng(8).uniform(0, 1, (8, 5))
    snn_g = api.convert(g)
    res = api.simulate(snn_g, x, exact=True, record_layers=True)
    ref, margin = _run_mixed(p, x, T, dt, disc)
    assert margin > MARGIN, f"a reference membrane lies within {margin:.3g} of its threshold: a boundary case"
    counts = _compare(res, {"cuba": ref["cuba"], "lif": ref["lif"]})
    _assert_membranes(api.readout_membrane(snn_g, res), ref["cubali"])  # the first output: CubaLI's membrane
    _assert_membranes(res.outputs["cubali"], ref["cubali"].mean(0))
    _assert_membranes(res.outputs["integ"], ref["integ"].mean(0))  # the second: I's membrane, averaged
    print(f"mixed graph ({disc}) spikes per layer:", counts)


def test_snntorch_default_recovers_float32_decays_and_lava_needs_no_rounding():
    """snnTorch's float32 alpha and beta come back exactly (snntorch_beta), so Lava's 1 - (1 - alpha) is alpha."""
    g, _ = _mixed_graph(1e-3)
    cuba = nir.CubaLIF(tau_syn=np.full(3, DT / (1 - np.float32(0.95))), tau_mem=np.full(3, DT / (1 - np.float32(0.55))),
                       r=np.full(3, 1.0 / (1 - np.float32(0.55))), v_leak=np.zeros(3), v_threshold=np.ones(3),
                       w_in=np.full(3, 1.0 / (1 - np.float32(0.95))))
    graph = _small(nodes={"lif": cuba, "input": nir.Input(input_type=np.array([3]))})
    from neurocompile.frontends.nir import import_nir

    n = import_nir(graph, time_steps=2).nodes["lif"]
    assert n.attrs["alpha"] == float(np.float32(0.95)) and n.attrs["beta"] == float(np.float32(0.55))
    assert 1 - (1 - n.attrs["alpha"]) == n.attrs["alpha"] and 1 - (1 - n.attrs["beta"]) == n.attrs["beta"]


# ---- refusals ----------------------------------------------------------------------------------------------------
def _cuba(**over):
    kw = dict(tau_syn=np.full(3, 1e-3), tau_mem=np.full(3, 2e-3), r=np.full(3, 20.0), v_leak=np.zeros(3),
              v_threshold=np.ones(3), v_reset=np.zeros(3), w_in=np.full(3, 10.0))
    kw.update(over)
    return nir.CubaLIF(**kw)


def test_refusals(tmp_path):
    _refused(tmp_path, _small(nodes={"lif": _cuba(v_leak=np.full(3, 0.1))}), ConversionError, "v_leak = 0.1",
             "node 'lif'", "op CubaLIF")
    _refused(tmp_path, _small(nodes={"lif": _cuba(v_reset=np.full(3, -0.5))}), ConversionError, "v_reset = -0.5",
             "hard reset", "op CubaLIF")
    _refused(tmp_path, _small(nodes={"lif": _cuba(tau_syn=np.array([1e-3, 1e-3, -2e-3]))}), ConversionError,
             "tau_syn = -0.002: a time constant must be positive", "op CubaLIF")
    _refused(tmp_path, _small(nodes={"lif": _cuba(tau_syn=np.full(3, 5e-5))}), ConversionError,
             "dt = 0.0001 s > tau_syn", "alpha", "--discretization zoh")
    li = nir.LI(tau=np.full(3, 1e-3), r=np.full(3, 10.0), v_leak=np.full(3, -0.2))
    _refused(tmp_path, _small(nodes={"lif": li}), ConversionError, "v_leak = -0.2", "op LI")
    cubali = nir.CubaLI(tau_syn=np.full(3, 1e-3), tau_mem=np.array([1e-3, 0.0, 1e-3]), r=np.full(3, 10.0),
                        v_leak=np.zeros(3))
    _refused(tmp_path, _small(nodes={"lif": cubali}), ConversionError, "tau_mem = 0: a time constant must be positive",
             "op CubaLI")
    wrong = nir.LI(tau=np.full(4, 1e-3), r=np.full(4, 10.0), v_leak=np.zeros(4))
    _refused(tmp_path, _small(nodes={"lif": wrong}), Exception, "inconsistent shapes", "op LI")
    only = nir.LI(tau=np.full(3, 1e-3), r=np.full(3, 10.0), v_leak=np.zeros(3))
    _refused(tmp_path, _small(nodes={"lif": only}), ConversionError, "no spiking neuron", "node 'lif'", "op LI")


def test_fixed_point_is_refused(tmp_path):
    """Lava's bit-accurate models have no CubaLIF or LI: --fixed-point is refused naming the neuron."""
    li = nir.LI(tau=np.full(2, 1e-3), r=np.full(2, 10.0), v_leak=np.zeros(2))
    for graph, node, op in ((_small(nodes={"lif": _cuba()}), "lif", "CubaLIF"),
                            (nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])),
                                                 "fc": nir.Affine(weight=np.ones((3, 3)), bias=np.zeros(3)),
                                                 "lif": nir.LIF(tau=np.array(1e-3), r=np.array(10.0),
                                                                v_leak=np.array(0.0), v_threshold=np.array(1.0)),
                                                 "fc2": nir.Linear(weight=np.ones((2, 3))), "li": li,
                                                 "output": nir.Output(output_type=np.array([2]))},
                                          edges=[("input", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "li"),
                                                 ("li", "output")], type_check=False), "li", "LI")):
        _write(tmp_path / "g.nir", graph)
        g = load_nir(str(tmp_path / "g.nir"), time_steps=4)
        with pytest.raises(ConversionError) as info:
            api.convert(g, target="lava-sim", fixed_point=True)
        assert (info.value.node, info.value.op) == (node, op) and "no integer form" in str(info.value), info.value


def test_lava_runs_outputs_of_unequal_depth_with_persisting_state_like_the_reference(tmp_path, capsys):
    """Two outputs whose readouts Lava reaches at different steps (6 and 7: I has an input-gain connection, CubaLI
    none): each sample's stream runs a step past the earlier output's T, in which a CubaLIF's current and the LIs'
    membranes persist. Every sink stops after its own T steps (passes.lower_to_blocks.sink_ends), so lava-sim gives
    the reference simulator's undelayed outputs and spikes."""
    graph, _ = _mixed_graph(1e-3)
    path = tmp_path / "mixed.nir"
    _write(path, graph)
    g = load_nir(str(path), dt=1e-3, discretization="euler", time_steps=T)
    s = api.convert(g, target="lava-sim").schedule
    assert sorted({s.arrival[k] for k in ("cubali", "integ")}) == [6, 7]
    x = np.random.default_rng(4).uniform(0, 1, (3, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = [str(path), "--steps", str(T), "--dt", "1e-3", "--discretization", "euler", "--input",
            str(tmp_path / "x.npy"), "--quiet"]
    assert cli.main([*args, "--target", "reference", "--exact", "--json", str(tmp_path / "ref.json")]) == 0
    assert cli.main([*args, "--target", "lava-sim", "--json", str(tmp_path / "lava.json")]) == 0
    capsys.readouterr()
    r, v = (json.loads((tmp_path / f).read_text()) for f in ("ref.json", "lava.json"))
    assert v["spikes"] == r["spikes"] and all(c["pos"] > 0 for c in r["spikes"].values()), (v["spikes"], r["spikes"])
    scale = float(np.abs(r["outputs"]).max())
    np.testing.assert_allclose(v["outputs"], r["outputs"], rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(v["membrane_last"], r["membrane_last"], rtol=1e-9, atol=1e-12 * scale)
    with capsys.disabled():
        print("mixed graph on lava-sim, spikes per layer:", {k: c["pos"] for k, c in v["spikes"].items()})


def test_reference_with_delays_gives_the_undelayed_numbers_for_outputs_of_unequal_depth(tmp_path, capsys):
    """The mixed graph's outputs are reached at different steps with synaptic delays (6 and 7 at delay 1: I has an
    input-gain connection, CubaLI none), so a run of T + 7 steps gives the earlier output and every layer above it
    steps past the network's T, where the CubaLIF's current and the LIs' membranes persist. Each sink stops after its
    own T steps (passes.lower_to_blocks.sink_ends): at delays 1 and 2, step by step and layer by layer, with the input held or
    given per step, the outputs, spike counts, the layers' final counts and membranes and the readout's membrane are
    the undelayed run's, bit for bit in float64; so is the CLI's --delay 1 (and Lava's:
    test_lava_runs_outputs_of_unequal_depth_with_persisting_state_like_the_reference)."""
    graph, _ = _mixed_graph(1e-3)
    path = tmp_path / "mixed.nir"
    _write(path, graph)
    rng = np.random.default_rng(8)
    for x in (rng.uniform(0, 1, (6, 5)), (rng.uniform(0, 1, (6, 9, 5)) < 0.6).astype(np.float64)):
        runs = {}
        for delay in (0, 1, 2):
            snn_g = api.convert(load_nir(str(path), dt=1e-3, discretization="euler", time_steps=T),
                                synapse_delay=delay)
            for multi in (False, True):
                res = api.simulate(snn_g, x, exact=not multi, dtype="float64" if multi else None, multi_step=multi,
                                   record_layers=True)
                runs[delay, multi] = res, api.readout_membrane(snn_g, res)
        assert runs[1, False][0].steps == T + 7 and runs[2, False][0].steps == T + 14
        want, want_mem = runs[0, False]
        assert all(0 < c["pos"] < want.layers[k][0].size * T for k, c in want.spikes.items()), want.spikes
        for (delay, multi), (res, mem) in runs.items():
            for o in ("cubali", "integ"):
                np.testing.assert_array_equal(res.outputs[o], want.outputs[o], err_msg=f"{o} at delay {delay}")
            assert res.spikes == want.spikes, (delay, multi, res.spikes, want.spikes)
            for k in want.layers:
                np.testing.assert_array_equal(res.layers[k][-1], want.layers[k][-1])
                np.testing.assert_allclose(res.membranes[k], want.membranes[k], rtol=1e-12, atol=1e-12)
            # the earlier output's membrane after each of its own T steps (rows from its arrival, 6 x delay steps; they
            # end (7 - 6) x delay steps before the run's)
            assert len(mem) == 6 * delay + T
            _assert_membranes(mem[len(mem) - T:], want_mem)
    x = rng.uniform(0, 1, (4, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    args = [str(path), "--steps", str(T), "--dt", "1e-3", "--discretization", "euler", "--input",
            str(tmp_path / "x.npy"), "--target", "reference", "--quiet"]
    for delay in (0, 1):
        assert cli.main([*args, "--delay", str(delay), "--json", str(tmp_path / f"d{delay}.json")]) == 0
    capsys.readouterr()
    d0, d1 = (json.loads((tmp_path / f"d{d}.json").read_text()) for d in (0, 1))
    assert (d0["steps"], d1["steps"]) == (T, T + 7)
    for key in ("outputs", "spikes", "membrane_last", "outputs_by_name"):
        assert d1[key] == d0[key], key
    assert list(d0["outputs_by_name"]) == ["cubali", "integ"] and d0["outputs_by_name"]["cubali"] == d0["outputs"]
    with capsys.disabled():
        print("mixed graph at delays 0, 1, 2 spikes per layer (per-step input):", {k: c["pos"] for k, c in
                                                                                   want.spikes.items()})
