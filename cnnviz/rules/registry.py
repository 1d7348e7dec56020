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


# --------------------------------------------------------------------------- helpers for rules


def op_name(func: Any) -> str:
    """Short name of a torch function, used to name functional rows (``add``, ``cat``).

    >>> op_name(torch.Tensor.add_)
    'add'
    """
    rule = RULES.get(func)
    if rule is not None:
        return rule.name
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
    "dim_index",
    "ntuple",
    "op_name",
    "positive",
    "probe_dtype",
    "register",
]
