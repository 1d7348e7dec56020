"""Receptive fields (r, S, P) from cnnviz.analyze against an independent gradient oracle.

The oracle (tests/oracles.py) runs a positive float64 copy of the model on real tensors and
reads the RF off the support of the input gradient of one output unit (and of its neighbour,
for S). Unless a comment cites a published table, every expected number below comes from that
gradient oracle; literals next to it are the same numbers, worked by hand with the formulas of
Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural Networks" (Distill
2019): r += (k'-1)S, S *= s, P += pS.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import (
    gradient_boxes,
    oracle_input,
    oracle_rf,
    oracle_rf_grow,
    positive_copy,
    slim_sequential,
)
from torch import nn

import cnnviz
from cnnviz.zoo import PadShortcut, get_model

# --------------------------------------------------------------------------- helpers


def shape_fn(channels: int, ndim: int = 2) -> Callable[[int], tuple[int, ...]]:
    return lambda n: (1, channels, *(n,) * ndim)


def rf_tuple(rf) -> tuple:
    return rf.size, rf.stride, rf.padding


def check(
    model: nn.Module,
    channels: int,
    name: str = "",
    *,
    ndim: int = 2,
    start: int = 16,
    target: str | None = None,
    pick: Callable | None = None,
):
    """analyze's RF for row/container ``name`` == the oracle's, measured on the same input."""
    o, shape = oracle_rf_grow(model, shape_fn(channels, ndim), start, target=target, pick=pick)
    a = cnnviz.analyze(model, shape)
    rf = a.receptive_field(name)
    assert rf_tuple(rf) == (o.size, o.stride, o.padding), (shape, rf, o)
    # window() of the measured unit and its neighbour is exactly the gradient's bounding box
    assert rf.window(o.unit) == o.boxes[0]
    assert rf.window(tuple(i + 1 for i in o.unit)) == o.boxes[1]
    assert not rf.is_global
    return rf, o


def crop_to(t: torch.Tensor, sizes: tuple[int, ...], offsets: tuple[int, ...]) -> torch.Tensor:
    idx = (
        slice(None),
        slice(None),
        *(slice(o, o + n) for o, n in zip(offsets, sizes, strict=True)),
    )
    return t[idx]


# --------------------------------------------------------------------------- hand-built nets


class TwoBranch(nn.Module):
    """y = merge(a(x)[crop_a], b(x)[crop_b]); ``merge`` is "add" or "cat"."""

    def __init__(self, a, b, merge="add", crop_a=None, crop_b=None):
        super().__init__()
        self.a, self.b, self.merge = a, b, merge
        self.crop_a, self.crop_b = crop_a, crop_b

    def forward(self, x):
        ya, yb = self.a(x), self.b(x)
        if self.crop_a is not None:
            ya = self.crop_a(ya)
        if self.crop_b is not None:
            yb = self.crop_b(yb)
        return ya + yb if self.merge == "add" else torch.cat([ya, yb], 1)


class Lambda(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def seq(*mods):
    return nn.Sequential(*mods)


C = nn.Conv2d

# (id, model factory, input channels, ndim, expected (r, S, P) worked by hand or None)
CASES = [
    # 1 + 2 + 2 + 2 = 7; no padding
    (
        "plain",
        lambda: seq(C(1, 2, 3), nn.ReLU(), C(2, 2, 3), nn.ReLU(), C(2, 1, 3)),
        1,
        2,
        ((7, 7), (1, 1), (0, 0)),
    ),
    # k' = 5 then k' = 7: 1 + 4 + 6 = 11, P = 2
    (
        "dilation",
        lambda: seq(C(1, 2, 3, dilation=2, padding=2), C(2, 2, 3, dilation=3)),
        1,
        2,
        ((11, 11), (1, 1), (2, 2)),
    ),
    # k3 s2 p1: r3 S2 P1; k5 s3 p2: r 3+4*2=11, S6, P 1+2*2=5; k4 s2 p1: r 11+3*6=29, S12, P11
    (
        "stride_padding",
        lambda: seq(C(1, 2, 3, 2, 1), C(2, 2, 5, 3, 2), nn.ReLU6(), C(2, 2, 4, 2, 1)),
        1,
        2,
        ((29, 29), (12, 12), (11, 11)),
    ),
    # per axis: rows k2 d2 (k'3) s1 p1, cols k5 s3 p2; then k(3,2) s(2,1) groups=2
    (
        "per_axis",
        lambda: seq(C(1, 2, (2, 5), (1, 3), (1, 2), (2, 1)), C(2, 2, (3, 2), (2, 1), groups=2)),
        1,
        2,
        ((5, 8), (2, 3), (1, 2)),
    ),
    # holes: cols k1 s3 (r1 S3), then k3 d2 s2 p1: r 1 + 4*3 = 13, S 6, P 3; the support is
    # {0, 6, 12} + offset, so a window clipped by padding need not touch the border (the oracle
    # must grow the input until two sizes agree)
    (
        "holes",
        lambda: seq(C(1, 2, 1, (1, 3)), C(2, 2, (1, 3), (1, 2), (0, 1), (1, 2))),
        1,
        2,
        ((1, 13), (1, 6), (0, 3)),
    ),
    ("even_kernels", lambda: seq(C(1, 2, 2), C(2, 2, 4, 2, 2), C(2, 2, 2, 3)), 1, 2, None),
    (
        "max_pool",
        lambda: seq(C(1, 2, 3, padding=1), nn.MaxPool2d(3, 2, 1), C(2, 2, 3), nn.MaxPool2d(2)),
        1,
        2,
        None,
    ),
    (
        "max_pool_ceil",
        lambda: seq(
            C(1, 2, 3),
            nn.MaxPool2d(2, 2, ceil_mode=True),
            C(2, 2, 3),
            nn.MaxPool2d(3, 2, 1, ceil_mode=True),
        ),
        1,
        2,
        None,
    ),
    (
        "max_pool_dilated",
        lambda: seq(C(1, 2, 3), nn.MaxPool2d(3, 1, 1, dilation=2), C(2, 2, 2)),
        1,
        2,
        None,
    ),
    (
        "avg_pool",
        lambda: seq(
            C(1, 2, 3),
            nn.AvgPool2d(3, 2, 1),
            C(2, 2, 3),
            nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False),
        ),
        1,
        2,
        None,
    ),
    (
        "bn_dropout_lrn",
        lambda: seq(
            C(1, 4, 3),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.LocalResponseNorm(2),
            nn.Dropout(0.5),
            C(4, 2, 3, 2),
        ),
        1,
        2,
        ((5, 5), (2, 2), (0, 0)),  # 3 + 2 = 5: BN, ReLU, LRN, dropout change nothing
    ),
    # 1-d: k4 s2 p1 -> r4 S2 P1; pool k3 s2 p1 -> r8 S4 P3; k3 d2 -> r24 S4 P3
    (
        "conv1d",
        lambda: seq(
            nn.Conv1d(1, 2, 4, 2, 1),
            nn.MaxPool1d(3, 2, 1, ceil_mode=True),
            nn.Conv1d(2, 2, 3, dilation=2),
        ),
        1,
        1,
        ((24,), (4,), (3,)),
    ),
    (
        "conv3d",
        lambda: seq(
            nn.Conv3d(1, 2, (3, 1, 3), (1, 2, 2), (1, 0, 1)),
            nn.ReLU(),
            nn.Conv3d(2, 2, 2, 2),
            nn.MaxPool3d(2, 1),
        ),
        1,
        3,
        None,
    ),
    ("avg_pool1d", lambda: seq(nn.Conv1d(1, 2, 5, 2), nn.AvgPool1d(3, 3, 1)), 1, 1, None),
    # strided slicing: unit i of x[::2] is old unit 2i
    (
        "slice_stride",
        lambda: seq(C(1, 2, 3, padding=1), Lambda(lambda x: x[:, :, ::2, ::2]), C(2, 2, 3)),
        1,
        2,
        ((7, 7), (2, 2), (1, 1)),
    ),
    (
        "slice_offsets",
        lambda: seq(C(1, 2, 3), Lambda(lambda x: x[:, :, 1::2, 2::3]), C(2, 2, 3, padding=1)),
        1,
        2,
        None,
    ),
    # F.pad (W: 2 left, 1 right; H: 0 top, 3 bottom) shifts P by pad * S
    (
        "pad_spatial",
        lambda: seq(C(1, 2, 3, 2), Lambda(lambda x: F.pad(x, (2, 1, 0, 3))), C(2, 2, 3)),
        1,
        2,
        ((7, 7), (2, 2), (0, 4)),
    ),
    # negative F.pad crops
    (
        "pad_negative",
        lambda: seq(C(1, 2, 3), Lambda(lambda x: F.pad(x, (-1, 0, 2, -2))), C(2, 2, 3, 2)),
        1,
        2,
        None,
    ),
    # residual: conv3 p1 -> conv3 p1 (r5) + identity (r1), same centre
    (
        "residual_aligned",
        lambda: TwoBranch(
            seq(C(2, 2, 3, padding=1), nn.ReLU(), C(2, 2, 3, padding=1)), nn.Identity()
        ),
        2,
        2,
        ((5, 5), (1, 1), (2, 2)),
    ),
    (
        "residual_strided_1x1",
        lambda: TwoBranch(seq(C(2, 2, 3, 2, 1), C(2, 2, 3, padding=1)), C(2, 2, 1, 2)),
        2,
        2,
        ((7, 7), (2, 2), (3, 3)),
    ),
    # concat of 1x1, 3x3 and 5x5 (all "same"): hull = 5x5
    ("concat_kernels", lambda: ConcatNet(), 1, 2, ((5, 5), (1, 1), (2, 2))),
    ("option_a_block", lambda: OptionABlock(2, 4), 2, 2, ((7, 7), (2, 2), (3, 3))),
]


class ConcatNet(nn.Module):
    """Inception-like: cat of a 1x1 (channels 0-1), 3x3 (2-3) and 5x5 (4-5) branch."""

    def __init__(self):
        super().__init__()
        self.b1 = C(1, 2, 1)
        self.b3 = C(1, 2, 3, padding=1)
        self.b5 = C(1, 2, 5, padding=2)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x)], 1)


class OptionABlock(nn.Module):
    """ResNet basic block with a stride-2 conv path and an option-A shortcut (slice + F.pad)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = C(cin, cout, 3, 2, 1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = C(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = PadShortcut(cin, cout, 2)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + self.short(x))


@pytest.mark.parametrize(
    ("factory", "channels", "ndim", "expect"),
    [pytest.param(*c[1:], id=c[0]) for c in CASES],
)
def test_hand_built_matches_oracle(factory, channels, ndim, expect):
    torch.manual_seed(0)
    rf, _ = check(factory(), channels, ndim=ndim)
    assert rf.aligned
    if expect is not None:  # hand arithmetic with Araujo et al.'s formulas
        assert rf_tuple(rf) == expect


def test_golden_non_square_kernels():
    # google-research/receptive_field's golden graph (its tests): conv k=(3,5) s=2
    # then conv k=(3,1) s=2 (VALID padding) -> r = 7 (rows) x 5 (cols), S = 4, P = 0.
    net = seq(C(1, 2, (3, 5), 2), C(2, 2, (3, 1), 2))
    rf, _ = check(net, 1)
    assert rf_tuple(rf) == ((7, 5), (4, 4), (0, 0))


def test_unaligned_branches_hull():
    # As in google-research/receptive_field's tests, two branches whose centres differ are
    # reported as unaligned. Branch a: conv3 sees [i, i+2]; branch b: the same conv shifted by
    # 2 units sees [i+2, i+4]; hull [i, i+4]: r = 5 > 3 (gradient oracle).
    def net():
        return TwoBranch(
            C(1, 2, 3),
            C(1, 2, 3),
            crop_a=lambda t: t[:, :, :-2, :-2],
            crop_b=lambda t: t[:, :, 2:, 2:],
        )

    rf, o = check(net(), 1)
    assert rf.aligned is False
    assert rf.size == o.size == (5, 5)
    assert rf_tuple(rf) == ((5, 5), (1, 1), (0, 0))
    # a 2x2 conv (centre i + 0.5) added to a 3x3 "same" conv (centre i): hull [i-1, i+1]
    net2 = TwoBranch(C(1, 2, 2), C(1, 2, 3, padding=1), crop_b=lambda t: t[:, :, :-1, :-1])
    rf2, _ = check(net2, 1)
    assert rf2.aligned is False
    assert rf_tuple(rf2) == ((3, 3), (1, 1), (1, 1))


def test_unaligned_concat():
    # concat of the two unaligned branches above: the reported RF is the hull (gradient oracle)
    net = TwoBranch(
        C(1, 2, 3),
        C(1, 2, 3),
        merge="cat",
        crop_a=lambda t: t[:, :, :-2, :-2],
        crop_b=lambda t: t[:, :, 2:, 2:],
    )
    rf, _ = check(net, 1)
    assert rf.aligned is False
    assert rf.size == (5, 5)


@pytest.mark.parametrize(
    ("lo", "hi", "expect_r"),
    [(0, 2, 1), (2, 4, 3), (4, 6, 5), (1, 3, 3), (0, 6, 5), (3, 5, 5)],
)
def test_concat_channel_groups(lo, hi, expect_r):
    # ConcatNet's channels 0-1 see 1x1, 2-3 see 3x3, 4-5 see 5x5 (gradient oracle on the slice;
    # a slice spanning groups sees the hull of its groups)
    class Sliced(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = ConcatNet()

        def forward(self, x):
            return self.body(x)[:, lo:hi]

    rf, _ = check(Sliced(), 1, "getitem")
    assert rf.size == (expect_r, expect_r)
    # the oracle on the concat output itself, restricted to the same channels (pick)
    o2 = oracle_rf(ConcatNet(), (1, 1, 16, 16), pick=lambda y: y[:, lo:hi])
    assert o2.size == (expect_r, expect_r)


def test_concat_then_module_on_channel_slice():
    # a module applied to x[:, :2] of the concat sees only the 1x1 branch; one applied to the
    # whole concat sees the hull (gradient oracle)
    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = ConcatNet()
            self.small = C(2, 2, 3)
            self.big = C(6, 2, 3)

        def forward(self, x):
            y = self.body(x)
            return self.small(y[:, :2]), self.big(y)

    m = Head()
    for name, idx, r in (("small", 0, 3), ("big", 1, 7)):
        rf, _ = check(m, 1, name, pick=lambda out, i=idx: out[i])
        assert rf.size == (r, r)


@pytest.mark.parametrize("how", ["split", "chunk", "int_index"])
def test_split_of_concat_keeps_groups(how):
    # the first part of ConcatNet's output (channels 0-1, or channel 0) is the 1x1 branch: r = 1
    # (gradient oracle)
    class Part(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = ConcatNet()

        def forward(self, x):
            y = self.body(x)
            if how == "split":
                return y.split([2, 4], 1)[0]
            if how == "chunk":
                return torch.chunk(y, 3, 1)[0]
            return y[:, 0, None]

    rf, _ = check(Part(), 1)
    assert rf.size == (1, 1)


def test_depthwise_conv_after_concat_keeps_groups():
    # A depthwise (groups = channels) 3x3 conv does not mix channels, so channels 0-1 after it
    # still see only the 1x1 branch, grown by the 3x3: r = 3, P = 1 (gradient oracle).
    class DW(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = ConcatNet()
            self.dw = C(6, 6, 3, padding=1, groups=6)

        def forward(self, x):
            return self.dw(self.body(x))[:, :2]

    rf, _ = check(DW(), 1, "getitem")
    assert rf_tuple(rf) == ((3, 3), (1, 1), (1, 1))


def test_add_plain_tensor_to_concat_keeps_groups():
    # cat(1x1, 5x5) + (a plain 3x3 conv): channels 0-1 see hull(1x1, 3x3) = 3x3 (gradient
    # oracle): an ungrouped operand adds its window to every channel group.
    class AddCat(nn.Module):
        def __init__(self):
            super().__init__()
            self.b1 = C(1, 2, 1)
            self.b5 = C(1, 2, 5, padding=2)
            self.b3 = C(1, 4, 3, padding=1)

        def forward(self, x):
            return (torch.cat([self.b1(x), self.b5(x)], 1) + self.b3(x))[:, :2]

    rf, _ = check(AddCat(), 1, "getitem")
    assert rf_tuple(rf) == ((3, 3), (1, 1), (1, 1))


def test_transpose_and_permute_swap_axes():
    # a (1,3) stride (1,2) conv, then H and W swapped: a (5,1) stride (3,1) conv now runs along
    # the input's W; the result is swapped back (gradient oracle: rows 1/1/0, cols 11/6/0)
    class Swap(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = C(1, 2, (1, 3), stride=(1, 2))
            self.b = C(2, 2, (5, 1), stride=(3, 1))

        def forward(self, x):
            return self.b(self.a(x).transpose(2, 3)).permute(0, 1, 3, 2)

    rf, _ = check(Swap(), 1)
    assert rf_tuple(rf) == ((1, 11), (1, 6), (0, 0))


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate"])
def test_padding_modes_and_same(mode):
    # reflect/replicate pad with F.pad first: interior units keep zero padding's geometry
    # (circular wraps around instead: tests/test_rules.py); "same" with an even (effective)
    # kernel pads total d(k-1), the smaller half on the left (gradient oracle)
    net = seq(
        C(1, 2, 3, 2, padding=(1, 2), padding_mode=mode),
        C(2, 2, 4, padding="same", padding_mode=mode),
        C(2, 2, (2, 3), padding="same", dilation=(3, 1), padding_mode=mode),
    )
    check(net, 1)


def test_channel_pad_sees_nothing_but_keeps_window():
    # option A: F.pad on the channel dim adds zero channels; the real channels keep x's window
    # (gradient oracle on the padded tensor: the zero channels carry no gradient)
    net = seq(C(2, 2, 3), PadShortcut(2, 4, 2))
    rf, _ = check(net, 2)
    assert rf_tuple(rf) == ((3, 3), (2, 2), (0, 0))


def test_different_strides_unknown():
    # branch a: k2 s2 (S=2); branch b: first half of a 1x1 conv (S=1). The oracle shows that the
    # hull of the two windows changes size from unit to unit, so no single (r, S, P) exists.
    net = TwoBranch(
        C(1, 2, 2, 2),
        C(1, 2, 1),
        crop_b=lambda t: t[:, :, : t.shape[2] // 2, : t.shape[3] // 2],
    )
    shape = (1, 1, 16, 16)
    rf = cnnviz.analyze(net, shape).receptive_field("")
    assert rf.size is None
    assert "strides" in rf.reason
    boxes, _ = gradient_boxes(positive_copy(net), oracle_input(shape), [(2, 2), (3, 3), (4, 4)])
    widths = {hi - lo + 1 for box in boxes for lo, hi in box}
    assert len(widths) > 1


# --------------------------------------------------------------------------- adaptive / global


def test_adaptive_avg_pool_divisible():
    # 8 -> 4 acts like k = s = 2: after conv3 p1 (r3 S1 P1): r 4, S 2, P 1 (gradient oracle)
    net = seq(C(1, 2, 3, padding=1), nn.AdaptiveAvgPool2d(4))
    shape = (1, 1, 8, 8)
    o = oracle_rf(net, shape, n_units=2)
    rf = cnnviz.analyze(net, shape).receptive_field("")
    assert rf_tuple(rf) == (o.size, o.stride, o.padding) == ((4, 4), (2, 2), (1, 1))


def test_adaptive_avg_pool_ragged_unknown():
    # 8 -> 3: windows [0,2], [2,5], [5,7] have sizes 3, 4, 3 (gradient oracle): unknown
    net = seq(C(1, 2, 1), nn.AdaptiveAvgPool2d(3))
    shape = (1, 1, 8, 8)
    a = cnnviz.analyze(net, shape)
    rf = a.receptive_field("")
    assert rf.size is None
    assert "varying size" in rf.reason
    boxes, _ = gradient_boxes(positive_copy(net), oracle_input(shape), [(0, 0), (1, 1), (2, 2)])
    assert [box[0] for box in boxes] == [(0, 2), (2, 5), (5, 7)]


@pytest.mark.parametrize("head", ["adaptive", "mean", "flatten_linear"])
def test_global(head):
    # every output unit's gradient covers the whole input (gradient oracle)
    if head == "adaptive":
        tail = [nn.AdaptiveAvgPool2d(1)]
        pick = None
    elif head == "mean":
        tail = [Lambda(lambda x: x.mean((2, 3), keepdim=True))]
        pick = None
    else:
        tail = [nn.Flatten(), nn.Linear(2 * 5 * 5, 3)]

        def pick(y):
            return y[:, :, None, None]

    net = seq(C(1, 2, 3), nn.ReLU(), nn.MaxPool2d(2), *tail)
    shape = (1, 1, 12, 12)
    a = cnnviz.analyze(net, shape)
    last = a.layers[-1]
    assert last.rf_global
    assert last.rf_size == (12, 12)
    rf = a.receptive_field("")
    assert rf.is_global
    assert rf.size == (12, 12)
    # receptive_field() without a name is the last non-global output: the max-pool's
    pool = a.receptive_field()
    assert not pool.is_global
    assert rf_tuple(pool) == ((4, 4), (2, 2), (0, 0))
    boxes, _ = gradient_boxes(positive_copy(net), oracle_input(shape), [(0, 0)], pick=pick)
    assert boxes[0] == ((0, 11), (0, 11))


# --------------------------------------------------------------------------- random networks


def _geom(draw, cum: list[int], pool: bool = False):
    """Per-axis (k, s, p, d) for a 2-d layer, keeping each axis' total stride <= 4."""
    ks, ss, ps, ds = [], [], [], []
    for a in range(2):
        k = draw(st.integers(1, 4 if pool else 5))
        s = draw(st.integers(1, 3))
        if cum[a] * s > 4:
            s = 1
        cum[a] *= s
        ks.append(k)
        ss.append(s)
        ps.append(draw(st.integers(0, k // 2)))
        ds.append(draw(st.integers(1, 2)))
    return tuple(ks), tuple(ss), tuple(ps), tuple(ds)


def _center_crop(sizes):
    def fn(t):
        offs = tuple((t.shape[2 + a] - n) // 2 for a, n in enumerate(sizes(t)))
        return crop_to(t, sizes(t), offs)

    return fn


class Branch(nn.Module):
    """Two convs of the same stride on one input, centre-cropped to a common size, then added
    or concatenated (the crop shifts a branch's window: exercises slicing too)."""

    def __init__(self, a: nn.Module, b: nn.Module, merge: str):
        super().__init__()
        self.a, self.b, self.merge = a, b, merge

    def forward(self, x):
        ya, yb = self.a(x), self.b(x)
        sizes = tuple(min(p, q) for p, q in zip(ya.shape[2:], yb.shape[2:], strict=True))
        ya = _center_crop(lambda t: sizes)(ya)
        yb = _center_crop(lambda t: sizes)(yb)
        return ya + yb if self.merge == "add" else torch.cat([ya, yb], 1)


@st.composite
def random_nets(draw):
    layers: list[nn.Module] = []
    c = 1
    cum = [1, 1]  # total stride so far, per axis (capped at 4 to keep inputs small)
    for _ in range(draw(st.integers(2, 5))):
        kind = draw(st.sampled_from(["conv", "conv", "pool", "branch"]))
        if kind == "conv":
            k, s, p, d = _geom(draw, cum)
            layers.append(C(c, 2, k, s, p, d))
            c = 2
            if draw(st.booleans()):
                layers += [nn.BatchNorm2d(2), nn.ReLU()]
        elif kind == "pool":
            k, s, p, d = _geom(draw, cum, pool=True)
            layers.append(nn.MaxPool2d(k, s, p, d, ceil_mode=draw(st.booleans())))
        else:
            k, s, p, d = _geom(draw, cum)
            k2 = tuple(draw(st.integers(1, 5)) for _ in range(2))
            p2 = tuple(draw(st.integers(0, kk // 2)) for kk in k2)
            d2 = tuple(draw(st.integers(1, 2)) for _ in range(2))
            merge = draw(st.sampled_from(["add", "cat"]))
            layers.append(Branch(C(c, 2, k, s, p, d), C(c, 2, k2, s, p2, d2), merge))
            c = 4 if merge == "cat" else 2
    return nn.Sequential(*layers)


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(random_nets())
def test_random_nets_match_oracle(net):
    o, shape = oracle_rf_grow(net, shape_fn(1), 20, limit=1500)
    rf = cnnviz.analyze(net, shape).receptive_field("")
    assert rf_tuple(rf) == (o.size, o.stride, o.padding), (net, shape, rf, o)
    assert rf.window(o.unit) == o.boxes[0]


# --------------------------------------------------------------------------- zoo


@pytest.mark.parametrize("shortcut", ["A", "B"])
@pytest.mark.parametrize("stage", ["layer1", "layer2", "layer3"])
def test_resnet_cifar_stages(stage, shortcut):
    # resnet_cifar depth 8 (one basic block per stage), stage outputs vs the gradient oracle:
    # layer1 7/1/3, layer2 13/2/6, layer3 25/4/12 with either shortcut
    m = get_model("resnet_cifar", depth=8, shortcut=shortcut)
    o, shape = oracle_rf_grow(m, shape_fn(3), 32, target=stage)
    rf = cnnviz.analyze(m, shape).receptive_field(stage)
    assert rf_tuple(rf) == (o.size, o.stride, o.padding)
    expect = {"layer1": (7, 1, 3), "layer2": (13, 2, 6), "layer3": (25, 4, 12)}[stage]
    assert rf_tuple(rf) == tuple((v, v) for v in expect)
    assert rf.aligned


def test_conv_stack_zoo():
    m = get_model("conv_stack", n=3, kernel_size=5, channels=2, stride=2, dilation=2)
    check(m, 2, start=64)


@pytest.mark.parametrize(
    ("name", "expect", "start"),
    [
        # torchscan's README table (torchvision variants): alexnet `features` 195 / 32 / 66
        ("alexnet", (195, 32, 66), 280),
        # torchscan's README table: vgg16 `features` 212 / 32 / 90
        ("vgg16", (212, 32, 90), 300),
    ],
)
def test_zoo_features_reference_and_oracle(name, expect, start):
    meta = get_model(name, device="meta")
    rf = cnnviz.analyze(meta, (1, 3, 224, 224)).receptive_field("features")
    assert rf_tuple(rf) == tuple((v, v) for v in expect)
    # gradient oracle on a 2-channel copy of `features` with the same geometry
    slim = slim_sequential(meta.features, 3, width=1)
    o, shape = oracle_rf_grow(slim, shape_fn(3), start)
    assert (o.size, o.stride, o.padding) == rf_tuple(rf)
    rf_big = cnnviz.analyze(meta, shape).receptive_field("features")
    assert rf_tuple(rf_big) == rf_tuple(rf)


@pytest.mark.parametrize(
    ("stage", "expect"),
    [
        # DeLF-pytorch's discussion of torchvision's ResNet v1.5: resnet50 `layer3` 267 / 16 / 133,
        # `layer4` 427 / 32 / 213
        ("layer3", (267, 16, 133)),
        ("layer4", (427, 32, 213)),
    ],
)
def test_resnet50_reference(stage, expect):
    a = cnnviz.analyze(get_model("resnet50", device="meta"), (1, 3, 224, 224))
    rf = a.receptive_field(stage)
    assert rf_tuple(rf) == tuple((v, v) for v in expect)
    assert rf.aligned


# --------------------------------------------------------------------------- folds, writes, tails
class FoldH(nn.Module):
    """CRNN-style: a conv, then H folded into the channels, then a conv along W only."""

    def __init__(self, conv2d: bool):
        super().__init__()
        self.conv2d = conv2d
        self.a = C(1, 2, 3, padding=1)
        self.b = C(16, 2, (1, 3)) if conv2d else nn.Conv1d(16, 2, 3)

    def forward(self, x):
        y = self.a(x)  # (N, 2, 8, W)
        n, c, h, w = y.shape
        return self.b(y.reshape(n, c * h, 1, w) if self.conv2d else y.reshape(n, c * h, w))


@pytest.mark.parametrize("conv2d", [False, True], ids=["conv1d", "conv2d-on-1xW"])
def test_conv_over_folded_channels_sees_the_whole_folded_axis(conv2d):
    # Gradient oracle: every output unit depends on all 8 rows (H was folded into the
    # channels the second conv mixes) and on 3 + 2 = 5 columns. cnnviz: H global, W 5 wide.
    shape = (1, 1, 8, 24)
    a = cnnviz.analyze(FoldH(conv2d), shape)
    rf = a.receptive_field()
    pick = (lambda y: y[:, :, 0]) if conv2d else None  # (N, C, 1, W) -> (N, C, W)

    def model_1d(x):  # the oracle's units index the output's last (W) axis
        return FoldH(conv2d)(x)

    m = positive_copy(FoldH(conv2d))
    x = oracle_input(shape)
    with torch.no_grad():
        y = m(x)
    y = pick(y) if pick else y
    units = [10, 11]
    xb = x.expand(len(units), *x.shape[1:]).clone().requires_grad_(True)
    out = m(xb)
    out = pick(out) if pick else out
    sum(out[b, :, u].sum() for b, u in enumerate(units)).backward()
    for b, u in enumerate(units):
        nz = (xb.grad[b, 0] != 0).nonzero()
        rows = (int(nz[:, 0].min()), int(nz[:, 0].max()))
        cols = (int(nz[:, 1].min()), int(nz[:, 1].max()))
        assert rows == (0, 7)  # all of H
        assert rf.size == (8, cols[1] - cols[0] + 1) == (8, 5)
        assert rf.stride[1] == 1 and -rf.padding[1] + u == cols[0]  # unit u's first column
    assert rf.stride[0] == 0  # every unit sees the same (whole) H


def test_operands_with_swapped_axes_make_the_window_unknown():
    # y + y^T with y from a (5, 1) conv: the oracle shows boxes whose shape depends on the unit
    # (rows 1..5 for unit (3, 3) but a cross for (3, 10)), so no (r, S, P) describes it.
    class AddT(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = C(1, 1, (5, 1), padding=(2, 0))

        def forward(self, x):
            y = self.c(x)
            return y + y.transpose(2, 3)

    shape = (1, 1, 21, 21)
    rf = cnnviz.analyze(AddT(), shape).receptive_field()
    assert rf.size is None and "map to input positions differently" in rf.reason
    boxes, _ = gradient_boxes(positive_copy(AddT()), oracle_input(shape), [(3, 15), (10, 10)])
    sizes = {tuple(hi - lo + 1 for lo, hi in box) for box in boxes}
    assert len(sizes) == 2  # unit-dependent


def test_slice_assignment_adds_what_the_value_sees():
    # y = 1x1 conv; y[:, :1] = (two 5x5 convs)[:, :1]; then a 1x1 conv: 1 + 4 + 4 = 9
    class Write(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = C(1, 2, 1)
            self.b = seq(C(1, 2, 5, padding=2), C(2, 2, 5, padding=2))
            self.head = C(2, 2, 1)

        def forward(self, x):
            y = self.a(x)
            y[:, :1] = self.b(x)[:, :1]
            return self.head(y)

    rf, _ = check(Write(), 1, start=24)
    assert rf_tuple(rf) == ((9, 9), (1, 1), (4, 4))


def test_slice_assignment_into_part_of_a_spatial_axis_is_unknown():
    class Patch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = C(1, 1, 1), C(1, 1, 5, padding=2)

        def forward(self, x):
            y = self.a(x)
            y[:, :, :4] = self.b(x)[:, :, :4]  # rows 0..3 see 5x5, the rest 1x1
            return y

    rf = cnnviz.analyze(Patch(), (1, 1, 16, 16)).receptive_field()
    assert rf.size is None and "part of a spatial axis" in rf.reason
    boxes, _ = gradient_boxes(
        positive_copy(Patch()), oracle_input((1, 1, 16, 16)), [(2, 8), (9, 8)]
    )
    assert boxes[0] != boxes[1] and len({b[0][1] - b[0][0] for b in boxes}) == 2


def test_final_rf_is_never_an_earlier_layers():
    # After PixelUnshuffle (no rule) every later row is unknown: the network's final RF is
    # unknown too, not the 3x3 of the first conv (the oracle's is 14x14, which neither is).
    net = seq(C(1, 4, 3, padding=1), nn.PixelUnshuffle(2), C(16, 8, 3), nn.ReLU(), C(8, 8, 3))
    a = cnnviz.analyze(net, (1, 1, 32, 32))
    assert a.layers[0].rf_size == (3, 3)
    assert a.receptive_field().size is None
    assert (
        "pixel_unshuffle" in a.receptive_field().reason
        or "slides over" in a.receptive_field().reason
    )
    final = next(line for line in str(a).splitlines() if line.startswith("final receptive"))
    assert "unknown" in final


# --------------------------------------------------------------------------- review round 2
class _Op(nn.Module):
    """conv 5x5 (padding 2), then ``fn(y, x)``: each op below keeps or reshapes that window."""

    def __init__(self, fn, out=2):
        super().__init__()
        self.fn = fn
        self.c = C(1, out, 5, padding=2)
        self.side = C(1, 2, 1)

    def forward(self, x):
        return self.fn(self.c(x), x, self)


OPS = {
    "max(dim)": lambda y, x, m: y * y.max(1, keepdim=True)[0],
    "std(dim)": lambda y, x, m: y / y.std(1, keepdim=True),
    "narrow": lambda y, x, m: y.narrow(2, 1, y.shape[2] - 2),
    "pow": lambda y, x, m: y.pow(2) + y**2,
    "normalize": lambda y, x, m: F.normalize(y, dim=1),
    "stack+sum": lambda y, x, m: torch.stack([y, 2 * y]).sum(0),
    "unbind+stack": lambda y, x, m: torch.stack(y.unbind(1), 1),
    "addcmul": lambda y, x, m: torch.addcmul(y, y, y, value=0.5),
    "lp_pool": lambda y, x, m: F.lp_pool2d(y, 2, 3, 2),
}


@pytest.mark.parametrize("fn", list(OPS.values()), ids=list(OPS))
def test_more_ops_keep_the_window(fn):
    rf, _ = check(_Op(fn), 1)
    assert rf.size is not None


def _slice_add(y, x, m):
    y[:, :2].add_(m.c(x))
    return y


def _narrow_add(y, x, m):
    y.narrow(1, 2, 2).add_(m.c(x))
    return y


def _view_mul(y, x, m):
    y.view(y.shape[0], 4, -1).mul_(m.c(x).repeat(1, 2, 1, 1).flatten(2))
    return y


# y = 1x1 conv (4 ch); a 5x5 conv's output written into (part of) y in place, through a view
INPLACE_VIEWS = {"slice add_": _slice_add, "narrow add_": _narrow_add, "view mul_": _view_mul}


class _Write(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn, self.a, self.c, self.head = fn, C(1, 4, 1), C(1, 2, 5, padding=2), C(4, 2, 1)

    def forward(self, x):
        return self.head(self.fn(self.a(x), x, self))


@pytest.mark.parametrize("fn", list(INPLACE_VIEWS.values()), ids=list(INPLACE_VIEWS))
def test_in_place_op_on_a_view_changes_its_base(fn):
    rf, _ = check(_Write(fn), 1)
    assert rf_tuple(rf) == ((5, 5), (1, 1), (2, 2))  # the 5x5 conv reaches the head


BROADCASTS = {
    "y + y[:, :, :1]": lambda y, x, m: y + y[:, :, :1],
    "y * y[:, :, 0] (unsqueezed)": lambda y, x, m: y * y[:, :, 0].unsqueeze(2),
}


@pytest.mark.parametrize("fn", list(BROADCASTS.values()), ids=list(BROADCASTS))
def test_one_position_broadcast_along_an_axis_is_unknown(fn):
    # every row also sees row 0's window: the oracle's boxes change with the unit's row
    shape = (1, 1, 32, 32)
    rf = cnnviz.analyze(_Op(fn), shape).receptive_field()
    assert rf.size is None
    boxes, _ = gradient_boxes(positive_copy(_Op(fn)), oracle_input(shape), [(8, 16), (20, 16)])
    assert (
        boxes[0][0][0] <= 1 and boxes[0][0][1] - boxes[0][0][0] != boxes[1][0][1] - boxes[1][0][0]
    )


def test_a_pool_over_a_whole_axis_is_global():
    # SE-style gate: avg_pool2d(y, y.shape[2:]) covers the whole map, so y * gate sees the
    # whole input (oracle: every unit's box is the full 32x32)
    gate = lambda y, x, m: y * torch.sigmoid(F.avg_pool2d(y, y.shape[2:]))  # noqa: E731
    shape = (1, 1, 32, 32)
    a = cnnviz.analyze(_Op(gate), shape)
    assert a.receptive_field("").is_global
    boxes, _ = gradient_boxes(positive_copy(_Op(gate)), oracle_input(shape), [(5, 5), (20, 9)])
    assert all(box == ((0, 31), (0, 31)) for box in boxes)


def test_expanding_one_row_is_unknown():
    # every row of the result is row 0: the oracle's box stays put while the unit moves 12
    # rows, which no (r, S >= 1, P) describes
    def fn(y, x, m):
        return y[:, :, :1].expand_as(y) + 0

    shape = (1, 1, 32, 32)
    assert cnnviz.analyze(_Op(fn), shape).receptive_field().size is None
    boxes, _ = gradient_boxes(positive_copy(_Op(fn)), oracle_input(shape), [(8, 16), (20, 16)])
    assert boxes[0][0] == boxes[1][0] == (0, 2)


@pytest.mark.parametrize(
    "norm",
    [nn.GroupNorm(2, 2), nn.InstanceNorm2d(2), nn.LayerNorm([2, 32, 32])],
    ids=["group", "instance", "layer"],
)
def test_norms_with_spatial_statistics_keep_the_geometric_rf_and_say_so(norm):
    # The convention: statistics are taken as constants (as for BN at inference), so two
    # 3x3 convs around the norm give 5x5; the oracle shows that strictly every unit sees the
    # whole map through the statistics, and the analysis says so in its notes.
    net = seq(C(1, 2, 3, padding=1), norm, C(2, 2, 3, padding=1))
    a = cnnviz.analyze(net, (1, 1, 32, 32))
    assert rf_tuple(a.receptive_field()) == ((5, 5), (1, 1), (2, 2))
    (note,) = a.notes
    assert "takes them as constants" in note and "`1`" in note
    assert "note: " in str(a)
    boxes, _ = gradient_boxes(positive_copy(net), oracle_input((1, 1, 32, 32)), [(16, 16)])
    assert boxes[0] == ((0, 31), (0, 31))


def test_batch_norm_at_inference_has_no_note():
    net = seq(C(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.LayerNorm(32))  # LN over W only...
    notes = cnnviz.analyze(net, (1, 1, 32, 32)).notes
    assert len(notes) == 1 and notes[0].startswith("layer_norm")  # ...which is spatial too
    assert cnnviz.analyze(seq(C(1, 2, 3), nn.BatchNorm2d(2)), (1, 1, 8, 8)).notes == ()
