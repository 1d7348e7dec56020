"""Casts, copies and memory-layout changes: ``x.to(...)``, ``x.float()``, ``x.contiguous()``,
``x.clone()``, ``x.detach()``. They keep every unit's window; only the dtype, and so the bytes
of the output, can change. A cast to the dtype a tensor already has returns the tensor itself,
as PyTorch does (no new memory).
"""

from __future__ import annotations

import torch

from cnnviz.rules.registry import Out, register

_T = torch.Tensor


def _passthrough_dtype(args, kwargs, like):
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.dtype):
            return a
        if isinstance(a, torch.Tensor):
            return a.dtype
    return like.dtype


def _same(alloc: bool):
    def rule(ctx, input, *args, **kwargs):
        if any(isinstance(a, torch.memory_format) for a in (*args, *kwargs.values())):
            return _layout_rule(ctx, input, *args, **kwargs)
        dtype = _passthrough_dtype(args, kwargs, input)
        if not alloc and dtype == input.dtype:
            return Out(input, ctx.flow(input))
        return Out(ctx.new(tuple(input.shape), input, dtype), ctx.flow(input))

    return rule


def _layout_rule(ctx, input, *args, **kwargs):
    """Memory-layout changes keep real strides (a later .view() depends on them); the meta
    kernels for these copies are cheap C++."""
    func = _T.contiguous if not args or isinstance(args[0], torch.memory_format) else _T.to
    if not input.is_meta:  # a user's real tensor: copy its layout, never its data
        input = torch.empty_strided(input.shape, input.stride(), dtype=input.dtype, device="meta")
    value = func(input, *args, **kwargs)
    if value is not input:
        ctx.adopt(value)
    return Out(value, ctx.flow(input))


register(_T.contiguous, kind="reshape", name="contiguous")(_layout_rule)
register(_T.detach, _T.to, _T.requires_grad_, kind="reshape", name="to")(_same(False))
register(_T.type_as, kind="reshape", name="cast")(_same(False))


def _cast(dtype: torch.dtype):
    """``x.float()`` and kin: a fixed dtype, and ``x`` itself when it already has it."""

    def rule(ctx, input, *args, **kwargs):
        if any(isinstance(a, torch.memory_format) for a in (*args, *kwargs.values())):
            return _layout_rule(ctx, input, dtype, *args, **kwargs)
        if input.dtype == dtype:
            return Out(input, ctx.flow(input))
        return Out(ctx.new(tuple(input.shape), input, dtype), ctx.flow(input))

    return rule


for _f, _dt in (
    (_T.float, torch.float32),
    (_T.half, torch.float16),
    (_T.double, torch.float64),
    (_T.bfloat16, torch.bfloat16),
):
    register(_f, kind="reshape", name="cast")(_cast(_dt))
register(_T.clone, torch.clone, kind="reshape", name="clone")(_same(True))
