"""Broadcast binary arithmetic, shared by the elementwise ops (``add``, ``mul``, comparisons)
and the two-tensor forms of ``torch.max``/``torch.min``: NumPy broadcasting of shapes,
PyTorch's type promotion, and the rule that merges the operands' windows.
"""

from __future__ import annotations

import math

import torch

from cnnviz import fmt
from cnnviz.receptive import merge
from cnnviz.rules.registry import Out, RuleError


def broadcast(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy broadcasting of shapes (torch.broadcast_shapes imports sympy on first use).

    >>> broadcast((2, 1, 4), (3, 1))
    (2, 3, 4)
    """
    n = max(len(s) for s in shapes)
    out = [1] * n
    for s in shapes:
        for i, d in enumerate(s, start=n - len(s)):
            if d != 1:
                if out[i] not in (1, d):
                    raise RuleError(
                        "shapes " + " and ".join(fmt.shape(x) for x in shapes) + " do not broadcast"
                    )
                out[i] = d
    return tuple(out)


def result_dtype(a, b=None) -> torch.dtype:
    """PyTorch's type promotion of two operands, tensors or Python scalars.

    >>> result_dtype(torch.zeros(2, dtype=torch.int64), 0.5), result_dtype(1, 2.0)
    (torch.float32, torch.float32)
    """
    if b is None:
        return a.dtype if isinstance(a, torch.Tensor) else torch.tensor(a).dtype
    if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
        return torch.result_type(torch.tensor(a), b)
    return torch.result_type(a, b)


def binary(inplace: bool, out_dtype: torch.dtype | None = None, true_div: bool = False):
    """Broadcast binary op. ``out_dtype`` fixes the result (bool for comparisons);
    ``true_div`` makes integer operands give the default float dtype, as ``/`` does."""

    def rule(ctx, input, other=None, *args, **kwargs):
        operands = [a for a in (input, other) if isinstance(a, torch.Tensor)]
        shape = broadcast(*(tuple(t.shape) for t in operands))
        flow = merge([ctx.flow(t) for t in operands], "an elementwise op", operands)
        n = math.prod(shape)
        dtype = out_dtype or result_dtype(input, other)
        rounding = kwargs.get("rounding_mode", args[0] if args else None)
        if true_div and rounding is None and not (dtype.is_floating_point or dtype.is_complex):
            dtype = torch.get_default_dtype()
        if inplace:
            if tuple(shape) != tuple(input.shape):
                raise RuleError(f"in-place result {fmt.shape(shape)} != {fmt.shape(input.shape)}")
            if not torch.can_cast(dtype, input.dtype):
                raise RuleError(f"in-place result {dtype} can't be cast to {input.dtype}")
            return Out(input, flow, 0, n)
        like = input if isinstance(input, torch.Tensor) else other
        return Out(ctx.new(tuple(shape), like, dtype), flow, 0, n)

    return rule


#: The plain broadcast binary rule (``torch.max(a, b)`` reuses it).
binary_rule = binary(False)
