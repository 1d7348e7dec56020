"""A residual block's diagram as an SVG picture, from the same layout as the Plotly figure
(:mod:`cnnviz.render.block_layout`).

The shortcut lab shows this one: a picture is drawn as an image, where a Plotly figure that
changes is a new chart built from scratch (on a shortcut switch, about 20 ms of the wall time
and half of the browser's work; bench/README.md). Texts keep a fixed size in the drawing,
which is :data:`WIDTH` px wide and scales down to a narrower box (a phone).

>>> from cnnviz.labs import block_cases
>>> svg = block_diagram_svg(block_cases("B")[1])
>>> svg.startswith("<svg"), "1x512x28x28" in svg
(True, True)
"""

from __future__ import annotations

import math
import re
from html import escape, unescape

from cnnviz.labs import BlockCase
from cnnviz.render.block_layout import (
    ARROW_SIZE,
    DIAGRAM_X,
    BlockLayout,
    block_layout,
    block_title_lines,
)
from cnnviz.render.html_parts import INK, MUTED, TITLE_FONT
from cnnviz.render.lab_html import svg_img
from cnnviz.render.palette import COLORS, FONT_FAMILY, NODE_FILLS

__all__ = ["WIDTH", "block_diagram_html", "block_diagram_svg"]

#: Screen pixels per diagram unit, across and down: a box's widest line of 11 px text fits.
_SX, _SY = 72.0, 66.0
#: A character's width in ems, generous for the sans-serif fonts of FONT_FAMILY: a line
#: estimated wider than its box is squeezed into it (``textLength``) rather than run over.
_EM = 0.56
#: The drawing's width (px) at its natural size.
WIDTH = round((DIAGRAM_X[1] - DIAGRAM_X[0]) * _SX)


def _spans(line: str) -> str:
    """One line of Plotly markup (``<b>`` and entities) as SVG tspans; anything else is text."""
    out = []
    bold = False
    for part in re.split(r"(</?b>)", line):
        if part in ("<b>", "</b>"):
            bold = part == "<b>"
        elif part:
            weight = ' font-weight="bold"' if bold else ""
            out.append(f"<tspan{weight}>{escape(unescape(part), quote=False)}</tspan>")
    return "".join(out)


def _text(a: dict, px, py, fit: float | None = None) -> str:
    """An annotation as SVG text; ``fit``: the width (px) of the box it sits in."""
    size = a["font"].get("size", 12)
    color = a["font"].get("color", INK)
    lines = a["text"].split("<br>")
    step = size * 1.25
    anchor = {"left": "start", "right": "end"}.get(a.get("xanchor", "center"), "middle")
    y0 = py(a["y"])
    if a.get("yanchor") == "top":
        first = y0 + size * 0.95
    else:  # centred on y, as Plotly's default
        first = y0 - step * (len(lines) - 1) / 2 + size * 0.35
    tspans = []
    for i, line in enumerate(lines):
        squeeze = ""
        chars = len(unescape(re.sub(r"<[^>]+>", "", line)))
        if fit is not None and chars * _EM * size > fit - 8:
            squeeze = f' textLength="{fit - 8:.0f}" lengthAdjust="spacingAndGlyphs"'
        tspans.append(
            f'<tspan x="{px(a["x"]):.1f}" y="{first + i * step:.1f}"{squeeze}>{_spans(line)}'
            "</tspan>"
        )
    tspans = "".join(tspans)
    return f'<text font-size="{size}" fill="{color}" text-anchor="{anchor}">{tspans}</text>'


def _head(x0: float, y0: float, x1: float, y1: float) -> str:
    """A filled triangle with its tip on (x1, y1) (screen px), pointing from (x0, y0)."""
    dx, dy = x1 - x0, y1 - y0
    n = math.hypot(dx, dy) or 1.0
    ux, uy = dx / n, dy / n
    back, half = ARROW_SIZE, ARROW_SIZE * 0.45
    bx, by = x1 - ux * back, y1 - uy * back
    pts = [(x1, y1), (bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)]
    return '<polygon points="{}"/>'.format(" ".join(f"{x:.1f},{y:.1f}" for x, y in pts))


def block_diagram_svg(case: BlockCase) -> str:
    """The block's diagram as an ``<svg>`` string, :data:`WIDTH` px wide (with a viewBox: it
    scales to a narrower box). Each box is a ``rect`` with ``data-name="box"``, each arrow a
    ``line`` and a head in ``data-name="arrows"``, the add node ``data-name="add"``.

    >>> from cnnviz.labs import block_cases
    >>> svg = block_diagram_svg(block_cases("none")[0])  # the plain net: no "+" node
    >>> 'data-name="add"' in svg, "no shortcut" in svg
    (False, True)
    """
    return _svg(block_layout(case))


def _svg(lay: BlockLayout) -> str:
    lo, hi = lay.y_range
    height = round((hi - lo) * _SY)

    def px(x: float) -> float:
        return (x - DIAGRAM_X[0]) * _SX

    def py(y: float) -> float:
        return (hi - y) * _SY

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="{FONT_FAMILY}">'
    ]
    edge = COLORS["edge"]
    for s in lay.canvas.shapes:
        x0, x1, y0, y1 = px(s["x0"]), px(s["x1"]), py(s["y0"]), py(s["y1"])
        if s["type"] == "rect":
            parts.append(
                f'<rect data-name="box" x="{min(x0, x1):.1f}" y="{min(y0, y1):.1f}" '
                f'width="{abs(x1 - x0):.1f}" height="{abs(y1 - y0):.1f}" fill="{s["fillcolor"]}" '
                f'stroke="{edge}" stroke-width="{s["line"]["width"]}"/>'
            )
        else:
            parts.append(
                f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{edge}" '
                f'stroke-width="{s["line"]["width"]}"/>'
            )
    heads = "".join(_head(px(a), py(b), px(c), py(d)) for a, b, c, d in lay.canvas.heads)
    parts.append(f'<g data-name="arrows" fill="{edge}">{heads}</g>')
    if lay.add is not None:
        cx, cy = px(lay.add[0]), py(lay.add[1])
        parts.append(
            f'<g data-name="add"><circle cx="{cx:.1f}" cy="{cy:.1f}" r="15" '
            f'fill="{NODE_FILLS["add"]}" stroke="{edge}" stroke-width="1.5"/>'
            f'<text x="{cx:.1f}" y="{cy + 6:.1f}" font-size="18" font-weight="bold" '
            f'text-anchor="middle" fill="{INK}">+</text></g>'
        )
    # a box's text is centred on it (Canvas.box): its box's width, by the centre
    boxes = {
        (round((s["x0"] + s["x1"]) / 2, 6), round((s["y0"] + s["y1"]) / 2, 6)): s["x1"] - s["x0"]
        for s in lay.canvas.shapes
        if s["type"] == "rect"
    }
    for a in lay.canvas.annotations:
        w = boxes.get((round(a["x"], 6), round(a["y"], 6)))
        parts.append(_text(a, px, py, None if w is None else w * _SX))
    parts.append("</svg>")
    return "".join(parts)


def block_diagram_html(case: BlockCase, explain: bool = False) -> str:
    """The diagram as one HTML block: its title (:func:`block_title_lines`) above the picture,
    as text that wraps on a phone; with ``explain``, the case's explanation above them (one
    block for a page to send, not two). The picture's ``alt`` holds every box's text.

    >>> import xml.etree.ElementTree as ET
    >>> from cnnviz.labs import block_cases
    >>> fig = ET.fromstring(block_diagram_html(block_cases("A")[1]))
    >>> fig.get("data-name"), fig[0].text
    ('block diagram', '2. Spatial size halves, channels double')
    >>> fig = ET.fromstring(block_diagram_html(block_cases("A")[1], explain=True))
    >>> fig[0].get("data-name"), fig[0].text.startswith("A stride-2 3x3 conv halves the size")
    ('explanation', True)
    """
    first, *rest = block_title_lines(case)
    lay = block_layout(case)
    texts = [re.sub(r"<[^>]+>", " ", a["text"]) for a in lay.canvas.annotations]
    alt = "Block diagram: " + "; ".join(" ".join(unescape(t).split()) for t in texts)
    sub = "<br/>".join(escape(line) for line in rest)
    about = (
        f'<p data-name="explanation" style="font-size: 14px; color: {MUTED}; margin: 0 0 12px">'
        f"{escape(case.explanation)}</p>"
        if explain and case.explanation
        else ""
    )
    return (
        f'<figure data-name="block diagram" style="margin: 0; font-family: {FONT_FAMILY}">'
        + about
        + f'<div data-name="title" style="font-size: {TITLE_FONT + 2}px; font-weight: 600">'
        f"{escape(first)}</div>"
        f'<div data-name="subtitle" style="font-size: 13px; color: {MUTED}; margin: 2px 0 10px">'
        f"{sub}</div>"
        + svg_img(_svg(lay), alt, "drawing", f"width: 100%; max-width: {WIDTH}px")
        + "</figure>"
    )
