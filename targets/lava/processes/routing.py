"""Processes that move currents without weights: the input gate, delay lines, gated biases, spike counters and
the readout."""
from __future__ import annotations

import numpy as np

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from neurocompile.targets.lava.processes.common import (CPU, INT, LavaPyType, LoihiProtocol, PhasedModel, PyInPort,
                                                        PyOutPort, implements, requires, tag)


class DelayLine(AbstractProcess):
    """Sends what it received ``delay`` steps earlier (zeros at first), times an integer ``gain``: balances merge
    branches and brings an identity shortcut to the unit of the branch it meets (fixed point). Delay 0 sends
    in the same step. With a ``period`` (a delay of the network itself, NIR's Delay, in a staggered stream) it
    empties at the start of each sample (step ``offset`` of its period): what it still holds then lies past the
    previous sample's last step and is no input of the next."""

    def __init__(self, *, shape, delay: int, gain: int = 1, period: int | None = None, offset: int = 0, name=None):
        super().__init__(shape=shape, delay=delay, gain=gain, period=period, offset=offset, name=name)
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
        gain = self.proc_params.get("gain", 1)
        if gain != 1:
            x = x * gain
        if self.proc_params["delay"] == 0:
            self.s_out.send(self.cast(x))
            return
        if self.proc_params.get("period") is not None and self.starts_sample(self.sample_and_step()[1]):
            self.buffer[:] = 0
        i = (self.time_step - 1) % self.buffer.shape[0]
        out = self.buffer[i].copy()
        self.buffer[i] = x
        self.s_out.send(self.cast(out))


@implements(proc=DelayLine, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyDelayLineFixed(PyDelayLineFloat):
    DTYPE = np.int32
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, **INT)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, **INT)
    buffer: np.ndarray = LavaPyType(np.ndarray, np.int32, **INT)


class HoldSource(AbstractProcess):
    """Sends ``data[k]`` on every step of period k (zeros after the last): a RingBuffer with one column per
    sample period instead of one per step (``Network.period_data`` gives it). ``per_step``: ``data[k, t]`` on step t
    of period k (a per-step input of T_x steps; zeros after them)."""

    def __init__(self, *, data: np.ndarray, period: int, per_step: bool = False, name=None):
        super().__init__(period=period, steps=period, per_step=per_step, name=name)
        self.data = Var(shape=data.shape, init=data)
        self.s_out = OutPort(shape=data.shape[2:] if per_step else data.shape[1:])


@implements(proc=HoldSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyHoldSourceFloat(PhasedModel):
    data: np.ndarray = LavaPyType(np.ndarray, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        k, t = self.sample_and_step()
        if self.proc_params.get("per_step", False):
            held = k < self.data.shape[0] and t < self.data.shape[1]
            self.s_out.send(self.cast(self.data[k, t] if held else np.zeros(self.data.shape[2:])))
            return
        self.s_out.send(self.cast(self.data[k] if k < self.data.shape[0] else np.zeros(self.data.shape[1:])))


@implements(proc=HoldSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyHoldSourceFixed(PyHoldSourceFloat):
    DTYPE = np.int32
    data: np.ndarray = LavaPyType(np.ndarray, np.int32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)


class InputGate(AbstractProcess):
    """Passes the input current it receives on ``a_in`` on the wake steps of each sample (every step of a
    schedule without a sleep phase) and zeros otherwise, so a source may hold each sample for its period."""

    def __init__(self, *, shape, t_wake: int, steps: int, period: int, sleep: bool, name=None):
        super().__init__(t_wake=t_wake, steps=steps, period=period, sleep=sleep, arrival=0, offset=0, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)


@implements(proc=InputGate, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyInputGateFloat(PhasedModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        x = self.a_in.recv()
        k, phase = self.sample_and_step()
        on = self.active(k, phase) and self.in_window(phase)
        self.s_out.send(self.cast(x if on else np.zeros(x.shape)))


@implements(proc=InputGate, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyInputGateFixed(PyInputGateFloat):
    DTYPE = np.int32
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, **INT)


class Readout(AbstractProcess):
    """Sums the currents reaching a graph output over each sample's steps (its gated bias included) and
    sends the running sum every step on ``s_out``: at a sample's last step it is the sample's readout times
    T_wake (times the fixed-point readout scale)."""

    def __init__(self, *, shape, bias: np.ndarray, t_wake: int, arrival: int, offset: int = 0, steps: int,
                 period: int, sleep: bool, name=None):
        super().__init__(shape=shape, t_wake=t_wake, arrival=arrival, offset=offset, steps=steps, period=period,
                         sleep=sleep, name=name)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.bias = Var(shape=shape, init=bias)
        self.total = Var(shape=shape, init=0)


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyReadoutFloat(PhasedModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    total: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        x = self.a_in.recv()
        k, phase = self.sample_and_step()
        if k >= 0 and self.starts_sample(phase):
            self.total[:] = 0
        if self.active(k, phase):
            self.total[:] = self.total + (x + self.bias if self.in_window(phase) else x)
        self.s_out.send(self.cast(self.total))


@implements(proc=Readout, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyReadoutFixed(PyReadoutFloat):
    """Integer sums: below 2**31 for the steps the Network allows (values < 2**23 per step)."""

    DTYPE = np.int32
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, **INT)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, **INT)
    total: np.ndarray = LavaPyType(np.ndarray, np.int64)


class GatedBias(AbstractProcess):
    """Sends ``bias`` in the wake window of each sample, zeros otherwise: the constant current of a
    layer whose neuron process (lava's LIF) applies its own bias on every step."""

    def __init__(self, *, bias: np.ndarray, t_wake: int, arrival: int, offset: int = 0, steps: int, period: int,
                 sleep: bool, name=None):
        super().__init__(t_wake=t_wake, arrival=arrival, offset=offset, steps=steps, period=period, sleep=sleep,
                         name=name)
        self.bias = Var(shape=bias.shape, init=bias)
        self.s_out = OutPort(shape=bias.shape)


@implements(proc=GatedBias, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGatedBiasFloat(PhasedModel):
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)

    def run_spk(self) -> None:
        k, phase = self.sample_and_step()
        on = self.active(k, phase) and self.in_window(phase)
        self.s_out.send(self.cast(self.bias if on else np.zeros(self.bias.shape)))


@implements(proc=GatedBias, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGatedBiasFixed(PyGatedBiasFloat):
    DTYPE = np.int32
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, **INT)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, **INT)


class SpikeCounter(AbstractProcess):
    """Counts the binary spikes of a layer per sample: ``counts[k, lane] = (spikes, 0)``."""

    def __init__(self, *, shape, offset: int = 0, steps: int, period: int, n_samples: int, lanes: int = 1,
                 name=None):
        super().__init__(offset=offset, steps=steps, period=period, name=name)
        self.s_in = InPort(shape=shape)
        self.counts = Var(shape=(n_samples, lanes, 2), init=0)


@implements(proc=SpikeCounter, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySpikeCounterFloat(PhasedModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    counts: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        s = self.s_in.recv()
        k, phase = self.sample_and_step()
        if self.active(k, phase) and k < self.counts.shape[0]:
            lanes = s.reshape(-1, self.counts.shape[1], s.shape[-1] // self.counts.shape[1])
            self.counts[k, :, 0] += lanes.sum(axis=(0, 2)).astype(self.counts.dtype)


@implements(proc=SpikeCounter, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PySpikeCounterFixed(PySpikeCounterFloat):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, **INT)
    counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
