"""Issue #12 on the Timing, Compare and Custom pages: the per-layer table stays in view after
its run, FLOP/s in a unit that reads, human headers and a scroll hint on every table, and
reruns that repeat no work (§1, §3). Wiring by AppTest; the unit choice directly."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from apptest import APP, app_on_path, clear_caches, page, spec_editor  # noqa: F401 (fixtures)
from streamlit.testing.v1 import AppTest

import cnnviz
from cnnviz import zoo
from cnnviz.render import timing_plots


def _headers(table) -> list[str]:
    """The headers a reader sees: a column's configured label, else its name."""
    config = json.loads(table.proto.columns or "{}")
    return [(config.get(c) or {}).get("label") or c for c in table.value.columns]


def _layer_expander(at: AppTest):
    (box,) = [e for e in at.expander if e.label.startswith("Per-layer breakdown")]
    return box


# --------------------------------------------------------------------------- per-layer table
def test_per_layer_table_stays_open_and_in_view_after_its_run():
    at = page("timing", t_models=["resnet20"])
    assert not _layer_expander(at).proto.expanded  # closed until asked for
    at.button(key="t_layers").click().run()
    assert not at.exception and not at.error
    box = _layer_expander(at)
    assert box.proto.expanded  # the click's rerun keeps it open on the new table
    assert len(box.dataframe) == 1
    oracle = cnnviz.analyze(zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    assert list(box.dataframe[0].value["name"]) == [r.name for r in oracle.layers if r.is_module]
    at.run()  # any later rerun (another widget) keeps the table
    box = _layer_expander(at)
    assert box.proto.expanded and len(box.dataframe) == 1


# --------------------------------------------------------------------------- FLOP/s units
@pytest.mark.parametrize(
    ("tflops", "unit", "shown"),
    [
        # a CPU: 2 * 40.55M MACs (resnet20) in 20 ms = 81.1e6 / 0.02 = 4.055e9 FLOP/s
        ([2 * 40.55e6 / 0.02 / 1e12], "GFLOP/s", 2 * 40.55e6 / 0.02 / 1e9),
        # an H200 in bfloat16: 90e12 FLOP/s
        ([90.0, 989.4], "TFLOP/s", 90.0),
        # a tiny net: 2 * 100_000 MACs in 1 ms = 2e8 FLOP/s = 200 MFLOP/s
        ([2 * 100_000 / 1e-3 / 1e12], "MFLOP/s", 200.0),
        # exactly 1 TFLOP/s is the smallest rate read in TFLOP/s
        ([1.0, 0.5], "TFLOP/s", 1.0),
    ],
)
def test_flops_unit_reads_from_the_magnitude(tflops, unit, shown):
    got, scale = timing_plots.flops_unit(tflops)
    assert got == unit
    assert tflops[0] * scale == pytest.approx(shown)


def _cpu_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": ["m"] * 2,
            "device": ["cpu"] * 2,
            "dtype": ["float32"] * 2,
            "batch_size": [1, 8],
            "status": ["ok"] * 2,
            "latency_ms": [50.0, 600.0],
            "iqr_ms": [1.0, 2.0],
            "runs": [20, 20],
            "unstable": [False, False],
            "throughput": [20.0, 13.333],
            "tflops": [0.004, 0.0035],
            "note": ["", ""],
        }
    )


def _timing_with(df: pd.DataFrame) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("cnnviz_app/pages/timing.py")
    at.session_state["t_results"] = df
    at.run()
    assert not at.exception
    return at


def test_timing_table_shows_a_cpu_in_gflops():
    at = _timing_with(_cpu_rows())
    table = at.dataframe[0]
    heads = dict(zip(table.value.columns, _headers(table), strict=True))
    assert heads["tflops"] == "achieved GFLOP/s"
    # 0.004 TFLOP/s = 0.004 * 1000 GFLOP/s
    assert list(table.value["tflops"]) == pytest.approx([0.004 * 1000, 0.0035 * 1000])
    config = json.loads(table.proto.columns)
    assert config["tflops"]["type_config"]["format"] == "%.3g"  # 4, 3.5; not 4.000
    rows = _cpu_rows()
    rows["tflops"] = [90.0, 120.0]
    at = _timing_with(rows)
    heads = _headers(at.dataframe[0])
    assert "achieved TFLOP/s" in heads and list(at.dataframe[0].value["tflops"]) == [90.0, 120.0]


# --------------------------------------------------------------------------- headers, hint
MACHINE_NAMES = {"label", "macs", "rf", "name", "ms", "tflops", "batch_size"}


def _assert_human(at: AppTest) -> int:
    """Every table's headers read as words, each once; wide tables say they scroll. Returns
    the number of tables."""
    hints = [c.value for c in at.caption if "scroll the table sideways" in c.value]
    wide = 0
    for table in at.dataframe:
        heads = _headers(table)
        assert not [h for h in heads if "_" in h], heads  # weighted_depth, conv_params
        assert not MACHINE_NAMES & set(heads), heads
        assert len(set(heads)) == len(heads), heads
        wide += len(heads) > 5
        config = json.loads(table.proto.columns or "{}")
        unlabelled = [c for c in table.value.columns if not (config.get(c) or {}).get("label")]
        assert not unlabelled, "every column has its header set"
    assert len(hints) == wide, (hints, wide)
    return len(at.dataframe)


def test_compare_tables_have_human_headers_and_scroll_hints():
    at = page("compare", models=["resnet20", "resnet56"], train_on="true")
    assert _assert_human(at) == 3  # totals, training step, productivity
    assert any("12 columns" in c.value for c in at.caption)  # the totals


def test_custom_table_has_human_headers():
    at = page("custom")
    heads = _headers(at.dataframe[0])
    assert {"layer", "MACs", "RF", "RF stride"} <= set(heads)
    assert _assert_human(at) == 1


def test_custom_reruns_build_no_figure_again(monkeypatch):
    from cnnviz.render import plots

    calls: list[str] = []
    real = plots.rf_growth_plot

    def counted(*args, **kwargs):
        calls.append("growth")
        return real(*args, **kwargs)

    monkeypatch.setattr(plots, "rf_growth_plot", counted)
    at = page("custom")
    assert calls == ["growth"]
    at.run()  # the same text: nothing to build
    assert calls == ["growth"] and len(at.get("plotly_chart")) == 2
    spec_editor(at).set_value("input: [1, 1, 8, 8]\nlayers:\n  - conv: {out: 2, kernel: 3}\n").run()
    assert calls == ["growth", "growth"]


def test_timing_tables_have_human_headers():
    rows = _cpu_rows()
    rows["peak_memory_bytes"] = [2**20, 3 * 2**20]
    at = _timing_with(rows)
    heads = _headers(at.dataframe[0])
    assert {"batch size", "latency (ms)", "images/s", "peak memory (MiB)"} <= set(heads)
    assert list(at.dataframe[0].value["peak_memory_bytes"]) == [1.0, 3.0]  # MiB
    _assert_human(at)
    at.session_state["t_models"] = ["resnet20"]
    at.run()
    at.button(key="t_layers").click().run()
    assert len(at.dataframe) == 2
    heads = _headers(at.dataframe[1])
    assert heads == ["layer", "time (ms)", "kind", "MACs", "GFLOP/s"]
    _assert_human(at)


# --------------------------------------------------------------------------- no repeated work
def test_compare_reruns_repeat_no_analysis_or_figure(monkeypatch):
    from cnnviz import compare
    from cnnviz.render import compare_html

    calls: list[str] = []

    def counted(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls.append(name)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    for name in ("compare", "stage_table", "productivity_table"):
        counted(compare, name)
    for name in ("scatter_html", "stage_bars_html"):
        counted(compare_html, name)
    at = page("compare", models=["resnet20", "resnet56"])
    assert {"compare", "scatter_html", "stage_bars_html"} <= set(calls)
    calls.clear()
    at.run()  # a rerun that changed nothing
    assert calls == []
    at2 = page("compare", models=["resnet20", "resnet56"])  # another visitor, same models
    assert calls == [] and not at2.exception
    at.multiselect(key="models").set_value(["resnet20"]).run()
    at.multiselect(key="models").set_value(["resnet20", "resnet56"]).run()  # back again
    assert calls.count("scatter_html") == 1  # only the new set of models was drawn
