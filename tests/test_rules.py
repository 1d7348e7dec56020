"""The per-op rules: the registry's structure, its public extension API, and op defects.

Expected values come from an independent oracle: a real CPU forward for shapes (whatever torch
returns or raises), the gradient oracle in tests/oracles.py for receptive fields, or
FlopCounterMode for MACs. Where a literal stands beside them it is the same number worked by
hand with Araujo et al.'s formulas (Distill 2019): r += (k'-1) S, S *= s, P += p S.
"""

from __future__ import annotations

import ast
import importlib
import typing
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from oracles import gradient_boxes, oracle_input, oracle_rf_grow, positive_copy
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

import cnnviz
from cnnviz import geometry, receptive
from cnnviz.rules import Out, registry, unregister_rule
from cnnviz.rules import conv as rules_conv
from cnnviz.rules import pool as rules_pool


class Fn(nn.Module):
    """``fn(x)`` inside a container, so that every op is a row of its own."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.unused = nn.Identity()

    def forward(self, x):
        return self.fn(x)


def fallback_names(a) -> list[str]:
    """Names of the ops that ran without a rule (``Analysis.fallback_ops``, formerly
    ``uncounted``)."""
    ops = getattr(a, "fallback_ops", None)
    return [u.name for u in (ops if ops is not None else a.uncounted)]


def rf_tuple(rf) -> tuple:
    return rf.size, rf.stride, rf.padding


def matches_oracle(model: nn.Module, channels: int, start: int = 12):
    """analyze's RF of the model's output == the gradient oracle's, on the oracle's input."""
    o, shape = oracle_rf_grow(model, lambda n: (1, channels, n, n), start)
    rf = cnnviz.analyze(model, shape).receptive_field("")
    assert rf_tuple(rf) == (o.size, o.stride, o.padding), (shape, rf, o)
    assert rf.window(o.unit) == o.boxes[0]
    return rf


# --------------------------------------------------------------------------- structure

FAMILIES = ["casts", "conv", "einsum", "elementwise", "pool", "resample", "shape"]


@pytest.mark.parametrize("family", FAMILIES)
def test_families_import_the_registry_core_never_the_package_or_each_other(family):
    tree = ast.parse(Path(importlib.import_module(f"cnnviz.rules.{family}").__file__).read_text())
    sources = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    rules = {m for m in sources if m and m.startswith("cnnviz.rules")}
    assert "cnnviz.rules.registry" in rules
    assert rules <= {"cnnviz.rules.registry", "cnnviz.rules.binary"}, rules


def test_the_package_hands_the_core_on():
    from cnnviz.rules import RULES, Out, RuleError, op_name  # what the tracer imports

    assert RULES is registry.RULES and Out is registry.Out and RuleError is registry.RuleError
    assert op_name is registry.op_name
    assert cnnviz.register_rule is registry.register_rule
    assert "register_rule" in cnnviz.__all__


def test_shared_geometry_has_one_home():
    from cnnviz.spec import _core

    assert _core.out_len is geometry.out_len
    assert rules_conv.out_len is geometry.out_len  # imported, not defined again
    assert rules_pool.adaptive_window is geometry.adaptive_window
    assert receptive.each_group is not None and not hasattr(receptive, "_each_group")


def test_casts_live_in_their_own_family():
    for f in (torch.Tensor.to, torch.Tensor.contiguous, torch.Tensor.float, torch.Tensor.clone):
        assert registry.RULES[f].fn.__module__ == "cnnviz.rules.casts", f


def test_kinds_are_a_closed_set():
    assert set(typing.get_args(registry.Kind)) == registry.KINDS
    used = {rule.kind for rule in registry.RULES.values()}
    assert used <= registry.KINDS
    assert used | {"other"} == registry.KINDS  # every kind but "other" has a built-in rule
    with pytest.raises(ValueError, match="unknown rule kind 'activations'"):
        registry.register(torch.roll, kind="activations")  # type: ignore[arg-type]
    assert torch.roll not in registry.RULES
    with pytest.raises(ValueError, match="unknown rule kind"):
        cnnviz.register_rule(torch.roll, _scale_rule, kind="matmul")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- register_rule


@torch.library.custom_op("cnnviz_test::scale", mutates_args=())
def my_scale(x: torch.Tensor, s: float) -> torch.Tensor:
    """A custom elementwise op, unknown to cnnviz: ``x * s``."""
    return x * s


@my_scale.register_fake
def _(x, s):
    return torch.empty_like(x)


def _scale_backward(ctx, grad):
    return grad * ctx.s, None


def _scale_setup(ctx, inputs, output):
    ctx.s = inputs[1]


my_scale.register_autograd(_scale_backward, setup_context=_scale_setup)


def _scale_rule(ctx, x, s):
    # every unit keeps its window; one multiply per element, reported as MACs here so that
    # the test sees a rule's MACs reach its row
    return Out(ctx.new(tuple(x.shape), x), ctx.flow(x), macs=x.numel(), extra=0)


def _scaled_net(call=None) -> nn.Module:
    call = call or (lambda x: my_scale(x, 2.0))
    return nn.Sequential(nn.Conv2d(1, 2, 3), Fn(call), nn.ReLU(), nn.Conv2d(2, 2, 3, 2))


def test_an_op_without_a_rule_is_a_fallback_op_with_an_unknown_field():
    a = cnnviz.analyze(_scaled_net(), (1, 1, 12, 12))
    assert fallback_names(a) == ["scale"]
    row = next(r for r in a.layers if r.name == "1.scale")
    assert (row.kind, row.macs, row.rf_size) == ("other", 0, None)
    assert row.rf_reason == "no receptive-field rule for `scale`"
    assert a.receptive_field().size is None


@pytest.mark.parametrize(
    "call",
    [lambda x: my_scale(x, 2.0), lambda x: torch.ops.cnnviz_test.scale(x, 2.0)],
    ids=["custom_op", "torch.ops packet"],
)
def test_a_registered_rule_gives_the_row_its_name_kind_macs_and_window(call):
    net = _scaled_net(call)
    with cnnviz.register_rule(my_scale, _scale_rule, kind="elementwise", name="my_scale"):
        a = cnnviz.analyze(net, (1, 1, 12, 12))
        rf = matches_oracle(net, 1)  # the gradient oracle runs the real op
    assert fallback_names(a) == []
    row = next(r for r in a.layers if r.name == "1.my_scale")
    assert (row.type, row.kind, row.macs) == ("my_scale", "elementwise", 2 * 10 * 10)
    assert row.rf_size == (3, 3)  # the first conv's window passes through
    # conv3, scale, relu, conv3 s2: r 3 + 2 = 5, S 2, P 0 (and the oracle agrees)
    assert rf_tuple(rf) == ((5, 5), (2, 2), (0, 0))
    assert torch.ops.cnnviz_test.scale.default not in registry.RULES  # gone after the block


def test_registering_twice_needs_replace_and_removing_restores():
    handle = cnnviz.register_rule(my_scale, _scale_rule, kind="elementwise")
    try:
        with pytest.raises(ValueError, match=r"already registered.*replace=True"):
            cnnviz.register_rule(my_scale, _scale_rule)
        second = cnnviz.register_rule(my_scale, _scale_rule, kind="other", replace=True)
        assert registry.RULES[torch.ops.cnnviz_test.scale.default].kind == "other"
        second.remove()
        assert registry.RULES[torch.ops.cnnviz_test.scale.default].kind == "elementwise"
        second.remove()  # twice is harmless
    finally:
        handle.remove()
    assert torch.ops.cnnviz_test.scale not in registry.RULES
    with pytest.raises(KeyError, match="no rule was registered"):
        unregister_rule(my_scale)
    cnnviz.register_rule(my_scale, _scale_rule)
    unregister_rule(my_scale)
    assert torch.ops.cnnviz_test.scale.default not in registry.RULES


def test_replacing_a_built_in_rule_and_bringing_it_back():
    built_in = registry.RULES[F.relu]

    def relu_rule(ctx, x, inplace=False):
        return _scale_rule(ctx, x, 1.0)

    with cnnviz.register_rule(F.relu, relu_rule, kind="activation", replace=True) as h:
        assert registry.RULES[F.relu] is h.rule
        row = cnnviz.analyze(nn.Sequential(nn.ReLU()), (1, 1, 4, 4)).layers[0]
        assert row.macs == 16
    assert registry.RULES[F.relu] is built_in


class MyScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * 2


def test_autograd_function_apply_never_reaches_the_tracer():
    # What a TorchFunctionMode receives for MyScale.apply: the ops of its forward, not apply.
    seen = []

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    x = torch.ones(2)
    with Record():
        MyScale.apply(x)
    assert seen == [torch.Tensor.mul]
    with pytest.raises(TypeError, match=r"never reaches __torch_function__.*custom_op"):
        cnnviz.register_rule(MyScale.apply, _scale_rule)
    # so it is traced through: its forward's mul has a rule, and the field is known
    a = cnnviz.analyze(_scaled_net(MyScale.apply), (1, 1, 12, 12))
    assert fallback_names(a) == [] and a.receptive_field().size == (5, 5)


def test_rules_are_keyed_by_function_objects_not_names():
    with pytest.raises(TypeError, match="not by its name"):
        cnnviz.register_rule("cnnviz_test::scale", _scale_rule)
    with pytest.raises(TypeError, match="must be a function"):
        cnnviz.register_rule(my_scale, "rule")


# --------------------------------------------------------------------------- defects (issue #10)

# (pool, input shape): PyTorch on the CPU decides; padding counts for max_pool3d, while
# avg_pool3d refuses an unpadded input under the kernel ("input image smaller than kernel").
POOL3D_CASES = [
    (nn.MaxPool3d(3, 1, 1), (1, 4, 2, 7, 7)),  # torchvision S3D's pool at 16x224x224
    (nn.MaxPool3d(3, 2, 1), (1, 1, 1, 7, 7)),
    (nn.MaxPool3d((3, 3, 3), 1, (1, 1, 1), ceil_mode=True), (1, 1, 2, 5, 5)),
    (nn.MaxPool3d(3, 1, 0), (1, 1, 2, 7, 7)),  # no padding: output 0, refused
    (nn.AvgPool3d(3, 1, 1), (1, 1, 2, 7, 7)),  # refused although padded output is 2
    (nn.AvgPool3d(2, 1, 1), (1, 1, 2, 7, 7)),
    (nn.LPPool3d(2, 3, 1), (1, 1, 2, 7, 7)),
]


@pytest.mark.parametrize(("pool", "shape"), POOL3D_CASES, ids=lambda v: str(v))
def test_3d_pools_accept_what_pytorch_accepts(pool, shape):
    try:
        want = tuple(pool(torch.randn(shape)).shape)
    except RuntimeError:
        with pytest.raises(cnnviz.AnalysisError, match=r"too small|smaller than"):
            cnnviz.analyze(pool, shape)
        return
    assert cnnviz.analyze(pool, shape).output_shapes == (want,)


def test_circular_padding_wraps_so_the_window_is_unknown():
    # Gradient oracle: unit (0, 4) of a circularly padded 3x3 conv also reads row 8 (the last
    # row): its support wraps, so no zero-padding window [-1, 1] describes it.
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular"))
    shape = (1, 1, 9, 9)
    (box,), _ = gradient_boxes(positive_copy(net), oracle_input(shape), [(0, 4)])
    assert box == ((0, 8), (3, 5))
    rf = cnnviz.analyze(net, shape).receptive_field("")
    assert rf.size is None
    assert "circular" in rf.reason and "wraps" in rf.reason


def test_circular_padding_along_one_axis_only_is_unknown_too():
    # F.pad pads the last axis only: border columns wrap, rows do not; the window of a unit
    # is no longer one (r, S, P) per axis
    net = nn.Sequential(Fn(lambda x: F.pad(x, (1, 1, 0, 0), mode="circular")), nn.Conv2d(1, 1, 3))
    shape = (1, 1, 9, 9)
    (box,), _ = gradient_boxes(positive_copy(net), oracle_input(shape), [(4, 0)])
    assert box == ((4, 6), (0, 8))
    assert "circular" in cnnviz.analyze(net, shape).receptive_field("").reason


@pytest.mark.parametrize("mode", ["reflect", "replicate"])
def test_reflect_and_replicate_keep_the_interior_window_with_a_note(mode):
    # Interior units: the gradient oracle's window is the geometric one (k3 p1, then k3 s2:
    # r 1 + 2 + 2 = 5, S 2, P 1); border units read mirrored pixels instead of zeros: a note.
    net = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1, padding_mode=mode), nn.ReLU(), nn.Conv2d(2, 2, 3, 2)
    )
    rf = matches_oracle(net, 1)
    assert rf_tuple(rf) == ((5, 5), (2, 2), (1, 1))
    notes = cnnviz.analyze(net, (1, 1, 16, 16)).notes
    assert any(mode in n and "border" in n for n in notes), notes


DOWNSAMPLING = [
    # (id, resample, input side for n, hand-worked r/S/P of conv3 -> resample -> conv3)
    # conv3 r3 S1 P0; nearest 1/2 picks 2i: r3 S2 P0; conv3: r 3 + 2*2 = 7, S2, P0
    ("scale 0.5", lambda x: F.interpolate(x, scale_factor=0.5), lambda n: n, (7, 2, 0)),
    # size = in/3 exactly (the conv's output a multiple of 3): picks 3i: r3 S3; conv3: 3 + 2*3
    ("size in/3", lambda x: F.interpolate(x, size=x.shape[2] // 3), lambda n: 3 * n + 2, (9, 3, 0)),
    # nearest-exact 1/2 picks floor((i + 0.5) * 2) = 2i + 1: P = 0 - 1*1 = -1, then conv3
    (
        "nearest-exact 0.5",
        lambda x: F.interpolate(x, scale_factor=0.5, mode="nearest-exact"),
        lambda n: n,
        (7, 2, -1),
    ),
    # area is an adaptive average pool; from an even size by 1/2 it is k2 s2: r 3 + 1 = 4, S2;
    # conv3: 4 + 2*2 = 8 (from an odd size the windows are 3 wide: the oracle sees that too)
    (
        "area 0.5",
        lambda x: F.interpolate(x, scale_factor=0.5, mode="area"),
        lambda n: 2 * n + 2,
        (8, 2, 0),
    ),
]


@pytest.mark.parametrize(
    ("name", "resample", "side", "want"), DOWNSAMPLING, ids=[c[0] for c in DOWNSAMPLING]
)
def test_integer_downsampling_is_an_exact_subsampling(name, resample, side, want):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), Fn(resample), nn.Conv2d(2, 2, 3))
    o, shape = oracle_rf_grow(net, lambda n: (1, 1, side(n), side(n)), 6)
    rf = cnnviz.analyze(net, shape).receptive_field("")
    assert rf_tuple(rf) == (o.size, o.stride, o.padding), (shape, o)
    assert rf.window(o.unit) == o.boxes[0]
    r, s, p = want
    assert rf_tuple(rf) == ((r, r), (s, s), (p, p))


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("how", ["scale_factor", "size", "recompute"])
def test_nearest_pick_is_what_pytorch_picks(mode, how):
    # Real CPU resampling of an arange along the last axis reads off the picked index; where
    # nearest_pick claims a fixed step, PyTorch picks exactly start + i * step.
    claimed = 0
    for n in range(1, 25):
        for f in (1 / 2, 1 / 3, 1 / 4, 1 / 5, 0.3, 0.4, 0.7, 1.0, 1.1):
            o = int(n * f)
            if o < 1:
                continue
            x = torch.arange(n, dtype=torch.float32).expand(1, 1, 2, n)
            kw = {"size": (2, o)} if how == "size" else {"scale_factor": (1.0, f)}
            if how == "recompute":
                kw["recompute_scale_factor"] = True
            picked = F.interpolate(x, mode=mode, **kw)[0, 0, 0].long().tolist()
            assert len(picked) == o
            scale = f if how == "scale_factor" else None
            pick = geometry.nearest_pick(n, o, scale, "exact" in mode)
            if pick is not None:
                start, step = pick
                assert picked == [start + i * step for i in range(o)], (n, f, picked)
                claimed += 1
    assert claimed > 30


@pytest.mark.parametrize(
    ("resample", "words"),
    [
        (lambda x: F.interpolate(x, scale_factor=2), "nearest upsampling"),
        (lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"), "bilinear upsampling"),
        (lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear"), "bilinear resampling"),
        (lambda x: F.interpolate(x, size=(12, 4)), "nearest resampling"),  # up and down
    ],
)
def test_other_resampling_stays_unknown_and_says_which(resample, words):
    rf = cnnviz.analyze(nn.Sequential(Fn(resample)), (1, 1, 8, 8)).receptive_field("")
    assert rf.size is None
    assert words in rf.reason


class ChannelEinsum(nn.Module):
    """A 1x1 conv written as an einsum, after a 3x3 conv."""

    def __init__(self, eq: str = "nchw,cd->ndhw"):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)
        self.w = nn.Parameter(torch.rand(3, 4))
        self.eq = eq

    def forward(self, x):
        return torch.einsum(self.eq, self.conv(x), self.w)


def _flop_counter_macs(fn, *args) -> int:
    with FlopCounterMode(display=False) as fc:
        fn(*args)
    return fc.get_total_flops() // 2


@pytest.mark.parametrize("eq", ["nchw,cd->ndhw", "nchw,cd->nhwd", "bchw,cd->bdwh"])
def test_channel_mixing_einsum_has_a_rule(eq):
    net = nn.Sequential(Fn(lambda x: x), ChannelEinsum(eq))
    shape = (2, 2, 9, 9)
    x = torch.randn(shape)
    a = cnnviz.analyze(net, shape)
    row = next(r for r in a.layers if r.name == "1.einsum")
    assert row.output_shape == tuple(net(x).shape)
    m = net[1]
    assert row.macs == _flop_counter_macs(torch.einsum, eq, m.conv(x), m.w)  # 2*7*7*3*4
    assert row.macs == 2 * 7 * 7 * 3 * 4
    assert "einsum" not in fallback_names(a)
    if eq.endswith("hw") or eq.endswith("hwd"):
        # spatial letters pass through: the conv's window (gradient oracle for the first)
        assert rf_tuple(a.receptive_field("1.einsum")) == ((3, 3), (1, 1), (0, 0))
    else:  # h and w swapped: the window is the conv's, its axes swapped in the output
        assert a.receptive_field("1.einsum").size == (3, 3)


def test_channel_mixing_einsum_window_matches_the_oracle():
    matches_oracle(ChannelEinsum(), 2)


@pytest.mark.parametrize(
    "eq",
    [
        "nchw,nchw->nc",  # sums the spatial letters away
        "nchw,hw->nc",  # a spatial letter in the other operand
        "nchw,cd->ndh",  # w summed
        "nchw,cd->ndhh",  # not valid einsum: torch refuses, and so do we
    ],
)
def test_other_einsums_stay_on_the_fallback(eq):
    class E(nn.Module):
        def forward(self, x):
            other = {"nchw": x, "hw": torch.ones(x.shape[2:]), "cd": torch.ones(x.shape[1], 2)}
            return torch.einsum(eq, x, other[eq.split(",")[1].split("-")[0]])

    net = nn.Sequential(nn.Conv2d(1, 2, 3), E())
    shape = (1, 1, 8, 8)
    try:
        net(torch.randn(shape))
    except RuntimeError:
        with pytest.raises(cnnviz.AnalysisError):
            cnnviz.analyze(net, shape)
        return
    a = cnnviz.analyze(net, shape)
    assert a.layers[-1].rf_size is None
    assert "einsum" in a.layers[-1].rf_reason


def test_einsum_takes_its_operands_as_a_list_and_implicit_output():
    class E(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.w = nn.Parameter(torch.ones(2, 4))

        def forward(self, x):
            y = self.conv(x)
            listed = torch.einsum("bchw,cd->bdhw", [y, self.w])
            implicit = torch.einsum("chw,cd", y[0], self.w)  # output "dhw" (alphabetical)
            return listed + implicit

    a = cnnviz.analyze(E(), (1, 1, 8, 8))
    assert a.output_shapes == ((1, 4, 6, 6),)
    assert rf_tuple(a.receptive_field("")) == ((3, 3), (1, 1), (0, 0))


@pytest.mark.parametrize("op", ["sum", "mean", "amax", "amin", "std", "var"])
@pytest.mark.parametrize("dim", [[], ()])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reducing_over_no_dims_reduces_over_all_like_pytorch(op, dim, keepdim):
    def fn(x):
        return getattr(x, op)(dim=dim, keepdim=keepdim)

    shape = (1, 3, 4, 4)
    want = tuple(fn(torch.randn(shape)).shape)  # torch: () or (1, 1, 1, 1)
    a = cnnviz.analyze(nn.Sequential(nn.Conv2d(3, 3, 1), Fn(fn)), shape)
    assert a.output_shapes == (want,)
    assert a.receptive_field(a.layers[-1].name).is_global
