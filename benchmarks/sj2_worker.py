"""SpikingJelly 2.0 worker for benchmarks/vs_spikingjelly.py: one task, one process, one JSON file.

SpikingJelly 2.0 needs Python >= 3.11 and torch >= 2.6, so it runs here, in the benchmark interpreter
(.venv-bench, `make bench`), not in neurocompile's Python 3.10 process:

    PYTHONPATH=.:examples .venv-bench/bin/python benchmarks/sj2_worker.py --twins out/twins \\
        --task accuracy|throughput|compile [options] --out FILE.json

What runs (``ann2snn`` of SpikingJelly 2.0.0, CPU, ``torch.set_num_threads(--threads)``):

* rate coding of the ReLU twin: ``ann2snn.Converter(recipe=RateCodingRecipe(dataloader, mode=..., channel_wise=...,
  half_threshold=...)).convert(ann)`` (Conv-BN fused, IF neurons with soft reset between voltage scalers; thresholds
  from the max, the 99.9th percentile or half the max activation, per layer or per channel, optionally with the
  membrane started at half threshold);
* local threshold balancing of the ReLU twin: ``Converter(recipe=LocalThresholdBalancingRecipe(dataloader))``
  (per-channel thresholds balanced on the calibration data, half-threshold IF neurons). Its thresholds move once per
  calibration batch, so it is calibrated in batches of 8 (--ltb-calib-batch); ``ltb_b256`` is the batch of 256 the
  other recipes get;
* SpikeZIP of the CQReLU twin: ``ModuleConverter(SpikeZIPTFQANNRecipe(time_steps=T)).convert(qann)``. SpikeZIP swaps
  any module with attributes ``s, sym, pos_max, neg_min`` (its quantizer, s * clamp(floor(x/s + 0.5), neg_min,
  pos_max)) for a signed ternary STBIF neuron, Conv2d/Linear for temporal-difference layers, and leaves BatchNorm as
  it is. So the QANN handed to it is the CQReLU twin with BN fused into the convolutions and every CQReLU(L, λ) =
  (λ/L) * clamp(floor(x L/λ), 0, L) written as that quantizer with s = λ/L, pos_max = L, neg_min = 0, its -s/2 shift
  (floor(v) = floor((v - 1/2) + 1/2)) moved into the bias of the layer before it; nn.Flatten becomes SpikingJelly's
  step-mode-aware layer.Flatten. The rewrite is checked against the CQReLU twin on the images (argmax agreement,
  max |logit difference|) before converting. Its temporal-difference layers expect the input once, at the first
  step (zeros after); the accuracy task also runs it on the constant current the other rows get.

Inputs are analog currents (direct encoding): the image on every step for rate coding and LTB. The output is read as
the mean over the first T steps (one run of max T steps, recorded at each T: causal).

Tasks: ``accuracy`` (accuracy and agreement with the network's own ANN at each T), ``throughput`` (one timed pass
over the images per contender, single-step loop and multi-step mode; one process = one round: the caller alternates
the processes of two interpreters), ``compile`` (conversion seconds over --rounds, on the twins and on a CIFAR
ResNet-18 from tests/models.py). The JSON: {"spikingjelly", "torch", "python", "task", ..., "rows": [...]}; a recipe
that fails gives a row with "error" (the exception's first line) and the task goes on.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import sys
import time
import warnings

os.environ.setdefault("TQDM_DISABLE", "1")  # the recipes wrap their calibration loader in tqdm

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from _spikingjelly import import_spikingjelly

# name -> (recipe class, keyword options, what it is); "dataloader" is added for every recipe but SpikeZIP
RECIPES = {
    "rate_max": ("RateCodingRecipe", dict(mode="Max"), "layer-wise threshold: max activation"),
    "rate_p99.9": ("RateCodingRecipe", dict(mode="99.9%"), "layer-wise threshold: 99.9th percentile"),
    "rate_0.5max": ("RateCodingRecipe", dict(mode=0.5), "layer-wise threshold: 0.5 x max activation"),
    "rate_cw_p99.9": ("RateCodingRecipe", dict(mode="99.9%", channel_wise=True),
                      "channel-wise threshold: 99.9th percentile"),
    "rate_cw_p99.9_half": ("RateCodingRecipe", dict(mode="99.9%", channel_wise=True, half_threshold=True),
                           "channel-wise 99.9th percentile, membrane starts at half threshold"),
    "ltb": ("LocalThresholdBalancingRecipe", {}, "local threshold balancing (channel-wise, half-threshold IF)"),
    "ltb_b256": ("LocalThresholdBalancingRecipe", {},
                 "local threshold balancing calibrated in batches of 256 (one threshold update on 256 images)"),
    "spikezip": ("SpikeZIPTFQANNRecipe", {}, "SpikeZIP-TF QANN -> STBIF signed spikes (CQReLU twin)"),
}
DEFAULT_RECIPES = {"accuracy": list(RECIPES), "throughput": [k for k in RECIPES if k != "ltb_b256"],
                   "compile": list(RECIPES)}
# calibration batch size per recipe (default 256). LTB moves each threshold by 2 * mean(overflow) once per batch,
# from 0: one batch of 256 leaves it far from balanced (measured: 16% on the twin), 32 batches of 8 do not.
CALIB_BATCH = {"ltb": 8}
SPIKEZIP_NOTE = ("BN fused into conv, CQReLU -> SpikeZIP quantizer (s=clip/L, pos_max=L, neg_min=0, bias -= s/2), "
                 "nn.Flatten/MaxPool2d -> layer.Flatten/MaxPool2d")


# ---- SpikingJelly and the models -------------------------------------------------------------------
def load_twins(twins: str):
    """(ReLU twin, CQReLU twin) from DIR/relu.pt and DIR/cqrelu.pt (examples/train_twins.py, eval mode)."""
    import train_twins
    return (train_twins.load_twin(os.path.join(twins, "relu.pt")),
            train_twins.load_twin(os.path.join(twins, "cqrelu.pt")))


def load_images(twins: str, n: int):
    """The first n test images and labels, and the calibration images, of the twins folder."""
    x = np.load(os.path.join(twins, "test_x.npy"))[:n].astype(np.float32)
    y = np.load(os.path.join(twins, "test_y.npy"))[:n].astype(np.int64)
    calib = np.load(os.path.join(twins, "calib_x.npy")).astype(np.float32)
    return torch.from_numpy(x), y, torch.from_numpy(calib)


def split(x: torch.Tensor, batch: int) -> list[torch.Tensor]:
    return [x[i:i + batch].contiguous() for i in range(0, len(x), batch)]


def ann_logits(model: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x) for x in xs])


# ---- SpikeZIP: the CQReLU twin as the QANN SpikeZIP converts ---------------------------------------
class SpikeZIPCQReLU(nn.Module):
    """CQReLU(L, λ) in the form of SpikeZIP's quantizer: s * clamp(floor(x/s + 1/2), 0, L), s = λ/L.
    CQReLU is s * clamp(floor(x/s), 0, L); the -s/2 that makes the two equal is in the previous layer's bias."""

    def __init__(self, levels: int, clip: float):
        super().__init__()
        self.sym, self.level = False, int(levels) + 1  # L + 1 values, 0..L
        self.register_buffer("s", torch.tensor(float(clip) / int(levels)))
        self.register_buffer("pos_max", torch.tensor(float(levels)))
        self.register_buffer("neg_min", torch.tensor(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.floor(x / self.s + 0.5), float(self.neg_min), float(self.pos_max)) * self.s


def fused_children(seq: nn.Sequential) -> list[nn.Module]:
    """The children of ``seq`` with each Conv2d/Linear + BatchNorm pair fused into one layer with a bias."""
    out: list[nn.Module] = []
    for m in seq.children():
        prev = out[-1] if out else None
        if isinstance(m, nn.BatchNorm2d) and isinstance(prev, nn.Conv2d):
            out[-1] = fuse_conv_bn_eval(prev, m)
        elif isinstance(m, nn.BatchNorm1d) and isinstance(prev, nn.Linear):
            out[-1] = fuse_linear_bn_eval(prev, m)
        else:
            out.append(m)
    return out


def shift_bias(layer: nn.Module, delta: float) -> None:
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(layer.weight.shape[0], dtype=layer.weight.dtype))
    with torch.no_grad():
        layer.bias.add_(delta)


def rewrite_sequential(seq: nn.Sequential, layer_mod) -> nn.Sequential:
    """``seq`` with BN fused, each CQReLU as a SpikeZIPCQReLU (previous layer's bias - s/2), Flatten step-aware."""
    out: list[nn.Module] = []
    for m in fused_children(seq):
        if hasattr(m, "levels") and hasattr(m, "clip"):  # neurocompile.torch.CQReLU
            if not out or not isinstance(out[-1], (nn.Conv2d, nn.Linear)):
                raise ValueError("a CQReLU must follow a Conv2d or Linear (its -s/2 goes into that bias)")
            q = SpikeZIPCQReLU(m.levels, m.clip)
            shift_bias(out[-1], -0.5 * float(q.s))
            m = q
        elif isinstance(m, nn.Flatten):
            m = layer_mod.Flatten(m.start_dim, m.end_dim)
        elif isinstance(m, nn.MaxPool2d):  # the VGG-11's pools, step-mode-aware too
            m = layer_mod.MaxPool2d(m.kernel_size, m.stride, m.padding)
        out.append(m)
    return nn.Sequential(*out)


def spikezip_qann(cq_twin: nn.Module, layer_mod) -> nn.Module:
    """A copy of the CQReLU twin (TwinCNN: features and classifier Sequentials; or a network that is one
    Sequential, the VGG-11) as SpikeZIP's QANN."""
    qann = copy.deepcopy(cq_twin).eval()
    if isinstance(qann, nn.Sequential):
        return rewrite_sequential(qann, layer_mod).eval()
    for name, child in list(qann.named_children()):
        if isinstance(child, nn.Sequential):
            setattr(qann, name, rewrite_sequential(child, layer_mod))
    return qann.eval()


def prepared_qann(cq_twin: nn.Module, layer_mod, rows: list[dict]):
    """spikezip_qann of the CQReLU twin, or None with the failure's row appended to ``rows``."""
    try:
        return spikezip_qann(cq_twin, layer_mod)
    except Exception as e:  # noqa: BLE001
        rows.append({"name": "spikezip", "error": f"QANN rewrite: {error_text(e)}"})
        return None


def check_qann(qann: nn.Module, cq_twin: nn.Module, xs: list[torch.Tensor], y: np.ndarray) -> dict:
    """The rewritten QANN against the CQReLU twin on the images: argmax agreement and max |logit difference|."""
    a, b = ann_logits(qann, xs), ann_logits(cq_twin, xs)
    return {"name": "ANN CQReLU twin as SpikeZIP QANN", "what": SPIKEZIP_NOTE,
            "accuracy": accuracy(a, y), "agree": agreement(a, b),
            "max_abs_logit_diff": float((a - b).abs().max()), "max_abs_logit": float(b.abs().max())}


# ---- conversion -----------------------------------------------------------------------------------
def calib_batch(name: str) -> int:
    return CALIB_BATCH.get(name, 256)


def make_recipe(ann2snn, name: str, calib: torch.Tensor, time_steps: int):
    """The recipe object of ``name``; its calibration loader is ``calib`` in batches of calib_batch(name)."""
    cls_name, options, _ = RECIPES[name]
    cls = getattr(ann2snn, cls_name)
    if name == "spikezip":
        return cls(time_steps=time_steps)
    return cls(dataloader=split(calib, calib_batch(name)), **options)


def options_text(name: str, time_steps: int) -> str:
    cls_name, options, _ = RECIPES[name]
    opts = {"time_steps": time_steps} if name == "spikezip" else \
        {"dataloader": f"calib/{calib_batch(name)}", **options}
    return f"{cls_name}({', '.join(f'{k}={v!r}' for k, v in opts.items())})"


def convert(ann2snn, name: str, ann: nn.Module, calib: torch.Tensor, time_steps: int):
    """(SNN, seconds) of one conversion of ``ann`` (converted in place: pass a copy), calibrated on ``calib``."""
    recipe = make_recipe(ann2snn, name, calib, time_steps)
    converter = (ann2snn.ModuleConverter if name == "spikezip" else ann2snn.Converter)(recipe=recipe, device="cpu")
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        snn = converter.convert(ann)
        return snn, time.perf_counter() - t0


def row_base(name: str, time_steps: int) -> dict:
    return {"name": name, "what": RECIPES[name][2], "recipe": options_text(name, time_steps),
            "calib_batch": None if name == "spikezip" else calib_batch(name),
            "ann": "cqrelu" if name == "spikezip" else "relu",
            "needed": needed_text(name)}


def needed_text(name: str) -> str:
    """What this recipe needed beyond its defaults."""
    if name == "spikezip":
        return SPIKEZIP_NOTE
    if name == "ltb":
        return f"calibration in batches of {calib_batch(name)} (one threshold update per batch)"
    return ""


def error_text(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"[:300]


def guarded(name: str, fn, *args) -> dict:
    """fn(*args), or the row of its failure."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001
        return {"name": name, "error": error_text(e)}


# ---- simulation -----------------------------------------------------------------------------------
def step_input(x: torch.Tensor, zeros: torch.Tensor, t: int, delta: bool) -> torch.Tensor:
    """Constant current: x on every step; delta (SpikeZIP's temporal-difference input): x at t = 0, then 0."""
    return x if (not delta or t == 0) else zeros


def run_single_step(functional, snn, x: torch.Tensor, T: int, delta: bool, record=()) -> tuple[torch.Tensor, dict]:
    """``for t in range(T): out += snn(x_t)``, then reset_net; the mean output over T and, for each t in
    ``record``, over the first t steps."""
    out, seen, zeros = 0, {}, torch.zeros_like(x)
    with torch.no_grad():
        for t in range(T):
            out = out + snn(step_input(x, zeros, t, delta))
            if t + 1 in record:
                seen[t + 1] = out / (t + 1)
        functional.reset_net(snn)
    return out / T, seen


def run_multi_step(functional, snn, x: torch.Tensor, T: int, delta: bool) -> torch.Tensor:
    """One call on the [T, N, ...] sequence (the net in multi-step mode), then reset_net; the mean output."""
    if delta:
        seq = torch.zeros((T, *x.shape), dtype=x.dtype)
        seq[0] = x
    else:
        seq = x.unsqueeze(0).repeat(T, *([1] * x.dim()))
    with torch.no_grad():
        out = snn(seq).mean(0)
        functional.reset_net(snn)
    return out


def accuracy(logits: torch.Tensor, y: np.ndarray) -> float:
    return float((logits.argmax(1).numpy() == y).mean())


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(1) == b.argmax(1)).float().mean())


# ---- task: accuracy -------------------------------------------------------------------------------
def accuracy_row(sj, name, ann, own, xs, y, calib, steps, delta, suffix="") -> dict:
    """One conversion simulated single-step for max(steps) steps: accuracy and agreement at each T."""
    ann2snn, functional = sj[0], sj[1]
    T = max(steps)
    snn, seconds = convert(ann2snn, name, copy.deepcopy(ann), calib, T)
    seen = [run_single_step(functional, snn, x, T, delta, set(steps))[1] for x in xs]
    per_t = {t: torch.cat([s[t] for s in seen]) for t in steps}
    row = row_base(name, T)
    row.update(name=name + suffix, convert_s=seconds, step_mode="s",
               encoding="image at step 1 only (temporal difference)" if delta else "constant current every step",
               readout="mean output over the first T steps", steps=list(steps),
               accuracy=[accuracy(per_t[t], y) for t in steps], agree=[agreement(per_t[t], own) for t in steps])
    return row


def task_accuracy(a, sj) -> dict:
    relu, cq = load_twins(a.twins)
    x, y, calib_x = load_images(a.twins, a.images)
    xs, steps = split(x, a.batch), sorted(set(a.steps_list))
    own = {"relu": ann_logits(relu, xs), "cqrelu": ann_logits(cq, xs)}
    rows = [{"name": "ANN ReLU twin", "accuracy": accuracy(own["relu"], y)},
            {"name": "ANN CQReLU twin", "accuracy": accuracy(own["cqrelu"], y)}]
    qann = prepared_qann(cq, sj[2], rows)
    if qann is not None:
        rows.append(check_qann(qann, cq, xs, y))
    for name in a.recipes:
        if name == "spikezip" and qann is None:
            continue
        ann, mine = (qann, own["cqrelu"]) if name == "spikezip" else (relu, own["relu"])
        rows.append(guarded(name, accuracy_row, sj, name, ann, mine, xs, y, calib_x, steps, name == "spikezip"))
        if name == "spikezip":  # the constant current the other rows get, for comparison
            rows.append(guarded(name + ", constant input", accuracy_row, sj, name, ann, mine, xs, y, calib_x, steps,
                                False, ", constant input"))
    return {"images": len(x), "batch": a.batch, "steps": steps, "rows": rows}


# ---- task: throughput -----------------------------------------------------------------------------
def timed_pass(fn, xs: list[torch.Tensor]) -> tuple[float, torch.Tensor]:
    """Warm up on one batch, then time one pass over all batches: (seconds, outputs)."""
    fn(xs[0])
    t0 = time.perf_counter()
    outs = [fn(x) for x in xs]
    return time.perf_counter() - t0, torch.cat(outs)


def throughput_rows(sj, name, ann, own, xs, calib, T) -> list[dict]:
    """The single-step loop and the multi-step mode of one conversion, each timed once over all images."""
    ann2snn, functional = sj[0], sj[1]
    snn, _ = convert(ann2snn, name, copy.deepcopy(ann), calib, T)
    delta, n, rows = name == "spikezip", sum(len(x) for x in xs), []
    modes = {"single-step": lambda x: run_single_step(functional, snn, x, T, delta)[0],
             "multi-step": lambda x: run_multi_step(functional, snn, x, T, delta)}
    for mode, fn in modes.items():
        functional.set_step_mode(snn, "m" if mode == "multi-step" else "s")
        label = f"{name}, {mode}"
        try:
            seconds, out = timed_pass(fn, xs)
        except Exception as e:  # noqa: BLE001
            rows.append({"name": label, "error": error_text(e)})
            continue
        row = row_base(name, T)
        row.update(name=label, step_mode=mode[0], seconds=seconds, images_per_s=n / seconds,
                   agree=agreement(out, own), what=f"{RECIPES[name][2]}; {mode}")
        rows.append(row)
    functional.set_step_mode(snn, "s")
    return rows


def vgg11_nets(n: int):
    """(ReLU VGG-11, CQReLU VGG-11 (L = 8)) from tests/models.py (CIFAR-size, generated weights), ``n`` images and
    256 calibration images uniform in [0, 1] (seeds 1 and 0): what vs_spikingjelly.py's VGG-11 rows use too."""
    from tests import models
    relu, shape = models.vgg11(act="relu")
    cq, _ = models.vgg11(act="cqrelu", levels=8)
    x = np.random.default_rng(1).uniform(0, 1, (n, *shape)).astype(np.float32)
    calib = np.random.default_rng(0).uniform(0, 1, (256, *shape)).astype(np.float32)
    return relu.eval(), cq.eval(), torch.from_numpy(x), torch.from_numpy(calib)


def task_throughput(a, sj) -> dict:
    if a.net == "vgg11":
        relu, cq, x, calib_x = vgg11_nets(a.images)
    else:
        relu, cq = load_twins(a.twins)
        x, _, calib_x = load_images(a.twins, a.images)
    xs = split(x, a.batch)
    own = {"relu": ann_logits(relu, xs), "cqrelu": ann_logits(cq, xs)}
    rows: list[dict] = []
    qann = prepared_qann(cq, sj[2], rows)
    for name in a.recipes:
        if name == "spikezip" and qann is None:
            continue
        ann, mine = (qann, own["cqrelu"]) if name == "spikezip" else (relu, own["relu"])
        try:
            rows += throughput_rows(sj, name, ann, mine, xs, calib_x, a.steps)
        except Exception as e:  # noqa: BLE001
            rows.append({"name": name, "error": error_text(e)})
    return {"net": a.net, "images": len(x), "batch": a.batch, "steps": a.steps, "threads": a.threads, "rows": rows}


# ---- task: compile --------------------------------------------------------------------------------
def compile_row(sj, name, model_name, ann, calib, rounds) -> dict:
    """Conversion seconds of one recipe on one model over ``rounds`` (the deep copy outside the timer)."""
    seconds = [convert(sj[0], name, copy.deepcopy(ann), calib, 16)[1] for _ in range(rounds)]
    row = row_base(name, 16)
    row.update(name=f"{name}, {model_name}", model=model_name, rounds=rounds, seconds=float(np.median(seconds)),
               min_s=min(seconds), max_s=max(seconds))
    return row


def resnet18_and_calib():
    from tests import models
    model, shape = models.resnet18(act="relu")
    calib = np.random.default_rng(0).uniform(0, 1, (256, *shape)).astype(np.float32)
    return model.eval(), torch.from_numpy(calib)


def task_compile(a, sj) -> dict:
    relu, cq = load_twins(a.twins)
    calib = load_images(a.twins, 1)[2]
    rows: list[dict] = []
    t0 = time.perf_counter()
    qann = prepared_qann(cq, sj[2], rows)
    if qann is not None:
        rows.append({"name": "CQReLU twin -> SpikeZIP QANN rewrite", "seconds": time.perf_counter() - t0,
                     "what": SPIKEZIP_NOTE})
    r18, r18_calib = resnet18_and_calib()
    for name in a.recipes:
        if name == "spikezip":
            if qann is not None:
                rows.append(guarded(f"{name}, CQReLU twin", compile_row, sj, name, "CQReLU twin", qann, None,
                                    a.rounds))
            continue
        rows.append(guarded(f"{name}, ReLU twin", compile_row, sj, name, "ReLU twin", relu, calib, a.rounds))
        rows.append(guarded(f"{name}, ResNet-18", compile_row, sj, name, "ResNet-18", r18, r18_calib, a.rounds))
    return {"rounds": a.rounds, "rows": rows}


# ---- main -----------------------------------------------------------------------------------------
def int_list(s: str) -> list[int]:
    return [int(v) for v in s.split(",") if v.strip()]


def recipe_list(s: str) -> list[str]:
    names = [v.strip() for v in s.split(",") if v.strip()]
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown recipe(s) {unknown}; known: {', '.join(RECIPES)}")
    return names


def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--twins", required=True, help="folder of relu.pt, cqrelu.pt, test_x/test_y/calib_x.npy")
    ap.add_argument("--task", required=True, choices=("accuracy", "throughput", "compile"))
    ap.add_argument("--out", required=True, help="the JSON file to write")
    ap.add_argument("--images", type=int, default=None,
                    help="test images (default: 512 for accuracy, 1024 for throughput; at most what the folder has)")
    ap.add_argument("--batch", type=int, default=256, help="batch size (default: 256)")
    ap.add_argument("--steps-list", type=int_list, default=[1, 2, 4, 8, 16, 32, 64],
                    help="accuracy: the T to report, comma-separated; one run of max(T) steps (default: 1,...,64)")
    ap.add_argument("--steps", type=int, default=16, help="throughput: time steps T (default: 16)")
    ap.add_argument("--net", choices=("twin", "vgg11"), default="twin", help="throughput: the twins of --twins, "
                    "or the CIFAR-size VGG-11 of tests/models.py with generated weights and random images")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    ap.add_argument("--recipes", type=recipe_list, default=None,
                    help=f"comma-separated, of {', '.join(RECIPES)} (default: all; throughput: all but ltb_b256)")
    ap.add_argument("--ltb-calib-batch", type=int, default=CALIB_BATCH["ltb"],
                    help=f"calibration batch of the ltb recipe (default: {CALIB_BATCH['ltb']}; the others: 256)")
    ap.add_argument("--rounds", type=int, default=3, help="compile: conversions per recipe and model (default: 3)")
    a = ap.parse_args(argv)
    if a.images is None:
        a.images = 1024 if a.task == "throughput" else 512
    if a.recipes is None:
        a.recipes = DEFAULT_RECIPES[a.task]
    CALIB_BATCH["ltb"] = a.ltb_calib_batch
    return a


TASKS = {"accuracy": task_accuracy, "throughput": task_throughput, "compile": task_compile}


def main(argv=None) -> dict:
    a = parse(argv)
    torch.set_num_threads(a.threads)
    ann2snn, functional, layer, ver = import_spikingjelly("ann2snn", "functional", "layer")
    t0 = time.perf_counter()
    body = TASKS[a.task](a, (ann2snn, functional, layer))
    res = {"spikingjelly": ver, "torch": torch.__version__, "python": sys.version.split()[0], "task": a.task,
           "threads": a.threads, **body, "task_s": time.perf_counter() - t0}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()
