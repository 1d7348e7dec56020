"""The rule registry's core: what a rule is, the table the tracer looks rules up in, and the
small argument helpers every family uses. The families (``conv``, ``elementwise``, ...)
register into :data:`RULES` from here and never import each other.

A rule receives the tracer's context and the op's own arguments, and returns an :class:`Out`:
the output tensor(s) (built on the meta device from shape arithmetic, never computed), the
output's :class:`~cnnviz.receptive.Flow`, and the op's MACs and other arithmetic.

Conventions: ``macs`` counts multiply-accumulates of conv, conv-transpose, linear and
matmul-like ops, without bias (FlopCounterMode's formulas in ``torch/utils/flop_counter.py``,
halved). ``extra`` counts every other arithmetic op (bias adds, normalisation, activations,
pooling, elementwise merges), one per output element per operation, so that users can add it
if they wish; it never enters ``macs``.

Lookup is by identity of the function object that ``__torch_function__`` receives
(``torch.conv2d``, ``torch.Tensor.add_``, ``F.max_pool2d``, a custom op's ``OpOverload``);
there is no name matching.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

import torch

from cnnviz import fmt
from cnnviz.receptive import Flow

#: What a row is, for totals per kind (:meth:`cnnviz.Analysis.by_kind`) and for the renderers;
#: ``other`` is every op without a rule of a known family.
Kind = Literal[
    "conv",
    "linear",
    "norm",
    "activation",
    "pool",
    "dropout",
    "elementwise",
    "merge",
    "reshape",
    "pad",
    "upsample",
    "other",
]
KINDS: frozenset[str] = frozenset(get_args(Kind))


class RuleError(ValueError):
    """An op got arguments it cannot work with; the tracer adds where it happened.

    ``too_small`` marks the common case of an input too small for the network.
    """

    def __init__(self, message: str, too_small: bool = False) -> None:
        super().__init__(message)
        self.too_small = too_small


@dataclass
class Out:
    """What a rule returns. ``value`` is what the torch function would have returned."""

    value: Any
    flow: Flow | list[Flow] | None  # one Flow for all tensor outputs, or one each
    macs: int = 0
    extra: int = 0


class Ctx(Protocol):
    """What a rule may ask of the tracer."""

    strict_dtypes: bool  # parameters must match their inputs' dtype (off for what-if dtypes)

    def flow(self, t: torch.Tensor) -> Flow:
        """The flow of tensor ``t``: which dim is which input axis, and its window."""
        ...

    def adopt(self, t: torch.Tensor) -> torch.Tensor:
        """Count a meta tensor the rule made itself (by running a meta kernel) as output."""
        ...

    def set_flow(self, t: torch.Tensor, flow: Flow) -> None:
        """New flow for ``t``, changed in place (``y[idx] = v``)."""
        ...

    def note(self, topic: str, text: str) -> None:
        """Record a convention that shaped the numbers here (``Analysis.notes``)."""
        ...

    def new(
        self, shape: tuple[int, ...], like: torch.Tensor, dtype: torch.dtype | None = None
    ) -> torch.Tensor:
        """An empty meta tensor of ``shape`` (``like``'s dtype unless ``dtype``): the output."""
        ...


@dataclass(frozen=True)
class Rule:
    kind: Kind
    fn: Callable[..., Out]
    name: str


RULES: dict[Any, Rule] = {}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown rule kind {kind!r}; one of {', '.join(sorted(KINDS))}")


def register(*funcs: Any, kind: Kind, name: str | None = None) -> Callable:
    """Register ``fn`` as the rule for every torch function in ``funcs``; twice is an error."""
    _check_kind(kind)

    def deco(fn: Callable[..., Out]) -> Callable[..., Out]:
        for f in dict.fromkeys(f for f in funcs if f is not None):
            if f in RULES:
                raise ValueError(f"a rule for {f!r} is already registered")
            RULES[f] = Rule(kind, fn, name or fn.__name__.removesuffix("_rule"))
        return fn

    return deco


# --------------------------------------------------------------------------- public extension


#: Rules that :func:`register_rule` hid, per key, oldest first (None: the key had none).
_HIDDEN: dict[Any, list[Rule | None]] = {}


def _keys(torch_function: Any) -> list[Any]:
    """The function objects ``__torch_function__`` receives for ``torch_function``."""
    if isinstance(torch_function, str):
        raise TypeError(
            f"rules are keyed by the function object, not by its name: pass the function "
            f"itself, not {torch_function!r}"
        )
    owner = getattr(torch_function, "__self__", None)
    fn_class = torch_function if isinstance(torch_function, type) else owner
    if isinstance(fn_class, type) and issubclass(fn_class, torch.autograd.Function):
        raise TypeError(
            f"{fn_class.__name__}.apply never reaches __torch_function__: the tracer sees the "
            "ops inside its forward one by one. Register rules for those ops, or make the "
            "op a torch.library.custom_op (with register_fake) and register a rule for that"
        )
    op = getattr(torch_function, "_opoverload", None)  # a torch.library.custom_op
    if isinstance(op, torch._ops.OpOverload):
        return [op, op.overloadpacket]
    if isinstance(torch_function, torch._ops.OpOverloadPacket):
        return [torch_function, *(getattr(torch_function, o) for o in torch_function.overloads())]
    if not callable(torch_function):
        raise TypeError(f"{torch_function!r} is not a function")
    return [torch_function]


class RuleHandle:
    """What :func:`register_rule` returns: ``remove()`` (or leaving a ``with`` block) takes the
    rule away again, like the handle of ``Module.register_forward_hook``."""

    def __init__(self, keys: list[Any], rule: Rule) -> None:
        self.keys = keys
        self.rule = rule

    def remove(self) -> None:
        """Unregister this rule; a rule it replaced comes back. Twice is harmless."""
        for key in self.keys:
            if RULES.get(key) is self.rule:
                _unregister_key(key)

    def __enter__(self) -> RuleHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def register_rule(
    torch_function: Any,
    rule: Callable[..., Out],
    *,
    kind: Kind = "other",
    name: str | None = None,
    replace: bool = False,
) -> RuleHandle:
    """Give the tracer a rule for an op it has none for (as FlopCounterMode's
    ``custom_mapping`` and fvcore's ``set_op_handle`` do for counts).

    ``torch_function`` is the function object the tracer receives: a ``torch`` function or
    ``Tensor`` method, or a ``torch.library.custom_op`` (its ``OpOverload`` and
    ``torch.ops.<ns>.<name>`` both get the rule). A ``torch.autograd.Function``'s ``apply``
    never reaches the tracer (the ops inside its ``forward`` do), so it is refused. ``kind`` is
    one of :data:`Kind`; ``name`` names the op's rows (default: the op's own name).

    ``rule(ctx, *args, **kwargs) -> Out`` gets the op's arguments (inputs are meta tensors)
    and returns an :class:`Out`: ``value``, the output, made with ``ctx.new(shape, like,
    dtype=None)`` (an empty meta tensor, counted as an activation); ``flow``, the output's
    :class:`~cnnviz.receptive.Flow` (``ctx.flow(t)`` is an input's; an op that works element
    by element passes it on, others use :mod:`cnnviz.receptive`'s ``slide_dims``,
    ``reduce_dims``, ``merge``, or ``each_group(flow, lambda w: unknown(w, reason))``);
    ``macs`` and ``extra``, the op's multiply-accumulates and other arithmetic. A rule may call
    ``ctx.note(topic, text)`` to record a convention in ``Analysis.notes``, and raise
    :class:`RuleError` for arguments the op refuses.

    Registering a second rule for an op is an error unless ``replace=True`` (which also
    overrides a built-in rule). The returned handle's ``remove()``, or leaving it as a
    context manager, takes the rule away and brings back the one it replaced.

    >>> import torch, torch.nn as nn, cnnviz
    >>> from cnnviz.rules import Out
    >>> @torch.library.custom_op("cnnviz_doc::scale", mutates_args=())
    ... def scale(x: torch.Tensor, s: float) -> torch.Tensor:
    ...     return x * s
    >>> @scale.register_fake
    ... def _(x, s):
    ...     return torch.empty_like(x)
    >>> class Net(nn.Sequential):
    ...     def forward(self, x):
    ...         return scale(super().forward(x), 2.0)
    >>> net = Net(nn.Conv2d(1, 1, 3))
    >>> cnnviz.analyze(net, (1, 1, 8, 8)).receptive_field().reason
    'no receptive-field rule for `scale`'
    >>> def scale_rule(ctx, x, s):  # one multiply per element; every unit keeps its window
    ...     return Out(ctx.new(tuple(x.shape), x), ctx.flow(x), macs=0, extra=x.numel())
    >>> with cnnviz.register_rule(scale, scale_rule, kind="elementwise"):
    ...     a = cnnviz.analyze(net, (1, 1, 8, 8))
    >>> a.receptive_field().size, a.layers[-1].kind, a.layers[-1].extra_ops
    ((3, 3), 'elementwise', 36)
    """
    _check_kind(kind)
    if not callable(rule):
        raise TypeError(f"the rule must be a function (ctx, *args, **kwargs) -> Out, got {rule!r}")
    keys = list(dict.fromkeys(_keys(torch_function)))
    taken = [k for k in keys if k in RULES]
    if taken and not replace:
        old = RULES[taken[0]]
        raise ValueError(
            f"a rule for {taken[0]!r} is already registered ({old.name!r}, kind "
            f"{old.kind!r}); pass replace=True to replace it"
        )
    new = Rule(kind, rule, name or op_name(keys[0]))
    for key in keys:
        _HIDDEN.setdefault(key, []).append(RULES.get(key))
        RULES[key] = new
    return RuleHandle(keys, new)


def _unregister_key(key: Any) -> None:
    hidden = _HIDDEN[key]
    previous = hidden.pop()
    if not hidden:
        del _HIDDEN[key]
    if previous is None:
        del RULES[key]
    else:
        RULES[key] = previous


def unregister_rule(torch_function: Any) -> None:
    """Take away the rule :func:`register_rule` last gave ``torch_function``; a rule it
    replaced comes back. Built-in rules cannot be taken away (replace them instead)."""
    keys = _keys(torch_function)
    missing = [k for k in keys if k not in _HIDDEN]
    if missing:
        raise KeyError(f"no rule was registered for {missing[0]!r} with register_rule")
    for key in keys:
        _unregister_key(key)


# --------------------------------------------------------------------------- helpers for rules


def op_name(func: Any) -> str:
    """Short name of a torch function, used to name functional rows (``add``, ``cat``).

    >>> op_name(torch.Tensor.add_), op_name(torch.ops.aten.relu.default)
    ('add', 'relu')
    """
    rule = RULES.get(func)
    if rule is not None:
        return rule.name
    if isinstance(func, torch._ops.OpOverload):  # "relu.default": the packet's name
        func = func.overloadpacket
    name = getattr(func, "__name__", None) or type(func).__name__
    if name in ("fn", "__get__"):  # boolean_dispatch wrappers, property getters
        name = getattr(func, "__qualname__", name)
    name = name.strip("_")
    return name[:-1] if name.endswith("_") and len(name) > 1 else name


def ntuple(v: Any, n: int, what: str) -> tuple[int, ...]:
    """Expand an int or a sequence to n ints (the ``_pair`` habit).

    >>> ntuple(3, 2, "kernel_size"), ntuple([1, 2], 2, "stride")
    ((3, 3), (1, 2))
    """
    if isinstance(v, int):
        return (v,) * n
    t = tuple(int(x) for x in v)
    if len(t) == 1:
        return t * n
    if len(t) != n:
        raise RuleError(f"{what} needs {n} values, got {t}")
    return t


def probe_dtype(func: Any, name: str, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.dtype:
    """The dtype ``func`` gives for ``x``'s dtype, from one real element on the CPU: exactly
    PyTorch's rules (sigmoid of an int is float32, gelu of an int is refused). Only for the
    rare non-float inputs; meta kernels do not check dtypes.

    >>> probe_dtype(torch.sigmoid, "sigmoid", torch.zeros(2, dtype=torch.int64))
    torch.float32
    """
    try:
        return func(torch.ones(1, dtype=x.dtype), *args, **kwargs).dtype
    except (RuntimeError, TypeError, NotImplementedError) as e:
        msg = str(e).split("\n")[0]
        raise RuleError(f"`{name}` does not take a {x.dtype} input ({msg})") from None


def positive(values: tuple[int, ...], what: str) -> tuple[int, ...]:
    """``values`` when all are at least 1 (strides, kernels, dilations); else an error.

    >>> positive((2, 1), "stride")
    (2, 1)
    """
    if min(values) < 1:
        raise RuleError(f"{what} must be at least 1, got {fmt.shape(values)}")
    return values


def dim_index(dim: int, t: torch.Tensor) -> int:
    """``dim`` of tensor ``t`` as an index in [0, ndim); out of range is an error, as in
    PyTorch (a 0-d tensor takes dims -1 and 0).

    >>> dim_index(-1, torch.empty(2, 3, device="meta"))
    1
    """
    n = max(t.dim(), 1)
    if not -n <= int(dim) < n:
        raise RuleError(
            f"dim {dim} is out of range for the {t.dim()}-d tensor {fmt.shape(t.shape)} "
            f"(valid: {-n} to {n - 1})"
        )
    return int(dim) % n


__all__ = [
    "KINDS",
    "RULES",
    "Ctx",
    "Kind",
    "Out",
    "Rule",
    "RuleError",
    "RuleHandle",
    "dim_index",
    "ntuple",
    "op_name",
    "positive",
    "probe_dtype",
    "register",
    "register_rule",
    "unregister_rule",
]
