"""Plotly figures for :func:`cnnviz.timing.benchmark` results (no Streamlit import)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from cnnviz.render.palette import TEMPLATE


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "ok"] if "status" in df else df


def _series(df: pd.DataFrame):
    keys = ["model", "device", "dtype"]
    for key, group in _ok(df).groupby(keys, sort=False):
        yield " / ".join(map(str, key)), group.sort_values("batch_size")


def latency_plot(df: pd.DataFrame) -> go.Figure:
    """Median latency (with its spread) against batch size, one line per model/device/dtype.

    >>> import pandas as pd
    >>> df = pd.DataFrame({"model": ["m", "m"], "device": ["cpu"] * 2, "dtype": ["float32"] * 2,
    ...                    "batch_size": [1, 8], "latency_ms": [1.0, 5.0], "iqr_ms": [0.1, 0.2],
    ...                    "status": ["ok", "ok"]})
    >>> len(latency_plot(df).data)
    1
    """
    fig = go.Figure()
    for name, g in _series(df):
        fig.add_trace(
            go.Scatter(
                x=g["batch_size"],
                y=g["latency_ms"],
                name=name,
                mode="lines+markers",
                error_y={"type": "data", "array": g["iqr_ms"] / 2, "visible": True},
                hovertemplate="batch %{x}<br>%{y:.3f} ms<extra>" + name + "</extra>",
            )
        )
    fig.update_layout(
        template=TEMPLATE,
        title="Latency against batch size",
        xaxis_title="batch size",
        yaxis_title="median latency (ms)",
        xaxis_type="log",
        yaxis_type="log",
        # ticks at the batch sizes timed, and labelled latencies (not bare digits 2..9)
        xaxis={"tickvals": sorted(_ok(df)["batch_size"].unique().tolist())},
        # ",.3~r": 3 significant digits without an exponent (5,000, not 5e+3)
        yaxis={"tickformat": ",.3~r", "dtick": "D2"},
        legend_title="model / device / dtype",
        height=420,
        margin={"t": 60, "b": 40},
    )
    return fig


#: FLOP/s units, largest first: (name, TFLOP/s in one of them).
FLOPS_UNITS = (("TFLOP/s", 1.0), ("GFLOP/s", 1e-3), ("MFLOP/s", 1e-6))


def flops_unit(*columns: Iterable[Any]) -> tuple[str, float]:
    """The FLOP/s unit that reads best for rates given in TFLOP/s (columns of numbers; missing
    values are skipped): the largest unit in which the largest rate is at least 1, and the
    factor that converts TFLOP/s into it. A CPU's 0.004 TFLOP/s reads 4 GFLOP/s.

    >>> flops_unit([0.004, 0.0035]), flops_unit([90.0], [989.4, None]), flops_unit([2e-4])
    (('GFLOP/s', 1000.0), ('TFLOP/s', 1.0), ('MFLOP/s', 1000000.0))
    >>> flops_unit([]), flops_unit([float("nan")]), flops_unit([0.9995])
    (('TFLOP/s', 1.0), ('TFLOP/s', 1.0), ('GFLOP/s', 1000.0))
    """
    known = [float(v) for c in columns for v in c if v is not None and not math.isnan(float(v))]
    top = max(known, default=0.0)
    for unit, size in FLOPS_UNITS:
        if top >= size:
            return unit, 1 / size
    unit, size = FLOPS_UNITS[-1] if top > 0 else FLOPS_UNITS[0]
    return unit, 1 / size


def tflops_plot(df: pd.DataFrame) -> go.Figure:
    """Achieved TFLOP/s per configuration, with the device's peak where known; in GFLOP/s
    when every value is below 1 TFLOP/s (a CPU's 0.004 TFLOP/s reads 4 GFLOP/s).

    >>> import pandas as pd
    >>> df = pd.DataFrame({"model": ["m"], "device": ["cuda"], "dtype": ["bfloat16"],
    ...                    "batch_size": [64], "tflops": [90.0], "peak_tflops": [989.4],
    ...                    "status": ["ok"]})
    >>> [t.type for t in tflops_plot(df).data]
    ['bar', 'scatter']
    """
    ok = _ok(df)
    unit, scale = flops_unit(ok["tflops"], ok.get("peak_tflops", []))
    fig = go.Figure()
    for name, g in _series(ok):
        fig.add_trace(
            go.Bar(
                x=[f"batch {b}" for b in g["batch_size"]],
                y=g["tflops"] * scale,
                name=name,
                hovertemplate="%{y:.3~r} " + unit + "<extra>" + name + "</extra>",
            )
        )
    if "peak_tflops" in ok and ok["peak_tflops"].notna().any():
        for dtype, g in ok[ok["peak_tflops"].notna()].groupby("dtype"):
            peak = float(g["peak_tflops"].iloc[0]) * scale
            fig.add_trace(
                go.Scatter(
                    x=[f"batch {b}" for b in sorted(ok["batch_size"].unique())],
                    y=[peak] * ok["batch_size"].nunique(),
                    mode="lines",
                    name=f"peak ({dtype})",
                    line={"dash": "dash"},
                )
            )
    fig.update_layout(
        template=TEMPLATE,
        barmode="group",
        height=420,
        title=f"Achieved {unit} (counted FLOPs / measured latency)",
        yaxis_title=unit,
        yaxis_tickformat=",.3~r",
        legend_title="model / device / dtype",
        margin={"t": 60, "b": 40},
    )
    return fig
