"""lower_to_blocks: the graph every target runs (constant terms at their sinks, explicit readouts)."""
import operator

import numpy as np

import pytest

from neurocompile import api
from neurocompile.ir import interpreter
from neurocompile.errors import ConversionError
from neurocompile.ir import Graph
from neurocompile.ir.ops import op_of, tensors
from neurocompile.passes.blocks import blocks
from neurocompile.passes.lower_to_blocks import lower_to_blocks, lowered
from neurocompile.ir.schedule import WakeSleepSchedule


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
def test_lowering_keeps_the_function_and_moves_every_constant_to_a_sink(onnx_model, arch):
    path, shape = onnx_model(arch, "cqrelu", "bn", 8)
    snn = api.convert(api.load(path))
    low = lower_to_blocks(snn.copy())
    low.validate()
    assert low.meta["lowered"] and lowered(low) is low and not snn.meta.get("lowered")
    x = np.random.default_rng(0).uniform(0, 1, (32, *shape)).astype(np.float32)
    want = interpreter.run1(snn, x, "float64")
    got = interpreter.run1(low, x, "float64")
    assert np.abs(got - want).max() <= 1e-12 * np.abs(want).max()  # the same function, each bias added once
    for n in low.topo():
        op = op_of(n)
        if not op.sink:
            assert op.bias(n, tensors(n), low.shapes[n.output]) is None, n.name
    readouts = [n for n in low.topo() if n.op == "Readout"]
    assert [n.output for n in readouts] == snn.outputs
    assert low.schedule.gated_bias == [n.name for n in low.topo() if "bias" in n.params]
    # every synaptic node feeds exactly one block
    fed = [s for b in blocks(low) for s in b.synapses]
    assert sorted(fed) == sorted(n.name for n in low.topo() if op_of(n).synaptic)


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
def test_fixed_point_quantizes_the_lowered_graph_block_by_block(onnx_model, arch):
    """quantize_fixed_point works on blocks, so a fixed-point graph is lowered: integer biases at its sinks."""
    path, _ = onnx_model(arch, "cqrelu", "bn", 8)
    q = api.convert(api.load(path), fixed_point=True)
    assert q.meta["lowered"] and lowered(q) is q
    assert all(np.array_equal(n.params["bias"], np.round(n.params["bias"])) for n in q.topo() if "bias" in n.params)
    assert all(op_of(n).sink for n in q.topo() if "bias" in n.params)


def test_the_readout_arrives_after_its_layers_delay(onnx_model):
    path, _ = onnx_model("vgg", "cqrelu", "bn", 8)
    snn = api.convert(api.load(path), synapse_delay=1)
    low = lower_to_blocks(snn.copy())
    (r,) = [n for n in low.topo() if n.op == "Readout"]
    src = low.producers()[r.inputs[0]]
    assert low.schedule.arrival[r.name] == snn.schedule.arrival[src.name] + 1


def test_lowering_needs_a_schedule(onnx_model):
    path, _ = onnx_model("mlp", "cqrelu", "bn", 8)
    with pytest.raises(ConversionError, match="after schedule_wake_sleep"):
        lower_to_blocks(api.load(path))


def test_the_schedule_is_typed_and_read_by_its_fields(onnx_model, tmp_path):
    path, _ = onnx_model("mlp", "cqrelu", "bn", 8)
    snn = api.convert(api.load(path))
    assert isinstance(snn.schedule, WakeSleepSchedule)
    assert snn.schedule.to_dict()["steps"] == snn.schedule.steps
    snn.schedule = {**snn.schedule.to_dict(), "sleep": False}  # a dict given is converted
    assert isinstance(snn.schedule, WakeSleepSchedule) and snn.schedule.sleep is False
    with pytest.raises(TypeError):  # no dict view: the schedule is read by its fields
        operator.getitem(snn.schedule, "steps")
    snn.save(str(tmp_path / "g.json"))
    assert Graph.load(str(tmp_path / "g.json")).schedule == snn.schedule


def test_batched_runs_equal_one_run(onnx_model):
    path, shape = onnx_model("resnet", "cqrelu", "bn", 4)
    snn = api.convert(api.load(path))
    x = np.random.default_rng(1).uniform(0, 1, (10, *shape)).astype(np.float32)
    exe = api.compile(snn, exact=True)
    one = exe.run(x, early_stop=True, record_layers=True)
    ticks = []
    parts = exe.run(x, early_stop=True, record_layers=True, batch=4, progress=ticks.append)
    assert np.array_equal(one.output, parts.output) and np.array_equal(one.per_step, parts.per_step)
    assert one.spikes == parts.spikes
    assert all(np.array_equal(one.layers[k], parts.layers[k]) for k in one.layers)
    assert all(np.array_equal(one.membranes[k], parts.membranes[k]) for k in one.membranes) and one.membranes
    assert ticks == sorted(ticks) and ticks[-1] == one.steps


@pytest.mark.parametrize("reverse", [0, 1])
def test_constants_subtracted_at_the_input_move_to_the_sinks(onnx_model, reverse):
    """x - c (input normalization) and c - x: the constant reaches the first sinks through the weights."""
    from neurocompile.ir import Node
    from neurocompile.targets.lava.lanes import lane_graph
    from neurocompile.targets.reference.simulator import ReferenceSimulator

    path, shape = onnx_model("vgg", "cqrelu", "bn", 4)
    g = api.load(path)
    inp = g.input_nodes[0]
    g.rename_tensor(inp.output, "centered")
    g.add(Node("center", "Sub", [inp.output], "centered", {"reverse": reverse},
               {"const": np.full((shape[0], 1, 1), 0.5, np.float32)}), shape)
    snn = api.convert(g, target="lava-sim")
    low = lower_to_blocks(snn.copy())
    x = np.random.default_rng(2).uniform(0, 1, (6, *shape)).astype(np.float32)
    want = interpreter.run1(snn, x, "float64")
    assert np.abs(interpreter.run1(low, x, "float64") - want).max() <= 1e-12 * np.abs(want).max()
    one = ReferenceSimulator(low, dtype="float64").run(x)
    side = ReferenceSimulator(lane_graph(low, 3), dtype="float64").run(x.reshape(2, 3 * shape[0], *shape[1:]))
    np.testing.assert_array_equal(side.output.reshape(one.output.shape), one.output)
