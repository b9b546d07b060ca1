"""The continuous-to-discrete maths of NIR's neurons, both ways: the importer steps an ODE by ``dt`` and a
discretization, the exporter writes a decay back as the time constant that gives it.

Discretizations (``discretization=``), for LIF with per-step input I[t]:

- ``"snntorch"`` (default): forward Euler, v[t] = beta v[t-1] + g I[t] with beta = 1 - dt/tau and g = r dt/tau,
  beta as the float32 value snnTorch held. This is snnTorch's convention: its exporter writes tau = dt/(1 - beta)
  and r = tau/dt from the float32 beta of its Leaky (dt = 1e-4), so g = 1, and :func:`snntorch_beta` inverts
  that export (exactly, in tests of 20,000 random betas each, for every scalar beta and every tensor beta >= 0.5).
- ``"euler"``: forward Euler as above, beta kept in float64 (the rule ../shared/science.md gives for Norse, with
  its dt = 1e-3; not checked against Norse itself, which is not installed).
- ``"zoh"``: exact integration with the input held over the step: beta = exp(-dt/tau), g = r (1 - beta).

IF integrates without a leak (beta = 1) with g = r dt in every discretization (the three agree for a constant
input over the step); snnTorch's importer makes it a Leaky with beta 0.9, which is not an IF. A gain within
:data:`GAIN_TOLERANCE` of 1 is taken as exactly 1 (float rounding of the stored tau and r); any other uniform
gain becomes a Mul by it (kept in float64) before the neuron.

Current-based neurons (CubaLIF: tau_syn dI/dt = -I + w_in S, tau_mem dv/dt = (v_leak - v) + r I, spike and reset as
LIF; CubaLI: the same without spikes) step each compartment by the same rule, the membrane taking the step's new
current (as snnTorch's Synaptic and Lava's CUBA LIF do):

    I[t] = alpha I[t-1] + g_syn S[t];   v[t] = beta v[t-1] + g_mem I[t];   (CubaLIF) spike if v > v_threshold, v <- 0

``"snntorch"``: alpha = 1 - dt/tau_syn and beta = 1 - dt/tau_mem as snnTorch's float32 values, g_syn = w_in dt/tau_syn,
g_mem = r dt/tau_mem (snnTorch's Synaptic export writes w_in = tau_syn/dt and r = tau_mem/dt: both gains 1);
``"euler"``: the same in float64; ``"zoh"``: alpha = exp(-dt/tau_syn), g_syn = w_in (1 - alpha), beta = exp(-dt/tau_mem),
g_mem = r (1 - beta), each compartment integrated exactly with its input held over the step (the current's and the
membrane's steps in sequence: exponential Euler, which is not the exact solution of the coupled pair). Since g_mem
scales a linear current, the IR's CubaLIF holds alpha and beta and the product g_syn g_mem is its input gain (one Mul
before it); its membrane is the file's v exactly. snnTorch's own importer reads a CubaLIF as ``Synaptic(...,
reset_delay=False)``, this neuron; snnTorch's default ``Synaptic(reset_mechanism="zero")`` (``reset_delay=True``) is
another one, which a file cannot tell apart: after a spike its membrane stays 0 for one step ((beta v + I) (1 -
F[t-1])), so export such nets with ``reset_delay=False``. LI (tau dv/dt = (v_leak - v) + r I) steps like LIF without
spikes; I (dv/dt = r I) with beta 1 and g = r dt, like IF.

Backwards (the exporter, snnTorch's convention): :func:`export_tau` tau = dt / (1 - decay), :func:`export_r`
r = gain tau / dt, so the input gain r dt / tau is the gain.
"""
from __future__ import annotations

import math
from typing import Any, Union

import numpy as np

DISCRETIZATIONS = ("snntorch", "euler", "zoh")
DEFAULT_DT = 1e-4  # snnTorch's export and import
GAIN_TOLERANCE = 1e-6  # |g - 1| below this is float rounding of the stored tau and r: g = 1
Value = Union[float, np.ndarray]  # a neuron parameter: one value for the layer, or one per neuron (the layer's shape)
_EXP = np.vectorize(math.exp, otypes=[float])  # libm's exp, element by element (numpy's may differ in the last bit)

RULES = {
    "snntorch": "forward Euler: v = beta·v + (r·dt/tau)·I, beta = 1 - dt/tau rounded to float32 (snnTorch's Leaky)",
    "euler": "forward Euler: v = beta·v + (r·dt/tau)·I, beta = 1 - dt/tau",
    "zoh": "exact for input held over the step: v = beta·v + r·(1 - beta)·I, beta = exp(-dt/tau)",
}


def one(a: Any) -> Any:
    """``a`` as one float where all its elements are equal (or it is a scalar), else as a float64 array."""
    a = np.asarray(a, np.float64)
    return float(a.reshape(-1)[0]) if a.size and (a.ndim == 0 or np.all(a == a.reshape(-1)[0])) else a


def input_gain(r: Any, c: Any, tau: Any) -> Any:
    """The input gain r c of a compartment (c: dt/tau or 1 - exp(-dt/tau)); where tau and r are both infinite, as
    snnTorch exports a decay of exactly 1 (tau = dt / 0, r = tau / dt), it is 1, what snnTorch's r = tau / dt means."""
    r, c, tau = (np.asarray(v, np.float64) for v in (r, c, tau))
    with np.errstate(invalid="ignore"):
        g = r * c
    return one(np.where(np.isinf(tau) & np.isinf(r), 1.0, g))


def snntorch_beta(tau: float, dt: float) -> tuple[float, bool]:
    """The float32 beta of an snnTorch ``Leaky`` whose export wrote ``tau``: snnTorch computes tau = dt / (1 - beta)
    from its float32 beta, in float64 for a scalar beta and in float32 for a tensor one. Among the float32 values
    within 3 ulps of 1 - dt/tau, the one whose export (either way) gives ``tau`` exactly, the nearest if several
    do; (beta, True). If none does (a file snnTorch did not write): 1 - dt/tau rounded to float32, (beta, False).
    Rounding alone misses about 0.4 % of the betas in [0.5, 1) that snnTorch writes as float32 tau; below 0.5
    several float32 betas give the same float32 tau and the nearest is taken (snnTorch's export lost the rest)."""
    approx = 1.0 - dt / tau
    b0 = np.float32(approx)
    cands, lo, hi = [b0], b0, b0
    for _ in range(3):
        lo, hi = np.nextafter(lo, np.float32(-1)), np.nextafter(hi, np.float32(2))
        cands += [lo, hi]
    hits = []
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        for b in cands:
            if not 0 <= b <= 1:
                continue
            t32 = np.float32(dt) / (np.float32(1) - b)
            t64 = dt / (1.0 - np.float64(b))
            if float(t32) == tau or float(t64) == tau:
                hits.append(b)
    if not hits:
        return float(b0), False
    return float(min(hits, key=lambda b: abs(float(b) - approx))), True


def snntorch_betas(tau: Any, dt: float) -> tuple[Any, bool]:
    """:func:`snntorch_beta` of one tau or of per-neuron taus (each distinct value once): (beta or betas, whether every
    one inverts snnTorch's export)."""
    t = np.asarray(tau, np.float64)
    if t.ndim == 0:
        return snntorch_beta(float(t), dt)
    distinct, where = np.unique(t, return_inverse=True)
    found = [snntorch_beta(float(v), dt) for v in distinct]
    return one(np.array([b for b, _ in found])[where].reshape(t.shape)), all(e for _, e in found)


def euler(tau: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Forward Euler's (d, c) of ``tau dx/dt = -x + w u``: x[t] = d x[t-1] + w c u[t], d = 1 - dt/tau, c = dt/tau
    (float64; d < 0 where dt > tau, which the caller refuses)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 - dt / tau, dt / tau


def zoh(tau: np.ndarray, dt: float) -> tuple[Value, Value]:
    """Exact integration with the input held over the step: d = exp(-dt/tau), c = 1 - d (c = dt/tau where tau is
    infinite: no leak)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        d = _EXP(-dt / tau)
        return one(d), one(np.where(np.isfinite(tau), 1.0 - d, dt / tau))


def export_tau(d: Any, dt: float) -> Any:
    """The time constant snnTorch's export writes for a decay d: tau = dt / (1 - d) (per neuron for an array)."""
    return dt / (1.0 - d)


def export_r(tau: Any, dt: float, gain: Any = 1.0) -> Any:
    """The r snnTorch's export writes beside ``tau`` (r = tau / dt: an input gain r dt / tau of 1) times ``gain``."""
    return np.multiply(gain, tau / dt)
