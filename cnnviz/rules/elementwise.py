"""Ops that work element by element: activations, dropout, normalisation, binary arithmetic.

They keep each unit's window (binary ops take the hull of their operands' windows).
Normalisation follows the usual receptive-field convention: its statistics are treated as
constants (inference semantics), so it is per-position. ``extra`` counts 1 op per output
element for activations and binary ops and 2 for normalisation (scale and shift).
"""

from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F

from cnnviz import fmt
from cnnviz.receptive import merge, mix_dim, nearby_channels
from cnnviz.rules.binary import binary, broadcast, result_dtype
from cnnviz.rules.registry import Kind, Out, RuleError, dim_index, probe_dtype, register


def _inplace_index(func) -> int | None:
    try:
        params = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return None
    return params.index("inplace") if "inplace" in params else None


def _unary(funcs, kind: Kind, per_elem: int, always_inplace=()):
    """Register a same-shape unary rule for ``funcs``; ``inplace`` is found per function."""
    for func in dict.fromkeys(f for f in funcs if f is not None):  # F.relu_ is torch.relu_
        pos = _inplace_index(func)
        forced = func in always_inplace

        def rule(ctx, input, *args, _pos=pos, _forced=forced, _func=func, **kwargs):
            inplace = _forced or bool(kwargs.get("inplace", False))
            if _pos is not None and len(args) >= _pos:
                inplace = inplace or bool(args[_pos - 1])
            dtype = input.dtype
            if not dtype.is_floating_point:  # ints and bools: PyTorch's own verdict
                kw = {k: v for k, v in kwargs.items() if k != "inplace"}
                dtype = probe_dtype(
                    _func, _clean(_func), input, *args[: _pos - 1 if _pos else None], **kw
                )
            value = input if inplace else ctx.new(tuple(input.shape), input, dtype)
            return Out(value, ctx.flow(input), 0, per_elem * input.numel())

        register(func, kind=kind, name=_clean(func))(rule)


def _clean(func) -> str:
    name = getattr(func, "__name__", "op").strip("_")
    return name[:-1] if name.endswith("_") else name


_T = torch.Tensor
_ACT = [
    F.relu,
    F.relu_,
    torch.relu,
    torch.relu_,
    _T.relu,
    _T.relu_,
    F.relu6,
    F.hardtanh,
    F.hardtanh_,
    F.leaky_relu,
    F.leaky_relu_,
    F.elu,
    F.elu_,
    F.selu,
    F.celu,
    F.gelu,
    F.silu,
    F.mish,
    F.hardswish,
    F.hardsigmoid,
    F.softplus,
    F.softsign,
    F.tanhshrink,
    F.logsigmoid,
    F.prelu,
    F.rrelu,
    torch.sigmoid,
    _T.sigmoid,
    _T.sigmoid_,
    torch.tanh,
    _T.tanh,
    _T.tanh_,
    torch.sigmoid_,
    torch.tanh_,
    F.threshold,
]
_INPLACE = {
    F.relu_,
    torch.relu_,
    _T.relu_,
    F.hardtanh_,
    F.leaky_relu_,
    F.elu_,
    _T.sigmoid_,
    _T.tanh_,
    torch.sigmoid_,
    torch.tanh_,
}
_unary([f for f in _ACT if f is not None], "activation", 1, _INPLACE)

_POINTWISE = [
    torch.abs,
    _T.abs,
    torch.neg,
    _T.neg,
    _T.__neg__,
    torch.exp,
    _T.exp,
    torch.log,
    _T.log,
    torch.sqrt,
    _T.sqrt,
    torch.rsqrt,
    _T.rsqrt,
    torch.square,
    _T.square,
    torch.reciprocal,
    _T.reciprocal,
    torch.clamp,
    _T.clamp,
    _T.clamp_,
    torch.clamp_min,
    _T.clamp_min,
    torch.clamp_max,
    _T.clamp_max,
    torch.sign,
    torch.erf,
    torch.sin,
    torch.cos,
    torch.floor,
    torch.ceil,
    torch.round,
    _T.__abs__,
]
_unary(_POINTWISE, "elementwise", 1, {_T.clamp_})

_DROP = [F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout]


@register(*_DROP, kind="dropout", name="dropout")
def dropout_rule(ctx, input, p=0.5, training=True, inplace=False):
    # In eval mode (or in place) PyTorch hands back the input itself: no new memory.
    value = input if inplace or not training else ctx.new(tuple(input.shape), input)
    return Out(value, ctx.flow(input), 0, 0)


@register(F.batch_norm, kind="norm", name="batch_norm")
def batch_norm_rule(
    ctx,
    input,
    running_mean,
    running_var,
    weight=None,
    bias=None,
    training=False,
    momentum=0.1,
    eps=1e-5,
):
    if not input.dtype.is_floating_point:
        raise RuleError(f"batch_norm needs a floating-point input, got {input.dtype}")
    c = input.shape[1] if input.dim() > 1 else None
    stats = next((t for t in (running_mean, weight, running_var, bias) if t is not None), None)
    if stats is not None and c != stats.numel():
        raise RuleError(
            f"expects {stats.numel()} channels, got {c} (input {fmt.shape(input.shape)})"
        )
    if training:
        ctx.note("batch statistics", _STATS.format(what="training-mode batch_norm"))
    if training and c and input.numel() // c <= 1:
        raise RuleError(
            f"expected more than 1 value per channel when training, got input "
            f"{fmt.shape(input.shape)} (use mode='eval' or a larger input)"
        )
    return Out(ctx.new(tuple(input.shape), input), ctx.flow(input), 0, 2 * input.numel())


#: Normalisation statistics computed from the input make every unit depend, a little, on
#: every position they average over; the convention (BN at inference is per-position, as in
#: Araujo et al., Distill 2019, extended to these) keeps the geometric field and says so.
_STATS = (
    "{what} computes its statistics over spatial positions; cnnviz takes them as constants "
    "(like BatchNorm's running statistics), so the receptive field is the geometric one; "
    "strictly, every unit also sees the whole map through them"
)


def _spatial_stats(ctx, input, dims, what: str) -> None:
    """Note ``what`` when the dims it averages over include a spatial axis of the input."""
    labels = ctx.flow(input).dims
    if any(isinstance(labels[d], int) and input.shape[d] > 1 for d in dims):
        ctx.note(what, _STATS.format(what=what))


def _norm_out(ctx, input) -> Out:
    if not input.dtype.is_floating_point:
        raise RuleError(f"normalisation needs a floating-point input, got {input.dtype}")
    return Out(ctx.new(tuple(input.shape), input), ctx.flow(input), 0, 2 * input.numel())


def _per_channel(input, what: str, *stats) -> None:
    c = input.shape[1] if input.dim() > 1 else None
    for t in stats:
        if t is not None and t.numel() != c:
            raise RuleError(
                f"{what} expects {t.numel()} channels, got {c} (input {fmt.shape(input.shape)})"
            )


@register(F.layer_norm, F.rms_norm, kind="norm", name="norm")
def layer_norm_rule(ctx, input, normalized_shape, *args, **kwargs):
    want = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(input.shape[input.dim() - len(want) :]) != want or len(want) > input.dim():
        raise RuleError(
            f"normalizes over the last dims {fmt.shape(want)}, but the input is "
            f"{fmt.shape(input.shape)}"
        )
    _spatial_stats(ctx, input, range(input.dim() - len(want), input.dim()), "layer_norm")
    return _norm_out(ctx, input)


@register(F.group_norm, kind="norm", name="norm")
def group_norm_rule(ctx, input, num_groups, weight=None, bias=None, eps=1e-5):
    c = input.shape[1] if input.dim() > 1 else None
    if c is None or c % num_groups:
        raise RuleError(
            f"{num_groups} groups do not divide {c} channels (input {fmt.shape(input.shape)})"
        )
    _per_channel(input, "group_norm", weight, bias)
    _spatial_stats(ctx, input, range(2, input.dim()), "group_norm")
    return _norm_out(ctx, input)


@register(F.instance_norm, kind="norm", name="norm")
def instance_norm_rule(ctx, input, running_mean=None, running_var=None, weight=None, bias=None,
                       *args, **kwargs):  # fmt: skip
    _per_channel(input, "instance_norm", running_mean, running_var, weight, bias)
    if kwargs.get("use_input_stats", args[0] if args else True):
        _spatial_stats(ctx, input, range(2, input.dim()), "instance_norm")
    return _norm_out(ctx, input)


@register(F.local_response_norm, kind="norm", name="local_response_norm")
def lrn_rule(ctx, input, size, alpha=1e-4, beta=0.75, k=1.0):
    # Channel c sees channels c - size//2 .. c + (size-1)//2 (PyTorch pads the channel dim so).
    flow = nearby_channels(ctx.flow(input), size // 2, (size - 1) // 2, "local_response_norm")
    return Out(
        ctx.new(tuple(input.shape), input),
        flow,
        0,
        (size + 3) * input.numel(),
    )


@register(
    F.softmax,
    F.log_softmax,
    _T.softmax,
    _T.log_softmax,
    torch.softmax,
    torch.log_softmax,
    kind="activation",
    name="softmax",
)
def softmax_rule(ctx, input, dim=None, *args, **kwargs):
    if dim is None:
        raise RuleError("softmax needs an explicit dim")
    if not input.dtype.is_floating_point and kwargs.get("dtype") is None:
        raise RuleError(f"softmax needs a floating-point input, got {input.dtype}")
    return Out(
        ctx.new(tuple(input.shape), input),
        mix_dim(ctx.flow(input), dim_index(dim, input)),
        0,
        3 * input.numel(),
    )


for _name in ("add", "sub", "mul", "div", "maximum", "minimum"):
    _fs = [getattr(torch, _name), getattr(_T, _name)]
    _dunder = {
        "add": ["__add__", "__radd__"],
        "sub": ["__sub__", "__rsub__"],
        "mul": ["__mul__", "__rmul__"],
        "div": ["__truediv__", "__rtruediv__"],
    }
    _fs += [getattr(_T, d) for d in _dunder.get(_name, [])]
    _div = _name == "div"
    register(*_fs, kind="elementwise", name=_name)(binary(False, true_div=_div))
    _ip = [getattr(_T, _name + "_", None)]
    _ip += [getattr(_T, "__i" + d[2:], None) for d in _dunder.get(_name, [])[:1]]
    register(*[f for f in _ip if f is not None], kind="elementwise", name=_name)(
        binary(True, true_div=_div)
    )


register(torch.pow, _T.pow, _T.__pow__, _T.__rpow__, kind="elementwise", name="pow")(binary(False))
register(_T.pow_, _T.__ipow__, kind="elementwise", name="pow")(binary(True))


@register(torch.addcmul, _T.addcmul, torch.addcdiv, _T.addcdiv, kind="elementwise", name="addcmul")
def addcmul_rule(ctx, input, tensor1, tensor2, *, value=1):
    """input + value * t1 * t2 (or / t2): a broadcast merge of three operands."""
    operands = [t for t in (input, tensor1, tensor2) if isinstance(t, torch.Tensor)]
    shape = broadcast(*(tuple(t.shape) for t in operands))
    flow = merge([ctx.flow(t) for t in operands], "addcmul", operands)
    dtype = torch.promote_types(result_dtype(input, tensor1), result_dtype(input, tensor2))
    return Out(ctx.new(shape, input, dtype), flow, 0, 2 * math.prod(shape))


@register(F.normalize, kind="norm", name="normalize")
def normalize_rule(ctx, input, p=2.0, dim=1, eps=1e-12, out=None):
    """x / ||x||_p along ``dim``: every element along it sees the others."""
    if out is not None:
        raise RuleError("normalize(out=...) is not supported during analysis")
    flow = mix_dim(ctx.flow(input), dim_index(dim, input))
    return Out(ctx.new(tuple(input.shape), input), flow, 0, 3 * input.numel())


for _name in ("eq", "ne", "gt", "ge", "lt", "le"):
    _fs = [getattr(torch, _name), getattr(_T, _name), getattr(_T, f"__{_name}__")]
    register(*_fs, kind="elementwise", name=_name)(binary(False, out_dtype=torch.bool))


@register(torch.where, _T.where, kind="elementwise", name="where")
def where_rule(ctx, condition, input=None, other=None):
    if input is None:
        raise RuleError("torch.where(condition) without values returns indices: not supported")
    operands = [t for t in (condition, input, other) if isinstance(t, torch.Tensor)]
    shape = broadcast(*(tuple(t.shape) for t in operands))
    flow = merge([ctx.flow(t) for t in operands], "torch.where", operands)
    dtype = result_dtype(input, other)
    return Out(ctx.new(shape, condition, dtype), flow, 0, math.prod(shape))
