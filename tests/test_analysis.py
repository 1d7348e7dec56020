"""cnnviz.analyze: per-op rules, totals against independent oracles, bad input, model safety.

Oracles: expected values are written as the arithmetic that gives them, or measured in the test
with FlopCounterMode (MACs), torchinfo (shapes and params) or a real CPU forward (shapes).
Receptive fields are checked against a gradient oracle in test_receptive_oracle.py.
"""

from __future__ import annotations

import collections
import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
import torchinfo
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnviz
from cnnviz import zoo


def flop_counter_macs(model: nn.Module, size) -> int:
    """FlopCounterMode FLOPs / 2 on meta tensors (REFERENCE.md section 1)."""
    if any(not p.is_meta for p in model.parameters()):
        model = copy.deepcopy(model).to("meta")
    x = torch.empty(size, device="meta")
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(x)
    return fc.get_total_flops() // 2


# --------------------------------------------------------------------------- rule tables
# (module, input size, expected output shape, params, MACs, extra ops). MACs follow
# FlopCounterMode's formulas; extra ops follow the convention in cnnviz/rules/__init__.py.
RULE_CASES = [
    # conv: N * out positions * C_out * C_in/groups * k*k; bias adds 1 per output element
    (
        nn.Conv2d(3, 8, 3),
        (1, 3, 8, 8),
        (1, 8, 6, 6),
        8 * 3 * 3 * 3 + 8,
        6 * 6 * 8 * 3 * 9,
        6 * 6 * 8,
    ),
    (
        nn.Conv2d(4, 8, 3, stride=2, padding=1, groups=2, bias=False),
        (2, 4, 9, 9),
        (2, 8, 5, 5),
        8 * 2 * 9,
        2 * 5 * 5 * 8 * 2 * 9,
        0,
    ),
    (
        nn.Conv2d(2, 4, (3, 5), stride=(1, 2), padding=(1, 0), bias=False),
        (1, 2, 6, 11),
        (1, 4, 6, 4),
        4 * 2 * 15,
        6 * 4 * 4 * 2 * 15,
        0,
    ),
    (
        nn.Conv2d(2, 2, 3, padding="same", dilation=2, bias=False),
        (1, 2, 7, 7),
        (1, 2, 7, 7),
        2 * 2 * 9,
        49 * 2 * 2 * 9,
        0,
    ),
    (nn.Conv1d(2, 4, 5, dilation=2), (1, 2, 20), (1, 4, 12), 4 * 2 * 5 + 4, 12 * 4 * 2 * 5, 12 * 4),
    (nn.Conv3d(1, 2, 3, bias=False), (1, 1, 5, 5, 5), (1, 2, 3, 3, 3), 2 * 27, 27 * 2 * 27, 0),
    # transposed conv (FlopCounterMode): N * in positions * C_in * C_out/groups * k*k
    (
        nn.ConvTranspose2d(4, 2, 2, stride=2, bias=False),
        (1, 4, 5, 5),
        (1, 2, 10, 10),
        4 * 2 * 4,
        25 * 4 * 2 * 4,
        0,
    ),
    # linear: rows * in * out; bias adds rows * out
    (nn.Linear(10, 5), (2, 10), (2, 5), 10 * 5 + 5, 2 * 10 * 5, 2 * 5),
    (nn.Linear(10, 5, bias=False), (2, 3, 10), (2, 3, 5), 50, 6 * 10 * 5, 0),
    # normalisation: 2 ops per element, no MACs
    (nn.BatchNorm2d(8), (1, 8, 4, 4), (1, 8, 4, 4), 16, 0, 2 * 128),
    (nn.LocalResponseNorm(5), (1, 8, 4, 4), (1, 8, 4, 4), 0, 0, (5 + 3) * 128),
    # pools: max compares k-1 per output, avg adds k
    (nn.MaxPool2d(3, 2), (1, 2, 7, 7), (1, 2, 3, 3), 0, 0, 2 * 9 * (9 - 1)),
    (nn.MaxPool2d(3, 2, ceil_mode=True), (1, 1, 8, 8), (1, 1, 4, 4), 0, 0, 16 * 8),
    (nn.MaxPool2d(3, 2, padding=1, ceil_mode=True), (1, 1, 7, 7), (1, 1, 4, 4), 0, 0, 16 * 8),
    (nn.AvgPool2d(2), (1, 3, 8, 8), (1, 3, 4, 4), 0, 0, 3 * 16 * 4),
    (nn.MaxPool1d(2), (1, 3, 9), (1, 3, 4), 0, 0, 3 * 4 * 1),
    (nn.AdaptiveAvgPool2d(1), (1, 4, 7, 7), (1, 4, 1, 1), 0, 0, 4 * 49),
    (nn.AdaptiveAvgPool2d((2, 3)), (1, 4, 4, 6), (1, 4, 2, 3), 0, 0, 4 * 24),
    # activations and dropout: 1 op per element (dropout is free in eval)
    (nn.ReLU(), (1, 4, 3, 3), (1, 4, 3, 3), 0, 0, 36),
    (nn.GELU(), (2, 5), (2, 5), 0, 0, 10),
    (nn.Dropout(0.5), (2, 5), (2, 5), 0, 0, 0),
    (nn.Flatten(), (2, 3, 4, 4), (2, 48), 0, 0, 0),
    (nn.Upsample(scale_factor=2), (1, 2, 3, 3), (1, 2, 6, 6), 0, 0, 2 * 36),
]


@pytest.mark.parametrize(
    ("module", "size", "shape", "params", "macs", "extra"),
    RULE_CASES,
    ids=[f"{type(c[0]).__name__}-{i}" for i, c in enumerate(RULE_CASES)],
)
def test_rule_table(module, size, shape, params, macs, extra):
    a = cnnviz.analyze(module, size)
    (row,) = a.layers
    assert row.output_shape == shape
    assert (row.params, row.macs, row.flops, row.extra_ops) == (params, macs, 2 * macs, extra)
    with torch.no_grad():  # oracle: a real CPU forward gives the same shape
        assert tuple(module.eval()(torch.randn(size)).shape) == shape
    assert a.total_macs == flop_counter_macs(module, size)


class Functional(nn.Module):
    """Functional ops only; each should become its own row, named under its caller."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = F.relu(self.conv(x))
        z = y + y
        z = z * 2
        w = torch.cat([z, y], dim=1)
        w = torch.cat([w, w], 1)
        return F.adaptive_avg_pool2d(w, 1).flatten(1)


def test_functional_ops_are_rows():
    a = cnnviz.analyze(Functional(), (1, 3, 8, 8))
    names = [r.name for r in a.layers]
    assert names == ["conv", "relu", "add", "mul", "cat", "cat#2", "adaptive_avg_pool2d", "flatten"]
    rows = {r.name: r for r in a.layers}
    assert rows["cat"].output_shape == (1, 8, 8, 8)
    assert rows["cat#2"].output_shape == (1, 16, 8, 8)
    assert rows["add"].extra_ops == 4 * 64 and rows["add"].kind == "elementwise"
    assert rows["cat"].kind == "merge" and not rows["cat"].is_module
    assert rows["flatten"].rf_global


def test_functional_rows_named_under_caller():
    a = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    names = [r.name for r in a.layers]
    assert "layer1.0.add" in names and "layer1.0.relu#2" in names
    assert "layer4.1.add" in names
    # A module called twice: relu in BasicBlock runs after conv1/bn1 and after the add.
    assert (
        names.index("layer1.0.relu") < names.index("layer1.0.add") < names.index("layer1.0.relu#2")
    )


# --------------------------------------------------------------------------- zoo vs oracles
ZOO_CASES = [(name, {}) for name in zoo.list_models()] + [
    ("resnet50", {"shortcut": "A"}),
    ("resnet50", {"shortcut": "C"}),
    ("resnet50", {"shortcut": "none"}),
    ("resnet18", {"block": "bottleneck"}),
    ("vgg16", {"batch_norm": True}),
    ("googlenet", {"aux_logits": True}),
    ("googlenet", {"five_by_five": True}),
    ("resnet_cifar", {"depth": 8, "shortcut": "B"}),
    ("conv_stack", {"n": 3, "kernel_size": 5, "dilation": 2, "stride": 2}),
]


def _leaves(summary):
    return [layer for layer in summary.summary_list if layer.is_leaf_layer]


@pytest.mark.parametrize(("name", "config"), ZOO_CASES, ids=[f"{n}{c}" for n, c in ZOO_CASES])
def test_zoo_against_flopcounter_and_torchinfo(name, config):
    model = zoo.get_model(name, device="meta", **config).eval()
    size = model.default_input_size
    a = cnnviz.analyze(model, size)
    assert a.total_macs == flop_counter_macs(model, size)
    assert a.total_flops == 2 * a.total_macs
    s = torchinfo.summary(model, input_size=size, device="meta", verbose=0)
    assert a.total_params == s.total_params
    assert a.trainable_params == s.trainable_params
    leaves = _leaves(s)
    mods = [r for r in a.layers if r.is_module]
    assert len(mods) == len(leaves)
    for ours, theirs in zip(mods, leaves, strict=True):
        assert list(ours.output_shape) == list(theirs.output_size), ours.name
        assert ours.params == theirs.num_params, ours.name
    # column sums are the totals, and by_kind splits them
    df = a.to_pandas()
    assert df["macs"].sum() == a.total_macs
    assert a.by_kind()["macs"].sum() == a.total_macs
    assert not a.fallback_ops


# REFERENCE.md section 2: torchvision metadata and exact FlopCounterMode MACs.
REFERENCE_TOTALS = {
    "alexnet": (61_100_840, 714_188_480),
    "vgg16": (138_357_544, 15_470_264_320),
    "googlenet": (6_624_904, 1_498_376_192),
    "resnet18": (11_689_512, 1_814_073_344),
    "resnet50": (25_557_032, 4_089_184_256),
    "resnet152": (60_192_808, 11_513_626_624),
}
# Papers' depth: AlexNet 8, VGG16 16, GoogLeNet 22 (its paper's table 1), ResNet-n n.
PAPER_DEPTH = {
    "alexnet": 8,
    "vgg16": 16,
    "googlenet": 22,
    "resnet18": 18,
    "resnet50": 50,
    "resnet152": 152,
}


@pytest.mark.parametrize("name", sorted(REFERENCE_TOTALS))
def test_reference_totals_and_depth(name):
    a = cnnviz.analyze(zoo.get_model(name, device="meta"), (1, 3, 224, 224))
    assert (a.total_params, a.total_macs) == REFERENCE_TOTALS[name]
    assert a.weighted_depth == PAPER_DEPTH[name]


def test_cifar_depth_counts_layers():
    # He et al. 2016, section 4.2: 6n+2 weighted layers.
    for depth in (20, 56):
        a = cnnviz.analyze(zoo.get_model(f"resnet{depth}", device="meta"), (1, 3, 32, 32))
        assert a.weighted_depth == depth


def test_params_counted_once_when_tied():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 4)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x))

    a = cnnviz.analyze(Tied(), (1, 4))
    assert a.total_params == 16 + 4 + 4  # one shared 4x4 weight, two biases


# --------------------------------------------------------------------------- memory
def test_activation_bytes_and_peak():
    net = nn.Sequential(*(nn.Conv2d(c, 16, 3, padding=1) for c in (3, 16, 16)))
    a = cnnviz.analyze(net, (1, 3, 32, 32))
    inp, out = 3 * 32 * 32 * 4, 16 * 32 * 32 * 4
    assert a.activation_bytes == inp + 3 * out
    # The caller holds the input; while conv3 runs, conv2's output is alive (conv1's is gone).
    assert a.peak_activation_bytes == inp + 2 * out
    assert [r.output_bytes for r in a.layers] == [out] * 3
    half = cnnviz.analyze(net, (1, 3, 32, 32), dtype="bfloat16")
    assert half.activation_bytes == a.activation_bytes // 2


def test_inplace_ops_allocate_nothing():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True))
    a = cnnviz.analyze(net, (1, 3, 10, 10))
    assert a.activation_bytes == (3 * 100 + 4 * 64) * 4


# --------------------------------------------------------------------------- outputs, modes
def test_unused_params_and_train_mode_outputs():
    m = zoo.get_model("googlenet", aux_logits=True, device="meta")
    a = cnnviz.analyze(m, (1, 3, 224, 224))  # eval: aux heads do not run
    aux = {n for n, _ in m.named_parameters() if n.startswith("aux")}
    assert set(a.unused_params) == aux
    t = cnnviz.analyze(m, (1, 3, 224, 224), mode="train")  # namedtuple of three logits
    assert t.unused_params == ()
    assert t.output_shapes == ((1, 1000),) * 3
    assert t.total_macs > a.total_macs


def test_dict_and_tuple_inputs_and_outputs():
    class TwoIn(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 3)

        def forward(self, image, scale):
            y = self.conv(image) * scale
            return {"map": y, "pooled": y.mean((2, 3))}

    m = TwoIn()
    img, scale = torch.randn(1, 3, 6, 6), torch.ones(1, 1, 1, 1)
    a = cnnviz.analyze(m, inputs={"image": img, "scale": scale})
    b = cnnviz.analyze(m, inputs=(img, scale))
    assert a.output_shapes == b.output_shapes == ((1, 2, 4, 4), (1, 2))
    assert a.receptive_field("mul").size == (3, 3)


def test_meta_and_real_models_agree():
    real = zoo.get_model("resnet_cifar", depth=8)
    meta = zoo.get_model("resnet_cifar", depth=8, device="meta")
    a, b = cnnviz.analyze(real, (2, 3, 32, 32)), cnnviz.analyze(meta, (2, 3, 32, 32))
    assert a.layers == b.layers
    assert (a.total_params, a.total_macs, a.peak_activation_bytes) == (
        b.total_params,
        b.total_macs,
        b.peak_activation_bytes,
    )


def test_model_left_exactly_as_it_was():
    torch.manual_seed(0)
    m = zoo.get_model("resnet_cifar", depth=8)
    m.train()
    m.layer2.eval()  # a mixed state must come back mixed
    m.fc.weight.requires_grad_(False)
    hook = m.conv1.register_forward_hook(lambda *a: None)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    flags = [mod.training for mod in m.modules()]
    hooks = [(len(mod._forward_hooks), len(mod._forward_pre_hooks)) for mod in m.modules()]
    attrs = [sorted(vars(p)) for p in m.parameters()]
    for mode in ("train", "eval"):
        cnnviz.analyze(m, (2, 3, 32, 32), mode=mode)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN running stats too
    assert [mod.training for mod in m.modules()] == flags
    assert [(len(mod._forward_hooks), len(mod._forward_pre_hooks)) for mod in m.modules()] == hooks
    assert [sorted(vars(p)) for p in m.parameters()] == attrs
    assert not m.fc.weight.requires_grad and m.conv1.weight.device.type == "cpu"
    hook.remove()


def test_result_is_plain_data():
    import pickle

    a = cnnviz.analyze(zoo.get_model("alexnet", device="meta"), (1, 3, 224, 224))
    assert pickle.loads(pickle.dumps(a)) == a
    d = json.loads(json.dumps(a.to_dict()))
    assert d["total_params"] == 61_100_840 and len(d["layers"]) == len(a.layers)
    df = a.to_pandas()
    assert list(df["name"]) == [r.name for r in a.layers]
    assert {"rf_size", "rf_stride", "rf_padding", "rf_aligned", "stage", "kind"} <= set(df)
    text = str(a)
    assert "61,100,840" in text and "195x195" in text


def test_rows_carry_the_smallest_field_over_paths():
    # Defect: a row's receptive_field dropped min_size, so .smallest read the hull.
    a = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    add = next(r for r in a.layers if r.name == "layer1.0.add")
    # conv1 7 (S 2) -> maxpool 11 (S 4); the block's convs: 11 + 2*4 + 2*4 = 27; the
    # shortcut keeps the maxpool's 11
    assert (add.rf_size, add.rf_min) == ((27, 27), (11, 11))
    assert add.receptive_field.smallest == (11, 11)
    assert a.to_pandas().loc[add.index, "rf_min"] == (11, 11)


def test_stages_follow_spatial_size():
    a = cnnviz.analyze(zoo.get_model("resnet50", device="meta"), (1, 3, 224, 224))
    by_stage = collections.defaultdict(set)
    for r in a.layers:
        if r.spatial and not r.rf_global:
            by_stage[r.stage].add(r.output_shape[2:])
    # 112, 56, 28, 14, 7: five spatial stages, each a single size
    assert sorted(next(iter(s)) for s in by_stage.values()) == [
        (7, 7),
        (14, 14),
        (28, 28),
        (56, 56),
        (112, 112),
    ]


def test_notebook_reprs_are_compact_tables_with_totals():
    a = cnnviz.analyze(zoo.get_model("resnet152", device="meta"), (1, 3, 224, 224))
    html = a._repr_html_()
    assert html.count("<tr>") < 60 < len(a.layers)  # first and last rows, not all 500+
    assert "conv1" in html and "fc" in html and f"{len(a.layers) - 40} more rows" in html
    assert "60,192,808" in html and "final receptive field" in html
    md = a._repr_markdown_()
    assert md.startswith("| layer") and md.count("\n|") < 60 and "60,192,808" in md
    small = cnnviz.analyze(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()), (1, 3, 5, 5))
    assert "more rows" not in small._repr_html_() and small._repr_html_().count("<tr>") == 3
    odd = cnnviz.analyze(nn.Sequential(nn.Conv2d(3, 4, 3)), (1, 3, 5, 5))
    object.__setattr__(odd, "model_name", "<b>net</b>")
    assert "<b>net</b>" not in odd._repr_html_() and "&lt;b&gt;net&lt;/b&gt;" in odd._repr_html_()


def test_by_kind_splits_alexnet_params():
    # AlexNet: most parameters sit in the fully connected layers.
    k = cnnviz.analyze(zoo.get_model("alexnet", device="meta"), (1, 3, 224, 224)).by_kind()
    conv = (
        64 * 3 * 121
        + 64
        + 192 * 64 * 25
        + 192
        + 384 * 192 * 9
        + 384
        + 256 * 384 * 9
        + 256
        + 256 * 256 * 9
        + 256
    )
    assert k.loc["conv", "params"] == conv
    assert k.loc["linear", "params"] == 61_100_840 - conv


# --------------------------------------------------------------------------- unknown ops
def test_ops_without_a_rule_are_listed_and_rf_unknown():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return torch.cumsum(self.conv(x), dim=3)

    a = cnnviz.analyze(Odd(), (1, 1, 8, 8))
    (u,) = a.fallback_ops
    assert isinstance(u, cnnviz.FallbackOp)
    assert (u.name, u.count, u.where) == ("cumsum", 1, ("",))
    last = a.layers[-1]
    assert last.rf_size is None and "cumsum" in last.rf_reason
    assert "ops without a rule (MACs from FlopCounterMode, RF unknown): cumsum x1" in str(a)


def test_matmul_macs_come_from_flopcounter_formulas():
    class Attn(nn.Module):
        def forward(self, x):  # (N, C, L): a plain attention over positions
            q = x.transpose(1, 2)
            return torch.softmax(q @ x, dim=-1) @ q

    a = cnnviz.analyze(Attn(), (2, 4, 6))
    assert a.total_macs == flop_counter_macs(Attn(), (2, 4, 6)) == 2 * (6 * 4 * 6 + 6 * 6 * 4)


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("name", "size", "needles"),
    [
        (
            "alexnet",
            (1, 3, 32, 32),
            ["1x3x32x32 is too small", "`features.12`", "MaxPool2d", "0x0 from 1x1"],
        ),
        ("resnet18", (1, 4, 224, 224), ["`conv1`", "Conv2d", "expects 3 input channels, got 4"]),
        ("resnet18", (1, 3, 224), ["`conv1`", "4-d input", "unbatched", "with 1 channels"]),
        ("resnet18", (1, 3, 0, 224), ["zero size at dim 2"]),
        ("resnet18", (1, 3, -2, 224), ["negative size at dim 2"]),
        ("resnet18", (1, 3, 224.5, 224), ["sequence of ints"]),
    ],
)
def test_bad_input_errors_name_layer_and_shape(name, size, needles):
    with pytest.raises(cnnviz.AnalysisError) as e:
        cnnviz.analyze(zoo.get_model(name, device="meta"), size)
    for needle in needles:
        assert needle in str(e.value)


def test_forward_that_raises_names_the_layer():
    class Boom(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Conv2d(3, 3, 1)
            self.inner = nn.Sequential(nn.Identity())

        def forward(self, x):
            x = self.first(x)
            raise RuntimeError("boom")

    with pytest.raises(cnnviz.AnalysisError, match=r"RuntimeError: boom.*last layer.*`first`"):
        cnnviz.analyze(Boom(), (1, 3, 4, 4))


def test_data_dependent_forward_is_explained():
    class Branchy(nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(cnnviz.AnalysisError, match="meta tensors"):
        cnnviz.analyze(Branchy(), (1, 3, 4, 4))


def test_argument_errors():
    with pytest.raises(cnnviz.AnalysisError, match="exactly one"):
        cnnviz.analyze(nn.ReLU())
    with pytest.raises(cnnviz.AnalysisError, match="mode"):
        cnnviz.analyze(nn.ReLU(), (1, 2), mode="test")
    with pytest.raises(cnnviz.AnalysisError, match="dtype"):
        cnnviz.analyze(nn.ReLU(), (1, 2), dtype="int3")
    with pytest.raises(cnnviz.AnalysisError, match=r"nn\.Module"):
        cnnviz.analyze("resnet50", (1, 2))


def test_receptive_field_lookup():
    a = cnnviz.analyze(zoo.get_model("resnet50", device="meta"), (1, 3, 224, 224))
    assert a.receptive_field("layer4").size == (427, 427)  # REFERENCE.md section 3
    assert a.receptive_field().size == (427, 427)
    assert a.receptive_field("").is_global  # the whole model's output (after fc)
    with pytest.raises(KeyError, match="layer4"):
        a.receptive_field("layer44")


def test_large_model_costs_no_memory():
    # 16x wider VGG-16 on meta: about 35 billion parameters, counted without allocating.
    class Wide(nn.Module):
        def __init__(self, w=16):
            super().__init__()
            cfg = [
                64,
                64,
                "M",
                128,
                128,
                "M",
                256,
                256,
                256,
                "M",
                512,
                512,
                512,
                "M",
                512,
                512,
                512,
                "M",
            ]
            layers, c = [], 3
            for v in cfg:
                if v == "M":
                    layers.append(nn.MaxPool2d(2))
                else:
                    layers += [nn.Conv2d(c, v * w, 3, padding=1), nn.ReLU(inplace=True)]
                    c = v * w
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(c * 7 * 7, 1000)

        def forward(self, x):
            return self.fc(self.features(x).flatten(1))

    with torch.device("meta"):
        m = Wide()
    a = cnnviz.analyze(m, (1, 3, 224, 224))
    convs = sum(p.numel() for p in m.features.parameters())
    assert a.total_params == convs + 512 * 16 * 49 * 1000 + 1000
    assert a.total_macs == flop_counter_macs(m, (1, 3, 224, 224))
    assert a.total_params > 1.5e9 and math.isclose(a.total_flops, 2 * a.total_macs)


def test_channel_shuffle_and_memory_formats():
    # ShuffleNet's channel shuffle: view -> transpose -> contiguous -> view; the last view
    # needs the real strides that .contiguous() produces.
    class Shuffle(nn.Module):
        def forward(self, x):
            b, c, h, w = x.shape
            x = x.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, c, h, w)
            y = x.contiguous(memory_format=torch.channels_last)
            return y.to(memory_format=torch.contiguous_format) + 1

    net = nn.Sequential(nn.Conv2d(3, 4, 3), Shuffle(), nn.Conv2d(4, 4, 3))
    a = cnnviz.analyze(net, (1, 3, 8, 8))
    assert [r.output_shape for r in a.layers] == [(1, 4, 6, 6), (1, 4, 6, 6), (1, 4, 4, 4)]
    assert a.receptive_field().size == (5, 5)  # the shuffle only moves channels: 1 + 2 + 2
    assert a.total_macs == flop_counter_macs(net, (1, 3, 8, 8))


# --------------------------------------------------------------------------- review fixes
@pytest.mark.parametrize(
    ("module", "size"),
    [
        (nn.MaxPool2d(3, 2, ceil_mode=True), (1, 1, 2, 2)),
        (nn.MaxPool2d(4, 3, dilation=2, ceil_mode=True), (1, 1, 5, 5)),
        (nn.AvgPool1d(5, 2, 1, ceil_mode=True), (1, 2, 2)),
        (nn.MaxPool2d(2, 2, ceil_mode=True), (1, 1, 7, 7)),
    ],
)
def test_ceil_mode_partial_windows_match_pytorch(module, size):
    # oracle: a real CPU forward
    assert cnnviz.analyze(module, size).layers[0].output_shape == tuple(
        module(torch.randn(size)).shape
    )


def test_googlenet_small_input_like_pytorch():
    m = zoo.get_model("googlenet", device="meta").eval()
    a = cnnviz.analyze(m, (1, 3, 16, 16))  # ceil-mode pools still give 1x1 maps
    assert a.output_shapes == ((1, 1000),)
    assert a.total_macs == flop_counter_macs(m, (1, 3, 16, 16))


def test_where_keeps_the_rf_and_unknown_ops_report_why():
    class Leaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 3, 3), nn.Conv2d(3, 3, 3)

        def forward(self, x):
            y = self.a(x)
            return self.b(torch.where(y > 0, y, 0.1 * y))

    a = cnnviz.analyze(Leaky(), (1, 3, 16, 16))
    assert a.receptive_field().size == (5, 5) and not a.fallback_ops  # 1 + 2 + 2

    class Cum(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(3, 3, 3), nn.Conv2d(3, 3, 3)

        def forward(self, x):
            return self.b(torch.cumsum(self.a(x), 1))

    rf = cnnviz.analyze(Cum(), (1, 3, 16, 16)).receptive_field()
    assert rf.size is None and "cumsum" in rf.reason  # never an earlier layer's RF


def test_tied_weights_counted_once_in_rows():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(16, 16), nn.Linear(16, 16)
            self.b.weight = self.a.weight

        def forward(self, x):
            return self.b(self.a(x))

    a = cnnviz.analyze(Tied(), (2, 16))
    assert [r.params for r in a.layers] == [16 * 16 + 16, 16]  # b only adds its bias
    assert sum(r.params for r in a.layers) == a.total_params == 16 * 16 + 2 * 16


def test_plain_tensor_attributes_are_not_annotated():
    class PosEnc(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.table = torch.zeros(1, 3, 8, 8)

        def forward(self, x):
            return self.conv(x) + self.table.to(x.dtype)

    m = PosEnc()
    cnnviz.analyze(m, (1, 3, 8, 8))
    assert vars(m.table) == {}


def test_keyword_arguments_of_split_and_permute():
    class KW(nn.Module):
        def forward(self, x):
            first, _ = x.chunk(chunks=2, dim=1)
            return torch.permute(first, dims=(0, 2, 3, 1))

    assert cnnviz.analyze(KW(), (1, 4, 8, 6)).output_shapes == ((1, 8, 6, 2),)


def test_train_mode_batch_norm_needs_more_than_one_value():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(ValueError, match="more than 1 value"):  # PyTorch itself refuses
        net.train()(torch.randn(1, 3, 3, 3))
    with pytest.raises(cnnviz.AnalysisError, match="more than 1 value per channel"):
        cnnviz.analyze(net, (1, 3, 3, 3), mode="train")
    assert cnnviz.analyze(net, (1, 3, 3, 3)).output_shapes == ((1, 4, 1, 1),)  # eval is fine


def test_3d_pool_smaller_than_kernel_is_an_error_like_pytorch():
    with pytest.raises(RuntimeError):  # PyTorch itself refuses
        nn.AvgPool3d(5, 1, 2)(torch.randn(1, 1, 2, 2, 4))
    with pytest.raises(cnnviz.AnalysisError, match="smaller than the kernel 5x5x5"):
        cnnviz.analyze(nn.AvgPool3d(5, 1, 2), (1, 1, 2, 2, 4))
