"""VGG: Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition" (ICLR 2015).

Seed idea: use only 3x3 convs. A stack of two 3x3 convs sees 5x5, three see 7x7, with fewer
weights (3 * 9 C^2 = 27 C^2 instead of 49 C^2) and one ReLU per conv, so more non-linearity
(Section 2.3). Depth then grows by repeating the stack: configurations A/B/D/E = VGG-11/13/16/19.
Layout and state_dict keys follow torchvision (``features``/``avgpool``/``classifier``).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import Option, dropout_option, is_meta, num_classes_option, register_model

PAPER = "Simonyan & Zisserman 2015, Very Deep Convolutional Networks"

# Table 1 of the paper: channels per 3x3 conv, "M" = 2x2 max pool.
# fmt: off
CFGS: dict[str, list[int | str]] = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
          512, 512, 512, 512, "M", 512, 512, 512, 512, "M"],
}
# fmt: on


def make_layers(cfg: list[int | str], batch_norm: bool = False) -> nn.Sequential:
    """Conv3x3(p=1) [+ BatchNorm2d] + ReLU per number, MaxPool2d(2, 2) per "M"."""
    layers: list[nn.Module] = []
    in_channels = 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        assert isinstance(v, int)
        layers.append(nn.Conv2d(in_channels, v, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(v))
        layers.append(nn.ReLU(inplace=True))
        in_channels = v
    return nn.Sequential(*layers)


class VGG(nn.Module):
    """torchvision's VGG: ``features``, 7x7 adaptive pool, three fully connected layers."""

    def __init__(self, features: nn.Module, num_classes: int = 1000, dropout: float = 0.5):
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(512 * 7 * 7, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )
        for m in [] if is_meta(self) else self.modules():  # torchvision's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 512, 7, 7) at 224
        x = self.avgpool(x)
        x = torch.flatten(x, 1)  # (B, 25088)
        return self.classifier(x)


def _vgg(cfg: str, batch_norm: bool, num_classes: int, dropout: float) -> VGG:
    return VGG(make_layers(CFGS[cfg], batch_norm), num_classes=num_classes, dropout=dropout)


_OPTIONS = {
    "batch_norm": Option(False, bool, "BatchNorm2d after every conv (torchvision's vggNN_bn)"),
    "num_classes": num_classes_option(1000),
    "dropout": dropout_option(0.5),
}
_REG = {"family": "vgg", "input_size": (1, 3, 224, 224), "paper": PAPER, "options": _OPTIONS}


@register_model("vgg11", **_REG)
def vgg11(*, batch_norm: bool = False, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-11, configuration A (Simonyan & Zisserman 2015): only 3x3 convs, 8 conv layers."""
    return _vgg("A", batch_norm, num_classes, dropout)


@register_model("vgg13", **_REG)
def vgg13(*, batch_norm: bool = False, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-13, configuration B (Simonyan & Zisserman 2015): pairs of 3x3 convs see 5x5."""
    return _vgg("B", batch_norm, num_classes, dropout)


@register_model("vgg16", **_REG)
def vgg16(*, batch_norm: bool = False, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-16, configuration D (Simonyan & Zisserman 2015): triples of 3x3 convs see 7x7."""
    return _vgg("D", batch_norm, num_classes, dropout)


@register_model("vgg19", **_REG)
def vgg19(*, batch_norm: bool = False, num_classes: int = 1000, dropout: float = 0.5) -> VGG:
    """VGG-19, configuration E (Simonyan & Zisserman 2015): four 3x3 convs per late stage."""
    return _vgg("E", batch_norm, num_classes, dropout)
