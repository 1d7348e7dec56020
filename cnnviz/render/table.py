"""Text renderings of an :class:`~cnnviz.result.Analysis`: a readable table, markdown and the
HTML a notebook shows."""

from __future__ import annotations

import html
from collections import Counter
from typing import TYPE_CHECKING

from cnnviz import fmt
from cnnviz.fmt import compact, nbytes

if TYPE_CHECKING:
    from cnnviz.result import Analysis, LayerRecord


COLUMNS = ("layer", "type", "output", "params", "MACs", "RF", "stride")


def _level(r: LayerRecord) -> int:
    """How deep a row sits: ``conv1`` 1, ``layer1.0.conv1`` 3, a root functional op 0."""
    return r.module.count(".") + 1 if r.module else 0


def _prefix(r: LayerRecord, depth: int) -> str:
    return ".".join(r.module.split(".")[:depth]) if depth else ""


def rows(a: Analysis, depth: int | None = None) -> list[tuple[str, ...]]:
    """Table rows. With ``depth``, rows nested deeper are folded into their ancestor at that
    depth (``layer1`` at depth 1), which shows the summed params and MACs and the output and
    RF of its last row (torchinfo's ``depth``); depth 0 folds everything into one row."""
    out: list[tuple[str, ...]] = []
    i, seen = 0, Counter()
    layers = a.layers

    def folds(r: LayerRecord) -> bool:
        # deeper rows, and a container's own functional ops (blocks.0's residual add)
        return depth == 0 or _level(r) > depth or (not r.is_module and _level(r) == depth)

    while i < len(layers):
        r = layers[i]
        if depth is None or not folds(r):
            rf = r.receptive_field
            cells = (r.name, r.type, fmt.shape(r.output_shape), f"{r.params:,}", compact(r.macs))
            out.append((*cells, fmt.rf(rf, mark_unaligned=True), fmt.stride(rf)))
            i += 1
            continue
        prefix, j = _prefix(r, depth), i
        while j < len(layers) and folds(layers[j]) and _prefix(layers[j], depth) == prefix:
            j += 1
        group, last = layers[i:j], layers[j - 1]
        seen[prefix] += 1
        key = prefix if seen[prefix] == 1 else f"{prefix}#{seen[prefix]}"
        rf = a.containers.get(key) or last.receptive_field
        shape = a.container_shapes.get(key, last.output_shape)  # inception3a's concat
        cells = (key or a.model_name, f"{len(group)} rows", fmt.shape(shape))
        params, macs = sum(g.params for g in group), sum(g.macs for g in group)
        out.append(
            (*cells, f"{params:,}", compact(macs), fmt.rf(rf, mark_unaligned=True), fmt.stride(rf))
        )
        i = j
    return out


def totals(a: Analysis) -> list[tuple[str, str]]:
    rf = a.receptive_field()
    return [
        ("input", ", ".join(fmt.shape(s) for s in a.input_shapes)),
        ("params", f"{a.total_params:,} ({compact(a.total_params)})"),
        ("trainable params", f"{a.trainable_params:,}"),
        ("MACs", f"{a.total_macs:,} ({compact(a.total_macs)})"),
        ("FLOPs (2 x MACs)", f"{a.total_flops:,} ({compact(a.total_flops)})"),
        ("other ops (bias, norm, act, pool, add)", f"{a.total_extra_ops:,}"),
        (
            "activations (all outputs / peak)",
            f"{nbytes(a.activation_bytes)} / {nbytes(a.peak_activation_bytes)}",
        ),
        ("params size", nbytes(a.param_bytes)),
        ("weighted depth", str(a.weighted_depth)),
        ("final receptive field", str(rf)),
        *_productivity(a),
    ]


def _productivity(a: Analysis) -> list[tuple[str, str]]:
    """Where depth stops adding context (Richter et al., ICMLA 2021), when it does."""
    if not any(r.rf_min for r in a.layers):
        return []
    bad = [r for r in a.layers if r.productivity in ("unproductive", "probably unproductive")]
    lo, hi = a.input_resolution_range()
    fit = f"none from {fmt.shape(lo)} up, none even probably from {fmt.shape(hi)}"
    if not bad:
        return [("unproductive layers", f"none at this input ({fit})")]
    sure = sum(r.productivity == "unproductive" for r in bad)
    text = f"{sure} add no context here, {len(bad) - sure} probably none, from `{bad[0].name}`"
    return [("unproductive layers", f"{text} ({fit})")]


def footnotes(a: Analysis) -> list[str]:
    """Lines under the totals: ops without a rule, the unaligned mark, the notes."""
    out = []
    if a.fallback_ops:
        ops = ", ".join(f"{u.name} x{u.count}" for u in a.fallback_ops)
        out.append(f"ops without a rule (MACs from FlopCounterMode, RF unknown): {ops}")
    if any(not r.rf_aligned for r in a.layers):
        out.append("* unaligned: merged paths have different centres")
    out += [f"note: {n}" for n in a.notes]
    return out


def _shortened(body: list[tuple[str, ...]], max_rows: int | None) -> list[tuple[str, ...]]:
    """The first and last ``max_rows // 2`` rows, with one row saying how many are left out.

    >>> [r[0] for r in _shortened([(str(i),) for i in range(10)], 4)]
    ['0', '1', '... 6 more rows ...', '8', '9']
    """
    if max_rows is None or len(body) <= max_rows:
        return body
    half = max(1, max_rows // 2)
    gap = (f"... {len(body) - 2 * half} more rows ...",) + ("",) * (len(body[0]) - 1)
    return [*body[:half], gap, *body[-half:]]


def render_text(a: Analysis, depth: int | None = None) -> str:
    """A fixed-width table with totals below, like torchinfo's summary."""
    body = rows(a, depth)
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(COLUMNS)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(COLUMNS, widths, strict=True))
    sep = "-" * len(line)
    out = [f"{a.model_name} ({a.mode}, {a.dtype})", sep, line, sep]
    for r in body:
        out.append(
            "  ".join(
                c.ljust(w) if i < 3 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    out.append(sep)
    k = max(len(k) for k, _ in totals(a))
    out += [f"{key.ljust(k)}  {val}" for key, val in totals(a)]
    return "\n".join(out + footnotes(a))


def render_markdown(a: Analysis, depth: int | None = None, max_rows: int | None = None) -> str:
    """The same table as GitHub markdown; ``max_rows`` keeps the first and last rows of a
    longer table."""
    body = _shortened(rows(a, depth), max_rows)
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(r) + " |" for r in body]
    out.append("")
    out += [f"- **{k}**: {v}" for k, v in totals(a)]
    out += [f"- {line}" for line in footnotes(a)]
    return "\n".join(out)


def render_html(a: Analysis, depth: int | None = None, max_rows: int | None = None) -> str:
    """An HTML table with the totals below it (a notebook's view of an analysis);
    ``max_rows`` keeps the first and last rows of a longer table."""
    body = _shortened(rows(a, depth), max_rows)
    esc = html.escape
    right = ' style="text-align:right"'

    def cells(tag: str, values: tuple[str, ...]) -> str:
        return "".join(
            f"<{tag}{right if i >= 3 else ''}>{esc(v)}</{tag}>" for i, v in enumerate(values)
        )

    out = [
        f"<div><strong>{esc(a.model_name)}</strong> ({esc(a.mode)}, {esc(a.dtype)})",
        "<table>",
        f"<thead><tr>{cells('th', COLUMNS)}</tr></thead>",
        "<tbody>",
    ]
    out += [f"<tr>{cells('td', r)}</tr>" for r in body]
    out += ["</tbody>", "</table>", "<ul>"]
    out += [f"<li><b>{esc(k)}</b>: {esc(v)}</li>" for k, v in totals(a)]
    out += [f"<li>{esc(line)}</li>" for line in footnotes(a)]
    out += ["</ul>", "</div>"]
    return "\n".join(out)
