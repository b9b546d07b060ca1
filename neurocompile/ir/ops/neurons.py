"""Spiking and stateful neurons: LevelNeuron (CIF, IF: a CQReLU in time), LIF, CubaLIF and the leaky integrator LI."""
from __future__ import annotations

from typing import Sequence

import torch

from neurocompile.ir import neurons
from neurocompile.ir import Node
from neurocompile.ir.neurons import cqrelu
from neurocompile.ir.ops.base import Op, Role, Tensor
from neurocompile.ir.ops.registry import register
from neurocompile.ir.ops.rules import DECAY, LEVELS, POSITIVE, SHIFT, Int, Real


class LevelNeuron(Op):
    """A spiking neuron. Its ANN meaning is the CQReLU it stands for: levels L, clip = threshold;
    a spike carries ``amplitude`` (default: the threshold; 1 in fixed point, where spikes are counts)."""

    quantizer = spiking = stateful = sink = sleep_phase = True
    role = Role.NEURON
    optional = ("bias",)  # set by lowering: the constant current reaching the neuron (see Op.sink)
    attrs = {"threshold": 1.0, "levels": 8, "shift": 0.0, "amplitude": None}
    attr_rules = {"threshold": POSITIVE, "levels": LEVELS, "shift": SHIFT, "amplitude": Real(gt=0.0, null=True)}

    def init_state(self, node, x):
        theta = self.firing_threshold(node)
        m0 = torch.full_like(x, float(self.attr(node, "shift")) * theta)  # QCFS: membrane pre-charged to 0.5 θ
        return {"m": m0, "S": torch.zeros_like(x), "theta": theta, "amp": self.spike_amplitude(node)}

    def rate(self, node) -> int:
        """Spikes the count may gain per wake step: 1, or L / T_wake for a short wake phase (CIF's ``rate``)."""
        return 1

    def firing_threshold(self, node) -> float:
        """The membrane threshold of one spike: θ, or θ / rate in a short wake phase (a T_wake-step sum of the input
        then reaches the L-step sum's spike count)."""
        return float(self.attr(node, "threshold")) / self.rate(node)

    def spikes_per_step(self, node) -> int:
        """γ, the most spikes a neuron sends in one step: 1 (CIF's ``gamma``)."""
        return 1

    def count_cap(self, node, wake_seen: int) -> int:
        """The most a neuron's count may be after ``wake_seen`` wake steps (the clip at λ once the wake phase ends)."""
        return wake_seen * self.rate(node)

    def spike_amplitude(self, node):
        amp = self.attr(node, "amplitude")
        return self.firing_threshold(node) if amp is None else float(amp)

    def level_value(self, node) -> float:
        """A, the value of one level of the ANN activation (q = level * A / L): θ, or with spikes of ``amplitude`` a
        (fixed point: 1) a * rate, since a short wake phase sends the count in T_wake = L / rate steps."""
        amp = self.attr(node, "amplitude")
        return float(self.attr(node, "threshold")) if amp is None else float(amp) * self.rate(node)

    # count domain (targets/reference/certified.py): no leak and a subtractive reset make the count after step t a
    # function of floor(X_t), X_t = the cumulative input over the firing threshold plus the pre-charge ``shift``
    count_domain = True

    def count_step(self, node: Node, count: Tensor, floor_x: Tensor, wake_seen: int,
                   out: Tensor | None = None) -> Tensor:
        """The count after a step whose floor(X_t) is ``floor_x`` (the rule :meth:`step` follows, exactly), into
        ``out`` when given."""
        raise NotImplementedError

    def max_count(self, node: Node, t_wake: int, steps: int) -> int:
        """The largest count the neuron can reach in a run of ``steps`` steps (counts are never negative)."""
        raise NotImplementedError

    def forward(self, node, xs, p):
        theta, levels = float(self.attr(node, "threshold")), int(self.attr(node, "levels"))
        amp = self.attr(node, "amplitude")
        xs = [xs[0] + p["bias"]] if "bias" in p else xs
        if amp is None:
            return cqrelu(xs[0], levels, theta, float(self.attr(node, "shift")), divide=True)
        # spikes of another amplitude (fixed point: 1 per spike); q * (A / L) stays exact in integers
        r = xs[0] * levels / theta + float(self.attr(node, "shift"))
        return torch.clamp(torch.floor(r), 0, levels) * (self.level_value(node) / levels)


@register
class CIF(LevelNeuron):
    """Consistent IF (signed spikes, count clipped to wake steps); ``gamma`` bounds spikes per step. ``rate`` = L / T_wake
    (default 1: T_wake = L) shortens the wake phase: each spike is worth θ / rate of membrane and the count may gain
    ``rate`` per wake step, so the count after T_wake steps is the one of L steps and the readout is unchanged."""

    attrs = {**LevelNeuron.attrs, "gamma": 1, "rate": 1}
    attr_rules = {**LevelNeuron.attr_rules, "gamma": Int(1, "MAX_GAMMA"), "rate": Int(1, "MAX_LEVELS")}
    fuses_bias = True

    def rate(self, node) -> int:
        return int(self.attr(node, "rate"))

    def spikes_per_step(self, node) -> int:
        return int(self.attr(node, "gamma"))

    def step(self, node, state, x, wake_seen, bias=None):  # in place, the hot path (same numbers as cif_step)
        return neurons.cif_step_(state["m"], state["S"], x, state["theta"], self.count_cap(node, wake_seen),
                                 self.spikes_per_step(node), state, state["amp"], bias)

    def binary_spikes(self, node):
        return self.spikes_per_step(node) == 1

    def count_step(self, node, count, floor_x, wake_seen, out=None):
        return neurons.cif_count_step(count, floor_x, self.count_cap(node, wake_seen), self.spikes_per_step(node),
                                      out)

    def max_count(self, node, t_wake, steps):
        return self.count_cap(node, t_wake)


@register
class IF(LevelNeuron):
    """Soft-reset IF baseline: no clip, no negative spikes, no sleep phase. Lossy by design."""

    sleep_phase = False

    def step(self, node, state, x, wake_seen):
        s, state["m"] = neurons.if_step(state["m"], x, state["theta"])
        return s * state["amp"]

    def count_step(self, node, count, floor_x, wake_seen, out=None):
        return neurons.if_count_step(count, floor_x, out)

    def max_count(self, node, t_wake, steps):
        return steps


@register
class LIF(Op):
    """Leaky IF with hard reset (IDSNN students). Has no ANN meaning; only simulators run it. In fixed point
    (``dv`` set) it is Lava's bit-accurate LIF: integer threshold ``vth``, 12-bit voltage decay ``dv``."""

    spiking = stateful = sink = True
    role = Role.NEURON
    per_neuron = ("beta", "threshold")  # floating point only: a param of the same name gives one per neuron
    optional = ("bias", *per_neuron)
    attrs = {"beta": 0.25, "threshold": 0.5, "dv": None}
    # F = [U > threshold] is defined for every finite threshold (NIR's Threshold is one at 0); dv: v * (4096 - dv) >> 12
    attr_rules = {"beta": DECAY, "threshold": Real(), "dv": Int(0, 4096, null=True)}

    def forward(self, node, xs, p):
        return _shape_only("LIF", xs)

    def init_state(self, node, x):
        return {"u": torch.zeros_like(x), "p": self.neuron_values(node, x)}

    def membrane(self, node, state):
        return state["u"]

    def bit_accurate(self, node):
        return self.attr(node, "dv") is not None

    def step(self, node, state, x, wake_seen):
        dv = self.attr(node, "dv")
        if dv is not None:
            f, state["u"] = neurons.lif_step_fixed(state["u"], x, int(dv), int(self.attr(node, "threshold")))
        else:
            p = state["p"]
            f, state["u"] = neurons.lif_step(state["u"], x, p["beta"], p["threshold"])
        return f


def _shape_only(op_name: str, xs: Sequence[Tensor]) -> Tensor:
    """``forward`` of a neuron without an ANN meaning: on meta tensors (shape inference, :func:`infer_shape`) it is
    elementwise; on data it refuses."""
    if xs[0].is_meta:
        return torch.empty_like(xs[0])
    raise NotImplementedError(f"{op_name} has no ANN meaning: run it in a spiking simulator")


@register
class CubaLIF(Op):
    """Current-based LIF with hard reset to 0 (NIR's CubaLIF; snnTorch's Synaptic): a synaptic current I decays by
    ``alpha`` and takes the input, the membrane decays by ``beta`` and takes the new current, F = [U > threshold],
    then U <- 0 (``neurons.cuba_lif_step``). Floating point only; no ANN meaning."""

    spiking = stateful = sink = True
    role = Role.NEURON
    per_neuron = ("alpha", "beta", "threshold")  # a param of the same name gives one per neuron
    optional = ("bias", *per_neuron)  # bias: set by lowering, the constant current reaching the neuron (part of X)
    attrs = {"alpha": 0.5, "beta": 0.9, "threshold": 1.0}
    attr_rules = {"alpha": DECAY, "beta": DECAY, "threshold": Real()}  # F = [U > threshold], as LIF's

    def forward(self, node, xs, p):
        return _shape_only("CubaLIF", xs)

    def init_state(self, node, x):
        return {"i": torch.zeros_like(x), "u": torch.zeros_like(x), "p": self.neuron_values(node, x)}

    def membrane(self, node, state):
        return state["u"]

    def step(self, node, state, x, wake_seen):
        p = state["p"]
        f, state["i"], state["u"] = neurons.cuba_lif_step(state["i"], state["u"], x, p["alpha"], p["beta"],
                                                          p["threshold"])
        return f


@register
class LI(Op):
    """Leaky integrator that never spikes (NIR's LI; with a synaptic current decaying by ``alpha`` its CubaLI, with
    ``beta`` 1 its I): V = beta V + X, or I = alpha I + X, V = beta V + I (``neurons.li_step``). Each step it sends
    its membrane V: a network's non-spiking readout, whose graph output read out over T steps is the mean membrane.
    Stateful, a sink (a constant current reaching it is its ``bias``, on in its wake window), not spiking; floating
    point only; no ANN meaning."""

    stateful = sink = integrator = True
    role = Role.NEURON
    per_neuron = ("alpha", "beta")  # a param of the same name gives one per neuron (an alpha param: a CubaLI)
    optional = ("bias", *per_neuron)
    attrs = {"beta": 0.9, "alpha": None}  # alpha None: no synaptic current (LI, I); a number: CubaLI
    attr_rules = {"beta": DECAY, "alpha": Real(0.0, 1.0, null=True)}

    def forward(self, node, xs, p):
        return _shape_only("LI", xs)

    def has_current(self, node: Node) -> bool:
        return "alpha" in node.params or self.attr(node, "alpha") is not None

    def init_state(self, node, x):
        return {"v": torch.zeros_like(x), **({"i": torch.zeros_like(x)} if self.has_current(node) else {}),
                "p": self.neuron_values(node, x)}

    def membrane(self, node, state):
        return state["v"]

    def step(self, node, state, x, wake_seen):
        p = state["p"]
        i, state["v"] = neurons.li_step(state["v"], x, p["beta"], state.get("i"), p["alpha"])
        if i is not None:
            state["i"] = i
        return state["v"]

