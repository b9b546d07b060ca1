"""Per-neuron parameters that differ within a layer (NIR's per-neuron arrays; snnTorch's tensor beta and threshold).

The IR's LIF, CubaLIF and LI take a parameter of the same name as an attribute (``ops.Op.per_neuron``) as an array of
the layer's shape; the reference simulator and Lava (neurocompile's LeakyNeuron and LeakyIntegrator processes) run
them, the NIR export writes them back, fixed point refuses them. Exactness as in tests/test_nir.py: float64 on both
sides, spikes compared exactly after checking that no reference membrane lies within MARGIN of its threshold.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nir
from neurocompile import api, cli
from neurocompile.errors import ConversionError, ValidationError
from neurocompile.frontends.nir import load_nir
from neurocompile.exporters.nir import write_nir
from tests.test_nir import MARGIN, T, _compare_layers, _export_sequential, _run_snntorch, _snn_cnn, _write
from tests.test_nir_export import _same_in_snntorch

DT = 1e-4


def _leaky(values_beta: torch.Tensor, values_thr: torch.Tensor):
    import snntorch as snn

    return snn.Leaky(beta=values_beta, threshold=values_thr, reset_mechanism="zero")


def _per_neuron_cnn(uniform_thresholds: bool = False):
    """snnTorch's LIF CNN with a beta per neuron (conv1), per channel (conv2, broadcast to the layer: snnTorch's
    exporter writes every parameter at the layer's shape) and per neuron (fc); thresholds per neuron unless
    ``uniform_thresholds`` (snnTorch's own importer takes one threshold per layer)."""
    g = torch.Generator().manual_seed(1)
    u = lambda shape, lo, hi: lo + (hi - lo) * torch.rand(shape, generator=g)  # noqa: E731
    thr = (lambda shape, v: torch.full(shape, v)) if uniform_thresholds else (lambda shape, v: u(shape, 0.5 * v, 1.5 * v))  # noqa: E731
    betas = {0.9: ((6, 8, 8), 0.55, 0.95), 0.7: ((8, 1, 1), 0.5, 0.9), 0.8: ((10,), 0.6, 0.9)}  # each layer's draw

    def leaky(shape, beta, threshold):
        drawn, lo, hi = betas[beta]
        return _leaky(u(drawn, lo, hi).expand(shape).contiguous(), thr(shape, threshold))

    return _snn_cnn(leaky)


def test_snntorch_per_neuron_betas_and_thresholds_run_spike_for_spike(tmp_path):
    mods = _per_neuron_cnn()
    path = tmp_path / "per_neuron.nir"
    nir.write(path, _export_sequential(mods, (1, 8, 8)))
    g = load_nir(str(path), time_steps=T)
    for name in ("1", "4", "7"):  # snnTorch's float32 betas and thresholds, recovered exactly per neuron
        n, m = g.nodes[name], mods[int(name)]
        assert sorted(n.params) == ["beta", "threshold"] and "beta" not in n.attrs
        np.testing.assert_array_equal(n.params["beta"], m.beta.detach().numpy().astype(np.float64))
        np.testing.assert_array_equal(n.params["threshold"], m.threshold.detach().numpy().astype(np.float64))
        rec = g.meta["nir"]["neurons"][name]
        assert rec["beta_inverts_export"] and rec["gain"] == 1.0 and set(rec["per_neuron"]) == {"beta", "threshold"}
    x = np.load(api.EXAMPLE_DATA)[:8].astype(np.float64)
    snn_g = api.convert(g)
    res = api.simulate(snn_g, x, exact=True, record_layers=True)
    ref, margin = _run_snntorch(mods, x, T)
    assert margin > MARGIN, f"a reference membrane lies within {margin:.3g} of its threshold: a boundary case"
    counts = _compare_layers(res, ref)
    assert all(0 < c < ref[k].size for k, c in counts.items()), counts
    np.testing.assert_array_equal(res.output, ref["7"].mean(0))
    fast = api.simulate(snn_g, x, exact=True, multi_step=True)  # the layer-at-a-time executor, too
    np.testing.assert_array_equal(fast.output, res.output)
    print("snnTorch per-neuron CNN spikes per layer:", counts)
    np.save(tmp_path / "x.npy", x[:4])  # and on lava-sim (LeakyNeuron processes, conv layers in Lava's layout)
    args = [str(path), "--steps", str(T), "--input", str(tmp_path / "x.npy"), "--quiet"]
    assert cli.main([*args, "--target", "lava-sim", "--json", str(tmp_path / "lava.json")]) == 0
    lava = json.loads((tmp_path / "lava.json").read_text())
    assert {k: c["pos"] for k, c in lava["spikes"].items()} == {k: int(v[:, :4].sum()) for k, v in ref.items()}
    np.testing.assert_array_equal(lava["outputs"], ref["7"][:, :4].mean(0))


def test_student_with_per_neuron_betas_exports_and_snntorch_imports_it_spike_for_spike(tmp_path):
    """neurocompile -> NIR (per-neuron tau) -> snnTorch's import_from_nir: the same spikes; and back into neurocompile
    with every beta exact (the file's metadata lists each layer's distinct betas)."""
    mods = _per_neuron_cnn(uniform_thresholds=True)
    src = tmp_path / "src.nir"
    nir.write(src, _export_sequential(mods, (1, 8, 8)))
    snn_g = api.convert(load_nir(str(src), time_steps=T))
    path = str(tmp_path / "out.nir")
    write_nir(snn_g, path)
    lif = nir.read(path).nodes["1"]
    beta = mods[1].beta.detach().numpy().astype(np.float64)
    assert lif.tau.shape == (6, 8, 8) and np.all(lif.tau == DT / (1.0 - beta)) and np.all(lif.r == lif.tau / DT)
    counts = _same_in_snntorch(snn_g, path, np.load(api.EXAMPLE_DATA)[:6].astype(np.float64),
                               {k: k for k in ("1", "4", "7")}, steps=T)
    back = load_nir(path)  # neurocompile's own re-import: every per-neuron beta exactly
    for name in ("1", "4", "7"):
        np.testing.assert_array_equal(back.nodes[name].params["beta"], snn_g.nodes[name].params["beta"])
        assert back.meta["nir"]["neurons"][name]["beta_from"] == "metadata"
    print("per-neuron student -> NIR -> snnTorch spikes per layer:", counts)


def _per_neuron_nir() -> tuple[nir.NIRGraph, np.ndarray]:
    """input(6) -> fc1 -> CubaLIF (tau_syn, tau_mem, r, threshold per neuron) -> fc2 -> LIF (tau, r, threshold per
    neuron) -> fc3 -> CubaLI readout (per-neuron tau_syn, tau_mem). The CubaLIF and LIF have an input gain per neuron
    (r differs from snnTorch's tau / dt), the readout gain 1."""
    rng = np.random.default_rng(3)
    u = lambda n, lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    z = np.zeros
    w = lambda *shape, s: rng.normal(0, s, shape).astype(np.float32).astype(np.float64)  # noqa: E731 - the IR's weights
    tau, ts1, tm1, ts3, tm3 = u(10, 2e-4, 1e-3), u(8, 2e-4, 8e-4), u(8, 3e-4, 1e-3), u(3, 2e-4, 6e-4), u(3, 5e-4, 2e-3)
    nodes = {
        "input": nir.Input(input_type=np.array([6])),
        "fc1": nir.Affine(weight=w(8, 6, s=1.2), bias=rng.uniform(0, 0.2, 8).astype(np.float32).astype(np.float64)),
        "cuba": nir.CubaLIF(tau_syn=ts1, tau_mem=tm1, r=tm1 / DT * u(8, 0.8, 1.2), w_in=ts1 / DT, v_leak=z(8),
                            v_threshold=u(8, 0.3, 0.9), v_reset=z(8)),
        "fc2": nir.Linear(weight=w(10, 8, s=1.5)),
        "lif": nir.LIF(tau=tau, r=tau / DT * u(10, 0.8, 1.3), v_leak=z(10), v_threshold=u(10, 0.4, 1.0),
                       v_reset=z(10)),
        "fc3": nir.Linear(weight=w(3, 10, s=1.0)),
        "readout": nir.CubaLI(tau_syn=ts3, tau_mem=tm3, r=tm3 / DT, w_in=ts3 / DT, v_leak=z(3)),
        "output": nir.Output(output_type=np.array([3])),
    }
    edges = [("input", "fc1"), ("fc1", "cuba"), ("cuba", "fc2"), ("fc2", "lif"), ("lif", "fc3"), ("fc3", "readout"),
             ("readout", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges), rng.uniform(0, 1, (5, 6))


def _hand_loop(g: nir.NIRGraph, x: np.ndarray, steps: int):
    """The graph of :func:`_per_neuron_nir` by hand in float64 (forward Euler, dt = DT): spikes per spiking layer
    (steps, N, n), the readout's membrane (steps, N, 3), the smallest |U - threshold| compared."""
    nd = g.nodes
    c, lf, ro = nd["cuba"], nd["lif"], nd["readout"]
    a1, b1, g1 = 1 - DT / c.tau_syn, 1 - DT / c.tau_mem, (c.w_in * DT / c.tau_syn) * (c.r * DT / c.tau_mem)
    b2, g2 = 1 - DT / lf.tau, lf.r * DT / lf.tau
    a3, b3 = 1 - DT / ro.tau_syn, 1 - DT / ro.tau_mem
    i1 = u1 = u2 = i3 = v3 = 0.0
    s1, s2, mem, margin = [], [], [], np.inf
    for _ in range(steps):
        i1 = a1 * i1 + g1 * (x @ nd["fc1"].weight.T + nd["fc1"].bias)
        u1 = b1 * u1 + i1
        margin = min(margin, float(np.abs(u1 - c.v_threshold).min()))
        f1 = (u1 > c.v_threshold).astype(float)
        u1 = u1 * (1 - f1)
        u2 = b2 * u2 + g2 * (f1 @ nd["fc2"].weight.T)
        margin = min(margin, float(np.abs(u2 - lf.v_threshold).min()))
        f2 = (u2 > lf.v_threshold).astype(float)
        u2 = u2 * (1 - f2)
        i3 = a3 * i3 + f2 @ nd["fc3"].weight.T
        v3 = b3 * v3 + i3
        s1.append(f1), s2.append(f2), mem.append(v3)
    return {"cuba": np.stack(s1), "lif": np.stack(s2)}, np.stack(mem), margin


def test_per_neuron_cubalif_lif_and_cubali_on_both_targets(tmp_path, capsys):
    """Hand-written NIR graph with every parameter per neuron (and a per-neuron input gain r dt / tau): the reference
    simulator equals a hand loop in float64 with the file's euler decays, and `neurocompile --target lava-sim` (the
    LeakyNeuron and LeakyIntegrator processes) equals the reference simulator."""
    g, x = _per_neuron_nir()
    path = tmp_path / "pn.nir"
    _write(path, g)
    ir = load_nir(str(path), time_steps=T, discretization="euler")
    assert ir.nodes["lif.gain"].params["const"].shape == (10,)  # r dt / tau per neuron: a Mul by an array
    assert set(ir.nodes["cuba"].params) == {"alpha", "beta", "threshold"}
    ref, mem, margin = _hand_loop(g, x, T)
    assert margin > MARGIN, margin
    res = api.simulate(api.convert(ir), x, exact=True, record_layers=True)
    counts = _compare_layers(res, ref)
    assert all(0 < c < ref[k].size for k, c in counts.items()), counts
    np.testing.assert_allclose(api.readout_membrane(api.convert(ir), res)[-1], mem[-1], rtol=1e-9, atol=1e-12)
    np.save(tmp_path / "x.npy", x)
    args = [str(path), "--steps", str(T), "--discretization", "euler", "--input", str(tmp_path / "x.npy"), "--quiet"]
    assert cli.main([*args, "--exact", "--json", str(tmp_path / "ref.json")]) == 0
    assert cli.main([*args, "--target", "lava-sim", "--json", str(tmp_path / "lava.json")]) == 0
    capsys.readouterr()
    r, v = (json.loads((tmp_path / f).read_text()) for f in ("ref.json", "lava.json"))
    assert v["spikes"] == r["spikes"] and {k: c["pos"] for k, c in r["spikes"].items()} == counts, (v, r, counts)
    scale = float(np.abs(r["outputs"]).max())
    np.testing.assert_allclose(v["outputs"], r["outputs"], rtol=1e-9, atol=1e-12 * scale)
    np.testing.assert_allclose(v["membrane_last"], r["membrane_last"], rtol=1e-9, atol=1e-12 * scale)
    print("per-neuron CubaLIF/LIF spikes per layer (reference = lava-sim = hand loop):", counts)


def test_per_neuron_round_trip_and_refusals(tmp_path, capsys):
    g, _ = _per_neuron_nir()
    path = tmp_path / "pn.nir"
    _write(path, g)
    ir = load_nir(str(path), time_steps=T)
    out = str(tmp_path / "back.nir")
    write_nir(api.convert(ir), out)
    back = load_nir(out, time_steps=T)
    for name in ("cuba", "lif", "readout"):  # every per-neuron decay and threshold comes back exactly
        for k, v in ir.nodes[name].params.items():
            np.testing.assert_array_equal(back.nodes[name].params[k], v, err_msg=f"{name}.{k}")
    x = np.random.default_rng(5).uniform(0, 1, (4, 6))  # and so does the network, its per-neuron input gains included
    a, b = (api.simulate(api.convert(h), x, exact=True) for h in (ir, back))
    np.testing.assert_array_equal(b.output, a.output)
    assert b.spikes == a.spikes
    # fixed point: Lava's bit-accurate LIF takes one decay and threshold per layer
    with pytest.raises(ConversionError, match="differ from neuron to neuron") as info:
        api.convert(ir, fixed_point=True)
    assert (info.value.node, info.value.op) == ("lif", "LIF")  # (the CubaLIF has no integer form at all)
    assert cli.main([str(path), "--steps", str(T), "--fixed-point", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "node 'lif'" in err and "differ from neuron to neuron" in err and "pn.nir" in err, err
    saved = str(tmp_path / "pn_ir.json")  # a saved IR of a NIR network keeps its T: --steps is refused, not ignored
    assert cli.main([str(path), "--steps", str(T), "--save-ir", saved, "--quiet"]) == 0
    assert cli.main([saved, "--steps", str(T + 2), "--quiet"]) == 2
    assert "whose T was fixed when it was converted" in capsys.readouterr().err
    bad = ir.copy()
    bad.nodes["lif"].params["beta"] = np.full(4, 0.5)  # 4 values for 10 neurons
    with pytest.raises(ValidationError, match=r"per-neuron beta of shape \(4,\)"):
        bad.validate()


def test_snntorch_beta_of_one_and_per_channel_shapes(tmp_path):
    """snnTorch clamps a learned beta to 1 and exports it as tau = r = inf: a neuron without leak and gain 1 (its r =
    tau / dt); per-channel arrays of shape (C, 1, 1) broadcast over the layer, a (C,) array on a conv layer is
    refused (numpy would line it up with the last axis)."""
    from neurocompile.errors import ModelLoadError

    with np.errstate(divide="ignore"):
        tau = DT / (1.0 - np.array([0.5, 0.9, 1.0]))
    lif = nir.LIF(tau=tau, r=tau / DT, v_leak=np.zeros(3), v_threshold=np.ones(3), v_reset=np.zeros(3))
    g = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([3])), "lif": lif,
                            "output": nir.Output(output_type=np.array([3]))},
                     edges=[("input", "lif"), ("lif", "output")], type_check=False)
    _write(tmp_path / "b1.nir", g)
    ir = load_nir(str(tmp_path / "b1.nir"), time_steps=4)
    np.testing.assert_array_equal(ir.nodes["lif"].params["beta"], [0.5, float(np.float32(0.9)), 1.0])  # snnTorch's
    assert "lif.gain" not in ir.nodes and ir.meta["nir"]["neurons"]["lif"]["gain"] == 1.0
    x = np.full((1, 3), 0.3)  # after 4 steps: U = 0.5625, 1.0317 (beta 0.9) and 1.2 (no leak): one spike each of two
    res = api.simulate(api.convert(ir), x, exact=True, record_layers=True)
    np.testing.assert_array_equal(res.layers["lif"][-1], [[0, 1, 1]])
    np.testing.assert_array_equal(res.layers["lif"][-2], [[0, 0, 0]])
    C, H, W = 3, 2, 3

    def conv_lif(shape):
        t = np.full(shape, 1e-3)
        return nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([1, H, W])),
                                   "conv": nir.Conv2d(input_shape=(H, W), weight=np.ones((C, 1, 1, 1)), stride=1,
                                                      padding=0, dilation=1, groups=1, bias=np.zeros(C)),
                                   "lif": nir.LIF(tau=t, r=t / DT, v_leak=np.zeros(shape), v_threshold=np.ones(shape),
                                                  v_reset=np.zeros(shape)),
                                   "output": nir.Output(output_type=np.array([C, H, W]))},
                            edges=[("input", "conv"), ("conv", "lif"), ("lif", "output")], type_check=False)
    _write(tmp_path / "c11.nir", conv_lif((C, 1, 1)))
    assert load_nir(str(tmp_path / "c11.nir"), time_steps=4).nodes["lif"].attrs["beta"] == float(np.float32(0.9))
    _write(tmp_path / "c.nir", conv_lif((C,)))
    with pytest.raises(ModelLoadError, match=r"of shape \(3,\) for an input of shape \(3, 2, 3\)"):
        load_nir(str(tmp_path / "c.nir"), time_steps=4)


def test_cli_details_for_nir_files(tmp_path, capsys):
    """inspect takes a NIR file's T (--steps) for --passes idsnn and names the file when T is missing; a NIR file
    under another extension is recognised as one in the error; reading a per-neuron parameter as an attribute
    raises instead of giving the class default."""
    g, _ = _per_neuron_nir()
    path = tmp_path / "pn.nir"
    _write(path, g)
    assert cli.main(["inspect", str(path), "--passes", "idsnn", "--steps", "6"]) == 0
    out = capsys.readouterr().out
    assert "T_wake=6" in out and "dt=0.0001 s from default" in out and "beta=" in out and "per neuron" in out
    assert cli.main(["inspect", str(path), "--passes", "idsnn"]) == 1
    assert "pn.nir" in capsys.readouterr().err
    (tmp_path / "pn.h5").write_bytes(path.read_bytes())
    assert cli.main([str(tmp_path / "pn.h5")]) == 1
    assert "it holds a NIR graph" in capsys.readouterr().err
    from neurocompile.ir.ops import OPS

    lif = load_nir(str(path), time_steps=T).nodes["lif"]
    with pytest.raises(ValueError, match="given per neuron"):
        OPS["LIF"].attr(lif, "beta")
