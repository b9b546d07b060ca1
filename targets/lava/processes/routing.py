"""Processes that move currents without weights: a fixed delay line and the readout."""
from __future__ import annotations

import numpy as np

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from neurocompile.targets.lava.processes.common import (CPU, INT, LavaPyType, LoihiProtocol, PhasedModel, PyInPort,
                                                        PyOutPort, implements, requires, tag)


class DelayLine(AbstractProcess):
    """Sends what it received ``delay`` steps earlier (zeros at first): balances merge branches."""

    def __init__(self, *, shape, delay: int, name=None):
        super().__init__(shape=shape, delay=delay, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.buffer = Var(shape=(max(delay, 1),) + tuple(shape), init=0)


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyDelayLineFloat(PhasedModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    buffer: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        x = self.a_in.recv()
        i = (self.time_step - 1) % self.buffer.shape[0]
        out = self.buffer[i].copy()
        self.buffer[i] = x
        self.s_out.send(self.cast(out))


class Readout(AbstractProcess):
    """Receives the last layer's currents; ``history[k, t]`` = current of sample k at step t
    (the gated bias of the readout layer included). The target sums and divides by T_wake."""

    def __init__(self, *, shape, bias: np.ndarray, t_wake: int, arrival: int, steps: int, period: int, sleep: bool,
                 n_samples: int, name=None):
        super().__init__(shape=shape, t_wake=t_wake, arrival=arrival, steps=steps, period=period, sleep=sleep,
                         name=name)
        self.a_in = InPort(shape=shape)
        self.bias = Var(shape=shape, init=bias)
        self.history = Var(shape=(n_samples, steps) + tuple(shape), init=0)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutFloat(PhasedModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    history: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        x = self.a_in.recv()
        k, phase = self.sample_and_step()
        if phase < self.proc_params["steps"]:
            self.history[k, phase] = x + self.bias if self.in_window(phase) else x


class WakeInput(AbstractProcess):
    """Injects sample k's analog image as current on the wake steps of period k, zeros otherwise."""

    def __init__(self, *, data: np.ndarray, t_wake: int, steps: int, period: int, sleep: bool, name=None):
        super().__init__(t_wake=t_wake, steps=steps, period=period, sleep=sleep, arrival=0, name=name)
        self.data = Var(shape=data.shape, init=data)
        self.s_out = OutPort(shape=data.shape[1:])


@implements(proc=WakeInput, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyWakeInputFloat(PhasedModel):
    data: np.ndarray = LavaPyType(np.ndarray, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        k, phase = self.sample_and_step()
        on = k < self.data.shape[0] and self.in_window(phase)
        self.s_out.send(self.cast(self.data[k] if on else np.zeros(self.data.shape[1:])))


class GatedBias(AbstractProcess):
    """Sends ``bias`` in the wake window of each period, zeros otherwise: the constant current of a
    layer whose neuron process (lava's LIF) applies its own bias on every step."""

    def __init__(self, *, bias: np.ndarray, t_wake: int, arrival: int, steps: int, period: int, sleep: bool,
                 name=None):
        super().__init__(t_wake=t_wake, arrival=arrival, steps=steps, period=period, sleep=sleep, name=name)
        self.bias = Var(shape=bias.shape, init=bias)
        self.s_out = OutPort(shape=bias.shape)


@implements(proc=GatedBias, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGatedBiasFloat(PhasedModel):
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        _, phase = self.sample_and_step()
        on = phase < self.proc_params["steps"] and self.in_window(phase)
        self.s_out.send(self.bias if on else np.zeros(self.bias.shape))


class SpikeCounter(AbstractProcess):
    """Counts the binary spikes of a layer per sample: ``counts[k] = (spikes, 0)``."""

    def __init__(self, *, shape, steps: int, period: int, n_samples: int, name=None):
        super().__init__(steps=steps, period=period, name=name)
        self.s_in = InPort(shape=shape)
        self.counts = Var(shape=(n_samples, 2), init=0)


@implements(proc=SpikeCounter, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeCounterFloat(PhasedModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    counts: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        s = self.s_in.recv()
        k, phase = self.sample_and_step()
        if phase < self.proc_params["steps"]:
            self.counts[k, 0] += float(np.sum(s))



@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDelayLineFixed(PyDelayLineFloat):
    DTYPE = np.int32
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, **INT)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, **INT)
    buffer: np.ndarray = LavaPyType(np.ndarray, np.int32, **INT)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutFixed(PyReadoutFloat):
    DTYPE = np.int32
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, **INT)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, **INT)
    history: np.ndarray = LavaPyType(np.ndarray, np.int64)


@implements(proc=WakeInput, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyWakeInputFixed(PyWakeInputFloat):
    DTYPE = np.int32
    data: np.ndarray = LavaPyType(np.ndarray, np.int32, **INT)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, **INT)
