"""How close does onnxruntime's float32 come to the exact pre-activations, in units of the rounding bound?

For every quantizer input z of a CQReLU network, compares onnxruntime's float32 value with the float64
interpreter's and prints max |z_ort - z_64| / (2**-24 * M) (M = sum |w x| + |b|, see neurocompile/boundary.py),
next to ROUNDING_FACTOR, the bound neurocompile assumes; then the quantization levels onnxruntime gets wrong
and whether every one of them is counted as a boundary case.

    cd benchmarks && ../.venv/bin/python boundary_cases.py
"""
from __future__ import annotations

import os
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from neurocompile import api  # noqa: E402
from neurocompile.analysis import boundary
from tests import models  # noqa: E402


def measure(path: str, x: np.ndarray) -> dict:
    g = api.ann_graph(api.load(path))
    quant = [n for n in g.topo() if n.op == "CQReLU"]
    model = onnx.load(path)
    names = {o.name for o in model.graph.output}
    for n in quant:
        if n.inputs[0] not in names:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(n.inputs[0]))
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {sess.get_inputs()[0].name: x})))
    worst, wrong, missed, skipped = 0.0, 0, 0, 0
    rep = boundary.find_boundary_cases(g, x)
    flagged = set(rep.samples)
    for n, (L, lam, shift), z, m in boundary.quantizer_inputs(g, x):  # float64 values, rounding magnitudes
        z64, m = z.numpy(), m.numpy()
        z32 = outs[n.inputs[0]].astype(np.float64)
        ratio = float(np.max(np.abs(z32 - z64) / (boundary.U32 * np.maximum(m, 1e-30))))
        if ratio > 1e4:  # not the same tensor: neurocompile folded a BN into it; count no flips there
            skipped += 1
            continue
        worst = max(worst, ratio)
        lv = lambda v: np.clip(np.floor(v * (L / lam) + shift), 0, L)  # noqa: E731
        diff = (lv(z32.astype(np.float32).astype(np.float64)) != lv(z64)).reshape(len(x), -1).any(1)
        wrong += int(diff.sum())
        missed += int(sum(1 for i in np.nonzero(diff)[0] if i not in flagged))
    return {"worst": worst, "flagged": len(rep.samples), "neurons": rep.neurons, "wrong": wrong, "missed": missed,
            "compared": f"{len(quant) - skipped}/{len(quant)}"}


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []
    digits = os.path.join(ROOT, "examples", "digits_cqrelu.onnx")
    rows.append(("digits CNN (bundled), 100 test images", digits, np.load(os.path.join(ROOT, "examples", "digits_test.npy"))))
    tmp = tempfile.mkdtemp()
    for arch, build in (("mlp", models.mlp), ("vgg", models.vgg), ("resnet", models.resnet)):
        for L in (4, 16):
            m, shape = build(act="cqrelu", levels=L)
            p = models.export(m, shape, os.path.join(tmp, f"{arch}{L}.onnx"))
            rows.append((f"{arch} L={L}, 512 random inputs", p, rng.uniform(0, 1, (512, *shape)).astype(np.float32)))
    print(f"rounding bound assumed: {boundary.ROUNDING_FACTOR:g} * u * M")
    print(f"{'model':<40} {'max err/(u*M)':>14} {'boundary samples':>17} {'neurons':>8} {'ort level flips':>16} {'unflagged':>10} {'layers':>7}")
    for name, path, x in rows:
        r = measure(path, x.astype(np.float32))
        print(f"{name:<40} {r['worst']:>14.2f} {r['flagged']:>10}/{len(x):<6} {r['neurons']:>8} {r['wrong']:>16} {r['missed']:>10} {r['compared']:>7}")


if __name__ == "__main__":
    main()
