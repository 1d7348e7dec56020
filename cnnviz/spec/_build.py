"""Build a validated spec into an ``nn.Module`` (on the meta device by default)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from cnnviz.spec._core import Layer, Spec, validate


class Residual(nn.Module):
    """``out = body(x) + shortcut(x)``; the add runs in forward, so analysis sees an ``add``."""

    def __init__(self, body: nn.Module, shortcut: nn.Module) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class Concat(nn.Module):
    """``torch.cat`` of the branches' outputs on the channel dim."""

    def __init__(self, branches: list[nn.Module]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([b(x) for b in self.branches], 1)


class SpecModel(nn.Module):
    """The model of a spec: its layers in ``self.layers`` (``layers.0``, ``layers.<name>``)."""

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.layers = _seq(spec.layers)
        self.default_input_size: tuple[int, ...] = spec.input
        self.spec_name: str = spec.name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _seq(layers: tuple[Layer, ...]) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            (layer.name if layer.name is not None else str(i), _module(layer))
            for i, layer in enumerate(layers)
        )
    )


def _module(layer: Layer) -> nn.Module:
    p, t = layer.params, layer.type
    shape = layer.in_shape
    n = len(shape) - 2
    c = shape[1]
    if t == "residual":
        body, shortcut = layer.children
        return Residual(_seq(body), _seq(shortcut) if shortcut else nn.Identity())
    if t == "concat":
        return Concat([_seq(b) if b else nn.Identity() for b in layer.children])
    if t == "conv":
        cls = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[n - 1]
        return cls(
            c,
            p["out"],
            p["kernel"],
            p["stride"],
            p["padding"],
            p["dilation"],
            p["groups"],
            p["bias"],
        )
    if t == "conv_transpose":
        cls = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)[n - 1]
        return cls(
            c,
            p["out"],
            p["kernel"],
            p["stride"],
            p["padding"],
            p["output_padding"],
            p["groups"],
            p["bias"],
            p["dilation"],
        )
    if t == "maxpool":
        cls = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)[n - 1]
        return cls(p["kernel"], p["stride"], p["padding"], p["dilation"], ceil_mode=p["ceil_mode"])
    if t == "avgpool":
        cls = (nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)[n - 1]
        return cls(p["kernel"], p["stride"], p["padding"], p["ceil_mode"], p["count_include_pad"])
    if t == "adaptive_avgpool":
        return (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)[n - 1](p["size"])
    if t == "adaptive_maxpool":
        return (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)[n - 1](p["size"])
    if t == "bn":
        cls = nn.BatchNorm3d if n == 3 else nn.BatchNorm2d if n == 2 else nn.BatchNorm1d
        return cls(c, p["eps"], p["momentum"], p["affine"])
    if t == "groupnorm":
        return nn.GroupNorm(p["groups"], c, p["eps"], p["affine"])
    if t == "layernorm":
        return nn.LayerNorm(list(shape[1:]), p["eps"], p["affine"])
    if t == "lrn":
        return nn.LocalResponseNorm(p["size"], p["alpha"], p["beta"], p["k"])
    if t == "leaky_relu":
        return nn.LeakyReLU(p["negative_slope"])
    if t == "gelu":
        return nn.GELU(p["approximate"])
    if t == "dropout":
        return nn.Dropout(p["p"])
    if t == "linear":
        return nn.Linear(c, p["out"], p["bias"])
    simple = {
        "relu": nn.ReLU,
        "relu6": nn.ReLU6,
        "silu": nn.SiLU,
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "flatten": nn.Flatten,
        "identity": nn.Identity,
    }
    return simple[t]()


def build(
    spec: Mapping[str, Any] | Spec | str, *, device: str | torch.device = "meta"
) -> nn.Module:
    """Validate ``spec`` (a mapping, a :class:`Spec` or spec text) and build its model.

    The model carries ``default_input_size`` and ``spec_name``; on the default meta device its
    parameters take no memory. Module names: ``layers.0``, ``layers.<name>``, a residual's
    ``body``/``shortcut`` and a concat's ``branches.0``, ``branches.1``.

    >>> import cnnviz
    >>> m = build("input: [1, 3, 8, 8]\\nlayers: [{conv: {out: 4, kernel: 3}}, relu]")
    >>> a = cnnviz.analyze(m, m.default_input_size)
    >>> a.total_params, [r.name for r in a.layers]  # 4*3*3*3 + 4
    (112, ['layers.0', 'layers.1'])
    """
    if isinstance(spec, str):
        from cnnviz.spec._text import parse

        spec = parse(spec)
    s = validate(spec)
    with torch.device(device):
        return SpecModel(s)
