"""Event-driven connections (targets/reference/event_driven.py) and the fused inhibition-pool step: the compiled loops
against torch's own operations (float64 convolution; the pool's passes bit for bit), and whole runs with and without
them. The kernels must build on this machine (see test_fused_cif.py)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from neurocompile import api
from neurocompile.ir import fused_cif, neurons
from neurocompile.targets.reference import event_driven


@pytest.fixture(scope="module")
def kernel():
    k = fused_cif.load()
    assert k is not None, fused_cif.why_not()
    return k


def _spikes(shape, density, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    keep = torch.rand(shape, generator=g) < density
    return (torch.randint(-2, 3, shape, generator=g) * keep).to(dtype) * 0.75


@pytest.mark.parametrize("geometry", [
    dict(k=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dilation=(1, 1)),
    dict(k=(3, 3), stride=(2, 2), pads=(1, 1, 1, 1), dilation=(1, 1)),
    dict(k=(3, 2), stride=(2, 1), pads=(0, 1, 2, 0), dilation=(1, 1)),   # asymmetric pads
    dict(k=(3, 3), stride=(1, 2), pads=(2, 2, 2, 2), dilation=(2, 1)),
    dict(k=(1, 1), stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1)),  # and a dense layer's form
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_event_conv_is_the_convolution(kernel, geometry, dtype):
    """Every geometry (stride, asymmetric ONNX pads, dilation) gives the convolution's sums: to float64 rounding in
    float64, to float32 rounding of the sum of magnitudes in float32."""
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = (geometry[k] for k in ("k", "stride", "pads", "dilation"))
    x = _spikes((3, 5, 11, 9), 0.1, 0, dtype)
    w = torch.randn(7, 5, kh, kw, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    xp = F.pad(x.double(), (pl, pr, pt, pb))
    want = F.conv2d(xp, w, None, (sh, sw), 0, (dh, dw))
    mag = F.conv2d(xp.abs(), w.abs(), None, (sh, sw), 0, (dh, dw))
    out = torch.full(want.shape, float("nan"), dtype=dtype)
    assert fused_cif.event_conv(x, w.to(dtype).permute(1, 2, 3, 0).contiguous(), out, sh, sw, pt, pl, dh, dw, 1.0)
    u = 2.0 ** -53 if dtype == torch.float64 else 2.0 ** -24
    assert torch.all((out.double() - want).abs() <= 2 * 5 * kh * kw * u * mag + 1e-300)


def test_event_conv_declines_a_dense_input(kernel):
    """More than ``most`` of the input nonzero: nothing written, the caller runs the dense product."""
    x = _spikes((2, 4, 6, 6), 0.5, 2, torch.float32)
    w = torch.ones(4, 3, 3, 8)
    out = torch.full((2, 8, 6, 6), 7.0)
    assert not fused_cif.event_conv(x, w, out, 1, 1, 1, 1, 1, 1, 0.15)
    assert torch.all(out == 7.0)
    assert fused_cif.event_conv(x, w, out, 1, 1, 1, 1, 1, 1, 0.9)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kernel_hw", [(2, 2), (3, 3), (2, 3)])
def test_fused_pool_step_is_the_passes_bit_for_bit(kernel, dtype, kernel_hw):
    """InhibitionMaxPool's tiling step in one loop: the same maxima and accumulators as torch's add_, max_pool2d and
    sub_, step after step on sparse signed inputs; silent windows left alone change nothing."""
    kh, kw = kernel_hw
    shape = (3, 5, 4 * kh, 5 * kw)
    a1, a2 = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)
    saved = list(fused_cif._KERNEL)
    for t in range(12):
        x = _spikes(shape, 0.2 if t < 8 else 0.02, 10 + t, dtype)
        fused_cif._KERNEL.clear()
        try:
            o1 = neurons.inhibition_maxpool_tiles_step_(a1, x, (kh, kw))
        finally:
            fused_cif._KERNEL[:] = saved
        o2 = neurons.inhibition_maxpool_tiles_step_(a2, x, (kh, kw))
        assert torch.equal(o1, o2) and torch.equal(a1, a2)
        assert o2._nc_silent == (not bool(o1.any()))


def test_fused_pool_step_propagates_nan(kernel):
    acc = torch.zeros(1, 1, 4, 4)
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 0, 1] = float("nan")
    x[0, 0, 3, 3] = 1.0
    out = neurons.inhibition_maxpool_tiles_step_(acc, x, (2, 2))
    assert torch.isnan(out[0, 0, 0, 0]) and out[0, 0, 1, 1] == 1.0 and out[0, 0, 0, 1] == 0.0


@pytest.mark.parametrize("arch", ["vgg", "resnet"])
@pytest.mark.parametrize("multi_step", [False, True])
def test_runs_with_and_without_event_driven_connections_agree(kernel, monkeypatch, onnx_model, arch, multi_step):
    """float64 runs: the same spikes in every layer and the readout to float64 rounding, event-driven or dense (the
    event-driven loop used on some steps); the pool's rest on silent steps changes nothing either."""
    from neurocompile.targets.reference.simulator import ReferenceSimulator

    path, shape = onnx_model(arch, "cqrelu", "bn", 4)
    snn = api.convert(api.load(path))
    x = np.random.default_rng(4).uniform(0, 1, (24, *shape))
    used, linear = [], event_driven.EventConnections.linear
    monkeypatch.setattr(event_driven.EventConnections, "linear",
                        lambda self, n, xs: (lambda y: used.append(y is not None) or y)(linear(self, n, xs)))
    monkeypatch.setattr(event_driven, "most_nonzero", lambda ew: 0.5)
    sim = ReferenceSimulator(snn, dtype="float64")
    fast = sim.run(x, record_layers=True, multi_step=multi_step)
    assert any(used), "the event-driven loop never ran"
    monkeypatch.setattr(event_driven, "most_nonzero", lambda ew: 0.0)  # declines every input not all zeros
    used.clear()
    dense = sim.run(x, record_layers=True, multi_step=multi_step)
    assert not any(used)
    np.testing.assert_allclose(fast.per_step, dense.per_step, rtol=0, atol=1e-12 * np.abs(dense.per_step).max())
    assert fast.spikes == dense.spikes
    for k in dense.layers:
        np.testing.assert_array_equal(fast.layers[k], dense.layers[k])
