"""The op base class and what every op family shares: :class:`Role`, :class:`Op` (its traits and methods),
:class:`WeightMap` / :class:`NoWeightMap` and the tensor helpers (``pair``, ``pad2d``, ``channel``, ``tensors``)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from neurocompile.ir import Node, Shape
from neurocompile.ir.ops.rules import Rule

Tensor = torch.Tensor


class Role(str, Enum):
    """What a node becomes in a spiking network; a str, so saved text reads the same. ``AFFINE``: a linear map and a
    constant term, kept; ``ACTIVATION``: replaced by a neuron; ``NEURON``: stateful in time (its ANN meaning is the
    activation it stands for); ``MAXPOOL``: becomes lateral inhibition; ``IDENTITY``: removed by canonicalize;
    ``INPUT``; ``READOUT``."""

    INPUT = "input"
    AFFINE = "affine"
    ACTIVATION = "activation"
    NEURON = "neuron"
    MAXPOOL = "maxpool"
    IDENTITY = "identity"
    READOUT = "readout"

    def __str__(self) -> str:
        return self.value


class Op:
    """Base class. ``params`` are required, ``optional`` may be present; ``attrs`` are defaults and ``attr_rules``
    their valid values (a :class:`Rule` for every attribute the op reads, :func:`check_attrs`).

    Traits that passes and targets query (instead of lists of op names of their own):
    ``synaptic``: carries a weight map, so a target makes it a connection process that delays its output
    by the synapse delay; ``merge``: joins several data inputs, whose branches must arrive together;
    ``homogeneous``: f(a·x) = a·f(x) for a > 0 with nothing to rescale, so a tensor's unit passes through;
    ``exact_in_integers``: only moves or selects values, so integer inputs stay integers (nothing to
    quantize); ``rescalable``: the (weight, bias) parameters a change of unit rescales, or None;
    ``quantizer``: the ANN meaning is a CQReLU (attributes give L and λ); ``calibratable``: a plain
    activation that data-based λ turns into a CQReLU (lossy); ``spiking``: a neuron that emits spikes
    (role "neuron" also covers the lateral-inhibition pool, which is stateful but sends values);
    ``stateful``: simulators keep state for it between steps (``init_state`` / ``step``); ``sink``: the
    currents stop there, so a lowered graph stores the constant current reaching it as its ``bias``
    (neurons, the inhibition pool, the readout); ``sleep_phase``: a neuron whose schedule has a sleep
    phase after the wake steps (CIF; the IF baseline has none); ``rounding``: the offset a rounding op
    adds inside its floor (Floor 0, Round 0.5), None for other ops; ``additive``: adds data tensors and
    constants (Add, Sub), so a constant term is in the unit of the data it is added to; ``count_domain``: a stateful
    op whose cumulative output is a function of its cumulative input: a neuron without leak and with a subtractive
    reset, whose count after a step depends on floor(X_t), X_t its cumulative input over its threshold
    (``count_step``, ``max_count``), or the inhibition pool (``forward`` of the cumulative input); the exact mode's
    count-domain executor (targets/reference/certified.py) runs networks of these; ``rests_when_silent``: a stateful
    op that on a step of zero input (and no bias) sends zeros and keeps its state, so simulators may skip that step
    (the inhibition pool); ``fuses_bias``: a stateful op whose ``step`` takes its sink's constant current as
    ``bias`` (one sample's layout) and adds it to the input itself, with the same roundings (CIF: in its compiled
    loop); ``per_neuron``: the neuron
    attributes (LIF, CubaLIF, LI: decays, threshold) a param of the same name may give per neuron instead, an array
    that broadcasts to the layer's shape (``varying``, ``neuron_values``; floating point only); ``integrator``: a
    stateful op that never spikes and sends its membrane every step (LI), so an output it writes reads out as the mean
    membrane.
    """

    role = Role.AFFINE
    params: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    attrs: dict[str, Any] = {}
    attr_rules: dict[str, Rule] = {}
    synaptic = False
    merge = False
    homogeneous = False
    exact_in_integers = False
    rescalable: tuple[str, str] | None = None
    quantizer = False
    calibratable = False
    spiking = False
    stateful = False
    sink = False
    sleep_phase = False
    rounding: float | None = None
    additive = False
    count_domain = False
    rests_when_silent = False
    fuses_bias = False
    integrator = False

    def attr(self, node: Node, key: str) -> Any:
        if key in node.params and key in self.per_neuron:  # the class default would stand in for per-neuron values
            raise ValueError(f"{node.name}: {key} is given per neuron (node.params); read it with neuron_values")
        return node.attrs.get(key, self.attrs.get(key))

    def forward(self, node: Node, xs: Sequence[Tensor], p: dict[str, Tensor]) -> Tensor:
        """ANN meaning on a batch."""
        raise NotImplementedError

    # affine ops: forward(x) == linear(x) + bias
    def linear(self, node: Node, xs: Sequence[Tensor], p: dict[str, Tensor]) -> Tensor:
        return self.forward(node, xs, p)

    def bias(self, node: Node, p: dict[str, Tensor], shape: Shape) -> Tensor | None:
        """Constant term broadcastable to ``(N, *shape)``, or None."""
        return None

    def drop_constant(self, node: Node, shape: Shape) -> None:
        """Rewrite ``node`` in place to its linear part (``linear``): lowering moves constant terms to sinks."""

    def input_gains(self, node: Node) -> list[float]:
        """The integer factor each data input is multiplied by before the op (Add's ``gains``; else 1)."""
        return [1] * len(node.inputs)

    def output_delay(self, node: Node) -> int:
        """Steps the network itself delays the op's output (StepDelay's ``steps``; 0 for others): part of what it
        computes, unlike a target's synaptic delay, which the schedule balances away."""
        return 0

    def weight_map(self, node: Node, in_shape: Shape) -> "WeightMap":
        """The node's linear map as one connection with fixed weights (what Lava runs); synaptic ops only."""
        raise NoWeightMap("this op has no fixed-weight form")

    # pattern matching (recognize_cqrelu): an elementwise map by a scalar constant
    def bounds(self, node: Node) -> tuple[float, float] | None:
        """(lo, hi) if the op is a clamp to [lo, hi], else None."""
        return None

    def scalar_scale(self, node: Node) -> float | None:
        """k if the op is x * k for a scalar constant k, else None."""
        return None

    def scalar_offset(self, node: Node) -> float | None:
        """c if the op is x + c for a scalar constant c, else None."""
        return None

    def no_spiking_form(self, node: Node) -> tuple[str, str] | None:
        """(why, hint) if a spiking network cannot compute this node, else None: conversion refuses it."""
        return None

    # spiking neurons (``spiking``): the neuron spec simulators run, built on neurons.py
    def init_state(self, node: Node, x: Tensor) -> dict[str, Any]:
        """State at rest for input currents shaped like ``x``."""
        raise NotImplementedError

    def step(self, node: Node, state: dict[str, Any], x: Tensor, wake_seen: int) -> Tensor:
        """One time step with input current ``x`` (``wake_seen``: wake steps counted so far, t_w);
        updates ``state`` and returns the values sent (spikes times :meth:`spike_amplitude`)."""
        raise NotImplementedError

    def spike_amplitude(self, node: Node) -> float:
        """The value one spike sends: spike counts are sent values divided by it."""
        return 1.0

    def membrane(self, node: Node, state: dict[str, Any]) -> Tensor:
        """The membrane potential in ``state`` (for per-layer records)."""
        return state["m"]

    def binary_spikes(self, node: Node) -> bool:
        """At most one spike (of either sign) per neuron and step."""
        return True

    def bit_accurate(self, node: Node) -> bool:
        """Computes in integers as Lava's fixed_pt models do (a fixed-point LIF: ``dv`` set), so Lava's floating_pt
        models would compute something else."""
        return False

    # neuron parameters given per neuron (``per_neuron``: the attributes a param of the same name may replace)
    per_neuron: tuple[str, ...] = ()

    def varying(self, node: Node) -> list[str]:
        """The :attr:`per_neuron` parameters this node gives per neuron (params broadcastable to its output shape)
        instead of one attribute value for the layer."""
        return [k for k in self.per_neuron if k in node.params]

    def neuron_values(self, node: Node, like: Tensor) -> dict[str, Any]:
        """Each :attr:`per_neuron` parameter as the simulators use it: the attribute (a float, None where unset), or
        the per-neuron param as a tensor of ``like``'s dtype and device (broadcasting over the batch)."""
        out = {}
        for k in self.per_neuron:
            v = node.params.get(k)
            if v is not None:
                out[k] = torch.as_tensor(np.asarray(v), dtype=like.dtype, device=like.device)
            else:
                a = self.attr(node, k)
                out[k] = None if a is None else float(a)
        return out


class NoWeightMap(ValueError):
    """A linear map with no fixed-weight connection form; ``hint`` says how to export one that has."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


@dataclass
class WeightMap:
    """A linear map as one fixed-weight connection, in the IR layout: ``conv`` weights (C_out, C_in / groups,
    kh, kw) with stride, pads [top, left, bottom, right], dilation and groups; ``dense`` weights (out, in)."""

    kind: str
    weight: np.ndarray
    stride: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


def pair(v: Any) -> tuple[int, int]:
    """An ONNX 2-D attribute (one int or two) as a pair."""
    return (int(v), int(v)) if isinstance(v, (int, float)) else (int(v[0]), int(v[1]))


def pad2d(x: Tensor, pads: Sequence[int], value: float = 0.0) -> tuple[Tensor, tuple[int, int]]:
    """ONNX pads [top, left, bottom, right]: symmetric ones go to the op, others are applied here."""
    t, l, b, r = (int(v) for v in pads)
    if t == b and l == r:
        return x, (t, l)
    return F.pad(x, (l, r, t, b), value=value), (0, 0)


def channel(v: Tensor, ndim: int) -> Tensor:
    """Reshape a per-channel vector to broadcast over (N, C, ...)."""
    return v.reshape((1, -1) + (1,) * (ndim - 2))



def scalar_const(node: Node) -> float | None:
    """The node's ``const`` parameter as a number when it holds one value, else None."""
    c = node.params.get("const")
    return float(np.asarray(c).reshape(())) if c is not None and np.size(c) == 1 else None



def tensors(node: Node, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The node's parameters as torch tensors."""
    return {k: torch.tensor(v, dtype=dtype, device=device) for k, v in node.params.items()}
