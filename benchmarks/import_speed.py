"""Import + canonicalize + fold_batchnorm time of a ResNet-18-sized CIFAR model (issue: < 2 s).

    .venv/bin/python benchmarks/import_speed.py
"""
import time

from _common import export_tmp, machine, models, table

from neurocompile import api


def main(repeats: int = 5) -> None:
    rows = []
    for mode in ("folded", "bn"):
        path, _ = export_tmp(models.resnet18, mode)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            g = api.optimize(api.load(path))
            times.append(time.perf_counter() - t0)
        rows.append([f"resnet18 ({mode})", len(g.nodes), f"{g.num_params():,}", f"{min(times):.3f}", f"{max(times):.3f}"])
    print(f"machine: {machine()}")
    print(table(rows, ["model (export mode)", "IR nodes", "params", "best s", "worst s"]))


if __name__ == "__main__":
    main()
