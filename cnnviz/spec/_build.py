"""Build a validated spec into an ``nn.Module`` (on the meta device by default)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from cnnviz.spec._core import TYPES, Layer, Spec, validate


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
        self.layers = sequential(spec.layers)
        self.default_input_size: tuple[int, ...] = spec.input
        self.spec_name: str = spec.name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def sequential(layers: tuple[Layer, ...]) -> nn.Sequential:
    """The modules of validated layers, each built by its type's entry in the layer table,
    named by its ``name`` or its index."""
    return nn.Sequential(
        OrderedDict(
            (layer.name if layer.name is not None else str(i), TYPES[layer.type].build(layer))
            for i, layer in enumerate(layers)
        )
    )


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
