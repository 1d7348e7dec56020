"""``analyze()``: validate the input, trace one forward pass, assemble the :class:`Analysis`."""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_map

from cnnviz import fmt
from cnnviz.errors import AnalysisError
from cnnviz.receptive import BATCH, CHAN, Flow, Window
from cnnviz.result import Analysis, UncountedOp
from cnnviz.trace import Tracer

_DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "double": torch.float64,
}
_locks: weakref.WeakKeyDictionary[nn.Module, threading.Lock] = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


def _model_lock(model: nn.Module) -> threading.Lock:
    # Hooks and train/eval flags live on the model: two analyses of one model take turns.
    with _locks_guard:
        lock = _locks.get(model)
        if lock is None:
            lock = _locks[model] = threading.Lock()
        return lock


def _dtype(dtype: torch.dtype | str) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype).removeprefix("torch.")]
    except KeyError:
        raise AnalysisError(f"dtype {dtype!r} is not one of {', '.join(sorted(_DTYPES))}") from None


_MAX_NUMEL = 2**62  # beyond this a tensor's byte size overflows int64


def _check_size(size: Any) -> tuple[int, ...]:
    bad = AnalysisError(
        f"input_size must be a sequence of ints such as (1, 3, 224, 224), got {size!r}"
    )
    if isinstance(size, (str, bytes, Mapping)) or not hasattr(size, "__len__"):
        raise bad  # a numpy array or torch.Size is fine; an iterator or a dict is not
    try:
        if any(isinstance(s, (str, bytes, bool)) or float(s) != int(s) for s in size):
            raise ValueError
        shape = tuple(int(s) for s in size)
    except (TypeError, ValueError, OverflowError):
        raise bad from None
    if not shape:
        raise AnalysisError("input_size is empty: give at least (batch, features)")
    for i, s in enumerate(shape):
        if s <= 0:
            what = "zero" if s == 0 else "negative"
            raise AnalysisError(
                f"input_size {fmt.shape(shape)} has a {what} size at dim {i}; every dim, the "
                "batch included, must be at least 1"
            )
    if math.prod(shape) * 8 > _MAX_NUMEL:
        raise AnalysisError(f"input_size {fmt.shape(shape)} is too large to describe a tensor")
    return shape


def _meta_inputs(input_size, inputs, dtype) -> tuple[tuple, dict]:
    if (input_size is None) == (inputs is None):
        raise AnalysisError("give exactly one of input_size=(1, 3, 224, 224) or inputs=...")
    if input_size is not None:
        sizes = input_size
        if isinstance(sizes, (str, bytes, Mapping)) or not hasattr(sizes, "__len__"):
            _check_size(sizes)  # raises: not a sequence of ints
        nested = [isinstance(s, Sequence) and not isinstance(s, (str, bytes)) for s in sizes]
        if len(sizes) and all(nested):
            return tuple(torch.empty(_check_size(s), dtype=dtype, device="meta") for s in sizes), {}
        return (torch.empty(_check_size(sizes), dtype=dtype, device="meta"),), {}

    def to_meta(x):
        if isinstance(x, torch.Tensor):
            if x.numel() == 0:
                raise AnalysisError(f"input tensor {fmt.shape(x.shape)} is empty")
            return torch.empty(x.shape, dtype=x.dtype, device="meta")
        return x

    if isinstance(inputs, torch.Tensor):
        return (to_meta(inputs),), {}
    if isinstance(inputs, Mapping):
        return (), tree_map(to_meta, dict(inputs))
    if isinstance(inputs, (tuple, list)):
        return tuple(tree_map(to_meta, list(inputs))), {}
    raise AnalysisError(f"inputs must be a tensor, a tuple/list or a dict, got {type(inputs)}")


def analyze(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    *,
    inputs: Any = None,
    dtype: torch.dtype | str = torch.float32,
    mode: str = "eval",
) -> Analysis:
    """Trace ``model`` once and return shapes, params, MACs, memory and receptive fields.

    ``input_size`` includes the batch dimension (torchinfo's convention); ``inputs`` may be a
    tensor, a tuple of positional arguments or a dict of keyword arguments (only their shapes
    and dtypes are used). ``dtype`` is the dtype of ``input_size``'s tensors; one other than
    the parameters' analyzes the model as if converted to it. Nothing is computed: the pass
    runs on meta tensors, so a model of any size costs no activation memory. The model is left
    exactly as it was (parameters, buffers, train/eval flags, hooks). Receptive fields are
    measured against the first input with spatial dims (N, C, *spatial).

    >>> import torch.nn as nn, cnnviz
    >>> net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
    >>> a = cnnviz.analyze(net, (1, 3, 32, 32))
    >>> a.layers[-1].output_shape, a.receptive_field().size, a.total_macs
    ((1, 16, 16, 16), (4, 4), 442368)
    """
    if not isinstance(model, nn.Module):
        raise AnalysisError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if mode not in ("eval", "train"):
        raise AnalysisError(f"mode must be 'eval' or 'train', got {mode!r}")
    dt = _dtype(dtype)
    args, kwargs = _meta_inputs(input_size, inputs, dt)
    flat, _ = tree_flatten((args, kwargs))
    tensors = [t for t in flat if isinstance(t, torch.Tensor)]
    ref = next((t for t in tensors if t.dim() >= 3), None)
    spatial = tuple(ref.shape[2:]) if ref is not None else ()
    tracer = Tracer(model, spatial)
    # input_size with another dtype than the parameters' asks "what if this model ran in
    # bfloat16": parameters count as converted, so their dtype is not held against the input.
    param_dtypes = {p.dtype for p in model.parameters() if p.dtype.is_floating_point}
    tracer.strict_dtypes = input_size is None or param_dtypes <= {dt}
    for t in tensors:
        if t is ref:
            n = len(spatial)
            dims = (BATCH, CHAN, *range(n))
            tracer.input(t, Flow(dims, Window((1,) * n, (1,) * n, (0,) * n)))
        else:
            tracer.input(t, Flow((CHAN,) * t.dim(), None))
    shapes = tuple(tuple(t.shape) for t in tensors)

    with _model_lock(model):
        flags = [(m, m.training) for m in model.modules()]
        handles = []
        try:
            model.train(mode == "train")
            for m in model.modules():
                handles.append(m.register_forward_pre_hook(tracer.pre_hook))
                handles.append(m.register_forward_hook(tracer.post_hook))
            try:
                with torch.no_grad(), tracer:
                    output = model(*args, **kwargs)
            except AnalysisError as e:
                sep = " is too small: " if e.too_small else ": "
                msg = f"input {_shapes(shapes)}{sep}{e}"
                raise AnalysisError(msg, e.layer, e.too_small) from None
            except Exception as e:
                layer = tracer.frames[-1].name if tracer.frames else None
                last = (
                    f"; the last layer that ran was `{tracer.last_row}`" if tracer.last_row else ""
                )
                raise AnalysisError(
                    f"input {_shapes(shapes)}: the forward pass failed in {tracer.where()}: "
                    f"{type(e).__name__}: {e}{last}",
                    layer,
                ) from e
        finally:
            for h in handles:
                h.remove()
            for m, training in flags:
                m.training = training

    outs = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
    named = dict(model.named_parameters())
    total = sum(p.numel() for p in named.values())
    trainable = sum(p.numel() for p in named.values() if p.requires_grad)
    pbytes = sum(p.numel() * p.element_size() for p in named.values())
    macs = sum(r.macs for r in tracer.rows)
    unused = tuple(n for n, p in named.items() if id(p) not in tracer.used)
    uncounted = tuple(
        UncountedOp(name, count, tuple(where)) for name, (count, where) in tracer.uncounted.items()
    )
    tracer.containers.setdefault("", tracer.containers.get("", None))
    containers = {k: v for k, v in tracer.containers.items() if v is not None}
    depth = max((tracer.flow(t).depth for t in outs), default=0)
    return Analysis(
        model_name=getattr(model, "zoo_name", None)
        or getattr(model, "spec_name", None)
        or type(model).__name__,
        input_shapes=shapes,
        dtype=str(dt).removeprefix("torch."),
        mode=mode,
        layers=tuple(tracer.rows),
        total_params=total,
        trainable_params=trainable,
        total_macs=macs,
        total_flops=2 * macs,
        total_extra_ops=sum(r.extra_ops for r in tracer.rows),
        activation_bytes=tracer.acct.total,
        peak_activation_bytes=tracer.acct.peak,
        param_bytes=pbytes,
        weighted_depth=depth,
        input_spatial=spatial,
        containers=containers,
        container_shapes=dict(tracer.container_shapes),
        uncounted=uncounted,
        unused_params=unused,
        unused_param_count=sum(named[n].numel() for n in unused),
        output_shapes=tuple(tuple(t.shape) for t in outs),
        notes=tuple(_note_line(text, places) for text, places in tracer.notes.values()),
    )


def _note_line(text: str, places: list[str]) -> str:
    shown = ", ".join(f"`{p or '(root)'}`" for p in places[:3])
    more = f" and {len(places) - 3} more" if len(places) > 3 else ""
    return f"{text} (at {shown}{more})"


def _shapes(shapes) -> str:
    return ", ".join(fmt.shape(s) for s in shapes)
