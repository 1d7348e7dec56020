"""The one palette of cnnviz's figures: colours per role, per series, and the plotly template.

Series colours are Vega's Tableau 10 (:data:`SERIES`); a role (a selected bar, the effective
stride, the single big kernel of the RF lab) always takes the same colour, so a reader can
carry it from figure to figure. :data:`TEMPLATE` is ``plotly_white`` with :data:`SERIES` as
its colorway, so figures that leave a trace's colour to plotly (timing lines) use it too.

>>> rgba(COLORS["rf"], 0.12)
'rgba(76,120,168,0.12)'
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import plotly.graph_objects as go
import plotly.io as pio

__all__ = [
    "BLUES",
    "COLORS",
    "FONT_FAMILY",
    "NODE_FILLS",
    "SERIES",
    "SHORTCUT_COLORS",
    "TEMPLATE",
    "model_colors",
    "rgba",
    "series",
]

#: Series colours in order (Vega's Tableau 10): model i of a comparison, line i of a chart.
SERIES = (
    "#4C78A8",  # blue
    "#F58518",  # orange
    "#54A24B",  # green
    "#E45756",  # red
    "#72B7B2",  # teal
    "#B279A2",  # purple
    "#EECA3B",  # yellow
    "#9D755D",  # brown
    "#FF9DA6",  # pink
    "#BAB0AC",  # grey
)
_BLUE, _ORANGE, _GREEN, _RED = SERIES[:4]

#: The figures' font stack (Plotly figures and the SVG unit view).
FONT_FAMILY = "Inter, Segoe UI, Helvetica, Arial, sans-serif"

#: Colours per role.
COLORS = {
    "bar": _BLUE,  # default bars, RF size
    "muted": "#A9BCD6",  # bars beside a selected one (a light _BLUE)
    "selected": _RED,  # the selected row
    "stride": _ORANGE,  # effective stride
    "rf": _BLUE,  # the receptive-field window
    "theoretical": _RED,  # the theoretical RF drawn over an effective RF
    "neighbour": _GREEN,  # the neighbouring unit's window
    "padding": _ORANGE,  # the part of a window that falls on padding
    "stack": _BLUE,  # RF lab: n stacked k x k convs
    "single": _ORANGE,  # RF lab: the one K x K conv
    "ink": "#08306B",  # the output pixel, the pixels a dilated stack reads (darkest blue)
    "input": "#F2F2F2",  # the input image
    "grid": "#D0D0D0",  # unit grid lines on the input
    "edge": "#444444",  # arrows and outlines in diagrams
    "reference": "#888888",  # reference lines (input size), the plain net
}

#: ResNet shortcut types: none (the plain net) grey, then A, B, C as series.
SHORTCUT_COLORS = {"none": COLORS["reference"], "A": _GREEN, "B": _BLUE, "C": _RED}

#: Light blues, outermost first: nested RF squares (ColorBrewer Blues).
BLUES = ("#DEEBF7", "#C6DBEF", "#9ECAE1", "#6BAED6", "#4292C6", "#2171B5", "#08519C")

#: Light fills of a block diagram's boxes, per layer type.
NODE_FILLS = {
    "Conv2d": "#DBE9F6",
    "BatchNorm2d": "#E3F2D9",
    "ReLU": "#FDE6CF",
    "PadShortcut": "#ECE1F4",
    "add": "#F0F0F0",
    "other": "#F7F7F7",
}

#: ``plotly_white`` with :data:`SERIES` as its colorway and an upright mode bar: every
#: figure's ``template``.
TEMPLATE = go.layout.Template(pio.templates["plotly_white"])
TEMPLATE.layout.colorway = SERIES
# The toolbar stands upright at the right edge: lying across the top, it covered the title of
# a narrow chart on hover.
TEMPLATE.layout.modebar = {"orientation": "v"}


def series(i: int) -> str:
    """The colour of series ``i`` (cycling past ten)."""
    return SERIES[i % len(SERIES)]


def model_colors(labels: Sequence[str]) -> list[str]:
    """One colour per label ("resnet18", "resnet18 shortcut=A"), fixed by the model's place in
    :func:`cnnviz.zoo.list_models` (others: by a checksum of the name), so a model keeps its
    colour whatever else a chart shows; a label whose colour is taken in this chart (a second
    variant of a model) gets the next free one.

    >>> model_colors(["vgg16", "alexnet"]) == [SERIES[4], SERIES[0]]
    True
    >>> model_colors(["alexnet", "alexnet shortcut=A"]) == [SERIES[0], SERIES[1]]
    True
    """
    from cnnviz import zoo  # lazy: the palette is imported by everything, zoo builds models

    order = {name: i for i, name in enumerate(zoo.list_models())}
    taken: list[str] = []
    for label in labels:
        name = str(label).split(" ")[0]
        start = order.get(name, zlib.crc32(name.encode()))
        free = [series(start + k) for k in range(len(SERIES))]
        color = next((c for c in free if c not in taken), free[0])
        taken.append(color)
    return taken


def rgba(color: str, alpha: float) -> str:
    """A ``#RRGGBB`` colour with transparency ``alpha``, as plotly's ``rgba(...)``."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha:g})"
