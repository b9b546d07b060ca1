"""neurocompile.torch modules against science.md, with the formulas written out literally here."""
import pytest
import torch
from torch import nn

from neurocompile.torch import CIF, IF, LIF, CQReLU, TimeDistributed, replace_relu

D = torch.float64


def paper_cqrelu(x, L, lam):
    """science.md: CQReLU(x) = (λ / L) * floor( clip(x, 0, λ) * L / λ )."""
    return (lam / L) * torch.floor(torch.clamp(x, 0, lam) * L / lam)


def paper_lif(xs, beta, th):
    """science.md: U(0) = X(0); U(t) = β U(t-1) (1 - F(t-1)) + X(t); F(t) = [U(t) > U_th]."""
    out, U, F = [], None, None
    for t, x in enumerate(xs):
        U = x.clone() if t == 0 else beta * U * (1 - F) + x
        F = (U > th).to(x.dtype)
        out.append(F)
    return torch.stack(out)


def paper_if(xs, th):
    """IF baseline: m += x; s = clip(floor(m/θ), 0, 1); m -= θ s; the spike carries θ."""
    m, out = torch.zeros_like(xs[0]), []
    for x in xs:
        m = m + x
        s = torch.clamp(torch.floor(m / th), 0, 1)
        m = m - th * s
        out.append(s * th)
    return torch.stack(out)


def paper_cif(xs, th, t_wake, gamma):
    """science.md CIF rule line by line (vectorized); t_w counts the first t_wake steps."""
    m = S = torch.zeros_like(xs[0])
    tw, out = 0, []
    for t, x in enumerate(xs):
        m = m + x
        tw += 1 if t < t_wake else 0
        s = torch.clamp(torch.floor(m / th), -gamma, gamma)
        s = torch.where((s <= 0) & (S <= 0), torch.zeros_like(s), s)
        s = torch.where((s > 0) & (S >= tw), torch.zeros_like(s), s)
        # graded (gamma > 1): never past the bounds 0 <= S <= t_w (neurons.cif_step's rule)
        s = torch.clamp(s, -S, tw - S)
        S = S + s
        m = m - th * s
        out.append(s * th)
    return torch.stack(out)


# ---- CQReLU ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("L,lam", [(8, 1.0), (4, 0.5), (3, 2.0), (16, 0.25), (5, 4.0)])
@pytest.mark.parametrize("dtype", [torch.float32, D])
def test_cqrelu_forward_is_the_formula_exactly(L, lam, dtype):
    """λ a power of two: L/λ is exact, so every order of operations rounds the same; bit-equal."""
    g = torch.Generator().manual_seed(L)
    x = torch.cat([torch.linspace(-1, 2 * lam, 4001, dtype=dtype), torch.randn(2000, generator=g, dtype=dtype) * lam,
                   torch.arange(-2, L + 3, dtype=dtype) * lam / L])  # exact quantization steps included
    y = CQReLU(L, lam)(x)
    assert torch.equal(y, paper_cqrelu(x, L, lam))
    steps = torch.arange(0, L + 1, dtype=dtype) * lam / L
    assert torch.allclose(CQReLU(L, lam)(steps), steps, rtol=1e-6, atol=0)  # k λ/L maps to itself (no level lost)
    assert y.max().item() == lam and y.min().item() == 0.0


@pytest.mark.parametrize("L,lam", [(3, 0.3), (5, 0.7), (8, 1.7), (16, 2.9)])
def test_cqrelu_other_clips_differ_only_at_quantization_steps(L, lam):
    """For other λ the formula's own order of operations rounds differently at x = kλ/L (science.md:
    count boundary cases, do not loosen tolerances). Every mismatch is one level, at such an x."""
    m = CQReLU(L, lam)
    lam = m.clip  # the float32 value the module (and its ONNX node) carries
    x = torch.cat([torch.linspace(-1, 2 * lam, 20001, dtype=D), torch.arange(0, L + 2, dtype=D) * lam / L])
    y, want = m(x), paper_cqrelu(x, L, lam)
    bad = y != want
    q = x[bad] * L / lam
    assert bad.sum() <= L + 1
    assert torch.all((q - q.round()).abs() < 1e-9)
    assert torch.allclose((y - want)[bad].abs(), torch.tensor(lam / L, dtype=D))


def test_cqrelu_gradient_is_straight_through_clip():
    lam = 0.5
    x = torch.tensor([-1.0, -1e-6, 0.0, 0.1, 0.26, 0.5, 0.5 + 1e-6, 2.0], dtype=D, requires_grad=True)
    w = torch.arange(1.0, 9.0, dtype=D)  # distinct upstream gradients
    (CQReLU(8, lam)(x) * w).sum().backward()
    assert torch.equal(x.grad, w * torch.tensor([0, 0, 1, 1, 1, 1, 0, 0], dtype=D))
    # the same as autograd's gradient of clip(x, 0, λ)
    x2 = x.detach().clone().requires_grad_(True)
    (torch.clamp(x2, 0, lam) * w).sum().backward()
    assert torch.equal(x.grad, x2.grad)


def test_replace_relu_swaps_every_relu_in_place():
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Sequential(nn.Linear(6, 6), nn.ReLU()), nn.Linear(6, 2))
    out = replace_relu(model, levels=4, clip=0.5)
    assert out is model
    acts = [m for m in model.modules() if isinstance(m, CQReLU)]
    assert len(acts) == 2 and not any(isinstance(m, nn.ReLU) for m in model.modules())
    assert all(a.levels == 4 and a.clip == 0.5 for a in acts)
    x = torch.randn(5, 4)
    h = paper_cqrelu(model[0](x), 4, 0.5)
    want = model[3](paper_cqrelu(model[2][0](h), 4, 0.5))
    assert torch.equal(model(x), want)
    assert isinstance(replace_relu(nn.ReLU(), 8, 1.0), CQReLU)


# ---- LIF ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("beta,th", [(0.25, 0.5), (0.5, 1.0), (0.9, 0.3)])
def test_lif_forward_is_the_formula(beta, th):
    xs = torch.randn(7, 4, 5, generator=torch.Generator().manual_seed(1), dtype=D)
    lif = LIF(beta, th)
    y = lif(xs)
    assert y.shape == xs.shape and y.dtype == D
    assert torch.equal(y, paper_lif(xs, lif.beta, lif.threshold))
    assert 0 < y.mean() < 1  # spikes happen, and not everywhere


class _RectSpike(torch.autograd.Function):
    """The reference code's firing function: Heaviside, surrogate 1/(2 lens) on |U - U_th| < lens."""

    @staticmethod
    def forward(ctx, u, th, lens):
        ctx.save_for_backward(u)
        ctx.th, ctx.lens = th, lens
        return (u > th).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * ((u - ctx.th).abs() < ctx.lens).to(g.dtype) / (2 * ctx.lens), None, None


def test_lif_gradient_is_the_rectangular_surrogate():
    """Against a literal implementation: U = β U_prev (1 - F_prev.detach()) + X, F = RectSpike(U)."""
    beta, th, lens = 0.25, 0.5, 0.5
    g = torch.Generator().manual_seed(2)
    xs = (torch.randn(6, 3, 4, generator=g, dtype=D) * 0.8 + 0.3).requires_grad_(True)
    w = torch.randn(6, 3, 4, generator=g, dtype=D)
    (LIF(beta, th, lens)(xs) * w).sum().backward()
    got = xs.grad.clone()

    xs2 = xs.detach().clone().requires_grad_(True)
    U = F = None
    out = []
    for t in range(xs2.shape[0]):
        U = xs2[t] if t == 0 else beta * U * (1 - F.detach()) + xs2[t]
        F = _RectSpike.apply(U, th, lens)
        out.append(F)
    (torch.stack(out) * w).sum().backward()
    assert torch.allclose(got, xs2.grad, rtol=0, atol=1e-15)
    assert (got != 0).float().mean() > 0.3  # the window is hit often enough to mean something


def test_lif_single_step_gradient_values():
    x = torch.tensor([[-0.1, 0.0, 0.2, 0.5, 0.9, 0.99, 1.0, 1.5]], dtype=D, requires_grad=True)
    LIF(0.25, 0.5, 0.5)(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([[0, 0, 1, 1, 1, 1, 0, 0]], dtype=D))  # 1/(2*0.5) on (0, 1)
    x.grad = None
    LIF(0.25, 0.5, 0.25)(x).sum().backward()
    assert torch.equal(x.grad, torch.tensor([[0, 0, 0, 2, 0, 0, 0, 0]], dtype=D))  # 1/(2*0.25) on (0.25, 0.75)


# ---- IF and CIF --------------------------------------------------------------------------------------
def test_if_forward_and_surrogate():
    xs = torch.rand(9, 3, 4, generator=torch.Generator().manual_seed(3), dtype=D) * 1.5 - 0.3
    m = IF(0.75)
    assert torch.equal(m(xs), paper_if(xs, 0.75))
    x = torch.tensor([[0.0, 0.3, 0.4, 0.75, 1.1, 1.2]], dtype=D, requires_grad=True)
    IF(0.75)(x).sum().backward()  # d(s θ)/dx = θ/(2 lens) = 1 for |x - θ| < θ/2
    assert torch.allclose(x.grad, torch.tensor([[0, 0, 1, 1, 1, 0]], dtype=D))


@pytest.mark.parametrize("gamma", [1, 2])
def test_cif_forward_is_the_paper_rule(gamma):
    L, th = 4, 0.5
    g = torch.Generator().manual_seed(4)
    wake = torch.randn(L, 5, 6, generator=g, dtype=D) * 0.8 + 0.2
    xs = torch.cat([wake, torch.zeros(3 * L + 8, 5, 6, dtype=D)])  # wake, then sleep
    y = CIF(th, L, gamma)(xs)
    assert torch.equal(y, paper_cif(xs, th, L, gamma))
    # settled (science.md's invariant): S = clip(floor(sum x / θ), 0, T_wake), so the spike values sum to θ S
    assert torch.allclose(y.sum(0), th * torch.clamp(torch.floor(wake.sum(0) / th), 0, L), rtol=0, atol=1e-12)
    assert (y < 0).any()  # negative spikes took something back


def test_cif_straight_through_gradient():
    x = torch.tensor([[-0.2, 0.0, 0.3, 0.6, 1.2]], dtype=D, requires_grad=True)
    CIF(0.5, levels=4, gamma=1)(x).sum().backward()
    # one step from rest: s = clip(floor(x/θ), 0, 1); d(s θ)/dx = 1 where floor(x/θ) was not clipped
    assert torch.equal(x.grad, torch.tensor([[0, 1, 1, 1, 0]], dtype=D))


def test_time_distributed_applies_per_step():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    xs = torch.randn(4, 5, 2, 6, 6)
    y = TimeDistributed(conv)(xs)
    assert y.shape == (4, 5, 3, 6, 6)
    assert torch.allclose(y, torch.stack([conv(x) for x in xs]), atol=1e-6)


def test_spiking_modules_need_a_time_axis():
    with pytest.raises(ValueError, match=r"\(T, N, ...\)"):
        LIF()(torch.ones(3))


def test_package_name_does_not_shadow_torch():
    """neurocompile/torch/*.py import the real PyTorch (absolute imports), not their own package."""
    from neurocompile.torch import export, idsnn, modules

    assert modules.torch is torch and export.torch is torch and idsnn.torch is torch
    assert hasattr(modules.torch, "autograd")
