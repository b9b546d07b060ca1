"""Neuron processes: CIF (lossless CASC neuron) and IF (baseline), with gated bias; leaky integrators (LI); leaky
spiking neurons (LIF, CubaLIF) whose parameters differ from neuron to neuron.

The update rules come from neurocompile.ir.neurons (one definition of each neuron)."""
from __future__ import annotations

import numpy as np

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from neurocompile.ir import neurons
from neurocompile.targets.lava.processes.common import (CPU, INT, LavaPyType, LoihiProtocol, PhasedModel, PyInPort,
                                                        PyOutPort, implements, requires, tag)


class SpikingNeuron(AbstractProcess):
    """A layer of CIF neurons (``sleep_phase``) or IF neurons (without one). ``a_in`` takes currents, ``s_out`` sends signed graded spikes
    of value s * threshold. ``bias`` (array of ``shape``) is added in the wake window only. ``threshold`` is the firing
    threshold and ``rate`` the count's gain per wake step (ops ``firing_threshold``, ``rate``).
    ``counts[k, b] = (positive, negative)`` spikes of lane b's sample in period k, summed over the layer
    (with B lanes the channel axis, last in Lava's layout, holds B lane-major blocks)."""

    def __init__(self, *, shape, sleep_phase: bool, threshold: float, bias: np.ndarray, gamma: int = 1, shift: float = 0.0,
                 amplitude: float | None = None, rate: int = 1, t_wake: int, arrival: int, offset: int = 0, steps: int,
                 period: int, sleep: bool, n_samples: int, lanes: int = 1, name=None):
        super().__init__(shape=shape, sleep_phase=sleep_phase, threshold=threshold, gamma=gamma, shift=shift, t_wake=t_wake,
                         rate=rate,
                         amplitude=threshold if amplitude is None else amplitude,
                         arrival=arrival, offset=offset, steps=steps, period=period, sleep=sleep, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.bias = Var(shape=shape, init=bias)
        self.m = Var(shape=shape, init=shift * threshold)
        self.count = Var(shape=shape, init=0)
        self.counts = Var(shape=(n_samples, lanes, 2), init=0)  # per sample period and lane


@implements(proc=SpikingNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikingNeuronFloat(PhasedModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    m: np.ndarray = LavaPyType(np.ndarray, float)
    count: np.ndarray = LavaPyType(np.ndarray, float)
    counts: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        p = self.proc_params
        x = self.a_in.recv()
        k, phase = self.sample_and_step()
        if self.starts_sample(phase):  # a new sample starts from rest (QCFS pre-charge included)
            self.m[:] = p["shift"] * p["threshold"]
            self.count[:] = 0
        if not self.active(k, phase):  # before the first sample or in a flush: stay silent, drop what arrives
            self.s_out.send(self.cast(np.zeros(x.shape)))
            return
        if self.in_window(phase):
            x = x + self.bias
        theta = p["threshold"]
        if p["sleep_phase"]:  # CIF
            s = self._cif(x, theta, self.wake_steps_seen(phase) * p["rate"], p["gamma"])  # ops CIF.count_cap
        else:
            s, self.m[:] = neurons.if_step(self.m, x, theta)
        if k < self.counts.shape[0]:  # spike counts are kept for the first n_samples periods
            lanes = s.reshape(-1, self.counts.shape[1], s.shape[-1] // self.counts.shape[1])  # (..., lane, C)
            self.counts[k, :, 0] += np.clip(lanes, 0, None).sum(axis=(0, 2)).astype(self.counts.dtype)
            self.counts[k, :, 1] -= np.clip(lanes, None, 0).sum(axis=(0, 2)).astype(self.counts.dtype)
        self.s_out.send(self.cast(s * p["amplitude"]))

    def _cif(self, x: np.ndarray, theta: float, seen: int, gamma: int) -> np.ndarray:
        """One CIF step on the layer's state, in place: torch's ``neurons.cif_step_`` on views of ``m`` and ``count``
        (the same numbers as ``neurons.cif_step``, bit for bit, without its temporaries). Returns spike counts."""
        import torch

        if torch.get_num_threads() != 1:  # a forked Lava process: torch's inherited OpenMP pool would deadlock
            torch.set_num_threads(1)
        views = self.__dict__.get("_views")
        if views is None or views[0].data_ptr() != self.m.ctypes.data or views[1].data_ptr() != self.count.ctypes.data:
            views = self._views = (torch.from_numpy(self.m), torch.from_numpy(self.count), {})
        m, count, scratch = views
        return neurons.cif_step_(m, count, torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64)), theta, seen,
                                 gamma, scratch, amplitude=1.0).numpy()


@implements(proc=SpikingNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikingNeuronFixed(PySpikingNeuronFloat):
    """Integer state and graded integer spikes: the fixed-point graph's firing thresholds θ / rate are integers (a short
    wake phase stores rate times an integer threshold), so every floor(m / θ) and m - θ s is exact."""

    DTYPE = np.int32
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, **INT)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, **INT)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, **INT)
    m: np.ndarray = LavaPyType(np.ndarray, np.int32, **INT)
    count: np.ndarray = LavaPyType(np.ndarray, np.int32, **INT)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def _cif(self, x: np.ndarray, theta: float, seen: int, gamma: int) -> np.ndarray:
        s, self.m[:], self.count[:] = neurons.cif_step(self.m, self.count, x, theta, seen, gamma)  # integers
        return s


class LeakyIntegrator(AbstractProcess):
    """A layer of leaky integrators (the IR's LI: NIR's LI, CubaLI and I), which never spike. ``a_in`` takes currents;
    each step the layer updates V = beta V + X (with a synaptic current, ``alpha`` not None: I = alpha I + X,
    V = beta V + I) and sends V on ``s_out``. ``beta`` and ``alpha`` are one value per neuron (arrays of ``shape``,
    Lava layout); ``bias`` is added in the wake window only; a new sample starts at rest."""

    def __init__(self, *, shape, beta: np.ndarray, alpha: np.ndarray | None, bias: np.ndarray, t_wake: int, arrival: int,
                 offset: int = 0, steps: int, period: int, sleep: bool, name=None):
        super().__init__(shape=shape, beta=beta, alpha=alpha, t_wake=t_wake, arrival=arrival, offset=offset,
                         steps=steps, period=period, sleep=sleep, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.bias = Var(shape=shape, init=bias)
        self.i = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)


class _LeakyModel(PhasedModel):
    """The step the leaky layers share: a new sample starts from rest (current ``i`` and membrane ``v`` 0), nothing is
    sent outside a sample's steps (what arrives then is dropped), the bias is added in the wake window; ``update``
    steps the layer on its input current and returns what it sends."""

    def run_spk(self) -> None:
        x = self.a_in.recv()
        k, phase = self.sample_and_step()
        if self.starts_sample(phase):
            self.i[:] = 0.0
            self.v[:] = 0.0
        if not self.active(k, phase):
            self.s_out.send(np.zeros(x.shape))
            return
        if self.in_window(phase):
            x = x + self.bias
        self.s_out.send(self.update(x))

    def update(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


@implements(proc=LeakyIntegrator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyLeakyIntegratorFloat(_LeakyModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    i: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)

    def update(self, x: np.ndarray) -> np.ndarray:
        p = self.proc_params
        current = p["alpha"] is not None
        i, v = neurons.li_step(self.v, x, p["beta"], self.i if current else None, p["alpha"])
        if current:
            self.i[:] = i
        self.v[:] = v
        return v


class LeakyNeuron(AbstractProcess):
    """A layer of leaky spiking neurons with hard reset whose decays or thresholds differ from neuron to neuron (the
    IR's LIF and CubaLIF with per-neuron parameters; Lava's own LIF holds one du, dv and vth per process). ``a_in``
    takes currents; each step the layer runs ``neurons.lif_step`` (``alpha`` None: U = beta U + X) or
    ``neurons.cuba_lif_step`` (I = alpha I + X, U = beta U + I), spikes where U > threshold and resets U to 0, and
    sends the spikes (0 or 1) on ``s_out``. ``beta``, ``alpha`` and ``threshold`` are arrays of ``shape`` (Lava
    layout); ``bias`` is added in the wake window only; a new sample starts at rest. Floating point only."""

    def __init__(self, *, shape, beta: np.ndarray, threshold: np.ndarray, alpha: np.ndarray | None, bias: np.ndarray,
                 t_wake: int, arrival: int, offset: int = 0, steps: int, period: int, sleep: bool, name=None):
        super().__init__(shape=shape, current=alpha is not None, t_wake=t_wake, arrival=arrival, offset=offset,
                         steps=steps, period=period, sleep=sleep, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.beta = Var(shape=shape, init=np.broadcast_to(beta, shape).copy())
        self.alpha = Var(shape=shape, init=np.zeros(shape) if alpha is None else np.broadcast_to(alpha, shape).copy())
        self.threshold = Var(shape=shape, init=np.broadcast_to(threshold, shape).copy())
        self.bias = Var(shape=shape, init=bias)
        self.i = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)  # the membrane U of neurons.lif_step / cuba_lif_step


@implements(proc=LeakyNeuron, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyLeakyNeuronFloat(_LeakyModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    beta: np.ndarray = LavaPyType(np.ndarray, float)
    alpha: np.ndarray = LavaPyType(np.ndarray, float)
    threshold: np.ndarray = LavaPyType(np.ndarray, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    i: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)

    def update(self, x: np.ndarray) -> np.ndarray:
        if self.proc_params["current"]:
            f, i, v = neurons.cuba_lif_step(self.i, self.v, x, self.alpha, self.beta, self.threshold)
            self.i[:] = i
        else:
            f, v = neurons.lif_step(self.v, x, self.beta, self.threshold)
        self.v[:] = v
        return f
