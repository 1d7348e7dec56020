"""The Compare page's charts as static HTML: MACs against parameters (:func:`scatter_html`)
and one metric per stage, model beside model (:func:`stage_bars_html`).

A changed Plotly chart is a new chart in Streamlit: each added model drew both again with
``Plotly.newPlot``, most of the browser's work per rerun. This markup is only laid out again.
Each model keeps its colour (:func:`~cnnviz.render.palette.model_colors`) whatever else is
shown. Positions and bar lengths are percentages of the column's width, and every word is HTML
at a fixed size (:mod:`~cnnviz.render.html_parts`), readable on a phone. A hover on a marker
or a bar shows its exact values (``title``); the numbers are in ``data-*`` attributes, and
the markup is well-formed XML, so a test can read them.

>>> import cnnviz, xml.etree.ElementTree as ET
>>> from cnnviz.compare import compare
>>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
>>> (point,) = ET.fromstring(scatter_html(compare({"resnet20": a}))).iterfind(".//*[@data-params]")
>>> point.get("data-label"), point.get("data-params"), point.get("data-macs")
('resnet20', '269722', '40551040')
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING, Any

from cnnviz import fmt
from cnnviz.render.html_parts import FONT, MUTED, heading, panel, text_div
from cnnviz.render.palette import model_colors

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BAR_SHARE", "MARKER", "PLOT_HEIGHT", "STAGE_METRICS", "scatter_html", "stage_bars_html"]

#: The scatter's plot area (px high; as wide as its column).
PLOT_HEIGHT = 300
#: Marker diameters (px): the smallest (an unknown or global final RF) and the largest RF's.
MARKER = (12.0, 44.0)
#: The longest bar's share of a row (%): the rest holds its value label.
BAR_SHARE = 70.0
#: Metrics a stage bar can show, and their unit in a hover text.
STAGE_METRICS = {"macs": "MACs", "params": "parameters", "extra_ops": "other ops", "layers": "rows"}

_TICKS_W = 46  # px left of the plot for the y tick labels
_LABEL_GAP = 16  # px between two point labels' centres on one side
_GRID = "rgba(49,51,63,0.1)"


def _lines(*parts: str) -> str:
    """Hover text of several lines (escaped; a newline survives as an entity in XML too)."""
    return "&#10;".join(escape(p) for p in parts)


def _rf_number(v: Any) -> float | None:
    """A final-RF cell (``195``, ``"7x5"``, ``"global"``) as a number (max over axes).

    >>> _rf_number(195), _rf_number("7x5"), _rf_number("global")
    (195.0, 7.0, None)
    """
    if isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v):
        return float(v)
    if isinstance(v, str) and "x" in v:
        try:
            return float(max(int(p) for p in v.split("x")))
        except ValueError:
            return None
    return None


def _log_range(values) -> tuple[float, float]:
    """A log10 range around the positive ``values``, with room for markers and labels.

    >>> _log_range([1e6, 1e8])  # two decades, padded by a quarter decade each side
    (5.75, 8.25)
    """
    logs = [math.log10(v) for v in values if v and v > 0]
    if not logs:
        return (0.0, 1.0)
    lo, hi = min(logs), max(logs)
    pad = max(0.25, 0.12 * (hi - lo))
    return (lo - pad, hi + pad)


def _ticks(lo: float, hi: float) -> list[float]:
    """Tick values in a log10 range: the powers of ten, and 2 and 5 of each decade when the
    range holds fewer than three of them.

    >>> _ticks(5.75, 8.25), _ticks(5.9, 6.6)
    ([1000000, 10000000, 100000000], [1000000, 2000000])
    """
    decades = range(math.floor(lo), math.ceil(hi) + 1)
    steps = (1,) if sum(lo <= e <= hi for e in decades) >= 3 else (1, 2, 5)
    values = [m * 10**e for e in decades for m in steps]
    return [v for v in values if lo <= math.log10(v) <= hi]


def _tick_label(v: float) -> str:
    """``1M``, ``20M``, ``1G``: :func:`cnnviz.fmt.compact` without a trailing ``.0``."""
    return re.sub(r"\.0(?=\D|$)", "", fmt.compact(v))


def _at(v: float, lo: float, hi: float) -> float:
    """``v``'s place (%) along a log10 axis from ``lo`` to ``hi``; 0 for 0."""
    if v <= 0:
        return 0.0
    return round(min(100.0, max(0.0, (math.log10(v) - lo) / (hi - lo) * 100)), 3)


def _label_heights(xs: list[float], ys: list[float], right: list[bool]) -> list[float]:
    """Each point label's height (px from the plot's bottom): its point's, moved up where it
    would sit on another label on the same side of a nearby point."""
    out = [0.0] * len(xs)
    placed: list[int] = []
    for i in sorted(range(len(xs)), key=lambda i: ys[i]):
        y = ys[i] * PLOT_HEIGHT / 100
        while True:
            near = [
                out[j]
                for j in placed
                if right[j] == right[i] and abs(xs[j] - xs[i]) < 35 and abs(out[j] - y) < _LABEL_GAP
            ]
            if not near:
                break
            y = max(near) + _LABEL_GAP
        out[i] = y
        placed.append(i)
    return out


def scatter_html(df: pd.DataFrame, note: str = "") -> str:
    """MACs against parameters, one labelled marker per row of :func:`cnnviz.compare.compare`'s
    DataFrame, both axes log scale; the marker's diameter grows with the final RF
    (:data:`MARKER`; unknown or global: the smallest). ``note``: a caption below.

    Each marker has ``data-label``, ``data-params``, ``data-macs``, ``data-rf``, ``data-size``
    (its diameter) and ``data-color``; its ``title`` gives the exact counts.

    >>> import cnnviz, xml.etree.ElementTree as ET
    >>> from cnnviz.compare import compare
    >>> nets = {n: cnnviz.zoo.get_model(n, device="meta") for n in ("resnet20", "resnet56")}
    >>> df = compare({n: cnnviz.analyze(m, (1, 3, 32, 32)) for n, m in nets.items()})
    >>> root = ET.fromstring(scatter_html(df))
    >>> # n blocks of two 3x3 a stage: 3 + 4n, + 2 + 4(2n-1), + 4 + 8(2n-1) = 28n - 3
    >>> [(p.get("data-label"), p.get("data-rf")) for p in root.iterfind(".//*[@data-rf]")]
    [('resnet20', '81'), ('resnet56', '249')]
    >>> [t.text for t in root.iterfind(".//*[@data-name='label']")]
    ['resnet20', 'resnet56']
    """
    rows = df.to_dict("records")
    colors = model_colors([r["label"] for r in rows])
    xlo, xhi = _log_range(df["params"])
    ylo, yhi = _log_range(df["macs"])
    rfs = [_rf_number(r["rf"]) for r in rows]
    top = max((r for r in rfs if r is not None), default=0.0)
    small, big = MARKER
    xs = [_at(r["params"], xlo, xhi) for r in rows]
    ys = [_at(r["macs"], ylo, yhi) for r in rows]
    right = [x <= 50 for x in xs]  # a label right of its marker, or left near the right edge
    heights = _label_heights(xs, ys, right)
    grid, points, labels = [], [], []
    for v in _ticks(xlo, xhi):
        grid.append(
            f'<div style="position: absolute; top: 0; bottom: 0; left: {_at(v, xlo, xhi)}%; '
            f'border-left: 1px solid {_GRID}"></div>'
        )
    for v in _ticks(ylo, yhi):
        grid.append(
            f'<div style="position: absolute; left: 0; right: 0; bottom: {_at(v, ylo, yhi)}%; '
            f'border-top: 1px solid {_GRID}"></div>'
        )
    for row, rf, color, x, y, h, r in zip(rows, rfs, colors, xs, ys, heights, right, strict=True):
        d = small if rf is None or top <= 0 else min(big, max(small, big * rf / top))
        label = str(row["label"])
        rf_text = f"{row['rf']} px" if rf is not None else str(row["rf"])
        tip = [
            label,
            f"params {fmt.compact(row['params'])} ({fmt.count(row['params'])})",
            f"MACs {fmt.compact(row['macs'])} ({fmt.count(row['macs'])})",
            f"final RF {rf_text}",
        ]
        if "fc_share" in row:
            tip.append(f"FC share of params {row['fc_share']:.0%}")
        points.append(
            f'<div data-name="point" data-label="{escape(label)}" data-params="{row["params"]}" '
            f'data-macs="{row["macs"]}" data-rf="{escape(str(row["rf"]))}" data-size="{d:g}" '
            f'data-color="{color}" '
            f'title="{_lines(*tip)}" style="position: absolute; left: {x}%; bottom: {y}%; '
            f"width: {d:g}px; height: {d:g}px; margin: 0 0 -{d / 2:g}px -{d / 2:g}px; "
            f"border-radius: 50%; background: {color}; opacity: 0.85; border: 1px solid white; "
            f'box-sizing: border-box"></div>'
        )
        gap = d / 2 + 4
        # a label never runs past the plot's edge (a narrow column, a model with options):
        # it keeps to the room on its side and ends in an ellipsis, whole in its title
        side = (
            f"left: {x}%; margin-left: {gap:g}px; max-width: calc({round(100 - x, 3)}% - {gap:g}px)"
            if r
            else (
                f"right: {round(100 - x, 3)}%; margin-right: {gap:g}px; "
                f"max-width: calc({x}% - {gap:g}px)"
            )
        )
        labels.append(
            f'<span data-name="label" title="{_lines(*tip)}" style="position: absolute; '
            f"bottom: {h:g}px; {side}; transform: translateY(50%); white-space: nowrap; "
            f'overflow: hidden; text-overflow: ellipsis; line-height: 1">{escape(label)}</span>'
        )
    yticks = "".join(
        f'<span style="position: absolute; right: 6px; bottom: {_at(v, ylo, yhi)}%; '
        f'transform: translateY(50%); line-height: 1">{_tick_label(v)}</span>'
        for v in _ticks(ylo, yhi)
    )
    xticks = "".join(
        f'<span style="position: absolute; left: {_at(v, xlo, xhi)}%; '
        f'transform: translateX(-50%); white-space: nowrap">{_tick_label(v)}</span>'
        for v in _ticks(xlo, xhi)
    )
    muted = f"font-size: 12px; color: {MUTED}"
    body = (
        heading(["Compute vs. size"], "marker size: final receptive field; both axes log scale")
        + f'<div style="{muted}; margin-left: {_TICKS_W}px">MACs per forward pass</div>'
        + f'<div style="display: flex; height: {PLOT_HEIGHT}px; margin-top: 8px">'
        f'<div style="position: relative; flex: none; width: {_TICKS_W}px; {muted}">'
        f"{yticks}</div>"
        f'<div data-name="plot" style="position: relative; flex: 1 1 0; min-width: 0; '
        f'border-left: 1px solid {MUTED}; border-bottom: 1px solid {MUTED}">'
        + "".join(grid + points + labels)
        + "</div></div>"
        f'<div style="position: relative; height: 18px; margin: 4px 0 0 {_TICKS_W}px; '
        f'{muted}">{xticks}</div>'
        f'<div style="{muted}; text-align: right">Parameters (count)</div>'
    )
    if note:
        body += text_div("note", escape(note), 14, MUTED, "; margin-top: 8px")
    names = ", ".join(str(r["label"]) for r in rows)
    return panel(f"MACs against parameters: {names}", body, "scatter")


def _scale_key(label: str) -> tuple[int, float, str]:
    """Sort "2", "1", "1/2", ..., "1/32", then "head".

    >>> sorted(["head", "1/4", "1", "1/4 (2)", "2"], key=_scale_key)
    ['2', '1', '1/4', '1/4 (2)', 'head']
    """
    base = label.split(" ")[0]
    if base == "head":
        return (1, 0.0, label)
    num, _, den = base.partition("/")
    return (0, -int(num) / int(den or 1), label)


def _stage_name(key: str) -> str:
    """A stage's heading: its resolution against the input's, in words.

    >>> [_stage_name(k) for k in ("1", "1/4", "1/4 (2)", "2", "head")]
    ['input size', '1/4 of the input', '1/4 of the input (2)', '2x the input', 'head']
    """
    base, _, n = key.partition(" ")
    if base in ("head", "1"):
        name = "head" if base == "head" else "input size"
    else:
        name = f"{base} of the input" if "/" in base else f"{base}x the input"
    return f"{name} {n}" if n else name


def stage_bars_html(
    tables: Mapping[str, pd.DataFrame], metric: str = "macs", log: bool = False, note: str = ""
) -> str:
    """``metric`` per stage, model beside model: a block per stage resolution (from
    :func:`~cnnviz.compare.stage_table`'s ``scale``; a model's second stage at one scale is
    ``"1/4 (2)"``), largest first and the head last, a horizontal bar per model with its value.

    Bar lengths are ``value / max`` of :data:`BAR_SHARE` %, or with ``log`` the value's
    decades above one decade below the smallest value, so a small model's bars stay visible
    beside VGG's (the bars' ``data-scale``: ``log`` or ``linear``). Each bar has
    ``data-label``, ``data-stage``, ``data-value`` and ``data-color``; its ``title`` gives the
    stage's size, exact value and layers.

    >>> import cnnviz, xml.etree.ElementTree as ET
    >>> from cnnviz.compare import stage_table
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    >>> root = ET.fromstring(stage_bars_html({"resnet20": stage_table(a)}))
    >>> [b.get("data-stage") for b in root.iterfind(".//*[@data-name='bar']")]
    ['1', '1/2', '1/4', 'head']
    """
    if metric not in STAGE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(STAGE_METRICS)}")
    colors = model_colors(list(tables))
    stages: dict[str, list[tuple[str, str, dict]]] = {}  # key -> (label, colour, row)
    for (label, t), color in zip(tables.items(), colors, strict=True):
        seen: list[str] = []
        for row in t.to_dict("records"):  # two stages of one model at one scale: "1/4 (2)"
            n = seen.count(row["scale"])
            seen.append(row["scale"])
            key = row["scale"] if not n else f"{row['scale']} ({n + 1})"
            stages.setdefault(key, []).append((label, color, row))
    values = [int(r[metric]) for rows in stages.values() for *_, r in rows]
    top = max(values, default=0) or 1
    positive = [v for v in values if v > 0]
    lo = math.floor(math.log10(min(positive))) - 1 if positive else 0
    span = math.log10(top) - lo

    def length(v: int) -> float:
        share = (math.log10(v) - lo) / span if log and v > 0 else (0 if log else v / top)
        return round(share * BAR_SHARE, 3)

    unit = STAGE_METRICS[metric]
    parts: list[str] = []
    for key in sorted(stages, key=_scale_key):
        sizes = list(dict.fromkeys(r["size"] for *_, r in stages[key] if r["size"] != "head"))
        parts.append(
            f'<div data-name="stage" data-stage="{escape(key)}" style="grid-column: 1 / -1; '
            f'margin-top: 8px"><span style="font-weight: 600">{escape(_stage_name(key))}'
            f'</span> <span style="color: {MUTED}">{escape(", ".join(sizes))}</span></div>'
        )
        for label, color, row in stages[key]:
            v = int(row[metric])
            where = row["size"] if row["size"] == "head" else f"{key}, {row['size']}"
            tip = _lines(
                f"{label}, stage {where}: {fmt.count(v)} {unit}",
                f"{row['first']} .. {row['last']}",
            )
            parts.append(
                f'<div data-name="name" style="white-space: nowrap">{escape(label)}</div>'
                f'<div title="{tip}" style="display: flex; align-items: center; gap: 6px; '
                'min-width: 0">'
                f'<div data-name="bar" data-label="{escape(label)}" data-stage="{escape(key)}" '
                f'data-value="{v}" data-color="{color}" style="flex: none; height: 14px; '
                f'width: {length(v)}%; background: {color}"></div>'
                f'<span data-name="value" style="white-space: nowrap">{fmt.compact(v)}</span>'
                "</div>"
            )
    sub = (
        "log scale: each tenfold adds one step of length"
        if log
        else "bar length: share of the largest stage"
    )
    body = heading([f"{fmt.METRICS[metric]} per stage"], sub) + (
        f'<div data-name="bars" data-scale="{"log" if log else "linear"}" '
        'style="display: grid; grid-template-columns: max-content 1fr; '
        f'gap: 2px 10px; align-items: center; font-size: {FONT}px">{"".join(parts)}</div>'
    )
    if note:
        body += text_div("note", escape(note), 14, MUTED, "; margin-top: 8px")
    label = f"{fmt.METRICS[metric]} per stage: {', '.join(map(str, tables))}"
    return panel(label, body, "stages")
