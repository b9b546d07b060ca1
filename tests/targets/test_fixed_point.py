"""Fixed point: integer weights/thresholds; Lava's fixed_pt models == the reference simulator, exactly."""
import os

import numpy as np
import pytest

from neurocompile import api, interpreter
from neurocompile.errors import ConversionError

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "examples")


def _digits(n):
    return np.load(os.path.join(EXAMPLES, "digits_test.npy"))[:n], os.path.join(EXAMPLES, "digits_cqrelu.onnx")


def test_quantized_graph_is_integer_and_close_to_the_ann():
    x, path = _digits(100)
    q = api.convert(api.load(path), fixed_point=True)
    for n in q.nodes.values():
        for k, v in n.params.items():
            assert np.array_equal(v, np.round(v)), (n.name, k)
            if k == "weight":  # 8-bit mantissas; lava's Dense drops the LSB of mixed-sign weights: even
                assert np.abs(v).max() <= 254 and (n.op != "Dense" or np.all(v % 2 == 0))
        if n.op == "CIF":
            assert float(n.attrs["threshold"]).is_integer() and n.attrs["amplitude"] == 1.0
    ann, _ = api.ann_outputs(path, x)
    res = api.simulate(q, x)
    # the reference simulator computes in exact integers: equal to the quantized graph's meaning
    np.testing.assert_array_equal(res.output, interpreter.run1(q, x, "float64"))
    assert (res.output.argmax(1) == ann.argmax(1)).mean() >= 0.98
    assert np.abs(res.output - ann).max() <= 0.1 * np.abs(ann).max()  # 8-bit weights: lossy, bounded


@pytest.mark.parametrize("arch", ["mlp", "vgg"])
def test_lava_fixed_pt_equals_reference(onnx_model, arch):
    path, shape = onnx_model(arch, "cqrelu", "bn", 4)
    q = api.convert(api.load(path), target="lava-sim", fixed_point=True)
    x = np.random.default_rng(3).uniform(0, 1, (3, *shape)).astype(np.float32)
    ref = api.simulate(q, x)
    res = api.compile(q, "lava-sim", fixed_point=True).run(x)
    np.testing.assert_array_equal(res.per_step, ref.per_step)
    assert res.spikes == ref.spikes


def test_fixed_point_refuses_what_it_cannot_do(onnx_model):
    path, _ = onnx_model("resnet", "cqrelu", "bn", 4)
    with pytest.raises(ConversionError, match="feed-forward"):
        api.convert(api.load(path), fixed_point=True)
