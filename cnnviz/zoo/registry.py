"""Model registry: names -> builders, each with typed, validated options.

``register_model`` fills the registry (one decorator beside each builder); ``list_models``,
``model_info`` and ``get_model`` read it. An option is declared once, as an ``Option``, and that
one declaration validates ``get_model(name, **config)``, parses command-line text
(``Option.parse``) and tells a CLI or app which values to offer (``choices``, ``help``).
"""

from __future__ import annotations

import difflib
import inspect
import numbers
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

InputSize = tuple[int, ...]

# list_models() order: families in historical order, then registration order within a family.
FAMILIES = ("alexnet", "vgg", "googlenet", "resnet", "resnet_cifar", "stack")

_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})
_FALSE = frozenset({"0", "false", "f", "no", "n", "off"})


class ZooError(ValueError):
    """A bad model name, option name or option value.

    A ``ValueError`` subclass, so callers may catch either.
    """


@dataclass(frozen=True)
class Option:
    """One configurable knob of a zoo model.

    ``choices`` (when not None) lists every valid value; ``check`` is an extra predicate for
    open-ended options (``depth`` must be 6n+2), described for humans by ``constraint``.
    ``name`` is filled in by the registry so messages can name the option.
    """

    default: Any
    type: type
    help: str
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], bool] | None = field(default=None, repr=False, compare=False)
    constraint: str = ""
    name: str = ""

    def valid_values(self) -> str:
        """Human text for the valid values: the choices, the constraint, or the type."""
        if self.choices is not None:
            return "valid choices: " + ", ".join(repr(c) for c in self.choices)
        if self.constraint:
            return f"valid values: {self.constraint}"
        return f"valid values: any {self.type.__name__}"

    def _where(self, model: str) -> str:
        label = f"option {self.name!r}" if self.name else "option"
        return f"{model}: {label}" if model else label

    def validate(self, value: Any, model: str = "") -> Any:
        """Return ``value`` converted to the option's type, or raise ``ZooError``."""
        converted = _coerce(value, self.type)
        if converted is None:
            hint = (
                " (use Option.parse or ModelInfo.parse_options for text)"
                if isinstance(value, str)
                else ""
            )
            raise ZooError(
                f"{self._where(model)} expects {self.type.__name__}, got "
                f"{type(value).__name__} {value!r}{hint}; {self.valid_values()}"
            )
        ok = converted in self.choices if self.choices is not None else True
        if ok and self.check is not None:
            ok = bool(self.check(converted))
        if not ok:
            raise ZooError(f"{self._where(model)}: bad value {value!r}; {self.valid_values()}")
        return converted

    def parse(self, text: str, model: str = "") -> Any:
        """Convert command-line text (``"A"``, ``"true"``, ``"20"``) and validate it.

        Strings match choices case-insensitively (``"a"`` -> ``"A"``).
        """
        raw = text.strip()
        value: Any
        try:
            if self.type is bool:
                low = raw.lower()
                if low not in _TRUE | _FALSE:
                    raise ValueError(raw)
                value = low in _TRUE
            elif self.type is int:
                value = int(raw)
            elif self.type is float:
                value = float(raw)
            else:
                value = raw
        except ValueError:
            raise ZooError(
                f"{self._where(model)}: cannot read {text!r} as {self.type.__name__}; "
                f"{self.valid_values()}"
            ) from None
        if self.type is str and self.choices is not None:
            by_lower = {str(c).lower(): c for c in self.choices}
            value = by_lower.get(raw.lower(), raw)
        return self.validate(value, model)


def _coerce(value: Any, typ: type) -> Any:
    """``value`` as ``typ`` if it already is one (ints count as floats), else None."""
    if typ is bool:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None  # True is an int in Python, never a valid int/float option here
    if typ is int:
        return int(value) if isinstance(value, numbers.Integral) else None
    if typ is float:
        return float(value) if isinstance(value, numbers.Real) else None
    return value if isinstance(value, typ) else None


def check_keys(model: str, options: Mapping[str, Option], keys: Iterable[str]) -> None:
    """Raise ``ZooError`` naming the first key that is not an option of ``model``."""
    for key in keys:
        if key not in options:
            close = difflib.get_close_matches(key, list(options), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            valid = ", ".join(options) if options else "(none)"
            raise ZooError(f"{model} has no option {key!r}{hint}; valid options: {valid}")


def resolve_options(
    model: str, options: Mapping[str, Option], config: Mapping[str, Any]
) -> dict[str, Any]:
    """Defaults overlaid with ``config``, every key and value checked; raises ``ZooError``.

    The single validation path: ``get_model`` and builders called directly both use it.
    """
    check_keys(model, options, config)
    resolved = {}
    for key, opt in options.items():
        named = opt if opt.name == key else replace(opt, name=key)
        resolved[key] = named.validate(config.get(key, opt.default), model)
    return resolved


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model: data only, plus the builder to call."""

    name: str
    family: str
    description: str  # one line
    paper: str
    input_size: InputSize  # batch-first, for the default config
    options: dict[str, Option] = field(hash=False)
    builder: Callable[..., nn.Module] = field(repr=False, compare=False)
    size_rule: Callable[[Mapping[str, Any]], InputSize] | None = field(
        default=None, repr=False, compare=False
    )

    def defaults(self) -> dict[str, Any]:
        return {k: o.default for k, o in self.options.items()}

    def resolve(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The full config: defaults overlaid with ``config``, validated."""
        return resolve_options(self.name, self.options, config or {})

    def parse_options(self, texts: Mapping[str, str]) -> dict[str, Any]:
        """Parse ``{"shortcut": "A", "depth": "56"}`` into typed values for ``get_model``."""
        check_keys(self.name, self.options, texts)
        return {k: self.options[k].parse(v, self.name) for k, v in texts.items()}

    def input_size_for(self, config: Mapping[str, Any] | None = None) -> InputSize:
        """Default input size for a (partial) config."""
        if self.size_rule is None:
            return self.input_size
        return tuple(self.size_rule(self.resolve(config)))


class Registry:
    """Name -> ``ModelInfo``, kept in registration order."""

    def __init__(self) -> None:
        self._entries: dict[str, ModelInfo] = {}

    def register(
        self,
        name: str,
        *,
        family: str,
        input_size: InputSize | Callable[[Mapping[str, Any]], InputSize],
        options: Mapping[str, Option] | None = None,
        paper: str = "",
        description: str | None = None,
    ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
        """Decorator: register ``builder`` under ``name`` (returns it unchanged).

        ``input_size`` is a tuple, or a function of the resolved config. ``description``
        defaults to the first paragraph of the builder's docstring, on one line.
        """
        opts = {k: replace(o, name=k) for k, o in (options or {}).items()}

        def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
            if name in self._entries:
                raise ValueError(f"model {name!r} is already registered")
            params = inspect.signature(builder).parameters
            has_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
            missing = [k for k in opts if k not in params and not has_kwargs]
            if missing:
                raise ValueError(f"{name}: builder {builder.__name__} lacks options {missing}")
            for opt in opts.values():
                opt.validate(opt.default, name)  # a bad default is a bug at import time
            doc = inspect.getdoc(builder) or ""
            # The docstring's first paragraph, as plain text (no RST literals) for menus.
            desc = description or " ".join(doc.split("\n\n")[0].split()) or name
            desc = desc.replace("``", "").replace(":class:", "").replace(":func:", "")
            rule = input_size if callable(input_size) else None
            default_size = rule(resolve_options(name, opts, {})) if rule else input_size
            self._entries[name] = ModelInfo(
                name=name,
                family=family,
                description=desc,
                paper=paper,
                input_size=tuple(default_size),
                options=opts,
                builder=builder,
                size_rule=rule,
            )
            return builder

        return decorator

    def names(self, family: str | None = None) -> list[str]:
        """Names grouped by family (``FAMILIES`` order, unknown families last), each family in
        registration order; so the order does not depend on which module was imported first."""
        rank = {f: i for i, f in enumerate(FAMILIES)}
        entries = [i for i in self._entries.values() if family is None or i.family == family]
        entries.sort(key=lambda i: rank.get(i.family, len(rank)))  # stable sort
        return [i.name for i in entries]

    def info(self, name: str) -> ModelInfo:
        try:
            return self._entries[name]
        except KeyError:
            pass
        lowered = {n.lower(): n for n in self._entries}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(lowered[c]) for c in close)}?" if close else ""
        raise ZooError(
            f"unknown model {name!r}{hint} "
            f"(cnnviz.zoo.list_models() lists all {len(self._entries)} models)"
        ) from None

    def build(
        self,
        name: str,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **config: Any,
    ) -> nn.Module:
        info = self.info(name)
        resolved = info.resolve(config)  # validate before building anything
        with torch.device(device) if device is not None else nullcontext():
            model = info.builder(**resolved)
        if dtype is not None:
            model = model.to(dtype)
        model.zoo_name = name
        model.zoo_config = dict(resolved)
        model.default_input_size = info.input_size_for(resolved)
        return model


_REGISTRY = Registry()
register_model = _REGISTRY.register


def list_models(family: str | None = None) -> list[str]:
    """Registered model names, family by family in historical order (AlexNet, VGG, GoogLeNet,
    ResNet, CIFAR ResNets, conv stacks), in registration order within a family; optionally one
    family only.
    """
    return _REGISTRY.names(family)


def model_info(name: str) -> ModelInfo:
    """The ``ModelInfo`` for ``name``; ``ZooError`` with close matches if unknown."""
    return _REGISTRY.info(name)


def get_model(
    name: str,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    **config: Any,
) -> nn.Module:
    """Build a zoo model; ``device="meta"`` allocates nothing (shapes only, fast).

    The config is validated before anything is built. The model is returned in training mode
    (like torchvision) and carries ``zoo_name``, ``zoo_config`` (the full resolved config) and
    ``default_input_size`` (batch-first tuple).
    """
    return _REGISTRY.build(name, device=device, dtype=dtype, **config)


def is_meta(model: nn.Module) -> bool:
    """True when ``model``'s parameters live on the meta device, where init is skipped: there is
    no data to fill, and torch's first ``normal_`` on meta imports torch._dynamo (~2 s)."""
    p = next(model.parameters(), None)
    return p is not None and p.is_meta


def num_classes_option(default: int = 1000) -> Option:
    return Option(
        default, int, "number of output classes", check=lambda v: v >= 1, constraint="int >= 1"
    )


def dropout_option(default: float) -> Option:
    return Option(
        default,
        float,
        "dropout probability",
        check=lambda v: 0.0 <= v <= 1.0,
        constraint="0 <= p <= 1",
    )
