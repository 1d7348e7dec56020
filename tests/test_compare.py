"""cnnviz.compare: comparison tables checked against published numbers and hand arithmetic.

Sources: torchvision's weights metadata (``num_params``) and exact MACs from
``torch.utils.flop_counter.FlopCounterMode`` / 2 at 1x3x224x224; receptive fields of the
torchvision models from torchscan's README table (alexnet 195/32, vgg16 212/32) and Araujo et
al.'s formulas (Distill 2019; resnet50 layer4 427/32); unit windows from the Distill definition
-P + i*S .. -P + i*S + r - 1.
"""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest
import torch.nn as nn

import cnnviz
from cnnviz import compare as C
from cnnviz.receptive import ReceptiveField

REFERENCE = {  # name: (params, MACs, final RF, final RF stride)
    "alexnet": (61_100_840, 714_188_480, 195, 32),
    "vgg16": (138_357_544, 15_470_264_320, 212, 32),
    "googlenet": (6_624_904, 1_498_376_192, None, 32),  # RF: whatever analyze says
    "resnet50": (25_557_032, 4_089_184_256, 427, 32),
}


@pytest.fixture(scope="module")
def table(analyses) -> pd.DataFrame:
    return C.compare(analyses)


def test_compare_matches_reference_totals(table, analyses):
    assert list(table.columns) == list(C.SUMMARY_COLUMNS)
    assert table["label"].tolist() == list(REFERENCE)
    for _, row in table.iterrows():
        params, macs, rf, stride = REFERENCE[row["label"]]
        a = analyses[row["label"]]
        assert row["input"] == "1x3x224x224"
        assert (row["params"], row["macs"]) == (params, macs)
        assert row["flops"] == 2 * macs
        assert row["trainable_params"] == params  # weights=None: everything trains
        expected_rf = a.receptive_field().size[0] if rf is None else rf
        assert a.receptive_field().size == (expected_rf, expected_rf)
        assert (row["rf"], row["rf_stride"]) == (expected_rf, stride)
        assert row["weighted_depth"] == a.weighted_depth
        assert row["param_bytes"] == 4 * params  # float32
        assert row["conv_params"] + row["fc_params"] + row["other_params"] == params


def test_alexnet_fc_share_from_layer_shapes(table):
    # torchvision AlexNet features: conv(3->64, 11x11), conv(64->192, 5x5), conv(192->384, 3x3),
    # conv(384->256, 3x3), conv(256->256, 3x3), each with bias.
    convs = [(3, 64, 11), (64, 192, 5), (192, 384, 3), (384, 256, 3), (256, 256, 3)]
    conv_params = sum(cin * cout * k * k + cout for cin, cout, k in convs)
    assert conv_params == 2_469_696
    row = table.set_index("label").loc["alexnet"]
    assert row["conv_params"] == conv_params
    assert row["fc_params"] == 61_100_840 - conv_params
    assert row["other_params"] == 0
    assert row["fc_share"] == pytest.approx((61_100_840 - 2_469_696) / 61_100_840)
    assert row["fc_share"] > 0.95  # AlexNet's parameters live in its classifier


def test_vgg16_fc_params_and_small_fc_share_of_modern_nets(table):
    fc = 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    rows = table.set_index("label")
    assert rows.loc["vgg16", "fc_params"] == fc == 123_642_856
    assert rows.loc["vgg16", "fc_share"] == pytest.approx(fc / 138_357_544)
    assert rows.loc["resnet50", "fc_params"] == 2048 * 1000 + 1000
    assert rows.loc["googlenet", "fc_params"] == 1024 * 1000 + 1000
    assert rows.loc["resnet50", "fc_share"] < 0.1 < rows.loc["googlenet", "fc_share"] < 0.2
    # norm layers are the "other" params: BN has 2 per channel
    assert rows.loc["resnet50", "other_params"] == 53_120


def test_summarize_label_and_non_square_rf():
    # google-research/receptive_field's test graph: k=(3,5) s=2 then k=(3,1) s=2 -> r 7x5, S 4
    net = nn.Sequential(nn.Conv2d(1, 1, (3, 5), 2), nn.Conv2d(1, 1, (3, 1), 2))
    a = cnnviz.analyze(net, (1, 1, 33, 33))
    row = C.summarize(a)
    assert row["label"] == a.model_name
    assert (row["rf"], row["rf_stride"]) == ("7x5", 4)
    assert C.summarize(a, "mine")["label"] == "mine"
    assert row["fc_params"] == 0 and row["fc_share"] == 0.0


def test_summarize_without_spatial_axes_says_unknown():
    a = cnnviz.analyze(nn.Linear(8, 2), (1, 8))
    row = C.summarize(a)
    assert (row["rf"], row["rf_stride"]) == ("unknown", None)
    assert row["fc_share"] == 1.0


def test_stage_tables_sum_to_totals(analyses):
    for a in analyses.values():
        st = C.stage_table(a)
        assert list(st.columns) == list(C.STAGE_COLUMNS)
        assert st["layers"].sum() == len(a.layers)
        assert st["params"].sum() == a.total_params
        assert st["macs"].sum() == a.total_macs
        assert st["extra_ops"].sum() == a.total_extra_ops
        assert st["stage"].tolist() == sorted({r.stage for r in a.layers})
        assert st["size"].iloc[-1] == "head" and st["rf"].iloc[-1] == "global"
        for _, s in st.iterrows():
            rows = [r for r in a.layers if r.stage == s["stage"]]
            assert (s["first"], s["last"]) == (rows[0].name, rows[-1].name)


def test_stage_table_resnet50_sizes_and_rf(analyses):
    st = C.stage_table(analyses["resnet50"])
    assert st["size"].tolist() == ["112x112", "56x56", "28x28", "14x14", "7x7", "head"]
    assert st["rf"].tolist()[:5] == [7, 35, 91, 267, 427]  # layer3 267, layer4 427 (ref. 3)
    assert st.loc[4, "last"] == "layer4.2.relu#3"


def test_layer_table_compact_and_raw(analyses):
    a = analyses["alexnet"]
    t = C.layer_table(a).set_index("name")
    assert len(t) == len(a.layers)
    assert list(t.reset_index().columns) == list(C.LAYER_COLUMNS)
    fc1 = t.loc["classifier.1"]
    assert (fc1["output"], fc1["params"], fc1["rf"]) == ("1x4096", "37.8M", "global")
    assert fc1["params"] == cnnviz.fmt.compact(9216 * 4096 + 4096)
    conv1 = t.loc["features.0"]
    assert (conv1["output"], conv1["params"], conv1["macs"]) == ("1x64x55x55", "23.3K", "70.3M")
    assert (conv1["rf"], conv1["stride"]) == ("11x11", "4x4")
    raw = C.layer_table(a, compact=False).set_index("name")
    assert raw.loc["classifier.1", "params"] == 9216 * 4096 + 4096
    assert raw.loc["features.0", "macs"] == 55 * 55 * 64 * 3 * 11 * 11
    assert (raw.loc["features.0", "rf"], raw.loc["features.0", "stride"]) == (11, 4)
    assert raw["params"].sum() == a.total_params
    assert C.layer_table(analyses["vgg16"]).set_index("name").loc["features.30", "rf"] == "212x212"


def test_rf_growth(analyses):
    a = analyses["resnet50"]
    g = C.rf_growth(a)
    assert list(g.columns) == list(C.GROWTH_COLUMNS)
    by_index = {r.index: r for r in a.layers}
    assert all(not by_index[i].rf_global and by_index[i].spatial for i in g["index"])
    assert len(g) == sum(1 for r in a.layers if r.spatial and not r.rf_global)
    assert g.iloc[0][["name", "depth", "rf", "stride"]].tolist() == ["conv1", 1, 7, 2]
    assert (g["rf"].max(), g["stride"].max(), g["depth"].max()) == (427, 32, 49)


def test_unit_view_window_arithmetic():
    # r = 3, S = 2, P = 1, unit (0, 1): rows -1 + 0*2 .. -1 + 0*2 + 2 = -1..1,
    # cols -1 + 1*2 .. -1 + 1*2 + 2 = 1..3
    rf = ReceptiveField((3, 3), (2, 2), (1, 1))
    v = C.unit_view(rf, (8, 8), (0, 1))
    assert v["window"] == ((-1, 1), (1, 3)) == rf.window((0, 1))
    assert v["inside"] == ((0, 1), (1, 3))
    assert v["on_padding"] is True
    assert v["outside"] == {"top": 1, "bottom": 0, "left": 0, "right": 0}
    assert v["center"] == (0.0, 2.0) == rf.center((0, 1))
    assert (v["neighbour_w_unit"], v["neighbour_w"]) == ((0, 2), ((-1, 1), (3, 5)))
    assert (v["neighbour_h_unit"], v["neighbour_h"]) == ((1, 1), ((1, 3), (1, 3)))
    assert "output_grid" not in v
    assert (v["size"], v["stride"], v["padding"]) == ((3, 3), (2, 2), (1, 1))


def test_unit_view_bottom_right_and_output_grid():
    # input 7: output floor((7 + 2 - 3) / 2) + 1 = 4; unit 3 sees -1 + 6 .. -1 + 6 + 2 = 5..7
    rf = ReceptiveField((3, 3), (2, 2), (1, 1))
    v = C.unit_view(rf, (7, 7), (3, 3), output_spatial=(4, 4))
    assert v["window"] == ((5, 7), (5, 7))
    assert v["outside"] == {"top": 0, "bottom": 1, "left": 0, "right": 1}
    assert v["output_grid"] == (4, 4)
    assert v["neighbour_w_unit"] == (3, 2)  # the grid ends: take the other side
    assert v["neighbour_h"] == ((3, 5), (5, 7))
    inner = C.unit_view(rf, (7, 7), (1, 1))
    assert inner["on_padding"] is False and inner["inside"] == inner["window"]
    with pytest.raises(ValueError, match="outside the 4x4 output grid"):
        C.unit_view(rf, (7, 7), (4, 0), output_spatial=(4, 4))


def test_unit_view_alexnet_final_unit(analyses):
    rf = analyses["alexnet"].receptive_field()  # 195 / 32 / 66 (torchscan's README table)
    v = C.unit_view(rf, (224, 224), (5, 5), output_spatial=(6, 6))
    first = -66 + 5 * 32  # -P + i*S
    assert v["window"] == ((first, first + 194), (94, 288))
    assert v["outside"]["bottom"] == 288 - 223 and v["outside"]["top"] == 0


def test_unit_view_rejects_unknown_and_global():
    with pytest.raises(ValueError, match=r"unknown receptive field.*merge"):
        C.unit_view(ReceptiveField(None, reason="strides differ at merge"), (8, 8), (0, 0))
    with pytest.raises(ValueError, match="global"):
        C.unit_view(ReceptiveField((8, 8), (0, 0), (0, 0), True, True), (8, 8), (0, 0))
    with pytest.raises(ValueError, match="2-D"):
        C.unit_view(ReceptiveField((3,), (1,), (1,)), (8,), (0,))
    with pytest.raises(ValueError, match=">= 0"):
        C.unit_view(ReceptiveField((3, 3), (1, 1), (1, 1)), (8, 8), (-1, 0))


def test_downloads_round_trip(table):
    records = json.loads(C.to_json(table))
    assert len(records) == 4 and records[0]["label"] == "alexnet"
    assert type(records[1]["macs"]) is int and records[1]["macs"] == 15_470_264_320
    assert type(records[0]["rf"]) is int and records[0]["rf_stride"] == 32
    assert records[0]["fc_share"] == pytest.approx(table.loc[0, "fc_share"])
    back = pd.read_csv(io.StringIO(C.to_csv(table)))
    assert back["params"].tolist() == table["params"].tolist()
    assert back.columns.tolist() == table.columns.tolist()
    nan = pd.DataFrame({"a": [1.5, math.nan], "b": [None, "x"]})
    assert json.loads(C.to_json(nan)) == [{"a": 1.5, "b": None}, {"a": None, "b": "x"}]
    assert json.loads(C.to_json(C.layer_table(cnnviz.analyze(nn.Linear(2, 2), (1, 2)))))


def test_unit_view_of_a_stride_zero_field():
    # conv 3x3 on a 3x3 map -> 1x1, then adaptive_avg_pool2d(6): 36 units, one window (S = 0)
    import torch.nn as nn

    from cnnviz.render import plots

    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(6))
    rf = cnnviz.analyze(net, (1, 1, 3, 3)).receptive_field("1")
    assert rf_pair(rf) == ((3, 3), (0, 0))
    v = C.unit_view(rf, (3, 3), (4, 1), output_spatial=(6, 6))
    assert v["window"] == v["neighbour_w"] == v["neighbour_h"] == ((0, 2), (0, 2))
    fig = plots.rf_on_input(rf, (3, 3), (4, 1), output_spatial=(6, 6))
    assert fig.data[0].name == "unit grid"  # no grid: every unit shares the window


def rf_pair(rf):
    return rf.size, rf.stride
