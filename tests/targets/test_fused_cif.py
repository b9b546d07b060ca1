"""The fused CIF kernel (neurocompile/ir/fused_cif.py) against torch's elementwise passes it replaces: the same
membranes, counts, spikes and spike sums bit for bit, for every threshold, gamma, amplitude and dtype, and the same
simulator results with it and without it. The kernel must build on this machine: the suite runs where the
product runs, with a C++ compiler (a machine without one gets torch's passes, the same numbers)."""
import numpy as np
import pytest
import torch

from neurocompile import api
from neurocompile.ir import fused_cif, neurons


@pytest.fixture(scope="module")
def kernel():
    k = fused_cif.load()
    assert k is not None, fused_cif.why_not()
    return k


@pytest.fixture
def passes_only(monkeypatch):
    """Within a test: torch's passes, as on a machine where the kernel cannot be built."""
    def off():
        monkeypatch.setattr(fused_cif, "_KERNEL", [])
        monkeypatch.setenv("NEUROCOMPILE_FUSED", "0")  # and load() finds none
    return off


def _run(fused: bool, shape, xs, theta, gamma, amp, dtype, cap_of):
    m, S = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)
    saved = list(fused_cif._KERNEL)
    if not fused:
        fused_cif._KERNEL.clear()
    try:
        spikes, sums = [], []
        for t, x in enumerate(xs):
            scratch = {}
            s = neurons.cif_step_(m, S, x, theta, cap_of(t), gamma, scratch, amp)
            spikes.append(s.clone())
            sums.append(scratch.get(fused_cif.SUMS))
    finally:
        fused_cif._KERNEL[:] = saved
    return m, S, spikes, sums


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("theta,gamma,amp", [(1.0, 1, None), (1.0, 1, 0.5), (0.37, 1, None), (0.37, 1, 1.0),
                                             (3.0, 3, None), (1.0, 4, 1.0), (0.1, 2, 0.25)])
def test_fused_step_is_the_passes_bit_for_bit(kernel, dtype, theta, gamma, amp):
    shape = (5, 3, 33, 17)  # not a multiple of the vector width or of the 8,192-element chunks
    g = torch.Generator().manual_seed(7)
    xs = [torch.randn(shape, generator=g, dtype=dtype) * theta * (3 if t < 6 else 0.5) for t in range(14)]
    xs += [torch.zeros(shape, dtype=dtype)] * 4  # sleep: only negative spikes take back
    cap = lambda t: min(t + 1, 8)  # noqa: E731 - wake steps seen, frozen at 8
    m1, S1, s1, _ = _run(False, shape, xs, theta, gamma, amp, dtype, cap)
    m2, S2, s2, sums = _run(True, shape, xs, theta, gamma, amp, dtype, cap)
    assert torch.equal(m1, m2) and torch.equal(S1, S2)
    a = theta if amp is None else amp
    for p, q, (mag, net) in zip(s1, s2, sums):
        assert torch.equal(p, q)
        k = q / a
        assert mag == float(k.abs().sum()) and net == float(k.sum())
    assert any(float((q < 0).sum()) for q in s2)  # negative spikes were exercised


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("theta", [1.0, 0.37])
def test_fused_bias_is_the_broadcast_add_bit_for_bit(kernel, dtype, theta):
    """A sink's bias handed to the step (one sample's layout, 7,371 values: blocks end inside a sample) gives what
    adding it to the current first gives, in the loop and in the passes; a bias of another size takes the passes."""
    shape = (5, 3, 351, 7)
    g = torch.Generator().manual_seed(3)
    bias = (torch.randn(3, 1, 1, generator=g, dtype=dtype) * 0.3).expand(shape[1:]).contiguous()
    xs = [torch.randn(shape, generator=g, dtype=dtype) * theta for _ in range(10)]
    runs = []
    for fused in (False, True):
        m, S = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)
        saved = list(fused_cif._KERNEL)
        if not fused:
            fused_cif._KERNEL.clear()
        try:
            out = [neurons.cif_step_(m, S, x, theta, min(t + 1, 8), 1, {}, None, bias).clone()
                   for t, x in enumerate(xs)]
        finally:
            fused_cif._KERNEL[:] = saved
        runs.append((m, S, out))
    m2, S2, _, _ = _run(False, shape, [x + bias for x in xs], theta, 1, None, dtype, lambda t: min(t + 1, 8))
    for m, S, out in runs:
        assert torch.equal(m, m2) and torch.equal(S, S2)
        assert all(torch.equal(a, b) for a, b in zip(out, runs[0][2]))
    m, S, scratch = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype), {}
    neurons.cif_step_(m, S, xs[0], theta, 1, 1, scratch, None, bias[:, :1, :1])  # per channel, not per neuron
    assert fused_cif.SUMS not in scratch


def test_overflowed_membranes_give_nan_sums_as_the_passes_do(kernel):
    shape = (3, 1000)
    x = torch.zeros(shape)
    x[1, 5], x[2, 7] = float("inf"), float("nan")
    m, S, scratch = torch.zeros(shape), torch.zeros(shape), {}
    neurons.cif_step_(m, S, x, 1.0, 1, 1, scratch, 1.0)
    mag, net = scratch[fused_cif.SUMS]
    assert np.isnan(mag) and np.isnan(net)


def test_noncontiguous_or_cuda_shaped_inputs_take_the_passes(kernel):
    m, S = torch.zeros(8, 6), torch.zeros(8, 6)
    x = torch.ones(6, 8).t()  # a transposed view
    scratch = {}
    s = neurons.cif_step_(m, S, x, 1.0, 1, 1, scratch)
    assert fused_cif.SUMS not in scratch and torch.equal(s, torch.ones(8, 6))


@pytest.mark.parametrize("exact", [False, True])
def test_simulator_gives_the_same_results_with_and_without_the_kernel(kernel, passes_only, monkeypatch, onnx_model,
                                                                     exact):
    from neurocompile.targets.reference import event_driven

    monkeypatch.setattr(event_driven, "most_nonzero", lambda ew: 0.0)  # dense both ways (test_event_driven.py)
    path, shape = onnx_model("resnet", "cqrelu", "bn", 4)
    x = np.random.default_rng(5).uniform(0, 1, (40, *shape)).astype(np.float32)
    results, used, step = [], [], fused_cif.step
    monkeypatch.setattr(fused_cif, "step", lambda *a: used.append(1) or step(*a))
    for gamma in (1, 3):
        snn = api.convert(api.load(path), gamma=gamma, synapse_delay=1, steps=30)
        # early_stop with exact: float64 step by step (the count-domain executor does not step neurons)
        results.append(api.simulate(snn, x, early_stop=exact, exact=exact))
    assert used, "the kernel was not used"
    passes_only()
    used.clear()
    for gamma, fused in zip((1, 3), results):
        snn = api.convert(api.load(path), gamma=gamma, synapse_delay=1, steps=30)
        ref = api.simulate(snn, x, early_stop=exact, exact=exact)
        np.testing.assert_array_equal(fused.output, ref.output)
        np.testing.assert_array_equal(fused.per_step, ref.per_step)
        assert fused.spikes == ref.spikes and fused.quiescent_at == ref.quiescent_at
    assert not used and not fused_cif.loaded()


@pytest.mark.parametrize("delay", [1, 2])
def test_reused_spike_tensors_change_no_number(monkeypatch, onnx_model, delay):
    """The simulator writes each step's spikes into tensors it reuses once nothing else holds them (SpikeBuffers): with
    synaptic delay lines and the balance delays of a ResNet's merges holding spikes for several steps, and layer
    records, every number is the one of fresh tensors."""
    from neurocompile.targets.reference import simulator

    path, shape = onnx_model("resnet", "cqrelu", "bn", 4)
    snn = api.convert(api.load(path), synapse_delay=delay, steps=40)
    assert any(d for v in snn.schedule.balance.values() for d in v)  # balance delays are exercised
    x = np.random.default_rng(9).uniform(0, 1, (20, *shape)).astype(np.float32)
    reused = api.simulate(snn, x, record_layers=True)
    monkeypatch.setattr(simulator.SpikeBuffers, "take", lambda self, like: torch.empty_like(like))
    fresh = api.simulate(snn, x, record_layers=True)
    np.testing.assert_array_equal(reused.per_step, fresh.per_step)
    assert reused.spikes == fresh.spikes
    for k in fresh.layers:
        np.testing.assert_array_equal(reused.layers[k], fresh.layers[k])


def test_a_held_spike_tensor_is_never_handed_out_again():
    from neurocompile.targets.reference.simulator import SpikeBuffers

    pool, like = SpikeBuffers(), torch.zeros(3, 4)
    a = pool.take(like)
    view = a.reshape(-1)
    b = pool.take(like)
    assert b is not a  # a is held (here, and through a view)
    del a
    assert pool.take(like) is not pool.free[0]  # the view still holds its memory
    del view
    c = pool.take(like)
    assert c is pool.free[0]


def test_count_domain_loops_are_the_passes_bit_for_bit(kernel):
    """The count-domain executor's three fused loops (certified.py, certified_decide.py) against torch's passes."""
    g = torch.Generator().manual_seed(3)
    S = torch.randint(0, 9, (7, 4, 9, 11), generator=g).float()
    F = torch.randint(-12, 20, S.shape, generator=g).float()
    for gamma, cap in ((1, 8), (3, 5)):
        want = torch.sub(F, S).clamp_(-gamma, gamma).add_(S).clamp_(0, cap)
        got = fused_cif.count_step(S, F, cap, gamma, torch.empty_like(S))
        assert torch.equal(got, want)
        d = want - S
        late = torch.zeros(len(S), dtype=torch.bool)
        late[0] = True
        same = want.clone()
        same[2] = S[2]  # sample 2 unchanged
        mag, net = fused_cif.count_change(same, S, late)
        d = same - S
        assert (mag, net) == (float(d.abs().sum()), float(d.sum()))
        assert late.tolist() == [True] + [bool(d[i].ne(0).any()) for i in range(1, len(S))] and not late[2]
    from neurocompile.targets.reference.certified_decide import _close_calls

    for sat, delta in ((None, 0.01), ((0.0, 8.0), 0.05), ((-1.0, 3.0), 0.1000000018)):
        X = torch.randn(6, 3, 50, generator=g) * 9
        X[4, 1, 7] = float("nan")  # a sample with a NaN has no close call in either
        X[5, 0, :3] = torch.tensor([0.1, 0.9, 5.1])  # at float32's rounding of the thresholds
        (X1, F1), (X2, F2) = (X.clone(), torch.empty_like(X)), (X.clone(), torch.empty_like(X))
        got = _close_calls(X1, F1, delta, sat)
        saved = list(fused_cif._KERNEL)
        fused_cif._KERNEL.clear()
        try:
            want = _close_calls(X2, F2, delta, sat)
        finally:
            fused_cif._KERNEL[:] = saved
        assert all(torch.equal(p, q) for p, q in zip(got, want)) and len(got[0]) > 0
        assert torch.equal(F1.nan_to_num(-1), F2.nan_to_num(-1)) and torch.equal(X1.nan_to_num(-1), X2.nan_to_num(-1))
        assert 4 not in got[0].tolist()


@pytest.mark.parametrize("arch", ["vgg", "resnet"])
def test_exact_mode_gives_the_same_results_with_and_without_the_kernel(kernel, passes_only, onnx_model, arch):
    path, shape = onnx_model(arch, "cqrelu", "bn", 4)
    snn = api.convert(api.load(path), synapse_delay=1, steps=30)
    x = np.random.default_rng(2).uniform(0, 1, (48, *shape)).astype(np.float32)
    sim = api.compile(snn, "reference", exact=True)
    fused = sim.run(x, steps=30)
    proof = dict(sim.proof)
    passes_only()
    ref = api.compile(snn, "reference", exact=True).run(x, steps=30)
    np.testing.assert_array_equal(fused.output, ref.output)
    np.testing.assert_array_equal(fused.per_step, ref.per_step)
    assert fused.spikes == ref.spikes and fused.quiescent_at == ref.quiescent_at and proof["decisions"] > 0
