"""Labs (cnnviz.labs) and their figures (cnnviz.render.lab_plots).

Expected numbers are written out as arithmetic: n stacked k x k convs with C channels in and
out (no bias) have n*k*k*C*C weights, one K x K conv K*K*C*C; RF = 1 + n(k-1)d at stride 1;
MACs at stride 1 with "same" padding = H*W*weights. A 1x1 projection + BN from c_in to c_out
has c_in*c_out + 2*c_out params.
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import cnnviz
from cnnviz import fmt, labs
from cnnviz.labs import block_cases, rf_lab, shortcut_stage_table, valid_rf_lab_options
from cnnviz.render import block_svg, lab_html, lab_plots
from cnnviz.zoo import get_model

OPTS = valid_rf_lab_options()


# ------------------------------------------------------------------ RF lab


@pytest.mark.parametrize("c", [16, 64, 512])
def test_two_3x3_vs_one_5x5(c):
    lab = rf_lab(2, 3, c)
    assert lab.stack.rf == lab.single.rf == lab.single.kernel_size == 5
    assert lab.stack.weights == 2 * 9 * c * c
    assert lab.single.weights == 25 * c * c
    h = lab.input_size[2]
    assert h == 32
    assert lab.stack.macs == h * h * 2 * 3 * 3 * c * c
    assert lab.single.macs == h * h * 5 * 5 * c * c
    assert (lab.stack.nonlinearities, lab.single.nonlinearities) == (2, 1)
    assert (lab.stack.layers, lab.single.layers) == (2, 1)
    assert lab.stack.output_shape == lab.single.output_shape == (1, c, 32, 32)


def test_options_and_table():
    assert (OPTS.n, OPTS.kernel_sizes) == ((1, 16), (1, 3, 5, 7, 9, 11))
    assert (OPTS.dilation, OPTS.stride, OPTS.max_strided_n) == ((1, 4), (1, 2), 8)
    lab = rf_lab(3, 3, 64)
    assert lab.single.kernel_size == 7
    t = lab.table()
    assert list(t.columns) == ["3 x 3x3 conv", "1 x 7x7 conv"]
    assert t.loc["weights"].tolist() == [3 * 9 * 64 * 64, 49 * 64 * 64]
    assert t.loc["non-linearities"].tolist() == [3, 1]


def test_three_3x3_vs_one_7x7_and_formulas():
    lab = rf_lab(3, 3, 64)
    assert (lab.stack.rf, lab.single.kernel_size) == (7, 7)
    assert (lab.stack.weights, lab.single.weights) == (3 * 9 * 64 * 64, 49 * 64 * 64)
    assert [s.rf for s in lab.steps] == [1, 3, 5, 7]
    assert [s.stride for s in lab.steps] == [1, 1, 1, 1]
    assert lab.formulas[0] == "RF = 1 + n(k-1)d = 1 + 3*(3-1)*1 = 7"
    assert "3*3*3*64*64 = 110,592 vs K*K*C*C = 7*7*64*64 = 200,704" in lab.formulas[2]
    assert lab.weight_ratio == pytest.approx(27 / 49)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(*OPTS.n),
    k=st.sampled_from(OPTS.kernel_sizes),
    c=st.sampled_from(OPTS.channels[:3]),
    d=st.integers(*OPTS.dilation),
    s=st.integers(*OPTS.stride),
)
def test_rf_lab_matches_arithmetic(n, k, c, d, s):
    assume(s == 1 or n <= OPTS.max_strided_n)  # past it, the input would be s^n pixels wide
    lab = rf_lab(n, k, c, d, s)
    rf = 1 + (k - 1) * d * sum(s**i for i in range(n))
    assert lab.stack.rf == lab.single.rf == lab.single.kernel_size == rf
    assert lab.stack.rf_stride == lab.single.rf_stride == s**n
    assert lab.single.conv_stride == s**n
    assert lab.stack.weights == n * k * k * c * c
    assert lab.single.weights == rf * rf * c * c
    h = lab.input_size[2]
    assert h >= 32 and h % s**n == 0
    positions = sum((h // s**i) ** 2 for i in range(1, n + 1))
    assert lab.stack.macs == positions * k * k * c * c
    assert lab.single.macs == (h // s**n) ** 2 * rf * rf * c * c
    assert lab.stack.output_shape == lab.single.output_shape
    assert len(lab.steps) == n + 1
    assert [st_.rf for st_ in lab.steps] == [
        1 + (k - 1) * d * sum(s**i for i in range(j)) for j in range(n + 1)
    ]
    if s == 1:
        assert lab.formulas[0] == f"RF = 1 + n(k-1)d = 1 + {n}*({k}-1)*{d} = {rf}"
    assert f"= {lab.stack.weights:,} vs" in lab.formulas[2]
    assert lab.formulas[3].endswith(f"= {lab.single.macs:,}")
    assert any("gridding" in note for note in lab.notes) == (d > 1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n": 0}, "n"),
        ({"n": 17}, "n"),
        ({"n": 9, "stride": 2}, "n"),  # 2^9 = 512 px input: past max_strided_n
        ({"n": 2, "k": 4}, "k"),
        ({"n": 2, "k": 13}, "k"),
        ({"n": 2, "channels": 65}, "channels"),
        ({"n": 2, "dilation": 5}, "dilation"),
        ({"n": 2, "stride": 3}, "stride"),
        ({"n": True}, "n"),
        ({"n": 2.0}, "n"),
    ],
)
def test_rf_lab_validation_names_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"\b{field}="):
        rf_lab(**kwargs)


# ------------------------------------------------------------------ shortcut lab


def test_resnet18_stage_table():
    df = shortcut_stage_table(18)
    assert list(df.stage) == ["stem", "layer1", "layer2", "layer3", "layer4", "head", "total"]
    total = df.set_index("stage").loc["total"]
    # B adds three 1x1 projections + BN (layer2.0, layer3.0, layer4.0)
    b_minus_a = (64 * 128 + 2 * 128) + (128 * 256 + 2 * 256) + (256 * 512 + 2 * 512)
    assert total.params_B - total.params_A == b_minus_a == total.params_B_minus_A
    assert total.params_none == total.params_A  # option A is parameter-free
    assert total.macs_none == total.macs_A
    by_stage = df.set_index("stage")
    assert by_stage.loc["layer2", "params_B_minus_A"] == 64 * 128 + 2 * 128
    assert by_stage.loc["layer1", "params_B_minus_A"] == 0
    assert by_stage.loc["stem", "params_B"] == 7 * 7 * 3 * 64 + 2 * 64
    assert by_stage.loc["head", "params_B"] == 512 * 1000 + 1000


@pytest.mark.parametrize(
    ("depth", "kwargs", "name", "config", "size"),
    [
        (18, {}, "resnet18", {}, (1, 3, 224, 224)),
        (50, {}, "resnet50", {}, (1, 3, 224, 224)),
        (34, {"block": "bottleneck"}, "resnet34", {"block": "bottleneck"}, (1, 3, 224, 224)),
        (20, {}, "resnet_cifar", {"depth": 20}, (1, 3, 32, 32)),
        (50, {"dataset": "cifar"}, "resnet_cifar", {"depth": 50}, (1, 3, 32, 32)),
        (18, {"input_size": 160}, "resnet18", {}, (1, 3, 160, 160)),
    ],
)
def test_stage_sums_equal_analysis_totals(depth, kwargs, name, config, size):
    df = shortcut_stage_table(depth, **kwargs)
    stages = df[df.stage != "total"]
    total = df[df.stage == "total"].iloc[0]
    for s in ("none", "A", "B", "C"):
        a = cnnviz.analyze(get_model(name, device="meta", shortcut=s, **config), size)
        assert stages[f"params_{s}"].sum() == total[f"params_{s}"] == a.total_params
        assert stages[f"macs_{s}"].sum() == total[f"macs_{s}"] == a.total_macs
    assert (total.params_C_minus_B, total.macs_A_minus_none) == (
        total.params_C - total.params_B,
        0,
    )


def test_stage_table_validation():
    with pytest.raises(ValueError, match="depth="):
        shortcut_stage_table(21)
    with pytest.raises(ValueError, match="block="):
        shortcut_stage_table(20, block="bottleneck")
    with pytest.raises(ValueError, match="dataset="):
        shortcut_stage_table(18, dataset="mnist")


def test_block_cases_b():
    c1, c2, c3, c4 = block_cases("B", 34)
    assert (c1.model, c1.block, c1.shortcut_kind) == ("resnet34", "layer1.1", "identity")
    assert c1.in_shape == c1.out_shape == (1, 64, 56, 56) and c1.shortcut == ()
    assert c1.merge is not None and c1.merge.type == "add"

    assert (c2.model, c2.block) == ("resnet34", "layer2.0")
    assert c2.shortcut_kind == "projection 1x1 stride 2"
    assert [n.short for n in c2.shortcut] == ["downsample.0", "downsample.1"]
    assert c2.shortcut[0].in_shape == (1, 64, 56, 56)
    assert c2.shortcut[-1].out_shape == (1, 128, 28, 28)
    assert c2.shortcut_params == 64 * 128 + 2 * 128
    assert c2.main[0].out_shape == (1, 128, 28, 28) and c2.main[0].params == 3 * 3 * 64 * 128

    assert (c3.model, c3.block, c3.shortcut_kind) == ("resnet50", "layer1.0", "projection 1x1")
    assert c3.out_shape == (1, 256, 56, 56) and c3.in_shape == (1, 64, 56, 56)
    assert c3.shortcut_params == 64 * 256 + 2 * 256

    assert (c4.model, c4.block, c4.shortcut_kind) == ("resnet50", "layer1.1", "identity")
    convs = [n for n in c4.main if n.type == "Conv2d"]
    assert [n.out_shape[1] for n in convs] == [64, 64, 256]
    assert [n.params for n in convs] == [256 * 64, 9 * 64 * 64, 64 * 256]
    assert [n.short for n in c4.post] == ["relu#3"]


def test_block_cases_other_shortcuts():
    a2, a3 = block_cases("A", 34)[1:3]
    assert a2.shortcut_kind == "zero-pad + stride-2 subsample"
    assert a2.shortcut_params == 0 and len(a2.shortcut) == 1
    assert a2.shortcut[0].type == "PadShortcut"  # one leaf row: slicing/pad get no rows
    assert a2.shortcut[0].out_shape == (1, 128, 28, 28)
    assert a3.shortcut_kind == "zero-pad channels" and a3.shortcut[0].out_shape[1] == 256

    n1, n2 = block_cases("none", 34)[:2]
    assert n1.shortcut_kind == n2.shortcut_kind == "none"
    assert n1.merge is None and n2.shortcut == () and n2.out_shape == (1, 128, 28, 28)
    assert n2.params == block_cases("A", 34)[1].params  # same main path

    c1 = block_cases("C", 34)[0]
    assert c1.shortcut_kind == "projection 1x1" and c1.shortcut_params == 64 * 64 + 2 * 64
    # block params equal the analysis rows under the prefix
    a = cnnviz.analyze(get_model("resnet34", device="meta", shortcut="C"), (1, 3, 224, 224))
    assert c1.params == sum(r.params for r in a.layers if r.name.startswith("layer1.1."))

    r18 = block_cases("B", depth=18)
    assert r18[0].model == "resnet18" and r18[2].model == "resnet50"
    with pytest.raises(ValueError, match="shortcut="):
        block_cases("D")
    with pytest.raises(ValueError, match="depth="):
        block_cases("B", depth=20)


def test_block_cases_of_a_bottleneck_net():
    c1, c2, c3, c4 = block_cases("B", 50)
    assert {c.model for c in (c1, c2, c3, c4)} == {"resnet50"}
    # 1. layer2.1: 512 -> 128 -> 128 -> 512 at 28x28, identity shortcut
    assert (c1.block, c1.shortcut_kind) == ("layer2.1", "identity")
    assert c1.in_shape == c1.out_shape == (1, 512, 28, 28)
    # 2. layer2.0: 256x56x56 -> 512x28x28, the stride on the 3x3 conv
    convs = [n for n in c2.main if n.type == "Conv2d"]
    assert [n.detail for n in convs] == [
        "1x1, 256->128",
        "3x3, 128->128, stride 2",
        "1x1, 128->512",
    ]
    assert [n.params for n in convs] == [256 * 128, 9 * 128 * 128, 128 * 512]
    assert (c2.in_shape, c2.out_shape) == ((1, 256, 56, 56), (1, 512, 28, 28))
    assert c2.shortcut_params == 256 * 512 + 2 * 512
    a = cnnviz.analyze(get_model("resnet50", device="meta"), (1, 3, 224, 224))
    assert c2.params == sum(r.params for r in a.layers if r.name.startswith("layer2.0."))
    assert (c3.block, c4.block) == ("layer1.0", "layer1.1")
    # option A at the same place: 256 zero channels appended to the subsampled x
    a2 = block_cases("A", 50)[1]
    assert a2.shortcut[0].out_shape == (1, 512, 28, 28) and a2.shortcut_params == 0
    assert "appends 256 zero channels" in a2.explanation  # 512 - 256


def test_degradation_depths():
    df = labs.degradation_depths((20, 56, 110))
    assert df.depth.tolist() == [20, 56, 110]
    assert (df.plain_params == df.residual_params).all()
    assert df.residual_params.is_monotonic_increasing


# ------------------------------------------------------------------ figures


_SVG = "{http://www.w3.org/2000/svg}"


def _texts(fig) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def test_rf_figures_build():
    for lab in (rf_lab(2, 3), rf_lab(3, 3, 64, 2, 1), rf_lab(8, 7, 512, 4, 2)):
        for fig in (lab_plots.rf_steps_figure(lab), lab_plots.compare_bars(lab)):
            json.loads(fig.to_json())
    bars = lab_plots.compare_bars(rf_lab(2, 3, 64))
    assert [list(t.x) for t in bars.data] == [
        [73728, 102400],
        [2 * 1024 * 9 * 4096, 1024 * 25 * 4096],
        [2, 1],
    ]


def _squares(html: str) -> list[ET.Element]:
    uris = re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', html)
    return [ET.fromstring(base64.b64decode(u)) for u in uris]


def test_rf_lab_html_is_well_formed_with_exact_values_on_hover():
    for lab in (rf_lab(2, 3), rf_lab(3, 3, 64, 2, 1), rf_lab(8, 7, 512, 4, 2)):
        ET.fromstring(lab_html.stack_panel_html(lab))  # the bars and the squares within
    lab = rf_lab(16, 11)  # MACs 16 * 11*11 * 64*64 * 32*32 = 8,120,172,544: compact label
    macs = 16 * 121 * 64 * 64 * 32 * 32
    assert lab.stack.macs == macs
    root = ET.fromstring(lab_html.compare_bars_html(lab))
    (row,) = [e for e in root.iter() if e.get("title", "").startswith("16 x 11x11 conv: 8,")]
    assert row.get("title") == f"16 x 11x11 conv: {macs:,} MACs"
    assert [e.text for e in row if e.get("data-name") == "value"] == [fmt.compact(macs)]
    # a pixel grid up to 41 pixels a side (2 x 3x3: 5), none on the 161-pixel field
    for lab, grids in ((rf_lab(2, 3), 2), (rf_lab(16, 11), 0)):
        found = sum(
            p.get("data-name") == "pixel grid"
            for svg in _squares(lab_html.rf_steps_html(lab))
            for p in svg.iter("{http://www.w3.org/2000/svg}path")
        )
        assert found == grids


@pytest.mark.parametrize("shortcut", ["none", "A", "B", "C"])
def test_block_diagrams_show_real_shapes(shortcut):
    for case in block_cases(shortcut):
        fig = lab_plots.block_diagram(case)
        json.loads(fig.to_json())
        text = " ".join(_texts(fig))
        for node in (*case.main, *case.shortcut, *case.post):
            assert "x".join(map(str, node.out_shape)) in text
            assert node.short in text
    case = block_cases("B", 34)[1]
    text = " ".join(_texts(lab_plots.block_diagram(case)))
    assert "1x128x28x28" in text and "8,192 params" in text and "1x64x56x56" in text


def _svg_texts(svg: ET.Element) -> str:
    return " ".join("".join(t.itertext()) for t in svg.iter(f"{_SVG}tspan") if t.get("x"))


@pytest.mark.parametrize("shortcut", ["none", "A", "B", "C"])
@pytest.mark.parametrize("depth", [18, 50])
def test_block_diagram_pictures_match_the_figures(shortcut, depth):
    # the SVG picture the app shows and the Plotly figure draw one layout (block_layout):
    # the same texts, one box per rectangle, one head at the end of each arrow
    for case in block_cases(shortcut, depth):
        fig = lab_plots.block_diagram(case)
        (img,) = ET.fromstring(block_svg.block_diagram_html(case)).iter("img")
        svg = ET.fromstring(base64.b64decode(img.get("src").split(",", 1)[1]))
        width, height = float(svg.get("width")), float(svg.get("height"))
        texts = _svg_texts(svg)
        for node in (*case.main, *case.shortcut, *case.post):
            assert "x".join(map(str, node.out_shape)) in texts and node.short in texts
        assert texts.count("→") == sum(a.text.count("→") for a in fig.layout.annotations)
        boxes = list(svg.iter(f"{_SVG}rect"))
        assert len(boxes) == sum(s.type == "rect" for s in fig.layout.shapes)
        (heads,) = [g for g in svg.iter(f"{_SVG}g") if g.get("data-name") == "arrows"]
        lines = svg.iter(f"{_SVG}line")
        ends = {(round(float(ln.get("x2"))), round(float(ln.get("y2")))) for ln in lines}
        tips = [p.get("points").split()[0].split(",") for p in heads]
        assert len(tips) == sum(len(t.x) // 3 for t in fig.data if t.name == "arrows")
        assert {(round(float(x)), round(float(y))) for x, y in tips} <= ends
        for t in svg.iter(f"{_SVG}tspan"):  # every line of text starts inside the picture
            if t.get("x"):
                assert 0 <= float(t.get("x")) <= width and 0 <= float(t.get("y")) <= height
        assert ('data-name="add"' in ET.tostring(svg, encoding="unicode")) == (
            case.merge is not None
        )


def test_block_diagram_title_and_texts_are_escaped():
    case = block_cases("B")[1]
    fig = ET.fromstring(block_svg.block_diagram_html(case))  # well-formed: parses
    assert fig[0].text == case.title
    assert "".join(fig[1].itertext()).startswith(f"{case.model} {case.block}")
    # Plotly's markup in a line becomes tspans; entities stay text, never markup
    assert block_svg._spans("<b>a</b> &lt;i&gt;") == (
        '<tspan font-weight="bold">a</tspan><tspan> &lt;i&gt;</tspan>'
    )


def test_shortcut_bars():
    df = shortcut_stage_table(18)
    for metric in ("params", "macs"):
        fig = lab_plots.shortcut_bars(df, metric)
        json.loads(fig.to_json())
        assert [t.name for t in fig.data] == ["none", "A", "B", "C"]
        assert list(fig.data[2].x) == ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
        assert list(fig.data[2].y) == list(df[f"{metric}_B"][:-1])
    with pytest.raises(ValueError, match="metric="):
        lab_plots.shortcut_bars(df, "flops")
