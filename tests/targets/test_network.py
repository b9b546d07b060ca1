"""The deployable Lava process: lava's RingBuffer source -> neurocompile Network -> lava's RingBuffer sink,
a stream of samples, every period's readout against the reference simulator."""
import os

import numpy as np
import pytest
from lava.magma.core.run_conditions import RunSteps
from lava.proc.io.sink import RingBuffer as Sink
from lava.proc.io.source import RingBuffer as Source

from neurocompile import api
from neurocompile.errors import TargetError
from neurocompile.targets.lava.lanes import lane_graph, max_lanes
from neurocompile.targets.lava.processes.network import Network
from neurocompile.targets.lava.run import check_for_lava, run_config
from neurocompile.targets.reference.simulator import ReferenceSimulator

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def _stream(snn, x, select_tag, lanes=1):
    """The documented embedding, run in this process; always stops the runtime."""
    net = Network(snn, n_samples=len(x), lanes=lanes)
    src = Source(data=net.source_data(x))
    src.s_out.connect(net.inp)
    sink = Sink(shape=net.out.shape, buffer=net.steps_for(len(x)))
    net.out.connect(sink.a_in)
    try:
        src.run(condition=RunSteps(num_steps=net.steps_for(len(x))), run_cfg=run_config(select_tag))
        data, spikes = sink.data.get(), net.spikes()
    finally:
        src.stop()
    return net, data, spikes


def _digits(fixed_point, neuron="cif"):
    x = np.load(os.path.join(EXAMPLES, "digits_test.npy"))[:10]
    return api.convert(api.load(os.path.join(EXAMPLES, "digits_cqrelu.onnx")), target="lava-sim",
                       fixed_point=fixed_point, neuron=neuron), x


@pytest.mark.parametrize("arch, fixed_point", [("digits", False), ("digits", True), ("vgg", False), ("vgg", True),
                                               ("resnet", False), ("resnet", True)])
def test_a_stream_of_ten_samples_reads_out_as_the_reference(onnx_model, arch, fixed_point):
    if arch == "digits":
        snn, x = _digits(fixed_point)
    else:
        path, shape = onnx_model(arch, "cqrelu", "bn", 4)
        snn = api.convert(api.load(path), target="lava-sim", fixed_point=fixed_point)
        x = np.random.default_rng(7).uniform(0, 1, (10, *shape)).astype(np.float32)
    ref = api.simulate(snn, x, exact=True)
    net, data, spikes = _stream(snn, x, "fixed_pt" if fixed_point else "floating_pt")
    got = net.readouts(data)
    assert got.shape == ref.output.shape and net.samples_in(data) == 10
    if fixed_point:  # integers: bit for bit
        np.testing.assert_array_equal(got, ref.output)
        np.testing.assert_array_equal(net.per_step(data), ref.per_step)
    else:
        assert np.abs(got - ref.output).max() <= 1e-9 * np.abs(ref.output).max()
        assert np.abs(net.per_step(data) - ref.per_step).max() <= 1e-9 * np.abs(ref.per_step).max()
    assert spikes == ref.spikes
    # samples follow each other without flush steps: one period is the readout window
    s = net.graph.schedule
    assert net.period == s.steps - s.arrival[net.graph.producers()[snn.outputs[0]].name]


def test_the_if_baseline_streams_with_flush_steps_and_the_same_numbers():
    """No sleep phase: biases on from step 0 at every sink, so samples are not staggered but flushed."""
    snn, x = _digits(False, neuron="if")
    ref = api.simulate(snn, x[:4], exact=True)
    net, data, spikes = _stream(snn, x[:4], "floating_pt", lanes=2)
    assert not net.stream.staggered and net.period > snn.schedule.steps
    assert np.abs(net.per_step(data) - ref.per_step).max() <= 1e-9 * np.abs(ref.per_step).max()
    assert spikes == ref.spikes and net.samples_in(data) == 4


def test_lanes_run_samples_side_by_side_with_the_same_numbers(onnx_model):
    path, shape = onnx_model("vgg", "cqrelu", "bn", 4)
    snn = api.convert(api.load(path), target="lava-sim")
    x = np.random.default_rng(8).uniform(0, 1, (7, *shape)).astype(np.float32)  # 2 periods of 4, 1 spare lane
    ref = api.simulate(snn, x, exact=True)
    net, data, spikes = _stream(snn, x, "floating_pt", lanes=4)
    assert net.inp.shape[-1] == 4 * shape[0] and net.steps_for(7) == 2 * net.period + max(net.stream.arrival.values())
    assert np.abs(net.readouts(data, 7) - ref.output).max() <= 1e-9 * np.abs(ref.output).max()
    assert spikes == ref.spikes  # the spare lane's spikes are not counted


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
def test_the_lane_graph_is_the_same_network_b_times(onnx_model, arch):
    path, shape = onnx_model(arch, "cqrelu", "bn", 4)
    g = check_for_lava(api.convert(api.load(path), target="lava-sim"))
    B = min(3, max_lanes(g))
    wide = lane_graph(g, B)
    x = np.random.default_rng(9).uniform(0, 1, (2 * B, *shape))
    one = ReferenceSimulator(g, dtype="float64").run(x)
    side = ReferenceSimulator(wide, dtype="float64").run(x.reshape(2, B * shape[0], *shape[1:]))
    np.testing.assert_array_equal(side.output.reshape(one.output.shape), one.output)


def test_too_few_steps_are_refused_before_lava_starts():
    snn, x = _digits(False)
    with pytest.raises(TargetError, match="before any current reaches the readout"):
        Network(snn, steps=3)
    with pytest.raises(TargetError, match="before any current reaches the readout"):
        api.compile(snn, "lava-sim").run(x[:1], steps=3)
