"""Pooling and reductions: sliding windows per channel, adaptive pools, mean/sum/amax.

``extra`` counts one op per window element per output (max: comparisons k-1, average: k).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cnnviz import fmt
from cnnviz.geometry import adaptive_window, out_len, pool_fits
from cnnviz.receptive import each_group, reduce_dims, slide_dims, unknown
from cnnviz.rules.binary import binary_rule
from cnnviz.rules.registry import Ctx, Out, RuleError, dim_index, ntuple, positive, register


def _pool(ctx: Ctx, n, x, kernel_size, stride, padding, dilation, ceil_mode, avg, what) -> Out:
    if x.dim() not in (n + 1, n + 2):
        raise RuleError(f"{what} expects a {n + 1}-d or {n + 2}-d input, got {fmt.shape(x.shape)}")
    k = positive(ntuple(kernel_size, n, "kernel_size"), "kernel_size")
    s = ntuple(stride if stride is not None and stride != [] and stride != () else k, n, "stride")
    s = positive(s, "stride")
    p = ntuple(padding, n, "padding")
    d = positive(ntuple(dilation, n, "dilation"), "dilation")
    if min(p) < 0:
        raise RuleError(f"padding {fmt.shape(p)} must not be negative")
    if any(pp > kk // 2 for pp, kk in zip(p, k, strict=True)):
        raise RuleError(f"padding {fmt.shape(p)} is more than half the kernel {fmt.shape(k)}")
    spatial = tuple(x.shape[-n:])
    if not pool_fits(spatial, k, avg):
        raise RuleError(
            f"input {fmt.shape(spatial)} is smaller than the kernel {fmt.shape(k)} (PyTorch's "
            f"{what} does not count padding here)",
            too_small=True,
        )
    out = tuple(
        out_len(L, kk, ss, 2 * pp, dd, bool(ceil_mode))
        for L, kk, ss, pp, dd in zip(spatial, k, s, p, d, strict=True)
    )
    if min(out) <= 0:
        raise RuleError(
            f"k={fmt.shape(k)} s={fmt.shape(s)} would output {fmt.shape(out)} "
            f"from {fmt.shape(spatial)}",
            too_small=True,
        )
    shape = (*x.shape[:-n], *out)
    numel = math.prod(shape)
    extra = numel * (math.prod(k) if avg else math.prod(k) - 1)
    tdims = tuple(range(x.dim() - n, x.dim()))
    # A window that covers a whole (padded) axis in one output position is a global pool of
    # that axis (an SE block's avg_pool2d(y, y.shape[2:])): every unit sees all of it.
    whole = tuple(
        t
        for t, L, kk, pp, dd, o in zip(tdims, spatial, k, p, d, out, strict=True)
        if o == 1 and dd * (kk - 1) + 1 >= L + 2 * pp
    )
    slid = [i for i, t in enumerate(tdims) if t not in whole]
    flow = ctx.flow(x)
    if slid:
        dims, ks, ss, ps, ds = (tuple(v[i] for i in slid) for v in (tdims, k, s, p, d))
        flow = slide_dims(flow, dims, ks, ss, ps, ds, False, what)
    if whole:
        flow = reduce_dims(flow, whole, keep=True)
    return Out(ctx.new(shape, x), flow, 0, extra)


def _max(n):
    def rule(
        ctx,
        input,
        kernel_size,
        stride=None,
        padding=0,
        dilation=1,
        ceil_mode=False,
        return_indices=False,
    ):
        o = _pool(
            ctx, n, input, kernel_size, stride, padding, dilation, ceil_mode, False, f"max_pool{n}d"
        )
        if return_indices:
            idx = ctx.new(tuple(o.value.shape), o.value, torch.int64)
            o.value = (o.value, idx)
        return o

    return rule


def _avg(n):
    def rule(
        ctx,
        input,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
        divisor_override=None,
    ):
        return _pool(
            ctx, n, input, kernel_size, stride, padding, 1, ceil_mode, True, f"avg_pool{n}d"
        )

    return rule


for _n, _mx, _mxi, _av in (
    (1, F.max_pool1d, F.max_pool1d_with_indices, F.avg_pool1d),
    (2, F.max_pool2d, F.max_pool2d_with_indices, F.avg_pool2d),
    (3, F.max_pool3d, F.max_pool3d_with_indices, F.avg_pool3d),
):
    register(_mx, _mxi, kind="pool", name=f"max_pool{_n}d")(_max(_n))
    register(_av, kind="pool", name=f"avg_pool{_n}d")(_avg(_n))


def _lp(n):
    def rule(ctx, input, norm_type, kernel_size, stride=None, ceil_mode=False):
        # (sum over the window of x^p)^(1/p): an average pool's geometry, no padding
        return _pool(ctx, n, input, kernel_size, stride, 0, 1, ceil_mode, True, f"lp_pool{n}d")

    return rule


for _n, _f in ((1, F.lp_pool1d), (2, F.lp_pool2d), (3, getattr(F, "lp_pool3d", None))):
    if _f is not None:
        register(_f, kind="pool", name=f"lp_pool{_n}d")(_lp(_n))


def _adaptive(n, avg):
    what = f"adaptive_{'avg' if avg else 'max'}_pool{n}d"

    def rule(ctx, input, output_size, return_indices=False):
        x = input
        if x.dim() not in (n + 1, n + 2):
            raise RuleError(f"{what} expects a {n + 2}-d input, got {fmt.shape(x.shape)}")
        spatial = tuple(x.shape[-n:])
        req = (output_size,) * n if isinstance(output_size, int) else tuple(output_size)
        if len(req) == 1 and n > 1:
            req = req * n
        if len(req) != n:
            raise RuleError(f"{what}: output_size {req} has {len(req)} values for {n} spatial dims")
        out = tuple(L if o is None else int(o) for L, o in zip(spatial, req, strict=True))
        if min(out) <= 0:
            raise RuleError(f"{what}: output size {fmt.shape(out)} must be positive")
        shape = (*x.shape[:-n], *out)
        flow = ctx.flow(x)
        tdims = tuple(range(x.dim() - n, x.dim()))
        global_dims = tuple(t for t, o in zip(tdims, out, strict=True) if o == 1)
        geometry = [
            (t, adaptive_window(L, o))
            for t, L, o in zip(tdims, spatial, out, strict=True)
            if o != 1
        ]
        if any(g is None for _, g in geometry):
            L, o = next(
                (L, o)
                for L, o in zip(spatial, out, strict=True)
                if o != 1 and adaptive_window(L, o) is None
            )
            reason = f"{what} from {L} to {o} has windows of varying size"
            flow = each_group(flow, lambda w: unknown(w, reason))
        else:
            if geometry:
                ks = tuple(g[0] for _, g in geometry)  # type: ignore[index]
                ss = tuple(g[1] for _, g in geometry)  # type: ignore[index]
                zeros, ones = (0,) * len(ks), (1,) * len(ks)
                dims = tuple(t for t, _ in geometry)
                flow = slide_dims(flow, dims, ks, ss, zeros, ones, False, what)
            if global_dims:
                flow = reduce_dims(flow, global_dims, keep=True)
        value = ctx.new(shape, x)
        if return_indices:
            value = (value, ctx.new(shape, x, torch.int64))
        return Out(value, flow, 0, math.prod(x.shape))

    return rule


for _n, _aa, _am in (
    (1, F.adaptive_avg_pool1d, F.adaptive_max_pool1d),
    (2, F.adaptive_avg_pool2d, F.adaptive_max_pool2d),
    (3, F.adaptive_avg_pool3d, F.adaptive_max_pool3d),
):
    register(_aa, kind="pool", name=f"adaptive_avg_pool{_n}d")(_adaptive(_n, True))
    register(_am, kind="pool", name=f"adaptive_max_pool{_n}d")(_adaptive(_n, False))
register(F.adaptive_max_pool1d_with_indices, kind="pool", name="adaptive_max_pool1d")(
    _adaptive(1, False)
)
register(F.adaptive_max_pool2d_with_indices, kind="pool", name="adaptive_max_pool2d")(
    _adaptive(2, False)
)


def _dims(x, dim) -> tuple[int, ...]:
    """The dims a reduction runs over: ``None`` and an empty list are all of them, as in
    PyTorch (``x.sum(dim=[])`` is ``x.sum()``)."""
    dims = (dim,) if isinstance(dim, int) else tuple(dim) if dim is not None else ()
    if not dims:
        return tuple(range(x.dim()))
    if not all(isinstance(d, int) for d in dims):  # named dims
        raise RuleError(f"cannot reduce over {dim!r}")
    return tuple(sorted({dim_index(d, x) for d in dims}))


def _reduce_rule(name):
    def rule(ctx, input, dim=None, keepdim=False, *, dtype=None, out=None):
        if out is not None:
            raise RuleError(f"{name}(out=...) is not supported during analysis")
        dims = _dims(input, dim)
        shape = tuple(
            (1 if keepdim else None) if i in dims else s for i, s in enumerate(input.shape)
        )
        shape = tuple(s for s in shape if s is not None)
        if dtype is None and not (input.dtype.is_floating_point or input.dtype.is_complex):
            if name == "mean":
                raise RuleError(
                    f"mean needs a floating-point input, got {input.dtype} (PyTorch refuses it)"
                )
            if name == "sum":
                dtype = torch.int64  # PyTorch sums integers (and bools) in int64
        flow = reduce_dims(ctx.flow(input), dims, bool(keepdim))
        value = ctx.new(shape, input, dtype)
        return Out(value, flow, 0, math.prod(input.shape))

    return rule


register(torch.mean, torch.Tensor.mean, kind="pool", name="mean")(_reduce_rule("mean"))
register(torch.sum, torch.Tensor.sum, kind="pool", name="sum")(_reduce_rule("sum"))
register(torch.amax, torch.Tensor.amax, kind="pool", name="amax")(_reduce_rule("amax"))
register(torch.amin, torch.Tensor.amin, kind="pool", name="amin")(_reduce_rule("amin"))


def _stat_rule(func, name: str):
    """Reductions with many signatures (``x.max(1, keepdim=True)``, ``x.std(1, True)``,
    ``torch.var(x, dim=(2, 3), correction=0)``): PyTorch's meta kernel gives the result; the
    rule reads the reduced dims off the arguments. ``max``/``min`` with a tensor second
    argument are the elementwise ops."""

    def rule(ctx, input, *args, **kwargs):
        other = args[0] if args else kwargs.get("other")
        if isinstance(other, torch.Tensor):
            return binary_rule(ctx, input, other)
        value = func(input, *args, **kwargs)
        parts = list(value) if isinstance(value, tuple) else [value]
        dim = kwargs.get("dim", args[0] if args and not isinstance(args[0], bool) else None)
        dims = _dims(input, dim)
        keep = parts[0].dim() == input.dim() and bool(dims) and input.dim() > 0
        flow = reduce_dims(ctx.flow(input), dims, keep)
        for t in parts:
            ctx.adopt(t)
        flows = [flow] * len(parts) if isinstance(value, tuple) else flow
        return Out(value, flows, 0, math.prod(input.shape))

    return rule


for _f, _name in (
    (torch.max, "max"),
    (torch.Tensor.max, "max"),
    (torch.min, "min"),
    (torch.Tensor.min, "min"),
    (torch.std, "std"),
    (torch.Tensor.std, "std"),
    (torch.var, "var"),
    (torch.Tensor.var, "var"),
):
    register(_f, kind="pool", name=_name)(_stat_rule(_f, _name))
