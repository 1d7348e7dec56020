"""ResNet: He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition" (CVPR 2016).

Seed idea: let each block learn a residual F(x) and add the input back, ``out = F(x) + x``, so
depth no longer degrades training; plain nets of the same depth (``shortcut="none"``) do worse.
The paper's three shortcut options (Section 3.3) are all here:

* ``"A"``: parameter-free: identity, and where the shape changes, stride-2 subsampling plus
  zero-padded extra channels (``PadShortcut``);
* ``"B"``: identity, 1x1 projection + BN only where the shape changes (torchvision's default);
* ``"C"``: 1x1 projection + BN on every block;
* ``"none"``: no shortcut at all (the paper's "plain" networks).

Layout and state_dict keys follow torchvision (bottleneck nets are "v1.5": stride on the 3x3).
The block and shortcut code here is shared with the CIFAR nets in ``cifar.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Option, ZooError, is_meta, num_classes_option, register_model, resolve_options

PAPER = "He et al. 2016, Deep Residual Learning for Image Recognition"

SHORTCUTS = ("none", "A", "B", "C")


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1, no bias (a BN follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias (a BN follows)."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class PadShortcut(nn.Module):
    """Shortcut option A: parameter-free identity for a block that changes shape.

    Subsamples with ``x[:, :, ::stride, ::stride]`` (matching a stride-``stride`` conv's output
    size, ceil(H / stride)) and zero-pads the new channels at the end with ``F.pad``. It has no
    parameters and no MACs; it is ordinary tensor ops in ``forward``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"PadShortcut cannot shrink channels ({in_channels} -> {out_channels})"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]  # (B, C_in, ceil(H/s), ceil(W/s))
        extra = self.out_channels - self.in_channels
        if extra:
            x = F.pad(x, (0, 0, 0, 0, 0, extra))  # (B, C_out, H', W'), new channels are 0
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34 and the CIFAR nets). ``residual=False`` makes it plain."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)  # one module, called twice, as in torchvision
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            identity = x if self.downsample is None else self.downsample(x)
            out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carries the stride: "v1.5"), 1x1 expand by 4 (ResNet-50/101/152)."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            identity = x if self.downsample is None else self.downsample(x)
            out += identity
        return self.relu(out)


Block = type[BasicBlock] | type[Bottleneck]
BLOCKS: dict[str, Block] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def check_shortcut(shortcut: str) -> str:
    if shortcut not in SHORTCUTS:
        valid = ", ".join(repr(s) for s in SHORTCUTS)
        raise ZooError(f"option 'shortcut': bad value {shortcut!r}; valid choices: {valid}")
    return shortcut


def make_layer(
    block: Block, inplanes: int, planes: int, blocks: int, stride: int, shortcut: str
) -> tuple[nn.Sequential, int]:
    """One stage of ``blocks`` blocks; returns it and its output channels.

    The one place where the shortcut type is decided: each block gets an injected
    ``downsample`` module (``PadShortcut``, a 1x1 projection + BN, or None for identity) and,
    for ``"none"``, ``residual=False``.
    """
    check_shortcut(shortcut)
    layers = []
    for i in range(blocks):
        s = stride if i == 0 else 1
        out = planes * block.expansion
        reshapes = s != 1 or inplanes != out
        downsample: nn.Module | None = None
        if shortcut == "A" and reshapes:
            downsample = PadShortcut(inplanes, out, s)
        elif (shortcut == "B" and reshapes) or shortcut == "C":
            downsample = nn.Sequential(conv1x1(inplanes, out, s), nn.BatchNorm2d(out))
        layers.append(block(inplanes, planes, s, downsample, residual=shortcut != "none"))
        inplanes = out
    return nn.Sequential(*layers), inplanes


def init_weights(model: nn.Module, zero_init_residual: bool = False) -> None:
    """torchvision's ResNet init (He et al. 2015 "fan_out" for convs, BN = identity).

    Skipped on the meta device (nothing to fill). ``zero_init_residual`` zeroes each block's
    last BN so every block starts as the identity.
    """
    if is_meta(model):
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    if zero_init_residual:
        for m in model.modules():
            if isinstance(m, Bottleneck):
                nn.init.constant_(m.bn3.weight, 0)
            elif isinstance(m, BasicBlock):
                nn.init.constant_(m.bn2.weight, 0)


class ResNet(nn.Module):
    """torchvision's ImageNet ResNet, with a ``shortcut`` switch ("none", "A", "B", "C")."""

    def __init__(
        self,
        block: Block | str,
        layers: Sequence[int],
        num_classes: int = 1000,
        zero_init_residual: bool = False,
        shortcut: str = "B",
    ) -> None:
        super().__init__()
        if isinstance(block, str):
            if block not in BLOCKS:
                valid = ", ".join(repr(b) for b in BLOCKS)
                raise ZooError(f"option 'block': bad value {block!r}; valid choices: {valid}")
            block = BLOCKS[block]
        self.shortcut = check_shortcut(shortcut)
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)
        init_weights(self, zero_init_residual)

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int = 1) -> nn.Sequential:
        layer, self.inplanes = make_layer(
            block, self.inplanes, planes, blocks, stride, self.shortcut
        )
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))  # (B, 64, 112, 112) at 224
        x = self.maxpool(x)  # (B, 64, 56, 56)
        x = self.layer1(x)  # (B, 64 * e, 56, 56), e = block.expansion
        x = self.layer2(x)  # (B, 128 * e, 28, 28)
        x = self.layer3(x)  # (B, 256 * e, 14, 14)
        x = self.layer4(x)  # (B, 512 * e, 7, 7)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)  # (B, 512 * e)
        return self.fc(x)


SHORTCUT_OPTION = Option(
    "B",
    str,
    "shortcut type (He et al. 2016 Sec. 3.3): none = plain net, A = zero-pad identity, "
    "B = projection where the shape changes, C = projection everywhere",
    choices=SHORTCUTS,
)


def _options(block: str) -> dict[str, Option]:
    return {
        "block": Option(block, str, "residual block type", choices=tuple(BLOCKS)),
        "shortcut": SHORTCUT_OPTION,
        "num_classes": num_classes_option(1000),
        "zero_init_residual": Option(
            False, bool, "zero the last BN of each block so blocks start as identities"
        ),
    }


_BASIC, _BOTTLENECK = _options("basic"), _options("bottleneck")


def _reg(options: dict[str, Option]) -> dict:
    return {"family": "resnet", "input_size": (1, 3, 224, 224), "paper": PAPER, "options": options}


def _resnet(name: str, layers: Sequence[int], options: dict[str, Option], **config) -> ResNet:
    cfg = resolve_options(name, options, config)  # same checks when called without get_model
    return ResNet(
        BLOCKS[cfg["block"]],
        layers,
        num_classes=cfg["num_classes"],
        zero_init_residual=cfg["zero_init_residual"],
        shortcut=cfg["shortcut"],
    )


@register_model("resnet18", **_reg(_BASIC))
def resnet18(
    *,
    block: str = "basic",
    shortcut: str = "B",
    num_classes: int = 1000,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-18 (He et al. 2016): basic blocks [2, 2, 2, 2] with identity shortcuts,
    out = F(x) + x."""
    cfg = {"num_classes": num_classes, "zero_init_residual": zero_init_residual}
    return _resnet("resnet18", [2, 2, 2, 2], _BASIC, block=block, shortcut=shortcut, **cfg)


@register_model("resnet34", **_reg(_BASIC))
def resnet34(
    *,
    block: str = "basic",
    shortcut: str = "B",
    num_classes: int = 1000,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-34 (He et al. 2016): basic blocks [3, 4, 6, 3]; deeper than its plain twin yet
    easier to train."""
    cfg = {"num_classes": num_classes, "zero_init_residual": zero_init_residual}
    return _resnet("resnet34", [3, 4, 6, 3], _BASIC, block=block, shortcut=shortcut, **cfg)


@register_model("resnet50", **_reg(_BOTTLENECK))
def resnet50(
    *,
    block: str = "bottleneck",
    shortcut: str = "B",
    num_classes: int = 1000,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-50 (He et al. 2016): bottleneck blocks [3, 4, 6, 3]; 1x1 convs shrink and restore
    the width around each 3x3."""
    cfg = {"num_classes": num_classes, "zero_init_residual": zero_init_residual}
    return _resnet("resnet50", [3, 4, 6, 3], _BOTTLENECK, block=block, shortcut=shortcut, **cfg)


@register_model("resnet101", **_reg(_BOTTLENECK))
def resnet101(
    *,
    block: str = "bottleneck",
    shortcut: str = "B",
    num_classes: int = 1000,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-101 (He et al. 2016): bottleneck blocks [3, 4, 23, 3]."""
    cfg = {"num_classes": num_classes, "zero_init_residual": zero_init_residual}
    return _resnet("resnet101", [3, 4, 23, 3], _BOTTLENECK, block=block, shortcut=shortcut, **cfg)


@register_model("resnet152", **_reg(_BOTTLENECK))
def resnet152(
    *,
    block: str = "bottleneck",
    shortcut: str = "B",
    num_classes: int = 1000,
    zero_init_residual: bool = False,
) -> ResNet:
    """ResNet-152 (He et al. 2016): bottleneck blocks [3, 8, 36, 3]; still fewer MACs than
    VGG-16/19."""
    cfg = {"num_classes": num_classes, "zero_init_residual": zero_init_residual}
    return _resnet("resnet152", [3, 8, 36, 3], _BOTTLENECK, block=block, shortcut=shortcut, **cfg)
