"""Spec text: parse (JSON/YAML, safely), canonical dumps, URL tokens, flat tables, examples."""

from __future__ import annotations

import base64
import binascii
import importlib.resources
import json
import math
import re
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from cnnviz.spec._core import (
    LIMITS,
    REQUIRED,
    TYPES,
    Layer,
    Spec,
    SpecError,
    _kind,
    _suggest,
    default_of,
    short,
    validate,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader (plain data only, no tags) that also refuses anchors and aliases, so a small
    text can't expand into a huge structure."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(
                None, None, "aliases (*name) are not supported; write the layers out", mark
            )
        return super().compose_node(parent, index)


def _yaml_load(text: str, what: str = "YAML") -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.constructor.ConstructorError as e:
        where = _mark(e.problem_mark)
        raise SpecError(
            "",
            f"invalid {what}{where}: {e.problem}; tags like !!python/... are not allowed, only "
            "plain mappings, lists, texts, numbers and booleans",
        ) from None
    except yaml.MarkedYAMLError as e:
        context = ""
        if e.context and e.context_mark is not None and e.context_mark != e.problem_mark:
            context = f" ({e.context}{_mark(e.context_mark).replace(' at', ' that starts at')})"
        raise SpecError(
            "", f"invalid {what}{_mark(e.problem_mark)}: {e.problem}{context}"
        ) from None
    except RecursionError:
        raise SpecError("", f"invalid {what}: nested too deeply") from None
    except (yaml.YAMLError, ValueError) as e:
        raise SpecError("", f"invalid {what}: {type(e).__name__}: {short(str(e))}") from None


def _mark(mark: Any) -> str:
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def decode(data: bytes) -> str:
    """Spec bytes (a file, an upload) as text: UTF-8 of at most :data:`LIMITS` ``.text_bytes``,
    else a :class:`SpecError` that says which.

    >>> decode(b"layers: [relu]")
    'layers: [relu]'
    >>> try:
    ...     decode(b"input: \\xff")
    ... except SpecError as e:
    ...     print(e)
    not a text file (UTF-8 fails at byte 7); a spec is YAML or JSON text
    """
    if len(data) > LIMITS.text_bytes:
        raise SpecError(
            "",
            f"the spec is {len(data):,} bytes or more, more than the limit of "
            f"{LIMITS.text_bytes:,} ({LIMITS.text_bytes // 1024} KiB)",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(
            "", f"not a text file (UTF-8 fails at byte {e.start}); a spec is YAML or JSON text"
        ) from None


def parse(text: str, fmt: str = "auto") -> dict:
    """Parse spec text (``fmt``: ``"json"``, ``"yaml"`` or ``"auto"``: JSON, else YAML) into a
    plain dict, never running code: ``json.loads`` / a YAML safe loader without tags or aliases.

    >>> parse('{"input": [1, 3, 8, 8], "layers": ["relu"]}')["layers"]
    ['relu']
    >>> try:
    ...     parse("input: [1, 3, 8, 8]\\nlayers:\\n  - conv: {out: 4, kernel: 3\\n")
    ... except SpecError as e:
    ...     print(e.path == "", str(e)[:48], "...", str(e)[-37:])
    True invalid YAML at line 4, column 1: expected ',' ... that starts at line 3, column 11)
    """
    if not isinstance(text, str):
        raise SpecError("", f"spec text must be a str, got {type(text).__name__}")
    if fmt not in ("auto", "json", "yaml"):
        raise SpecError("", f"fmt must be 'auto', 'json' or 'yaml', got {fmt!r}")
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > LIMITS.text_bytes:
        raise SpecError(
            "",
            f"the spec is {size:,} bytes, more than the limit of {LIMITS.text_bytes:,} "
            f"({LIMITS.text_bytes // 1024} KiB)",
        )
    data: Any = None
    done = False
    json_error: SpecError | None = None
    if fmt in ("auto", "json"):
        try:
            data, done = json.loads(text), True
        except json.JSONDecodeError as e:
            json_error = SpecError(
                "", f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
            )
            if fmt == "json":
                raise json_error from None
        except RecursionError:
            raise SpecError("", "invalid JSON: nested too deeply") from None
        except ValueError as e:
            raise SpecError("", f"invalid JSON: {short(str(e))}") from None
    if not done:
        try:
            data = _yaml_load(text)
        except SpecError:
            # Text that opens like JSON gets JSON's message, not YAML's (YAML reads JSON too).
            if json_error is not None and text.lstrip()[:1] in ("{", "["):
                raise json_error from None
            raise
    if data is None:
        raise SpecError("", "the spec is empty; it needs at least input and layers")
    if not isinstance(data, dict):
        raise SpecError(
            "", f"the top level must be a mapping with keys name, input, layers; got {_kind(data)}"
        )
    return data


# ------------------------------------------------------------------------ canonical form
def _canon_layer(layer: Layer) -> Any:
    opts: dict[str, Any] = {}
    if layer.name is not None:
        opts["name"] = layer.name
    children = iter(layer.children)  # one list per "layers" option, the rest for "branches"
    for key, p in TYPES[layer.type].params.items():
        if p.kind == "layers":
            seq = [_canon_layer(x) for x in next(children)]
            if seq or p.default is REQUIRED:
                opts[key] = seq
        elif p.kind == "branches":
            opts[key] = [[_canon_layer(x) for x in b] for b in children]
        elif key in layer.params and layer.params[key] != default_of(p, layer.params):
            v = layer.params[key]
            opts[key] = list(v) if isinstance(v, tuple) else v
    return {layer.type: opts} if opts else layer.type


def canonical(spec: Mapping[str, Any] | Spec) -> dict:
    """The canonical plain-data form of a spec: defaults left out, ``- relu`` for a bare layer.

    >>> canonical({"input": [1, 3, 8, 8], "layers": [{"maxpool": {"kernel": [2, 2], "stride": 2}}]})
    {'name': 'custom', 'input': [1, 3, 8, 8], 'layers': [{'maxpool': {'kernel': 2}}]}
    """
    s = validate(spec)
    return {"name": s.name, "input": list(s.input), "layers": [_canon_layer(x) for x in s.layers]}


def dumps(spec: Mapping[str, Any] | Spec, fmt: str = "yaml") -> str:
    """Canonical spec text (``"yaml"`` or ``"json"``); ``validate(parse(dumps(s)))`` equals
    ``validate(s)``.

    >>> print(dumps({"input": [1, 3, 8, 8], "layers": [{"conv": {"out": 4, "kernel": 3,
    ...     "stride": 1}}, {"relu": {}}]}), end="")
    name: custom
    input: [1, 3, 8, 8]
    layers:
    - conv: {out: 4, kernel: 3}
    - relu
    """
    data = canonical(spec)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
    raise SpecError("", f"fmt must be 'yaml' or 'json', got {fmt!r}")


# ------------------------------------------------------------------------ URL tokens
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")


def to_url(spec: Mapping[str, Any] | Spec) -> str:
    """A compact URL-safe token: canonical JSON -> zlib -> base64url without padding.

    >>> s = {"input": [1, 3, 8, 8], "layers": ["relu"]}
    >>> from_url(to_url(s)) == {"name": "custom", "input": [1, 3, 8, 8], "layers": ["relu"]}
    True
    """
    raw = json.dumps(canonical(spec), separators=(",", ":")).encode()
    token = base64.urlsafe_b64encode(zlib.compress(raw, 9)).rstrip(b"=").decode("ascii")
    if len(token) > LIMITS.url_chars:
        raise SpecError(
            "",
            f"the spec is too large for a URL ({len(token):,} characters, limit "
            f"{LIMITS.url_chars:,}); share its text instead",
        )
    return token


def from_url(token: str) -> dict:
    """Decode a :func:`to_url` token into a spec dict (validate or build it next). Corrupt or
    oversized tokens raise :class:`SpecError`; decompression stops at the text size limit.

    >>> from_url("not a token")
    Traceback (most recent call last):
    ...
    cnnviz.spec._core.SpecError: token: not a spec token: it may only hold A-Z a-z 0-9 - _
    """
    if not isinstance(token, str):
        raise SpecError("token", f"must be a str, got {type(token).__name__}")
    token = token.strip()
    if len(token) > LIMITS.url_chars:
        raise SpecError(
            "token", f"too long ({len(token):,} characters, limit {LIMITS.url_chars:,})"
        )
    if not _TOKEN_RE.fullmatch(token):
        raise SpecError("token", "not a spec token: it may only hold A-Z a-z 0-9 - _")
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise SpecError("token", "corrupt token (bad base64); copy the whole link") from None
    d = zlib.decompressobj()
    limit = LIMITS.text_bytes
    try:
        raw = d.decompress(data, limit + 1)
    except zlib.error:
        raise SpecError("token", "corrupt token (not zlib data); copy the whole link") from None
    if len(raw) > limit or d.unconsumed_tail:
        raise SpecError("token", f"the token decompresses to more than {limit:,} bytes")
    if not d.eof:
        raise SpecError("token", "corrupt token (truncated); copy the whole link")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SpecError("token", "corrupt token (not UTF-8 text)") from None
    return parse(text, "json")


# ------------------------------------------------------------------------ flat tables
TABLE_COLUMNS = (
    "type", "name", "out", "kernel", "stride", "padding", "dilation", "groups", "bias", "other"
)  # fmt: skip
_TEXT_COLUMNS = ("type", "name")


def _scalar_text(v: Any) -> str:
    """A YAML flow scalar that reads back as ``v``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        r = repr(v)
        mantissa, e, exp = r.partition("e")
        return f"{mantissa}.0e{exp}" if e and "." not in mantissa else r
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_scalar_text(x) for x in v) + "]"
    return str(v)


def to_table(spec: Mapping[str, Any] | Spec) -> list[dict]:
    """Rows for a flat layer table (columns :data:`TABLE_COLUMNS`; ``None`` = default).
    Options without a column go to ``other`` as ``key: value, ...``. Specs with residual or
    concat blocks can't be tables: edit their text.

    >>> to_table({"input": [1, 3, 8, 8], "layers": [{"conv": {"out": 4, "kernel": 3}}]})[0]
    {'type': 'conv', 'name': None, 'out': 4, 'kernel': 3, 'stride': None, 'padding': None, \
'dilation': None, 'groups': None, 'bias': None, 'other': None}
    """
    s = validate(spec)
    rows = []
    for i, layer in enumerate(s.layers):
        if layer.children:
            raise SpecError(
                f"layers[{i}]",
                f"{layer.type} blocks can't be edited as a table; use the text editor",
            )
        c = _canon_layer(layer)
        opts = {} if isinstance(c, str) else c[layer.type]
        row: dict[str, Any] = dict.fromkeys(TABLE_COLUMNS)
        row["type"] = layer.type
        other = []
        for key, v in opts.items():
            if key in TABLE_COLUMNS:
                row[key] = _scalar_text(v) if isinstance(v, list) else v
            else:
                other.append(f"{key}: {_scalar_text(v)}")
        row["other"] = ", ".join(other) or None
        rows.append(row)
    return rows


def _cell(v: Any, path: str, text: bool) -> Any:
    """A table cell as plain data; None for an empty cell (None, NaN, blank text)."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # numpy / pandas scalars
        v = v.item()
    if isinstance(v, float):
        if math.isnan(v):
            return None
        return int(v) if v.is_integer() and not text else v
    if isinstance(v, str):
        v = v.strip()
        if not v:
            return None
        if text:
            return v
        value = _yaml_load(v, f"cell {path}")
        if isinstance(value, (Mapping, type(None))):
            raise SpecError(path, f"must be a value, got {short(v)}")
        return value
    if isinstance(v, (bool, int, list, tuple)):
        return list(v) if isinstance(v, tuple) else v
    raise SpecError(path, f"unsupported cell {short(v)}")


def from_table(
    rows: Sequence[Mapping[str, Any]], input: Sequence[int], name: str = "custom"
) -> dict:
    """A spec dict from table rows (see :func:`to_table`); row ``i`` becomes ``layers[i]``, so
    :func:`validate`'s errors name the row. Empty cells take the defaults.

    >>> from_table([{"type": "conv", "out": 4.0, "kernel": "3"}, {"type": "relu", "out": None}],
    ...            [1, 3, 8, 8])
    {'name': 'custom', 'input': [1, 3, 8, 8], 'layers': [{'conv': {'out': 4, 'kernel': 3}}, 'relu']}
    """
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise SpecError("rows", f"must be a list of rows, got {_kind(rows)}")
    if len(rows) > LIMITS.layers:
        raise SpecError("rows", f"more than {LIMITS.layers} rows")
    layers: list[Any] = []
    for i, row in enumerate(rows):
        path = f"rows[{i}]"
        if not isinstance(row, Mapping):
            raise SpecError(path, f"must be a mapping of column -> value, got {_kind(row)}")
        cells: dict[str, Any] = {}
        for key, v in row.items():
            if key not in TABLE_COLUMNS:
                raise SpecError(
                    f"{path}.{key}",
                    f"unknown column; {_suggest(str(key), TABLE_COLUMNS)}"
                    f"columns: {', '.join(TABLE_COLUMNS)}",
                )
            value = _cell(v, f"{path}.{key}", key in _TEXT_COLUMNS or key == "other")
            if value is not None:
                cells[key] = value
        if not cells:
            raise SpecError(path, "empty row; set its type or delete it")
        kind = cells.pop("type", None)
        if kind is None:
            raise SpecError(f"{path}.type", "required (the layer type)")
        other = cells.pop("other", None)
        if other is not None:
            extra = _yaml_load("{" + str(other) + "}", f"cell {path}.other")
            if not isinstance(extra, dict):
                raise SpecError(f"{path}.other", f"must be 'key: value, ...', got {short(other)}")
            for key, value in extra.items():
                if key in cells:
                    raise SpecError(f"{path}.other", f"{key!r} is also set in its own column")
                cells[key] = value
        layers.append({kind: cells} if cells else kind)
    return {"name": name, "input": list(input), "layers": layers}


# ------------------------------------------------------------------------ examples
def examples() -> dict[str, str]:
    """The shipped example specs: name -> YAML text.

    >>> sorted(examples())[:2]
    ['inception_block', 'tiny_resnet']
    """
    root = importlib.resources.files("cnnviz.examples")
    found = {
        entry.name.removesuffix(".yaml"): entry.read_text(encoding="utf-8")
        for entry in root.iterdir()
        if entry.name.endswith(".yaml")
    }
    return dict(sorted(found.items()))
