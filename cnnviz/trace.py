"""The tracer: one forward pass on meta tensors, seeing every op and the module that ran it
(on real CPU tensors for ``analyze(..., device="cpu")``: see :class:`Tracer`).

Module hooks give names; a ``TorchFunctionMode`` sees every torch function (``F.relu``,
``x + y``, ``torch.cat``), so functional ops are never missed. Ops with a rule never run a
kernel: the rule works out the output shape and returns an empty meta tensor, which is why
tracing costs little more than the module calls themselves. Ops without a rule run on meta
copies of their arguments under a dispatch mode that counts MACs with FlopCounterMode's own
formulas, and are listed as fallback ops (no rule: MACs from FlopCounterMode, RF unknown).
Real parameters are only read for their shapes. Every op claims the model's parameters it
reads, so each parameter sits in the row of the first op that reads it and nowhere else.

Hooks are global module hooks (``torch.nn.modules.module.register_module_forward_hook``)
that act only in the tracing thread and only for the model's own modules: nothing is put on
the user's modules, so a copy taken meanwhile carries nothing of the trace.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten, tree_leaves, tree_map_only, tree_unflatten
from torch.utils.flop_counter import flop_registry

from cnnviz import fmt
from cnnviz.errors import AnalysisError
from cnnviz.modules import is_leaf
from cnnviz.receptive import CHAN, Flow, Unknown, WindowState, const_flow, written_into
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


class _Row(NamedTuple):
    """A row as the tracer sees it; :mod:`cnnviz.analysis` makes the public
    :class:`~cnnviz.result.LayerRecord` (stage and receptive field) when the pass is over."""

    name: str
    type: str
    kind: str
    module: str
    is_module: bool
    output_shape: tuple[int, ...] | None
    params: int
    trainable_params: int
    macs: int
    extra_ops: int
    output_bytes: int
    spatial: bool
    window: WindowState  # immutable: the output's window when the row was made
    depth: int
    inputs: tuple[str, ...]  # rows (or inputs) that produced this row's input tensors


class _Draft:
    """A leaf module's row while the module runs."""

    __slots__ = (
        "extra",
        "inputs",
        "kinds",
        "macs",
        "module",
        "name",
        "params",
        "trainable",
        "type",
    )

    def __init__(self, name: str, type_: str, module: str, inputs: tuple[str, ...]) -> None:
        self.name, self.type, self.module, self.inputs = name, type_, module, inputs
        self.params = self.trainable = self.macs = self.extra = 0
        self.kinds: list[tuple[str, int]] = []  # (kind, MACs) of each op it ran


class _Frame(NamedTuple):
    module: nn.Module
    name: str
    draft: _Draft | None


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    flat, _ = tree_flatten(value)
    return [v for v in flat if isinstance(v, torch.Tensor)]


def _sources(values: Any) -> tuple[str, ...]:
    """The rows (or inputs: ``input``, ``input1``, ...) that made the tensors in ``values``,
    in order, once each; parameters, buffers and constants made by no row are left out."""
    found: dict[str, None] = {}
    stack = [values]
    while stack:  # lists, tuples and dicts by hand: pytree costs more on this hot path
        v = stack.pop()
        if isinstance(v, torch.Tensor):
            src = v.__dict__.get("_cv_src")
            if src is not None:
                found[src] = None
        elif isinstance(v, (list, tuple)):
            stack.extend(reversed(v))
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
    return tuple(found)


@functools.cache
def _spatial(dims: tuple[str | int, ...]) -> bool:
    """True when a tensor with these dim labels runs along an input axis (dims repeat a lot)."""
    return any(isinstance(d, int) for d in dims)


#: What a data-dependent failure on meta tensors says, and what to do about it.
DATA_DEPENDENT_HINT = (
    " (cnnviz runs the model on meta tensors, which hold no values: data-dependent code such "
    "as .item(), `if x.sum() > 0` or a boolean mask cannot run on them; try "
    "analyze(..., device='cpu'), which runs the forward pass on real CPU tensors)"
)


def data_dependent(e: BaseException) -> bool:
    """True when ``e`` is a meta tensor's refusal to give values or data-dependent shapes.

    >>> data_dependent(RuntimeError("Tensor.item() cannot be called on meta tensors"))
    True
    """
    text = str(e).lower()
    return "meta" in text or "data-dependent" in text or "data dependent" in text


class Tracer(TorchFunctionMode):
    """Runs one forward pass and collects rows. Use via :func:`cnnviz.analyze`.

    ``real``: the pass runs on real CPU tensors (``analyze(..., device="cpu")``): every op
    computes its value, the rules still give MACs and receptive fields from meta stand-ins of
    its arguments, and ``budget(bytes)`` is called before each op with the activation bytes
    that would be live after it (it raises to stop the pass).
    """

    def __init__(
        self,
        model: nn.Module,
        input_spatial: tuple[int, ...],
        *,
        real: bool = False,
        budget: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__()
        self.input_spatial = input_spatial
        self.input_shapes: tuple[tuple[int, ...], ...] = ()  # set by whoever seeds the inputs
        self.real = real
        self.budget = budget
        self.names: dict[int, str] = {}
        self.leaf: dict[int, bool] = {}
        #: Every parameter of the model once (tied weights once), by id: its first name and
        #: itself. A parameter goes to the row of the first op that reads it.
        self.params: dict[int, tuple[str, nn.Parameter]] = {}
        # Tensors the tracer must never annotate: parameters, buffers and plain tensor
        # attributes of the user's modules (a positional-encoding table, say).
        self.user_tensors: set[int] = set()
        self.modules: list[nn.Module] = []  # the model's modules, each once
        for name, m in model.named_modules():
            self.modules.append(m)
            self.names[id(m)] = name
            self.leaf[id(m)] = is_leaf(m)
            for pname, p in m._parameters.items():
                if p is not None and id(p) not in self.params:
                    self.params[id(p)] = (f"{name}.{pname}" if name else pname, p)
            self.user_tensors.update(id(b) for b in m._buffers.values() if b is not None)
            self.user_tensors.update(id(v) for v in vars(m).values() if isinstance(v, torch.Tensor))
        self.user_tensors.update(self.params)
        self.unclaimed: dict[int, nn.Parameter] = {k: p for k, (_, p) in self.params.items()}
        self.read_by_property: list[nn.Parameter] = []  # `self.w.T`: claimed by the next op
        self.frames: list[_Frame] = []
        self.rows: list[_Row] = []
        self.containers: dict[str, WindowState] = {}
        self.container_shapes: dict[str, tuple[int, ...]] = {}
        self.container_calls: dict[str, int] = {}  # calls of each container so far
        self.calls: dict[str, int] = {}  # calls of each leaf module and op name so far
        self.fallback_ops: dict[str, list] = {}  # op -> [count, places]
        self.acct = _Acct()
        self.counter = MacCounter()
        self.thread = threading.get_ident()
        self.last_row = ""
        self.n_inputs = 0  # inputs seen so far: "input", "input1", ...
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
        if id(t) not in self.user_tensors and (t.is_meta or self.real):
            t._cv_flow = flow

    def adopt(self, t: torch.Tensor) -> torch.Tensor:
        """Count a tensor a rule created itself (a real meta copy) as a new allocation."""
        t._cv_alloc = _Alloc(t.numel() * t.element_size(), self.acct)
        return t

    def input(self, t: torch.Tensor, flow: Flow) -> torch.Tensor:
        t._cv_alloc = _Alloc(t.numel() * t.element_size(), self.acct)
        t._cv_flow = flow
        t._cv_src = f"input{self.n_inputs}" if self.n_inputs else "input"
        self.n_inputs += 1
        return t

    # ---------------------------------------------------------------- results
    def unused(self) -> list[str]:
        """Names of the parameters no row holds: the forward pass never read them."""
        late = {id(p) for p in self.read_by_property}  # read, but no op came after
        return [n for k, (n, _) in self.params.items() if k in self.unclaimed or k in late]

    # ---------------------------------------------------------------- hooks
    def pre_hook(self, module: nn.Module, args: Any) -> None:
        if threading.get_ident() != self.thread:
            return
        key = id(module)
        name = self.names.get(key)
        if name is None:  # not one of the model's modules (global hooks see every module)
            return
        draft = None
        if self.leaf[key]:
            n = self.calls[name] = self.calls.get(name, 0) + 1
            draft = _Draft(
                name if n == 1 else f"{name}#{n}", type(module).__name__, name, _sources(args)
            )
        self.frames.append(_Frame(module, name, draft))

    def post_hook(self, module: nn.Module, args: Any, output: Any) -> None:
        if threading.get_ident() != self.thread or not self.frames:
            return
        if self.frames[-1].module is not module:
            return
        frame = self.frames.pop()
        outs = _tensors(output)
        if frame.draft is not None:
            d = frame.draft
            kind = next((k for k, m in d.kinds if m), d.kinds[0][0] if d.kinds else "other")
            parent = frame.name
            self._row(
                d.name,
                d.type,
                kind,
                parent,
                True,
                outs,
                d.params,
                d.trainable,
                d.macs,
                d.extra,
                d.inputs,
            )
        elif outs:
            # a container called again is "blk#2", as rows are; "blk" stays its first call
            n = self.container_calls[frame.name] = self.container_calls.get(frame.name, 0) + 1
            key = frame.name if n == 1 else f"{frame.name}#{n}"
            self.containers[key] = self.flow(outs[0]).window
            self.container_shapes[key] = tuple(outs[0].shape)

    # ---------------------------------------------------------------- ops
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = RULES.get(func)
        if rule is None:
            if func in _QUERIES:
                return func(*args, **kwargs)
            if getattr(func, "__name__", "") == "__get__":
                return self._property(func, args, kwargs)
            return self._fallback(func, args, kwargs)
        claimed = self._claim(args)
        if kwargs:
            claimed += self._claim(kwargs.values())
        if self.real:
            return self._real(rule, func, args, kwargs, claimed)
        out = self._apply(rule, args, kwargs)
        value = out.value
        outs = _tensors(value)
        self._attach(outs, out.flow, args)
        for t in outs:
            if t._base is not None and any(t is a for a in args):
                self._write_back(t)  # an in-place op on a view changes its base too
        self._op(rule.name, rule.kind, outs, out.macs, out.extra, claimed, (args, kwargs))
        return value

    def _apply(self, rule, args, kwargs) -> Out:
        try:
            return rule.fn(self, *args, **kwargs)
        except RuleError as e:
            layer = self.frames[-1].name if self.frames else None
            raise AnalysisError(f"{self.where(rule.name)}: {e}", layer, e.too_small) from None

    def _property(self, func, args, kwargs):
        """``self.weight.T``, ``.data``: a parameter read through a property is claimed by
        the next op, which reads the tensor the property gave."""
        value = func(*args, **kwargs)
        if args and isinstance(value, torch.Tensor):
            p = self.unclaimed.pop(id(args[0]), None)
            if p is not None:
                self.read_by_property.append(p)
        return value

    def _write_back(self, view: torch.Tensor) -> None:
        """An in-place op on a view (``y[:, :2].add_(v)``) changes its base too."""
        base = view._base
        fb = self.flow(base)
        self.set_flow(base, written_into(fb, tuple(base.shape), self.flow(view), tuple(view.shape)))

    def _claim(self, values) -> list[nn.Parameter]:
        """The model's parameters among ``values`` that no row holds yet, looking inside
        lists, tuples (named ones too) and dicts as pytree would (``torch.cat([x, self.p])``):
        the op reading a parameter first holds it."""
        left = self.unclaimed
        if not left:
            return []
        claimed = []
        for v in values:
            if isinstance(v, (list, tuple)):
                if v and not isinstance(v, torch.Size):
                    claimed += self._claim(v)
            elif isinstance(v, dict):
                claimed += self._claim(v.values())
            else:
                p = left.pop(id(v), None)
                if p is not None:
                    claimed.append(p)
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

    def _op(
        self, name: str, kind: str, outs, macs: int, extra: int, claimed=(), read: Any = ()
    ) -> None:
        """Charge an op to the running leaf's row, or make it a row of its own; ``read`` is
        what the op read (its args and kwargs), for the graph's edges."""
        if self.read_by_property:
            claimed = [*self.read_by_property, *claimed]
            self.read_by_property = []
        params = trainable = 0
        for p in claimed:
            params += p.numel()
            trainable += p.numel() if p.requires_grad else 0
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
            # no row to hold them (an in-place write): the next op that reads them will
            self.unclaimed.update((id(p), p) for p in claimed)
            return
        parent = frame.name if frame is not None else ""
        base = f"{parent}.{name}" if parent else name
        n = self.calls[base] = self.calls.get(base, 0) + 1
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
            _sources(read),
        )

    def _row(
        self, name, type_, kind, module, is_module, outs, params, trainable, macs, extra, inputs
    ):
        t = outs[0] if outs else None
        for o in outs:  # later ops read these tensors: they come from this row
            if id(o) not in self.user_tensors:
                o._cv_src = name
        flow = self.flow(t) if t is not None else None
        self.rows.append(
            _Row(
                name,
                type_,
                kind,
                module,
                is_module,
                tuple(t.shape) if t is not None else None,
                params,
                trainable,
                macs,
                extra,
                t.numel() * t.element_size()
                if len(outs) == 1
                else sum(o.numel() * o.element_size() for o in outs),
                flow is not None and _spatial(flow.dims),
                flow.window if flow is not None else None,
                flow.depth if flow is not None else 0,
                inputs,
            )
        )
        self.last_row = name

    # ---------------------------------------------------------------- ops without a rule
    def _fallback(self, func, args, kwargs):
        flat, spec = tree_flatten((args, kwargs))
        tensors = [a for a in flat if isinstance(a, torch.Tensor)]
        if not tensors:
            return func(*args, **kwargs)
        claimed = self._claim(flat)
        name = op_name(func)
        if self.real:
            margs, mkwargs, metas = args, kwargs, flat
            self._check_budget(self._meta_bytes(func, flat, spec))
        else:
            metas = [
                a.to("meta") if isinstance(a, torch.Tensor) and not a.is_meta else a for a in flat
            ]
            margs, mkwargs = tree_unflatten(metas, spec)
        self.counter.flops = 0
        try:
            with self.counter:
                value = func(*margs, **mkwargs)
        except Exception as e:
            hint = DATA_DEPENDENT_HINT if not self.real and data_dependent(e) else ""
            layer = self.frames[-1].name if self.frames else None
            raise AnalysisError(f"{self.where(name)} failed: {e}{hint}", layer) from e
        outs = _tensors(value)
        if not outs:
            self.unclaimed.update((id(p), p) for p in claimed)
            return value
        if self.real:
            self._check_budget(0)  # data-dependent sizes are only known now
        self._annotate(name, tensors, metas, outs, self.counter.flops // 2)
        self._op(name, "other", outs, self.counter.flops // 2, 0, claimed, (args, kwargs))
        return value

    def _annotate(self, name, tensors, metas, outs, macs: int) -> None:
        """Flows and allocations of an op without a rule: its window is unknown, its outputs
        are new memory unless they share an input's storage."""
        flows = [self.flow(t) for t in tensors]
        window: WindowState = None
        if any(f.window is not None for f in flows):
            first = next((f.window for f in flows if isinstance(f.window, Unknown)), None)
            window = first or Unknown(f"no receptive-field rule for `{name}`")
        depth = max(f.depth for f in flows) + (1 if macs else 0)
        storages = {t.untyped_storage()._cdata: t for t in metas if isinstance(t, torch.Tensor)}
        for t in outs:
            if id(t) in self.user_tensors:
                continue
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
        entry = self.fallback_ops.setdefault(name, [0, []])
        entry[0] += 1
        where = self.frames[-1].name if self.frames else ""
        if where not in entry[1]:
            entry[1].append(where)

    # ---------------------------------------------------------------- real tensors
    def _real(self, rule, func, args, kwargs, claimed):
        """One op with a rule on real tensors: the rule runs on meta stand-ins (MACs, flow,
        the bytes it will allocate), then the op itself; an op whose shapes depend on the
        values (a boolean mask) is counted as one without a rule."""
        pairs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        sargs, skwargs = tree_map_only(
            torch.Tensor, lambda t: self._stand_in(t, pairs), (args, kwargs)
        )
        acct, self.acct = self.acct, _Acct()  # the stand-ins' memory is not the pass's
        try:
            out = self._apply(rule, sargs, skwargs)
        except AnalysisError:
            raise
        except Exception as e:
            if not data_dependent(e):
                raise
            out = None
        finally:
            new, self.acct = self.acct.total, acct
        if out is None:
            self.unclaimed.update((id(p), p) for p in claimed)  # the fallback claims them
            return self._fallback(func, args, kwargs)
        self._check_budget(new)
        value = func(*args, **kwargs)
        outs = _tensors(value)
        shaped = _tensors(out.value)
        if [t.shape for t in outs] != [t.shape for t in shaped]:
            raise AnalysisError(
                f"{self.where(rule.name)}: cnnviz's rule gives {_shapes(shaped)} but the op "
                f"gave {_shapes(outs)}",
                self.frames[-1].name if self.frames else None,
            )
        for real, stand in pairs.values():  # in-place writes the rule saw (y[idx] = v)
            f = getattr(stand, "_cv_flow", None)
            if f is not None and f is not getattr(real, "_cv_flow", None):
                self.set_flow(real, f)
        flows = out.flow if isinstance(out.flow, list) else [out.flow] * len(outs)
        storages = {
            t.untyped_storage()._cdata: t
            for t in tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        }
        for t, f in zip(outs, flows, strict=False):
            if id(t) in self.user_tensors:
                continue
            t._cv_flow = f
            src = storages.get(t.untyped_storage()._cdata)
            if src is None:
                t._cv_alloc = _Alloc(t.numel() * t.element_size(), self.acct)
            elif src is not t:
                t._cv_alloc = getattr(src, "_cv_alloc", None)
            if t._base is not None and any(t is a for a in args):
                self._write_back(t)
        self._op(rule.name, rule.kind, outs, out.macs, out.extra, claimed, (args, kwargs))
        return value

    def _stand_in(self, t: torch.Tensor, pairs: dict) -> torch.Tensor:
        """A meta tensor with ``t``'s shape, strides, dtype and flow (one per tensor)."""
        got = pairs.get(id(t))
        if got is None:
            m = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
            f = getattr(t, "_cv_flow", None)
            if f is not None and id(t) not in self.user_tensors:
                m._cv_flow = f
            got = pairs[id(t)] = (t, m)
        return got[1]

    def _meta_bytes(self, func, flat, spec) -> int:
        """Bytes ``func``'s outputs will take, from a run on meta; 0 when only the values
        can tell (its outputs are checked after the run)."""
        metas = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in flat]
        margs, mkwargs = tree_unflatten(metas, spec)
        try:
            value = func(*margs, **mkwargs)
        except Exception:
            return 0
        ins = {t.untyped_storage()._cdata for t in metas if isinstance(t, torch.Tensor)}
        return sum(
            t.numel() * t.element_size()
            for t in _tensors(value)
            if t.untyped_storage()._cdata not in ins
        )

    def _check_budget(self, new: int) -> None:
        if self.budget is not None:
            self.budget(self.acct.live + new)

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


def _shapes(tensors) -> str:
    return ", ".join(fmt.shape(t.shape) for t in tensors) or "nothing"
