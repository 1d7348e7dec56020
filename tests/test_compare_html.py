"""cnnviz.render.compare_html: the Compare page's charts carry the library's numbers, in the
models' own colours, as well-formed markup. Expected values come from the analyses and the
stage tables (cnnviz.compare) or from arithmetic."""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET

import pandas as pd
import pytest
import torch.nn as nn
from conftest import CLASSIC as NAMES

import cnnviz
from cnnviz import compare as C
from cnnviz import fmt
from cnnviz.render import compare_html as H
from cnnviz.render import palette


def _named(root: ET.Element, name: str) -> list[ET.Element]:
    return list(root.iterfind(f".//*[@data-name='{name}']"))


def _percent(el: ET.Element, prop: str) -> float:
    """A ``prop: 12.5%`` value of an element's inline style."""
    style = dict(p.split(": ", 1) for p in el.get("style").split("; "))
    return float(style[prop].rstrip("%"))


def test_scatter_shows_each_models_counts(analyses):
    root = ET.fromstring(H.scatter_html(C.compare(analyses), "a note"))
    points = _named(root, "point")
    assert [p.get("data-label") for p in points] == list(NAMES)
    for p in points:
        a = analyses[p.get("data-label")]
        assert int(p.get("data-params")) == a.total_params
        assert int(p.get("data-macs")) == a.total_macs
        tip = p.get("title")  # the exact counts on hover, with the compact ones
        assert f"{a.total_params:,}" in tip and fmt.compact(a.total_macs) in tip
    # alexnet and vgg16 `features`: 195 and 212 (torchscan's README; Araujo et al.)
    assert [p.get("data-rf") for p in points[:2]] == ["195", "212"]
    sizes = {p.get("data-label"): float(p.get("data-size")) for p in points}
    assert sizes["resnet50"] == H.MARKER[1]  # the largest final RF (427) gets the largest
    assert sizes["alexnet"] < sizes["vgg16"] < sizes["googlenet"] < sizes["resnet50"]
    assert len({p.get("data-color") for p in points}) == 4
    assert [t.text for t in _named(root, "label")] == list(NAMES)
    assert _named(root, "note")[0].text == "a note"


def test_scatter_axes_are_logarithmic(analyses):
    # on a log axis a marker's place is affine in log10 of its value: the same slope for
    # every pair of models
    root = ET.fromstring(H.scatter_html(C.compare(analyses)))
    points = _named(root, "point")
    for attr, prop in (("data-params", "left"), ("data-macs", "bottom")):
        at = [(math.log10(int(p.get(attr))), _percent(p, prop)) for p in points]
        slopes = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(at)]
        assert max(slopes) == pytest.approx(min(slopes), rel=1e-3) and slopes[0] > 0


def test_scatter_unknown_rf_gets_the_smallest_marker():
    a = cnnviz.analyze(nn.Linear(8, 2), (1, 8))
    (point,) = _named(ET.fromstring(H.scatter_html(C.compare({"mlp": a}))), "point")
    assert float(point.get("data-size")) == H.MARKER[0]


def test_stage_bars_show_each_stage_table(analyses):
    tables = {k: C.stage_table(a) for k, a in analyses.items()}
    root = ET.fromstring(H.stage_bars_html(tables))
    bars = _named(root, "bar")
    for label, t in tables.items():
        mine = [b for b in bars if b.get("data-label") == label]
        assert [int(b.get("data-value")) for b in mine] == t["macs"].tolist()
        assert sum(int(b.get("data-value")) for b in mine) == analyses[label].total_macs
        assert [b.get("data-stage") for b in mine] == list(t["scale"])  # by resolution
    # one heading per resolution, the head last: AlexNet's 55x55 and ResNet-50's 56x56
    # stages are both 1/4 of 224
    stages = [s.get("data-stage") for s in _named(root, "stage")]
    assert stages[-1] == "head" and len(stages) == len(set(stages))
    quarter = {b.get("data-label") for b in bars if b.get("data-stage") == "1/4"}
    assert {"alexnet", "resnet50"} <= quarter
    params = ET.fromstring(H.stage_bars_html(tables, "params"))
    mine = [b for b in _named(params, "bar") if b.get("data-label") == "resnet50"]
    assert [int(b.get("data-value")) for b in mine] == tables["resnet50"]["params"].tolist()
    with pytest.raises(ValueError, match="unknown metric"):
        H.stage_bars_html(tables, "latency")


def test_stage_bar_lengths_linear_and_log(analyses):
    tables = {k: C.stage_table(a) for k, a in analyses.items()}
    linear = ET.fromstring(H.stage_bars_html(tables))
    (grid,) = _named(linear, "bars")
    assert grid.get("data-scale") == "linear"
    bars = _named(linear, "bar")
    top = max(int(b.get("data-value")) for b in bars)
    for b in bars:  # value / max of the row's share
        want = int(b.get("data-value")) / top * H.BAR_SHARE
        assert _percent(b, "width") == pytest.approx(want, abs=1e-3)
    log = ET.fromstring(H.stage_bars_html(tables, log=True))
    assert _named(log, "bars")[0].get("data-scale") == "log"
    at = [(int(b.get("data-value")), _percent(b, "width")) for b in _named(log, "bar")]
    positive = sorted((v, w) for v, w in at if v > 0)
    assert positive[0][1] > 0  # the smallest bar stays visible
    assert max(w for _, w in at) == pytest.approx(H.BAR_SHARE)
    # affine in log10: the same slope between any two values
    (v0, w0), (v1, w1) = positive[0], positive[-1]
    slope = (w1 - w0) / math.log10(v1 / v0)
    for v, w in positive:
        assert w == pytest.approx(w0 + slope * math.log10(v / v0), abs=1e-2)
    assert all(w == 0 for v, w in at if v == 0)


def test_stage_bars_number_a_second_stage_at_one_scale():
    # a second stage at the input's size (a net that pools, then upsamples back): "1 (2)"
    t = C.stage_table(cnnviz.analyze(nn.Conv2d(1, 1, 3, padding=1), (1, 1, 8, 8)))
    t = pd.concat([t, t.iloc[[0]]], ignore_index=True)
    root = ET.fromstring(H.stage_bars_html({"m": t}))
    assert [s.get("data-stage") for s in _named(root, "stage")] == ["1", "1 (2)"]


def test_a_model_keeps_its_colour_on_both_charts():
    a = {
        n: cnnviz.analyze(cnnviz.zoo.get_model(n, device="meta"), (1, 3, 32, 32))
        for n in ("resnet20", "resnet56", "plain20")
    }

    def colours(names):
        sub = {n: a[n] for n in names}
        scatter = ET.fromstring(H.scatter_html(C.compare(sub)))
        bars = ET.fromstring(H.stage_bars_html({n: C.stage_table(x) for n, x in sub.items()}))
        dots = {p.get("data-label"): p.get("data-color") for p in _named(scatter, "point")}
        assert dots == {b.get("data-label"): b.get("data-color") for b in _named(bars, "bar")}
        return dots

    alone = colours(["resnet56"])
    assert alone["resnet56"] in palette.SERIES
    assert colours(["resnet20", "resnet56"])["resnet56"] == alone["resnet56"]
    assert colours(["plain20", "resnet20", "resnet56"])["resnet56"] == alone["resnet56"]
    # two variants of one model still get two colours
    both = H.scatter_html(C.compare({"resnet20": a["resnet20"], "resnet20 x": a["resnet20"]}))
    assert len({p.get("data-color") for p in _named(ET.fromstring(both), "point")}) == 2


def test_labels_of_nearby_points_do_not_sit_on_each_other():
    # one model twice: both markers at one place; their labels stack, a line apart
    a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    root = ET.fromstring(H.scatter_html(C.compare({"a": a, "b": a, "c": a})))
    heights = sorted(
        float(dict(p.split(": ", 1) for p in s.get("style").split("; "))["bottom"][:-2])
        for s in _named(root, "label")
    )
    assert [b - a for a, b in itertools.pairwise(heights)] == [16.0, 16.0]


def test_a_label_keeps_to_the_room_on_its_side(analyses):
    # a label right of its marker may take what is left of the plot's width right of it,
    # one left of it what is left of it: never past the plot's edge, however long
    df = C.compare(analyses)
    df.loc[0, "label"] = "alexnet " + "x" * 200
    root = ET.fromstring(H.scatter_html(df))
    for point, label in zip(_named(root, "point"), _named(root, "label"), strict=True):
        style = dict(p.split(": ", 1) for p in label.get("style").split("; "))
        x, d = _percent(point, "left"), float(point.get("data-size"))
        room = f"{round(100 - x, 3):g}%" if "left" in style else f"{x:g}%"
        assert style["max-width"] == f"calc({room} - {d / 2 + 4:g}px)"
        assert style["overflow"] == "hidden" and style["text-overflow"] == "ellipsis"
        assert point.get("data-label") in label.get("title")  # the whole name on hover
