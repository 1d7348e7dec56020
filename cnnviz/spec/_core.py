"""Limits, the layer catalog and :func:`validate`: spec mapping -> frozen, shape-checked Spec."""

from __future__ import annotations

import difflib
import math
import re
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cnnviz import fmt
from cnnviz.rules.conv import out_len


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


# ------------------------------------------------------------------------ the layer catalog
REQUIRED = object()
_KERNEL = "=kernel"  # pool stride default: the kernel


@dataclass(frozen=True)
class Param:
    kind: str  # int | dims | bool | float | choice | layers | branches
    default: Any = REQUIRED
    lo: float = 1
    hi: float | str = "channels"  # a number or a LIMITS field
    choices: tuple[str, ...] = ()  # allowed strings (choice; dims like padding: "same")
    doc: str = ""

    @property
    def top(self) -> float:
        return getattr(LIMITS, self.hi) if isinstance(self.hi, str) else self.hi


def _conv(transpose: bool) -> dict[str, Param]:
    p = {
        "out": Param("int", doc="output channels"),
        "kernel": Param("dims", hi="kernel"),
        "stride": Param("dims", 1, hi="stride"),
        "padding": Param("dims", 0, 0, "padding", () if transpose else ("same", "valid")),
        "output_padding": Param("dims", 0, 0, "stride"),
        "dilation": Param("dims", 1, hi="dilation"),
        "groups": Param("int", 1),
        "bias": Param("bool", True),
    }
    if not transpose:
        del p["output_padding"]
    return p


def _pool(avg: bool) -> dict[str, Param]:
    p = {
        "kernel": Param("dims", hi="kernel"),
        "stride": Param("dims", _KERNEL, hi="stride"),
        "padding": Param("dims", 0, 0, "padding"),
        "dilation": Param("dims", 1, hi="dilation"),
        "ceil_mode": Param("bool", False),
    }
    if avg:
        del p["dilation"]
        p["count_include_pad"] = Param("bool", True)
    return p


_EPS = Param("float", 1e-5, 1e-12, 1.0)
_AFFINE = Param("bool", True)

CATALOG: dict[str, dict[str, Param]] = {
    "conv": _conv(False),
    "conv_transpose": _conv(True),
    "maxpool": _pool(False),
    "avgpool": _pool(True),
    "adaptive_avgpool": {"size": Param("dims", 1, hi="spatial")},
    "adaptive_maxpool": {"size": Param("dims", 1, hi="spatial")},
    "bn": {"eps": _EPS, "momentum": Param("float", 0.1, 0.0, 1.0), "affine": _AFFINE},
    "groupnorm": {"groups": Param("int"), "eps": _EPS, "affine": _AFFINE},
    "layernorm": {"eps": _EPS, "affine": _AFFINE},
    "lrn": {
        "size": Param("int", 5),
        "alpha": Param("float", 1e-4, 0.0, 100.0),
        "beta": Param("float", 0.75, 0.0, 100.0),
        "k": Param("float", 1.0, 0.0, 100.0),
    },
    "relu": {},
    "relu6": {},
    "leaky_relu": {"negative_slope": Param("float", 0.01, 0.0, 1.0)},
    "gelu": {"approximate": Param("choice", "none", choices=("none", "tanh"))},
    "silu": {},
    "sigmoid": {},
    "tanh": {},
    "dropout": {"p": Param("float", 0.5, 0.0, 1.0)},
    "flatten": {},
    "linear": {"out": Param("int", doc="output features"), "bias": Param("bool", True)},
    "identity": {},
    "residual": {"body": Param("layers"), "shortcut": Param("layers", ())},
    "concat": {"branches": Param("branches")},
}
SPATIAL = {"conv", "conv_transpose", "maxpool", "avgpool", "adaptive_avgpool", "adaptive_maxpool"}
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESERVED: set[str] = set()  # filled lazily: attributes of nn.Sequential


def _reserved() -> set[str]:
    if not _RESERVED:
        import torch.nn as nn

        _RESERVED.update(n for n in dir(nn.Sequential()) if not n.startswith("__"))
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


def _layer(
    item: Any, path: str, parent: str, index: int, shape: tuple[int, ...], depth: int, ctx: _Ctx
) -> Layer:
    ctx.count += 1
    if ctx.count > LIMITS.layers:
        raise SpecError(path, f"more than {LIMITS.layers} layers (nested ones included)")
    kind, raw = _split(item, path)
    if kind not in CATALOG:
        types = list(CATALOG)
        raise SpecError(
            path,
            f"unknown layer type {short(kind)}; {_suggest(kind, types)}valid types: "
            + ", ".join(types),
        )
    tp = f"{path}.{kind}"
    if not isinstance(raw, Mapping):
        raise SpecError(tp, f"options must be a mapping, got {short(raw)}")
    schema = CATALOG[kind]
    _keys(raw, tp, [*schema, "name"], f" for {kind}")
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
    if kind in SPATIAL and not 3 <= len(shape) <= 5:
        raise SpecError(
            tp,
            f"needs an input (N, C, *spatial) with 1 to 3 spatial dims, got {fmt.shape(shape)}"
            + ("; move it before flatten" if len(shape) == 2 else ""),
        )
    nsp = len(shape) - 2
    params: dict[str, Any] = {}
    for key, p in schema.items():
        if p.kind not in ("layers", "branches"):
            params[key] = _param(p, raw.get(key, REQUIRED), f"{tp}.{key}", nsp, params)
    children: tuple[tuple[Layer, ...], ...] = ()
    if kind in ("residual", "concat"):
        if depth + 1 > LIMITS.depth:
            raise SpecError(tp, f"residual/concat blocks nested more than {LIMITS.depth} deep")
        if kind == "residual":
            out, children = _residual(raw, tp, module, shape, depth, ctx)
        else:
            out, children = _concat(raw, tp, module, shape, depth, ctx)
        n = 0
    else:
        out, n = _infer(kind, params, shape, tp, ctx)
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


def _residual(raw, tp, module, shape, depth, ctx):
    if "body" not in raw:
        raise SpecError(f"{tp}.body", "required (the layers of the residual branch)")
    if not raw["body"]:
        raise SpecError(f"{tp}.body", "must be a non-empty list of layers")
    body, b = _layers(raw["body"], f"{tp}.body", f"{module}.body", shape, depth + 1, ctx)
    short_raw = raw.get("shortcut") or ()
    sc, s = _layers(short_raw, f"{tp}.shortcut", f"{module}.shortcut", shape, depth + 1, ctx)
    if b != s:
        sc_what = "the shortcut" if sc else "the identity shortcut"
        fix = "change the shortcut" if sc else "add a shortcut (e.g. a 1x1 conv)"
        if len(b) != len(s):
            got = f"{fmt.shape(b)} but {sc_what} gives {fmt.shape(s)}"
        elif b[2:] == s[2:]:
            got = f"{b[1]} channels but {sc_what} gives {s[1]}"
        else:
            got = (
                f"{b[1]} channels at {fmt.shape(b[2:])} but {sc_what} gives {s[1]} channels "
                f"at {fmt.shape(s[2:])}"
            )
            if not sc:
                fix = "add a shortcut with the body's stride (e.g. a 1x1 conv with stride 2)"
        raise SpecError(tp, f"body outputs {got}; {fix} or change the body")
    return b, (body, sc)


def _concat(raw, tp, module, shape, depth, ctx):
    branches = raw.get("branches")
    if not isinstance(branches, (list, tuple)) or len(branches) < 2:
        raise SpecError(
            f"{tp}.branches",
            f"must be a list of at least 2 branches (lists of layers), got {short(branches)}",
        )
    seqs, outs = [], []
    for j, branch in enumerate(branches):
        seq, out = _layers(
            branch, f"{tp}.branches[{j}]", f"{module}.branches.{j}", shape, depth + 1, ctx
        )
        seqs.append(seq)
        outs.append(out)
    first = outs[0]
    for j, out in enumerate(outs[1:], 1):
        if len(out) != len(first) or out[2:] != first[2:]:
            a = fmt.shape(out[2:]) or fmt.shape(out)
            b = fmt.shape(first[2:]) or fmt.shape(first)
            raise SpecError(
                tp,
                f"branch {j} outputs {a} but branch 0 outputs {b}; concat needs the same size in "
                "every dim but channels (check the branches' padding and stride)",
            )
    channels = sum(o[1] for o in outs)
    if channels > LIMITS.channels:
        raise SpecError(tp, f"would output {channels} channels, more than {LIMITS.channels}")
    return (first[0], channels, *first[2:]), tuple(seqs)


def _window(kind, params, shape, tp, ctx) -> tuple[int, ...]:
    """Output spatial sizes of conv/pool windows; the input-too-small message."""
    n = len(shape) - 2
    k = per_dim(params["kernel"], n)
    s = per_dim(params["stride"], n)
    d = per_dim(params.get("dilation", 1), n)
    pad = params["padding"]
    ins = shape[2:]
    if kind == "conv_transpose":
        op = per_dim(params["output_padding"], n)
        p = per_dim(pad, n)
        for i in range(n):
            if op[i] >= max(s[i], d[i]):
                raise SpecError(
                    f"{tp}.output_padding",
                    f"must be smaller than the stride or the dilation, got {op[i]} "
                    f"(stride {s[i]}, dilation {d[i]})",
                )
        outs = tuple(
            (ins[i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(n)
        )
    elif pad == "same":
        if any(v != 1 for v in s):
            raise SpecError(
                f"{tp}.padding", f"'same' needs stride 1, got stride {_dims_str(params['stride'])}"
            )
        outs = ins
    else:
        p = per_dim(0 if pad == "valid" else pad, n)
        ceil = params.get("ceil_mode", False)
        if kind in ("maxpool", "avgpool") and any(p[i] > k[i] // 2 for i in range(n)):
            raise SpecError(
                f"{tp}.padding",
                f"must be at most half the kernel ({_dims_str(params['kernel'])} // 2), "
                f"got {_dims_str(pad)}",
            )
        if kind in ("maxpool", "avgpool") and n == 3 and any(k[i] > ins[i] for i in range(n)):
            raise SpecError(  # PyTorch's 3-d pools refuse an unpadded input under the kernel
                tp,
                f"kernel {_dims_str(params['kernel'])} is larger than its input "
                f"{fmt.shape(ins)} (input {fmt.shape(ctx.input)} is too small)",
            )
        # the one window formula cnnviz.analyze uses too
        outs = tuple(out_len(ins[i], k[i], s[i], 2 * p[i], d[i], bool(ceil)) for i in range(n))
    if any(o < 1 for o in outs):
        kd = _dims_str(params["kernel"])
        dil = (
            f" (dilation {_dims_str(params['dilation'])})" if params.get("dilation", 1) != 1 else ""
        )
        raise SpecError(
            tp,
            f"kernel {kd}{dil} would output {fmt.shape(max(o, 0) for o in outs)} from "
            f"{fmt.shape(ins)} (input {fmt.shape(ctx.input)} is too small)",
        )
    return outs


def _infer(kind: str, params: Mapping, shape: tuple[int, ...], tp: str, ctx: _Ctx):
    """(output shape, parameter count) of a plain layer."""
    c = shape[1]
    if kind in ("conv", "conv_transpose"):
        out, g = params["out"], params["groups"]
        if c % g or out % g:
            raise SpecError(
                f"{tp}.groups",
                f"{g} must divide the input channels ({c}) and out ({out})",
            )
        k = math.prod(per_dim(params["kernel"], len(shape) - 2))
        n = (out * (c // g) if kind == "conv" else c * (out // g)) * k
        n += out if params["bias"] else 0
        return (shape[0], out, *_window(kind, params, shape, tp, ctx)), n
    if kind in ("maxpool", "avgpool"):
        return (*shape[:2], *_window(kind, params, shape, tp, ctx)), 0
    if kind.startswith("adaptive_"):
        return (*shape[:2], *per_dim(params["size"], len(shape) - 2)), 0
    if kind == "bn":
        return shape, 2 * c if params["affine"] else 0
    if kind == "groupnorm":
        if c % params["groups"]:
            raise SpecError(
                f"{tp}.groups", f"{params['groups']} must divide the {c} input channels"
            )
        return shape, 2 * c if params["affine"] else 0
    if kind == "layernorm":
        return shape, 2 * math.prod(shape[1:]) if params["affine"] else 0
    if kind == "lrn" and len(shape) < 3:
        raise SpecError(tp, f"needs an input (N, C, *spatial), got {fmt.shape(shape)}")
    if kind == "flatten":
        return (shape[0], math.prod(shape[1:])), 0
    if kind == "linear":
        if len(shape) != 2:
            raise SpecError(
                tp,
                f"needs a flat input (N, features), got {fmt.shape(shape)}; add flatten before it",
            )
        out = params["out"]
        return (shape[0], out), c * out + (out if params["bias"] else 0)
    return shape, 0  # activations, dropout, identity, lrn
