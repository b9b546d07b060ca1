"""PyTorch modules: CQReLU and the spiking neurons LIF, IF and CIF.

Forward values come from the single definitions in :mod:`neurocompile.ir.ops` (``cqrelu``) and
:mod:`neurocompile.ir.neurons` (``lif_step``, ``if_step``, ``cif_step``); this module only adds what
training and export need around them: a gradient (straight-through or surrogate) and an ONNX
``symbolic`` that writes the custom node of domain ``neurocompile``.

Spiking modules run multi-step on a leading time axis: input (T, N, ...) -> output (T, N, ...),
state starting at zero. Their output is what the reference simulator passes on: LIF spikes F in
{0, 1}; IF and CIF spike values s * θ (so that the ANN meaning of IF/CIF is the CQReLU with
clip θ). In export mode (:mod:`neurocompile.torch._mode`) they describe one step on (N, ...).
Float attributes (λ, β, θ) are kept as float32 values, exactly what the exported ONNX node carries.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from neurocompile.ir import neurons
from neurocompile.ir.neurons import cqrelu as _cqrelu
from neurocompile.torch._mode import current_mode, per_step, step_mode

from neurocompile.frontends.onnx.contract import DOMAIN  # the kit writes the contract the frontend reads


def _f32(v: float) -> float:
    """The float32 value ONNX float attributes carry: modules keep exactly what they export."""
    return float(np.float32(v))


# ---- CQReLU -------------------------------------------------------------------------------------
class _CQReLUFn(torch.autograd.Function):
    """Forward: ops.cqrelu. Backward: straight-through, the gradient of clip(x, 0, λ)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, levels: int, clip: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.clip = clip
        return _cqrelu(x, levels, clip)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor):
        (x,) = ctx.saved_tensors
        inside = (x >= 0) & (x <= ctx.clip)  # closed interval, as torch.clamp's own gradient
        return grad * inside.to(grad.dtype), None, None

    @staticmethod
    def symbolic(g: Any, x: Any, levels: int, clip: float) -> Any:
        return g.op(f"{DOMAIN}::CQReLU", x, levels_i=int(levels), clip_f=float(clip)).setType(x.type())


def chain_clip_bound(levels: int, clip: float) -> float:
    """Upper bound for the Clip of the standard-op chain Clip(0, b) -> Mul(L/λ) -> Floor -> Div(L/λ).

    In float32, λ * float32(L/λ) rounds below L for about one (λ, L) pair in ten, so a chain clipped at
    exactly λ could never reach level L. b is the smallest float32 >= λ whose exact product with
    float32(L/λ) is >= L (λ itself when that already holds). Guarantee: for every float32 x, the
    chain's floor equals clamp(floor(x * float32(L/λ)), 0, L), the floor of ops.cqrelu; and
    b * L/λ < L + 1, so recognize_cqrelu still reads levels L and clip λ from the chain.
    """
    r = float(np.float32(levels / clip))
    b = np.float32(clip)
    while float(b) * r < levels:  # the product of two float32 values is exact in float64
        b = np.nextafter(b, np.float32(np.inf))
    return float(b)


class CQReLU(nn.Module):
    """Clip-quantized ReLU (science.md section 1): (λ/L) * floor(clip(x, 0, λ) * L/λ).

    Forward is :func:`neurocompile.ir.ops.cqrelu`, the function the interpreter gives an imported
    CQReLU node, so the torch model and the imported graph agree bit for bit in the same dtype.
    Backward is the straight-through gradient: 1 for 0 <= x <= λ, else 0.
    """

    def __init__(self, levels: int = 8, clip: float = 1.0):
        super().__init__()
        if int(levels) < 1 or not clip > 0:
            raise ValueError(f"CQReLU needs levels >= 1 and clip > 0, got levels={levels}, clip={clip}")
        self.levels, self.clip = int(levels), _f32(clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mode = current_mode()
        if mode is not None and mode.cqrelu == "chain":  # traced into Clip -> Mul -> Floor -> Div
            r = self.levels / self.clip
            return torch.floor(torch.clamp(x, 0.0, chain_clip_bound(self.levels, self.clip)) * r) / r
        return _CQReLUFn.apply(x, self.levels, self.clip)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, clip={self.clip}"


def replace_relu(model: nn.Module, levels: int = 8, clip: float = 1.0) -> nn.Module:
    """Swap every ``nn.ReLU`` inside ``model`` for a new ``CQReLU(levels, clip)``, in place.

    Returns ``model`` (or a CQReLU when ``model`` is itself an nn.ReLU). Only module attributes are
    replaced: a ``torch.relu`` call inside some forward is not a module and stays.
    """
    if isinstance(model, nn.ReLU):
        return CQReLU(levels, clip)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(parent, name, CQReLU(levels, clip))
    return model


# ---- one step of each neuron, with its surrogate gradient -----------------------------------------
class _LIFStep(torch.autograd.Function):
    """(u, x) -> (F, u'): neurons.lif_step, with the rectangular surrogate
    dF/dV = 1/(2 lens) for |V - U_th| < lens on the membrane V before reset. The reset factor
    (1 - F) is treated as a constant in the backward pass (the reference code detaches it)."""

    @staticmethod
    def forward(ctx: Any, u: torch.Tensor, x: torch.Tensor, beta: float, threshold: float, lens: float):
        f, u_next = neurons.lif_step(u, x, beta, threshold)
        ctx.save_for_backward(u, x, f)
        ctx.consts = (beta, threshold, lens)
        return f, u_next

    @staticmethod
    def backward(ctx: Any, grad_f: torch.Tensor, grad_u: torch.Tensor):
        u, x, f = ctx.saved_tensors
        beta, threshold, lens = ctx.consts
        v = beta * u + x  # membrane before reset: only the surrogate's window needs it
        window = ((v - threshold).abs() < lens).to(v.dtype) / (2 * lens)
        grad_v = grad_f * window + grad_u * (1.0 - f)
        return beta * grad_v, grad_v, None, None, None


class _IFStep(torch.autograd.Function):
    """(m, x) -> (s, m'): neurons.if_step, with the rectangular surrogate ds/dM = 1/(2 lens) for
    |M - θ| < lens on the membrane M = m + x before reset; the soft reset θ*s is a constant in backward."""

    @staticmethod
    def forward(ctx: Any, m: torch.Tensor, x: torch.Tensor, theta: float, lens: float):
        s, m_next = neurons.if_step(m, x, theta)
        ctx.save_for_backward(m, x)
        ctx.consts = (theta, lens)
        return s, m_next

    @staticmethod
    def backward(ctx: Any, grad_s: torch.Tensor, grad_m: torch.Tensor):
        m, x = ctx.saved_tensors
        theta, lens = ctx.consts
        window = ((m + x - theta).abs() < lens).to(m.dtype) / (2 * lens)
        grad_v = grad_s * window + grad_m
        return grad_v, grad_v, None, None


class _CIFStep(torch.autograd.Function):
    """(m, S, x) -> (s, m', S'): neurons.cif_step, with a straight-through surrogate: ds/dM = 1/θ where
    the spike is the unclipped floor(M/θ) (M = m + x), 0 where a bound clipped it. The count S and the
    soft reset carry no gradient."""

    @staticmethod
    def forward(ctx: Any, m: torch.Tensor, count: torch.Tensor, x: torch.Tensor, theta: float, t_wake_seen: int,
                gamma: int):
        s, m_next, count_next = neurons.cif_step(m, count, x, theta, t_wake_seen, gamma)
        ctx.save_for_backward(m, x, s)
        ctx.theta = theta
        ctx.mark_non_differentiable(count_next)
        return s, m_next, count_next

    @staticmethod
    def backward(ctx: Any, grad_s: torch.Tensor, grad_m: torch.Tensor, grad_count: torch.Tensor):
        m, x, s = ctx.saved_tensors
        unclipped = (torch.floor((m + x) / ctx.theta) == s).to(m.dtype)
        grad_v = grad_s * unclipped / ctx.theta + grad_m
        return grad_v, None, grad_v, None, None, None


# ---- export: one step as a custom node -------------------------------------------------------------
class _LIFNode(torch.autograd.Function):
    """Export only: one LIF step from zero state, written as neurocompile::LIF."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, beta: float, threshold: float) -> torch.Tensor:
        return neurons.lif_step(torch.zeros_like(x), x, beta, threshold)[0]

    @staticmethod
    def symbolic(g: Any, x: Any, beta: float, threshold: float) -> Any:
        return g.op(f"{DOMAIN}::LIF", x, beta_f=float(beta), threshold_f=float(threshold)).setType(x.type())


class _IFNode(torch.autograd.Function):
    """Export only: one IF step from zero state (value s * θ), written as neurocompile::IF."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, threshold: float) -> torch.Tensor:
        return neurons.if_step(torch.zeros_like(x), x, threshold)[0] * threshold

    @staticmethod
    def symbolic(g: Any, x: Any, threshold: float) -> Any:
        return g.op(f"{DOMAIN}::IF", x, threshold_f=float(threshold)).setType(x.type())


class _CIFNode(torch.autograd.Function):
    """Export only: one CIF step from zero state (value s * θ), written as neurocompile::CIF."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, threshold: float, levels: int, gamma: int) -> torch.Tensor:
        z = torch.zeros_like(x)
        return neurons.cif_step(z, z, x, threshold, 1, gamma)[0] * threshold

    @staticmethod
    def symbolic(g: Any, x: Any, threshold: float, levels: int, gamma: int) -> Any:
        return g.op(f"{DOMAIN}::CIF", x, threshold_f=float(threshold), levels_i=int(levels),
                    gamma_i=int(gamma)).setType(x.type())


# ---- modules -------------------------------------------------------------------------------------
class SpikingNeuron(nn.Module):
    """Base of LIF, IF, CIF: loops over the leading time axis; stateless between calls."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if step_mode():
            return self._export_step(x)
        if torch.onnx.is_in_onnx_export():  # a plain torch.onnx.export would unroll time into the graph
            raise RuntimeError("export spiking models with neurocompile.torch.export_onnx (one time step per graph)")
        if x.dim() < 2:
            raise ValueError(f"{type(self).__name__} expects (T, N, ...) input, got shape {tuple(x.shape)}")
        return self._run(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _export_step(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class LIF(SpikingNeuron):
    """IDSNN's LIF with hard reset: U(t) = β U(t-1) (1 - F(t-1)) + X(t), F(t) = [U(t) > U_th].

    Forward: ``neurons.lif_step`` per step, from U = 0 (so U(0) = X(0)); output F in {0, 1}.
    Backward: rectangular surrogate F'(U) = 1/(2 lens) for |U - U_th| < lens, reset detached.
    """

    def __init__(self, beta: float = 0.25, threshold: float = 0.5, lens: float = 0.5):
        super().__init__()
        self.beta, self.threshold, self.lens = _f32(beta), _f32(threshold), float(lens)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        u = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            f, u = _LIFStep.apply(u, x[t], self.beta, self.threshold, self.lens)
            out.append(f)
        return torch.stack(out)

    def _export_step(self, x: torch.Tensor) -> torch.Tensor:
        return _LIFNode.apply(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}, lens={self.lens}"


class IF(SpikingNeuron):
    """The IF baseline (soft reset, at most one spike per step): ``neurons.if_step`` per step from
    m = 0; output s * θ. Backward: rectangular surrogate of width 2 lens around θ (lens = θ/2 unless
    given), soft reset detached."""

    def __init__(self, threshold: float = 1.0, lens: float | None = None):
        super().__init__()
        self.threshold = _f32(threshold)
        self.lens = float(lens) if lens is not None else self.threshold / 2

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            s, m = _IFStep.apply(m, x[t], self.threshold, self.lens)
            out.append(s * self.threshold)
        return torch.stack(out)

    def _export_step(self, x: torch.Tensor) -> torch.Tensor:
        return _IFNode.apply(x, self.threshold)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, lens={self.lens}"


class CIF(SpikingNeuron):
    """CASC's consistent IF: ``neurons.cif_step`` per step from m = S = 0; output s * θ.

    The first ``levels`` steps are wake steps (T_wake = L): t_w = min(t + 1, L). Feeding zero input
    in the later (sleep) steps is the caller's part of wake/sleep conversion. Backward: see _CIFStep.
    """

    def __init__(self, threshold: float = 1.0, levels: int = 8, gamma: int = 1):
        super().__init__()
        if int(levels) < 1 or int(gamma) < 1:
            raise ValueError(f"CIF needs levels >= 1 and gamma >= 1, got levels={levels}, gamma={gamma}")
        self.threshold, self.levels, self.gamma = _f32(threshold), int(levels), int(gamma)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.zeros_like(x[0])
        count = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            s, m, count = _CIFStep.apply(m, count, x[t], self.threshold, min(t + 1, self.levels), self.gamma)
            out.append(s * self.threshold)
        return torch.stack(out)

    def _export_step(self, x: torch.Tensor) -> torch.Tensor:
        return _CIFNode.apply(x, self.threshold, self.levels, self.gamma)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, levels={self.levels}, gamma={self.gamma}"


class TimeDistributed(nn.Module):
    """Wraps a stateless layer (Conv, BatchNorm, Linear, pooling) to run on (T, N, ...) by folding time
    into the batch; BatchNorm statistics are therefore shared over time (tdBN). One step in export mode."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return per_step(self.module, x)


def has_spiking(model: nn.Module) -> bool:
    """Whether ``model`` contains a LIF, IF or CIF module."""
    return any(isinstance(m, SpikingNeuron) for m in model.modules())
