"""Smallest-path receptive fields and unproductive layers (Richter et al., ICMLA 2021).

Oracles: the gradient-support oracle of tests/oracles.py (Araujo et al., Distill 2019), run on
the whole net for the hull and on each path alone (the other path removed) for the smallest
field; hand arithmetic with r += (k'-1)S for the zoo numbers.
"""

from __future__ import annotations

import pytest
import torch
from oracles import oracle_rf
from torch import nn

import cnnviz
from cnnviz import zoo
from cnnviz.productivity import classify, smallest_input


def _conv(k: int, s: int = 1, d: int = 1) -> nn.Conv2d:
    return nn.Conv2d(1, 1, k, s, padding=d * (k // 2), dilation=d)


SEQUENTIAL = [
    nn.Sequential(_conv(3), nn.ReLU(), _conv(3), nn.ReLU(), _conv(3)),
    nn.Sequential(_conv(5, 2), _conv(3), nn.MaxPool2d(3, 2, 1), _conv(3, d=2)),
    nn.Sequential(_conv(7, 2), nn.MaxPool2d(2), _conv(1), _conv(3)),
]


@pytest.mark.parametrize("net", SEQUENTIAL, ids=["3x3x3", "strided", "pool-1x1"])
def test_single_path_smallest_field_is_the_field(net):
    a = cnnviz.analyze(net, (1, 1, 96, 96))
    o = oracle_rf(net, (1, 1, 96, 96))
    last = a.layers[-1]
    assert last.rf_size == o.size
    assert last.rf_min == last.rf_size  # one path: the smallest is the only one


class TwoPaths(nn.Module):
    """y = long(x) + short(x), or their concat along channels."""

    def __init__(self, long: nn.Module, short: nn.Module, concat: bool = False) -> None:
        super().__init__()
        self.long, self.short, self.concat = long, short, concat

    def forward(self, x):
        a, b = self.long(x), self.short(x)
        return torch.cat([a, b], 1) if self.concat else a + b


def _paths():
    return [
        (nn.Sequential(_conv(3), nn.ReLU(), _conv(3), _conv(3)), nn.Identity()),  # 7 vs 1
        (nn.Sequential(_conv(5), _conv(5)), _conv(3)),  # 9 vs 3
        (nn.Sequential(_conv(3), _conv(3, d=3)), nn.Sequential(_conv(3), _conv(3))),  # 9 vs 5
    ]


@pytest.mark.parametrize("concat", [False, True], ids=["add", "concat"])
@pytest.mark.parametrize("i", range(3))
def test_two_paths_smallest_field_is_the_shorter_paths_oracle(i, concat):
    long, short = _paths()[i]
    net = TwoPaths(long, short, concat)
    shape = (1, 1, 64, 64)
    whole = oracle_rf(net, shape)
    alone = [oracle_rf(nn.Sequential(long), shape).size]
    if not isinstance(short, nn.Identity):
        alone.append(oracle_rf(nn.Sequential(short), shape).size)
    else:
        alone.append((1, 1))  # the identity path: a unit sees its own pixel
    a = cnnviz.analyze(net, shape)
    out = a.layers[-1]
    assert out.rf_size == whole.size
    assert out.rf_min == min(alone)


def test_resnet18_shortcut_only_path():
    a = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    last = next(r for r in reversed(a.layers) if r.name == "layer4.1.add")
    # conv1 7x7 s2 -> r 7, S 2; maxpool 3 s2 -> 7 + 2*2 = 11, S 4; every block's shortcut
    # (identity, or a 1x1 stride-2 projection) keeps 11. The hull: 435 (Araujo et al.'s
    # formula over the conv path; torchscan's table for torchvision's resnet18).
    assert last.rf_min == (11, 11)
    assert last.rf_size == (435, 435)


def test_classify_reads_both_fields_on_every_axis():
    assert classify((9, 9), (9, 9), (8, 8)) == "unproductive"
    assert classify((9, 9), (5, 5), (8, 8)) == "probably unproductive"
    assert classify((9, 9), (9, 9), (8, 16)) == "productive"  # fits along the width
    assert classify((9, 9), (9, 9), (9, 9)) == "productive"  # equal is not "exceeds"
    assert classify(None, None, (8, 8)) is None


def test_vgg_at_32_pixels_stops_adding_context():
    # The classic case. VGG-16's fields, r += (k-1)S: block 1's convs 3, 5; pool (k2 s2) 6,
    # S 2; block 2: 10, 14; pool 16, S 4; block 3: 24, 32, 40. So features.14 (block 3's third
    # conv) is the first whose field exceeds 32 px, and everything after it adds no context.
    a = cnnviz.analyze(zoo.get_model("vgg16", device="meta"), (1, 3, 32, 32))
    rows = {r.name: r for r in a.layers}
    assert rows["features.12"].rf_min == (32, 32) and rows["features.14"].rf_min == (40, 40)
    bad = a.unproductive()
    assert bad["name"].iloc[0] == "features.14"
    assert set(bad["productivity"]) == {"unproductive"}  # one path: never only "probably"
    spatial_after = [r.name for r in a.layers if r.index >= 14 and r.rf_min is not None]
    assert list(bad["name"]) == spatial_after
    # at 224 px nothing is unproductive: the largest field before the classifier is 212
    big = cnnviz.analyze(zoo.get_model("vgg16", device="meta"), (1, 3, 224, 224))
    assert big.unproductive().empty


def test_resnet_rows_can_be_probably_unproductive():
    a = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 128, 128))
    status = {r.name: r.productivity for r in a.layers}
    # layer4.1.add: hull 435 > 128, shortcut-only path 11 <= 128
    assert status["layer4.1.add"] == "probably unproductive"
    # layer4.1.conv2: smallest path 11 + 2*2*32 = 139 > 128 on both axes
    assert status["layer4.1.conv2"] == "unproductive"
    assert status["fc"] is None  # not spatial


def test_input_resolution_range_is_where_the_fields_fit():
    a = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    none_unproductive, none_probably = a.input_resolution_range()
    assert none_unproductive == (139, 139) and none_probably == (435, 435)
    # confirmed by analyzing at those sizes and one pixel less
    at = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 139, 139))
    assert set(at.to_pandas()["productivity"].dropna()) <= {"productive", "probably unproductive"}
    below = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 138, 138))
    assert "unproductive" in set(below.to_pandas()["productivity"])
    at = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 435, 435))
    assert at.unproductive().empty


def test_smallest_input_keeps_the_aspect_ratio():
    # (40, 10) needs the width to reach 10: 10/64 of the input, so 5 x 10
    assert smallest_input([(40, 10)], (32, 64)) == (5, 10)
    assert smallest_input([(7, 7), (20, 20)], (10, 10)) == (20, 20)
