"""cnnviz.render.plots: every figure builds, carries the data it claims, and serializes."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import pytest
import torch.nn as nn

import cnnviz
from cnnviz import compare as C
from cnnviz.receptive import ReceptiveField
from cnnviz.render import palette
from cnnviz.render import plots as P


def _ok(fig: go.Figure) -> dict:
    assert isinstance(fig, go.Figure)
    assert fig.layout.title.text
    # the template is stored resolved; its name is not kept, so compare its content
    assert fig.layout.template == go.Figure(layout_template=palette.TEMPLATE).layout.template
    return json.loads(fig.to_json())


def _shapes(fig: go.Figure, name: str) -> list:
    return [s for s in fig.layout.shapes if s.name == name]


def test_layer_bars(analyses):
    a = analyses["resnet50"]
    names = [r.name for r in a.layers]
    fig = P.layer_bars(a, "macs", selected="layer3.0.conv2")
    _ok(fig)
    (bars,) = fig.data
    assert len(bars.x) == len(a.layers) and list(bars.x) == names
    assert list(bars.customdata) == names  # click selection maps back to the layer
    assert list(bars.y) == [r.macs for r in a.layers]
    i = names.index("layer3.0.conv2")
    assert bars.marker.color[i] == palette.COLORS["selected"]
    assert [c for c in bars.marker.color].count(palette.COLORS["selected"]) == 1
    assert fig.layout.xaxis.categoryarray == tuple(names)
    plain = P.layer_bars(a)
    assert set(plain.data[0].marker.color) == {palette.COLORS["bar"]}
    assert list(plain.data[0].y) == [r.params for r in a.layers]
    assert P.layer_bars(a, log=True).layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="no row named"):
        P.layer_bars(a, selected="layer9")
    with pytest.raises(ValueError, match="unknown metric"):
        P.layer_bars(a, "latency")


def test_rf_growth_plot(analyses):
    a = analyses["resnet50"]
    fig = P.rf_growth_plot(a)
    _ok(fig)
    traces = {t.name: t for t in fig.data}
    rf, stride = traces["RF size"], traces["effective stride"]
    assert "RF size, branches" in traces  # the downsample shortcuts
    assert stride.yaxis == "y2" and rf.yaxis == "y"
    # resnet50's final RF 427, effective stride 32 (Araujo et al., Distill 2019, formulas)
    assert (max(rf.y), max(stride.y)) == (427, 32)
    assert list(rf.x) == sorted(set(C.rf_growth(a)["depth"]))
    assert fig.layout.yaxis2.type == "log"
    empty = P.rf_growth_plot(cnnviz.analyze(nn.Linear(8, 2), (1, 8)))
    assert len(empty.data) == 0 and empty.layout.annotations
    _ok(empty)


def _window_rect(v: dict) -> tuple[float, float, float, float]:
    """unit_view's inclusive window as plot coordinates (pixel k spans k - 0.5 .. k + 0.5)."""
    (r0, r1), (c0, c1) = v["window"]
    return (c0 - 0.5, c1 + 0.5, r0 - 0.5, r1 + 0.5)


def test_rf_on_input_small_case():
    rf = ReceptiveField((3, 3), (2, 2), (1, 1))
    v = C.unit_view(rf, (8, 8), (0, 1))
    fig = P.rf_on_input(rf, (8, 8), (0, 1))
    _ok(fig)
    (box,) = _shapes(fig, "receptive field")
    assert (box.x0, box.x1, box.y0, box.y1) == _window_rect(v) == (0.5, 3.5, -1.5, 1.5)
    (pad,) = _shapes(fig, "padding")  # top side only
    assert (pad.x0, pad.x1, pad.y0, pad.y1) == (0.5, 3.5, -1.5, -0.5)
    (image,) = _shapes(fig, "input")
    assert (image.x0, image.x1, image.y0, image.y1) == (-0.5, 7.5, -0.5, 7.5)
    centre = next(t for t in fig.data if t.name == "centre")
    assert (centre.y[0], centre.x[0]) == v["center"] == (0.0, 2.0)
    nb = _shapes(fig, "neighbour")
    assert len(nb) == 2 and all(s.line.dash == "dash" for s in nb)
    assert {(s.x0, s.y0) for s in nb} == {(2.5, -1.5), (0.5, 0.5)}
    assert fig.layout.meta["unit_view"]["window"] == v["window"]
    # y down, equal aspect, the range holds the part of the window above the image
    y0, y1 = fig.layout.yaxis.range
    assert y0 > y1 and y1 < -1.5
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    # grid lines every effective stride, where unit windows start: -1 + 2k - 0.5
    grid = next(t for t in fig.data if t.name.startswith("unit grid"))
    xs = sorted({x for x in grid.x if x is not None} - {-0.5, 7.5})
    assert xs == [0.5, 2.5, 4.5, 6.5]
    assert len(fig.layout.shapes) < 10  # no shape per pixel
    assert len(_shapes(P.rf_on_input(rf, (8, 8), (0, 1), show_neighbour=False), "neighbour")) == 0


def test_rf_on_input_alexnet_corner(analyses):
    rf = analyses["alexnet"].receptive_field()  # 195 / 32 / 66
    fig = P.rf_on_input(rf, (224, 224), (0, 0), output_spatial=(6, 6))
    _ok(fig)
    v = C.unit_view(rf, (224, 224), (0, 0))
    (box,) = _shapes(fig, "receptive field")
    assert (box.x0, box.x1, box.y0, box.y1) == _window_rect(v) == (-66.5, 128.5, -66.5, 128.5)
    pads = _shapes(fig, "padding")  # top band over the window's width, left band beside image
    area = sum((s.x1 - s.x0) * (s.y1 - s.y0) for s in pads)
    assert area == 195 * 195 - 129 * 129  # the window minus its 129x129 part inside the image
    x0, x1 = fig.layout.xaxis.range
    assert x0 < -66.5 and x1 > 223.5
    assert fig.layout.meta["unit_view"]["output_grid"] == (6, 6)


def test_rf_on_input_rejects_global_and_unknown(analyses):
    last = analyses["resnet50"].layers[-1]
    assert last.rf_global
    with pytest.raises(ValueError, match="global"):
        P.rf_on_input(last.receptive_field, (224, 224), (0, 0))
    with pytest.raises(ValueError, match="unknown"):
        P.rf_on_input(ReceptiveField(None, reason="x"), (224, 224), (0, 0))


def test_one_palette_for_every_figure():
    # colours are named in cnnviz/render/palette.py only; every figure module uses its template
    import re
    from pathlib import Path

    render = Path(P.__file__).parent
    for name in ("plots", "lab_plots", "erf_plots", "timing_plots"):
        source = (render / f"{name}.py").read_text()
        assert not re.findall(r"#[0-9A-Fa-f]{6}\b|#[0-9A-Fa-f]{3}\b", source), name
        assert "plotly_white" not in source and "TEMPLATE" in source, name
    assert palette.TEMPLATE.layout.colorway == palette.SERIES


# --------------------------------------------------------------------------- issue #12 §3
def test_layer_bars_label_resnet50_by_stage(analyses):
    # ResNet-50 has 175 rows: a name under every bar is unreadable, none says nothing
    a = analyses["resnet50"]
    fig = P.layer_bars(a, "macs", selected="layer3.0.conv2")
    axis = fig.layout.xaxis
    assert axis.showticklabels is not False and axis.tickmode == "array"
    assert len(axis.tickvals) <= 20 and len(axis.tickvals) == len(axis.ticktext)
    # one label per stage, from the rows' own stage numbers: the stage's output size
    stage_of = {r.name: r.stage for r in a.layers}
    stages = sorted(set(stage_of.values()))
    assert [stage_of[v] for v in axis.tickvals] == stages
    sizes = {}
    for r in a.layers:  # a stage's size: its first spatial output; the head pools globally
        if r.stage not in sizes and len(r.output_shape or ()) == 4 and not r.rf_global:
            sizes[r.stage] = f"{r.output_shape[2]}x{r.output_shape[3]}"
    texts = [t.replace("<br>", "") for t in axis.ticktext]
    assert texts == [sizes.get(s, "head") for s in stages]
    assert texts[:5] == ["112x112", "56x56", "28x28", "14x14", "7x7"]  # torchvision's stages
    # a line where each stage after the first begins: bar i spans i - 0.5 .. i + 0.5
    names = [r.name for r in a.layers]
    firsts = [names.index(next(n for n in names if stage_of[n] == s)) for s in stages[1:]]
    assert sorted(s.x0 for s in fig.layout.shapes) == [i - 0.5 for i in firsts]
    # the selected bar is named, since the ticks name stages only
    assert any("layer3.0.conv2" in (n.text or "") for n in fig.layout.annotations)
    # a short model keeps a name under every bar
    alex = P.layer_bars(analyses["alexnet"]).layout.xaxis
    assert list(alex.tickvals) == [r.name for r in analyses["alexnet"].layers]


def test_rf_growth_plot_stride_has_its_own_panel(analyses):
    # the stride on a second y axis over the RF's plot read as RF pixels: its own panel now
    fig = P.rf_growth_plot(analyses["resnet50"])
    stride = next(t for t in fig.data if t.name == "effective stride")
    y_rf, y_stride = fig.layout.yaxis, fig.layout.yaxis2
    assert stride.yaxis == "y2" and y_stride.overlaying is None
    lo_rf, hi_rf = y_rf.domain
    lo_st, hi_st = y_stride.domain
    assert hi_st < lo_rf  # below the RF's panel, not over it
    assert hi_st - lo_st < hi_rf - lo_rf  # the smaller panel
    assert "effective" in y_stride.title.text and "stride" in y_stride.title.text
    color = palette.COLORS["stride"]
    assert stride.line.color == y_stride.title.font.color == y_stride.tickfont.color == color
    assert fig.layout.xaxis2.matches == "x" or fig.layout.xaxis.matches == "x2"  # one depth


def test_legends_stand_apart_from_the_plot(analyses):
    # phone width: a legend beside or over the plot area crowds the bars; it lies in a row
    a = analyses["resnet50"]
    rf = a.receptive_field("layer3.0.conv2")
    figs = [
        P.rf_growth_plot(a),
        P.rf_on_input(rf, (224, 224), (5, 5), output_spatial=(14, 14)),
    ]
    for fig in figs:
        assert fig.layout.showlegend is not False
        legend = fig.layout.legend
        assert legend.orientation == "h" and (legend.y < 0 or legend.y > 1), fig.layout.title


def test_selected_bar_css_takes_only_a_class_name_and_an_index(analyses):
    # the scope goes into a <style> element: nothing but a class name may reach it
    for scope, index in (("x} body {display:none", 0), ("bars", -1), ("", 0)):
        with pytest.raises(ValueError):
            P.selected_bar_css(scope, index)
    fig = P.layer_bars(analyses["resnet50"], "macs", muted=True)
    assert set(fig.data[0].marker.color) == {palette.COLORS["muted"]}
    assert not fig.layout.annotations  # no name above a bar: the page marks its own
