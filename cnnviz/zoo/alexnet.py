"""AlexNet: Krizhevsky, Sutskever & Hinton, "ImageNet Classification with Deep Convolutional
Neural Networks" (NeurIPS 2012).

Seed idea: a large, early-downsampling conv net (11x11 stride-4 first layer) with ReLUs,
dropout and most of its parameters in the fully connected classifier. Two layouts:

* ``alexnet``: torchvision's single-tower variant (64/192/384/256/256 channels, adaptive pool).
* ``alexnet_paper``: the paper's two-GPU network at 227x227, with grouped convs (groups=2)
  where the two GPUs did not talk, and local response normalisation after conv1 and conv2.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import dropout_option, is_meta, num_classes_option, register_model

PAPER = "Krizhevsky et al. 2012, ImageNet Classification with Deep CNNs"


def _classifier(num_classes: int, dropout: float) -> nn.Sequential:
    """The three fully connected layers both layouts share (about 58.6M of their weights)."""
    return nn.Sequential(
        nn.Dropout(p=dropout),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(inplace=True),
        nn.Dropout(p=dropout),
        nn.Linear(4096, 4096),
        nn.ReLU(inplace=True),
        nn.Linear(4096, num_classes),
    )


class AlexNet(nn.Module):
    """torchvision's single-tower AlexNet (same module names, so the same state_dict keys)."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = _classifier(num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 256, 6, 6) at 224
        x = self.avgpool(x)
        x = torch.flatten(x, 1)  # (B, 9216)
        return self.classifier(x)


class AlexNetPaper(nn.Module):
    """The paper's two-GPU AlexNet (Figure 2 / Section 3.5), input 3x227x227.

    ``groups=2`` on conv2, conv4 and conv5 reproduces the split across two GPUs: each half of
    the kernels sees only the half of the previous layer on its own GPU. conv3 and the fully
    connected layers see both halves. LRN uses the paper's k=2, n=5, alpha=1e-4, beta=0.75;
    PyTorch divides ``alpha`` by ``size``, so alpha=5e-4 here. No adaptive pooling: the
    classifier expects exactly 256x6x6 features, i.e. a 227x227 input.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()

        def lrn() -> nn.LocalResponseNorm:
            return nn.LocalResponseNorm(size=5, alpha=5e-4, beta=0.75, k=2.0)

        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4),  # 227 -> 55
            nn.ReLU(inplace=True),
            lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 55 -> 27 (overlapping pooling)
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),
            nn.ReLU(inplace=True),
            lrn(),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 27 -> 13
            nn.Conv2d(256, 384, kernel_size=3, padding=1),  # crosses GPUs
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),  # 13 -> 6
        )
        self.classifier = _classifier(num_classes, dropout)
        self._init_weights()

    def _init_weights(self) -> None:
        if is_meta(self):
            return
        # Section 5: weights ~ N(0, 0.01); biases 1 in conv2, conv4, conv5 and the hidden fully
        # connected layers (to give ReLUs positive inputs early), 0 elsewhere.
        ones = {self.features[4], self.features[10], self.features[12]}
        ones |= {self.classifier[1], self.classifier[4]}
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.constant_(m.bias, 1.0 if m in ones else 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)  # (B, 256, 6, 6) at 227
        x = torch.flatten(x, 1)  # (B, 9216)
        return self.classifier(x)


@register_model(
    "alexnet",
    family="alexnet",
    input_size=(1, 3, 224, 224),
    paper=PAPER,
    options={"num_classes": num_classes_option(1000), "dropout": dropout_option(0.5)},
)
def alexnet(*, num_classes: int = 1000, dropout: float = 0.5) -> AlexNet:
    """AlexNet, torchvision's single-tower layout (Krizhevsky et al. 2012): big early kernels,
    ReLU, dropout; 61.1M params, most in the classifier."""
    return AlexNet(num_classes=num_classes, dropout=dropout)


@register_model(
    "alexnet_paper",
    family="alexnet",
    input_size=(1, 3, 227, 227),
    paper=PAPER,
    options={"num_classes": num_classes_option(1000), "dropout": dropout_option(0.5)},
)
def alexnet_paper(*, num_classes: int = 1000, dropout: float = 0.5) -> AlexNetPaper:
    """AlexNet as in the paper (Krizhevsky et al. 2012): two-GPU grouped convs and LRN at
    227x227; 60,965,224 params ("60 million")."""
    return AlexNetPaper(num_classes=num_classes, dropout=dropout)
