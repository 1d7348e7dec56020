"""Charts that teach: branch growth, log-scale stage bars, stable model colours, readable
timing axes (issue #12 §3, §5). Figures are checked directly on cnnviz.render; wiring by
AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import streamlit as st
import yaml
from apptest import compare_charts
from streamlit.testing.v1 import AppTest

import cnnviz
from cnnviz import spec
from cnnviz.render import plots

EXAMPLES = Path(cnnviz.__file__).parent / "examples"
APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


@pytest.fixture(autouse=True, scope="module")
def _app_on_path():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(Path(APP).parent))
        yield


@pytest.fixture(autouse=True)
def _clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


def page(name: str, **query) -> AppTest:
    """As tests/test_app.py's helper: open a page with URL query values."""
    at = AppTest.from_file(APP, default_timeout=90)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(f"cnnviz_app/pages/{name}.py")
    at.run()
    if query:
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _example(name: str):
    m = spec.build(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()))
    return cnnviz.analyze(m, m.default_input_size)


# --------------------------------------------------------------------------- item 1
def test_rf_growth_shows_each_branch():
    # two 3x3 convs grow 3 -> 5; the single 5x5 beside them is 5 at depth 1 (the example's
    # whole point); the largest-per-depth curve showed a flat 5 and hid the stacked pair.
    fig = plots.rf_growth_plot(_example("two_3x3_vs_5x5"))
    by_name = {t.name: t for t in fig.data}
    main = by_name["RF size"]
    assert (list(main.x), list(main.y)) == ([1, 2], [3, 5])
    side = by_name["RF size, branches"]
    points = [(x, y) for x, y in zip(side.x, side.y, strict=True) if x is not None]
    assert (1, 5) in points and (2, 5) in points  # the 5x5 branch, joining the concat
    assert "single_5x5" in " ".join(str(c) for c in side.customdata)


# --------------------------------------------------------------------------- item 2
def test_stage_bars_log_scale_from_the_url():
    at = page("compare", models=["resnet20", "resnet56"], stage_log="true")
    assert at.checkbox(key="stage_log").value
    (bars,) = compare_charts(at)["stages"].iterfind(".//*[@data-name='bars']")
    assert bars.get("data-scale") == "log"
    at.checkbox(key="stage_log").uncheck().run()
    (bars,) = compare_charts(at)["stages"].iterfind(".//*[@data-name='bars']")
    assert bars.get("data-scale") == "linear"


# --------------------------------------------------------------------------- item 3
def test_a_model_keeps_its_colour_on_the_page():
    # the library's side: tests/test_compare_html.py; here, both charts as the page sends them
    def colours(at):
        charts = compare_charts(at)
        dots = {
            p.get("data-label"): p.get("data-color")
            for p in charts["scatter"].iterfind(".//*[@data-name='point']")
        }
        bars = charts["stages"].iterfind(".//*[@data-name='bar']")
        assert dots == {b.get("data-label"): b.get("data-color") for b in bars}
        return dots

    alone = colours(page("compare", models=["resnet56"]))
    both = colours(page("compare", models=["plain20", "resnet56"]))
    assert both["resnet56"] == alone["resnet56"] != both["plain20"]


# --------------------------------------------------------------------------- item 4
def _cpu_results():
    import pandas as pd

    return pd.DataFrame(
        {
            "model": ["m"] * 3,
            "device": ["cpu"] * 3,
            "dtype": ["float32"] * 3,
            "batch_size": [1, 8, 64],
            "latency_ms": [50.0, 600.0, 5000.0],
            "iqr_ms": [1.0, 2.0, 3.0],
            "throughput": [20.0, 13.333, 12.8],
            "tflops": [0.004, 0.0035, 0.0033],
            "status": ["ok"] * 3,
        }
    )


def test_timing_axes_read_plainly():
    from cnnviz.render import timing_plots

    df = _cpu_results()
    fmt = timing_plots.latency_plot(df).layout.yaxis.tickformat
    # d3: "~r" rounds to significant digits without an exponent (no "5e+3")
    assert "e" not in fmt and "r" in fmt
    tf = timing_plots.tflops_plot(df)
    assert tf.layout.yaxis.title.text == "GFLOP/s"  # 0.004 TFLOP/s reads 4 GFLOP/s
    assert max(tf.data[0].y) == pytest.approx(4.0)
    df["tflops"] = [90.0, 100.0, 120.0]
    assert timing_plots.tflops_plot(df).layout.yaxis.title.text == "TFLOP/s"


def test_timing_table_shows_throughput_to_three_digits():
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("cnnviz_app/pages/timing.py")
    df = _cpu_results()
    df["throughput"] = [1.2345, 13.333, 0.4567]
    at.session_state["t_results"] = df
    at.run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert list(shown["throughput"]) == [1.2345, 13.333, 0.4567]  # the numbers stay exact
    # shown with 3 significant digits: Streamlit's sprintf-js "%g" is x.toPrecision(3)
    config = json.loads(at.dataframe[0].proto.columns)
    assert config["throughput"]["type_config"]["format"] == "%.3g"


# --------------------------------------------------------------------------- item 5
def test_the_mode_bar_stands_beside_the_title_not_over_it():
    # Plotly's toolbar lies horizontally across the top right, over a title on a narrow
    # chart; standing upright at the right edge it leaves the title line free.
    from cnnviz.render import palette, timing_plots

    a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    figs = [
        plots.rf_growth_plot(a),
        plots.layer_bars(a),
        timing_plots.tflops_plot(_cpu_results()),
    ]
    assert palette.TEMPLATE.layout.modebar.orientation == "v"
    for fig in figs:
        assert fig.layout.template.layout.modebar.orientation == "v"


# --------------------------------------------------------------------------- item 6
def _headers(at: AppTest, i: int) -> list[str]:
    """The headers a reader sees: a column's configured label, else its name."""
    df = at.dataframe[i].value
    config = json.loads(at.dataframe[i].proto.columns or "{}")
    return [(config.get(c) or {}).get("label") or c for c in df.columns]


def test_tables_have_human_headers():
    at = page("compare", models=["resnet20"])
    heads = _headers(at, 0)
    assert not [h for h in heads if "_" in h], heads  # weighted_depth, conv_params ...
    assert len(set(heads)) == len(heads)
    assert "final RF" in heads
    at = page("shortcut_lab")
    heads = _headers(at, 0)
    assert not [h for h in heads if "_" in h], heads  # params_A_minus_none
    assert len(set(heads)) == len(heads)


# --------------------------------------------------------------------------- item 7
def _captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def test_picked_models_are_explained_where_they_are_picked():
    from cnnviz import zoo

    at = page("compare", models=["conv_stack", "plain20"])
    text = _captions(at)
    for name in ("conv_stack", "plain20"):
        info = zoo.model_info(name)
        assert info.description in text and info.paper in text
    at = page("explorer", model="resnet_cifar")
    info = zoo.model_info("resnet_cifar")
    assert info.description in _captions(at) and info.paper in _captions(at)


def test_timing_explains_the_picked_models():
    from cnnviz import zoo

    at = page("timing", t_models=["plain20"])
    info = zoo.model_info("plain20")
    assert info.description in _captions(at) and info.paper in _captions(at)
