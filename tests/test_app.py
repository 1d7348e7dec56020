"""Every app page under Streamlit's AppTest: drive the widgets, check the numbers shown.

Expected numbers come from torchvision's weights metadata (``num_params``, ``_ops`` GMACs),
exact MACs from ``torch.utils.flop_counter.FlopCounterMode`` / 2, receptive fields from
Araujo et al. (Distill 2019) and torchscan's README table, or from cnnviz.analyze run in the
test as the oracle; the app must show exactly those.
"""

from __future__ import annotations

import pandas as pd
import pytest
from apptest import (  # noqa: F401 (fixtures)
    APP,
    app_on_path,
    clear_caches,
    compare_charts,
    field_figures,
    page,
    spec_editor,
    stack_panel,
)
from streamlit.testing.v1 import AppTest

import cnnviz
from cnnviz import labs, safety, spec, zoo


def text_of(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption]
    parts += [e.value for e in at.error] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# --------------------------------------------------------------------------- compare
def test_compare_defaults_show_reference_counts():
    at = page("compare")
    text = text_of(at)
    # torchvision's weights metadata (num_params); vgg16's MACs by FlopCounterMode / 2
    for count in ("61,100,840", "138,357,544", "6,624,904", "25,557,032", "15,470,264,320"):
        assert count in text
    df = at.dataframe[0].value
    # alexnet and vgg16 `features`: 195 and 212 (torchscan's README; Araujo et al., Distill 2019)
    rf = df["final RF"] if "final RF" in df else df["rf"]
    assert list(map(str, rf))[:2] == ["195", "212"]  # text: "unknown" shares the column
    # the two charts, one HTML block each: a marker per model, a bar per model and stage
    charts = compare_charts(at)
    points = charts["scatter"].iterfind(".//*[@data-name='point']")
    assert [p.get("data-label") for p in points] == list(df["label"])
    bars = charts["stages"].iterfind(".//*[@data-name='bar']")
    vgg16 = [int(b.get("data-value")) for b in bars if b.get("data-label") == "vgg16"]
    assert sum(vgg16) == 15_470_264_320  # its MACs, by FlopCounterMode / 2


def test_compare_options_change_numbers():
    at = page("compare")
    at.multiselect(key="models").set_value(["resnet18"]).run()
    at.selectbox(key="cmp.resnet18.shortcut").set_value("A").run()
    assert not at.exception
    oracle = cnnviz.analyze(
        zoo.get_model("resnet18", shortcut="A", device="meta"), (1, 3, 224, 224)
    )
    assert f"{oracle.total_params:,}" in text_of(at)
    assert "11,689,512" not in text_of(at)  # the B default is gone


def test_compare_one_input_size_for_all():
    at = page("compare", models=["resnet20", "resnet50"])
    at.checkbox(key="same_size").check().run()
    at.number_input(key="cmp_size").set_value(64).run()
    df = at.dataframe[0].value
    assert set(df["input"]) == {"1x3x64x64"}


# --------------------------------------------------------------------------- explorer
def test_explorer_resnet50_rf_and_layer_selection():
    at = page("explorer")
    assert metric(at, "Final RF") == "427x427"  # resnet50 layer4: 427 / 32 / 213 (Distill 2019)
    at.selectbox(key="layer").set_value("layer3.5.relu#3").run()
    assert not at.exception
    # layer3's output: 267 / 16 / 133 (Araujo et al.'s formulas on torchvision's resnet50)
    assert "RF 267x267 (stride 16x16, padding 133x133)" in text_of(at)


def test_explorer_url_state_and_other_model():
    at = page("explorer", model="vgg16")
    assert metric(at, "Parameters") == "138.4M"  # 138,357,544
    assert at.selectbox(key="model").value == "vgg16"


def test_explorer_too_small_input_is_a_message():
    at = page("explorer", model="alexnet", size="32")
    assert at.error and "too small" in at.error[0].value
    assert "features.12" in at.error[0].value
    at.number_input(key="size").set_value(224).run()
    assert not at.error and metric(at, "Parameters") == "61.1M"


def test_explorer_global_and_unknown_layers_explained():
    at = page("explorer", model="resnet18")
    at.selectbox(key="layer").set_value("fc").run()
    assert "whole input" in text_of(at)


# --------------------------------------------------------------------------- RF lab
def test_rf_lab_classic_cases():
    at = page("rf_lab")
    weights = [m.value for m in at.metric if m.label == "weights"]
    # two 3x3 with C=64: 2*9*64*64 = 73,728; three: 3*9*64*64 = 110,592
    assert weights == ["73,728", "110,592"]
    assert [m.value for m in at.metric if m.label == "RF"] == ["5 = 5", "7 = 7"]


def test_rf_lab_sliders():
    at = page("rf_lab")
    at.slider(key="n").set_value(4).run()
    at.select_slider(key="k").set_value(5).run()
    assert not at.exception
    rows = {
        tr.get("data-quantity"): [td.get("data-value") for td in tr.iter("td")]
        for tr in stack_panel(at).iter("tr")
        if tr.get("data-quantity")
    }
    # RF = 1 + n(k-1) = 1 + 4*4 = 17 on both sides; weights n*k*k*C*C = 4*25*64*64
    assert rows["receptive field"] == ["17", "17"] and rows["weights"][0] == "409600"


# --------------------------------------------------------------------------- shortcut lab
def test_shortcut_lab_a_versus_b():
    at = page("shortcut_lab")
    df = at.dataframe[0].value
    total = df[df["stage"] == "total"].iloc[0]
    oracle = {
        s: cnnviz.analyze(
            zoo.get_model("resnet50", shortcut=s, device="meta"), (1, 3, 224, 224)
        ).total_params
        for s in "AB"
    }
    assert total["params_B"] == oracle["B"] == 25_557_032
    assert total["params_B_minus_A"] == oracle["B"] - oracle["A"]
    at.segmented_control(key="shortcut").set_value("A").run()
    assert not at.exception
    assert any("zero" in c.value.lower() for c in at.caption)


def test_shortcut_lab_cifar_depth():
    at = page("shortcut_lab")
    at.selectbox(key="depth").set_value(56).run()
    df = at.dataframe[0].value
    total = df[df["stage"] == "total"].iloc[0]
    oracle = cnnviz.analyze(zoo.get_model("resnet56", device="meta"), (1, 3, 32, 32))
    assert total["params_A"] == oracle.total_params  # option A is the CIFAR default


# --------------------------------------------------------------------------- custom
def test_custom_default_example_and_edit():
    at = page("custom")
    assert not at.error
    text = (
        "input: [1, 3, 32, 32]\nlayers:\n  - conv: {out: 8, kernel: 3}\n  - relu\n"
        "  - flatten\n  - linear: {out: 10}\n"
    )
    spec_editor(at).set_value(text).run()
    # 8*3*3*3 + 8 = 224 conv; 8*30*30*10 + 10 = 72,010 linear
    assert metric(at, "Parameters") == "72.2K"
    assert any(m.label == "Parameters" and "72,234" in (m.help or "") for m in at.metric)


def test_custom_bad_spec_points_at_field():
    at = page("custom")
    bad = "input: [1, 3, 32, 32]\nlayers:\n  - conv: {out: 8, kernel: -1}\n"
    spec_editor(at).set_value(bad).run()
    assert not at.exception
    assert at.error and "layers[0].conv.kernel" in at.error[0].value
    yaml_attack = "!!python/object/apply:os.system ['echo pwned']"
    spec_editor(at).set_value(yaml_attack).run()
    assert not at.exception and at.error


def test_custom_parses_its_text_once_per_text(monkeypatch):
    # the table, the analysis, the downloads and the link all read one parse of the text
    calls: list[str] = []
    real = spec.parse
    monkeypatch.setattr(spec, "parse", lambda text, *a, **k: calls.append(text) or real(text))
    at = page("custom")
    text = "input: [1, 1, 8, 8]\nlayers:\n  - conv: {out: 2, kernel: 3}\n"
    spec_editor(at).set_value(text).run()
    at.run()  # a rerun with the same text parses nothing
    assert not at.exception and metric(at, "Parameters") == "20"  # 2*1*3*3 + 2
    assert calls.count(text) == 1


def test_custom_spec_from_shared_url():
    text = "input: [1, 1, 16, 16]\nlayers:\n  - conv: {out: 4, kernel: 3}\n"
    token = spec.to_url(spec.parse(text))
    at = page("custom", spec=token)
    assert metric(at, "Parameters") == "40"  # 4*1*3*3 + 4


def example_menu(at):
    """The Custom page's example menu (its key changes when it must show another value)."""
    (menu,) = [s for s in at.selectbox if s.label == "Start from an example"]
    return menu


def test_custom_example_picker():
    at = page("custom")
    for name, text in reversed(spec.examples().items()):
        example_menu(at).set_value(name).run()
        assert not at.exception and not at.error, name
        assert spec_editor(at).value == text
        assert example_menu(at).value == name


# --------------------------------------------------------------------------- timing
def test_timing_page_runs_on_cpu():
    at = page("timing", t_models=["resnet20"], t_batches=["1", "4"])
    if not __import__("torch").cuda.is_available():
        assert any("No GPU" in i.value for i in at.info)
    at.slider(key="t_time").set_value(0.2).run()
    at.button(key="t_run").click().run()
    assert not at.exception and not at.error
    df = at.dataframe[0].value
    assert list(df["status"]) == ["ok", "ok"] and list(df["batch_size"]) == [1, 4]
    # throughput is batch / latency (the page shows the library's numbers unchanged)
    for row in df.itertuples():
        assert abs(row.throughput - row.batch_size / (row.latency_ms / 1e3)) < 1e-6 * row.throughput
    assert len(at.get("plotly_chart")) == 2


def test_timing_page_explains_host_bound_rows():
    # A CUDA-style row (host_ms close to the latency) shown by the page: the table keeps the
    # library's columns and the page says what "host" means.
    from cnnviz import timing

    df = timing.benchmark(
        "resnet20", device="cpu", batch_sizes=(1,), dtypes=("float32",), min_run_time=0.05
    )
    df["host_ms"], df["bound"] = df["latency_ms"] * 0.95, "host"
    df["graph_ms"] = df["latency_ms"] * 0.2  # as benchmark(cuda_graph=True) adds it
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("cnnviz_app/pages/timing.py")
    at.session_state["t_results"] = df
    at.run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert list(shown["bound"]) == ["host"] and "host_ms" in shown
    assert list(shown["graph_ms"]) == list(df["graph_ms"])
    assert any("bound by **host**" in i.value and "CUDA graphs" in i.value for i in at.info)
    # graphs need a GPU: the control says so by being off where there is none
    assert at.checkbox(key="t_graph").disabled == (not __import__("torch").cuda.is_available())


def test_timing_page_shows_runs_and_warns_on_unstable_rows():
    # One stable and one unstable row (IQR 30 % of the median): the table shows runs and
    # unstable as the library gives them, and the page warns about the unstable one.
    from cnnviz import timing

    df = timing.benchmark(
        "resnet20", device="cpu", batch_sizes=(1,), dtypes=("float32",), min_run_time=0.05
    )
    df = pd.concat([df, df], ignore_index=True)
    df.loc[0, ["runs", "iqr_ms", "unstable"]] = [20, 0.0, False]
    df.loc[1, ["runs", "iqr_ms", "unstable"]] = [20, 0.3 * df.loc[1, "latency_ms"], True]
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("cnnviz_app/pages/timing.py")
    at.session_state["t_results"] = df
    at.run()
    assert not at.exception
    shown = at.dataframe[0].value
    assert list(shown["runs"]) == [20, 20] and list(shown["unstable"]) == [False, True]
    assert any("1 row(s) are **unstable**" in w.value for w in at.warning)


# --------------------------------------------------------------------------- effective RF
def test_explorer_erf_of_selected_layer():
    at = page("explorer", model="resnet20")
    at.selectbox(key="layer").set_value("layer2.2.relu#2").run()
    at.slider(key="erf_n").set_value(2).run()
    at.button(key="erf_go").click().run()
    assert not at.exception and not at.error
    text = text_of(at)
    assert "`layer2.2.relu#2`: 50 % of the gradient mass within radius" in text
    assert len(at.get("plotly_chart")) == 3  # bars, growth, ERF map
    assert len(field_figures(at)) == 1  # the RF on the input, an SVG picture


def test_a_second_visitor_gets_the_same_erf_from_the_cache():
    # st.cache_data replays a cached call's elements on a hit; a progress bar made outside the
    # cached function and updated inside it cannot be replayed (CacheReplayClosureError), so
    # the second session measuring the same ERF saw an error instead of the map
    for _ in range(2):
        at = page("explorer", model="resnet20")
        at.selectbox(key="layer").set_value("layer2.2.relu#2").run()
        at.slider(key="erf_n").set_value(2).run()
        at.button(key="erf_go").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert "`layer2.2.relu#2`: 50 % of the gradient mass" in text_of(at)
    for _ in range(2):
        at = page("shortcut_lab", erf_depth="20", erf_layer="layer1")
        at.button(key="erf_go").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        assert len([m for m in at.metric if "radius" in m.label]) == 2


def test_explorer_erf_of_a_global_layer_is_a_message():
    # The ERF panel is not rerun by a new layer, so its button cannot follow the layer's RF:
    # on a layer whose units all see the whole input it explains instead of measuring
    at = page("explorer", model="resnet20")
    at.selectbox(key="layer").set_value("fc").run()
    assert not at.button(key="erf_go").disabled
    at.button(key="erf_go").click().run()
    assert not at.exception and not at.error
    assert any("`fc` has no effective RF to measure" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 2  # bars and growth: no ERF map
    assert not field_figures(at) and not at.get("image")  # no unit view


def test_shortcut_lab_erf_plain_vs_residual():
    at = page("shortcut_lab", erf_depth="32")
    at.button(key="erf_go").click().run()
    assert not at.exception
    radii = {m.label: float(m.value.split()[0]) for m in at.metric if "radius" in m.label}
    assert radii["residual (B): 50 % radius"] < radii["plain: 50 % radius"]  # Luo et al. 2016


def test_rf_lab_shows_erf_growth():
    at = page("rf_lab")
    assert any("√n" in c.value for c in at.caption)
    # ERF growth is a Plotly chart; the comparison bars and the RF growing layer by layer are
    # one HTML block, the field on a picture an SVG image in an HTML figure
    assert len(at.get("plotly_chart")) == 1 and not at.get("image")
    assert len(field_figures(at)) == 1
    labels = [e.get("aria-label", "") for e in stack_panel(at).iter()]
    assert any("weights, MACs, non-linearities" in x for x in labels)
    assert any("one output pixel" in x for x in labels)


def test_uploaded_safetensors_bytes(tmp_path):
    from cnnviz_app import caching
    from safetensors.torch import save

    model = zoo.get_model("resnet_cifar", depth=8)
    blob = save({k: v.contiguous() for k, v in model.state_dict().items()})
    m, notes = caching.effective_rf(
        "resnet_cifar", (("depth", 8),), (1, 3, 32, 32), "layer1", 1, blob
    )
    assert m.map.shape == (32, 32) and notes == ()
    with pytest.raises(ValueError, match="not a readable safetensors"):
        caching.effective_rf(
            "resnet_cifar", (("depth", 8),), (1, 3, 32, 32), "layer1", 1, b"garbage"
        )


def test_timing_per_layer_breakdown():
    at = page("timing", t_models=["resnet20"])
    at.button(key="t_layers").click().run()
    assert not at.exception and not at.error
    df = at.dataframe[0].value
    oracle = cnnviz.analyze(zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    assert list(df["name"]) == [r.name for r in oracle.layers if r.is_module]
    assert list(df["macs"]) == [r.macs for r in oracle.layers if r.is_module]


def test_custom_url_follows_the_spec_and_table_applies():
    at = page("custom")
    text = "input: [1, 1, 16, 16]\nlayers:\n  - conv: {out: 4, kernel: 3}\n  - relu\n"
    spec_editor(at).set_value(text).run()
    token = at.query_params["spec"]
    token = token[0] if isinstance(token, list) else token
    assert spec.from_url(token) == spec.parse(spec.dumps(spec.parse(text)))
    at.button(key="apply").click().run()  # the flat spec round-trips through the table
    assert not at.exception and not at.error
    assert metric(at, "Parameters") == "40"  # 4*1*3*3 + 4


def test_zoo_options_from_the_url_are_capped():
    at = page("explorer", model="conv_stack", **{"exp.conv_stack.n": "3000"})
    assert not at.exception
    assert at.number_input(key="exp.conv_stack.n").value <= 32  # INT_CAPS["n"]


# --------------------------------------------------------------------------- explorer state
def _selected_bar(at: AppTest) -> str:
    """The layer whose bar the page's style rule colours (plots.selected_bar_css), checked
    against the bars the figure draws: every one muted, in the order of the chart's x."""
    import json
    import re

    from cnnviz.render.palette import COLORS

    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    bars = fig["data"][0]
    assert set(bars["marker"]["color"]) == {COLORS["muted"]}
    rules = [
        m
        for h in at.get("html")
        for m in re.findall(
            r"\.st-key-bars .*?nth-child\((\d+)\) > path \{fill: (#\w+)", h.proto.body
        )
    ]
    assert len(rules) == 1, rules
    ((index, colour),) = rules
    assert colour == COLORS["selected"]
    return bars["customdata"][int(index) - 1]


def test_shared_explorer_link_highlights_its_layer():
    at = page("explorer", model="vgg16", layer="features.20")
    assert at.selectbox(key="layer").value == "features.20"
    assert _selected_bar(at) == "features.20"  # not the default layer's bar


def test_switching_model_drops_the_old_layer():
    at = page("explorer", model="resnet18", layer="layer3.0.conv1")
    assert at.selectbox(key="layer").value == "layer3.0.conv1"
    at.selectbox(key="model").set_value("alexnet").run()
    assert not at.exception
    layer = at.selectbox(key="layer").value
    assert layer.startswith(("features", "classifier", "avgpool"))
    assert "layer3.0.conv1" not in str(at.query_params.get("layer", ""))
    assert _selected_bar(at) == layer


def test_alexnet_at_64_px_explorer_is_clean():
    # AlexNet at 64 px: features end at 1x1 after a 3x3 max-pool that covers the whole 3x3 map,
    # a global pool: avgpool then repeats one global value (no drawing to fail)
    at = page("explorer", model="alexnet", size="64", layer="avgpool")
    assert not at.error, [e.value for e in at.error]
    assert any("whole input" in i.value for i in at.info)
    assert len(at.dataframe) >= 1  # the all-layers table is still there


def test_unknown_final_rf_says_why():
    at = page("explorer", model="vgg16", size="64")
    final = next(m for m in at.metric if m.label == "Final RF")
    assert final.value == "unknown" and "adaptive_avg_pool2d" in final.help


def test_unit_sliders_start_centred_and_recentre_on_a_new_layer():
    at = page("explorer", model="resnet20", layer="layer1.0.conv1")  # 32x32 output
    assert (at.slider(key="unit_row").value, at.slider(key="unit_col").value) == (15, 15)
    at.slider(key="unit_row").set_value(1).run()
    at.selectbox(key="layer").set_value("layer3.0.conv1").run()  # 8x8 output
    assert not at.exception
    assert (at.slider(key="unit_row").value, at.slider(key="unit_col").value) == (3, 3)


def test_shortcut_lab_cifar_with_bottleneck_falls_back_to_basic():
    at = page("shortcut_lab", depth="20", block="bottleneck")
    assert not at.error, [e.value for e in at.error]
    assert any("basic blocks" in i.value for i in at.info)
    table = at.dataframe[0].value
    oracle = labs.shortcut_stage_table(20, "basic")
    assert table.equals(oracle)


def test_shortcut_lab_erf_of_a_deep_plain_net_is_not_zero():
    # ResNet-110's plain twin: PyTorch's default init would underflow its gradient to 0
    at = page("shortcut_lab", erf_depth="110", erf_layer="layer3")
    at.button(key="erf_go").click().run()
    assert not at.exception and not at.error
    radii = {m.label: float(m.value.split()[0]) for m in at.metric if "radius" in m.label}
    assert radii["plain: 50 % radius"] > 0
    assert any("larger than the input" in w.value for w in at.warning)  # 501x501 > 64x64


def test_custom_example_menu_follows_the_spec_in_the_url():
    ex = spec.examples()
    name = list(ex)[-1]
    at = page("custom", spec=spec.to_url(spec.parse(ex[name])))
    # the editor holds the canonical text of that example; the menu shows it when they match
    text = spec_editor(at).value
    assert spec.validate(spec.parse(text)) == spec.validate(spec.parse(ex[name]))
    assert example_menu(at).value in (name, None)
    spec_editor(at).set_value(ex[name]).run()
    assert example_menu(at).value == name
    spec_editor(at).set_value(ex[name] + "\n# mine\n").run()
    assert example_menu(at).value is None  # the user's own text
    example_menu(at).set_value(name).run()  # the new menu still loads an example
    assert spec_editor(at).value == ex[name]
    assert example_menu(at).value == name


def test_compare_says_why_a_final_rf_is_unknown():
    at = page("compare", same_size="true", cmp_size="64")
    assert not at.exception
    text = text_of(at)
    # VGG16 at 64 px: its 2x2 features map onto adaptive_avg_pool2d's 7x7 unevenly
    assert "vgg16: the final RF is unknown because adaptive_avg_pool2d from 2 to 7" in text


def test_explorer_unit_in_the_url_round_trips_even_at_zero():
    at = page("explorer", model="vgg16", layer="features.10", unit="55,0")
    assert (at.slider(key="unit_row").value, at.slider(key="unit_col").value) == (55, 0)
    at.slider(key="unit_col").set_value(7).run()
    assert at.query_params["unit"] in ("55,7", ["55,7"])


def test_explorer_option_the_model_refuses_is_a_message():
    at = page("explorer", model="conv_stack", **{"exp.conv_stack.kernel_size": "4"})
    assert not at.exception
    assert any("odd" in e.value for e in at.error)


def test_compare_keeps_the_models_that_fit_when_one_does_not():
    # alexnet_paper needs 227 px (the paper's 227x227 input); at one size of 224 it fails
    at = page("compare", models=["alexnet", "alexnet_paper", "resnet50"], same_size="true")
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "Cannot show alexnet_paper" in errors[0]
    df = at.dataframe[0].value
    assert list(df["label"]) == ["alexnet", "resnet50"]


def test_unused_parameters_are_explained():
    # GoogLeNet with aux heads, in eval mode: the heads' weights are in the total, not in rows
    oracle = cnnviz.analyze(zoo.get_model("googlenet", aux_logits=True, device="meta"),
                            (1, 3, 224, 224))  # fmt: skip
    assert oracle.total_params - sum(r.params for r in oracle.layers) == oracle.unused_param_count
    at = page("explorer", model="googlenet", **{"exp.googlenet.aux_logits": "true"})
    assert any(f"{oracle.unused_param_count:,} of the" in c.value for c in at.caption)


def test_explorer_erf_refuses_work_over_the_budget():
    a = cnnviz.analyze(zoo.get_model("vgg19", device="meta"), (1, 3, 512, 512))
    assert 3 * 16 * a.total_macs > safety.ERF_MAX_MACS  # 16 samples of VGG-19 at 512 px
    at = page("explorer", model="vgg19", size="512", erf_n="16")
    assert any("one request may use" in c.value for c in at.caption)
    assert at.button(key="erf_go").disabled  # the measurement cannot start
    assert not at.exception and not at.get("plotly_chart")[3:]  # no ERF map was drawn
