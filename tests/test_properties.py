"""Property: any small CQReLU network converts losslessly at its default T (hypothesis)."""
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.ir import Graph, Node
from neurocompile.passes import PassManager, casc_pipeline


def random_net(seed: int, levels: int, depth: int, conv: bool, residual: bool, maxpool: bool) -> Graph:
    """Dense or conv CQReLU net with random weights and per-layer λ; optional residual Add and MaxPool."""
    rng = np.random.default_rng(seed)
    g = Graph("random", outputs=["out"])
    shape = (3, 6, 6) if conv else (7,)
    g.add(Node("x", "Input", [], "x", {"shape": list(shape)}), shape)
    cur, c = "x", shape[0]
    for i in range(depth):
        w = int(rng.integers(2, 6))
        lam = float(rng.choice([0.5, 1.0, 1.3, 2.0]))
        if conv:
            p = {"weight": rng.normal(0, 0.6, (w, c, 3, 3)).astype(np.float32), "bias": rng.normal(0, 0.2, w).astype(np.float32)}
            g.add(Node(f"l{i}", "Conv", [cur], f"z{i}", {"pads": [1, 1, 1, 1]}, p), (w, *shape[1:]))
        else:
            p = {"weight": rng.normal(0, 0.8, (w, c)).astype(np.float32), "bias": rng.normal(0, 0.2, w).astype(np.float32)}
            g.add(Node(f"l{i}", "Dense", [cur], f"z{i}", {}, p), (w,))
        zs = g.shapes[f"z{i}"]
        g.add(Node(f"a{i}", "CQReLU", [f"z{i}"], f"a{i}", {"levels": levels, "clip": lam}), zs)
        cur, c = f"a{i}", w
    if conv and residual:
        p = {"weight": rng.normal(0, 0.6, (c, c, 3, 3)).astype(np.float32)}
        g.add(Node("r", "Conv", [cur], "r", {"pads": [1, 1, 1, 1]}, p), g.shapes[cur])
        g.add(Node("add", "Add", ["r", cur], "sum"), g.shapes[cur])
        g.add(Node("ar", "CQReLU", ["sum"], "ar", {"levels": levels, "clip": 1.0}), g.shapes[cur])
        cur = "ar"
    if conv and maxpool:
        g.add(Node("mp", "MaxPool", [cur], "mp", {"kernel": [2, 2], "stride": [2, 2]}), (c, 3, 3))
        cur = "mp"
    if conv:
        g.add(Node("flat", "Flatten", [cur], "flat"), (int(np.prod(g.shapes[cur])),))
        cur = "flat"
    n_in = g.shapes[cur][0]
    g.add(Node("head", "Dense", [cur], "out", {}, {"weight": rng.normal(0, 0.5, (4, n_in)).astype(np.float32),
                                                    "bias": rng.normal(0, 0.1, 4).astype(np.float32)}), (4,))
    g.validate()
    return g


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), levels=st.integers(1, 16), depth=st.integers(1, 4), conv=st.booleans(),
       residual=st.booleans(), maxpool=st.booleans(), delay=st.sampled_from([0, 1]), gamma=st.sampled_from([1, 3]))
def test_random_cqrelu_nets_convert_losslessly(seed, levels, depth, conv, residual, maxpool, delay, gamma):
    g = random_net(seed, levels, depth, conv, residual, maxpool)
    snn = PassManager(casc_pipeline(gamma=gamma, synapse_delay=delay)).run(g)
    x = np.random.default_rng(seed + 1).uniform(-0.5, 2.0, (16, *g.shapes["x"])).astype(np.float32)
    ann = interpreter.run1(g, x, "float64")
    res = api.simulate(snn, x, exact=True)
    assert np.abs(res.output - ann).max() <= 1e-9 * max(np.abs(ann).max(), 1.0)
