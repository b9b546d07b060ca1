"""``Network``: a converted neurocompile network as one Lava process, with an input and a readout port.

    net = Network("net.h5")                                    # or a converted Graph
    src = RingBuffer(data=net.source_data(x)); src.s_out.connect(net.inp)
    sink = SinkRingBuffer(shape=net.out.shape, buffer=net.steps_for(len(x))); net.out.connect(sink.a_in)
    src.run(condition=RunSteps(num_steps=net.steps_for(len(x))), run_cfg=Loihi2SimCfg())
    readouts = net.readouts(sink.data.get())                   # (samples, *output shape), as the reference's

Samples stream one per ``period`` steps: sample k's input is read on global steps [k * period, (k + 1) *
period) (``source_data`` holds it there; the network gates it to the wake steps itself), every layer
starts the sample when its data arrives and returns to rest then (netx's ``reset_interval``, staggered
per layer by the synaptic delays), and the running readout sum on ``out`` is the sample's readout at its
last step. The SubProcessModel is the process graph ``emit`` builds: lava's Conv and Dense (and LIF)
processes with neurocompile's neuron, pooling, delay, bias and readout processes, float or fixed point
(``select_tag``).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from lava.magma.core.model.sub.model import AbstractSubProcessModel
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess

from neurocompile.errors import TargetError
from neurocompile.targets.lava.processes.common import LoihiProtocol, implements


class Network(AbstractProcess):
    """A converted network (a Graph, or the path of an artifact or saved IR) streaming samples.

    ``inp``: the input current, one vector per step (Lava layout: the IR shape reversed); ``out``: the
    running readout sum of the first graph output (``out_1``, ... for further outputs). ``steps``: steps
    per sample (default: the schedule's T); spike counts are kept for the first ``n_samples`` samples.
    ``lanes`` B > 1 runs B samples side by side (targets/lava/lanes.py: about B times fewer seconds per
    sample; the ports then carry B lane-major samples, which ``source_data`` and ``per_step`` pack and
    unpack)."""

    def __init__(self, net: Any, *, steps: int | None = None, n_samples: int = 1, lanes: int = 1,
                 name: str = "network"):
        from neurocompile.targets.lava.emit import Stream, emit, lava_shape
        from neurocompile.targets.lava.lanes import lane_graph
        from neurocompile.targets.lava.run import check_for_lava

        super().__init__(name=name)  # first: a refusal below then leaves a process Lava can delete
        self.base = check_for_lava(_graph(net))
        graph = lane_graph(self.base, int(lanes))
        stream = Stream.plan(graph, steps)
        self.lanes = int(lanes)
        built = emit(graph, stream, -(-int(n_samples) // self.lanes))
        self.inp = InPort(shape=lava_shape(graph.shapes[graph.input_nodes[0].output]))
        self.inp.connect(built.input.a_in)
        self.output_names = list(built.readouts)
        for i, t in enumerate(self.output_names):
            port = OutPort(shape=lava_shape(graph.shapes[t]))
            setattr(self, "out" if i == 0 else f"out_{i}", port)
            built.readouts[t].s_out.connect(port)
        self.graph, self.stream, self.emitted, self.n_samples = graph, stream, built, int(n_samples)

    # ---- what a host program needs around the process --------------------------------------------
    @property
    def period(self) -> int:
        """Steps between two samples."""
        return self.stream.period

    def periods(self, n_samples: int) -> int:
        return -(-int(n_samples) // self.lanes)

    def steps_for(self, n_samples: int) -> int:
        """Steps to run until the last of ``n_samples`` samples is read out."""
        return self.stream.total_steps(self.periods(n_samples))

    def source_data(self, x: np.ndarray) -> np.ndarray:
        """A RingBuffer's ``data`` for samples ``x`` (N, *input shape): each sample's input current (integers
        in fixed point) held for its period, B samples side by side (zeros in a last period's spare lanes),
        in Lava layout with time last: (*lava shape, periods * period)."""
        return np.repeat(np.moveaxis(self.period_data(x), 0, -1), self.period, axis=-1)

    def period_data(self, x: np.ndarray, per_step: bool = False) -> np.ndarray:
        """The input current of each sample period, (periods, *lava shape): what ``source_data`` repeats. With
        ``per_step`` x is (N, T_x, *input shape), one input per step, and the result (periods, T_x, *lava shape)."""
        from neurocompile.targets.lava.emit import to_lava

        x = np.asarray(x, dtype=np.float64)
        n, B = len(x), self.lanes
        enc = self.graph.schedule.encode_input(np.concatenate([x, np.zeros((self.periods(n) * B - n, *x.shape[1:]))]))
        if per_step:  # (P*B, T_x, C, ...) -> (P, T_x, B*C, ...): lane-major along the first axis at every step
            P, T_x = len(enc) // B, enc.shape[1]
            steps = np.swapaxes(enc.reshape(P, B, T_x, *enc.shape[2:]), 1, 2).reshape(P, T_x, B * enc.shape[2],
                                                                                      *enc.shape[3:])
            return np.stack([np.stack([to_lava(a) for a in period]) for period in steps])
        lanes = enc.reshape(-1, B * x.shape[1], *x.shape[2:])  # lane-major along the first axis
        return np.stack([to_lava(a) for a in lanes])

    def samples_in(self, data: np.ndarray) -> int:
        """How many samples a sink's data (recorded from step 0) holds completely (spare lanes not counted)."""
        periods = max(0, (np.shape(data)[-1] - self.stream.total_steps(0)) // self.period)
        return min(self.lanes * periods, self.n_samples)

    def per_step(self, data: np.ndarray, n_samples: int | None = None, output: int = 0) -> np.ndarray:
        """Readout after every step of each sample, (steps, N, *output shape), from the sink's data of
        port ``output`` (``out`` = 0) recorded from step 0: exactly what the reference simulator's
        ``per_step`` holds."""
        from neurocompile.targets.lava.emit import from_lava

        g, s, st = self.graph, self.graph.schedule, self.stream
        n_samples = self.samples_in(data) if n_samples is None else n_samples
        t_name = self.output_names[output]
        readout = g.producers()[t_name]
        start = st.offset(readout.name)  # before it the column belongs to the previous sample: nothing yet
        data = np.asarray(data, dtype=np.float64)
        P = self.periods(n_samples)
        if data.shape[-1] < self.stream.total_steps(P):
            raise TargetError(f"the sink recorded {data.shape[-1]} steps; {n_samples} samples need "
                              f"{self.stream.total_steps(P)}", hint="Run net.steps_for(n_samples) steps")
        cols = np.arange(P)[None, :] * st.period + np.arange(st.steps)[:, None]  # (steps, periods)
        out = np.moveaxis(data[..., np.minimum(cols, data.shape[-1] - 1)], (-2, -1), (0, 1))
        out[:start] = 0.0
        out = from_lava(out, 2)  # (steps, periods, B * d0, ...)
        out = out.reshape(st.steps, P * self.lanes, out.shape[2] // self.lanes, *out.shape[3:])[:, :n_samples]
        return out / (s.t_wake * s.readout_scale)

    def readouts(self, data: np.ndarray, n_samples: int | None = None, output: int = 0) -> np.ndarray:
        """Each sample's readout (N, *output shape): its running sum at its last step."""
        return self.per_step(data, n_samples, output)[-1]

    def spikes(self) -> dict[str, dict[str, int]]:
        """Positive and negative spike counts per neuron layer over the first ``n_samples`` samples (read
        after a run, before the runtime stops)."""
        out = {}
        for k, p in self.emitted.neurons.items():
            c = np.asarray(p.counts.get())
            c = c.reshape(-1, 2)[:self.n_samples]  # (period, lane) -> sample; spare lanes left out
            out[k] = {"pos": int(round(c[:, 0].sum())), "neg": int(round(c[:, 1].sum()))}
        return out


def _graph(net: Any):
    from neurocompile.ir import Graph

    if isinstance(net, Graph):
        return net
    from neurocompile import pipeline

    return pipeline.load(str(net))


@implements(proc=Network, protocol=LoihiProtocol)
class SubNetworkModel(AbstractSubProcessModel):
    """The process graph built in ``Network.__init__`` (its ports are connected there)."""

    def __init__(self, proc: AbstractProcess) -> None:
        pass
