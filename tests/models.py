"""Test models, built with torch and exported to ONNX by the tests themselves (no downloads).

``act`` picks the activation: plain ReLU, or a CQReLU written as the standard-op chain a plain
PyTorch export produces (Clip -> Mul -> Floor -> Div). Weights are random with BN statistics
perturbed so that folding BN is a real change.
"""
from __future__ import annotations

import warnings

import torch
from torch import nn


class ChainCQReLU(nn.Module):
    """CQReLU exported as standard ops: (λ/L) * floor(clip(x, 0, λ) * L/λ)."""

    def __init__(self, levels: int = 8, clip: float = 1.0, style: str = "clip-mul-floor-div"):
        super().__init__()
        self.levels, self.clip, self.style = levels, clip, style

    def forward(self, x):
        L, lam = self.levels, self.clip
        if self.style == "clip-mul-floor-div":
            return torch.floor(torch.clamp(x, 0, lam) * (L / lam)) / (L / lam)
        if self.style == "relu-min-div-floor-mul":
            return torch.floor(torch.minimum(torch.relu(x), torch.tensor(lam)) / (lam / L)) * (lam / L)
        if self.style == "unit":  # λ = 1 folded away: clip(0,1) -> *L -> floor -> /L
            return torch.floor(torch.clamp(x, 0, 1) * L) / L
        raise ValueError(self.style)


def make_act(act: str, levels: int = 8, clip: float = 1.0):
    if act == "relu":
        return nn.ReLU()
    if act.startswith("cqrelu"):
        style = act.split(":", 1)[1] if ":" in act else "clip-mul-floor-div"
        return ChainCQReLU(levels, clip, style)
    raise ValueError(act)


def _randomize_bn(model: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(c, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.1)
    return model.eval()


def mlp(act="relu", levels=8, sizes=(64, 48, 32, 10), bn=True, seed=0):
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Flatten()]
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            if bn:
                layers.append(nn.BatchNorm1d(b))
            layers.append(make_act(act, levels))
    return _randomize_bn(nn.Sequential(*layers), seed), (1, 8, 8)


def vgg(act="relu", levels=8, width=8, in_ch=3, hw=16, classes=10, seed=0):
    """conv-bn-act x2, maxpool, conv-bn-act, avgpool, conv-bn-act, flatten, linear."""
    torch.manual_seed(seed)

    def block(a, b):
        return [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), make_act(act, levels)]

    w = width
    feats = [*block(in_ch, w), *block(w, w), nn.MaxPool2d(2), *block(w, 2 * w), nn.AvgPool2d(2),
             *block(2 * w, 2 * w)]
    model = nn.Sequential(*feats, nn.Flatten(), nn.Linear(2 * w * (hw // 4) ** 2, classes))
    return _randomize_bn(model, seed), (in_ch, hw, hw)


def vgg11(act="relu", levels=8, classes=10, seed=0, width=64):
    """CIFAR-sized VGG-11 (conv widths 64..512 at width=64), max pooling, one linear classifier."""
    torch.manual_seed(seed)
    cfg = [1, "M", 2, "M", 4, 4, "M", 8, 8, "M", 8, 8, "M"]
    layers: list[nn.Module] = []
    c = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v * width, 3, padding=1, bias=False), nn.BatchNorm2d(v * width), make_act(act, levels)]
            c = v * width
    model = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c, classes))
    return _randomize_bn(model, seed), (3, 32, 32)


class BasicBlock(nn.Module):
    def __init__(self, a, b, stride, act, levels):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(a, b, 3, stride, 1, bias=False), nn.BatchNorm2d(b)
        self.c2, self.b2 = nn.Conv2d(b, b, 3, 1, 1, bias=False), nn.BatchNorm2d(b)
        self.a1, self.a2 = make_act(act, levels), make_act(act, levels)
        self.short = nn.Sequential()
        if stride != 1 or a != b:
            self.short = nn.Sequential(nn.Conv2d(a, b, 1, stride, bias=False), nn.BatchNorm2d(b))

    def forward(self, x):
        y = self.a1(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return self.a2(y + self.short(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet: stem conv, stages of basic blocks (1x1 projection shortcuts), GAP, FC."""

    def __init__(self, blocks=(1, 1), widths=(8, 16), act="relu", levels=8, in_ch=3, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]),
                                  make_act(act, levels))
        layers, c = [], widths[0]
        for i, (n, w) in enumerate(zip(blocks, widths)):
            for j in range(n):
                layers.append(BasicBlock(c, w, 2 if (j == 0 and i > 0) else 1, act, levels))
                c = w
        self.layers = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.pool(self.layers(self.stem(x)))
        return self.fc(x.view(x.size(0), -1))  # exports a Shape->Gather->Reshape subgraph


def resnet(act="relu", levels=8, blocks=(1, 1), widths=(8, 16), hw=16, seed=0):
    torch.manual_seed(seed)
    return _randomize_bn(ResNet(blocks, widths, act, levels), seed), (3, hw, hw)


def resnet18(act="relu", levels=8, seed=0):
    """ResNet-18 for CIFAR (3x32x32, widths 64..512, [2,2,2,2] blocks): ~11 M parameters."""
    torch.manual_seed(seed)
    return _randomize_bn(ResNet((2, 2, 2, 2), (64, 128, 256, 512), act, levels), seed), (3, 32, 32)


def export(model: nn.Module, in_shape, path, mode: str = "folded", opset: int = 17) -> str:
    """mode 'folded': eval export (BN fused by torch); 'bn': BN kept as BatchNormalization nodes.
    Opsets above 19 (torch 2.3's newest) are reached with onnx's version converter."""
    x = torch.randn(2, *in_shape)
    kw = dict(input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "N"}, "y": {0: "N"}},
              opset_version=min(opset, 17))
    if mode == "bn":
        kw.update(training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, str(path), **kw)
    if opset > 17:
        import onnx
        from onnx import version_converter

        onnx.save(version_converter.convert_version(onnx.load(str(path)), opset), str(path))
    return str(path)
