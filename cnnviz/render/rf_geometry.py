"""What a drawing of one unit's receptive field holds, shared by the Plotly and SVG renderers.

Coordinates are input pixels with pixel k spanning ``[k - 0.5, k + 0.5]``; windows are the
inclusive ``((first_row, last_row), (first_col, last_col))`` of
:func:`cnnviz.compare.unit_view`.
"""

from __future__ import annotations

import math
from typing import Any

Span = tuple[int, int]


def padding_bands(view: dict[str, Any]) -> list[tuple[Span, Span]]:
    """The parts of the unit's window outside the image, as (rows, cols) bands: top and
    bottom across the window's width, left and right between them.

    >>> from cnnviz.compare import unit_view
    >>> from cnnviz.receptive import ReceptiveField
    >>> padding_bands(unit_view(ReceptiveField((3, 3), (2, 2), (1, 1)), (8, 8), (0, 0)))
    [((-1, -1), (-1, 1)), ((0, 1), (-1, -1))]
    """
    height, width = view["input"]
    (r0, r1), (c0, c1) = view["window"]
    bands: list[tuple[Span, Span]] = []
    if r0 < 0:  # top
        bands.append(((r0, min(r1, -1)), (c0, c1)))
    if r1 > height - 1:  # bottom
        bands.append(((max(r0, height), r1), (c0, c1)))
    rows_in = (max(r0, 0), min(r1, height - 1))
    if rows_in[0] <= rows_in[1]:
        if c0 < 0:  # left
            bands.append((rows_in, (c0, min(c1, -1))))
        if c1 > width - 1:  # right
            bands.append((rows_in, (max(c0, width), c1)))
    return bands


def grid_lines(start: int, step: int, extent: int, limit: int = 200) -> list[float]:
    """Edges ``start + k*step - 0.5`` inside ``[-0.5, extent - 0.5]``, at most ``limit``
    (the step grows by whole multiples past that).

    >>> grid_lines(-1, 2, 8)
    [0.5, 2.5, 4.5, 6.5]
    """
    step = max(step, 1) * max(1, math.ceil(extent / max(step, 1) / limit))
    first = start - step * math.floor(start / step)
    return [x - 0.5 for x in range(first, extent + 1, step)]


def windows(view: dict[str, Any], show_neighbour: bool) -> list[tuple[Span, Span]]:
    """The unit's window, then its neighbours' (right, down) when shown."""
    keys = ("window", "neighbour_w", "neighbour_h") if show_neighbour else ("window",)
    return [view[k] for k in keys]


def extent(view: dict[str, Any], show_neighbour: bool) -> tuple[float, float, float, float]:
    """``(y_lo, y_hi, x_lo, x_hi)``: the image and every window drawn, with a 3 % margin."""
    height, width = view["input"]
    drawn = windows(view, show_neighbour)
    lo_y = min(-0.5, *(rows[0] - 0.5 for rows, _ in drawn))
    hi_y = max(height - 0.5, *(rows[1] + 0.5 for rows, _ in drawn))
    lo_x = min(-0.5, *(cols[0] - 0.5 for _, cols in drawn))
    hi_x = max(width - 0.5, *(cols[1] + 0.5 for _, cols in drawn))
    margin = 0.03 * max(hi_x - lo_x, hi_y - lo_y)
    return lo_y - margin, hi_y + margin, lo_x - margin, hi_x + margin


def check_picture(picture: Any, view: dict[str, Any]) -> None:
    """Refuse a picture whose size is not the input's."""
    height, width = view["input"]
    if tuple(picture.shape[:2]) != (height, width):
        raise ValueError(
            f"the picture is {picture.shape[0]}x{picture.shape[1]}, the input "
            f"{height}x{width}: fit it first (cnnviz.picture.fit)"
        )


def subtitle(view: dict[str, Any]) -> str:
    """``stride 2x2, padding 1x1, partly on padding``: the line under the title."""
    (sy, sx), (py, px) = view["stride"], view["padding"]
    return f"stride {sy}x{sx}, padding {py}x{px}" + (
        ", partly on padding" if view["on_padding"] else ""
    )
