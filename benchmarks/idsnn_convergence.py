"""IDSNN's convergence experiment on Fashion-MNIST at 2-CPU scale: three spiking students from the same seed and
schedule -- direct training (the baseline), initialized from the ANN teacher, initialized and distilled -- over
several seeds; accuracy per epoch, the epoch at which each first reaches the baseline's final accuracy, the
convergence speed-up, and the final accuracies at T = 6 against the teacher's.

    .venv/bin/python benchmarks/idsnn_convergence.py                  # seeds 0 1, about 55 min on 2 cores
    .venv/bin/python benchmarks/idsnn_convergence.py --long-baseline 16   # and seed 0's direct run over 16 epochs
    .venv/bin/python benchmarks/idsnn_convergence.py --plot out/idsnn-fmnist/convergence.png
    .venv/bin/python benchmarks/idsnn_convergence.py --quick          # smoke test: 300 images, one epoch

Sizes, schedule and checkpoints are those of examples/train_idsnn_fmnist.py (its options apply here too): a run
that stops resumes after its last finished epoch, and the example's student is this benchmark's init + KD
student of seed 0. The paper (IDSNN, CIFAR-100, ResNet-34 teacher, ResNet-18 student, T = 6): the direct-training
baseline reaches 71.31 % after 192 epochs; IDSNN passes it after 14, a 14x faster convergence.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from _common import ROOT, machine, table

sys.path.insert(0, os.path.join(ROOT, "examples"))
import datasets  # noqa: E402  (examples/datasets.py)
import train_idsnn_fmnist as example  # noqa: E402


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    example.add_options(ap)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="student seeds (at least two for a spread)")
    ap.add_argument("--long-baseline", type=example.positive, metavar="EPOCHS",
                    help="also train the first seed's direct student for EPOCHS epochs (its own cosine schedule): is "
                         "the baseline at a plateau, and how fast do the others reach that longer run's accuracy?")
    ap.add_argument("--plot", help="PNG file for the accuracy curves (mean over seeds, range shaded)")
    return example.finish_options(ap.parse_args(argv))


def epochs_of(curves: dict[str, dict[int, list[float]]]) -> int:
    """How many epochs the students of the study ran (all the same schedule)."""
    return len(next(iter(curves["direct"].values())))


def first_reaching(curve: list[float], target: float) -> int | None:
    """The first epoch (1-based) whose accuracy is >= target, or None."""
    return next((i + 1 for i, v in enumerate(curve) if v >= target), None)


def summarize(curves: dict[str, dict[int, list[float]]], teacher_acc: float) -> dict:
    """Per seed: the baseline's final accuracy, the epoch each variant first reaches it and the speed-up
    (the baseline's epoch over the variant's: how many times fewer epochs reach the same accuracy)."""
    out: dict = {"teacher": teacher_acc, "seeds": {}}
    for seed, base in curves["direct"].items():
        target = base[-1]
        reach = {v: first_reaching(c[seed], target) for v, c in curves.items()}
        speed = {v: (reach["direct"] / e if e else None) for v, e in reach.items()}
        out["seeds"][seed] = {"target": target, "reach": reach, "speedup": speed,
                              "final": {v: c[seed][-1] for v, c in curves.items()}}
    return out


def report(a, curves, summary, say) -> None:
    seeds = sorted(summary["seeds"])
    epochs = epochs_of(curves)
    say(f"\nTest accuracy (%) after each epoch, {len(seeds)} seed(s) {seeds}, mean over seeds "
        f"(Fashion-MNIST test set, {a.test_limit or 10000:,} images):")
    rows = [[example.LABELS[v]] + [f"{100 * np.mean([c[s][e] for s in seeds]):.2f}" for e in range(epochs)]
            for v, c in curves.items()]
    say(table(rows, ["student"] + [str(e + 1) for e in range(epochs)]))
    say("\nEpoch at which each student first reaches the baseline's final accuracy (that seed's direct run), and the "
        "speed-up (baseline epochs / student epochs):")
    rows = []
    for v in curves:
        reach = [summary["seeds"][s]["reach"][v] for s in seeds]
        speed = [summary["seeds"][s]["speedup"][v] for s in seeds]
        finals = [100 * summary["seeds"][s]["final"][v] for s in seeds]
        got = [x for x in speed if x is not None]
        spread = (f"{np.mean(got):.2f}x (range {min(got):.2f}-{max(got):.2f}x)" if len(got) == len(speed)
                  else f"not reached in {speed.count(None)} of {len(speed)} seeds")
        rows.append([example.LABELS[v], " ".join("-" if r is None else str(r) for r in reach), spread,
                     f"{np.mean(finals):.2f} ± {np.std(finals):.2f}", " ".join(f"{f:.2f}" for f in finals)])
    say(table(rows, ["student", "epoch per seed", "speed-up", f"final acc T={a.T} (%)", "per seed"]))
    targets = " ".join(f"{100 * summary['seeds'][s]['target']:.2f}" for s in seeds)
    say(f"baseline's final accuracy per seed: {targets} %; ANN teacher: {100 * summary['teacher']:.2f} % "
        f"(ResNet width {a.teacher_width}, blocks {a.teacher_blocks}); students: spiking ResNet width "
        f"{a.student_width}, blocks {a.student_blocks}, LIF, T = {a.T}, {epochs} epochs, lr {a.lr} cosine")


def long_summary(long_curve: list[float], curves, seed: int) -> dict:
    """Against a longer direct run of ``seed``: the epoch at which each student of that seed reaches the long run's
    final accuracy (None: not within its schedule), and the epoch at which the long run first reaches each student's
    final accuracy (what that student's schedule is worth in epochs of direct training)."""
    return {"seed": seed, "curve": long_curve,
            "reach": {v: first_reaching(c[seed], long_curve[-1]) for v, c in curves.items()},
            "worth": {v: first_reaching(long_curve, c[seed][-1]) for v, c in curves.items()}}


def report_long(a, long: dict, curves, say) -> None:
    curve, seed, epochs = long["curve"], long["seed"], epochs_of(curves)
    say(f"\nLong baseline: direct training of seed {seed} over {len(curve)} epochs (its own cosine schedule): "
        + " ".join(f"{100 * v:.2f}" for v in curve))
    say(f"  final {100 * curve[-1]:.2f} %, which each {epochs}-epoch student of seed {seed} reaches at epoch: "
        + ", ".join(f"{example.LABELS[v]} {e or '- (not reached)'}" for v, e in long["reach"].items()))
    for v, c in curves.items():
        worth = long["worth"][v]
        say(f"  {example.LABELS[v]:<22} final {100 * c[seed][-1]:.2f} %: the long run first reaches it at epoch "
            + (f"{worth}, so its {epochs} epochs are worth {worth / epochs:.2f}x as many of direct training" if worth
               else "- (never)"))


def plot(path: str, curves, teacher_acc: float, long: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for v, c in curves.items():
        acc = 100 * np.array(list(c.values()))
        x = np.arange(1, acc.shape[1] + 1)
        ax.plot(x, acc.mean(0), marker="o", label=example.LABELS[v])
        ax.fill_between(x, acc.min(0), acc.max(0), alpha=0.2)
    if long:
        acc = 100 * np.array(long["curve"])
        ax.plot(np.arange(1, len(acc) + 1), acc, color="C0", linestyle=":",
                label=f"direct, {len(acc)} epochs (seed {long['seed']})")
    ax.axhline(100 * teacher_acc, color="grey", linestyle="--", label="ANN teacher")
    ax.set(xlabel="epoch", ylabel="test accuracy (%)", title="Spiking ResNet students on Fashion-MNIST (T = 6)")
    ax.legend()
    ax.grid(alpha=0.3)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    a = parse(argv)
    return datasets.run_with_threads(a.threads, _main, a)


def _main(a) -> dict:
    say = datasets.printer(a.quiet)
    say(f"machine: {machine()}")
    data = example.Data(a)
    teacher, th = example.train_teacher(a, data)
    say(f"teacher: test accuracy {100 * th.accuracy[-1]:.2f} % after {th.epochs} epochs")
    curves: dict[str, dict[int, list[float]]] = {v: {} for v in example.VARIANTS}
    seconds = 0.0
    for seed in a.seeds:
        for variant in example.VARIANTS:
            _, hist = example.train_student(a, data, teacher, variant, seed)
            curves[variant][seed] = hist.accuracy
            seconds += sum(hist.seconds)
            say(f"  {example.LABELS[variant]:<22} seed {seed}: " + " ".join(f"{100 * v:.2f}" for v in hist.accuracy))
    summary = summarize(curves, th.accuracy[-1])
    report(a, curves, summary, say)
    long = None
    if a.long_baseline:
        seed = a.seeds[0]
        _, hist = example.train_student(a, data, teacher, "direct", seed, epochs=a.long_baseline)
        seconds += sum(hist.seconds)
        long = long_summary(hist.accuracy, curves, seed)
        report_long(a, long, curves, say)
    say(f"training time of the students (as recorded in their checkpoints): {seconds / 60:.1f} min")
    if a.plot:
        plot(a.plot, curves, th.accuracy[-1], long)
        say(f"wrote {a.plot}")
    return {"curves": curves, "summary": summary, "teacher": th.accuracy, "student_seconds": seconds,
            "long_baseline": long}


if __name__ == "__main__":
    main()
