"""``F.interpolate`` (and ``nn.Upsample``): the output size; the window is reported unknown,
since upsampling varies it from unit to unit.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from cnnviz import fmt
from cnnviz.receptive import Flow, unknown
from cnnviz.rules.registry import Out, RuleError, register


@register(F.interpolate, kind="upsample", name="interpolate")
def interpolate_rule(ctx, input, size=None, scale_factor=None, mode="nearest", *args, **kwargs):
    n = input.dim() - 2
    if n < 1:
        raise RuleError(f"interpolate needs a 3-d to 5-d input, got {fmt.shape(input.shape)}")
    spatial = tuple(input.shape[2:])
    need = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}.get(mode)
    if need is not None and n != need:
        raise RuleError(
            f"interpolate mode={mode!r} needs a {need + 2}-d input, got {fmt.shape(input.shape)}"
        )
    if size is not None:
        out = (size,) * n if isinstance(size, int) else tuple(size)
        if len(out) != n:
            raise RuleError(
                f"interpolate size {fmt.shape(out)} has {len(out)} dims, the input "
                f"{fmt.shape(input.shape)} has {n} spatial dims"
            )
    elif scale_factor is not None:
        sf = (scale_factor,) * n if isinstance(scale_factor, (int, float)) else scale_factor
        if len(sf) != n:
            raise RuleError(
                f"interpolate scale_factor {tuple(sf)} has {len(sf)} values, the input "
                f"{fmt.shape(input.shape)} has {n} spatial dims"
            )
        out = tuple(math.floor(L * s) for L, s in zip(spatial, sf, strict=True))
    else:
        raise RuleError("interpolate needs size or scale_factor")
    shape = (*input.shape[:2], *out)
    f = ctx.flow(input)
    if out == spatial:
        return Out(ctx.new(shape, input), f, 0, math.prod(shape))
    reason = f"{mode} upsampling: the window varies from unit to unit"
    window = unknown(f.window, reason)
    return Out(ctx.new(shape, input), Flow(f.dims, window, None, f.depth), 0, math.prod(shape))
