"""Float vs fixed point on the full digits test split (360 images): accuracy, argmax agreement, readout error,
and the per-layer quantization report (unit, weight exponent, weight error, rescales) of each network.

Networks: the bundled CQReLU net (examples/digits_cqrelu.onnx) and an IDSNN student, trained here with
examples/train_idsnn_digits.py into a temporary folder unless ``--student`` names one.

    .venv/bin/python benchmarks/fixed_point_accuracy.py [--student student.onnx] [--report]
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
from _common import ROOT, machine, table

from neurocompile import api

sys.path.insert(0, os.path.join(ROOT, "examples"))
import datasets  # noqa: E402


def _student(path: str | None) -> str:
    if path:
        return path
    import train_idsnn_digits

    out = os.path.join(tempfile.mkdtemp(prefix="nc-bench-"), "student.onnx")
    t = time.perf_counter()
    train_idsnn_digits.main(["--out", out, "--quiet", "--snn-samples", "10"])
    print(f"trained an IDSNN student in {time.perf_counter() - t:.0f} s: {out}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--student", help="an exported IDSNN student (default: train one, about 2 minutes)")
    ap.add_argument("--report", action="store_true", help="print each network's per-layer quantization report")
    a = ap.parse_args()
    _, _, x, y = datasets.load("digits")
    nets = {"digits CQReLU (bundled)": os.path.join(ROOT, "examples", "digits_cqrelu.onnx"),
            "IDSNN student (ResNet, LIF, T=4)": _student(a.student)}
    rows, reports = [], {}
    for name, path in nets.items():
        g = api.load(path)
        flt = api.simulate(api.convert(g), x, exact=True).output
        q = api.convert(g, fixed_point=True)
        fix = api.simulate(q, x, exact=True).output
        reports[name] = q.meta["fixed_point_report"]
        worst = max(r["weight_error"] for r in reports[name])
        rows.append([name, f"{(flt.argmax(1) == y).mean():.2%}", f"{(fix.argmax(1) == y).mean():.2%}",
                     f"{(fix.argmax(1) == flt.argmax(1)).mean():.2%}",
                     f"{np.abs(fix - flt).max() / np.abs(flt).max():.3g}", f"{worst:.2%}",
                     sum(r["rescaled"] > 0 for r in reports[name] if r["op"] in ("Conv", "Dense"))])
    print(f"machine: {machine()}\ndigits test split: {len(x)} images\n")
    print(table(rows, ["network", "float acc", "fixed acc", "argmax agree", "max rel err", "worst weight err",
                       "rescaled layers"]))
    if a.report:
        for name, rep in reports.items():
            print(f"\n{name}")
            print(table([[r["node"], r["op"], f"{r['unit']:.4g}", r["exponent"], f"{r['weight_error']:.2%}",
                          r["rescaled"], r["note"]] for r in rep],
                        ["layer", "op", "unit", "weight exp", "weight err", "rescaled", "note"]))


if __name__ == "__main__":
    main()
