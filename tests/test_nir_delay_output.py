"""A NIR Delay right before a graph output, beside a deeper output: each output is read over the network's own T
steps (the delay is part of what the first one reads), on the reference target with and without synaptic delays and
on lava-sim, with more samples than Lava runs side by side (its delay line empties between samples)."""
from __future__ import annotations

import numpy as np

import nir
from neurocompile import api
from neurocompile.frontends.nir import load_nir
from tests.test_nir import _write

DT, T, D = 1e-3, 10, 3


def _graph(rng) -> tuple[nir.NIRGraph, dict]:
    w = {"fc": rng.normal(0, 1.5, (5, 4)), "fc2": rng.normal(0, 1.5, (3, 5))}
    z = np.zeros
    lif = lambda n: nir.LIF(tau=np.full(n, 4e-3), r=np.full(n, 4.0), v_leak=z(n), v_threshold=np.full(n, 0.5),  # noqa: E731
                            v_reset=z(n))
    nodes = {"input": nir.Input(input_type=np.array([4])), "fc": nir.Linear(weight=w["fc"]), "lif": lif(5),
             "d": nir.Delay(delay=np.full(5, D * DT)), "out": nir.Output(output_type=np.array([5])),
             "fc2": nir.Linear(weight=w["fc2"]), "lif2": lif(3), "out2": nir.Output(output_type=np.array([3]))}
    edges = [("input", "fc"), ("fc", "lif"), ("lif", "d"), ("d", "out"), ("lif", "fc2"), ("fc2", "lif2"),
             ("lif2", "out2")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), w


def _hand(w: dict, x: np.ndarray):
    """Forward Euler by hand (beta = 1 - dt/tau, gain r dt/tau = 1): the mean of each output over T, the spikes."""
    beta = 1 - DT / 4e-3
    u, u2, s, s2 = np.zeros((len(x), 5)), np.zeros((len(x), 3)), [], []
    for _ in range(T):
        u = beta * u + x @ w["fc"].T
        f = (u > 0.5).astype(float)
        u *= 1 - f
        u2 = beta * u2 + f @ w["fc2"].T
        f2 = (u2 > 0.5).astype(float)
        u2 *= 1 - f2
        s.append(f), s2.append(f2)
    s, s2 = np.stack(s), np.stack(s2)
    delayed = np.concatenate([np.zeros((D, *s.shape[1:])), s[:T - D]])
    return {"d": delayed.mean(0), "lif2": s2.mean(0)}, {"lif": int(s.sum()), "lif2": int(s2.sum())}


def test_a_delay_before_an_output_is_read_over_the_networks_own_steps(tmp_path):
    rng = np.random.default_rng(0)
    graph, w = _graph(rng)
    path = tmp_path / "delay_out.nir"
    _write(path, graph)
    g = load_nir(str(path), dt=DT, discretization="euler", time_steps=T)
    x = rng.uniform(0, 1, (18, 4))  # more samples than Lava's lanes (16 for this graph): two sample periods
    want, counts = _hand(w, x)
    assert all(c > 0 for c in counts.values()) and want["d"].any(), counts
    runs = {d: api.simulate(api.convert(g, synapse_delay=d), x, exact=True) for d in (0, 1, 2)}
    lava = api.compile(api.convert(g, target="lava-sim"), "lava-sim").run(x)
    for name, res in [*((f"reference, delay {d}", r) for d, r in runs.items()), ("lava-sim", lava)]:
        assert {k: c["pos"] for k, c in res.spikes.items()} == counts, (name, res.spikes, counts)
        for k, v in want.items():
            np.testing.assert_allclose(res.outputs[k], v, rtol=1e-12, atol=1e-12, err_msg=f"{name}: {k}")
    print("delay before an output, spikes per layer (reference = lava-sim = hand loop):", counts)
