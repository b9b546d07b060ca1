import numpy as np
import onnxruntime as ort
import pytest

from tests import models

BUILDERS = {"mlp": models.mlp, "vgg": models.vgg, "resnet": models.resnet}


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def onnx_model(model_dir):
    """Factory: (arch, act, export mode, levels) -> (path, per-sample input shape); cached per session."""
    cache = {}

    def make(arch="mlp", act="relu", mode="folded", levels=8, opset=17, seed=0):
        key = (arch, act, mode, levels, opset, seed)
        if key not in cache:
            model, shape = BUILDERS[arch](act=act, levels=levels, seed=seed)
            path = model_dir / f"{arch}-{act.replace(':', '_')}-{mode}-L{levels}-o{opset}-s{seed}.onnx"
            cache[key] = (models.export(model, shape, path, mode, opset), shape)
        return cache[key]

    return make


@pytest.fixture(scope="module")
def nets(onnx_model):
    """arch -> (converted graph, per-sample input shape, ONNX path): the MLP, VGG and ResNet test models (CQReLU,
    BatchNorm, L = 4) converted with the defaults; shared by the estimate and placement tests."""
    from neurocompile import api

    out = {}
    for arch in ("mlp", "vgg", "resnet"):
        path, shape = onnx_model(arch, "cqrelu", "bn", 4)
        out[arch] = (api.convert(api.load(path)), shape, path)
    return out


def pytest_sessionstart(session):
    """Build the fused CIF step before any test (once per machine): the command-line tests' subprocesses find it
    cached instead of each waiting for, and printing about, the build."""
    from neurocompile.ir import fused_cif

    fused_cif.load()


def pytest_terminal_summary(terminalreporter):
    """The kernels this run used (``make test-cpus`` forces others): float32 results depend on them."""
    import os

    import threadpoolctl
    import torch

    blas = ", ".join(f"{i['internal_api']} {i.get('architecture', '?')}" for i in threadpoolctl.threadpool_info())
    forced = " ".join(f"{k}={os.environ[k]}" for k in ("MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY",
                                                        "OPENBLAS_CORETYPE") if k in os.environ)
    from neurocompile.ir import fused_cif

    fused = "loaded" if fused_cif.loaded() else f"not in use ({fused_cif.why_not()})"
    terminalreporter.write_line(f"cpu kernels: torch {torch.backends.cpu.get_cpu_capability()}, numpy {blas}; "
                                f"forced: {forced or 'none'}; fused CIF step: {fused}")


def ort_run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-12))


# CI must be reproducible: hypothesis draws the same examples every run.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("ci")
