"""The RF lab and the shortcut lab, issue #12 §3 and §5: readable comparison bars, MACs on
the classic cases, k up to 11 and n up to 16, a note when the RF exceeds the input, the
blocks a ResNet-50+ really uses, an "add" label that fits a phone, the picked net explained.

Figures are checked on cnnviz.render.lab_plots directly, the RF lab's HTML comparisons
(cnnviz.render.lab_html) as the page sends them; wiring by AppTest. Expected numbers
are written as the arithmetic that gives them or come from cnnviz.analyze.
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET

import pytest
import torch
from apptest import APP, app_on_path, clear_caches, page, stack_panel  # noqa: F401
from streamlit.testing.v1 import AppTest
from torch.utils.flop_counter import FlopCounterMode

import cnnviz
from cnnviz import fmt, labs, zoo
from cnnviz.render import block_svg, lab_html, lab_plots

PHONE = 400  # px, the narrow viewport of the issue (400x800)
SVG = "{http://www.w3.org/2000/svg}"
PAGE_PAD = 2 * 16  # Streamlit's padding left and right of the main column on a phone


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _axes(layout: dict, prefix: str) -> dict[str, dict]:
    return {k: v for k, v in layout.items() if re.fullmatch(prefix + r"\d*", k)}


# --------------------------------------------------------------------------- RF lab: bars
def _lab_html(at: AppTest, what: str) -> ET.Element:
    """The part of the RF lab's stack panel whose accessible name contains ``what``."""
    for e in stack_panel(at).iter():
        if what in e.get("aria-label", ""):
            return e
    raise AssertionError(f"no part of the stack panel named {what!r}")


def _stack_row(at: AppTest, quantity: str) -> list[str]:
    """A row of the stack panel's table: its cells' exact values, stack then single conv."""
    (row,) = [e for e in stack_panel(at).iter("tr") if e.get("data-quantity") == quantity]
    return [td.get("data-value") for td in row.iter("td")]


def _named(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if e.get("data-name") == name]


def _px(style: str, prop: str) -> float:
    return float(re.search(rf"(?:^|;)\s*{prop}:\s*([\d.]+)", style).group(1))


def test_rf_lab_comparison_subplots_do_not_crowd_each_other():
    at = page("rf_lab", n="4", k="5")
    root = _lab_html(at, "weights, MACs, non-linearities")
    # one metric per block, each bar on a row of its own: no metric's labels over another's
    assert [m.text for m in _named(root, "metric")] == ["Weights", "MACs", "Non-linearities"]
    assert len(_named(root, "bar")) == len(_named(root, "name")) == 6
    # the labels are readable (>= 12 px, the block's font) and the longer bar leaves room
    # for its value: its length is a share of the row, not all of it
    assert _px(root.get("style"), "font-size") >= 12
    widths = [_px(b.get("style"), "width") for b in _named(root, "bar")]
    assert max(widths) <= 100 / 1.3
    lab = labs.rf_lab(4, 5)
    weights = [4 * 5 * 5 * 64 * 64, 17 * 17 * 64 * 64]  # n*k*k*C*C vs K*K*C*C, K = 1 + 4*4
    bars = [int(b.get("data-value")) for b in _named(root, "bar")]
    assert bars[:2] == weights == [lab.stack.weights, lab.single.weights]
    assert bars[2:4] == [lab.stack.macs, lab.single.macs] and bars[4:] == [4, 1]
    # lengths in proportion to the values within each metric
    pairs = zip(bars[::2], bars[1::2], widths[::2], widths[1::2], strict=True)
    for a, b, wa, wb in pairs:
        assert wa / wb == pytest.approx(a / b, rel=1e-3)
    assert [v.text for v in _named(root, "value")][:2] == [fmt.count(w) for w in weights]


def test_rf_lab_draws_each_convs_field_on_one_scale_beside_the_single_kernel():
    at = page("rf_lab", n="3", k="3", d="2")
    root = _lab_html(at, "Receptive field of one output pixel")
    stack, single = (
        ET.fromstring(base64.b64decode(i.get("src").split("base64,")[1]))
        for i in _named(root, "squares")
    )
    lab = labs.rf_lab(3, 3, dilation=2)
    # dilation 2: each 3x3 conv adds (3 - 1) * 2 = 4 pixels: 1, 5, 9, 13
    rfs = sorted(int(r.get("data-rf")) for r in stack.iter(f"{SVG}rect") if r.get("data-rf"))
    assert rfs == [1, 5, 9, 13] == sorted(s.rf for s in lab.steps)
    # both pictures over the same pixels, so their squares compare at one scale
    assert stack.get("viewBox") == single.get("viewBox")
    (big,) = [r for r in single.iter(f"{SVG}rect") if r.get("data-name") == "single"]
    assert big.get("width") == "13" == str(lab.single.rf)
    # the stack reads 1 pixel in 2 per axis: taps at -6, -4, ..., 6, 7 x 7 of them
    assert len(list(stack.iter(f"{SVG}circle"))) == 7 * 7
    legend = " ".join("".join(e.itertext()) for e in _named(root, "legend"))
    assert "conv 3 (3x3): RF 13x13, stride 1" in legend and "1 in 2 per axis" in legend


# --------------------------------------------------------------------------- RF lab: MACs
def test_rf_lab_classic_cases_show_macs():
    at = page("rf_lab")
    macs = [(m.value, m.delta) for m in at.metric if m.label == "MACs"]
    # same padding on 32x32, C = 64: n*k*k*C*C*H*W against K*K*C*C*H*W
    two, five = 2 * 3 * 3 * 64 * 64 * 32 * 32, 5 * 5 * 64 * 64 * 32 * 32
    three, seven = 3 * 3 * 3 * 64 * 64 * 32 * 32, 7 * 7 * 64 * 64 * 32 * 32
    assert macs == [
        (fmt.count(two), f"{fmt.count(two - five)} vs {fmt.count(five)}"),
        (fmt.count(three), f"{fmt.count(three - seven)} vs {fmt.count(seven)}"),
    ]
    with FlopCounterMode(display=False) as count:  # torch's own count: 2 FLOPs per MAC
        zoo.conv_stack(2, 3, 64)(torch.zeros(1, 64, 32, 32))
    assert count.get_total_flops() == 2 * two


# --------------------------------------------------------------------------- RF lab: ranges
def test_rf_lab_options_reach_alexnets_kernel_and_sixteen_layers():
    o = labs.valid_rf_lab_options()
    assert o.kernel_sizes == (1, 3, 5, 7, 9, 11) and o.n == (1, 16)
    lab = labs.rf_lab(16, 11)
    assert lab.stack.rf == 1 + 16 * (11 - 1)
    assert lab.stack.weights == 16 * 11 * 11 * 64 * 64
    assert lab.stack.macs == 16 * 11 * 11 * 64 * 64 * 32 * 32  # same padding, 32x32 input
    at = page("rf_lab", n="16", k="11")
    assert at.slider(key="n").value == 16 and at.select_slider(key="k").value == 11
    assert _stack_row(at, "receptive field") == [str(1 + 16 * 10)] * 2


def test_rf_lab_caps_strided_stacks_with_a_message():
    with pytest.raises(ValueError, match="65536x65536"):  # 2**16
        labs.rf_lab(16, 3, stride=2)
    at = page("rf_lab", n="16", s="2")
    assert not at.error
    note = " ".join(w.value for w in at.warning)
    assert "n stops at 8" in note and "65,536x65,536" in note
    # n = 8, stride 2: 1 + (3-1)*(1 + 2 + ... + 2^7) = 1 + 2*255
    assert _stack_row(at, "receptive field") == [str(1 + 2 * 255)] * 2


# --------------------------------------------------------------------------- RF lab: RF > input
def test_rf_lab_says_when_the_rf_exceeds_the_input_beside_the_bars():
    at = page("rf_lab", n="16")  # RF 1 + 16*(3-1) = 33 on the lab's 32x32 input
    panel = stack_panel(at)
    # the note sits in the same half of the panel as the bars, right below them
    (half,) = [e for e in panel.iter("div") if any(c.get("data-name") == "bars" for c in e)]
    (note,) = [e for e in half.iter() if e.get("data-name") == "exceeds"]
    assert f"({1 + 16 * 2}x{1 + 16 * 2}) exceeds the 32x32 input" in note.text
    at = page("rf_lab", n="15")  # 1 + 15*2 = 31 fits in 32
    assert not [e for e in stack_panel(at).iter() if e.get("data-name") == "exceeds"]
    assert not any("exceeds" in w.value for w in at.warning)


def test_rf_lab_stack_panel_is_one_element_of_the_page():
    # a slider step updates one HTML block, not a table, metrics and captions: the browser's
    # work per step grows with the number of elements (bench/app_speed.py)
    at = page("rf_lab", n="4")
    panel = stack_panel(at)
    names = {e.get("data-name") for e in panel.iter()}
    assert {"stack table", "formulas", "bars", "productive", "steps"} <= names
    assert not at.table and not [m for m in at.metric if "unproductive" in m.label]
    # 4 x 3x3: RF 1 + 4*2 = 9, the last conv unproductive below a 9x9 input
    (side,) = [e for e in panel.iter() if e.get("data-name") == "productive from"]
    assert side.get("data-value") == "9" == _stack_row(at, "receptive field")[0]
    formulas = [c.text for c in panel.iter("code")]
    assert formulas == list(labs.rf_lab(4, 3).formulas)
    assert "RF = 1 + n(k-1)d = 1 + 4*(3-1)*1 = 9" in formulas


# --------------------------------------------------------------------------- shortcut lab
def _diagrams(at: AppTest) -> list[dict[str, str]]:
    """The block diagrams on the page (cnnviz.render.block_svg, one HTML figure each): the
    title's lines and every text of the picture (an SVG image, decoded from its data URI)."""
    found = []
    for h in at.get("html"):
        if not h.proto.body.startswith('<figure data-name="block diagram"'):
            continue
        fig = ET.fromstring(h.proto.body)
        (img,) = fig.iter("img")
        svg = ET.fromstring(base64.b64decode(img.get("src").split(",", 1)[1]))
        lines = " ".join("".join(t.itertext()) for t in svg.iter(f"{SVG}tspan") if t.get("x"))
        part = {e.get("data-name"): "".join(e.itertext()) for e in fig}
        title = " ".join([part["title"], *([part["subtitle"]] if "subtitle" in part else [])])
        found.append({"title": title, "text": lines, "explanation": part.get("explanation", "")})
    return found


def _titles(at: AppTest) -> list[str]:
    plotly = [c["layout"]["title"]["text"] for c in charts(at) if "title" in c["layout"]]
    return plotly + [d["title"] for d in _diagrams(at)]


def _case_diagrams(at: AppTest) -> list[dict[str, str]]:
    """Each case's block diagram, its tab opened in turn: the tabs are lazy, so only the open
    case is drawn, one diagram at a time."""
    found = []
    for title in [t.label for t in at.tabs]:
        at.session_state["case"] = title
        at.run()
        drawn = _diagrams(at)
        assert len(drawn) == 1 and drawn[0]["title"].startswith(title)
        found += drawn
    return found


def test_shortcut_lab_at_50_draws_resnet50s_bottleneck_blocks():
    at = page("shortcut_lab")  # depth 50, no block in the URL
    assert at.segmented_control(key="block").value == "bottleneck"
    diagrams = _case_diagrams(at)
    assert len(diagrams) == 4
    for fig in diagrams:
        assert "resnet50" in fig["title"] and "resnet34" not in fig["title"]
    # each case explained above its diagram, in the same block (projection: 1x1 stride 2)
    assert "(1x1 stride 2 conv + BN)" in diagrams[1]["explanation"]
    assert f"{fmt.count(256 * 512 + 2 * 512)} parameters" in diagrams[1]["explanation"]
    assert "512 to 128 channels" in diagrams[0]["explanation"]  # layer2.1's first 1x1
    halves = diagrams[1]["text"]  # layer2.0: 256 -> 128 -> 128 (stride 2) -> 512 channels
    for box in ("1x1, 256->128", "3x3, 128->128, stride 2", "1x1, 128->512", "1x512x28x28"):
        assert box in halves
    assert fmt.count(256 * 512) in halves  # the projection's 1x1 conv
    title = diagrams[1]["title"]
    assert f"shortcut {fmt.count(256 * 512 + 2 * 512)}" in title  # 1x1 conv + BN
    oracle = cnnviz.analyze(zoo.get_model("resnet50", device="meta"), (1, 3, 224, 224))
    row = next(r for r in oracle.layers if r.name == "layer2.0.downsample.0")
    assert row.params == 256 * 512


@pytest.mark.parametrize(("depth", "block"), [(18, "basic"), (101, "bottleneck"), (20, "basic")])
def test_shortcut_lab_block_control_shows_the_block_used(depth, block):
    at = page("shortcut_lab", depth=str(depth))
    assert at.segmented_control(key="block").value == block


def test_shortcut_lab_new_depth_shows_its_own_block():
    at = page("shortcut_lab")
    at.selectbox(key="depth").set_value(34).run()
    assert at.segmented_control(key="block").value == "basic"
    at.selectbox(key="depth").set_value(152).run()
    assert at.segmented_control(key="block").value == "bottleneck"
    assert all("resnet152" in t for t in _titles(at) if "layer" in t)
    at = page("shortcut_lab", block="basic")  # ResNet-50 of basic blocks, from a link
    assert at.segmented_control(key="block").value == "basic"
    at.selectbox(key="depth").set_value(101).run()
    assert at.segmented_control(key="block").value == "bottleneck"


def test_shortcut_lab_cifar_with_bottleneck_shows_basic_on_the_control():
    at = page("shortcut_lab", depth="20", block="bottleneck")
    assert any("basic blocks" in i.value for i in at.info)
    assert at.segmented_control(key="block").value == "basic"


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("shortcut", ["none", "A", "B", "C"])
def test_block_titles_name_the_shortcut(shortcut, depth):
    for case in labs.block_cases(shortcut, depth):
        title = lab_plots.block_diagram(case).layout.title.text
        assert "none: none" not in title and ": none" not in title
        if shortcut == "none":
            assert "no shortcut" in title
        else:
            assert f"shortcut {shortcut}: {case.shortcut_kind}" in title


def test_block_cases_use_the_depths_own_blocks():
    for depth in (50, 101, 152):
        cases = labs.block_cases("B", depth)
        assert [c.model for c in cases] == [f"resnet{depth}"] * 4
        assert {c.block_type for c in cases} == {"bottleneck"}
    basic = labs.block_cases("B", 50, "basic")  # ResNet-50 built from basic blocks
    assert [(c.model, c.block_type) for c in basic[:2]] == [("resnet50", "basic")] * 2
    # ResNet-50 layer2.0 as basic blocks: 3x3 64->128 stride 2, 3x3 128->128
    convs = [n.detail for n in basic[1].main if n.type == "Conv2d"]
    assert convs == ["3x3, 64->128, stride 2", "3x3, 128->128"]


def test_shortcut_lab_titles_never_say_none_none():
    at = page("shortcut_lab", shortcut="none")
    titles = _titles(at)
    assert titles and not [t for t in titles if "none: none" in t]


# --------------------------------------------------------------------------- phone width
def _text_px(text: str, size: float) -> float:
    """A generous width estimate of an annotation's longest line: 0.62 em a character."""
    lines = re.sub(r"<(?!br)[^>]+>", "", text).split("<br>")
    return max(len(line) for line in lines) * 0.62 * size


@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_block_diagram_add_label_fits_a_phone(shortcut):
    for case in labs.block_cases(shortcut, 50):
        fig = lab_plots.block_diagram(case)
        lay = fig.layout
        x0, x1 = lay.xaxis.range
        plot_px = PHONE - PAGE_PAD - lay.margin.l - lay.margin.r
        per_unit = plot_px / (x1 - x0)
        add = next(a for a in lay.annotations if "F(x) + shortcut" in (a.text or ""))
        width = _text_px(add.text, add.font.size or 12) / per_unit
        left = {"left": add.x, "right": add.x - width, "center": add.x - width / 2}
        start = left[add.xanchor or "center"]
        assert x0 <= start and start + width <= x1, (start, start + width, (x0, x1))


@pytest.mark.parametrize("shortcut", ["none", "A", "B", "C"])
def test_block_diagram_arrows_are_one_trace_of_heads_on_lines(shortcut):
    # Arrows as annotations were measured and drawn one by one in the browser; now each is a
    # line shape, its head a marker of one trace.
    for case in labs.block_cases(shortcut, 50):
        fig = lab_plots.block_diagram(case)
        assert not any(a.showarrow for a in fig.layout.annotations)
        (heads,) = [t for t in fig.data if t.name == "arrows"]
        ends = [
            (x, y) for x, y, size in zip(heads.x, heads.y, heads.marker.size, strict=True) if size
        ]
        # one arrow into each main-path box, the add node, each shortcut box, the add node
        # from the shortcut, each post box and the output
        shortcut_arrows = len(case.shortcut) + 1 if case.shortcut_kind != "none" else 0
        merge_arrow = 1 if case.merge is not None else 0
        expected = len(case.main) + merge_arrow + shortcut_arrows + len(case.post) + 1
        assert len(ends) == expected
        line_ends = {(s.x1, s.y1) for s in fig.layout.shapes if s.type == "line"}
        assert set(ends) <= line_ends  # every head sits at the end of a drawn line


# --------------------------------------------------------------------------- §5 explained
@pytest.mark.parametrize(("depth", "data"), [(50, "ImageNet"), (20, "CIFAR-10")])
def test_shortcut_lab_explains_the_picked_net(depth, data):
    at = page("shortcut_lab", depth=str(depth))
    info = zoo.model_info(f"resnet{depth}")
    text = " ".join(c.value for c in at.caption)
    assert info.description in text and data in text
    assert "Deep Residual Learning for Image Recognition" in text and "He et al. 2016" in text


# --------------------------------------------------------------------------- §1 reruns
def _counting(monkeypatch, module, name: str) -> list:
    calls: list = []
    real = getattr(module, name)

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_setting_seen_before_rebuilds_no_figure(monkeypatch):
    diagrams = _counting(monkeypatch, block_svg, "block_diagram_html")
    at = page("shortcut_lab")  # shortcut B: its four diagrams are built once
    assert len(diagrams) == 4
    at.segmented_control(key="shortcut").set_value("A").run()
    assert len(diagrams) == 4 + 4
    at.segmented_control(key="shortcut").set_value("B").run()  # back: nothing rebuilt
    assert len(diagrams) == 8 and not at.exception
    bars = _counting(monkeypatch, lab_html, "compare_bars_html")
    steps = _counting(monkeypatch, lab_html, "rf_steps_html")
    at = page("rf_lab")
    at.slider(key="n").set_value(4).run()
    built = (len(bars), len(steps))
    at.slider(key="n").set_value(3).run()  # the page's first setting again
    at.slider(key="n").set_value(4).run()
    assert (len(bars), len(steps)) == built == (2, 2) and not at.exception
