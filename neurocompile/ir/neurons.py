"""Neuron update rules as pure array functions: the single source of neuron truth.

Each function takes the state and this step's input current and returns the spikes and the new
state. They work on numpy arrays and torch tensors alike, so the reference simulator (torch), the
Lava process models (numpy) and the PyTorch kit all call the same code. See ../shared/science.md.
"""
from __future__ import annotations

from typing import Any

import numpy as np

try:  # torch is a dependency, but keep this module importable without it
    import torch

    from neurocompile.ir import fused_cif
except ImportError:  # pragma: no cover
    torch = None

Array = Any


def _floor(a: Array) -> Array:
    return torch.floor(a) if torch is not None and isinstance(a, torch.Tensor) else np.floor(a)


def _clip(a: Array, lo: Array, hi: Array) -> Array:
    if torch is not None and isinstance(a, torch.Tensor):
        return torch.minimum(torch.maximum(a, torch.as_tensor(lo, dtype=a.dtype, device=a.device)),
                             torch.as_tensor(hi, dtype=a.dtype, device=a.device))
    return np.minimum(np.maximum(a, lo), hi)


def _like(mask: Array, a: Array) -> Array:
    """A boolean mask as 0/1 in ``a``'s dtype (``mask * 1.0`` would give torch's default float32)."""
    if torch is not None and isinstance(mask, torch.Tensor):
        return mask.to(a.dtype)
    return np.asarray(mask).astype(np.asarray(a).dtype)


def cqrelu(x: Array, levels: int, clip: float, shift: float = 0.0, divide: bool = False) -> Array:
    """CQReLU, the ANN activation a CIF/IF neuron stands for (science.md):
    (λ/L) * clamp(floor(x * L/λ + shift), 0, L); shift 0 is CQReLU (CASC), 0.5 is QCFS.

    ``divide`` computes (x * L) / λ instead of x * (L/λ): what a neuron does (sum L steps, then
    compare with θ), exact for the integers of fixed point; the default matches exported chains."""
    r = x * levels / clip if divide else x * (levels / clip)
    q = _floor(r + shift) if shift else _floor(r)
    return _clip(q, 0, levels) * (clip / levels)


def cif_step(m: Array, count: Array, x: Array, theta: float, t_wake_seen: int, gamma: int = 1):
    """Consistent IF (CASC's signed burst neuron, soft reset).

    ``count`` is the signed cumulative spike count S, ``t_wake_seen`` the wake steps seen so far
    (frozen during sleep). Spikes per step are bounded by ``gamma`` and by what keeps
    0 <= S <= t_wake_seen: a negative spike only takes back an earlier positive one and the count
    never exceeds the wake steps (the clip at λ). For gamma = 1 this is exactly the paper's rule;
    for gamma > 1 (graded) bounding by the remaining room keeps the same invariant.
    Returns (s, m, S): spikes in units of theta, new membrane, new count.
    """
    m = m + x
    lo = -_clip(count, 0, gamma)                # max(-gamma, -S) since S >= 0
    hi = _clip(t_wake_seen - count, 0, gamma)   # min(gamma, t_w - S)
    s = _clip(_floor(m / theta), lo, hi)
    return s, m - theta * s, count + s


def cif_step_(m: "torch.Tensor", count: "torch.Tensor", x: "torch.Tensor", theta: float, t_wake_seen: int,
              gamma: int = 1, scratch: dict | None = None, amplitude: float | None = None,
              bias: "torch.Tensor | None" = None) -> "torch.Tensor":
    """:func:`cif_step` for torch tensors, updating ``m`` and ``count`` in place (the simulator's hot
    path: one scratch tensor, kept in ``scratch`` between calls, and the returned spikes). Returns a new tensor
    of spike values s * theta (s * amplitude when given), and where the fused kernel ran, (sum |s|, sum s) in
    ``scratch[fused_cif.SUMS]``; the spikes go into ``scratch[fused_cif.OUT]`` where a caller put a tensor there (taken
    out). Same numbers as cif_step, bit for bit
    (tests/test_neurons.py checks it): since -S <= 0 <= t_w - S, clip(floor(m/θ), max(-γ, -S), min(γ, t_w - S))
    equals clip(S + clip(floor(m/θ), -γ, γ), 0, t_w) - S, which needs scalar clamps only (integers: exact).
    ``bias``: a constant current in one sample's layout, added to ``x`` first (in the kernel's loop where it runs)."""
    scratch = {} if scratch is None else scratch
    out = scratch.pop(fused_cif.OUT, None)  # a caller's tensor for the spikes (the simulator reuses them)
    if out is not None and (out.shape != m.shape or out.dtype != m.dtype or out.device != m.device):
        out = None
    if fused_cif.loaded():  # the same numbers in one compiled loop, with the step's spike sums (fused_cif.py)
        out = torch.empty_like(m) if out is None else out
        sums = fused_cif.step(m, count, x, theta, t_wake_seen, gamma, theta if amplitude is None else amplitude, out,
                              bias)
        if sums is not None:
            scratch[fused_cif.SUMS] = sums
            return out
    if bias is not None:
        x = x + bias
    new = scratch.get("new")
    if new is None or new.shape != count.shape:
        new = scratch["new"] = torch.empty_like(count)
    m.add_(x)
    if theta == 1.0:
        torch.floor(m, out=new)
    else:
        torch.div(m, theta, out=new).floor_()
    new.clamp_(-gamma, gamma).add_(count).clamp_(0, t_wake_seen)  # the new count S'
    s = torch.sub(new, count, out=out)
    count.copy_(new)
    amp = theta if amplitude is None else amplitude
    if theta == 1.0:
        m.sub_(s)
    elif amp == theta:
        m.sub_(s.mul_(theta))  # s * theta rounded, then subtracted: no fused multiply-subtract (cif_step's rounding)
        return s
    else:
        m.sub_(torch.mul(s, theta, out=new))
    return s if amp == 1.0 else s.mul_(amp)


def cif_count_step(count: Array, floor_x: Array, cap: int, gamma: int = 1, out: Array | None = None) -> Array:
    """:func:`cif_step` in the count domain, for a neuron whose cumulative input (over theta, plus any pre-charge)
    has integer part ``floor_x`` = floor(X_t): the membrane before firing is theta (X_t - S), so floor(m / theta)
    = floor_x - S and the new count is clip(S + clip(floor_x - S, -gamma, gamma), 0, cap) (cap: t_wake_seen, or
    what :meth:`ops.CIF.count_cap` gives). Integers in, integers out: exact in any float dtype. Returns new S (in
    ``out``, a torch tensor, when given)."""
    if torch is not None and isinstance(floor_x, torch.Tensor):
        fused = fused_cif.count_step(count, floor_x, cap, gamma, out) if fused_cif.loaded() else None
        if fused is not None:  # the same passes in one loop
            return fused
        d = torch.sub(floor_x, count, out=out)
        return d.clamp_(-gamma, gamma).add_(count).clamp_(0, cap)
    d = floor_x - count
    return _clip(_clip(d, -gamma, gamma) + count, 0, cap)


def if_count_step(count: Array, floor_x: Array, out: Array | None = None) -> Array:
    """:func:`if_step` in the count domain (see :func:`cif_count_step`): one positive spike at most, no cap."""
    if torch is not None and isinstance(floor_x, torch.Tensor):
        return torch.sub(floor_x, count, out=out).clamp_(0, 1).add_(count)
    return _clip(floor_x - count, 0, 1) + count


def if_step(m: Array, x: Array, theta: float):
    """IF baseline: soft reset, at most one positive spike per step, no clip, no negative spikes."""
    m = m + x
    s = _clip(_floor(m / theta), 0, 1)
    return s, m - theta * s


def lif_step(u: Array, x: Array, beta: float, threshold: float):
    """LIF with hard reset (IDSNN): U(t) = beta * U(t-1) * (1 - F(t-1)) + X(t); F = [U > U_th].

    ``u`` is the membrane after the previous step's reset (so the reset factor is already applied).
    Returns (F, u after reset).
    """
    u = beta * u + x
    f = _like(u > threshold, u)
    return f, u * (1.0 - f)


def lif_step_fixed(v: Array, a: Array, dv: int, vth: int):
    """Lava's bit-accurate LIF (``PyLifResetModelBitAcc``) with du = 4095, the IDSNN student's integer form:
    u = a << 6 (the current is this step's input); v = sign(v) * (|v * (4096 - dv)| >> 12) + u, saturated to
    24 bits; spike when v > vth << 6, then v = 0. ``v`` is the state after the previous step's reset, integers
    held in any dtype that is exact for them (float64 holds |v * 4096| < 2**36 exactly). Returns (F, v).
    """
    d = v * (4096 - int(dv))
    if torch is not None and isinstance(d, torch.Tensor):
        decayed = torch.sign(d) * torch.floor(torch.abs(d) / 4096)
    else:
        decayed = np.sign(d) * np.floor(np.abs(d) / 4096)
    limit = 2 ** 23 - 1
    v = _clip(decayed + a * 64, -limit, limit)
    f = _like(v > int(vth) * 64, v)
    return f, v * (1 - f)


def cuba_lif_step(i: Array, u: Array, x: Array, alpha: float, beta: float, threshold: float):
    """Current-based LIF with hard reset to 0 (NIR's CubaLIF, snnTorch's ``Synaptic(reset_mechanism="zero",
    reset_delay=False)``, Lava's LIF with du = 1 - alpha, dv = 1 - beta):

        I(t) = alpha * I(t-1) + X(t);   U(t) = beta * U(t-1) * (1 - F(t-1)) + I(t);   F(t) = [U(t) > U_th]

    The membrane takes this step's new current; the current itself is never reset. ``u`` is the membrane after the
    previous step's reset. Returns (F, I, u after reset).
    """
    i = alpha * i + x
    u = beta * u + i
    f = _like(u > threshold, u)
    return f, i, u * (1.0 - f)


def li_step(v: Array, x: Array, beta: float, i: Array | None = None, alpha: float | None = None):
    """Leaky integrator, no spikes and no reset (NIR's LI, and with a synaptic current its CubaLI; snnTorch's Leaky /
    Synaptic with ``reset_mechanism="none"``): V(t) = beta * V(t-1) + X(t), or with a current (``i`` and ``alpha``
    given) I(t) = alpha * I(t-1) + X(t), V(t) = beta * V(t-1) + I(t). Returns (I or None, V)."""
    if i is not None:
        i = alpha * i + x
        x = i
    return i, beta * v + x


def inhibition_maxpool_step_(acc: "torch.Tensor", x_windows: "torch.Tensor") -> "torch.Tensor":
    """:func:`inhibition_maxpool_step` updating ``acc`` in place; returns the pooled output."""
    acc.add_(x_windows)
    out = acc.amax(-1)
    acc.sub_(out[..., None])
    return out


def inhibition_maxpool_tiles_step_(acc: "torch.Tensor", x: "torch.Tensor", kernel: tuple[int, int]) -> "torch.Tensor":
    """:func:`inhibition_maxpool_step_` on windows of ``kernel`` (kh, kw) that tile ``acc`` (N, C, H, W), kept in the
    input's own layout (no copies); one compiled loop where loaded (fused_cif.pool_step: the same numbers)."""
    if fused_cif.loaded():
        out = fused_cif.pool_step(acc, x, kernel)
        if out is not None:
            return out
    (kh, kw), (N, C, H, W) = kernel, acc.shape
    acc.add_(x)
    out = torch.nn.functional.max_pool2d(acc, kernel, kernel)
    acc.view(N, C, H // kh, kh, W // kw, kw).sub_(out.view(N, C, H // kh, 1, W // kw, 1))
    return out


def inhibition_maxpool_step(acc: Array, x_windows: Array):
    """Lateral-inhibition max pool on one step. ``x_windows`` holds each window's inputs on the last
    axis; ``acc`` accumulates them minus what was already sent: out = max(acc); acc -= out.
    The cumulative output therefore equals the max over the window of the cumulative inputs."""
    acc = acc + x_windows
    out = acc.max(-1).values if torch is not None and isinstance(acc, torch.Tensor) else acc.max(-1)
    return out, acc - out[..., None]
