"""Where a residual block's diagram puts its boxes, arrows and texts: one layout that both
renderers draw, the Plotly figure (:func:`cnnviz.render.lab_plots.block_diagram`) and the
SVG picture (:func:`cnnviz.render.block_svg.block_diagram_html`).

Coordinates are diagram units: x from :data:`DIAGRAM_X`, y one unit a row, going down from
the block input at 0. Shapes and texts are plain dicts in Plotly's shape and annotation
form (``type``, ``x0`` ... ``y1``; ``x``, ``y``, ``text``, ``font``, ``xanchor``), their
text Plotly's markup subset (``<b>``, ``<br>``).

>>> from cnnviz.labs import block_cases
>>> lay = block_layout(block_cases("B")[1])  # resnet50 layer2.0: the shape changes
>>> # arrows: into 8 main boxes, the "+", 2 shortcut boxes, the "+" again, the ReLU, out
>>> lay.add is not None, len(lay.canvas.heads) == 8 + 1 + 2 + 1 + 1 + 1
(True, True)
"""

from __future__ import annotations

from dataclasses import dataclass

from cnnviz import fmt
from cnnviz.labs import BlockCase, BlockNode
from cnnviz.render.palette import COLORS, NODE_FILLS

__all__ = [
    "ADD_FONT",
    "ARROW_SIZE",
    "BOX_H",
    "DIAGRAM_X",
    "BlockLayout",
    "Canvas",
    "block_layout",
    "block_title",
    "block_title_lines",
]

_MAIN_X, _MAIN_W = 0.0, 3.3
_SC_X, _SC_W = 3.3, 2.6
#: A box's height (diagram units; a row is 1).
BOX_H = 0.72
#: The diagram's x range: the main path's boxes, the shortcut's boxes and a margin.
DIAGRAM_X = (-1.7, _SC_X + _SC_W / 2 + 0.6)
#: Size of an arrowhead (px).
ARROW_SIZE = 9
#: Font size of the add node's label ("add: F(x) + shortcut"), right of the "+".
ADD_FONT = 11


class Canvas:
    """Shapes and annotations of a diagram, collected as plain dicts (Plotly takes them in
    one go: ``fig.add_shape`` / ``add_annotation`` validate the whole list on every call,
    which made a four-case shortcut lab take over a second to draw), and the arrows' heads."""

    def __init__(self) -> None:
        self.shapes: list[dict] = []
        self.annotations: list[dict] = []
        #: each arrow as (x0, y0, x1, y1): its head sits on (x1, y1), pointing along it
        self.heads: list[tuple[float, float, float, float]] = []

    def box(self, x: float, y: float, w: float, fill: str, text: str) -> None:
        self.shapes.append(
            {
                "type": "rect", "x0": x - w / 2, "x1": x + w / 2,
                "y0": y - BOX_H / 2, "y1": y + BOX_H / 2,
                "line": {"color": COLORS["edge"], "width": 1}, "fillcolor": fill,
                "layer": "below",
            }
        )  # fmt: skip
        self.text(x, y, text, size=11)

    def arrow(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.line(x0, y0, x1, y1)
        self.heads.append((x0, y0, x1, y1))

    def line(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.shapes.append(
            {
                "type": "line", "x0": x0, "x1": x1, "y0": y0, "y1": y1,
                "line": {"color": COLORS["edge"], "width": 1.3},
            }
        )  # fmt: skip

    def text(self, x: float, y: float, text: str, size: int = 12, **kw) -> None:
        self.annotations.append(
            {
                "x": x,
                "y": y,
                "text": text,
                "showarrow": False,
                "font": {"size": size, **kw.pop("font", {})},
                **kw,
            }
        )


@dataclass(frozen=True)
class BlockLayout:
    """A block's diagram, placed: see the module's docstring for its units."""

    canvas: Canvas
    add: tuple[float, float] | None  # the "+" node's centre, where the shortcut joins
    y_range: tuple[float, float]  # bottom, top
    rows: int
    title: str  # Plotly markup: block_title


def _fill(n: BlockNode) -> str:
    return NODE_FILLS.get(n.type, NODE_FILLS["other"])


def _node_text(n: BlockNode, lines: int = 2) -> str:
    params = f" · {fmt.count(n.params)} params" if n.params else ""
    detail = "" if n.detail == n.type else n.detail
    sep = "<br>" if lines == 3 and detail else " · " if detail else ""
    return f"<b>{n.short}</b> {n.type}{sep}{detail}<br>→ {fmt.shape(n.out_shape)}{params}"


def block_title_lines(case: BlockCase) -> list[str]:
    """The diagram's title as plain lines: the case, the block it is read from, its shortcut,
    its parameters (one fact a line: a phone's width holds about 45 characters).

    >>> from cnnviz.labs import block_cases
    >>> # convs 256*128 + 9*128*128 + 128*512 = 245,760, BNs 2*(128 + 128 + 512) = 1,536
    >>> block_title_lines(block_cases("none", 50)[1])  # doctest: +NORMALIZE_WHITESPACE
    ['2. Spatial size halves, channels double', 'resnet50 layer2.0 (bottleneck block)',
     'no shortcut (plain net)', 'block 247,296 params']
    """
    if case.shortcut_type == "none":
        sc = "no shortcut (plain net)"
        params = f"block {fmt.count(case.params)} params"
    else:
        sc = f"shortcut {case.shortcut_type}: {case.shortcut_kind}"
        params = (
            f"block {fmt.count(case.params)} params, shortcut {fmt.count(case.shortcut_params)}"
        )
    return [case.title, f"{case.model} {case.block} ({case.block_type} block)", sc, params]


def block_title(case: BlockCase) -> str:
    """:func:`block_title_lines` in Plotly's markup: the case, then the rest smaller.

    >>> from cnnviz.labs import block_cases
    >>> print(block_title(block_cases("none", 50)[1]))  # doctest: +NORMALIZE_WHITESPACE
    2. Spatial size halves, channels double<br><sup>resnet50 layer2.0 (bottleneck block)<br>no
    shortcut (plain net)<br>block 247,296 params</sup>
    """
    first, *rest = block_title_lines(case)
    return f"{first}<br><sup>{'<br>'.join(rest)}</sup>"


def block_layout(case: BlockCase) -> BlockLayout:
    """The block as boxes: main path F(x) down the middle, the shortcut on the right, the add
    node and final ReLU; every box shows the row's type, real output shape and params.

    >>> from cnnviz.labs import block_cases
    >>> lay = block_layout(block_cases("B")[1])
    >>> any("1x512x28x28" in a["text"] for a in lay.canvas.annotations)  # resnet50 layer2.0
    True
    """
    cv = Canvas()
    add = None
    y = 0.0
    cv.box(_MAIN_X, y, _MAIN_W, "white", f"<b>x</b> (block input)<br>{fmt.shape(case.in_shape)}")
    top = y
    prev = y
    for node in case.main:
        y -= 1
        cv.arrow(_MAIN_X, prev - BOX_H / 2, _MAIN_X, y + BOX_H / 2)
        cv.box(_MAIN_X, y, _MAIN_W, _fill(node), _node_text(node, lines=3))
        prev = y
    y -= 1
    merge_y = y
    if case.merge is not None:
        cv.arrow(_MAIN_X, prev - BOX_H / 2, _MAIN_X, merge_y + 0.3)
        add = (_MAIN_X, merge_y)
        # right of the "+" and under the shortcut's arrow into it: the one free corner (left
        # of the "+" the label ran off the chart at phone width)
        cv.text(
            0.35, merge_y - 0.12, xanchor="left", yanchor="top", align="left", size=ADD_FONT,
            text=f"<b>{case.merge.short}</b>: F(x) + shortcut<br>→ "
            f"{fmt.shape(case.merge.out_shape)}",
        )  # fmt: skip
        prev = merge_y - 0.3 + BOX_H / 2
    else:
        merge_y = y = y + 1  # no add node: the post nodes follow the main path directly
    # shortcut path on the right
    sc_top = top
    if case.shortcut_kind == "none":
        cv.text(
            _SC_X, (top + merge_y) / 2, font={"color": COLORS["reference"]},
            text="no shortcut<br>(plain net: out = ReLU(F(x)))",
        )  # fmt: skip
    else:
        cv.line(_MAIN_X + _MAIN_W / 2, sc_top, _SC_X, sc_top)
        k = len(case.shortcut)
        cur = sc_top
        span = top - merge_y
        for j, node in enumerate(case.shortcut):
            ny = top - span * (j + 1) / (k + 1)
            cv.arrow(_SC_X, cur, _SC_X, ny + BOX_H / 2)
            cv.box(_SC_X, ny, _SC_W, _fill(node), _node_text(node, lines=3))
            cur = ny - BOX_H / 2
        cv.line(_SC_X, cur, _SC_X, merge_y)
        cv.arrow(_SC_X, merge_y, 0.3, merge_y)
        if not case.shortcut:
            cv.text(
                _SC_X + 0.1, (top + merge_y) / 2, xanchor="left",
                text="<b>identity</b><br>0 params",
            )  # fmt: skip
    for node in case.post:
        y -= 1
        cv.arrow(_MAIN_X, prev - BOX_H / 2, _MAIN_X, y + BOX_H / 2)
        cv.box(_MAIN_X, y, _MAIN_W, _fill(node), _node_text(node))
        prev = y
    y -= 1
    cv.arrow(_MAIN_X, prev - BOX_H / 2, _MAIN_X, y + BOX_H / 2)
    cv.box(_MAIN_X, y, _MAIN_W, "white", f"<b>out</b><br>{fmt.shape(case.out_shape)}")
    return BlockLayout(cv, add, (y - 0.6, top + 0.6), round(top - y) + 1, block_title(case))
