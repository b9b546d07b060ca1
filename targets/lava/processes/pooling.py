"""Max pooling of a spiking network by lateral inhibition per window (CASC), or of each step's values (a LIF
student's); no delay."""
from __future__ import annotations

import numpy as np

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var

from neurocompile.ir import neurons
from neurocompile.targets.lava.processes.common import (CPU, INT, LavaPyType, LoihiProtocol, PhasedModel, PyInPort,
                                                        PyOutPort, implements, requires, tag)


class InhibitionMaxPool(AbstractProcess):
    """``a_in`` (W, H, C) -> ``s_out`` (Wo, Ho, C). ``index`` (Wo, Ho, C, k) holds, per window, the
    flat input indices it covers (-1: padding). ``bias`` is added to the input in the wake window. ``inhibition``:
    lateral inhibition (ops.InhibitionMaxPool: each window accumulates and sends its largest accumulator); else the
    max of each window of the step's input (ops.StepMaxPool)."""

    def __init__(self, *, in_shape, out_shape, index: np.ndarray, bias: np.ndarray, t_wake: int, arrival: int,
                 offset: int = 0, steps: int, period: int, sleep: bool, inhibition: bool = True, name=None):
        super().__init__(t_wake=t_wake, arrival=arrival, offset=offset, steps=steps, period=period, sleep=sleep,
                         inhibition=inhibition, name=name)
        self.a_in = InPort(shape=in_shape)
        self.s_out = OutPort(shape=out_shape)
        self.index = Var(shape=index.shape, init=index)
        self.bias = Var(shape=in_shape, init=bias)
        self.acc = Var(shape=index.shape, init=0)


@implements(proc=InhibitionMaxPool, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyInhibitionMaxPoolFloat(PhasedModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    index: np.ndarray = LavaPyType(np.ndarray, int)
    bias: np.ndarray = LavaPyType(np.ndarray, float)
    acc: np.ndarray = LavaPyType(np.ndarray, float)
    PAD = -np.inf

    def run_spk(self) -> None:
        x = self.a_in.recv()
        k, phase = self.sample_and_step()
        if self.starts_sample(phase):
            self.acc[:] = 0.0
        if not self.active(k, phase):
            self.s_out.send(self.cast(np.zeros(self.acc.shape[:-1])))
            return
        if self.in_window(phase):
            x = x + self.bias
        flat = np.append(x.reshape(-1), self.PAD)  # index -1 reads PAD: padding never wins
        if self.proc_params["inhibition"]:
            out, self.acc[:] = neurons.inhibition_maxpool_step(self.acc, flat[self.index])
        else:
            out = flat[self.index].max(-1)
        self.s_out.send(self.cast(out))


@implements(proc=InhibitionMaxPool, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyInhibitionMaxPoolFixed(PyInhibitionMaxPoolFloat):
    DTYPE = np.int32
    PAD = -(2 ** 30)  # below any 24-bit value
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, **INT)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, **INT)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, **INT)
    acc: np.ndarray = LavaPyType(np.ndarray, np.int64)
