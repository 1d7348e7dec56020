"""The Layer explorer, issue #12 §1 and §3: parts that change alone rerun alone, nothing is
built twice for the same inputs, and its charts say what they show (stage ticks, the stride in
its own panel, ERF legends naming what is drawn). Figures are read from the chart JSON the page
sends; expected values come from cnnviz.analyze run in the test (stage rows) or arithmetic."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import streamlit as st
from apptest import app_on_path, clear_caches, page  # noqa: F401 (fixtures)
from streamlit.delta_generator import DeltaGenerator
from streamlit.runtime.scriptrunner_utils.script_run_context import ThreadState

import cnnviz
from cnnviz import picture, zoo
from cnnviz.render import plots, rf_svg


def charts(at) -> dict[str, dict]:
    """The page's plotly charts (their JSON) by title."""
    out = {}
    for c in at.get("plotly_chart"):
        spec = json.loads(c.proto.spec)
        title = spec["layout"].get("title", {}).get("text", "")
        out[title] = spec
    return out


def chart(at, words: str) -> dict:
    return next(spec for title, spec in charts(at).items() if words in title)


# --------------------------------------------------------------------------- §1 speed
@pytest.fixture
def fragments(monkeypatch):
    """Which fragment (None: the page itself) each slider and selectbox is drawn in."""
    seen: dict[str, str | None] = {}
    for method in ("slider", "selectbox"):
        real = getattr(DeltaGenerator, method)

        def spy(self, *args, _real=real, **kw):
            seen[kw.get("key")] = ThreadState.get().fragment_id
            return _real(self, *args, **kw)

        monkeypatch.setattr(DeltaGenerator, method, spy)
        # st.selectbox is the main area's method, bound before this test: spy on it too
        monkeypatch.setattr(st, method, lambda *a, _spy=spy, **kw: _spy(st._main, *a, **kw))
    return seen


def test_parts_that_change_alone_are_fragments(fragments):
    page("explorer", model="resnet20", layer="layer1.0.conv1")
    # the model is the page's; the layer, a unit and the ERF each rerun only their part
    assert fragments["model"] is None
    layer, unit, erf = fragments["layer"], fragments["unit_row"], fragments["erf_n"]
    assert None not in (layer, unit, erf)
    assert fragments["unit_col"] == unit
    assert len({layer, unit, erf, fragments["graph_depth"]}) == 4


@pytest.fixture
def builds(monkeypatch):
    """How often each analysis and figure is built (not drawn from a cache)."""
    count: Counter[str] = Counter()

    def counting(module, name):
        real = getattr(module, name)

        def spy(*args, **kw):
            count[name] += 1
            return real(*args, **kw)

        monkeypatch.setattr(module, name, spy)

    counting(cnnviz, "analyze")
    for name in ("layer_bars", "rf_growth_plot", "data_uri"):
        counting(plots, name)
    counting(rf_svg, "rf_on_input_svg")
    counting(picture, "data_uri")  # the page encodes the photo once, not per unit
    return count


def test_a_rerun_builds_only_what_changed(builds):
    at = page("explorer", model="resnet20", layer="layer1.0.conv1")
    builds.clear()
    at.run()  # the same inputs again: nothing is built
    assert not at.exception and sum(builds.values()) == 0
    at.slider(key="unit_row").set_value(3).run()  # one new unit: its window, nothing else
    assert not at.exception
    assert builds == Counter({"rf_on_input_svg": 1})
    builds.clear()
    at.selectbox(key="layer").set_value("layer2.0.conv1").run()  # a new layer: no new bars
    assert not at.exception  # (a style rule moves the highlight: the bar chart stays as it is)
    assert builds["layer_bars"] == builds["analyze"] == builds["rf_growth_plot"] == 0
    builds.clear()
    at.selectbox(key="layer").set_value("layer1.0.conv1").run()  # back: all from the caches
    assert not at.exception
    assert builds["layer_bars"] == builds["analyze"] == builds["rf_growth_plot"] == 0


# --------------------------------------------------------------------------- §3 charts
def test_resnet50_bars_are_labelled_by_stage():
    at = page("explorer", model="resnet50", layer="layer3.0.conv2")
    axis = chart(at, "per layer")["layout"]["xaxis"]
    a = cnnviz.analyze(zoo.get_model("resnet50", device="meta"), (1, 3, 224, 224))
    assert len(a.layers) == 175  # a name under each bar cannot be read
    stage_of = {r.name: r.stage for r in a.layers}
    assert len(axis["tickvals"]) <= 20
    assert [stage_of[v] for v in axis["tickvals"]] == sorted(set(stage_of.values()))
    texts = [t.replace("<br>", "") for t in axis["ticktext"]]
    # conv1 at 224 / 2, then layer1..layer4 at 224 / 4, / 8, / 16, / 32, then the head
    assert texts == [f"{224 // d}x{224 // d}" for d in (2, 4, 8, 16, 32)] + ["head"]


def test_growth_draws_the_stride_in_its_own_panel():
    at = page("explorer", model="resnet50")
    layout = chart(at, "receptive field growth")["layout"]
    stride_axis = layout["yaxis2"]
    assert "overlaying" not in stride_axis
    assert stride_axis["domain"][1] < layout["yaxis"]["domain"][0]
    assert "effective" in stride_axis["title"]["text"]


def test_explorer_erf_legend_names_what_is_drawn():
    at = page("explorer", model="resnet20", layer="layer1.2.conv2", erf_n="1")
    at.button(key="erf_go").click().run()
    assert not at.exception and not at.error
    spec = chart(at, "Effective RF")
    names = [t["name"] for t in spec["data"] if t.get("type") == "scatter"]
    assert not [n for n in names if "r=" in n]
    # layer1.2.conv2 of resnet20: seven 3x3 convs, stride 1: 1 + 7 * (3 - 1) = 15
    assert "theoretical RF: 15x15 px" in names
    squares = [n for n in names if n.endswith("px square")]
    assert [n.split(" of ")[0] for n in squares] == ["95 %", "50 %"]
    boxes = {s["name"]: s for s in spec["layout"]["shapes"]}
    for n in squares:  # the side in the legend is the side of the square drawn
        side = float(n.split(": ")[1].split("x")[0])
        assert boxes[n]["x1"] - boxes[n]["x0"] == side
    assert spec["layout"]["legend"]["bgcolor"] != "white"
