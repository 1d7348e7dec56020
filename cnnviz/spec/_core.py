"""Limits, the layer table's core (:class:`LayerType`, :data:`TYPES`) and :func:`validate`:
spec mapping -> frozen, shape-checked Spec. The table's entries live in ``_types.py``."""

from __future__ import annotations

import difflib
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from cnnviz import fmt
from cnnviz.geometry import out_len, pool_fits


class SpecError(ValueError):
    """A spec is invalid; ``path`` names the field at fault (``"layers[3].conv.kernel"``, or
    ``""`` for the whole text) and the message starts with it.

    >>> e = SpecError("layers[0].conv.out", "required")
    >>> e.path, str(e)
    ('layers[0].conv.out', 'layers[0].conv.out: required')
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.reason = message


@dataclass(frozen=True)
class Limits:
    """Size limits that keep a server safe from hostile or accidental giant specs.

    >>> LIMITS.kernel, LIMITS.layers, LIMITS.text_bytes
    (31, 500, 65536)
    """

    text_bytes: int = 64 * 1024  # spec text (and a decompressed URL token)
    url_chars: int = 16 * 1024  # URL token length
    layers: int = 500  # layers in all, nested ones included
    depth: int = 8  # residual/concat nesting
    channels: int = 16384  # out channels/features of a layer, channels after a concat
    kernel: int = 31
    stride: int = 31
    dilation: int = 64
    padding: int = 1024
    batch: int = 64  # input batch
    input_channels: int = 4096  # input channels
    spatial: int = 4096  # every spatial dim, of the input and of every layer's output
    params: int = 2_000_000_000  # total parameters, counted arithmetically before building
    name_chars: int = 64


LIMITS = Limits()

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40
_repr.maxlevel = 2
_repr.maxlist = _repr.maxdict = 6


def short(value: Any) -> str:
    """A bounded repr of a user value for error messages."""
    return _repr.repr(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _suggest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


# ------------------------------------------------------------------------ the layer table
REQUIRED = object()
_KERNEL = "=kernel"  # pool stride default: the kernel


@dataclass(frozen=True)
class Param:
    """One option of a layer type: its kind, default, range and a few words for the docs."""

    kind: str  # int | dims | bool | float | choice | layers | branches
    default: Any = REQUIRED
    lo: float = 1
    hi: float | str = "channels"  # a number or a LIMITS field
    choices: tuple[str, ...] = ()  # allowed strings (choice; dims like padding: "same")
    doc: str = ""

    @property
    def top(self) -> float:
        return getattr(LIMITS, self.hi) if isinstance(self.hi, str) else self.hi

    @property
    def nested(self) -> bool:
        """Whether the option holds layers (a residual's body, a concat's branches)."""
        return self.kind in ("layers", "branches")


@dataclass(frozen=True)
class Window:
    """A conv or pool window: how the output's spatial sizes follow from the input's
    (see :func:`window_out`)."""

    transpose: bool = False  # conv_transpose: out = (in - 1)s - 2p + d(k - 1) + op + 1
    pool: bool = False  # padding <= kernel // 2
    average: bool = False  # avg_pool3d refuses an unpadded input under the kernel


class Inferred(NamedTuple):
    """What a layer type's ``shape`` function finds: the output shape, the parameter count
    and, for residual/concat, the validated nested layers."""

    shape: tuple[int, ...]
    params: int = 0
    children: tuple[tuple[Layer, ...], ...] = ()


@dataclass(frozen=True)
class LayerType:
    """Everything cnnviz.spec knows about one layer type, in one entry of :data:`TYPES`:
    :func:`validate` reads ``params``, ``spatial`` and ``shape``; :func:`build` calls
    ``build``; the docs' table is made from ``params`` and ``doc``."""

    name: str
    params: Mapping[str, Param]  # its options, in the order dumps() writes them
    shape: Callable[[Site, Mapping[str, Any], tuple[int, ...]], Inferred]  # (site, p, x)
    build: Callable[[Layer], Any]  # the nn.Module for a validated layer
    doc: str = ""  # a note for the docs' table (which module, what it needs)
    window: Window | None = None  # conv/pool: the output size comes from window_out()
    spatial: bool = False  # needs an input (N, C, *spatial) with 1 to 3 spatial dims


#: The layer table: type name -> :class:`LayerType`, filled by ``cnnviz.spec._types``.
TYPES: dict[str, LayerType] = {}


def register(t: LayerType) -> LayerType:
    """Add ``t`` to :data:`TYPES`; a name registered twice is an error."""
    if t.name in TYPES:
        raise ValueError(f"spec layer type {t.name!r} is registered twice")
    TYPES[t.name] = t
    return t


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED: set[str] = set()  # filled lazily: attributes of nn.Sequential


def _reserved() -> set[str]:
    if not _RESERVED:
        import torch.nn as nn

        # every attribute, dunders too: add_module refuses a name the module already has
        _RESERVED.update(dir(nn.Sequential()))
    return _RESERVED


def default_of(p: Param, params: Mapping[str, Any]) -> Any:
    return params["kernel"] if p.default == _KERNEL else p.default


# ------------------------------------------------------------------------ frozen result
@dataclass(frozen=True)
class Layer:
    """One validated layer: every option filled in (defaults included), shapes inferred.

    ``children`` holds ``(body, shortcut)`` for ``residual`` and the branches for ``concat``;
    ``module`` is the qualified name of its module in :func:`build`'s model.
    """

    type: str
    params: Mapping[str, Any] = field(hash=False)
    name: str | None
    children: tuple[tuple[Layer, ...], ...]
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    num_params: int
    path: str
    module: str

    def walk(self):
        """This layer, then its nested layers depth-first."""
        yield self
        for seq in self.children:
            for layer in seq:
                yield from layer.walk()


@dataclass(frozen=True)
class Spec:
    """A validated spec: normalized and shape-checked. Build it with :func:`build`.

    >>> s = validate({"input": [1, 3, 8, 8], "layers": [{"conv": {"out": 4, "kernel": 3}}]})
    >>> s.output_shape, s.num_params, s.layers[0].params["stride"]  # 4*3*3*3 + 4
    ((1, 4, 6, 6), 112, 1)
    """

    name: str
    input: tuple[int, ...]
    layers: tuple[Layer, ...]
    output_shape: tuple[int, ...]
    num_params: int
    num_layers: int

    def walk(self):
        """Every layer, nested ones included, depth-first."""
        for layer in self.layers:
            yield from layer.walk()


# ------------------------------------------------------------------------ value checks
def _int(value: Any, path: str, lo: float, hi: float, what: str = "an int") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise SpecError(path, f"must be {what} from {lo:g} to {hi:g}, got {short(value)}")
    return value


def _param(p: Param, value: Any, path: str, nsp: int, params: Mapping[str, Any]) -> Any:
    if value is REQUIRED:
        if p.default is REQUIRED:
            doc = f" ({p.doc})" if p.doc else ""
            raise SpecError(path, f"required{doc}")
        return default_of(p, params)
    if p.kind == "int":
        return _int(value, path, p.lo, p.top)
    if p.kind == "bool":
        if not isinstance(value, bool):
            raise SpecError(path, f"must be true or false, got {short(value)}")
        return value
    if p.kind == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not ok or not p.lo <= value <= p.top:  # NaN fails the range; huge ints too
            raise SpecError(
                path, f"must be a number from {p.lo:g} to {p.top:g}, got {short(value)}"
            )
        return float(value)
    if p.kind == "choice":
        if value not in p.choices:
            raise SpecError(path, f"must be one of {', '.join(p.choices)}, got {short(value)}")
        return value
    # dims: an int, one int per spatial dim, or one of p.choices
    if isinstance(value, str) and value in p.choices:
        return value
    alt = f" or {' or '.join(repr(c) for c in p.choices)}" if p.choices else ""
    if isinstance(value, (list, tuple)):
        what = f"a list of {nsp} ints from {p.lo:g} to {p.top:g} (one per spatial dim){alt}"
        ok = len(value) == nsp and all(
            isinstance(v, int) and not isinstance(v, bool) and p.lo <= v <= p.top for v in value
        )
        if not ok:
            raise SpecError(path, f"must be {what}, got {short(value)}")
        values = tuple(value)
        return values[0] if len(set(values)) == 1 else values
    if isinstance(value, bool) or not isinstance(value, int) or not p.lo <= value <= p.top:
        choices = "".join(f", {c!r}" for c in p.choices)
        raise SpecError(
            path, f"must be an int from {p.lo:g} to {p.top:g}{choices}, got {short(value)}"
        )
    return value


def per_dim(value: Any, n: int) -> tuple:
    return tuple(value) if isinstance(value, tuple) else (value,) * n


def _dims_str(value: Any) -> str:
    return fmt.shape(value) if isinstance(value, tuple) else str(value)


# ------------------------------------------------------------------------ validate
class _Ctx:
    def __init__(self, input_shape: tuple[int, ...]) -> None:
        self.input = input_shape
        self.count = 0
        self.params = 0


def validate(spec: Mapping[str, Any] | Spec) -> Spec:
    """Check a spec mapping (from :func:`parse`) and infer every layer's shapes.

    Raises :class:`SpecError` naming the field and the shapes involved.

    >>> s = validate({"input": [1, 3, 4, 4], "layers": ["flatten", {"linear": {"out": 2}}]})
    >>> [(x.out_shape, x.num_params) for x in s.layers]  # linear: 48*2 + 2
    [((1, 48), 0), ((1, 2), 98)]
    >>> try:
    ...     validate({"input": [1, 3, 1, 1], "layers": [{"maxpool": {"kernel": 2}}]})
    ... except SpecError as e:
    ...     print(e.path, "|", e.reason)
    layers[0].maxpool | kernel 2 would output 0x0 from 1x1 (input 1x3x1x1 is too small)
    """
    if isinstance(spec, Spec):
        return spec
    if not isinstance(spec, Mapping):
        raise SpecError(
            "", f"a spec must be a mapping with keys name, input, layers; got {_kind(spec)}"
        )
    _keys(spec, "", ("name", "input", "layers"), "", {"input", "layers"})
    name = spec.get("name", "custom")
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= LIMITS.name_chars
        or not name.isprintable()
    ):
        raise SpecError(
            "name",
            f"must be a text of 1 to {LIMITS.name_chars} printable characters, got {short(name)}",
        )
    shape = _input(spec["input"])
    ctx = _Ctx(shape)
    if not isinstance(spec["layers"], (list, tuple)) or not spec["layers"]:
        raise SpecError(
            "layers", f"must be a non-empty list of layers, got {short(spec['layers'])}"
        )
    layers, out = _layers(spec["layers"], "layers", "layers", shape, 0, ctx)
    return Spec(name, shape, layers, out, ctx.params, ctx.count)


def _keys(raw: Mapping, path: str, valid: Sequence[str], what: str, required=()) -> None:
    prefix = f"{path}." if path else ""
    for key in raw:
        if not isinstance(key, str):
            raise SpecError(path, f"keys must be texts, got {short(key)}")
        if key not in valid:
            raise SpecError(
                prefix + key,
                f"unknown key{what}; {_suggest(key, valid)}valid keys: {', '.join(valid)}",
            )
    for key in valid:
        if key in required and key not in raw:
            raise SpecError(prefix + key, "required")


def _input(value: Any) -> tuple[int, ...]:
    what = "a list [batch, channels, *spatial] with 0 to 3 spatial dims"
    if not isinstance(value, (list, tuple)) or not 2 <= len(value) <= 5:
        raise SpecError("input", f"must be {what}, got {short(value)}")
    _int(value[0], "input[0]", 1, LIMITS.batch, "a batch size")
    _int(value[1], "input[1]", 1, LIMITS.input_channels, "a channel count")
    for i, v in enumerate(value[2:], 2):
        _int(v, f"input[{i}]", 1, LIMITS.spatial, "a spatial size")
    return tuple(value)


def _layers(
    items: Any, path: str, module: str, shape: tuple[int, ...], depth: int, ctx: _Ctx
) -> tuple[tuple[Layer, ...], tuple[int, ...]]:
    if not isinstance(items, (list, tuple)):
        raise SpecError(path, f"must be a list of layers, got {short(items)}")
    out: list[Layer] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        layer = _layer(item, f"{path}[{i}]", module, i, shape, depth, ctx)
        if layer.name is not None:
            if layer.name in names:
                raise SpecError(
                    f"{layer.path}.{layer.type}.name", f"{layer.name!r} is used twice in this list"
                )
            names.add(layer.name)
        out.append(layer)
        shape = layer.out_shape
    return tuple(out), shape


def _split(item: Any, path: str) -> tuple[str, Any]:
    if isinstance(item, str):
        return item, {}
    if isinstance(item, Mapping) and len(item) == 1:
        ((kind, raw),) = item.items()
        if isinstance(kind, str):
            return kind, {} if raw is None else raw
    if isinstance(item, Mapping) and len(item) > 1:
        keys = ", ".join(short(k) for k in list(item)[:4])
        raise SpecError(
            path,
            f"a layer is a mapping with one key (its type), got keys {keys}; "
            "put each layer in its own list item and its options under its type",
        )
    raise SpecError(path, f"a layer is a type name or {{type: {{options}}}}, got {short(item)}")


class Site:
    """Where a layer is being validated: its type, its path for errors (``at.error``), its
    module name and nesting depth. ``at.layers`` validates a nested list of layers (a
    residual's body, a concat's branch) at this site."""

    def __init__(
        self, t: LayerType, raw: Mapping, path: str, module: str, depth: int, ctx: _Ctx
    ) -> None:
        self.type, self.raw, self.path, self.module = t, raw, path, module
        self.depth, self.ctx = depth, ctx

    @property
    def input(self) -> tuple[int, ...]:
        """The whole spec's input shape (for "input ... is too small" messages)."""
        return self.ctx.input

    def error(self, message: str, key: str | None = None) -> SpecError:
        return SpecError(f"{self.path}.{key}" if key else self.path, message)

    def layers(
        self, items: Any, key: str, shape: tuple[int, ...], index: int | None = None
    ) -> tuple[tuple[Layer, ...], tuple[int, ...]]:
        """Validate ``items`` (the option ``key``, its ``index``-th list for branches) on an
        input of ``shape``: (layers, output shape)."""
        path = f"{self.path}.{key}" + ("" if index is None else f"[{index}]")
        module = f"{self.module}.{key}" + ("" if index is None else f".{index}")
        return _layers(items, path, module, shape, self.depth + 1, self.ctx)


def _layer(
    item: Any, path: str, parent: str, index: int, shape: tuple[int, ...], depth: int, ctx: _Ctx
) -> Layer:
    ctx.count += 1
    if ctx.count > LIMITS.layers:
        raise SpecError(path, f"more than {LIMITS.layers} layers (nested ones included)")
    kind, raw = _split(item, path)
    if kind not in TYPES:
        types = list(TYPES)
        raise SpecError(
            path,
            f"unknown layer type {short(kind)}; {_suggest(kind, types)}valid types: "
            + ", ".join(types),
        )
    t = TYPES[kind]
    tp = f"{path}.{kind}"
    if not isinstance(raw, Mapping):
        raise SpecError(tp, f"options must be a mapping, got {short(raw)}")
    _keys(raw, tp, [*t.params, "name"], f" for {kind}")
    name = raw.get("name")
    if name is not None:
        ok = isinstance(name, str) and len(name) <= LIMITS.name_chars and _NAME_RE.fullmatch(name)
        if not ok:
            raise SpecError(
                f"{tp}.name",
                f"must be an identifier (letters, digits, _; not starting with a digit) of at "
                f"most {LIMITS.name_chars} characters, got {short(name)}",
            )
        if name in _reserved():
            raise SpecError(f"{tp}.name", f"{name!r} is reserved by torch.nn; pick another name")
    module = f"{parent}.{name if name is not None else index}"
    if t.spatial and not 3 <= len(shape) <= 5:
        raise SpecError(
            tp,
            f"needs an input (N, C, *spatial) with 1 to 3 spatial dims, got {fmt.shape(shape)}"
            + ("; move it before flatten" if len(shape) == 2 else ""),
        )
    nsp = len(shape) - 2
    params: dict[str, Any] = {}
    for key, p in t.params.items():
        if not p.nested:
            params[key] = _param(p, raw.get(key, REQUIRED), f"{tp}.{key}", nsp, params)
    if any(p.nested for p in t.params.values()) and depth + 1 > LIMITS.depth:
        raise SpecError(tp, f"residual/concat blocks nested more than {LIMITS.depth} deep")
    out, n, children = t.shape(Site(t, raw, tp, module, depth, ctx), params, shape)
    if len(out) > 2 and any(s > LIMITS.spatial for s in out[2:]):
        raise SpecError(
            tp,
            f"would output {fmt.shape(out[2:])}, more than the limit of {LIMITS.spatial} "
            "per spatial dim",
        )
    ctx.params += n
    if ctx.params > LIMITS.params:
        raise SpecError(
            tp,
            f"the spec would have more than {LIMITS.params:,} parameters "
            f"({ctx.params:,} up to this layer, {n:,} in it)",
        )
    return Layer(kind, MappingProxyType(params), name, children, shape, out, n, path, module)


# ------------------------------------------------------------------------ window geometry
def window_out(at: Site, params: Mapping[str, Any], shape: tuple[int, ...]) -> tuple[int, ...]:
    """Output spatial sizes of a conv/pool window (``at.type.window``) on ``shape``, with the
    error that says which input is too small.

    Per spatial dim: ``out_len`` (the formula :func:`cnnviz.analyze` uses) for convs and pools,
    ``(in - 1)s - 2p + d(k - 1) + output_padding + 1`` for transposed convs, ``in`` for
    ``padding: same``.
    """
    w = at.type.window
    assert w is not None, at.type.name
    n = len(shape) - 2
    k = per_dim(params["kernel"], n)
    s = per_dim(params["stride"], n)
    d = per_dim(params.get("dilation", 1), n)
    pad = params["padding"]
    ins = shape[2:]
    if w.transpose:
        op = per_dim(params["output_padding"], n)
        p = per_dim(pad, n)
        for i in range(n):
            if op[i] >= max(s[i], d[i]):
                raise at.error(
                    f"must be smaller than the stride or the dilation, got {op[i]} "
                    f"(stride {s[i]}, dilation {d[i]})",
                    "output_padding",
                )
        outs = tuple(
            (ins[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(n)
        )
    elif pad == "same":
        if any(v != 1 for v in s):
            raise at.error(
                f"'same' needs stride 1, got stride {_dims_str(params['stride'])}", "padding"
            )
        outs = ins
    else:
        p = per_dim(0 if pad == "valid" else pad, n)
        ceil = params.get("ceil_mode", False)
        if w.pool and any(p[i] > k[i] // 2 for i in range(n)):
            raise at.error(
                f"must be at most half the kernel ({_dims_str(params['kernel'])} // 2), "
                f"got {_dims_str(pad)}",
                "padding",
            )
        if w.pool and not pool_fits(ins, k, w.average):
            raise at.error(  # PyTorch's avg_pool3d refuses an unpadded input under the kernel
                f"kernel {_dims_str(params['kernel'])} is larger than its input "
                f"{fmt.shape(ins)} (input {fmt.shape(at.input)} is too small)"
            )
        # the one window formula cnnviz.analyze uses too
        outs = tuple(out_len(ins[i], k[i], s[i], 2 * p[i], d[i], bool(ceil)) for i in range(n))
    if any(o < 1 for o in outs):
        kd = _dims_str(params["kernel"])
        dil = (
            f" (dilation {_dims_str(params['dilation'])})" if params.get("dilation", 1) != 1 else ""
        )
        raise at.error(
            f"kernel {kd}{dil} would output {fmt.shape(max(o, 0) for o in outs)} from "
            f"{fmt.shape(ins)} (input {fmt.shape(at.input)} is too small)"
        )
    return outs
