"""Plotly figures of one analysis: each function returns a ``go.Figure`` and never shows it,
so a page (Streamlit, a notebook) only draws what the library computed. Comparisons of several
models are HTML (:mod:`cnnviz.render.compare_html`).

Colors come from :mod:`cnnviz.render.palette`, fixed per role (``COLORS``), so a role keeps its
color from figure to figure.

>>> import cnnviz
>>> from cnnviz.render import plots
>>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
>>> len(plots.layer_bars(a).data[0].x) == len(a.layers)
True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz import fmt
from cnnviz.compare import rf_growth, rf_paths, stage_table, unit_view
from cnnviz.fmt import METRICS
from cnnviz.picture import data_uri
from cnnviz.receptive import ReceptiveField
from cnnviz.render.markup import plain
from cnnviz.render.palette import COLORS, FONT_FAMILY, TEMPLATE, rgba
from cnnviz.render.rf_geometry import (
    check_picture,
    extent,
    grid_lines,
    padding_bands,
    subtitle,
    windows,
)

if TYPE_CHECKING:
    from cnnviz.result import Analysis

__all__ = [
    "layer_bars",
    "rf_growth_plot",
    "rf_on_input",
]

#: Bar hatching of rows that add no context at the input (``layer_bars(productivity=True)``).
HATCH = {"unproductive": "x", "probably unproductive": "/"}
_FONT = {"family": FONT_FAMILY, "size": 13}


def _layout(fig: go.Figure, title: str, **kw: Any) -> go.Figure:
    fig.update_layout(
        template=TEMPLATE,
        title={"text": title, "x": 0.01, "xanchor": "left"},
        font=_FONT,
        margin={"l": 60, "r": 30, "t": 60, "b": 110},
        hoverlabel={"font_size": 12},
        # below the plot: above it, a few models' names wrap over the title
        legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0, "xanchor": "left"},
        **kw,
    )
    return fig


def _check_metric(metric: str, allowed: tuple[str, ...]) -> None:
    if metric not in allowed:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(allowed)}")


# --------------------------------------------------------------------------- one model


def layer_bars(
    a: Analysis,
    metric: str = "params",
    log: bool = False,
    selected: str | None = None,
    productivity: bool = False,
    muted: bool = False,
) -> go.Figure:
    """One bar per row in execution order (x = row name); ``selected`` (a row name) is drawn
    in :data:`COLORS` ``["selected"]`` and the others muted. ``muted`` mutes every bar, for a
    page that marks the selected one itself with :func:`selected_bar_css`: the figure then
    stays the same whichever row is selected, and the browser need not draw it again.

    Each bar's ``customdata`` is its row name, so a click or box selection (Streamlit's
    ``plotly_chart(..., on_select="rerun")`` reports ``points[i]["customdata"]``) maps back to
    the layer. ``metric``: params, trainable_params, macs, flops, extra_ops or output_bytes.

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    >>> fig = layer_bars(a, "macs", selected="fc")
    >>> fig.data[0].customdata[-1], fig.data[0].marker.color[-1] == COLORS["selected"]
    ('fc', True)

    ``productivity`` hatches the rows that add no context at this input (Richter et al.,
    ICMLA 2021; :attr:`LayerRecord.productivity`) as :data:`HATCH` says, and names it in
    their hover text:

    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("vgg16", device="meta"), (1, 3, 32, 32))
    >>> hatch = layer_bars(a, productivity=True).data[0].marker.pattern.shape
    >>> hatch.count("x") == len(a.unproductive()), hatch[0]
    (True, '')
    """
    _check_metric(
        metric, ("params", "trainable_params", "macs", "flops", "extra_ops", "output_bytes")
    )
    names = [r.name for r in a.layers]
    if selected is not None and selected not in names:
        raise ValueError(f"no row named {selected!r} in {a.model_name}")
    values = [int(getattr(r, metric)) for r in a.layers]
    if selected is None:
        colors = [COLORS["muted" if muted else "bar"]] * len(names)
    else:
        colors = [COLORS["selected"] if n == selected else COLORS["muted"] for n in names]
    hover = [
        f"<b>{plain(r.name)}</b> ({plain(r.type)})<br>{METRICS[metric]}: {fmt.compact(v)} "
        f"({fmt.count(v)})"
        for r, v in zip(a.layers, values, strict=True)
    ]
    marker: dict[str, Any] = {"color": colors, "line": {"width": 0}}
    if productivity:
        marker["pattern"] = {"shape": [HATCH.get(r.productivity or "", "") for r in a.layers]}
        hover = [
            h + (f"<br>{r.productivity} at this input" if r.productivity in HATCH else "")
            for h, r in zip(hover, a.layers, strict=True)
        ]
    fig = go.Figure(
        go.Bar(
            x=[plain(n) for n in names],  # tick labels are drawn as markup too
            y=values,
            name=METRICS[metric],
            marker=marker,
            customdata=names,
            hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>",
        )
    )
    ticks = _layer_ticks(a)
    xaxis = {
        "title": {"text": ticks["title"]},
        "categoryorder": "array",
        "categoryarray": [plain(n) for n in names],
        "tickmode": "array",
        "tickvals": ticks["vals"],
        "ticktext": ticks["text"],
        "tickangle": ticks["angle"],
        "tickfont": {"size": 10},
        "showticklabels": True,
    }
    yaxis = {
        "title": {"text": METRICS[metric]},
        "type": "log" if log else "linear",
        "tickformat": "~s",
    }
    # a thin line where each stage starts (x = category index; bar i spans i - 0.5 .. i + 0.5)
    shapes = [
        {
            "type": "line",
            "xref": "x",
            "yref": "paper",
            "x0": start - 0.5,
            "x1": start - 0.5,
            "y0": 0,
            "y1": 1,
            "layer": "below",
            "line": {"color": COLORS["grid"], "width": 1},
        }
        for start in ticks["starts"]
    ]
    notes = []
    if selected is not None:  # the chosen bar is named above the plot: ticks name stages only
        notes.append(
            {
                "x": plain(selected),
                "y": 1,
                "yref": "paper",
                "yanchor": "bottom",
                "text": f"▼ {plain(selected)}",
                "showarrow": False,
                "font": {"color": COLORS["selected"], "size": 11},
            }
        )
    title = f"{plain(a.model_name)}: {METRICS[metric]} per layer"
    # one layout update: each plotly update validates the whole layout again
    return _layout(
        fig,
        title,
        bargap=0.15,
        showlegend=False,
        xaxis=xaxis,
        yaxis=yaxis,
        shapes=shapes,
        annotations=notes,
    )


def selected_bar_css(scope: str, index: int) -> str:
    """A CSS rule that fills bar ``index`` (0-based) of the first bar trace of the Plotly
    chart inside the element of class ``scope`` in :data:`COLORS` ``["selected"]``: how a
    page marks the selected row on a ``layer_bars(..., muted=True)`` figure. (Plotly draws
    bar i as the path in the i-th ``g.point`` of its trace, filled by an inline style, which
    ``!important`` overrides; a hatched bar turns solid.)

    >>> selected_bar_css("st-key-bars", 0).replace(COLORS["selected"], "RED")
    '.st-key-bars g.trace.bars:first-child g.point:nth-child(1) > path {fill: RED !important}'
    """
    if not scope.replace("-", "").replace("_", "").isalnum() or index < 0:
        raise ValueError(f"not a CSS class and bar index: {scope!r}, {index}")
    return (
        f".{scope} g.trace.bars:first-child g.point:nth-child({index + 1}) > path "
        f"{{fill: {COLORS['selected']} !important}}"
    )


#: At most this many rows are each named on the x axis; a deeper model is labelled by stage.
MAX_ROW_TICKS = 30
#: At most this many stage labels (a deeper U-Net keeps every k-th).
MAX_STAGE_TICKS = 16


def _layer_ticks(a: Analysis) -> dict[str, Any]:
    """The x ticks of :func:`layer_bars`: every row's name up to :data:`MAX_ROW_TICKS` rows,
    else one label per stage (its resolution, from :func:`~cnnviz.compare.stage_table`) at
    the stage's middle row, every second one a line lower. ``starts`` are the row indices
    where a stage after the first begins.

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    >>> t = _layer_ticks(a)
    >>> t["text"], t["starts"]
    (['32x32', '<br>16x16', '8x8', '<br>head'], [24, 46, 68])
    """
    names = [plain(r.name) for r in a.layers]
    stages = stage_table(a)
    sizes = [int(n) for n in stages["layers"]]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    if len(names) <= MAX_ROW_TICKS:
        return {
            "vals": names,
            "text": names,
            "angle": -60,
            "starts": starts[1:],
            "title": "Layer (execution order)",
        }
    every = max(1, math.ceil(len(sizes) / MAX_STAGE_TICKS))
    picked = range(0, len(sizes), every)
    return {
        "vals": [names[starts[i] + sizes[i] // 2] for i in picked],
        # every second label a line lower: a 3-row stem (ResNet's conv1) beside the next
        # stage's label would overlap it at phone width
        "text": [
            ("<br>" if k % 2 else "") + plain(str(stages["size"].iloc[i]))
            for k, i in enumerate(picked)
        ],
        "angle": 0,
        "starts": starts[1:],
        "title": "Layer (execution order), by stage: output size",
    }


def rf_growth_plot(a: Analysis) -> go.Figure:
    """Receptive-field size (top) and effective stride (a small panel below, log 2 axis, in
    the stride's colour) against depth; a dotted line marks the input size. Two panels, not two
    y axes on one plot: a second axis over the RF's invites reading the stride against the
    RF's scale.

    The RF follows the data flow (:func:`~cnnviz.compare.rf_paths`): ``RF size`` is the main
    path (the one to the output), ``RF size, branches`` every side branch from its fork to its
    join (one trace, broken by gaps), so two stacked 3x3 convs (3, then 5) and a 5x5 beside
    them (5 at once) each show their own growth; on a path, a depth shows its largest RF.

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    >>> fig = rf_growth_plot(a)
    >>> [t.name for t in fig.data], max(fig.data[0].y), max(fig.data[-1].y)
    (['RF size', 'RF size, branches', 'effective stride'], 81, 4)
    """
    df = rf_growth(a)
    top_stride = max(1, int(df["stride"].max())) if len(df) else 1
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.06
    )
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    if len(df):
        strides = df.groupby("depth", sort=True)["stride"].max()
        depth = [int(d) for d in strides.index]
        by_index = df.set_index("index")
        lines = []  # per path: its rows with a growth entry, the largest RF per depth
        for path in rf_paths(a):
            rows = by_index.loc[[i for i in path if i in by_index.index]]
            if len(rows):
                lines.append(rows.loc[rows.groupby("depth", sort=True)["rf"].idxmax()])
        if lines and len(lines[0]):
            main = lines[0]
            fig.add_trace(
                go.Scatter(
                    x=[int(d) for d in main["depth"]],
                    y=[int(v) for v in main["rf"]],
                    name="RF size",
                    mode="lines+markers",
                    line={"color": COLORS["rf"], "width": 2.5},
                    customdata=[plain(n) for n in main["name"]],
                    hovertemplate="depth %{x}: RF %{y} px<br>%{customdata}<extra></extra>",
                ),
                row=1,
                col=1,
            )
        xs: list[int | None] = []
        ys: list[int | None] = []
        names: list[str] = []
        for rows in lines[1:]:
            xs += [int(d) for d in rows["depth"]] + [None]
            ys += [int(v) for v in rows["rf"]] + [None]
            names += [plain(n) for n in rows["name"]] + [""]
        if xs:
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=ys,
                    name="RF size, branches",
                    mode="lines+markers",
                    connectgaps=False,
                    line={"color": rgba(COLORS["rf"], 0.6), "width": 2, "dash": "dash"},
                    marker={"symbol": "diamond"},
                    customdata=names,
                    hovertemplate="depth %{x}: RF %{y} px, branch<br>%{customdata}<extra></extra>",
                ),
                row=1,
                col=1,
            )
        fig.add_trace(
            go.Scatter(
                x=depth,
                y=[int(v) for v in strides],
                name="effective stride",
                mode="lines+markers",
                line={"color": COLORS["stride"], "width": 2, "shape": "hv", "dash": "dot"},
                hovertemplate="depth %{x}: stride %{y} px<extra></extra>",
            ),
            row=2,
            col=1,
        )
        if a.input_spatial:
            side = max(a.input_spatial)
            shapes.append(
                {
                    "type": "line",
                    "xref": "x domain",
                    "yref": "y",
                    "x0": 0,
                    "x1": 1,
                    "y0": side,
                    "y1": side,
                    "line": {"color": COLORS["reference"], "dash": "dot", "width": 1},
                }
            )
            notes.append(
                {
                    "text": f"input {side} px",
                    "xref": "x domain",
                    "yref": "y",
                    "x": 0,
                    "y": side,
                    "xanchor": "left",
                    "yanchor": "bottom",
                    "showarrow": False,
                }
            )
    else:
        notes.append(
            {
                "text": "no spatial receptive field to plot",
                "showarrow": False,
                "x": 0.5,
                "y": 0.5,
                "xref": "paper",
                "yref": "paper",
            }
        )
    stride_color = COLORS["stride"]
    depth_axis = {"tickformat": "d", "dtick": 1 if df["depth"].max() <= 20 else None}
    title = f"{plain(a.model_name)}: receptive field growth"
    # one layout update: each plotly update validates the whole layout again
    return _layout(
        fig,
        title,
        hovermode="x unified",
        shapes=shapes,
        annotations=notes,
        xaxis=depth_axis,
        xaxis2={
            **depth_axis,
            "title": {"text": "Depth (conv/linear layers on the longest path)"},
        },
        yaxis={"title": {"text": "RF size (input px)"}, "rangemode": "tozero"},
        yaxis2={
            "title": {"text": "effective<br>stride (px)", "font": {"color": stride_color}},
            "tickfont": {"color": stride_color},
            "type": "log",
            "dtick": math.log10(2),
            "range": [-0.05, math.log10(top_stride) + 0.1],
        },
    )


# --------------------------------------------------------------------------- one unit


def _rect(rows: tuple[int, int], cols: tuple[int, int], **kw: Any) -> dict[str, Any]:
    """A shape covering inclusive pixel ranges, pixel k spanning [k - 0.5, k + 0.5]."""
    return {
        "type": "rect",
        "x0": cols[0] - 0.5,
        "x1": cols[1] + 0.5,
        "y0": rows[0] - 0.5,
        "y1": rows[1] + 0.5,
        **kw,
    }


def rf_on_input(
    rf: ReceptiveField,
    input_spatial: tuple[int, int] = (224, 224),
    unit: tuple[int, int] = (0, 0),
    show_neighbour: bool = True,
    output_spatial: tuple[int, int] | None = None,
    picture: Any = None,
    picture_uri: str | None = None,
) -> go.Figure:
    """The window that output ``unit`` (row, col) sees, drawn on the input image.

    ``picture`` (an (H, W, 3) uint8 array of the input's size, e.g. from
    :func:`cnnviz.picture.fit`) is drawn under the window, so the field reads as a part of a
    real image; without it the input is a plain rectangle. ``picture_uri`` is that picture
    already encoded by :func:`cnnviz.picture.data_uri` (a page drawing many units of one
    picture encodes it once).

    Pixel k spans ``[k - 0.5, k + 0.5]`` (centres on integers), so a window ``(first, last)``
    from :func:`~cnnviz.compare.unit_view` is the rectangle ``first - 0.5 .. last + 0.5``. Shapes
    are named ``input``, ``receptive field``, ``padding`` (the parts outside the image, one per
    side) and ``neighbour`` (dashed); light grid lines every effective stride mark where the
    units' windows start. The y axis points down, the aspect is equal, and the range includes
    the whole window. ``fig.layout.meta["unit_view"]`` holds the view that was drawn.

    >>> fig = rf_on_input(ReceptiveField((3, 3), (2, 2), (1, 1)), (8, 8), (0, 1))
    >>> rf_shape = [s for s in fig.layout.shapes if s.name == "receptive field"][0]
    >>> rf_shape.y0, rf_shape.y1, rf_shape.x0, rf_shape.x1
    (-1.5, 1.5, 0.5, 3.5)
    >>> [s.name for s in fig.layout.shapes].count("padding")
    1
    """
    view = unit_view(rf, input_spatial, unit, output_spatial)
    height, width = view["input"]
    (r0, r1), (c0, c1) = view["window"]
    (sy, sx), (py, px) = view["stride"], view["padding"]
    shapes: list[dict[str, Any]] = [
        _rect(
            (0, height - 1),
            (0, width - 1),
            name="input",
            layer="below",
            fillcolor=COLORS["input"],
            line={"color": COLORS["reference"], "width": 1},
        ),
    ]
    for i, (rows_n, cols_n) in enumerate(windows(view, show_neighbour)[1:]):
        shapes.append(
            _rect(
                rows_n,
                cols_n,
                name="neighbour",
                fillcolor="rgba(0,0,0,0)",
                line={"color": COLORS["neighbour"], "width": 1.5, "dash": "dash"},
                showlegend=i == 0,
                legendgroup="neighbour",
            )
        )
    pad_style = {
        "name": "padding",
        "fillcolor": COLORS["padding"],
        "opacity": 0.35,
        "line": {"width": 0},
        "legendgroup": "padding",
    }
    for i, (rows, cols) in enumerate(padding_bands(view)):
        shapes.append(_rect(rows, cols, showlegend=i == 0, **pad_style))
    shapes.append(
        _rect(
            (r0, r1),
            (c0, c1),
            name="receptive field",
            fillcolor=rgba(COLORS["rf"], 0.12),
            line={"color": COLORS["rf"], "width": 2.5},
            showlegend=True,
        )
    )

    fig = go.Figure()
    if picture is not None:
        check_picture(picture, view)
        shapes[0]["fillcolor"] = "rgba(0,0,0,0)"  # the picture is the input
        # As a PNG, not as z: the browser then draws one image instead of painting each
        # pixel on every redraw (most of a layer pick's time in the Layer explorer).
        fig.add_trace(
            go.Image(
                source=picture_uri or data_uri(picture),
                x0=0,
                y0=0,
                dx=1,
                dy=1,
                name="input",
                hoverinfo="skip",
            )
        )
    # Grid lines every effective stride, where units' windows start: one trace, not shapes.
    gx = grid_lines(-px, sx, width) if sx else []  # stride 0: all units share the window
    gy = grid_lines(-py, sy, height) if sy else []
    xs: list[float | None] = []
    ys: list[float | None] = []
    for x in gx:
        xs += [x, x, None]
        ys += [-0.5, height - 0.5, None]
    for y in gy:
        xs += [-0.5, width - 0.5, None]
        ys += [y, y, None]
    fig.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            name=f"unit grid (every {sx} px)" if sx and sy else "unit grid",
            hoverinfo="skip",
            line={"color": COLORS["grid"], "width": 0.6},
        )
    )
    cy, cx = view["center"]
    fig.add_trace(
        go.Scatter(
            x=[cx],
            y=[cy],
            mode="markers",
            name="centre",
            marker={"color": COLORS["rf"], "size": 10, "symbol": "x"},
            hovertemplate=(
                f"unit {tuple(view['unit'])}<br>centre (y, x) = ({cy:g}, {cx:g})<br>"
                f"rows {r0}..{r1}, cols {c0}..{c1}<extra></extra>"
            ),
        )
    )
    if show_neighbour:
        nx = rf.center(view["neighbour_w_unit"])[1]
        fig.add_annotation(
            x=nx,
            y=cy,
            ax=cx,
            ay=cy,
            xref="x",
            yref="y",
            axref="x",
            ayref="y",
            text="",
            showarrow=True,
            arrowhead=2,
            arrowwidth=1.5,
            arrowcolor=COLORS["neighbour"],
        )
        fig.add_annotation(
            x=(cx + nx) / 2,
            y=cy,
            text=f"stride {sx} px",
            showarrow=False,
            yshift=-12,
            font={"color": COLORS["neighbour"], "size": 11},
        )
    lo_y, hi_y, lo_x, hi_x = extent(view, show_neighbour)
    fig.update_layout(shapes=shapes, meta={"unit_view": view})
    fig.update_xaxes(
        title_text="x (input pixels)",
        range=[lo_x, hi_x],
        zeroline=False,
        showgrid=False,
        constrain="domain",
    )
    fig.update_yaxes(
        title_text="y (input pixels)",
        range=[hi_y, lo_y],
        zeroline=False,
        showgrid=False,
        scaleanchor="x",
        scaleratio=1,
        constrain="domain",
    )
    (rh, rw) = view["size"]
    # two lines, so that a phone-width chart keeps the whole title
    title = f"Unit {tuple(view['unit'])} sees {rh}x{rw} px<br><sup>{subtitle(view)}</sup>"
    return _layout(fig, title)
