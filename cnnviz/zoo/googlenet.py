"""GoogLeNet (Inception v1): Szegedy et al., "Going Deeper with Convolutions" (CVPR 2015).

Seed idea: the Inception module runs 1x1, 3x3, 5x5 convs and a pooled branch side by side and
concatenates them; 1x1 "reduction" convs before the big kernels keep the cost down, so a
22-layer net needs only ~1.5 G multiply-adds and ~6.6M params (12x fewer than AlexNet).

Layout and state_dict keys follow torchvision, including its long-standing quirk: the "5x5"
branch uses a 3x3 kernel (``five_by_five=True`` restores the paper's real 5x5).
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Option, dropout_option, is_meta, num_classes_option, register_model

PAPER = "Szegedy et al. 2015, Going Deeper with Convolutions"

GoogLeNetOutputs = namedtuple("GoogLeNetOutputs", ["logits", "aux_logits2", "aux_logits1"])


class BasicConv2d(nn.Module):
    """Conv (no bias) + BatchNorm2d(eps=0.001) + ReLU, as in torchvision."""

    def __init__(self, in_channels: int, out_channels: int, **kwargs: Any) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception(nn.Module):
    """Four parallel branches concatenated on channels (Figure 2b of the paper).

    branch1: 1x1; branch2: 1x1 reduce then 3x3; branch3: 1x1 reduce then "5x5" (3x3 p1 as in
    torchvision unless ``five_by_five``); branch4: 3x3 max pool (stride 1) then 1x1 projection.
    """

    def __init__(
        self,
        in_channels: int,
        ch1x1: int,
        ch3x3red: int,
        ch3x3: int,
        ch5x5red: int,
        ch5x5: int,
        pool_proj: int,
        five_by_five: bool = False,
    ) -> None:
        super().__init__()
        k5, p5 = (5, 2) if five_by_five else (3, 1)
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(in_channels, ch3x3red, kernel_size=1),
            BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1),
        )
        self.branch3 = nn.Sequential(
            BasicConv2d(in_channels, ch5x5red, kernel_size=1),
            BasicConv2d(ch5x5red, ch5x5, kernel_size=k5, padding=p5),
        )
        self.branch4 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
            BasicConv2d(in_channels, pool_proj, kernel_size=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)]
        return torch.cat(outputs, 1)  # (B, ch1x1 + ch3x3 + ch5x5 + pool_proj, H, W)


class InceptionAux(nn.Module):
    """Auxiliary classifier on an intermediate output (training only)."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.7) -> None:
        super().__init__()
        self.conv = BasicConv2d(in_channels, 128, kernel_size=1)
        self.fc1 = nn.Linear(2048, 1024)
        self.fc2 = nn.Linear(1024, num_classes)
        self.dropout = nn.Dropout(p=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(x, (4, 4))  # (B, C, 4, 4)
        x = self.conv(x)  # (B, 128, 4, 4)
        x = torch.flatten(x, 1)  # (B, 2048)
        x = F.relu(self.fc1(x), inplace=True)
        x = self.dropout(x)
        return self.fc2(x)


class GoogLeNet(nn.Module):
    """torchvision's GoogLeNet (no ``transform_input``).

    In eval mode (or without aux heads) ``forward`` returns the logits; in training mode with
    ``aux_logits`` it returns ``GoogLeNetOutputs(logits, aux_logits2, aux_logits1)``.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        aux_logits: bool = False,
        dropout: float = 0.2,
        dropout_aux: float = 0.7,
        five_by_five: bool = False,
    ) -> None:
        super().__init__()
        self.aux_logits = aux_logits

        def inception(*channels: int) -> Inception:
            return Inception(*channels, five_by_five=five_by_five)

        self.conv1 = BasicConv2d(3, 64, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = BasicConv2d(64, 64, kernel_size=1)
        self.conv3 = BasicConv2d(64, 192, kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        # Table 1: in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
        self.inception3a = inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = inception(832, 384, 192, 384, 48, 128, 128)
        self.aux1: InceptionAux | None = None
        self.aux2: InceptionAux | None = None
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes, dropout=dropout_aux)
            self.aux2 = InceptionAux(528, num_classes, dropout=dropout_aux)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(1024, num_classes)

        for m in [] if is_meta(self) else self.modules():  # torchvision's init_weights=True
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor | GoogLeNetOutputs:
        x = self.conv1(x)  # (B, 64, 112, 112) at 224
        x = self.maxpool1(x)  # (B, 64, 56, 56)
        x = self.conv2(x)
        x = self.conv3(x)  # (B, 192, 56, 56)
        x = self.maxpool2(x)  # (B, 192, 28, 28)
        x = self.inception3a(x)
        x = self.inception3b(x)  # (B, 480, 28, 28)
        x = self.maxpool3(x)  # (B, 480, 14, 14)
        x = self.inception4a(x)  # (B, 512, 14, 14)
        aux1 = self.aux1(x) if self.aux1 is not None and self.training else None
        x = self.inception4b(x)
        x = self.inception4c(x)
        x = self.inception4d(x)  # (B, 528, 14, 14)
        aux2 = self.aux2(x) if self.aux2 is not None and self.training else None
        x = self.inception4e(x)  # (B, 832, 14, 14)
        x = self.maxpool4(x)  # (B, 832, 7, 7)
        x = self.inception5a(x)
        x = self.inception5b(x)  # (B, 1024, 7, 7)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)  # (B, 1024)
        x = self.dropout(x)
        x = self.fc(x)
        if self.training and self.aux_logits:
            return GoogLeNetOutputs(x, aux2, aux1)
        return x


@register_model(
    "googlenet",
    family="googlenet",
    input_size=(1, 3, 224, 224),
    paper=PAPER,
    options={
        "aux_logits": Option(False, bool, "auxiliary classifiers after 4a and 4d (training)"),
        "five_by_five": Option(
            False, bool, "real 5x5 kernels in the 5x5 branch (paper) instead of torchvision's 3x3"
        ),
        "num_classes": num_classes_option(1000),
        "dropout": dropout_option(0.2),
    },
)
def googlenet(
    *,
    aux_logits: bool = False,
    five_by_five: bool = False,
    num_classes: int = 1000,
    dropout: float = 0.2,
) -> GoogLeNet:
    """GoogLeNet (Szegedy et al. 2015): Inception modules with 1x1 reductions keep a 22-layer
    net at 6.6M params and 1.5 G multiply-adds."""
    return GoogLeNet(
        num_classes=num_classes, aux_logits=aux_logits, dropout=dropout, five_by_five=five_by_five
    )
