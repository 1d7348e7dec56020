"""One unit's receptive field on the input, as SVG markup.

The same drawing as :func:`cnnviz.render.plots.rf_on_input`, with the same colours and
names, but as a static picture: a browser draws it as it draws an image, where a Plotly
figure builds a new chart each time it changes (about a fifth of the browser's work per
RF-lab slider step).
Each shape has a title, which a browser shows on hover where the SVG is inline (a
notebook's ``IPython.display.SVG``; not inside an ``<img>``, as the app shows it); there is no
zoom.

>>> from cnnviz.receptive import ReceptiveField
>>> svg = rf_on_input_svg(ReceptiveField((3, 3), (2, 2), (1, 1)), (8, 8), (0, 1))
>>> svg.startswith("<svg"), 'data-name="receptive field"' in svg
(True, True)
"""

from __future__ import annotations

import html
import math
from typing import Any

from cnnviz.compare import unit_view
from cnnviz.picture import data_uri
from cnnviz.receptive import ReceptiveField
from cnnviz.render.palette import COLORS, FONT_FAMILY
from cnnviz.render.rf_geometry import (
    check_picture,
    extent,
    grid_lines,
    padding_bands,
    subtitle,
    windows,
)

__all__ = ["rf_on_input_svg"]

# Screen pixels around the plot: the title above, tick labels left and below, the legend
# at the bottom.
_TOP, _LEFT, _RIGHT, _BOTTOM = 52, 46, 12, 74


def _nice_step(span: float, ticks: int = 6) -> int:
    """A round tick step (1, 2 or 5 times a power of ten) giving about ``ticks`` ticks.

    >>> _nice_step(224), _nice_step(8), _nice_step(1000)
    (50, 2, 200)
    """
    raw = max(span / ticks, 1)
    power = 10 ** math.floor(math.log10(raw))
    return int(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def _ticks(lo: float, hi: float) -> list[int]:
    step = _nice_step(hi - lo)
    return list(range(math.ceil(lo / step) * step, math.floor(hi) + 1, step))


def rf_on_input_svg(
    rf: ReceptiveField,
    input_spatial: tuple[int, int] = (224, 224),
    unit: tuple[int, int] = (0, 0),
    show_neighbour: bool = True,
    output_spatial: tuple[int, int] | None = None,
    picture: Any = None,
    picture_uri: str | None = None,
    width: int = 560,
) -> str:
    """The window that output ``unit`` (row, col) sees on the input, as an ``<svg>`` string
    ``width`` screen pixels wide (with a viewBox: it scales to a narrower box).

    Arguments as :func:`cnnviz.render.plots.rf_on_input`. Each shape carries ``data-name``
    (``input``, ``receptive field``, ``neighbour``, ``padding``, ``unit grid``, ``centre``)
    and a ``<title>`` a browser shows on hover; the plot's coordinates are input pixels,
    pixel k spanning ``[k - 0.5, k + 0.5]``, the y axis pointing down.

    >>> svg = rf_on_input_svg(ReceptiveField((3, 3), (2, 2), (1, 1)), (8, 8), (0, 0))
    >>> svg.count('data-name="padding"')  # above and left of the image
    2
    """
    view = unit_view(rf, input_spatial, unit, output_spatial)
    height, img_w = view["input"]
    (r0, r1), (c0, c1) = view["window"]
    (sy, sx), (py, px) = view["stride"], view["padding"]
    y_lo, y_hi, x_lo, x_hi = extent(view, show_neighbour)
    scale = (width - _LEFT - _RIGHT) / (x_hi - x_lo)
    plot_h = (y_hi - y_lo) * scale
    grid_name = f"unit grid (every {sx} px)" if sx and sy else "unit grid"
    legend, legend_h = _legend(grid_name, picture is not None, width)
    total_h = _TOP + plot_h + _BOTTOM + legend_h

    def to_x(x: float) -> float:  # input x -> screen x
        return round(_LEFT + (x - x_lo) * scale, 2)

    def to_y(y: float) -> float:
        return round(_TOP + (y - y_lo) * scale, 2)

    def rect(rows: tuple[int, int], cols: tuple[int, int], name: str, tip: str, style: str):
        x0, y0 = to_x(cols[0] - 0.5), to_y(rows[0] - 0.5)
        w, h = to_x(cols[1] + 0.5) - x0, to_y(rows[1] + 0.5) - y0
        return (
            f'<rect data-name="{name}" x="{x0}" y="{y0}" width="{round(w, 2)}" '
            f'height="{round(h, 2)}" {style}><title>{html.escape(tip)}</title></rect>'
        )

    out: list[str] = []
    inp = ((0, height - 1), (0, img_w - 1))
    if picture is not None:
        check_picture(picture, view)
        x0, y0 = to_x(-0.5), to_y(-0.5)
        # pixelated: a 32x32 input reads as its pixels, not as a blur
        out.append(
            f'<image data-name="input" href="{picture_uri or data_uri(picture)}" x="{x0}" '
            f'y="{y0}" width="{round(img_w * scale, 2)}" height="{round(height * scale, 2)}" '
            'preserveAspectRatio="none" style="image-rendering: pixelated"/>'
        )
        fill = "none"
    else:
        fill = COLORS["input"]
    out.append(
        rect(
            *inp,
            "input",
            f"the {height}x{img_w} input",
            f'fill="{fill}" stroke="{COLORS["reference"]}" stroke-width="1"',
        )
    )
    # Grid lines every effective stride, where units' windows start (stride 0: all units
    # share the window, no grid).
    path = [
        f"M{to_x(x)} {to_y(-0.5)}V{to_y(height - 0.5)}"
        for x in (grid_lines(-px, sx, img_w) if sx else [])
    ]
    path += [
        f"M{to_x(-0.5)} {to_y(y)}H{to_x(img_w - 0.5)}"
        for y in (grid_lines(-py, sy, height) if sy else [])
    ]
    if path:
        out.append(
            f'<path data-name="unit grid" d="{"".join(path)}" stroke="{COLORS["grid"]}" '
            f'stroke-width="0.6" fill="none"><title>{grid_name}</title></path>'
        )
    for rows, cols in padding_bands(view):
        out.append(
            rect(
                rows,
                cols,
                "padding",
                "padding: outside the image",
                f'fill="{COLORS["padding"]}" fill-opacity="0.35"',
            )
        )
    for rows, cols in windows(view, show_neighbour)[1:]:
        out.append(
            rect(
                rows,
                cols,
                "neighbour",
                f"a neighbour's window: rows {rows[0]}..{rows[1]}, cols {cols[0]}..{cols[1]}",
                f'fill="none" stroke="{COLORS["neighbour"]}" stroke-width="1.5" '
                'stroke-dasharray="5 3"',
            )
        )
    unit_txt = f"unit {tuple(view['unit'])}"
    out.append(
        rect(
            (r0, r1),
            (c0, c1),
            "receptive field",
            f"{unit_txt} sees rows {r0}..{r1}, cols {c0}..{c1}",
            f'fill="{COLORS["rf"]}" fill-opacity="0.12" stroke="{COLORS["rf"]}" stroke-width="2.5"',
        )
    )
    cy, cx = view["center"]
    X, Y = to_x(cx), to_y(cy)
    out.append(
        f'<path data-name="centre" d="M{X - 5} {Y - 5}L{X + 5} {Y + 5}M{X - 5} {Y + 5}'
        f'L{X + 5} {Y - 5}" stroke="{COLORS["rf"]}" stroke-width="2.5">'
        f"<title>{unit_txt}: centre (y, x) = ({cy:g}, {cx:g})</title></path>"
    )
    if show_neighbour and sx:
        nx = to_x(rf.center(view["neighbour_w_unit"])[1])
        green = COLORS["neighbour"]
        tip = -6 if nx > X else 6  # the arrow head's back, toward the centre
        out.append(
            f'<g data-name="stride arrow" stroke="{green}" stroke-width="1.5" fill="{green}">'
            f'<path d="M{X} {Y}H{nx}"/><path d="M{nx} {Y}l{tip} -4v8z" stroke="none"/>'
            f'<text x="{round((X + nx) / 2, 2)}" y="{round(Y + 16, 2)}" font-size="11" '
            f'text-anchor="middle" stroke="none">stride {sx} px</text></g>'
        )
    out += _axes(to_x, to_y, (y_lo, y_hi, x_lo, x_hi), _TOP + plot_h)
    out.append(f'<g transform="translate(0 {round(_TOP + plot_h + _BOTTOM - 14, 2)})">')
    out += legend
    out.append("</g>")
    rh, rw = view["size"]
    title = f"Unit {tuple(view['unit'])} sees {rh}x{rw} px"
    label = f"{title}; {subtitle(view)}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {round(total_h)}" '
        f'role="img" aria-label="{html.escape(label)}" font-family="{FONT_FAMILY}" '
        f'font-size="12" fill="#31333F" width="{width}" height="{round(total_h)}">'
        f"<title>{html.escape(label)}</title>"
        f'<text x="8" y="20" font-size="16" font-weight="600">{html.escape(title)}</text>'
        f'<text x="8" y="38" font-size="12" fill="#666">{html.escape(subtitle(view))}</text>'
        + "".join(out)
        + "</svg>"
    )


def _axes(to_x, to_y, box: tuple[float, float, float, float], bottom: float) -> list[str]:
    """Tick labels in input pixels: x below the plot, y left of it."""
    y_lo, y_hi, x_lo, x_hi = box
    out = [
        f'<text x="{to_x(x)}" y="{round(bottom + 16, 2)}" text-anchor="middle">{x}</text>'
        for x in _ticks(x_lo, x_hi)
    ]
    out += [
        f'<text x="{_LEFT - 6}" y="{round(to_y(y) + 4, 2)}" text-anchor="end">{y}</text>'
        for y in _ticks(y_lo, y_hi)
    ]
    out.append(
        f'<text x="{to_x((x_lo + x_hi) / 2)}" y="{round(bottom + 34, 2)}" text-anchor="middle" '
        'fill="#666">x, y (input pixels)</text>'
    )
    return out


def _legend(grid_name: str, picture: bool, width: int) -> tuple[list[str], int]:
    """Swatches in the Plotly figure's words, in rows that fit ``width``; and the height the
    rows beyond the first take."""
    rf, green = COLORS["rf"], COLORS["neighbour"]
    items = [
        ("receptive field", f'fill="{rf}" fill-opacity="0.12" stroke="{rf}" stroke-width="2"'),
        ("neighbour", f'fill="none" stroke="{green}" stroke-width="1.5" stroke-dasharray="4 2"'),
        ("padding", f'fill="{COLORS["padding"]}" fill-opacity="0.35"'),
        (grid_name, f'fill="none" stroke="{COLORS["grid"]}" stroke-width="1.5"'),
    ]
    if not picture:
        items.insert(0, ("input", f'fill="{COLORS["input"]}" stroke="{COLORS["reference"]}"'))
    out: list[str] = []
    x, y = 8.0, 0
    for name, style in items:
        step = 19 + 6.6 * len(name) + 16  # swatch, text at about 6.6 px a character, gap
        if x > 8 and x + step - 16 > width:
            x, y = 8.0, y + 20
        out.append(
            f'<rect x="{round(x, 1)}" y="{y - 10}" width="14" height="12" {style}/>'
            f'<text x="{round(x + 19, 1)}" y="{y}">{html.escape(name)}</text>'
        )
        x += step
    return out, y
