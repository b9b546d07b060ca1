"""neurocompile.analysis.estimate.placement / runtime: the core mapper's invariants (every compartment once, every
layer's memory in full, every core within every limit), numbers that follow from the models' sizes, traffic that
adds up to the estimate's synops, refusals of broken placements, and the CLI's --placement / --plot."""
import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from neurocompile import api, cli
from neurocompile.analysis.estimate import LOIHI2, LOIHI2_ENERGY, Figure, estimate
from neurocompile.analysis.estimate.placement import PlacementError, check_placement, place, pooled_bound
from neurocompile.analysis.estimate.runtime import runtime, traffic
from tests import models

L = 4


def _x(shape, n=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (n, *shape)).astype(np.float32)


def _limits(**kw):
    """LOIHI2 with some per-core figures replaced (small cores force splits, packing and several chips)."""
    return dataclasses.replace(LOIHI2, **{k: Figure(v, "test", "test") for k, v in kw.items()})


def _invariants(p, e):
    """The placement rules, restated here from the placement file alone."""
    doc = json.loads(json.dumps(p.to_dict()))
    check_placement(doc, e)  # a placement read back from its JSON passes the same check
    lim = doc["limits"]
    used = {}
    for r in e.rows:
        n, k = r.neurons + r.relays, doc["layers"][r.name].get("fanin_parts", 1)

        def covered_once(slots):
            covered = np.zeros(n, np.int64)
            for s in slots:
                covered[s["neurons"][0]:s["neurons"][1]] += 1
            return (covered == 1).all()

        own = [s for s in doc["cores"] if s["layer"] == r.name and "part" not in s]
        parts = [[s for s in doc["cores"] if s["layer"] == r.name and s.get("part") == [i, k]] for i in range(k)]
        assert covered_once(own), r.name                            # every compartment exactly once
        assert doc["layers"][r.name]["neurons"] == n
        # every synapse counted on its target's core: the layer's own, or (split) its parts' and k per compartment
        syn = [s for part in parts for s in part] if k > 1 else own
        assert sum(s["synaptic_bits"] for s in syn) == r.memory_bits
        assert sum(s["input_axons"] for s in syn) >= r.axons
        if k > 1:
            assert all(covered_once(part) for part in parts), r.name  # every partial sum exactly once per part
            assert sum(s["synaptic_bits"] for s in own) == n * k * 8 and sum(s["input_axons"] for s in own) == n * k
    assert {s["layer"] for s in doc["cores"]} == {r.name for r in e.rows}
    for s in doc["cores"]:
        u = used.setdefault((s["chip"], s["core"]), [0, 0, 0])
        u[0] += s["neurons"][1] - s["neurons"][0]
        u[1] += s["synaptic_bits"]
        u[2] += s["input_axons"]
        assert 0 <= s["core"] < lim["cores_per_chip"]
    for u in used.values():
        assert u[0] <= lim["neurons_per_core"] and u[1] <= lim["synaptic_bits_per_core"]
        assert u[2] <= lim["input_axons_per_core"]
    assert p.n_cores == len(used) >= pooled_bound(e)
    # cores are numbered consecutively from chip 0, core 0
    idx = sorted(c * lim["cores_per_chip"] + k for c, k in used)
    assert idx == list(range(len(idx)))


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
def test_placement_is_valid_on_loihi2_limits(nets, arch):
    snn, _, _ = nets[arch]
    e = estimate(snn)
    p = place(snn, e)
    _invariants(p, e)
    assert p.n_cores <= e.totals.cores  # packing never needs more than the per-layer bound here


def test_mlp_fits_one_core_with_its_layer_sizes(nets):
    snn, _, _ = nets["mlp"]
    e = estimate(snn)
    p = place(snn, e)
    sizes = (64, 48, 32, 10)  # tests/models.py: mlp
    assert [(s.chip, s.core) for s in p.cores] == [(0, 0)] * 3
    assert [s.synaptic_bits for s in p.cores] == [a * b * 8 for a, b in zip(sizes[:-1], sizes[1:])]
    assert [s.input_axons for s in p.cores] == list(sizes[:-1])
    assert [(s.start, s.stop) for s in p.cores] == [(0, n) for n in sizes[1:]]


def test_small_cores_split_dense_layers_and_every_split_reads_all_inputs(nets):
    snn, _, _ = nets["mlp"]
    e = estimate(snn, (_limits(neurons_per_core=16), LOIHI2_ENERGY))
    p = place(snn, e)
    _invariants(p, e)
    first = [s for s in p.cores if s.layer == e.rows[0].name]
    assert [(s.start, s.stop) for s in first] == [(0, 16), (16, 32), (32, 48)]
    assert all(s.input_axons == 64 and s.synaptic_bits == 16 * 64 * 8 for s in first)
    # 48 + 32 + 10 neurons at 16 per core: 3 + 2 + 1 cores, never shared (each fills its core's neurons)
    assert p.n_cores == 6


def test_axon_limit_tiles_convolutions_and_chips_fill_in_order(nets):
    snn, _, _ = nets["resnet"]
    e = estimate(snn, (_limits(input_axons_per_core=512, cores_per_chip=4, neurons_per_core=256), LOIHI2_ENERGY))
    p = place(snn, e)
    _invariants(p, e)
    assert p.n_chips == -(-p.n_cores // 4) > 1
    assert max(s.input_axons for s in p.cores) <= 512


def test_traffic_adds_up_to_the_estimates_synops(nets):
    snn, shape, _ = nets["resnet"]
    x = _x(shape)
    e = estimate(snn, (_limits(cores_per_chip=2), LOIHI2_ENERGY), x=x)
    p = place(snn, e)
    tr = traffic(snn, p, e)
    N = len(x)
    assert round(tr.synops * N) == round(e.totals.synops * N)  # integer counts: exact
    assert tr.steps == e.totals.steps and tr.inter_core > 0 and tr.inter_chip > 0
    rt = runtime(e, tr)
    assert rt.latency_ns == pytest.approx(rt.steps * rt.step_ns, rel=1e-12)
    # a pipelined stream (one sample per period <= T steps) is never slower than one inference after another
    assert rt.period_steps <= rt.steps and rt.throughput_per_s >= 1e9 / rt.latency_ns
    assert rt.energy_synops_pj == e.totals.energy_synops_pj and rt.energy_neurons_pj == e.totals.energy_neurons_pj
    assert rt.energy_traffic_pj >= e.totals.energy_spikes_pj


def test_one_core_traffic_is_the_input_and_intra_core_messages(nets):
    snn, shape, _ = nets["mlp"]
    x = _x(shape)
    e = estimate(snn, x=x)
    p = place(snn, e)
    tr = traffic(snn, p, e)
    assert tr.inter_core == tr.inter_chip == tr.hops == 0
    N = len(x)
    assert round(tr.host * N) == round(e.totals.input_messages * N)  # the input reaches one core: each message once
    assert round(tr.synops * N) == round(e.totals.synops * N)


def test_broken_placements_are_refused(nets):
    snn, _, _ = nets["vgg"]
    e = estimate(snn)
    doc = place(snn, e).to_dict()
    twice = copy.deepcopy(doc)
    twice["cores"].append(dict(twice["cores"][0]))
    missing = copy.deepcopy(doc)
    missing["cores"].pop()
    over = copy.deepcopy(doc)
    over["cores"][0]["synaptic_bits"] += doc["limits"]["synaptic_bits_per_core"]
    wrong_bits = copy.deepcopy(doc)
    wrong_bits["cores"][0]["synaptic_bits"] -= 8
    for bad, says in ((twice, "overlap"), (missing, "placed"), (over, "synaptic_bits_per_core"),
                      (wrong_bits, "synaptic bits")):
        with pytest.raises(PlacementError, match=says):
            check_placement(bad, e)


def test_a_compartment_larger_than_a_core_is_refused(nets):
    snn, _, _ = nets["mlp"]
    e = estimate(snn, (_limits(synaptic_memory_bits_per_core=8), LOIHI2_ENERGY))  # one synapse per core
    with pytest.raises(PlacementError, match="alone needs more than one core"):
        place(snn, e)


def test_fanin_is_split_into_partial_sums_where_one_compartment_needs_more_axons_than_a_core(nets):
    snn, shape, _ = nets["resnet"]  # fan-in up to 9 x 16 + 8 (shortcut) = 152 senders per compartment
    x = _x(shape)
    e = estimate(snn, (_limits(input_axons_per_core=100), LOIHI2_ENERGY), x=x)
    p = place(snn, e)
    _invariants(p, e)
    split = {k: v["fanin_parts"] for k, v in p.layers.items() if "fanin_parts" in v}
    big = [r.name for r in e.rows if r.fan_in > 100]  # exactly the layers whose compartments no core holds
    assert sorted(split) == sorted(big) and all(k >= 2 for k in split.values())
    assert all(s.input_axons <= 100 for s in p.cores)
    assert 1 <= p.split_steps <= len(split)
    tr = traffic(snn, p, e)
    N, T = len(x), e.totals.steps
    # the parts' synops are the estimate's; reading the partial sums adds one synop per partial message
    assert round(tr.synops * N) == round((e.totals.synops + tr.combine_synops) * N)
    assert tr.combine_synops == pytest.approx(tr.partial_messages, rel=1e-12)
    assert tr.partial_sums == sum(p.layers[k]["neurons"] * v for k, v in split.items())
    assert 0 < tr.partial_messages <= T * tr.partial_sums
    rt = runtime(e, tr)
    assert rt.steps == T + p.split_steps and rt.split_steps == p.split_steps
    assert rt.energy_synops_pj > e.totals.energy_synops_pj and rt.energy_neurons_pj > e.totals.energy_neurons_pj
    doc = p.to_dict()
    no_part = copy.deepcopy(doc)
    no_part["cores"] = [s for s in no_part["cores"] if s.get("part") != [0, split[big[0]]] or s["layer"] != big[0]]
    unread = copy.deepcopy(doc)
    next(s for s in unread["cores"] if s["layer"] == big[0] and "part" not in s)["synaptic_bits"] -= 8
    for bad, says in ((no_part, "part 1/"), (unread, "reading its")):
        with pytest.raises(PlacementError, match=says):
            check_placement(bad, e)


def test_cifar_resnet18_is_placed_with_its_widest_layers_split(tmp_path):
    """The generated CIFAR ResNet-18 (widths 64..512): a stage-4 compartment reads 9 x 512 + 256 = 4,864 senders,
    more than a core's 4,096 input axons, so those layers are split; the placement is checked and packed."""
    path = models.export(models.resnet18("cqrelu", L)[0], (3, 32, 32), tmp_path / "r18.onnx", "bn")
    snn = api.convert(api.load(path), target="lava-sim")
    e = estimate(snn)
    p = place(snn, e)
    _invariants(p, e)
    split = [k for k, v in p.layers.items() if "fanin_parts" in v]
    assert split == [r.name for r in e.rows if r.fan_in > 4096] and len(split) == 3
    assert p.split_steps == 3  # the three are in a row on every path
    assert pooled_bound(e) <= e.totals.cores <= p.n_cores <= 1.02 * e.totals.cores
    assert p.n_chips == -(-p.n_cores // 128)


def test_generated_resnet18_shape_placement(tmp_path):
    """The CIFAR ResNet-18 structure ([2, 2, 2, 2] basic blocks, 32x32 input) at a quarter of its widths."""
    torch.manual_seed(0)
    model = models._randomize_bn(models.ResNet((2, 2, 2, 2), (16, 32, 64, 128), "cqrelu", L), 0)
    path = models.export(model, (3, 32, 32), tmp_path / "r18q.onnx", "bn")
    snn = api.convert(api.load(path))
    e = estimate(snn)
    p = place(snn, e)
    _invariants(p, e)
    assert len(p.layers) == len(e.rows) == 18  # stem, 16 block convolutions, readout


def test_cli_writes_a_checked_placement_and_plots(nets, tmp_path, capsys):
    snn, shape, path = nets["resnet"]
    np.save(tmp_path / "x.npy", _x(shape))
    out, plots = tmp_path / "placement.json", tmp_path / "plots"
    code = cli.main(["estimate", str(path), "--input", str(tmp_path / "x.npy"), "--samples", "2",
                     "--placement", str(out), "--plot", str(plots)])
    text = capsys.readouterr().out
    assert code == 0
    assert "packing efficiency" in text and "time per step (ESTIMATE" in text and "between chips" in text
    doc = json.loads(out.read_text())
    check_placement(doc, estimate(api.convert(api.load(path))))
    assert sorted(f.name for f in plots.iterdir()) == ["placement.png", "utilisation.png"]
    assert doc["runtime"]["latency_ns"] > 0 and set(doc["limits"]) == {
        "neurons_per_core", "synaptic_bits_per_core", "input_axons_per_core", "cores_per_chip"}
    # an ANN converted with the default schedule: its latency mode is placed and reported beside it
    assert "the default schedule and the latency mode, side by side" in text
    slow, fast = doc["schedules"]["default"], doc["schedules"]["latency_min"]
    assert (slow["t_wake"], slow["gamma"], fast["t_wake"], fast["gamma"]) == (L, 1, 1, L)
    assert fast["steps"] < slow["steps"] and fast["cores"] == slow["cores"] == doc["summary"]["cores"]
    assert slow["latency_ns"] == doc["runtime"]["latency_ns"] and fast["period_steps"] <= slow["period_steps"]


def test_cli_plot_needs_placement(nets, tmp_path):
    _, _, path = nets["mlp"]
    assert cli.main(["estimate", str(path), "--plot", str(tmp_path)]) == 2
