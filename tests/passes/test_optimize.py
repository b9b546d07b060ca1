"""canonicalize and fold_batchnorm preserve the function (interpreter before == after)."""
import numpy as np
import pytest

from neurocompile.ir import interpreter
from neurocompile.frontends.onnx.importer import load_onnx
from neurocompile.passes import PassManager
from neurocompile.passes.canonicalize import canonicalize
from neurocompile.passes.fold_batchnorm import fold_batchnorm
from tests.conftest import rel_err


@pytest.mark.parametrize("arch", ["mlp", "vgg", "resnet"])
@pytest.mark.parametrize("mode", ["folded", "bn"])
def test_passes_preserve_function(onnx_model, arch, mode):
    path, shape = onnx_model(arch, "relu", mode)
    g = load_onnx(path)
    x = np.random.default_rng(2).normal(size=(32, *shape)).astype(np.float32)
    before = interpreter.run1(g, x, "float64")
    pm = PassManager([canonicalize, fold_batchnorm])
    out = pm.run(g)
    assert rel_err(interpreter.run1(out, x, "float64"), before) <= 1e-5
    ops = {n.op for n in out.nodes.values()}
    assert not ops & {"BatchNorm", "Gemm", "MatMul", "Identity", "Dropout"}
    assert [r.name for r in pm.log] == ["canonicalize", "fold_batchnorm"]
    if mode == "bn":
        assert pm.log[1].op_delta.get("BatchNorm", 0) < 0


def test_unfoldable_batchnorm_becomes_affine(onnx_model):
    """A BN right after the input has no Conv/Dense to fold into."""
    import torch
    from torch import nn

    from tests.models import _randomize_bn, export

    model = _randomize_bn(nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.Flatten()), 3)
    import tempfile, os
    path = os.path.join(tempfile.mkdtemp(), "bnfirst.onnx")
    export(model, (3, 6, 6), path, "bn")
    g = load_onnx(path)
    x = np.random.default_rng(0).normal(size=(4, 3, 6, 6)).astype(np.float32)
    out = PassManager([canonicalize, fold_batchnorm]).run(g)
    assert [n.op for n in out.topo()][:2] == ["Input", "Affine"]
    assert rel_err(interpreter.run1(out, x, "float64"), model(torch.tensor(x)).detach().numpy()) <= 1e-5
