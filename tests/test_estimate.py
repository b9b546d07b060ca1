"""neurocompile.analysis.estimate: resources and energy of a converted network on Loihi 2, checked against counts made
here independently (layer sizes, numpy loops over tiny convolutions, spikes times fan-out, a numpy lateral
inhibition), plus the core rule, JSON and refusals."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from neurocompile import api
from neurocompile.errors import NeurocompileError
from neurocompile.analysis.estimate import LOIHI2, LOIHI2_ENERGY, REFERENCES, Figure, _Activity, estimate
from neurocompile.passes.lower_to_blocks import lowered
from tests import models

L = 4


def _x(shape, n=3, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)


def _rows(e):
    return {r.name: r for r in e.rows}


def _messages(rec):
    """Steps with a nonzero send per neuron, summed over the batch: from the cumulative counts of a record."""
    steps = np.diff(rec, axis=0, prepend=np.zeros_like(rec[:1]))
    return np.count_nonzero(steps, axis=0).sum(0)


def conv_loops(W, in_hw, stride, pad):
    """Connections of a (groups=1) convolution counted by loops: fan-in per output, fan-out per input. Only
    weights with |w| > 0 join a pair, and a tap that falls into the padding joins nothing."""
    Co, Ci, kh, kw = W.shape
    H, Wd = in_hw
    Ho, Wo = (H + 2 * pad - kh) // stride + 1, (Wd + 2 * pad - kw) // stride + 1
    fanin, fanout = np.zeros((Co, Ho, Wo)), np.zeros((Ci, H, Wd))
    for o in range(Co):
        for c in range(Ci):
            for a in range(kh):
                for b in range(kw):
                    if W[o, c, a, b] == 0:
                        continue
                    iy, ix = np.arange(Ho) * stride - pad + a, np.arange(Wo) * stride - pad + b
                    vy, vx = (iy >= 0) & (iy < H), (ix >= 0) & (ix < Wd)
                    fanin[o][np.ix_(vy, vx)] += 1
                    fanout[c][np.ix_(iy[vy], ix[vx])] += 1
    return fanin, fanout


def _weight(g, name):
    return np.asarray(lowered(g).nodes[name].params["weight"], np.float64)


# ---- structure ---------------------------------------------------------------------------------------------


def test_mlp_neurons_and_synapses_are_the_layer_sizes(nets):
    snn, _, _ = nets["mlp"]
    e = estimate(snn)
    sizes = (64, 48, 32, 10)  # tests/models.py: mlp
    assert [r.kind for r in e.rows] == ["neuron", "neuron", "readout"]
    assert [r.neurons for r in e.rows] == list(sizes[1:])
    pairs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    assert [r.weights for r in e.rows] == [r.connections for r in e.rows] == pairs
    assert [r.fan_in for r in e.rows] == [r.axons for r in e.rows] == list(sizes[:-1])
    assert [r.memory_bits for r in e.rows] == [8 * p for p in pairs]
    assert [r.ann_macs for r in e.rows] == pairs
    assert e.totals.neurons == sum(sizes[1:]) and e.totals.connections == sum(pairs)
    assert e.totals.cores == 3 and e.totals.chips == 1
    assert all(r.synops is None for r in e.rows) and e.totals.energy_pj is None  # no inputs: no activity


def test_conv_connections_are_counted_exactly_with_padding_and_zero_weights(nets):
    _, shape, path = nets["vgg"]
    snn = api.convert(api.load(path))
    W = snn.nodes["/0/Conv"].params["weight"]
    W[0, 0] = 0.0  # a zero kernel slice joins nothing
    W[1, :, 1, 1] = 0.0
    W = np.asarray(W, np.float64)
    fanin, _ = conv_loops(W, shape[1:], 1, 1)
    r = _rows(estimate(snn))["/2/Floor"]
    assert r.connections == int(fanin.sum()) < W.size * 16 * 16  # fewer than taps x positions: padding
    assert r.weights == W.size == 8 * 3 * 3 * 3  # the kernel, stored once
    assert r.fan_in == int(fanin.max()) == 27
    assert r.axons == 3 * 16 * 16
    assert r.memory_bits == 8 * r.connections and r.memory_bits_shared == 8 * W.size
    assert r.ann_macs == 8 * 16 * 16 * 3 * 3 * 3


def test_strided_and_residual_blocks_count_every_connection(nets):
    snn, _, _ = nets["resnet"]
    rows = _rows(estimate(snn))
    # stride 2: 8x16x16 -> 16x8x8
    fin, _ = conv_loops(_weight(snn, "/layers/layers.1/c1/Conv"), (16, 16), 2, 1)
    r = rows["/layers/layers.1/a1/Floor"]
    assert r.connections == int(fin.sum()) and r.fan_in == int(fin.max())
    # conv 3x3 + identity shortcut from the stem's neurons: one connection per element, one more axon each
    fin, _ = conv_loops(_weight(snn, "/layers/layers.0/c2/Conv"), (16, 16), 1, 1)
    r = rows["/layers/layers.0/a2/Floor"]
    assert r.connections == int(fin.sum()) + 8 * 16 * 16
    assert r.fan_in == int(fin.max()) + 1 == 73
    assert r.axons == 2 * 8 * 16 * 16  # a1's neurons and the stem's
    # 3x3 conv + 1x1 stride-2 projection shortcut
    f1, o1 = conv_loops(_weight(snn, "/layers/layers.1/c2/Conv"), (8, 8), 1, 1)
    f2, o2 = conv_loops(_weight(snn, "/layers/layers.1/short/short.0/Conv"), (16, 16), 2, 0)
    r = rows["/layers/layers.1/a2/Floor"]
    assert r.connections == int(f1.sum() + f2.sum()) and r.fan_in == int((f1 + f2).max())
    assert r.axons == 16 * 8 * 8 + 8 * 8 * 8 == int((o1 > 0).sum() + (o2 > 0).sum())  # stride 2 reads 1 in 4
    assert r.synapses == ["/layers/layers.1/short/short.0/Conv", "/layers/layers.1/c2/Conv"]


def test_pools_and_chained_connections(nets):
    snn, _, _ = nets["vgg"]
    rows = _rows(estimate(snn))
    pool = rows["/6/MaxPool"]  # 2x2 windows over 8x16x16: every input in one window
    assert (pool.kind, pool.neurons, pool.connections, pool.fan_in, pool.axons) == ("pool", 8 * 8 * 8, 2048, 4, 2048)
    # AvgPool -> Conv: the pool's output is relayed (16x4x4 compartments) into the conv
    fin, _ = conv_loops(_weight(snn, "/11/Conv"), (4, 4), 1, 1)
    r = rows["/13/Floor"]
    assert r.relays == 16 * 4 * 4 and r.neurons == 16 * 4 * 4
    assert r.connections == 16 * 8 * 8 + int(fin.sum())
    assert r.axons == 16 * 8 * 8 + 16 * 4 * 4 and r.fan_in == int(fin.max())
    assert r.ann_macs == 16 * 4 * 4 * 16 * 9  # the conv; the pool's adds are counted apart
    res = _rows(estimate(nets["resnet"][0]))["readout:y"]  # GlobalAvgPool -> Reshape -> Dense
    assert (res.kind, res.neurons, res.relays, res.connections) == ("readout", 10, 16, 16 * 8 * 8 + 16 * 10)


def test_cores_are_the_largest_of_the_three_ratios(nets):
    snn, _, _ = nets["vgg"]
    limits = dataclasses.replace(LOIHI2, neurons_per_core=Figure(500, "neurons", "test"),
                                 synaptic_memory_bits_per_core=Figure(8 * 20000, "bits", "test"),
                                 input_axons_per_core=Figure(900, "axons", "test"),
                                 cores_per_chip=Figure(4, "cores", "test"))
    e = estimate(snn, (limits, LOIHI2_ENERGY))
    binding = set()
    for r in e.rows:
        ratios = {"neurons": math.ceil((r.neurons + r.relays) / 500), "memory": math.ceil(r.connections * 8 / 160000),
                  "axons": math.ceil(r.axons / 900)}
        assert (r.cores_neurons, r.cores_memory, r.cores_axons) == tuple(ratios.values())
        assert r.cores == max(ratios.values())
        assert r.cores_shared == max(ratios["neurons"], math.ceil(r.weights * 8 / 160000), ratios["axons"])
        strict = {k for k, v in ratios.items() if v == r.cores and list(ratios.values()).count(v) == 1}
        assert strict <= {r.bound}
        binding |= strict
    assert binding == {"neurons", "memory", "axons"}  # each limit decides some layer
    assert e.totals.cores == sum(r.cores for r in e.rows) and e.totals.chips == math.ceil(e.totals.cores / 4)
    assert estimate(snn).totals.cores == len(e.rows) + 1  # at Loihi 2's limits: one core each, two for /5/Floor


def test_a_dense_layer_wider_than_a_cores_axons_is_flagged(tmp_path):
    model, shape = models.mlp(act="cqrelu", levels=L, sizes=(64, 5000, 10))
    e = estimate(api.convert(api.load(models.export(model, shape, tmp_path / "wide.onnx", "bn"))))
    r = e.rows[-1]
    assert r.axons == r.fan_in == 5000 and r.cores_axons == 2
    assert any("reads 5,000 inputs" in n and "lower bound" in n for n in e.notes)


# ---- activity ----------------------------------------------------------------------------------------------


def test_mlp_synops_are_spikes_times_fanout(nets):
    snn, shape, _ = nets["mlp"]
    x = _x(shape)
    e = estimate(snn, x=x)
    res = api.simulate(snn, x, record_layers=True, exact=True)
    model = models.mlp(act="cqrelu", levels=L)[0]
    fanouts = [(m.weight.detach().numpy() != 0).sum(0) for m in model if isinstance(m, torch.nn.Linear)]
    senders = [(x.reshape(len(x), -1) != 0).sum(0) * snn.schedule.t_wake,  # input: every wake step
               _messages(res.layers["/3/Floor"]), _messages(res.layers["/6/Floor"])]
    want = [float(m @ f) / len(x) for m, f in zip(senders, fanouts)]
    assert [r.synops for r in e.rows] == pytest.approx(want, rel=1e-12)
    assert want[1] > 0
    for r in e.rows[:2]:
        c = res.spikes[r.name]
        assert r.spikes == (c["pos"] + c["neg"]) / len(x)
        assert r.neuron_updates == r.neurons * res.steps
    E = LOIHI2_ENERGY
    r = e.rows[0]
    assert r.energy_pj == pytest.approx(r.synops * E.synop_pj.value + r.messages * E.neuron_update_active_pj.value
                                        + r.messages * E.spike_pj.value
                                        + (r.neuron_updates - r.messages) * E.neuron_update_pj.value)
    t = e.totals
    assert t.input_messages == senders[0].sum() / len(x)
    assert t.energy_pj == pytest.approx(sum(r.energy_pj for r in e.rows) + t.input_messages * E.spike_pj.value)
    assert t.ann_energy_pj == pytest.approx(t.ann_macs * 4.6)


def test_conv_synops_use_each_neurons_exact_fanout(nets):
    snn, shape, _ = nets["vgg"]
    x = _x(shape, n=2)
    e = estimate(snn, x=x)
    res = api.simulate(snn, x, record_layers=True, exact=True)
    _, fanout = conv_loops(_weight(snn, "/3/Conv"), (16, 16), 1, 1)  # corner neurons reach 4 of 9 positions
    assert fanout.min() == 4 * 8 and fanout.max() == 9 * 8
    want = float((_messages(res.layers["/2/Floor"]) * fanout).sum()) / len(x)
    assert _rows(e)["/5/Floor"].synops == pytest.approx(want, rel=1e-12) and want > 0


def test_pool_messages_match_a_numpy_lateral_inhibition(nets):
    snn, shape, _ = nets["vgg"]
    x = _x(shape, n=2, seed=1)
    e = estimate(snn, x=x)
    res = api.simulate(snn, x, record_layers=True, exact=True)
    rec = res.layers["/5/Floor"]  # the pool's input: these neurons' spikes times the threshold they carry
    sent = np.diff(rec, axis=0, prepend=np.zeros_like(rec[:1])).astype(np.float64)
    sent *= snn.nodes["/5/Floor"].attrs.get("threshold", 1.0)
    A = np.zeros(sent.shape[1:])
    n = 0
    for s_t in sent:  # A <- A + x; out <- max over each window; A <- A - out (science.md)
        A += s_t
        N, C, H, W = A.shape
        out = A.reshape(N, C, H // 2, 2, W // 2, 2).max(axis=(3, 5))
        A -= np.repeat(np.repeat(out, 2, axis=2), 2, axis=3)
        n += np.count_nonzero(out)
    assert n > 0 and _rows(e)["/6/MaxPool"].spikes == n / len(x)


def test_replay_with_lava_delays_reproduces_the_simulated_layers(nets):
    """The linear replay (delays, balanced shortcuts, gated biases) that pools and relays rely on, checked
    where the simulator records the answer: a residual neuron layer of a net scheduled for Lava's delays."""
    _, shape, path = nets["resnet"]
    snn = api.convert(api.load(path), target="lava-sim")
    assert snn.schedule.balance  # the stem's shortcut waits for the conv branch
    x = _x(shape, n=2)
    res = api.simulate(snn, x, record_layers=True, exact=True)
    g = lowered(snn)
    act = _Activity(g, x, res, res.steps)
    for name in ("/layers/layers.0/a2/Floor", "/layers/layers.1/a2/Floor"):
        rec = res.layers[name]
        want = np.diff(rec, axis=0, prepend=np.zeros_like(rec[:1]))
        got = act.replay(g.nodes[name]).numpy() / g.nodes[name].attrs.get("threshold", 1.0)
        assert np.count_nonzero(want) > 0 and np.array_equal(got, want)
    e = estimate(snn, x=x)
    assert e.totals.synops > 0 and _rows(e)["readout:y"].messages > 0  # the relayed GlobalAvgPool


def test_lif_student_and_fixed_point_networks(tmp_path, nets):
    from neurocompile.torch import export_onnx, spiking_resnet

    torch.manual_seed(0)
    student = spiking_resnet(None, 10, 1, 4, blocks=(1, 1), time_steps=4).eval()
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 1.5
    snn = api.convert(api.load(export_onnx(student, x[:2], tmp_path / "student.onnx")))
    e = estimate(snn, x=x.numpy())
    res = api.simulate(snn, x.numpy(), exact=True)
    lif = [r for r in e.rows if r.op == "LIF"]
    assert len(lif) == 5 and e.rows[-1].kind == "readout"
    assert [r.spikes for r in lif] == [(res.spikes[r.name]["pos"] + res.spikes[r.name]["neg"]) / 3 for r in lif]
    assert all(r.messages == r.spikes for r in lif)  # binary spikes: one message each
    assert e.totals.synops > 0 and e.totals.cores >= len(e.rows)

    _, shape, path = nets["vgg"]
    fixed = api.convert(api.load(path), fixed_point=True)
    ef, e0 = estimate(fixed, x=_x(shape, n=1)), estimate(nets["vgg"][0])
    assert [r.weights for r in ef.rows] == [r.weights for r in e0.rows]
    assert all(a.connections <= b.connections for a, b in zip(ef.rows, e0.rows))  # weights that round to 0 go
    assert ef.totals.synops > 0


# ---- output and refusals -------------------------------------------------------------------------------------


def test_table_and_json(nets):
    snn, shape, _ = nets["resnet"]
    e = estimate(snn, x=_x(shape, n=1))
    d = e.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert len(d["rows"]) == len(e.rows) and d["totals"]["chips"] == e.totals.chips
    assert d["limits"]["neurons_per_core"]["source"] and d["energy_figures"]["synop_pj"]["value"] == 23.6
    text = e.table()
    assert "total" in text and "23.6 pJ" in text and "8,192 neurons" in text and "Table 2" in text
    for key in REFERENCES:
        assert f"[{key}]" in text
    assert all(r.name in text for r in e.rows)
    assert json.dumps(estimate(snn).to_dict())  # without activity too


def test_refusals(nets):
    snn, _, path = nets["mlp"]
    with pytest.raises(NeurocompileError, match="unknown hardware 'loihi3'.*Available: loihi2"):
        estimate(snn, "loihi3")
    with pytest.raises(NeurocompileError, match="converted"):
        estimate(api.load(path))
    with pytest.raises(NeurocompileError, match="steps"):
        estimate(snn, steps=5)
