"""ProcessModels for lava's own ``Conv`` and ``Dense`` processes that the Lava target maps to (the run config's
``exception_proc_model_map``). Both apply the layer's ``weight_exp`` in floating point too (lava's float models
ignore it), so a fixed-point network computes the same integers on either tag.

lava's floating_pt Conv model computes in float32 (torch.FloatTensor); a lossless conversion is
checked in float64, hence a float64 model. Both lava models also read ``groups`` as int8, so a
depthwise convolution (an average pool) over 128 channels or more would run with a negative group
count; these models read it as int32. Same weight convention as lava (a true convolution: kernel
flipped in W and H, layout (C_out, W, H, C_in)), same one-step delay, same fixed-point arithmetic.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from lava.proc.conv.models import AbstractPyConvModel, PyConvModelFixed
from lava.proc.conv.process import Conv
from lava.proc.dense.models import PyDenseModelFloat
from lava.proc.dense.process import Dense

from neurocompile.targets.lava.processes.common import (CPU, LavaPyType, LoihiProtocol, PyInPort, PyOutPort,
                                                        implements, requires, tag)


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt", "float64")
class PyConvModelFloat64(AbstractPyConvModel):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buf: np.ndarray = LavaPyType(np.ndarray, float)
    weight: np.ndarray = LavaPyType(np.ndarray, float)
    groups: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def run_spk(self) -> None:
        if torch.get_num_threads() != 1:
            # Lava forks this model's process; torch's OpenMP pool inherited from a parent that already
            # ran torch deadlocks in a forked child unless the child stays single-threaded.
            torch.set_num_threads(1)
        self.a_out.send(self.a_buf)
        x = torch.from_numpy(np.asarray(self.s_in.recv(), dtype=np.float64).transpose(2, 1, 0).copy())[None]
        if getattr(self, "_w", None) is None:  # weights are static: flip back to torch's correlation once
            self._w = torch.from_numpy(self.weight[:, ::-1, ::-1].transpose(0, 3, 2, 1).astype(np.float64).copy())
        y = F.conv2d(x, self._w, stride=tuple(int(v) for v in self.stride[::-1]),
                     padding=tuple(int(v) for v in self.padding[::-1]),
                     dilation=tuple(int(v) for v in self.dilation[::-1]), groups=int(self.groups[0]))
        exp = int(np.asarray(self.weight_exp).reshape(-1)[0])
        self.a_buf = y[0].numpy().transpose(2, 1, 0) * (2.0 ** exp if exp else 1.0)


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "wide_groups")
class PyConvModelFixedWideGroups(PyConvModelFixed):
    """lava's fixed-point Conv model, with ``groups`` read as int32 and the layer's ``weight_exp`` applied (lava's
    model ignores it; its Dense shifts the accumulated current left by it, as here)."""

    groups: np.ndarray = LavaPyType(np.ndarray, np.int32)

    def clamp_precision(self, x: np.ndarray) -> np.ndarray:
        exp = int(np.asarray(self.weight_exp).reshape(-1)[0])
        return super().clamp_precision(np.left_shift(x.astype(np.int64), exp) if exp > 0 else x)


@implements(proc=Dense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt", "weight_exp")
class PyDenseModelFloatExp(PyDenseModelFloat):
    """lava's floating-point Dense model, with the layer's ``weight_exp`` applied as its fixed-point model does
    (a fixed-point network run in floating point computes the same integers)."""

    def run_spk(self) -> None:
        super().run_spk()
        exp = int(self.proc_params.get("weight_exp", 0))
        if exp:
            self.a_buff = self.a_buff * 2.0 ** exp
