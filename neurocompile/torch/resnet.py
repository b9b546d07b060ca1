"""CIFAR-style ResNets: the ANN teacher and its spiking (LIF) student with the same topology.

Both share one layout, which is what IDSNN's initialization maps between: ``stem_conv``,
``stem_bn``, ``stem_act``; ``stages`` (a ModuleList of nn.Sequential of BasicBlocks with ``conv1``,
``bn1``, ``act1``, ``conv2``, ``bn2``, ``act2`` and ``shortcut``: empty, or a 1x1 conv and a BN);
``pool``, ``fc``. Stage i has ``width * 2**i`` channels and stride 2 except stage 0.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from neurocompile.torch._mode import per_step, step_mode
from neurocompile.torch.modules import LIF

DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}

Activation = Callable[[], nn.Module]


class BasicBlock(nn.Module):
    """conv3x3-BN-act-conv3x3-BN, plus the shortcut, then act. With ``spiking`` the tensors carry a
    leading time axis (T, N, C, H, W): convs and BNs run per step, the activations are neurons."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: Activation, spiking: bool = False):
        super().__init__()
        self.spiking = spiking
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = act()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = act()
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return per_step(fn, x) if self.spiking else fn(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self._map(lambda z: self.bn1(self.conv1(z)), x))
        y = self._map(lambda z: self.bn2(self.conv2(z)), y)
        return self.act2(y + self._map(self.shortcut, x))


class ResNet(nn.Module):
    """The ANN: stem conv3x3-BN-ReLU (no max pool, CIFAR style), stages, global average pool, FC."""

    spiking = False

    def __init__(self, blocks: Sequence[int], num_classes: int = 10, in_channels: int = 3, width: int = 64,
                 act: Activation = nn.ReLU):
        super().__init__()
        if not blocks or any(int(b) < 1 for b in blocks):
            raise ValueError(f"blocks must list at least one stage of >= 1 blocks, got {list(blocks)}")
        self.blocks = tuple(int(b) for b in blocks)
        self.stem_conv = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(width)
        self.stem_act = act()
        stages, c = [], width
        for i, n in enumerate(self.blocks):
            w = width * 2 ** i
            stages.append(nn.Sequential(*[BasicBlock(c if j == 0 else w, w, 2 if (i > 0 and j == 0) else 1, act,
                                                     self.spiking) for j in range(n)]))
            c = w
        self.stages = nn.ModuleList(stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem_act(self.stem_bn(self.stem_conv(x)))
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


class SpikingResNet(ResNet):
    """The IDSNN student: the ResNet with LIF neurons in place of ReLU, BN shared over time.

    Input: images (N, C, H, W), direct encoding (the image is the input current on each of the
    ``time_steps`` steps). Output: the mean over time of the final Linear layer, (N, classes).
    In export mode the forward pass is one step: image in, that step's FC output out.
    """

    spiking = True

    def __init__(self, blocks: Sequence[int], num_classes: int = 10, in_channels: int = 3, width: int = 64,
                 time_steps: int = 4, beta: float = 0.25, threshold: float = 0.5, lens: float = 0.5):
        if int(time_steps) < 1:
            raise ValueError(f"time_steps must be >= 1, got {time_steps}")
        super().__init__(blocks, num_classes, in_channels, width, act=lambda: LIF(beta, threshold, lens))
        self.time_steps = int(time_steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if step_mode():
            return super().forward(x)
        x = x.unsqueeze(0).expand(self.time_steps, *x.shape)  # direct encoding
        y = self.stem_act(per_step(lambda z: self.stem_bn(self.stem_conv(z)), x))
        for stage in self.stages:
            y = stage(y)
        return per_step(lambda z: self.fc(torch.flatten(self.pool(z), 1)), y).mean(0)


def _blocks(depth: int | None, blocks: Sequence[int] | None) -> tuple[int, ...]:
    if blocks is not None:
        return tuple(int(b) for b in blocks)
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {sorted(DEPTHS)} (or pass blocks=...), got {depth}")
    return DEPTHS[depth]


def resnet(depth: int | None = 18, num_classes: int = 10, in_channels: int = 3, width: int = 64,
           blocks: Sequence[int] | None = None) -> ResNet:
    """CIFAR ResNet-18 ([2,2,2,2]) or -34 ([3,4,6,3]) with ReLU; ``blocks`` overrides the stages
    (e.g. (1, 1) with width 4 for a tiny digits model). Use ``replace_relu`` for a CQReLU teacher."""
    return ResNet(_blocks(depth, blocks), num_classes, in_channels, width)


def spiking_resnet(depth: int | None = 18, num_classes: int = 10, in_channels: int = 3, width: int = 64,
                   blocks: Sequence[int] | None = None, time_steps: int = 4, beta: float = 0.25,
                   threshold: float = 0.5, lens: float = 0.5) -> SpikingResNet:
    """The spiking student of the same topology as ``resnet(depth, ...)``, LIF(beta, threshold, lens)."""
    return SpikingResNet(_blocks(depth, blocks), num_classes, in_channels, width, time_steps, beta, threshold, lens)
