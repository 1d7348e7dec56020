"""``F.interpolate`` (and ``nn.Upsample``): the output size, and the window where one exists.

Nearest-neighbour downsampling by a whole factor k picks every k-th pixel, so it is a strided
slice: r stays, S *= k (Araujo et al., Distill 2019: a layer of kernel 1 and stride k).
``area`` mode is an adaptive average pool. Upsampling maps units to fractional input
positions, so its window varies from unit to unit; other resampling has no rule here.
"""

from __future__ import annotations

import math

import torch.nn.functional as F

from cnnviz import fmt
from cnnviz.geometry import adaptive_window, nearest_pick
from cnnviz.receptive import Flow, each_group, reduce_dims, shift_dim, slide_dims, unknown
from cnnviz.rules.registry import Out, RuleError, register

#: Modes and the input rank they need (the others take 3-d to 5-d inputs).
_RANK = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}


def _out_size(spatial: tuple[int, ...], size, scale_factor) -> tuple[tuple[int, ...], tuple]:
    """Output spatial size and the per-axis scale factors (None when a size is given)."""
    n = len(spatial)
    if size is not None:
        out = (size,) * n if isinstance(size, int) else tuple(size)
        if len(out) != n:
            raise RuleError(
                f"interpolate size {fmt.shape(out)} has {len(out)} dims, the input has {n} "
                "spatial dims"
            )
        return tuple(int(o) for o in out), (None,) * n
    if scale_factor is None:
        raise RuleError("interpolate needs size or scale_factor")
    sf = (scale_factor,) * n if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    if len(sf) != n:
        raise RuleError(
            f"interpolate scale_factor {sf} has {len(sf)} values, the input has {n} spatial dims"
        )
    out = tuple(math.floor(L * float(s)) for L, s in zip(spatial, sf, strict=True))
    return out, tuple(float(s) for s in sf)


def _window(flow: Flow, dims, spatial, out, scales, mode: str) -> Flow:
    """The output's flow: a strided pick per axis for nearest, an adaptive pool for area;
    unknown for the rest, saying whether it is an upsampling."""
    if mode in ("nearest", "nearest-exact"):
        picks = [
            nearest_pick(L, o, s, mode == "nearest-exact")
            for L, o, s in zip(spatial, out, scales, strict=True)
        ]
        if all(p is not None for p in picks):
            for d, (start, step) in zip(dims, picks, strict=True):  # type: ignore[misc]
                flow = shift_dim(flow, d, start, step)
            return flow
    elif mode == "area":  # PyTorch runs adaptive_avg_pool for it
        windows = [adaptive_window(L, o) for L, o in zip(spatial, out, strict=True)]
        if all(w is not None for w in windows):
            whole = tuple(d for d, o in zip(dims, out, strict=True) if o == 1)
            slid = [(d, w) for d, o, w in zip(dims, out, windows, strict=True) if o != 1]
            if slid:
                ks = tuple(w[0] for _, w in slid)  # type: ignore[index]
                ss = tuple(w[1] for _, w in slid)  # type: ignore[index]
                zeros, ones = (0,) * len(ks), (1,) * len(ks)
                sd = tuple(d for d, _ in slid)
                flow = slide_dims(flow, sd, ks, ss, zeros, ones, False, "area interpolation")
            return reduce_dims(flow, whole, keep=True) if whole else flow
    elif out == spatial and all(s in (None, 1.0) for s in scales):
        return flow  # scale 1: every output pixel is its input pixel
    changed = [(L, o) for L, o in zip(spatial, out, strict=True) if o != L]
    if changed and all(o > L for L, o in changed):
        reason = f"{mode} upsampling: the window varies from unit to unit"
    else:
        reason = f"{mode} resampling from {fmt.shape(spatial)} to {fmt.shape(out)}: " + (
            "the window varies from unit to unit"
            if "nearest" in mode
            else "no rule gives its window"
        )
    return each_group(flow, lambda w: unknown(w, reason))


@register(F.interpolate, kind="upsample", name="interpolate")
def interpolate_rule(
    ctx,
    input,
    size=None,
    scale_factor=None,
    mode="nearest",
    align_corners=None,
    recompute_scale_factor=None,
    antialias=False,
):
    n = input.dim() - 2
    if n < 1:
        raise RuleError(f"interpolate needs a 3-d to 5-d input, got {fmt.shape(input.shape)}")
    need = _RANK.get(mode)
    if need is not None and n != need:
        raise RuleError(
            f"interpolate mode={mode!r} needs a {need + 2}-d input, got {fmt.shape(input.shape)}"
        )
    spatial = tuple(input.shape[2:])
    out, scales = _out_size(spatial, size, scale_factor)
    if min(out) <= 0:
        raise RuleError(
            f"interpolate would output {fmt.shape(out)} from {fmt.shape(spatial)}", too_small=True
        )
    if recompute_scale_factor:
        scales = (None,) * n  # PyTorch then resamples by size alone
    shape = (*input.shape[:2], *out)
    dims = tuple(range(2, input.dim()))
    flow = _window(ctx.flow(input), dims, spatial, out, scales, mode)
    return Out(ctx.new(shape, input), flow, 0, math.prod(shape))
