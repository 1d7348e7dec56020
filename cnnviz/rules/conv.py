"""Convolution, transposed convolution and linear layers: the ops that carry MACs.

MACs follow FlopCounterMode's formulas (torch/utils/flop_counter.py) halved:
conv = N * prod(out spatial) * C_out * (C_in / groups) * prod(kernel), bias not counted;
transposed conv = N * prod(in spatial) * C_in * (C_out / groups) * prod(kernel);
linear = prod(leading dims) * in_features * out_features.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnviz import fmt
from cnnviz.geometry import out_len
from cnnviz.receptive import (
    FOLD,
    grouped_channels,
    merge,
    mix_dim,
    mix_folded,
    slide_dims,
    unknown,
)
from cnnviz.rules.registry import Ctx, Out, RuleError, ntuple, positive, register


def same_dtype(ctx: Ctx, x, weight, bias=None) -> None:
    """Conv and linear want one floating dtype for input, weight and bias (PyTorch refuses a
    long image or float64 weights on a float32 input)."""
    if not x.dtype.is_floating_point:
        raise RuleError(f"expects a floating-point input, got {x.dtype} (convert it first)")
    if not ctx.strict_dtypes:
        return
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and t.dtype != x.dtype:
            raise RuleError(f"input is {x.dtype} but the {name} is {t.dtype}: they must match")


def _conv(ctx: Ctx, n: int, x, weight, bias, stride, padding, dilation, groups) -> Out:
    same_dtype(ctx, x, weight, bias)
    if x.dim() not in (n + 1, n + 2):
        raise RuleError(
            f"conv{n}d expects a {n + 2}-d input (N, C, {'spatial, ' * n}), "
            f"got {x.dim()}-d {fmt.shape(x.shape)}"
        )
    batched = x.dim() == n + 2
    c_in = x.shape[-n - 1]
    c_out, c_per_group, *k = weight.shape
    if c_in != c_per_group * groups:
        if not batched:
            raise RuleError(
                f"expects a {n + 2}-d input (N, C, ...) with {c_per_group * groups} channels, "
                f"got {n + 1}-d {fmt.shape(x.shape)}, which PyTorch reads as one unbatched "
                f"(C, {'spatial, ' * n}) sample with {c_in} channels"
            )
        raise RuleError(
            f"expects {c_per_group * groups} input channels, got {c_in} "
            f"(input {fmt.shape(x.shape)})"
        )
    s = positive(ntuple(stride, n, "stride"), "stride")
    d = positive(ntuple(dilation, n, "dilation"), "dilation")
    spatial = tuple(x.shape[-n:])
    if isinstance(padding, str):
        if padding == "valid":
            pl, pt = (0,) * n, (0,) * n
        elif padding == "same":
            pt = tuple(dd * (kk - 1) for kk, dd in zip(k, d, strict=True))
            pl = tuple(t // 2 for t in pt)
        else:
            raise RuleError(f"padding={padding!r} is not 'same', 'valid' or a number")
    else:
        pl = ntuple(padding, n, "padding")
        pt = tuple(2 * p for p in pl)
    out = tuple(
        out_len(L, kk, ss, pp, dd) for L, kk, ss, pp, dd in zip(spatial, k, s, pt, d, strict=True)
    )
    if min(out) <= 0:
        raise RuleError(
            f"k={fmt.shape(k)} s={fmt.shape(s)} p={fmt.shape(pl)} d={fmt.shape(d)} would output "
            f"{fmt.shape(out)} from {fmt.shape(spatial)}",
            too_small=True,
        )
    shape = (*x.shape[: -n - 1], c_out, *out)
    batch = x.shape[0] if batched else 1
    positions = batch * math.prod(out)
    macs = positions * c_out * c_per_group * math.prod(k)
    extra = positions * c_out if bias is not None else 0
    tdims = tuple(range(x.dim() - n, x.dim()))
    flow = ctx.flow(x)
    if flow.dims[-n - 1] == FOLD:  # channels that hold a folded spatial axis
        flow = mix_folded(flow, x.dim() - n - 1)
    flow = grouped_channels(flow, groups, c_in, c_out, f"conv{n}d")
    flow = slide_dims(flow, tdims, tuple(k), s, pl, d, False, f"conv{n}d")
    flow = flow.deeper()
    return Out(ctx.new(shape, x), flow, macs, extra)


@register(torch.conv1d, kind="conv", name="conv1d")
def conv1d_rule(ctx, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(ctx, 1, input, weight, bias, stride, padding, dilation, groups)


@register(torch.conv2d, kind="conv", name="conv2d")
def conv2d_rule(ctx, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(ctx, 2, input, weight, bias, stride, padding, dilation, groups)


@register(torch.conv3d, kind="conv", name="conv3d")
def conv3d_rule(ctx, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv(ctx, 3, input, weight, bias, stride, padding, dilation, groups)


def _conv_t(ctx: Ctx, n, x, weight, bias, stride, padding, output_padding, groups, dilation):
    same_dtype(ctx, x, weight, bias)
    if x.dim() not in (n + 1, n + 2):
        raise RuleError(f"conv_transpose{n}d expects a {n + 2}-d input, got {fmt.shape(x.shape)}")
    c_in = x.shape[-n - 1]
    w_in, c_out_per_group, *k = weight.shape
    if c_in != w_in:
        raise RuleError(f"expects {w_in} input channels, got {c_in} (input {fmt.shape(x.shape)})")
    s = positive(ntuple(stride, n, "stride"), "stride")
    p = ntuple(padding, n, "padding")
    op = ntuple(output_padding, n, "output_padding")
    d = positive(ntuple(dilation, n, "dilation"), "dilation")
    spatial = tuple(x.shape[-n:])
    out = tuple(
        (L - 1) * ss - 2 * pp + dd * (kk - 1) + oo + 1
        for L, ss, pp, dd, kk, oo in zip(spatial, s, p, d, k, op, strict=True)
    )
    if min(out) <= 0:
        raise RuleError(f"would output {fmt.shape(out)} from {fmt.shape(spatial)}")
    c_out = c_out_per_group * groups
    shape = (*x.shape[: -n - 1], c_out, *out)
    batch = x.shape[0] if x.dim() == n + 2 else 1
    macs = batch * math.prod(spatial) * c_in * c_out_per_group * math.prod(k)
    extra = batch * math.prod(out) * c_out if bias is not None else 0
    f = ctx.flow(x)
    reason = "a transposed convolution's window varies from unit to unit (fractional stride)"
    window = unknown(f.window, reason)
    return Out(ctx.new(shape, x), type(f)(f.dims, window, None, f.depth + 1), macs, extra)


@register(torch.conv_transpose1d, kind="conv", name="conv_transpose1d")
def conv_transpose1d_rule(
    ctx, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    return _conv_t(ctx, 1, input, weight, bias, stride, padding, output_padding, groups, dilation)


@register(torch.conv_transpose2d, kind="conv", name="conv_transpose2d")
def conv_transpose2d_rule(
    ctx, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    return _conv_t(ctx, 2, input, weight, bias, stride, padding, output_padding, groups, dilation)


@register(torch.conv_transpose3d, kind="conv", name="conv_transpose3d")
def conv_transpose3d_rule(
    ctx, input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1
):
    return _conv_t(ctx, 3, input, weight, bias, stride, padding, output_padding, groups, dilation)


@register(F.linear, kind="linear", name="linear")
def linear_rule(ctx, input, weight, bias=None):
    same_dtype(ctx, input, weight, bias)
    if input.dim() == 0:
        raise RuleError("linear needs at least a 1-d input")
    out_f, in_f = weight.shape if weight.dim() == 2 else (1, weight.shape[0])
    if input.shape[-1] != in_f:
        raise RuleError(
            f"expects {in_f} input features, got {input.shape[-1]} (input {fmt.shape(input.shape)})"
        )
    if bias is not None and bias.numel() != out_f:
        raise RuleError(f"bias has {bias.numel()} values for {out_f} output features")
    shape = (*input.shape[:-1], out_f) if weight.dim() == 2 else tuple(input.shape[:-1])
    rows = math.prod(input.shape[:-1])
    flow = mix_dim(ctx.flow(input), input.dim() - 1)
    flow = flow.deeper()
    return Out(
        ctx.new(shape, input), flow, rows * in_f * out_f, rows * out_f if bias is not None else 0
    )


@register(F.bilinear, kind="linear", name="bilinear")
def bilinear_rule(ctx, input1, input2, weight, bias=None):
    """y_k = x1ᵀ W_k x2 + b_k: prod(leading) * out * in1 * in2 MACs (FlopCounterMode has no
    formula for it and counts 0)."""
    same_dtype(ctx, input1, weight, bias)
    same_dtype(ctx, input2, weight)
    out_f, in1, in2 = weight.shape
    if input1.shape[-1] != in1 or input2.shape[-1] != in2:
        raise RuleError(
            f"expects inputs with {in1} and {in2} features, got {fmt.shape(input1.shape)} "
            f"and {fmt.shape(input2.shape)}"
        )
    if tuple(input1.shape[:-1]) != tuple(input2.shape[:-1]):
        raise RuleError(
            f"inputs {fmt.shape(input1.shape)} and {fmt.shape(input2.shape)} differ before "
            "the last dim"
        )
    rows = math.prod(input1.shape[:-1])
    flows = [mix_dim(ctx.flow(t), t.dim() - 1) for t in (input1, input2)]
    flow = merge(flows, "a bilinear layer").deeper()
    shape = (*input1.shape[:-1], out_f)
    extra = rows * out_f if bias is not None else 0
    return Out(ctx.new(shape, input1), flow, rows * out_f * in1 * in2, extra)
