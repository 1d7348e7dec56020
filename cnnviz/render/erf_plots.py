"""Plotly figures for effective receptive fields (no Streamlit import)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from cnnviz.erf import EffectiveRF, sqrt_trend
from cnnviz.render.markup import plain
from cnnviz.render.palette import COLORS, TEMPLATE


def _square(fig: go.Figure, center, half: float, color: str, dash: str, name: str) -> None:
    """The square of half-width ``half`` around ``center`` (pixel k spans k - 0.5 .. k + 0.5,
    so its side is ``2 * half + 1``), and a legend entry of the same line."""
    cy, cx = center
    line = {"color": color, "dash": dash, "width": 2}
    fig.add_shape(
        type="rect",
        x0=cx - half - 0.5,
        x1=cx + half + 0.5,
        y0=cy - half - 0.5,
        y1=cy + half + 0.5,
        line=line,
        name=name,
    )
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=name, line=line))


def erf_heatmap(m: EffectiveRF, title: str | None = None) -> go.Figure:
    """The ERF map over the input, the theoretical RF box, and the 50 % / 95 % squares.

    Each box is named by what it is, with its size in pixels ("95 % of the mass: 15x15 px
    square": the side of the smallest centred square holding 95 % of the map, not a radius).

    >>> import numpy as np, cnnviz
    >>> m = EffectiveRF(np.pad(np.ones((3, 3)), 2), cnnviz.ReceptiveField((5, 5), (1, 1),
    ...                 (2, 2)), "x", (3, 3), (3.0, 3.0), 1)
    >>> len(erf_heatmap(m).layout.shapes)
    3
    """
    z = m.map / m.map.max() if m.map.max() > 0 else m.map
    fig = go.Figure(
        go.Heatmap(
            z=z,
            zmin=0,  # |gradient| >= 0; a zero map reads 0 everywhere, not -0.4..0.4
            zmax=1,
            colorscale="Viridis",
            colorbar={"title": "|∂y/∂x|"},
            hovertemplate="row %{y}, col %{x}<br>%{z:.3f}<extra></extra>",
        )
    )
    (r0, r1), (c0, c1) = m.theoretical.window(m.unit)
    box = f"theoretical RF: {r1 - r0 + 1}x{c1 - c0 + 1} px"
    line = {"color": COLORS["theoretical"], "width": 2}
    fig.add_shape(
        type="rect", x0=c0 - 0.5, x1=c1 + 0.5, y0=r0 - 0.5, y1=r1 + 0.5, line=line, name=box
    )
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=box, line=line))
    # White lines read on the map's dark purples and greens; the legend gets a dark ground
    # too, or its white swatches vanish on a white page.
    for mass, dash in ((0.95, "dash"), (0.5, "dot")):
        side = m.width(mass)
        name = f"{mass * 100:.0f} % of the mass: {side:g}x{side:g} px square"
        _square(fig, m.center, m.radius(mass), "white", dash, name)
    h, w = m.map.shape
    unit = f"unit {m.unit}, {m.n_samples} sample{'' if m.n_samples == 1 else 's'}"
    fig.update_layout(
        template=TEMPLATE,
        height=460,
        # The unit and samples on a second line, as the other figures' subtitles: on one
        # line the title ran past a phone's width and was cut.
        title=plain(title) if title else f"Effective RF of {plain(m.layer)}<br><sup>{unit}</sup>",
        xaxis={
            "range": [min(-0.5, c0 - 1), max(w - 0.5, c1 + 1)],
            "title": "x (input pixels)",
            "constrain": "domain",
        },
        yaxis={
            "range": [max(h - 0.5, r1 + 1), min(-0.5, r0 - 1)],
            "title": "y (input pixels)",
            "scaleanchor": "x",
        },
        legend={
            "orientation": "h",
            "yanchor": "top",
            "y": -0.2,
            "bgcolor": COLORS["ink"],
            "font": {"color": "white"},
            "itemwidth": 40,  # room for a dash and a dot pattern to show
        },
        margin={"t": 60, "b": 40},
    )
    return fig


def erf_growth_plot(df: pd.DataFrame) -> go.Figure:
    """Theoretical RF (linear in n) against the ERF's width (about sqrt(n)), with the fitted
    sqrt trend.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"n": [1, 4], "theoretical": [3, 9], "erf_std": [1.0, 2.0],
    ...                    "erf_width_95": [3, 7]})
    >>> [t.name for t in erf_growth_plot(df).data][:2]
    ['theoretical RF', 'ERF 95 % width']
    """
    c = sqrt_trend(df["n"], df["erf_std"])
    ns = np.linspace(float(df["n"].min()), float(df["n"].max()), 100)
    fig = go.Figure(
        [
            go.Scatter(x=df["n"], y=df["theoretical"], name="theoretical RF", mode="lines+markers"),
            go.Scatter(
                x=df["n"], y=df["erf_width_95"], name="ERF 95 % width", mode="lines+markers"
            ),
            go.Scatter(
                x=df["n"],
                y=df["erf_std"],
                name="ERF std (Luo et al.'s width)",
                mode="markers",
                yaxis="y",
            ),
            go.Scatter(
                x=ns, y=c * np.sqrt(ns), name=f"{c:.2f}·√n", mode="lines", line={"dash": "dash"}
            ),
        ]
    )
    fig.update_layout(
        template=TEMPLATE,
        height=420,
        title="Theoretical RF grows like n, the effective RF like √n",
        xaxis_title="n (stacked 3x3 convs)",
        yaxis_title="pixels",
        margin={"t": 60, "b": 40},
    )
    return fig
