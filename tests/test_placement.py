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
        slots = sorted((s for s in doc["cores"] if s["layer"] == r.name), key=lambda s: s["neurons"][0])
        covered = np.zeros(r.neurons + r.relays, np.int64)
        for s in slots:
            covered[s["neurons"][0]:s["neurons"][1]] += 1
        assert (covered == 1).all(), r.name                         # every compartment exactly once
        assert sum(s["synaptic_bits"] for s in slots) == r.memory_bits  # every synapse counted on its target's core
        assert sum(s["input_axons"] for s in slots) >= r.axons
        assert doc["layers"][r.name]["neurons"] == r.neurons + r.relays
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
    tr = traffic(snn, p, x)
    N = len(x)
    assert round(tr.synops * N) == round(e.totals.synops * N)  # integer counts: exact
    assert tr.steps == e.totals.steps and tr.inter_core > 0 and tr.inter_chip > 0
    rt = runtime(e, tr)
    assert rt.latency_ns == pytest.approx(rt.steps * rt.step_ns, rel=1e-12)
    assert rt.energy_synops_pj == e.totals.energy_synops_pj and rt.energy_neurons_pj == e.totals.energy_neurons_pj
    assert rt.energy_traffic_pj >= e.totals.energy_spikes_pj


def test_one_core_traffic_is_the_input_and_intra_core_messages(nets):
    snn, shape, _ = nets["mlp"]
    x = _x(shape)
    e = estimate(snn, x=x)
    p = place(snn, e)
    tr = traffic(snn, p, x)
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
    e = estimate(snn, (_limits(synaptic_memory_bits_per_core=60 * 8), LOIHI2_ENERGY))
    with pytest.raises(PlacementError, match="alone needs more than one core"):
        place(snn, e)


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


def test_cli_plot_needs_placement(nets, tmp_path):
    _, _, path = nets["mlp"]
    assert cli.main(["estimate", str(path), "--plot", str(tmp_path)]) == 2
