"""``analyze()``: seed the inputs, run the trace, assemble the :class:`Analysis`.

Three steps, kept apart as torchinfo keeps its statistics apart from its hooks:
:func:`_seed` makes the tracer and gives each input its receptive-field start; :func:`_run`
runs the forward pass with the hooks on and maps its failures to :class:`AnalysisError`;
:func:`_assemble` turns the tracer's rows into frozen records, totals, stages and notes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)
from torch.utils._pytree import tree_leaves, tree_map, tree_map_only

from cnnviz import fmt, productivity, safety, stages
from cnnviz.errors import AnalysisError
from cnnviz.modules import model_lock as _model_lock
from cnnviz.receptive import BATCH, CHAN, Flow, ReceptiveField, Window, to_public
from cnnviz.result import Analysis, FallbackOp, LayerRecord
from cnnviz.trace import DATA_DEPENDENT_HINT, Tracer, data_dependent

_DTYPES = {
    "float32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
    "double": torch.float64,
}


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


def _real_inputs(input_size, inputs, dtype, budget) -> tuple[tuple, dict]:
    """Real CPU inputs for ``device="cpu"``: the tensors given (copied), or seeded random
    normal values (zeros for integer dtypes) of the sizes given; their bytes are checked
    against the cap before any is made."""
    args, kwargs = _meta_inputs(input_size, inputs, dtype)  # validated; shapes only
    tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    budget(sum(t.numel() * t.element_size() for t in tensors))
    gen = torch.Generator().manual_seed(0)

    def values(t: torch.Tensor) -> torch.Tensor:
        if not t.is_meta:
            return t.detach().to("cpu", copy=True)
        if t.dtype.is_floating_point:
            return torch.randn(t.shape, generator=gen, dtype=t.dtype)
        return torch.zeros(t.shape, dtype=t.dtype)

    if inputs is None:
        return tree_map_only(torch.Tensor, values, (args, kwargs))
    if isinstance(inputs, torch.Tensor):
        return (values(inputs),), {}
    if isinstance(inputs, Mapping):
        return (), tree_map_only(torch.Tensor, values, dict(inputs))
    return tuple(tree_map_only(torch.Tensor, values, list(inputs))), {}


def _real_device(device: str | torch.device, model: nn.Module) -> bool:
    """True for ``device="cpu"`` (after checking the model's weights are real CPU tensors),
    False for the default ``"meta"``."""
    name = str(device)
    if name == "meta":
        return False
    if name != "cpu":
        raise AnalysisError(
            f"device must be 'meta' (the default: shapes only, nothing computed) or 'cpu' "
            f"(real tensors, for models whose shapes depend on values), got {device!r}"
        )
    for t in (*model.parameters(), *model.buffers()):
        if t.device.type != "cpu":
            where = "the meta device, with no values" if t.is_meta else str(t.device)
            raise AnalysisError(
                f"device='cpu' runs the model on real CPU tensors, but its weights are on "
                f"{where}: build it on the CPU (cnnviz.zoo.get_model(name) without "
                "device='meta') or move it there with model.cpu() first"
            )
    return True


def _budget(cap_bytes: int | None) -> Callable[[int], None]:
    """The memory check of a CPU trace: ``check(bytes)`` before each allocation."""

    def check(need: int) -> None:
        safety.check(safety.Budget(0, need), "cpu", cap_bytes, what="the CPU trace")

    return check


def analyze(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]] | None = None,
    *,
    inputs: Any = None,
    dtype: torch.dtype | str = torch.float32,
    mode: str = "eval",
    device: str | torch.device = "meta",
    cap_bytes: int | None = safety.DEFAULT_CAP_BYTES,
) -> Analysis:
    """Trace ``model`` once and return shapes, params, MACs, memory and receptive fields.

    ``input_size`` includes the batch dimension (torchinfo's convention); ``inputs`` may be a
    tensor, a tuple of positional arguments or a dict of keyword arguments (only their shapes
    and dtypes are used). ``dtype`` is the dtype of ``input_size``'s tensors; one other than
    the parameters' analyzes the model as if converted to it. Nothing is computed: the pass
    runs on meta tensors, so a model of any size costs no activation memory. The model is left
    exactly as it was (parameters, buffers, train/eval flags, hooks). Receptive fields are
    measured against the first input with spatial dims (N, C, *spatial).

    ``device="cpu"`` runs the pass on real CPU tensors instead, for models whose shapes
    depend on values (detectors: ``.item()``, boolean masks, ``nonzero``): the model's own
    weights (they must be real CPU tensors), seeded random inputs of ``input_size`` or
    copies of ``inputs``, and copies of the buffers (running statistics stay as they were).
    Activation memory is checked against ``cap_bytes`` and the free memory before each op
    that allocates. Ops whose output size depends on values are listed in ``fallback_ops``.

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
    real = _real_device(device, model)
    budget = _budget(cap_bytes) if real else None
    if real:
        try:
            args, kwargs = _real_inputs(input_size, inputs, dt, budget)
        except safety.BudgetError as e:
            raise AnalysisError(f"{e} (for the inputs)") from None
    else:
        args, kwargs = _meta_inputs(input_size, inputs, dt)
    tracer = _seed(model, args, kwargs, real=real, budget=budget)
    # input_size with another dtype than the parameters' asks "what if this model ran in
    # bfloat16": parameters count as converted, so their dtype is not held against the input.
    param_dtypes = {p.dtype for _, p in tracer.params.values() if p.dtype.is_floating_point}
    tracer.strict_dtypes = real or input_size is None or param_dtypes <= {dt}
    output = _run(model, tracer, args, kwargs, mode)
    return _assemble(model, tracer, output, dt, mode)


def _seed(
    model: nn.Module, args: tuple, kwargs: dict, tracer_type: type[Tracer] = Tracer, **options: Any
) -> Tracer:
    """The tracer, with each input's flow: the first input with spatial dims (N, C, ...) is
    where receptive fields start (a 1-pixel window); the others depend on no input position."""
    tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
    ref = next((t for t in tensors if t.dim() >= 3), None)
    spatial = tuple(ref.shape[2:]) if ref is not None else ()
    tracer = tracer_type(model, spatial, **options)
    for t in tensors:
        if t is ref:
            n = len(spatial)
            tracer.input(t, Flow((BATCH, CHAN, *range(n)), Window((1,) * n, (1,) * n, (0,) * n)))
        else:
            tracer.input(t, Flow((CHAN,) * t.dim(), None))
    tracer.input_shapes = tuple(tuple(t.shape) for t in tensors)
    return tracer


def _run(
    model: nn.Module,
    tracer: Tracer,
    args: tuple,
    kwargs: dict,
    mode: str,
    stand_ins: dict[str, torch.Tensor] | None = None,
) -> Any:
    """The forward pass with the tracer's hooks on; the model's flags and hooks are as they
    were afterwards, and every failure is an :class:`AnalysisError` naming the input.
    ``stand_ins`` (parameters and buffers by name) run the model with autograd on, for a
    training step (:mod:`cnnviz.training`); the model's own tensors are not touched."""
    shapes = _shapes(tracer.input_shapes)
    with _model_lock(model):
        flags = [(m, m.training) for m in tracer.modules]
        handles = []
        try:
            model.train(mode == "train")
            handles = [
                register_module_forward_pre_hook(tracer.pre_hook),
                register_module_forward_hook(tracer.post_hook),
            ]
            if tracer.real:
                # real buffers would change (BatchNorm's running statistics in train mode):
                # the pass gets copies of them
                copies = {n: b.clone() for n, b in model.named_buffers()}
                tracer.user_tensors.update(id(b) for b in copies.values())
            try:
                if stand_ins is not None:
                    with torch.enable_grad(), tracer:
                        return torch.func.functional_call(model, stand_ins, args, kwargs)
                with torch.no_grad(), tracer:
                    if not tracer.real:
                        return model(*args, **kwargs)
                    return torch.func.functional_call(model, copies, args, kwargs)
            except AnalysisError as e:
                sep = " is too small: " if e.too_small else ": "
                raise AnalysisError(f"input {shapes}{sep}{e}", e.layer, e.too_small) from None
            except safety.BudgetError as e:
                raise AnalysisError(f"input {shapes}: {e} (before {tracer.where()})") from None
            except Exception as e:
                layer = tracer.frames[-1].name if tracer.frames else None
                last = (
                    f"; the last layer that ran was `{tracer.last_row}`" if tracer.last_row else ""
                )
                hint = DATA_DEPENDENT_HINT if not tracer.real and data_dependent(e) else ""
                raise AnalysisError(
                    f"input {shapes}: the forward pass failed in {tracer.where()}: "
                    f"{type(e).__name__}: {e}{hint}{last}",
                    layer,
                ) from e
        finally:
            for h in handles:
                h.remove()
            for m, training in flags:
                object.__setattr__(m, "training", training)


def _assemble(
    model: nn.Module, tracer: Tracer, output: Any, dt: torch.dtype, mode: str
) -> Analysis:
    """Frozen records (receptive field and stage of each row), totals and notes."""
    spatial = tracer.input_spatial
    public: dict[int, ReceptiveField] = {}  # windows are shared by rows: convert each once

    def rf(window) -> ReceptiveField:
        got = public.get(id(window))
        if got is None:
            got = public[id(window)] = to_public(window, spatial)
        return got

    flat = ReceptiveField(None, reason="the input has no spatial axes")
    rfs = [rf(r.window) if spatial else flat for r in tracer.rows]
    numbers = stages.number(
        [
            stages.resolution(r.output_shape, r.spatial, f.is_global, len(spatial))
            for r, f in zip(tracer.rows, rfs, strict=True)
        ]
    )
    layers = tuple(
        LayerRecord(
            index=i,
            name=r.name,
            type=r.type,
            kind=r.kind,
            module=r.module,
            is_module=r.is_module,
            stage=stage,
            output_shape=r.output_shape,
            params=r.params,
            trainable_params=r.trainable_params,
            macs=r.macs,
            flops=2 * r.macs,
            extra_ops=r.extra_ops,
            output_bytes=r.output_bytes,
            spatial=r.spatial,
            rf_size=f.size,
            rf_stride=f.stride,
            rf_padding=f.padding,
            rf_aligned=f.aligned,
            rf_global=f.is_global,
            rf_reason=f.reason,
            depth=r.depth,
            rf_min=f.smallest,
            productivity=productivity.classify(
                f.size if not f.is_global else None, f.smallest, spatial
            )
            if r.spatial
            else None,
            inputs=r.inputs,
        )
        for i, (r, f, stage) in enumerate(zip(tracer.rows, rfs, numbers, strict=True))
    )
    params = [p for _, p in tracer.params.values()]
    total = sum(p.numel() for p in params)
    unused = tuple(tracer.unused())
    sizes = {name: p.numel() for name, p in tracer.params.values()}
    unused_count = sum(sizes[n] for n in unused)
    outs = [t for t in tree_leaves(output) if isinstance(t, torch.Tensor)]
    macs = sum(r.macs for r in layers)
    notes = [_note_line(text, places) for text, places in tracer.notes.values()]
    if unused_count:
        notes.append(_unused_note(unused, unused_count, total, mode))
    return Analysis(
        model_name=getattr(model, "zoo_name", None)
        or getattr(model, "spec_name", None)
        or type(model).__name__,
        input_shapes=tracer.input_shapes,
        dtype=str(dt).removeprefix("torch."),
        mode=mode,
        layers=layers,
        total_params=total,
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        total_macs=macs,
        total_flops=2 * macs,
        total_extra_ops=sum(r.extra_ops for r in layers),
        activation_bytes=tracer.acct.total,
        peak_activation_bytes=tracer.acct.peak,
        param_bytes=sum(p.numel() * p.element_size() for p in params),
        weighted_depth=max((tracer.flow(t).depth for t in outs), default=0),
        input_spatial=spatial,
        containers={k: rf(w) for k, w in tracer.containers.items()},
        container_shapes=dict(tracer.container_shapes),
        fallback_ops=tuple(
            FallbackOp(name, count, tuple(where))
            for name, (count, where) in tracer.fallback_ops.items()
        ),
        unused_params=unused,
        unused_param_count=unused_count,
        output_shapes=tuple(tuple(t.shape) for t in outs),
        notes=tuple(notes),
    )


def _unused_note(names: Sequence[str], count: int, total: int, mode: str) -> str:
    """ "N of the M parameters (aux1, aux2) are not used ...", naming top-level modules.

    >>> _unused_note(["aux1.fc.weight", "aux2.fc.weight"], 10, 100, "eval")[:50]
    '10 of the 100 parameters (aux1, aux2) are not used'
    """
    tops = sorted({n.split(".")[0] for n in names})
    shown = ", ".join(tops[:4]) + (f" and {len(tops) - 4} more" if len(tops) > 4 else "")
    return (
        f"{count:,} of the {total:,} parameters ({shown}) are not used by this {mode}-mode "
        "forward pass; they count in the total but in no layer"
    )


def _note_line(text: str, places: list[str]) -> str:
    shown = ", ".join(f"`{p or '(root)'}`" for p in places[:3])
    more = f" and {len(places) - 3} more" if len(places) > 3 else ""
    return f"{text} (at {shown}{more})"


def _shapes(shapes) -> str:
    return ", ".join(fmt.shape(s) for s in shapes)
