"""Plotly figures for :mod:`cnnviz.labs`: they only draw numbers the labs computed.

>>> from cnnviz.labs import rf_lab
>>> fig = rf_steps_figure(rf_lab(2, 3))
>>> len(fig.to_json()) > 0
True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz import fmt
from cnnviz.labs import BlockCase, RFLab, RFStep
from cnnviz.render.block_layout import ARROW_SIZE, DIAGRAM_X, block_layout, block_title
from cnnviz.render.html_parts import FONT
from cnnviz.render.palette import BLUES, COLORS, NODE_FILLS, SHORTCUT_COLORS, TEMPLATE, rgba
from cnnviz.zoo import SHORTCUTS

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["block_diagram", "block_title", "compare_bars", "rf_steps_figure", "shortcut_bars"]


def _square(cx: float, side: float) -> tuple[list[float], list[float]]:
    h = side / 2
    return [cx - h, cx + h, cx + h, cx - h, cx - h], [-h, -h, h, h, -h]


def _grid(cx: float, side: int) -> tuple[list[float | None], list[float | None]]:
    xs: list[float | None] = []
    ys: list[float | None] = []
    h = side / 2
    for j in range(side + 1):
        v = -h + j
        xs += [cx + v, cx + v, None, cx - h, cx + h, None]
        ys += [-h, h, None, v, v, None]
    return xs, ys


# Names and labels both renderers of the lab's comparisons use (these Plotly figures and the
# app's HTML in lab_html), so the two read the same.


def step_name(step: RFStep) -> str:
    """A nested square's name: the conv, its RF and effective stride, or the output pixel.

    >>> from cnnviz.labs import rf_lab
    >>> [step_name(s) for s in rf_lab(2, 3).steps]
    ['output pixel: 1x1', 'conv 1 (3x3): RF 3x3, stride 1', 'conv 2 (3x3): RF 5x5, stride 1']
    """
    if not step.layer:
        return "output pixel: 1x1"
    return f"{step.label}: RF {step.rf}x{step.rf}, stride {step.stride}"


def single_name(lab: RFLab) -> str:
    """The single conv's name.

    >>> from cnnviz.labs import rf_lab
    >>> single_name(rf_lab(2, 3))
    'one 5x5 conv, stride 1'
    """
    return f"one {lab.single.rf}x{lab.single.rf} conv, stride {lab.single.conv_stride}"


def bar_names(lab: RFLab) -> list[str]:
    """The bars' short names; the long ones are in the title.

    >>> from cnnviz.labs import rf_lab
    >>> bar_names(rf_lab(16, 11))  # 1 + 16 * (11 - 1) = 161
    ['16 x 11x11', '1 x 161x161']
    """
    return [f"{lab.n} x {lab.k}x{lab.k}", f"1 x {lab.single.kernel_size}x{lab.single.kernel_size}"]


def bar_label(value: int) -> str:
    """A bar's value label: exact up to 7 digits; past that the compact form fits a phone.

    >>> bar_label(9_999_999), bar_label(8_120_172_544)
    ('9,999,999', '8.1G')
    """
    return fmt.count(value) if value < 10**7 else fmt.compact(value)


#: The comparison's metrics: title, RFSide attribute, unit.
BAR_METRICS = (
    ("Weights", "weights", "weights"),
    ("MACs", "macs", "MACs"),
    ("Non-linearities", "nonlinearities", "non-linearities"),
)


def rf_steps_figure(lab: RFLab) -> go.Figure:
    """Nested squares: the RF of one output pixel after each conv of the stack (1x1, 3x3,
    5x5, ...), beside the single K x K kernel with the same RF; pixel grid when K <= 41, and
    for dilation > 1 dots on the pixels the stack actually reads.

    >>> from cnnviz.labs import rf_lab
    >>> fig = rf_steps_figure(rf_lab(3, 3))
    >>> [t.name for t in fig.data][:2]
    ['conv 3 (3x3): RF 7x7, stride 1', 'conv 2 (3x3): RF 5x5, stride 1']
    """
    big = lab.single.rf
    gap = max(2.0, 0.3 * big)
    right = big + gap  # centre of the single kernel
    fig = go.Figure()
    steps = sorted(lab.steps, key=lambda s: -s.rf)
    for i, st in enumerate(steps):
        depth = len(steps) - 1 - i  # 0 for the output pixel
        fill = BLUES[min(depth, len(BLUES) - 1)] if st.layer else COLORS["ink"]
        xs, ys = _square(0.0, st.rf)
        name = step_name(st)
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                fill="toself",
                fillcolor=fill,
                line={"color": COLORS["stack"] if st.layer else COLORS["ink"], "width": 1.5},
                name=name,
                hoverinfo="name",
                legendgroup="stack",
                legendgrouptitle_text=lab.stack.label,
            )
        )
    xs, ys = _square(right, big)
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            fill="toself",
            fillcolor=rgba(COLORS["single"], 0.18),
            line={"color": COLORS["single"], "width": 2},
            name=single_name(lab),
            hoverinfo="name",
            legendgroup="single",
            legendgrouptitle_text=lab.single.label,
        )
    )
    cx, cy = _square(right, 1)
    fig.add_trace(
        go.Scatter(
            x=cx, y=cy, mode="lines", fill="toself", fillcolor=COLORS["ink"],
            line={"color": COLORS["ink"], "width": 1}, hoverinfo="skip", showlegend=False,
        )
    )  # fmt: skip
    if big <= 41:
        for c in (0.0, right):
            gx, gy = _grid(c, big)
            fig.add_trace(
                go.Scatter(
                    x=gx,
                    y=gy,
                    mode="lines",
                    line={"color": "rgba(0,0,0,0.12)", "width": 0.6},
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
    if lab.dilation > 1 and big <= 61:
        half = (big - 1) // 2
        taps = [v for v in range(-half, half + 1) if v % lab.dilation == 0]
        fig.add_trace(
            go.Scatter(
                x=[x for x in taps for _ in taps],
                y=[y for _ in taps for y in taps],
                mode="markers",
                marker={"size": 4, "color": COLORS["ink"]},
                name=f"pixels the stack reads (1 in {lab.dilation} per axis)",
                hoverinfo="name",
            )
        )
    top = big / 2 + max(0.6, 0.06 * big)
    fig.add_annotation(
        x=0, y=top, text=f"<b>{lab.stack.label}</b>", showarrow=False, yanchor="bottom"
    )
    fig.add_annotation(
        x=right, y=top, text=f"<b>{lab.single.label}</b>", showarrow=False, yanchor="bottom"
    )
    bottom = -big / 2 - max(0.6, 0.06 * big)
    for x, side in ((0, lab.stack), (right, lab.single)):
        fig.add_annotation(
            x=x,
            y=bottom,
            yanchor="top",
            showarrow=False,
            text=f"{fmt.count(side.weights)} weights · {side.nonlinearities} ReLU"
            + ("s" if side.nonlinearities != 1 else ""),
        )
    pad = max(1.0, 0.08 * big)
    fig.update_xaxes(visible=False, range=[-big / 2 - pad, right + big / 2 + pad])
    fig.update_yaxes(visible=False, scaleanchor="x", scaleratio=1)
    fig.update_layout(
        template=TEMPLATE,
        title=f"Receptive field of one output pixel<br><sup>{lab.stack.label} vs one "
        f"{big}x{big} conv</sup>",
        legend={
            "orientation": "h",
            "x": 0,
            "y": -0.02,
            "yanchor": "top",
            "groupclick": "toggleitem",
        },
        margin={"l": 20, "r": 20, "t": 60, "b": 20},
        height=560,
    )
    return fig


#: Smallest font on the comparison bars: value labels, bar names and titles stay readable
#: on a phone (400 px) and on a projector (the HTML blocks' font).
BAR_FONT = FONT


def _label_margin(labels: list[str], font: int = BAR_FONT) -> int:
    """A left margin (px) that holds ``labels`` as tick labels: about 0.55 of the font size
    per character (digits and "x" in the figure's sans-serif), plus the tick's gap.

    >>> _label_margin(["16 x 11x11", "1 x 161x161"])  # 0.55 * 13 * 11 = 78.65, + 14
    93
    """
    return round(0.55 * font * max(map(len, labels))) + 14


def compare_bars(lab: RFLab) -> go.Figure:
    """Weights, MACs and non-linearities of the stack vs the single conv, one metric per row.

    Rows of horizontal bars, not side-by-side columns: each row spans the chart's width, so no
    metric's tick labels sit over another's bars, and the value labels (outside the bars, in
    the room the x range leaves) fit at any width down to a phone's.

    >>> from cnnviz.labs import rf_lab
    >>> fig = compare_bars(rf_lab(2, 3, 64))
    >>> [int(v) for v in fig.data[0].x]  # weights: 2*9*64*64 vs 25*64*64
    [73728, 102400]
    """
    metrics = BAR_METRICS
    fig = make_subplots(
        rows=len(metrics),
        cols=1,
        subplot_titles=[m[0] for m in metrics],
        vertical_spacing=0.14,
    )
    names = bar_names(lab)  # the long ones ("16 x 11x11 conv (dilation 4)") are in the title
    for row, (title, attr, _) in enumerate(metrics, start=1):
        vals = [getattr(lab.stack, attr), getattr(lab.single, attr)]
        fig.add_trace(
            go.Bar(
                y=names,
                x=vals,
                orientation="h",
                marker_color=[COLORS["stack"], COLORS["single"]],
                text=[bar_label(v) for v in vals],  # exact on hover
                textposition="outside",
                textfont={"size": BAR_FONT},
                cliponaxis=False,
                name=title,
                showlegend=False,
                hovertemplate="%{y}<br>" + title + ": %{x:,}<extra></extra>",
            ),
            row=row,
            col=1,
        )
        # room right of the longer bar for its label ("1,073,741,824" is 13 characters)
        fig.update_xaxes(range=[0, max(vals) * 1.6 or 1], visible=False, row=row, col=1)
        # automargin off (our template turns it on): the margin below fits the names
        fig.update_yaxes(
            autorange="reversed",
            automargin=False,
            tickfont={"size": BAR_FONT},
            row=row,
            col=1,
        )
    fig.update_annotations(font={"size": BAR_FONT + 1})  # the subplot titles
    fig.update_layout(
        template=TEMPLATE,
        # one side a line: at the largest settings one line would run past a phone's width
        title=f"{lab.stack.label}<br>vs {lab.single.label}<br>"
        f"<sup>C = {lab.channels}, weight ratio {lab.weight_ratio:.3g}</sup>",
        height=480,
        # A margin sized to the bar names, not automargin: automargin measures the tick labels
        # and draws the chart twice (27 against 15 ms per draw, and each slider step draws it).
        margin={"l": _label_margin(names), "r": 10, "t": 125, "b": 10},
        bargap=0.3,
        font={"size": BAR_FONT},
    )
    return fig


# ------------------------------------------------------------------ block diagram

_ADD_LINE = {"color": COLORS["edge"], "width": 1.5}


def _heads_trace(heads: list[tuple[float, float, float, float]]) -> go.Scatter:
    """The arrowheads: an "arrow" marker at each arrow's end, turned along it, its tip on the
    end point. (As annotations, Plotly measured and drew each arrow alone, about half of a
    diagram's drawing time in the browser.)"""
    xs: list[float | None] = []
    ys: list[float | None] = []
    for x0, y0, x1, y1 in heads:
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    return go.Scatter(
        x=xs, y=ys, mode="markers", hoverinfo="skip", name="arrows",
        marker={
            "symbol": "arrow", "angleref": "previous", "size": [0, ARROW_SIZE, 0] * len(heads),
            "color": COLORS["edge"], "line": {"width": 0},
        },
    )  # fmt: skip


def block_diagram(case: BlockCase) -> go.Figure:
    """The block as boxes (:func:`cnnviz.render.block_layout.block_layout`) in a Plotly
    figure: main path F(x) down the middle, the shortcut on the right, the add node and final
    ReLU; every box shows the row's type, real output shape and params.

    >>> from cnnviz.labs import block_cases
    >>> fig = block_diagram(block_cases("B")[1])
    >>> any("1x512x28x28" in a.text for a in fig.layout.annotations)  # resnet50 layer2.0
    True
    """
    lay = block_layout(case)
    traces: list[go.Scatter] = []
    if lay.add is not None:
        traces.append(
            go.Scatter(
                x=[lay.add[0]], y=[lay.add[1]], mode="markers+text", text=["<b>+</b>"],
                textfont={"size": 18}, hoverinfo="skip",
                marker={"size": 30, "color": NODE_FILLS["add"], "line": _ADD_LINE},
            )
        )  # fmt: skip
    traces.append(_heads_trace(lay.canvas.heads))
    return go.Figure(
        data=traces,
        layout={
            "template": TEMPLATE,
            "title": {"text": lay.title, "x": 0.02},
            "height": 130 + 66 * lay.rows,
            "margin": {"l": 10, "r": 10, "t": 110, "b": 10},
            "showlegend": False,
            "xaxis": {"visible": False, "range": list(DIAGRAM_X)},
            "yaxis": {"visible": False, "range": list(lay.y_range)},
            "shapes": lay.canvas.shapes,
            "annotations": lay.canvas.annotations,
        },
    )


def shortcut_bars(df: pd.DataFrame, metric: str = "params") -> go.Figure:
    """Grouped bars per stage of ``metric`` ("params" or "macs") for shortcuts none/A/B/C,
    from :func:`cnnviz.labs.shortcut_stage_table` (the total row is left out).

    >>> from cnnviz.labs import shortcut_stage_table
    >>> fig = shortcut_bars(shortcut_stage_table(20))
    >>> [t.name for t in fig.data]
    ['none', 'A', 'B', 'C']
    """
    if metric not in ("params", "macs"):
        raise ValueError(f"metric={metric!r} is invalid; valid metric: 'params', 'macs'")
    stages = df[df.stage != "total"]
    fig = go.Figure()
    for s in SHORTCUTS:
        vals = [int(v) for v in stages[f"{metric}_{s}"]]
        fig.add_trace(
            go.Bar(
                x=list(stages.stage),
                y=vals,
                name=s,
                marker_color=SHORTCUT_COLORS[s],
                hovertemplate=f"shortcut {s}<br>%{{x}}: %{{y:,}} {metric}<extra></extra>",
            )
        )
    label = "Parameters" if metric == "params" else "MACs"
    fig.update_layout(
        template=TEMPLATE,
        barmode="group",
        title=f"{label} per stage by shortcut type",
        yaxis_title=label,
        legend_title_text="shortcut",
        height=420,
        margin={"l": 60, "r": 20, "t": 60, "b": 40},
    )
    return fig
