"""The layer table: one :class:`LayerType` per spec layer type, registered into ``TYPES``.

An entry holds everything about its type: its options (``params``), its shape function (the
output shape and parameter count, with the errors that name the field), its window geometry
(convs and pools), its builder (the ``nn.Module``) and its note for the docs. Adding a layer
type is adding one entry to :data:`TABLE`; :func:`doc_table` writes the table in
``cnnviz.spec``'s docstring from these entries.

Shape functions take ``(at, p, x)``: the :class:`Site` (``at.error`` names the field,
``at.layers`` validates nested layers), the validated options ``p`` and the input shape
``x = (N, C, *spatial)``. Builders take the validated :class:`Layer`.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch.nn as nn

from cnnviz import fmt
from cnnviz.spec._build import Concat, Residual, sequential
from cnnviz.spec._core import (
    _KERNEL,
    LIMITS,
    REQUIRED,
    TYPES,
    Inferred,
    Layer,
    LayerType,
    Param,
    Site,
    Window,
    per_dim,
    register,
    short,
    window_out,
)

Shape = tuple[int, ...]


def _nd(layer: Layer, *classes: type[nn.Module]) -> type[nn.Module]:
    """The 1-d, 2-d or 3-d class for a layer's input rank."""
    return classes[len(layer.in_shape) - 3]


def _same(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    """Shape-preserving, no parameters (activations, dropout, identity)."""
    return Inferred(x)


# ------------------------------------------------------------------------ conv
def _conv_params(transpose: bool) -> dict[str, Param]:
    p = {
        "out": Param("int", doc="output channels"),
        "kernel": Param("dims", hi="kernel"),
        "stride": Param("dims", 1, hi="stride"),
        "padding": Param("dims", 0, 0, "padding", () if transpose else ("same", "valid")),
        "output_padding": Param("dims", 0, 0, "stride"),
        "dilation": Param("dims", 1, hi="dilation"),
        "groups": Param("int", 1),
        "bias": Param("bool", True),
    }
    if not transpose:
        del p["output_padding"]
    return p


def _conv_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    c, out, g = x[1], p["out"], p["groups"]
    if c % g or out % g:
        raise at.error(f"{g} must divide the input channels ({c}) and out ({out})", "groups")
    k = math.prod(per_dim(p["kernel"], len(x) - 2))
    # weight (out, c/g, *k) for a conv, (c, out/g, *k) for a transposed one
    transposed = at.type.window is not None and at.type.window.transpose
    n = (c * (out // g) if transposed else out * (c // g)) * k
    return Inferred((x[0], out, *window_out(at, p, x)), n + (out if p["bias"] else 0))


def _build_conv(layer: Layer) -> nn.Module:
    p = layer.params
    cls = _nd(layer, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    c = layer.in_shape[1]
    return cls(
        c, p["out"], p["kernel"], p["stride"], p["padding"], p["dilation"], p["groups"], p["bias"]
    )


def _build_conv_transpose(layer: Layer) -> nn.Module:
    p = layer.params
    cls = _nd(layer, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    c = layer.in_shape[1]
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


# ------------------------------------------------------------------------ pools
def _pool_params(avg: bool) -> dict[str, Param]:
    p = {
        "kernel": Param("dims", hi="kernel"),
        "stride": Param("dims", _KERNEL, hi="stride"),
        "padding": Param("dims", 0, 0, "padding", doc="at most kernel // 2"),
        "dilation": Param("dims", 1, hi="dilation"),
        "ceil_mode": Param("bool", False),
    }
    if avg:
        del p["dilation"]
        p["count_include_pad"] = Param("bool", True)
    return p


def _pool_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    return Inferred((*x[:2], *window_out(at, p, x)))


def _build_maxpool(layer: Layer) -> nn.Module:
    p = layer.params
    cls = _nd(layer, nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
    return cls(p["kernel"], p["stride"], p["padding"], p["dilation"], ceil_mode=p["ceil_mode"])


def _build_avgpool(layer: Layer) -> nn.Module:
    p = layer.params
    cls = _nd(layer, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
    return cls(p["kernel"], p["stride"], p["padding"], p["ceil_mode"], p["count_include_pad"])


_SIZE = {"size": Param("dims", 1, hi="spatial")}


def _adaptive_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    return Inferred((*x[:2], *per_dim(p["size"], len(x) - 2)))


# ------------------------------------------------------------------------ norms
_EPS = Param("float", 1e-5, 1e-12, 1.0)
_AFFINE = Param("bool", True)


def _bn_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    return Inferred(x, 2 * x[1] if p["affine"] else 0)  # weight and bias per channel


def _build_bn(layer: Layer) -> nn.Module:
    p, n = layer.params, len(layer.in_shape) - 2
    cls = nn.BatchNorm3d if n == 3 else nn.BatchNorm2d if n == 2 else nn.BatchNorm1d
    return cls(layer.in_shape[1], p["eps"], p["momentum"], p["affine"])


def _groupnorm_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    if x[1] % p["groups"]:
        raise at.error(f"{p['groups']} must divide the {x[1]} input channels", "groups")
    return Inferred(x, 2 * x[1] if p["affine"] else 0)


def _layernorm_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    return Inferred(x, 2 * math.prod(x[1:]) if p["affine"] else 0)  # over all dims but N


def _lrn_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    if len(x) < 3:
        raise at.error(f"needs an input (N, C, *spatial), got {fmt.shape(x)}")
    return Inferred(x)


# ------------------------------------------------------------------------ flatten, linear
def _flatten_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    return Inferred((x[0], math.prod(x[1:])))


def _linear_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    if len(x) != 2:
        raise at.error(
            f"needs a flat input (N, features), got {fmt.shape(x)}; add flatten before it"
        )
    out = p["out"]
    return Inferred((x[0], out), x[1] * out + (out if p["bias"] else 0))


# ------------------------------------------------------------------------ residual, concat
def _residual_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    if "body" not in at.raw:
        raise at.error("required (the layers of the residual branch)", "body")
    if not at.raw["body"]:
        raise at.error("must be a non-empty list of layers", "body")
    body, b = at.layers(at.raw["body"], "body", x)
    sc, s = at.layers(at.raw.get("shortcut") or (), "shortcut", x)
    if b != s:
        sc_what = "the shortcut" if sc else "the identity shortcut"
        fix = "change the shortcut" if sc else "add a shortcut (e.g. a 1x1 conv)"
        if len(b) != len(s):
            got = f"{fmt.shape(b)} but {sc_what} gives {fmt.shape(s)}"
        elif b[2:] == s[2:]:
            got = f"{b[1]} channels but {sc_what} gives {s[1]}"
        else:
            got = (
                f"{b[1]} channels at {fmt.shape(b[2:])} but {sc_what} gives {s[1]} channels "
                f"at {fmt.shape(s[2:])}"
            )
            if not sc:
                fix = "add a shortcut with the body's stride (e.g. a 1x1 conv with stride 2)"
        raise at.error(f"body outputs {got}; {fix} or change the body")
    return Inferred(b, 0, (body, sc))


def _concat_shape(at: Site, p: Mapping[str, Any], x: Shape) -> Inferred:
    branches = at.raw.get("branches")
    if not isinstance(branches, (list, tuple)) or len(branches) < 2:
        raise at.error(
            f"must be a list of at least 2 branches (lists of layers), got {short(branches)}",
            "branches",
        )
    seqs, outs = [], []
    for j, branch in enumerate(branches):
        seq, out = at.layers(branch, "branches", x, j)
        seqs.append(seq)
        outs.append(out)
    first = outs[0]
    for j, out in enumerate(outs[1:], 1):
        if len(out) != len(first) or out[2:] != first[2:]:
            a = fmt.shape(out[2:]) or fmt.shape(out)
            b = fmt.shape(first[2:]) or fmt.shape(first)
            raise at.error(
                f"branch {j} outputs {a} but branch 0 outputs {b}; concat needs the same size in "
                "every dim but channels (check the branches' padding and stride)"
            )
    channels = sum(o[1] for o in outs)
    if channels > LIMITS.channels:
        raise at.error(f"would output {channels} channels, more than {LIMITS.channels}")
    return Inferred((first[0], channels, *first[2:]), 0, tuple(seqs))


def _build_residual(layer: Layer) -> nn.Module:
    body, shortcut = layer.children
    return Residual(sequential(body), sequential(shortcut) if shortcut else nn.Identity())


def _build_concat(layer: Layer) -> nn.Module:
    return Concat([sequential(b) if b else nn.Identity() for b in layer.children])


# ------------------------------------------------------------------------ the table
def _plain(name: str, cls: type[nn.Module], doc: str = "", **params: Param) -> LayerType:
    """A shape-preserving type without weights whose options are its module's arguments,
    in order."""
    return LayerType(name, params, _same, lambda layer: cls(*layer.params.values()), doc)


TABLE: tuple[LayerType, ...] = (
    LayerType("conv", _conv_params(False), _conv_shape, _build_conv, "", Window(), True),
    LayerType(
        "conv_transpose",
        _conv_params(True),
        _conv_shape,
        _build_conv_transpose,
        "",
        Window(transpose=True),
        True,
    ),
    LayerType(
        "maxpool", _pool_params(False), _pool_shape, _build_maxpool, "", Window(pool=True), True
    ),
    LayerType(
        "avgpool",
        _pool_params(True),
        _pool_shape,
        _build_avgpool,
        "",
        Window(pool=True, average=True),
        True,
    ),
    LayerType(
        "adaptive_avgpool",
        _SIZE,
        _adaptive_shape,
        lambda layer: _nd(layer, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)(
            layer.params["size"]
        ),
        "output size per spatial dim",
        spatial=True,
    ),
    LayerType(
        "adaptive_maxpool",
        _SIZE,
        _adaptive_shape,
        lambda layer: _nd(layer, nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)(
            layer.params["size"]
        ),
        "output size per spatial dim",
        spatial=True,
    ),
    LayerType(
        "bn",
        {"eps": _EPS, "momentum": Param("float", 0.1, 0.0, 1.0), "affine": _AFFINE},
        _bn_shape,
        _build_bn,
        "BatchNorm1d/2d/3d (1d after flatten)",
    ),
    LayerType(
        "groupnorm",
        {"groups": Param("int", doc="divides the channels"), "eps": _EPS, "affine": _AFFINE},
        _groupnorm_shape,
        lambda layer: nn.GroupNorm(
            layer.params["groups"], layer.in_shape[1], layer.params["eps"], layer.params["affine"]
        ),
    ),
    LayerType(
        "layernorm",
        {"eps": _EPS, "affine": _AFFINE},
        _layernorm_shape,
        lambda layer: nn.LayerNorm(
            list(layer.in_shape[1:]), layer.params["eps"], layer.params["affine"]
        ),
        "over all dims but the batch",
    ),
    LayerType(
        "lrn",
        {
            "size": Param("int", 5),
            "alpha": Param("float", 1e-4, 0.0, 100.0),
            "beta": Param("float", 0.75, 0.0, 100.0),
            "k": Param("float", 1.0, 0.0, 100.0),
        },
        _lrn_shape,
        lambda layer: nn.LocalResponseNorm(*layer.params.values()),
        "local response norm (AlexNet)",
    ),
    _plain("relu", nn.ReLU),
    _plain("relu6", nn.ReLU6),
    _plain("leaky_relu", nn.LeakyReLU, negative_slope=Param("float", 0.01, 0.0, 1.0)),
    _plain("gelu", nn.GELU, approximate=Param("choice", "none", choices=("none", "tanh"))),
    _plain("silu", nn.SiLU),
    _plain("sigmoid", nn.Sigmoid),
    _plain("tanh", nn.Tanh),
    _plain("dropout", nn.Dropout, p=Param("float", 0.5, 0.0, 1.0)),
    LayerType("flatten", {}, _flatten_shape, lambda layer: nn.Flatten()),
    LayerType(
        "linear",
        {"out": Param("int", doc="output features"), "bias": Param("bool", True)},
        _linear_shape,
        lambda layer: nn.Linear(layer.in_shape[1], layer.params["out"], layer.params["bias"]),
        "needs a flat input: put flatten before it",
    ),
    _plain("identity", nn.Identity),
    LayerType(
        "residual",
        {
            "body": Param("layers", doc="layers"),
            "shortcut": Param("layers", (), doc="layers, default: identity"),
        },
        _residual_shape,
        _build_residual,
        "out = body(x) + shortcut(x)",
    ),
    LayerType(
        "concat",
        {"branches": Param("branches", doc="2 or more lists of layers")},
        _concat_shape,
        _build_concat,
        "torch.cat of the branches on channels",
    ),
)
for _t in TABLE:
    register(_t)

#: Each type's options: type name -> {option: Param} (read from :data:`TYPES`).
CATALOG: Mapping[str, Mapping[str, Param]] = MappingProxyType(
    {name: MappingProxyType(dict(t.params)) for name, t in TYPES.items()}
)


# ------------------------------------------------------------------------ the docs' table
def _default_text(p: Param) -> str:
    if p.default == _KERNEL:
        return "(= kernel)"
    if isinstance(p.default, bool):
        return "true" if p.default else "false"
    return str(p.default)


def _option_text(name: str, p: Param) -> str:
    """``out*``, ``stride 1``, ``padding 0 (or same, valid)``, ``shortcut (layers, ...)``."""
    if p.default is REQUIRED:
        text = f"{name}*"
    elif p.nested:
        text = name
    else:
        text = f"{name} {_default_text(p)}"
    notes = [p.doc] if p.doc else []
    others = [c for c in p.choices if c != p.default]
    if others:
        notes.append("or " + ", ".join(others))
    return f"{text} ({'; '.join(notes)})" if notes else text


def doc_table(width: int = 96) -> str:
    """The layer types and their options as an RST table (``*`` = required, then defaults),
    made from :data:`TYPES`; types without options or notes share the last line."""
    col = 20
    rule = "=" * (col - 1) + " " + "=" * (width - col)
    lines = [rule]
    bare = []
    for name, t in TYPES.items():
        options = ", ".join(_option_text(k, p) for k, p in t.params.items())
        text = "; ".join(part for part in (options, t.doc) if part)
        if not text:
            bare.append(name)
            continue
        wrapped = textwrap.wrap(text, width - col)
        lines.append(f"{name:<{col}}{wrapped[0]}")
        lines += [" " * col + w for w in wrapped[1:]]
    if bare:
        lines.append(f"{', '.join(bare)}: no options")
    return "\n".join([*lines, rule])
