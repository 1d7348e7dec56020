"""Ops that move data without arithmetic: reshapes, permutes, indexing, padding, concat and
split.

View-like ops run on the meta device (their C++ kernels are cheap); the rule only works out
which tensor dim is which input axis afterwards.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cnnviz import fmt
from cnnviz.receptive import (
    BATCH,
    CHAN,
    FOLD,
    ONE,
    Flow,
    Unknown,
    Window,
    concat_channels,
    each_group,
    merge,
    mix_channels,
    pad_channels,
    select_channels,
    shift_dim,
    unknown,
    written_into,
)
from cnnviz.rules.registry import Out, RuleError, dim_index, register

_T = torch.Tensor


def reshape_dims(flow: Flow, a: tuple[int, ...], b: tuple[int, ...]) -> Flow:
    """Labels of shape ``b`` given labels of shape ``a``, grouping dims by equal products."""
    groups, i, j = [], 0, 0
    while i < len(a) or j < len(b):
        gi, gj = ([i] if i < len(a) else []), ([j] if j < len(b) else [])
        pi, pj = (a[i] if gi else 1), (b[j] if gj else 1)
        i, j = i + len(gi), j + len(gj)
        while pi != pj:
            if (pi < pj and i < len(a)) or j >= len(b):
                if i >= len(a):
                    break
                gi.append(i)
                pi *= a[i]
                i += 1
            else:
                gj.append(j)
                pj *= b[j]
                j += 1
        groups.append((gi, gj))
    labels: list[str | int] = [ONE] * len(b)
    keep_groups = True
    for gi, gj in groups:
        src = [flow.dims[k] for k in gi if a[k] != 1]
        dst = [k for k in gj if b[k] != 1]
        if not dst:
            continue
        if len(src) == 1 and len(dst) == 1:
            labels[dst[0]] = src[0]
            continue
        spatial = any(isinstance(s, int) or s == FOLD for s in src)
        if CHAN in src:
            keep_groups = False
        lab = FOLD if spatial else (CHAN if CHAN in src or not src else BATCH)
        for k in dst:
            labels[k] = lab
    out = Flow(tuple(labels), flow.window, flow.groups, flow.depth)
    return out if keep_groups else mix_channels(out)


def _view_rule(func):
    def rule(ctx, input, *args, **kwargs):
        value = func(input, *args, **kwargs)
        if value.untyped_storage()._cdata != input.untyped_storage()._cdata:
            ctx.adopt(value)  # reshape/flatten of a non-contiguous tensor copies: new memory
        return Out(value, reshape_dims(ctx.flow(input), tuple(input.shape), tuple(value.shape)))

    return rule


for _f in (
    _T.view,
    _T.reshape,
    torch.reshape,
    torch.flatten,
    _T.flatten,
    _T.unflatten,
    torch.squeeze,
    _T.squeeze,
    torch.unsqueeze,
    _T.unsqueeze,
    _T.view_as,
    _T.reshape_as,
):
    register(_f, kind="reshape", name=_f.__name__)(_view_rule(_f))


def _expand_rule(func):
    def rule(ctx, input, *args, **kwargs):
        value = func(input, *args, **kwargs)
        f = ctx.flow(input)
        extra = value.dim() - input.dim()
        window = f.window
        grown = [
            lab
            for lab, a, b in zip(f.dims, input.shape, value.shape[extra:], strict=True)
            if isinstance(lab, int) and a == 1 and b > 1
        ]
        if isinstance(window, Window) and any(a not in window.global_axes for a in grown):
            # one position repeated along an axis: its window does not move with the unit
            window = Unknown("expand repeats one position along a spatial axis")
        return Out(value, Flow((ONE,) * extra + f.dims, window, f.groups, f.depth))

    return rule


for _f in (_T.expand, _T.expand_as):
    register(_f, kind="reshape", name="expand")(_expand_rule(_f))


@register(_T.repeat, kind="reshape", name="repeat")
def repeat_rule(ctx, input, *sizes):
    """Tiling: copies along channels keep the window (the hull over them); along a spatial
    axis, unit i sees position i mod n, which no (r, S, P) describes."""
    reps = tuple(sizes[0]) if len(sizes) == 1 and not isinstance(sizes[0], int) else sizes
    value = input.repeat(*reps)
    ctx.adopt(value)
    f = ctx.flow(input)
    extra = len(reps) - input.dim()
    dims = (ONE,) * extra + f.dims
    tiled = [lab for lab, r in zip(dims, reps, strict=True) if r > 1]
    window = f.window
    if any(isinstance(lab, int) for lab in tiled):
        window = unknown(window, "repeat tiles a spatial axis")
    groups = None if tiled else f.groups
    return Out(value, Flow(dims, window, groups, f.depth))


def _permute(order: list[int], flow: Flow) -> Flow:
    return Flow(tuple(flow.dims[k] for k in order), flow.window, flow.groups, flow.depth)


@register(torch.permute, _T.permute, kind="reshape", name="permute")
def permute_rule(ctx, input, *dims, **kwargs):
    if "dims" in kwargs:
        dims = (kwargs["dims"],)
    order = list(dims[0]) if len(dims) == 1 and not isinstance(dims[0], int) else list(dims)
    order = [dim_index(d, input) for d in order]
    if sorted(order) != list(range(input.dim())):
        raise RuleError(f"permute order {order} is not a permutation of {input.dim()} dims")
    return Out(input.permute(order), _permute(order, ctx.flow(input)))


@register(torch.transpose, _T.transpose, kind="reshape", name="transpose")
def transpose_rule(ctx, input, dim0, dim1):
    order = list(range(input.dim()))
    d0, d1 = dim_index(dim0, input), dim_index(dim1, input)
    order[d0], order[d1] = order[d1], order[d0]
    return Out(input.transpose(d0, d1), _permute(order, ctx.flow(input)))


@register(_T.__getitem__, kind="reshape", name="getitem")
def getitem_rule(ctx, input, index):
    value = _T.__getitem__(input, index)
    f = ctx.flow(input)
    items = index if isinstance(index, tuple) else (index,)
    if any(not (i is None or i is Ellipsis or isinstance(i, (int, slice))) for i in items):
        # Advanced indexing can gather anything from anywhere.
        reason = "advanced (tensor) indexing"
        window = unknown(f.window, reason)
        return Out(value, Flow((CHAN,) * value.dim(), window, None, f.depth))
    used = sum(1 for i in items if i is not None and i is not Ellipsis)
    expanded: list = []
    for i in items:
        expanded.extend([slice(None)] * (input.dim() - used) if i is Ellipsis else [i])
    labels: list[str | int] = []
    d = 0
    for item in expanded:
        if item is None:
            labels.append(ONE)
            continue
        size, lab = input.shape[d], f.dims[d]
        if isinstance(item, int):
            start, stop, step = item % size, item % size + 1, 1
        else:
            start, stop, step = item.indices(size)
            labels.append(lab)
        if lab == CHAN:
            f = select_channels(f, start, stop, step)
        elif isinstance(lab, int):
            f = shift_dim(f, d, start, step)
        d += 1
    labels.extend(f.dims[d:])
    return Out(value, Flow(tuple(labels), f.window, f.groups, f.depth))


@register(torch.narrow, _T.narrow, kind="reshape", name="narrow")
def narrow_rule(ctx, input, dim, start, length):
    """``x.narrow(d, start, n)`` is the slice ``start:start + n`` along ``d``."""
    d = dim_index(dim, input)
    start = int(start) % input.shape[d] if int(start) < 0 else int(start)
    index = (*[slice(None)] * d, slice(start, start + int(length)))
    if start + int(length) > input.shape[d]:
        raise RuleError(
            f"narrow({d}, {start}, {length}) runs past the size {input.shape[d]} of dim {d}"
        )
    return getitem_rule(ctx, input, index)


@register(_T.__setitem__, kind="reshape", name="setitem")
def setitem_rule(ctx, input, index, value):
    """``y[idx] = v`` writes into ``y``: from here on ``y`` also sees what ``v`` sees, as for
    any in-place write into a view (:func:`~cnnviz.receptive.written_into`)."""
    if not input.is_meta:
        return Out(None, None)  # a user's real tensor: never write into it
    meta_value = value.to("meta") if isinstance(value, torch.Tensor) else value
    _T.__setitem__(input, index, meta_value)  # raises on a shape mismatch, as PyTorch would
    if isinstance(value, torch.Tensor):
        region = getitem_rule(ctx, input, index)  # the view written into, and its window
        part = merge([region.flow, ctx.flow(value)], "a slice assignment")
        flow = written_into(ctx.flow(input), tuple(input.shape), part, tuple(region.value.shape))
        ctx.set_flow(input, flow)
    return Out(None, None)


@register(F.pad, kind="pad", name="pad")
def pad_rule(ctx, input, pad, mode="constant", value=None):
    pad = list(pad)
    if len(pad) % 2 or len(pad) // 2 > input.dim():
        raise RuleError(f"pad {pad} does not fit a {input.dim()}-d input")
    shape = list(input.shape)
    f = ctx.flow(input)
    for k in range(len(pad) // 2):
        d = input.dim() - 1 - k
        left, right = pad[2 * k], pad[2 * k + 1]
        size = input.shape[d]
        if mode == "reflect" and max(left, right) >= size:
            raise RuleError(
                f"reflect padding {max(left, right)} must be less than the size {size} of dim "
                f"{d} (input {fmt.shape(input.shape)})",
                too_small=True,
            )
        if mode == "circular" and max(left, right) > size:
            raise RuleError(
                f"circular padding {max(left, right)} is more than the size {size} of dim {d} "
                f"(input {fmt.shape(input.shape)})",
                too_small=True,
            )
        shape[d] += left + right
        if shape[d] <= 0:
            raise RuleError(f"pad {pad} leaves dim {d} of {fmt.shape(input.shape)} empty")
        if f.dims[d] == CHAN:
            f = pad_channels(f, left, right, input.shape[d])
            continue
        f = shift_dim(f, d, -left, 1)
        spatial = isinstance(f.dims[d], int) or f.dims[d] == FOLD
        if spatial and max(left, right) > 0 and mode != "constant":
            f = _border(ctx, f, mode)
    return Out(ctx.new(tuple(shape), input), f)


#: What a border unit reads instead of zeros, per padding mode (PyTorch's ``F.pad`` docs).
_BORDER_READS = {"reflect": "mirrored pixels", "replicate": "copies of the edge pixel"}


def _border(ctx, f: Flow, mode: str) -> Flow:
    """A padding mode other than zeros, along a spatial dim. Circular padding wraps around: a
    border unit also sees the far side of the image, so its field is no window [lo, hi] and
    no (r, S, P) describes every unit. Reflect and replicate read pixels inside the input
    instead of zeros, so the geometric window stays exact for every unit whose window lies
    inside the input; a note says what a border unit reads."""
    if mode == "circular":
        reason = (
            "circular padding wraps around: a border unit also sees the far side of the "
            "input, which no window describes"
        )
        return each_group(f, lambda w: unknown(w, reason))
    reads = _BORDER_READS.get(mode, f"{mode}-padded pixels")
    ctx.note(
        f"{mode} padding",
        f"{mode} padding: a unit whose window reaches past the border reads {reads} inside "
        "the input where zero padding reads zeros; the window shown is the geometric one, "
        "exact for every unit away from the border",
    )
    return f


@register(torch.cat, torch.concat, torch.concatenate, kind="merge", name="cat")
def cat_rule(ctx, tensors, dim=0, *, axis=None, out=None):
    if out is not None:
        raise RuleError("cat(out=...) is not supported during analysis")
    tensors = list(tensors)
    if not tensors:
        raise RuleError("cat of no tensors")
    dim = axis if axis is not None else dim
    ref = tensors[0]
    d = dim_index(dim, ref)
    for t in tensors[1:]:
        if t.dim() != ref.dim() or any(
            a != b for k, (a, b) in enumerate(zip(t.shape, ref.shape, strict=True)) if k != d
        ):
            raise RuleError(
                f"cannot concatenate {', '.join(fmt.shape(x.shape) for x in tensors)} on dim {d}"
            )
    shape = list(ref.shape)
    shape[d] = sum(t.shape[d] for t in tensors)
    flows = [ctx.flow(t) for t in tensors]
    live = next((fl for fl in flows if fl.window is not None), flows[0])
    lab = live.dims[d]
    if lab == CHAN:
        flow = concat_channels(flows, [t.shape[d] for t in tensors], "a concat")
    elif lab in (BATCH, ONE):
        flow = merge(flows, "a concat")
    else:
        m = merge(flows, "a concat")
        window = unknown(m.window, "concat along a spatial dim")
        flow = Flow(m.dims, window, None, m.depth)
    return Out(ctx.new(tuple(shape), ref), flow)


@register(torch.stack, kind="merge", name="stack")
def stack_rule(ctx, tensors, dim=0, *, out=None):
    """Stacking along a new dim: a merge (the hull of the inputs' windows) with the new dim
    indexing the inputs, like channels."""
    if out is not None:
        raise RuleError("stack(out=...) is not supported during analysis")
    tensors = list(tensors)
    if not tensors:
        raise RuleError("stack of no tensors")
    ref = tensors[0]
    if any(tuple(t.shape) != tuple(ref.shape) for t in tensors):
        raise RuleError(
            "stack needs tensors of one shape, got "
            + ", ".join(fmt.shape(t.shape) for t in tensors)
        )
    n = ref.dim() + 1  # the result's rank: the new dim may go before or after every old one
    if not -n <= int(dim) < n:
        raise RuleError(f"stack dim {dim} is out of range for {n}-d results (-{n} to {n - 1})")
    d = int(dim) % n
    m = merge([ctx.flow(t) for t in tensors], "a stack", tensors)
    flow = Flow((*m.dims[:d], CHAN, *m.dims[d:]), m.window, None, m.depth)
    shape = (*ref.shape[:d], len(tensors), *ref.shape[d:])
    return Out(ctx.new(shape, ref), flow)


@register(torch.unbind, _T.unbind, kind="reshape", name="unbind")
def unbind_rule(ctx, input, dim=0):
    """The slices along ``dim``, each as ``x.select(dim, i)``."""
    d = dim_index(dim, input)
    parts = [getitem_rule(ctx, input, (*[slice(None)] * d, i)) for i in range(input.shape[d])]
    return Out(tuple(p.value for p in parts), [p.flow for p in parts])


def _split_rule(func):
    def rule(ctx, input, *args, **kwargs):
        parts = func(input, *args, **kwargs)
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        f = ctx.flow(input)
        d = dim_index(dim, input)
        flows, start = [], 0
        for p in parts:
            n = p.shape[d]
            if f.dims[d] == CHAN:
                flows.append(select_channels(f, start, start + n, 1))
            else:
                flows.append(shift_dim(f, d, start, 1))
            start += n
        return Out(parts, flows)

    return rule


for _f in (torch.split, _T.split, torch.chunk, _T.chunk, torch.tensor_split):
    register(_f, kind="reshape", name=_f.__name__)(_split_rule(_f))
