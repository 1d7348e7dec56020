"""The tracer: one forward pass on meta tensors, seeing every op and the module that ran it.

Module hooks give names; a ``TorchFunctionMode`` sees every torch function (``F.relu``,
``x + y``, ``torch.cat``), so functional ops are never missed. Ops with a rule never run a
kernel: the rule works out the output shape and returns an empty meta tensor, which is why
tracing costs little more than the module calls themselves. Ops without a rule run on meta
copies of their arguments under a dispatch mode that counts MACs with FlopCounterMode's own
formulas, and are listed as uncounted. Real parameters are only read for their shapes.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_unflatten
from torch.utils.flop_counter import flop_registry

from cnnviz.errors import AnalysisError
from cnnviz.receptive import (
    CHAN,
    Flow,
    Unknown,
    WindowState,
    const_flow,
    to_public,
    written_into,
)
from cnnviz.result import LayerRecord
from cnnviz.rules import RULES, Out, RuleError, op_name

_aten = torch.ops.aten
# Metadata queries the counter must not see (FlopCounterMode skips the same set).
_SKIP = {
    _aten.is_contiguous.default,
    _aten.is_contiguous.memory_format,
    _aten.is_strides_like_format.default,
    _aten.is_non_overlapping_and_dense.default,
    _aten.size.default,
    _aten.sym_size.default,
    _aten.stride.default,
    _aten.sym_stride.default,
    _aten.storage_offset.default,
    _aten.sym_storage_offset.default,
    _aten.numel.default,
    _aten.sym_numel.default,
    _aten.dim.default,
    torch.ops.prim.layout.default,
}
# Torch functions that only read metadata: run as they are, never a row.
_QUERIES = {
    torch.Tensor.dim,
    torch.Tensor.size,
    torch.Tensor.numel,
    torch.Tensor.__len__,
    torch.Tensor.is_floating_point,
    torch.Tensor.is_contiguous,
    torch.Tensor.stride,
    torch.Tensor.element_size,
    torch.Tensor.nelement,
    torch.Tensor.ndimension,
    torch.Tensor.is_complex,
    torch.Tensor.get_device,
    torch.Tensor.__hash__,
    torch.Tensor.data_ptr,
    torch.Tensor.untyped_storage,
    torch.Tensor.storage_offset,
}


def _mv_flops(mat, vec, *args, **kwargs) -> int:
    return 2 * mat.shape[0] * mat.shape[1]


def _addmv_flops(bias, mat, vec, *args, **kwargs) -> int:
    return 2 * mat.shape[0] * mat.shape[1]


def _dot_flops(a, b, *args, **kwargs) -> int:
    return 2 * a.numel()


#: Matrix-vector products FlopCounterMode has no formula for (it counts them as 0), in its
#: convention: 2 FLOPs per multiply-accumulate.
_MORE_FLOPS = {
    _aten.mv: _mv_flops,
    _aten.addmv: _addmv_flops,
    _aten.dot: _dot_flops,
    _aten.vdot: _dot_flops,
}


class MacCounter(TorchDispatchMode):
    """Counts MACs of aten ops with FlopCounterMode's registry (FLOPs / 2), plus the
    matrix-vector products it leaves out."""

    def __init__(self) -> None:
        super().__init__()
        self.flops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _SKIP:
            return NotImplemented
        packet = func._overloadpacket
        formula = flop_registry.get(packet) or _MORE_FLOPS.get(packet)
        if formula is None and func is not torch.ops.prim.device.default:
            with self:
                r = func.decompose(*args, **kwargs)
                if r is not NotImplemented:
                    return r
        out = func(*args, **kwargs)
        if formula is not None:
            self.flops += formula(*args, **kwargs, out_val=out)
        return out


class _Acct:
    """Live/peak/total activation bytes; ``_Alloc`` tokens ride on tensors and free on GC."""

    def __init__(self) -> None:
        self.live = self.peak = self.total = 0


class _Alloc:
    __slots__ = ("acct", "n")

    def __init__(self, n: int, acct: _Acct) -> None:
        self.n, self.acct = n, acct
        acct.live += n
        acct.total += n
        acct.peak = max(acct.peak, acct.live)

    def __del__(self) -> None:
        self.acct.live -= self.n


@dataclass
class _Draft:
    """A leaf module's row while the module runs."""

    name: str
    type: str
    module: str
    params: int
    trainable: int
    macs: int = 0
    extra: int = 0
    kinds: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class _Frame:
    module: nn.Module
    name: str
    draft: _Draft | None


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    flat, _ = tree_flatten(value)
    return [v for v in flat if isinstance(v, torch.Tensor)]


class Tracer(TorchFunctionMode):
    """Runs one forward pass and collects rows. Use via :func:`cnnviz.analyze`."""

    def __init__(self, model: nn.Module, input_spatial: tuple[int, ...]) -> None:
        super().__init__()
        self.model = model
        self.input_spatial = input_spatial
        self.names: dict[int, str] = {}
        self.leaf: dict[int, bool] = {}
        for name, m in model.named_modules(remove_duplicate=True):
            self.names[id(m)] = name
            self.leaf[id(m)] = next(iter(m._modules.values()), None) is None
        # Tensors the tracer must never annotate: parameters, buffers and plain tensor
        # attributes of the user's modules (a positional-encoding table, say).
        self.user_tensors = {id(t) for t in model.parameters()} | {id(t) for t in model.buffers()}
        for m in model.modules():
            self.user_tensors.update(id(v) for v in vars(m).values() if isinstance(v, torch.Tensor))
        self.used: set[int] = set()
        self.counted: set[int] = set()  # parameters already attributed to a row
        self.frames: list[_Frame] = []
        self.rows: list[LayerRecord] = []
        self.containers: dict[str, Any] = {}
        self.container_shapes: dict[str, tuple[int, ...]] = {}
        self.container_calls: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.uncounted: dict[str, list] = {}
        self.acct = _Acct()
        self.counter = MacCounter()
        self.thread = threading.get_ident()
        self.last_row = ""
        self.stages: dict[object, int] = {}  # spatial size (or "head") -> stage number
        self.notes: dict[str, list] = {}  # topic -> [text, places]
        self.strict_dtypes = True  # parameters must match their inputs' dtype (see analyze)

    # ---------------------------------------------------------------- context for rules
    def flow(self, t: torch.Tensor) -> Flow:
        f = getattr(t, "_cv_flow", None) if id(t) not in self.user_tensors else None
        return f if f is not None else const_flow(t.dim())

    def new(self, shape, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        t = torch.empty(shape, dtype=dtype or like.dtype, device="meta")
        t._cv_alloc = _Alloc(t.numel() * t.element_size(), self.acct)
        return t

    def note(self, topic: str, text: str) -> None:
        """Record a convention that applies here; one line per topic, listing the places."""
        where = self.frames[-1].name if self.frames else ""
        places = self.notes.setdefault(topic, [text, []])[1]
        if where not in places:
            places.append(where)

    def set_flow(self, t: torch.Tensor, flow: Flow) -> None:
        """New flow for a tensor changed in place (``y[idx] = v``); never on a user's."""
        if id(t) not in self.user_tensors and t.is_meta:
            t._cv_flow = flow

    def adopt(self, t: torch.Tensor) -> torch.Tensor:
        """Count a tensor a rule created itself (a real meta copy) as a new allocation."""
        t._cv_alloc = _Alloc(t.numel() * t.element_size(), self.acct)
        return t

    def input(self, t: torch.Tensor, flow: Flow) -> torch.Tensor:
        t._cv_alloc = _Alloc(t.numel() * t.element_size(), self.acct)
        t._cv_flow = flow
        return t

    # ---------------------------------------------------------------- hooks
    def pre_hook(self, module: nn.Module, args: Any) -> None:
        if threading.get_ident() != self.thread:
            return
        key = id(module)
        name = self.names.get(key, type(module).__name__)
        draft = None
        if self.leaf.get(key, True):
            self.calls[name] += 1
            n = self.calls[name]
            first = n == 1
            params = trainable = 0
            if first:
                # A leaf has no children: its own _parameters are all of them.
                for p in module._parameters.values():
                    if p is not None and id(p) not in self.counted:  # tied weights once
                        self.counted.add(id(p))
                        params += p.numel()
                        trainable += p.numel() if p.requires_grad else 0
            draft = _Draft(
                name if first else f"{name}#{n}", type(module).__name__, name, params, trainable
            )
        self.frames.append(_Frame(module, name, draft))

    def post_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if threading.get_ident() != self.thread or not self.frames:
            return
        frame = self.frames.pop()
        outs = _tensors(output)
        if frame.draft is not None:
            d = frame.draft
            kind = next((k for k, m in d.kinds if m), d.kinds[0][0] if d.kinds else "other")
            parent = frame.name
            self._row(
                d.name, d.type, kind, parent, True, outs, d.params, d.trainable, d.macs, d.extra
            )
        elif outs:
            # a container called again is "blk#2", as rows are; "blk" stays its first call
            self.container_calls[frame.name] += 1
            n = self.container_calls[frame.name]
            key = frame.name if n == 1 else f"{frame.name}#{n}"
            self.containers[key] = to_public(self.flow(outs[0]).window, self.input_spatial)
            self.container_shapes[key] = tuple(outs[0].shape)

    # ---------------------------------------------------------------- ops
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = RULES.get(func)
        if rule is None:
            if func in _QUERIES or getattr(func, "__name__", "") == "__get__":
                return func(*args, **kwargs)
            return self._fallback(func, args, kwargs)
        claimed = self._note_params(args)
        if kwargs:
            claimed += self._note_params(kwargs.values())
        try:
            out: Out = rule.fn(self, *args, **kwargs)
        except RuleError as e:
            layer = self.frames[-1].name if self.frames else None
            raise AnalysisError(f"{self.where(rule.name)}: {e}", layer, e.too_small) from None
        value = out.value
        outs = _tensors(value)
        self._attach(outs, out.flow, args)
        for t in outs:
            if t._base is not None and any(t is a for a in args):
                self._write_back(t)  # an in-place op on a view changes its base too
        self._op(rule.name, rule.kind, outs, out.macs, out.extra, claimed)
        return value

    def _write_back(self, view: torch.Tensor) -> None:
        """An in-place op on a view (``y[:, :2].add_(v)``) changes its base too."""
        base = view._base
        fb = self.flow(base)
        self.set_flow(base, written_into(fb, tuple(base.shape), self.flow(view), tuple(view.shape)))

    def _note_params(self, args) -> list[nn.Parameter]:
        """Mark parameters as used; return those no row has counted yet. A leaf module's
        own are counted when it starts; these belong to a container (a layer-scale gamma, a
        parametrization's tensors) and go to the row of the op that reads them."""
        claimed = []
        for a in args:
            if isinstance(a, nn.Parameter):
                self.used.add(id(a))
                if id(a) not in self.counted:
                    self.counted.add(id(a))
                    claimed.append(a)
        return claimed

    def _attach(self, outs, flow, args) -> None:
        base = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if base is None and args and isinstance(args[0], (list, tuple)):
            base = next((a for a in args[0] if isinstance(a, torch.Tensor)), None)
        flows = flow if isinstance(flow, list) else [flow] * len(outs)
        for t, f in zip(outs, flows, strict=False):
            if id(t) in self.user_tensors or not t.is_meta:  # ours are all on meta
                continue
            t._cv_flow = f
            if getattr(t, "_cv_alloc", None) is None and base is not None:
                # A view: it keeps its base's storage alive.
                t._cv_alloc = getattr(base, "_cv_alloc", None)

    def _op(self, name: str, kind: str, outs, macs: int, extra: int, claimed=()) -> None:
        params = sum(p.numel() for p in claimed)
        trainable = sum(p.numel() for p in claimed if p.requires_grad)
        frame = self.frames[-1] if self.frames else None
        if frame is not None and frame.draft is not None:
            d = frame.draft
            d.macs += macs
            d.extra += extra
            d.params += params
            d.trainable += trainable
            d.kinds.append((kind, macs))
            return
        if not outs:
            if claimed:  # no row to hold them (an in-place write): count them again later
                self.counted.difference_update(id(p) for p in claimed)
            return
        parent = frame.name if frame is not None else ""
        base = f"{parent}.{name}" if parent else name
        self.calls[base] += 1
        n = self.calls[base]
        self._row(
            base if n == 1 else f"{base}#{n}",
            name,
            kind,
            parent,
            False,
            outs,
            params,
            trainable,
            macs,
            extra,
        )

    def _row(self, name, type_, kind, module, is_module, outs, params, trainable, macs, extra):
        t = outs[0] if outs else None
        flow = self.flow(t) if t is not None else None
        spatial = flow is not None and any(isinstance(x, int) for x in flow.dims)
        rf = to_public(flow.window if flow is not None else None, self.input_spatial)
        key: object = "head"
        if spatial and not rf.is_global and t is not None:
            key = tuple(
                n for n, lab in zip(t.shape, flow.dims, strict=False) if isinstance(lab, int)
            )
        stage = self.stages.setdefault(key, len(self.stages))
        if not self.input_spatial:
            rf = rf.__class__(None, reason="the input has no spatial axes")
        self.rows.append(
            LayerRecord(
                index=len(self.rows),
                name=name,
                type=type_,
                kind=kind,
                module=module,
                is_module=is_module,
                stage=stage,
                output_shape=tuple(t.shape) if t is not None else None,
                params=params,
                trainable_params=trainable,
                macs=macs,
                flops=2 * macs,
                extra_ops=extra,
                output_bytes=sum(o.numel() * o.element_size() for o in outs),
                spatial=spatial,
                rf_size=rf.size,
                rf_stride=rf.stride,
                rf_padding=rf.padding,
                rf_aligned=rf.aligned,
                rf_global=rf.is_global,
                rf_reason=rf.reason,
                depth=flow.depth if flow is not None else 0,
            )
        )
        self.last_row = name

    def _fallback(self, func, args, kwargs):
        flat, spec = tree_flatten((args, kwargs))
        tensors = [a for a in flat if isinstance(a, torch.Tensor)]
        if not tensors:
            return func(*args, **kwargs)
        claimed = self._note_params(flat)
        metas = [a.to("meta") if isinstance(a, torch.Tensor) and not a.is_meta else a for a in flat]
        margs, mkwargs = tree_unflatten(metas, spec)
        name = op_name(func)
        self.counter.flops = 0
        try:
            with self.counter:
                value = func(*margs, **mkwargs)
        except Exception as e:
            hint = ""
            if "meta" in str(e).lower() or "data-dependent" in str(e).lower():
                hint = (
                    " (cnnviz runs the model on meta tensors, which hold no values: "
                    "data-dependent code such as .item() or `if x.sum() > 0` cannot be traced)"
                )
            layer = self.frames[-1].name if self.frames else None
            raise AnalysisError(f"{self.where(name)} failed: {e}{hint}", layer) from e
        outs = _tensors(value)
        if not outs:
            self.counted.difference_update(id(p) for p in claimed)
            return value
        macs = self.counter.flops // 2
        flows = [self.flow(t) for t in tensors]
        window: WindowState = None
        if any(f.window is not None for f in flows):
            first = next((f.window for f in flows if isinstance(f.window, Unknown)), None)
            window = first or Unknown(f"no receptive-field rule for `{name}`")
        depth = max(f.depth for f in flows) + (1 if macs else 0)
        storages = {t.untyped_storage()._cdata: t for t in metas if isinstance(t, torch.Tensor)}
        for t in outs:
            src = storages.get(t.untyped_storage()._cdata)
            if src is not None:
                t._cv_alloc = getattr(src, "_cv_alloc", None)
            else:
                t._cv_alloc = _Alloc(t.numel() * t.element_size(), self.acct)
            # Same shape as an input (torch.where, a custom elementwise op): keep its dim
            # labels, so the unknown window is reported on the right axes downstream.
            like = next(
                (
                    f
                    for x, f in zip(tensors, flows, strict=True)
                    if x.shape == t.shape and f.window is not None
                ),
                None,
            )
            dims = like.dims if like is not None else (CHAN,) * t.dim()
            t._cv_flow = Flow(dims, window, None, depth)
            if t._base is not None and src is not None:
                self._write_back(t)  # an in-place op without a rule, on a view
        entry = self.uncounted.setdefault(name, [0, []])
        entry[0] += 1
        where = self.frames[-1].name if self.frames else ""
        if where not in entry[1]:
            entry[1].append(where)
        self._op(name, "other", outs, macs, 0, claimed)
        return value

    def where(self, op: str | None = None) -> str:
        """ "`features.12` (MaxPool2d)" for the running module; the op is named when it was
        called outside a leaf module."""
        if not self.frames:
            return f"`{op}`" if op else "the model"
        f = self.frames[-1]
        name = f"`{f.name or '(root)'}` ({type(f.module).__name__}"
        if op and f.draft is None:
            name += f", {op}"
        return name + ")"
