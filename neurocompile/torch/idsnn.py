"""IDSNN kit (science.md section 2): initialize a spiking student from an ANN, distill, train.

- :func:`init_student_from_teacher`: block-level mapping plus loop interpolation of channels;
- :func:`distillation_loss`: CE + α T² KL(softmax(t/T) || softmax(s/T));
- :func:`fit` (resumable per-epoch checkpoints, cosine decay, accuracy per epoch), :func:`train` (its plain
  form), :func:`evaluate`: SGD loops with a tqdm progress bar.
The models themselves live in :mod:`neurocompile.torch.resnet` and are re-exported here.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from neurocompile.torch.resnet import BasicBlock, ResNet, SpikingResNet, resnet, spiking_resnet

__all__ = ["resnet", "spiking_resnet", "ResNet", "SpikingResNet", "loop_interpolate", "init_student_from_teacher",
           "distillation_loss", "History", "fit", "train", "evaluate"]


# ---- initialization -------------------------------------------------------------------------------
def loop_interpolate(teacher: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The teacher tensor resized to ``shape`` by looping over its first two axes.

    Guarantee: out[k, c, ...] = teacher[k mod C_out, c mod C_in, ...] (for a 1-D tensor
    out[k] = teacher[k mod C]); the remaining axes (kernel) must be equal.
    """
    shape = tuple(int(d) for d in shape)
    if teacher.dim() != len(shape) or tuple(teacher.shape[2:]) != shape[2:]:
        raise ValueError(f"cannot loop-interpolate a tensor of shape {tuple(teacher.shape)} to {shape}: "
                         "rank and kernel size must agree")
    out = teacher.index_select(0, torch.arange(shape[0], device=teacher.device) % teacher.shape[0])
    if len(shape) > 1:
        out = out.index_select(1, torch.arange(shape[1], device=teacher.device) % teacher.shape[1])
    return out.clone()


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, where: str) -> None:
    if dst.kernel_size != src.kernel_size:
        raise ValueError(f"{where}: kernel sizes differ (student {dst.kernel_size}, teacher {src.kernel_size})")
    if dst.groups != 1 or src.groups != 1:
        raise ValueError(f"{where}: grouped convolutions are not supported")
    dst.weight.copy_(loop_interpolate(src.weight, dst.weight.shape))
    if dst.bias is not None and src.bias is not None:
        dst.bias.copy_(loop_interpolate(src.bias, dst.bias.shape))


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        d, s = getattr(dst, name), getattr(src, name)
        if d is not None and s is not None:
            d.copy_(loop_interpolate(s, d.shape))


def _copy_block(dst: BasicBlock, src: BasicBlock, where: str) -> None:
    _copy_conv(dst.conv1, src.conv1, f"{where}.conv1")
    _copy_bn(dst.bn1, src.bn1)
    _copy_conv(dst.conv2, src.conv2, f"{where}.conv2")
    _copy_bn(dst.bn2, src.bn2)
    if len(dst.shortcut):
        if not len(src.shortcut):
            raise ValueError(f"{where}: the student block has a projection shortcut, the teacher block has none")
        _copy_conv(dst.shortcut[0], src.shortcut[0], f"{where}.shortcut")
        _copy_bn(dst.shortcut[1], src.shortcut[1])


def init_student_from_teacher(teacher: nn.Module, student: nn.Module) -> nn.Module:
    """Initialize ``student`` from ``teacher`` in place (both built by ``resnet`` / ``spiking_resnet``,
    ANN or spiking, any widths) and return the student.

    Block level: within stage i, student block j takes teacher block j (the teacher needs at least as
    many blocks per stage). Each conv by :func:`loop_interpolate` (output channel k <- teacher channel
    k mod C_out, input channel c <- c mod C_in); BN weight, bias, running mean and variance likewise;
    the stem the same way. The final FC keeps its random initialization.
    Raises ValueError for models of another layout, a different number of stages, too few teacher
    blocks, different kernel sizes, or a student projection shortcut the teacher lacks.
    """
    for role, m in (("teacher", teacher), ("student", student)):
        if not isinstance(m, ResNet):
            raise ValueError(f"the {role} is a {type(m).__name__}, not a neurocompile.torch ResNet "
                             "(build it with resnet() or spiking_resnet())")
    if len(teacher.stages) != len(student.stages):
        raise ValueError(f"the teacher has {len(teacher.stages)} stages, the student {len(student.stages)}: "
                         "block-level mapping needs the same number")
    for i, (ts, ss) in enumerate(zip(teacher.stages, student.stages)):
        if len(ts) < len(ss):
            raise ValueError(f"stage {i}: the teacher has {len(ts)} blocks, the student needs {len(ss)}")
    with torch.no_grad():
        _copy_conv(student.stem_conv, teacher.stem_conv, "stem_conv")
        _copy_bn(student.stem_bn, teacher.stem_bn)
        for i, (ts, ss) in enumerate(zip(teacher.stages, student.stages)):
            for j, block in enumerate(ss):
                _copy_block(block, ts[j], f"stages.{i}.{j}")
    return student


# ---- distillation ---------------------------------------------------------------------------------
def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      alpha: float = 0.3, T_kd: float = 4.0) -> torch.Tensor:
    """L = CE(Q_s, y) + α T_kd² KL(softmax(Q_t/T_kd) || softmax(Q_s/T_kd)), both terms averaged over
    the batch. The teacher's logits are a constant (detached). The reference code uses T_kd = T (4)."""
    ce = F.cross_entropy(student_logits, labels)
    kl = F.kl_div(F.log_softmax(student_logits / T_kd, dim=1), F.softmax(teacher_logits.detach() / T_kd, dim=1),
                  reduction="batchmean")
    return ce + alpha * T_kd ** 2 * kl


# ---- training -------------------------------------------------------------------------------------
@dataclass
class History:
    """Per finished epoch: the mean training loss, the accuracy on ``eval_loader`` (None without one) and the
    seconds the epoch took (training and evaluation)."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.loss)


def _save(path: str, state: dict) -> None:
    """torch.save through a temporary file and os.replace: an interrupted save never leaves half a checkpoint."""
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def fit(model: nn.Module, loader: Iterable, epochs: int, teacher: nn.Module | None = None, lr: float = 0.05,
        momentum: float = 0.9, weight_decay: float = 1e-4, alpha: float = 0.3, T_kd: float = 4.0,
        cosine: bool = False, eval_loader: Iterable | None = None, checkpoint: str | os.PathLike | None = None,
        device: str | torch.device | None = None, progress: bool = True, desc: str = "") -> History:
    """Train ``model`` with SGD (momentum, weight decay) on (inputs, labels) batches for ``epochs`` epochs and
    return its :class:`History`. With a ``teacher`` (kept in eval mode, no gradients) the loss is
    :func:`distillation_loss`, else cross entropy. ``cosine`` decays the learning rate to 0 over all steps
    (CosineAnnealingLR stepped per batch). ``eval_loader``: the accuracy after each epoch.

    ``checkpoint``: after each epoch the model, optimizer, scheduler, the RNG states (torch's, CUDA's on a CUDA
    device, the loader's generator where it has one), the history and the options are saved there (atomically);
    a later call with the same file resumes after the last saved epoch, so an interrupted run continues where it
    stopped, as if never interrupted, and a finished one returns at once. A checkpoint of other options (epochs,
    learning rate, schedule, distillation, batches per epoch, evaluation) raises ValueError naming the first that
    differs. Leaves the model in train mode.
    """
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    if teacher is not None:
        teacher.to(device).eval()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs * len(loader), 1)) if cosine else None
    config = {"epochs": epochs, "lr": lr, "momentum": momentum, "weight_decay": weight_decay, "cosine": cosine,
              "distillation": (alpha, T_kd) if teacher is not None else None, "batches": len(loader),
              "evaluation": eval_loader is not None}
    run = _Resumable(model, opt, sched, getattr(loader, "generator", None), device, config)
    history = run.restore(checkpoint) if checkpoint is not None and os.path.exists(checkpoint) else History()
    for epoch in range(history.epochs, epochs):
        t0 = time.perf_counter()
        total, count = 0.0, 0
        bar = tqdm(loader, desc=f"{desc}epoch {epoch + 1}/{epochs}", disable=not progress, leave=False)
        for x, y in bar:
            x, y = x.to(device), y.to(device)
            out = model(x)
            if teacher is not None:
                with torch.no_grad():
                    t = teacher(x)
                loss = distillation_loss(out, t, y, alpha, T_kd)
            else:
                loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total, count = total + float(loss) * len(y), count + len(y)
            bar.set_postfix(loss=f"{total / count:.4f}")
        history.loss.append(total / max(count, 1))
        history.accuracy.append(evaluate(model, eval_loader, device) if eval_loader is not None else None)
        history.seconds.append(time.perf_counter() - t0)
        if checkpoint is not None:
            _save(str(checkpoint), run.snapshot(history))
    return history


@dataclass
class _Resumable:
    """Everything a training run carries from one epoch to the next, saved and restored as one dict."""

    model: nn.Module
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler | None
    generator: torch.Generator | None
    device: torch.device
    config: dict

    def snapshot(self, history: History) -> dict:
        return {"config": self.config, "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict() if self.sched is not None else None,
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
                "generator": self.generator.get_state() if self.generator is not None else None,
                "history": asdict(history)}

    def restore(self, path: str | os.PathLike) -> History:
        state = torch.load(path, map_location=self.device)
        saved = state.get("config", {})
        for key, want in self.config.items():
            if saved.get(key) != want:
                raise ValueError(f"{path}: a checkpoint of a run with {key} = {saved.get(key)!r}, this run has "
                                 f"{want!r}; delete the file or pass the same options")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        if self.sched is not None:
            self.sched.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"].cpu())
        if state.get("cuda_rng") is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        if self.generator is not None and state.get("generator") is not None:
            self.generator.set_state(state["generator"].cpu())
        return History(**state["history"])


def train(model: nn.Module, loader: Iterable, epochs: int, teacher: nn.Module | None = None, lr: float = 0.05,
          momentum: float = 0.9, weight_decay: float = 1e-4, alpha: float = 0.3, T_kd: float = 4.0,
          device: str | torch.device | None = None, progress: bool = True) -> list[float]:
    """:func:`fit` at a constant learning rate, without evaluation or checkpoint: the mean training loss of
    each epoch. Leaves the model in train mode."""
    return fit(model, loader, epochs, teacher, lr, momentum, weight_decay, alpha, T_kd, device=device,
               progress=progress).loss


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: str | torch.device | None = None) -> float:
    """Top-1 accuracy of ``model`` (in eval mode; its training flag is restored) over ``loader``."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = total = 0
    try:
        for x, y in loader:
            pred = model(x.to(device)).argmax(1)
            correct += int((pred == y.to(device)).sum())
            total += len(y)
    finally:
        model.train(was_training)
    return correct / max(total, 1)
