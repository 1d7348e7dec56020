"""CIFAR-10 ResNets and their plain twins: He et al., "Deep Residual Learning for Image
Recognition" (CVPR 2016), Section 4.2.

Seed idea: the degradation experiment. A plain net (``shortcut="none"``) gets *worse* as it
deepens from 20 to 56 layers, while the same net with parameter-free identity shortcuts
(option A) keeps improving, up to 110 layers; option A adds no parameters, so the two have the
same size. Layout: 3x3 conv (16) + BN + ReLU, three stages of n basic blocks with 16/32/64
channels (stride 2 at the start of stages 2 and 3), global average pool, fc; depth = 6n + 2.
Blocks, shortcuts and init are shared with ``resnet.py``.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from .registry import Option, num_classes_option, register_model, resolve_options
from .resnet import PAPER, SHORTCUT_OPTION, BasicBlock, conv3x3, init_weights, make_layer

CIFAR_INPUT = (1, 3, 32, 32)

DEPTH_OPTION = Option(
    20,
    int,
    "total depth 6n + 2 (n basic blocks per stage)",
    check=lambda d: d >= 8 and (d - 2) % 6 == 0,
    constraint="depth = 6n + 2 with n >= 1 (8, 14, 20, 26, 32, ..., 56, ..., 110)",
    name="depth",
)


class CifarResNet(nn.Module):
    """The paper's CIFAR-10 network with 6n + 2 layers (Section 4.2 table)."""

    def __init__(self, depth: int = 20, shortcut: str = "A", num_classes: int = 10) -> None:
        super().__init__()
        DEPTH_OPTION.validate(depth, "CifarResNet")
        n = (depth - 2) // 6
        self.depth = depth
        self.shortcut = shortcut
        self.conv1 = conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1, c = make_layer(BasicBlock, 16, 16, n, 1, shortcut)
        self.layer2, c = make_layer(BasicBlock, c, 32, n, 2, shortcut)
        self.layer3, c = make_layer(BasicBlock, c, 64, n, 2, shortcut)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(c, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 16, 32, 32)
        x = self.layer1(x)  # (B, 16, 32, 32)
        x = self.layer2(x)  # (B, 32, 16, 16)
        x = self.layer3(x)  # (B, 64, 8, 8)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)  # (B, 64)
        return self.fc(x)


_RESNET_OPTIONS = {
    "shortcut": replace(SHORTCUT_OPTION, default="A"),  # the paper's choice on CIFAR
    "num_classes": num_classes_option(10),
}
_PLAIN_OPTIONS = {"num_classes": num_classes_option(10)}
_CIFAR_OPTIONS = {"depth": DEPTH_OPTION, **_RESNET_OPTIONS}
_RESNET_REG = {"family": "resnet_cifar", "input_size": CIFAR_INPUT, "paper": PAPER}


@register_model("resnet_cifar", **_RESNET_REG, options=_CIFAR_OPTIONS)
def resnet_cifar(*, depth: int = 20, shortcut: str = "A", num_classes: int = 10) -> CifarResNet:
    """CIFAR-10 ResNet of any depth 6n + 2 (He et al. 2016, Sec. 4.2): identity shortcuts let
    depth keep helping where the plain net degrades."""
    cfg = {"depth": depth, "shortcut": shortcut, "num_classes": num_classes}
    cfg = resolve_options("resnet_cifar", _CIFAR_OPTIONS, cfg)
    return CifarResNet(**cfg)


@register_model("resnet20", **_RESNET_REG, options=_RESNET_OPTIONS)
def resnet20(*, shortcut: str = "A", num_classes: int = 10) -> CifarResNet:
    """ResNet-20 for CIFAR-10 (He et al. 2016, Sec. 4.2): n = 3, 0.27M params, option A
    identity shortcuts."""
    return resnet_cifar(depth=20, shortcut=shortcut, num_classes=num_classes)


@register_model("resnet32", **_RESNET_REG, options=_RESNET_OPTIONS)
def resnet32(*, shortcut: str = "A", num_classes: int = 10) -> CifarResNet:
    """ResNet-32 for CIFAR-10 (He et al. 2016, Sec. 4.2): n = 5, 0.46M params."""
    return resnet_cifar(depth=32, shortcut=shortcut, num_classes=num_classes)


@register_model("resnet44", **_RESNET_REG, options=_RESNET_OPTIONS)
def resnet44(*, shortcut: str = "A", num_classes: int = 10) -> CifarResNet:
    """ResNet-44 for CIFAR-10 (He et al. 2016, Sec. 4.2): n = 7, 0.66M params."""
    return resnet_cifar(depth=44, shortcut=shortcut, num_classes=num_classes)


@register_model("resnet56", **_RESNET_REG, options=_RESNET_OPTIONS)
def resnet56(*, shortcut: str = "A", num_classes: int = 10) -> CifarResNet:
    """ResNet-56 for CIFAR-10 (He et al. 2016, Sec. 4.2): n = 9, 0.85M params; beats plain-56,
    which is worse than plain-20."""
    return resnet_cifar(depth=56, shortcut=shortcut, num_classes=num_classes)


@register_model("resnet110", **_RESNET_REG, options=_RESNET_OPTIONS)
def resnet110(*, shortcut: str = "A", num_classes: int = 10) -> CifarResNet:
    """ResNet-110 for CIFAR-10 (He et al. 2016, Sec. 4.2): n = 18, 1.7M params."""
    return resnet_cifar(depth=110, shortcut=shortcut, num_classes=num_classes)


@register_model("plain20", **_RESNET_REG, options=_PLAIN_OPTIONS)
def plain20(*, num_classes: int = 10) -> CifarResNet:
    """Plain 20-layer CIFAR-10 net (He et al. 2016, Sec. 4.2): resnet20 without shortcuts,
    the baseline of the degradation experiment."""
    return resnet_cifar(depth=20, shortcut="none", num_classes=num_classes)


@register_model("plain32", **_RESNET_REG, options=_PLAIN_OPTIONS)
def plain32(*, num_classes: int = 10) -> CifarResNet:
    """Plain 32-layer CIFAR-10 net (He et al. 2016, Sec. 4.2): resnet32 without shortcuts."""
    return resnet_cifar(depth=32, shortcut="none", num_classes=num_classes)


@register_model("plain44", **_RESNET_REG, options=_PLAIN_OPTIONS)
def plain44(*, num_classes: int = 10) -> CifarResNet:
    """Plain 44-layer CIFAR-10 net (He et al. 2016, Sec. 4.2): resnet44 without shortcuts."""
    return resnet_cifar(depth=44, shortcut="none", num_classes=num_classes)


@register_model("plain56", **_RESNET_REG, options=_PLAIN_OPTIONS)
def plain56(*, num_classes: int = 10) -> CifarResNet:
    """Plain 56-layer CIFAR-10 net (He et al. 2016, Sec. 4.2): deeper, yet higher training
    error than plain20 (degradation)."""
    return resnet_cifar(depth=56, shortcut="none", num_classes=num_classes)


@register_model("plain110", **_RESNET_REG, options=_PLAIN_OPTIONS)
def plain110(*, num_classes: int = 10) -> CifarResNet:
    """Plain 110-layer CIFAR-10 net (He et al. 2016, Sec. 4.2): resnet110 without shortcuts."""
    return resnet_cifar(depth=110, shortcut="none", num_classes=num_classes)
