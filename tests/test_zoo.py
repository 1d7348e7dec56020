"""Tests for cnnviz.zoo: layouts, parameter counts and MACs against independent oracles.

Oracles: tests/data/torchvision_manifest.json (torchvision 0.29.1's state_dict keys/shapes,
params and MACs; torchvision cannot be installed here), torchvision's weights metadata
(``num_params``; ``_ops`` in GMACs) and exact MACs from ``torch.utils.flop_counter``'s
FlopCounterMode / 2, the papers' own figures, and hand arithmetic written next to each expected
number. Big models are
built on the meta device (no memory, no init); only small ones run on real tensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode

import cnnviz.zoo as zoo
from cnnviz.zoo import (
    ModelInfo,
    Option,
    PadShortcut,
    Registry,
    ZooError,
    conv_stack,
    get_model,
    list_models,
    model_info,
    register_model,
    resnet_cifar,
)

MANIFEST = json.loads((Path(__file__).parent / "data" / "torchvision_manifest.json").read_text())[
    "models"
]

# manifest name -> (zoo name, config)
MANIFEST_BUILDS = {
    "alexnet": ("alexnet", {}),
    **{f"vgg{d}": (f"vgg{d}", {}) for d in (11, 13, 16, 19)},
    **{f"vgg{d}_bn": (f"vgg{d}", {"batch_norm": True}) for d in (11, 13, 16, 19)},
    "googlenet": ("googlenet", {}),
    "googlenet_aux": ("googlenet", {"aux_logits": True}),
    **{f"resnet{d}": (f"resnet{d}", {}) for d in (18, 34, 50, 101, 152)},
}

CIFAR_FAMILY = set(list_models("resnet_cifar"))
SMALL = CIFAR_FAMILY | {"conv_stack", "alexnet_paper"}


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def macs(model: nn.Module, size: tuple[int, ...]) -> int:
    """FlopCounterMode FLOPs / 2 on a meta input, eval mode: the manifest's own definition."""
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(size, device="meta"))
    return counter.get_total_flops() // 2


def bn_params(c: int) -> int:
    return 2 * c  # weight + bias (running stats are buffers)


# ---------------------------------------------------------------------------------------------
# torchvision parity (oracle: the manifest)


def test_manifest_covers_what_we_build():
    assert set(MANIFEST) == set(MANIFEST_BUILDS)


@pytest.mark.parametrize("tv_name", sorted(MANIFEST_BUILDS))
def test_params_and_state_dict_match_torchvision(tv_name):
    name, config = MANIFEST_BUILDS[tv_name]
    model = get_model(name, device="meta", **config)
    expected = MANIFEST[tv_name]
    assert n_params(model) == expected["params"]
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == expected["state_dict"]  # same keys, same shapes, same order


@pytest.mark.parametrize("tv_name", sorted(MANIFEST_BUILDS))
def test_macs_match_torchvision(tv_name):
    name, config = MANIFEST_BUILDS[tv_name]
    model = get_model(name, device="meta", **config)
    assert macs(model, (1, 3, 224, 224)) == MANIFEST[tv_name]["macs"]


# Exact MACs: torch.utils.flop_counter.FlopCounterMode FLOPs / 2 on torchvision's models
REFERENCE_MACS = {
    "alexnet": 714_188_480,
    "vgg16": 15_470_264_320,
    "googlenet": 1_498_376_192,
    "resnet18": 1_814_073_344,
    "resnet50": 4_089_184_256,
    "resnet152": 11_513_626_624,
}

# torchvision's weights metadata `num_params` (e.g. ResNet50_Weights.IMAGENET1K_V1.meta)
REFERENCE_PARAMS = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "googlenet": 6_624_904,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}


@pytest.mark.parametrize("name", sorted(REFERENCE_MACS))
def test_reference_macs(name):
    assert macs(get_model(name, device="meta"), (1, 3, 224, 224)) == REFERENCE_MACS[name]


@pytest.mark.parametrize("name", sorted(REFERENCE_PARAMS))
def test_reference_params(name):
    assert n_params(get_model(name, device="meta")) == REFERENCE_PARAMS[name]


def test_vgg_bn_params_from_reference():
    # torchvision's weights metadata `num_params`: VGG11_BN_Weights ... VGG19_BN_Weights
    expected = {11: 132_868_840, 13: 133_053_736, 16: 138_365_992, 19: 143_678_248}
    for depth, params in expected.items():
        assert n_params(get_model(f"vgg{depth}", device="meta", batch_norm=True)) == params


def test_googlenet_aux_params_and_outputs():
    # torchvision's googlenet(aux_logits=True): 13,004,888 params (6,624,904 without the heads)
    model = get_model("googlenet", device="meta", aux_logits=True)
    assert n_params(model) == 13_004_888
    # each aux head: conv 1x1 (no bias) + BN(128) + fc1 2048->1024 + fc2 1024->1000
    aux = lambda c: c * 128 + bn_params(128) + (2048 * 1024 + 1024) + (1024 * 1000 + 1000)  # noqa: E731
    assert aux(512) + aux(528) == 13_004_888 - 6_624_904
    x = torch.empty(2, 3, 224, 224, device="meta")
    out = model.train()(x)
    assert isinstance(out, tuple) and out._fields == ("logits", "aux_logits2", "aux_logits1")
    assert [t.shape for t in out] == [(2, 1000)] * 3
    assert model.eval()(x).shape == (2, 1000)


def test_googlenet_five_by_five():
    base = get_model("googlenet", device="meta")
    paper = get_model("googlenet", device="meta", five_by_five=True)
    assert paper.inception3a.branch3[1].conv.kernel_size == (5, 5)
    assert paper.inception3a.branch3[1].conv.padding == (2, 2)
    assert base.inception3a.branch3[1].conv.kernel_size == (3, 3)
    # (#5x5 reduce, #5x5) per inception module, paper Table 1: (25 - 9) more weights per pair
    pairs = [(16, 32), (32, 96), (16, 48), (24, 64), (24, 64), (32, 64), (32, 128), (32, 128)]
    pairs.append((48, 128))
    assert n_params(paper) - n_params(base) == sum((25 - 9) * a * b for a, b in pairs)
    assert paper(torch.empty(1, 3, 224, 224, device="meta")).shape == (1, 1000)


# ---------------------------------------------------------------------------------------------
# AlexNet as in the paper


def test_alexnet_paper_params_and_groups():
    model = get_model("alexnet_paper", device="meta")
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [c.groups for c in convs] == [1, 2, 1, 2, 2]
    expected = (
        (96 * 3 * 11 * 11 + 96)  # conv1
        + (256 * (96 // 2) * 5 * 5 + 256)  # conv2, groups=2: each kernel sees 48 channels
        + (384 * 256 * 3 * 3 + 384)  # conv3 sees both GPUs
        + (384 * (384 // 2) * 3 * 3 + 384)  # conv4, groups=2
        + (256 * (384 // 2) * 3 * 3 + 256)  # conv5, groups=2
        + (256 * 6 * 6 * 4096 + 4096)
        + (4096 * 4096 + 4096)
        + (4096 * 1000 + 1000)
    )
    assert expected == 60_965_224
    assert n_params(model) == 60_965_224
    lrn = [m for m in model.features if isinstance(m, nn.LocalResponseNorm)]
    # paper: k=2, n=5, alpha=1e-4, beta=0.75; PyTorch divides alpha by size -> 5 * 1e-4
    assert [(m.size, m.alpha, m.beta, m.k) for m in lrn] == [(5, 5e-4, 0.75, 2.0)] * 2


def test_alexnet_paper_feature_size_at_227():
    # conv1: (227 - 11) / 4 + 1 = 55; pool (55 - 3) // 2 + 1 = 27; conv2 p2 keeps 27;
    # pool (27 - 3) // 2 + 1 = 13; conv3-5 p1 keep 13; pool (13 - 3) // 2 + 1 = 6.
    model = get_model("alexnet_paper")
    assert model.default_input_size == (1, 3, 227, 227)
    x = torch.randn(1, 3, 227, 227)
    with torch.no_grad():
        assert model.features(x).shape == (1, 256, 6, 6)
        assert model.eval()(x).shape == (1, 1000)


# ---------------------------------------------------------------------------------------------
# CIFAR ResNets (He et al. 2016, Sec. 4.2)

# The paper's table in Sec. 4.2 (CIFAR-10 results): # params per depth.
CIFAR_PAPER_PARAMS = {20: 0.27e6, 32: 0.46e6, 44: 0.66e6, 56: 0.85e6, 110: 1.7e6}


@pytest.mark.parametrize("depth", sorted(CIFAR_PAPER_PARAMS))
def test_cifar_params_close_to_paper(depth):
    resnet = get_model(f"resnet{depth}", device="meta")
    plain = get_model(f"plain{depth}", device="meta")
    assert abs(n_params(resnet) - CIFAR_PAPER_PARAMS[depth]) <= 0.03 * CIFAR_PAPER_PARAMS[depth]
    assert n_params(plain) == n_params(resnet)  # option A adds no parameters
    assert n_params(get_model("resnet_cifar", device="meta", depth=depth)) == n_params(resnet)
    assert resnet.zoo_config == {"shortcut": "A", "num_classes": 10}


def test_resnet20_exact_params_by_hand():
    n, conv = 3, lambda i, o: i * o * 9  # 3x3 convs, no bias
    expected = (
        conv(3, 16) + bn_params(16)
        + 2 * n * (conv(16, 16) + bn_params(16))
        + conv(16, 32) + (2 * n - 1) * conv(32, 32) + 2 * n * bn_params(32)
        + conv(32, 64) + (2 * n - 1) * conv(64, 64) + 2 * n * bn_params(64)
        + 64 * 10 + 10
    )  # fmt: skip
    assert n_params(get_model("resnet20", device="meta")) == expected == 269_722


@pytest.mark.parametrize("shortcut", ["none", "A", "B", "C"])
def test_cifar_forward_every_shortcut(shortcut):
    torch.manual_seed(0)
    model = resnet_cifar(depth=8, shortcut=shortcut).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_cifar_shortcut_param_deltas():
    # depth 8 (n = 1): B projects at the start of stages 2 and 3; C also on stage 1's block.
    p = {s: n_params(resnet_cifar(depth=8, shortcut=s)) for s in ("none", "A", "B", "C")}
    assert p["none"] == p["A"]
    assert p["B"] - p["A"] == (16 * 32 + bn_params(32)) + (32 * 64 + bn_params(64))
    assert p["C"] - p["B"] == 16 * 16 + bn_params(16)


# ---------------------------------------------------------------------------------------------
# ImageNet ResNet shortcut options (He et al. 2016, Sec. 3.3)


def _resnet_params(name: str, **config) -> int:
    return n_params(get_model(name, device="meta", **config))


def test_resnet18_shortcut_deltas():
    p = {s: _resnet_params("resnet18", shortcut=s) for s in ("none", "A", "B", "C")}
    assert p["B"] == 11_689_512  # torchvision's default
    assert p["none"] == p["A"]  # A is parameter-free
    # B: 1x1 projection + BN at the first block of layer2, layer3, layer4
    assert p["B"] - p["A"] == (64 * 128 + 2 * 128) + (128 * 256 + 2 * 256) + (256 * 512 + 2 * 512)
    # C adds projections on the identity blocks: both of layer1's, and block 2 of layers 2-4
    assert p["C"] - p["B"] == (
        2 * (64 * 64 + 2 * 64) + (128 * 128 + 2 * 128) + (256 * 256 + 2 * 256)
        + (512 * 512 + 2 * 512)
    )  # fmt: skip


def test_resnet50_shortcut_deltas():
    p = {s: _resnet_params("resnet50", shortcut=s) for s in ("none", "A", "B", "C")}
    assert p["B"] == 25_557_032
    assert p["none"] == p["A"]
    # B projects in the first block of every layer, layer1 included (64 -> 256 channels)
    assert p["B"] - p["A"] == (
        (64 * 256 + 2 * 256) + (256 * 512 + 2 * 512) + (512 * 1024 + 2 * 1024)
        + (1024 * 2048 + 2 * 2048)
    )  # fmt: skip
    # C: the other 2 + 3 + 5 + 2 blocks of [3, 4, 6, 3] get C x C projections
    assert p["C"] - p["B"] == (
        2 * (256 * 256 + 2 * 256) + 3 * (512 * 512 + 2 * 512) + 5 * (1024 * 1024 + 2 * 1024)
        + 2 * (2048 * 2048 + 2 * 2048)
    )  # fmt: skip


def test_shortcut_a_and_none_modules():
    a = get_model("resnet18", device="meta", shortcut="A")
    assert isinstance(a.layer2[0].downsample, PadShortcut)
    assert a.layer1[0].downsample is None and a.layer2[1].downsample is None
    plain = get_model("resnet18", device="meta", shortcut="none")
    assert all(
        not b.residual and b.downsample is None for b in plain.modules() if hasattr(b, "residual")
    )
    c = get_model("resnet18", device="meta", shortcut="C")
    assert isinstance(c.layer1[0].downsample, nn.Sequential)


@pytest.mark.parametrize(
    ("name", "shortcut"),
    [("resnet18", s) for s in ("none", "A", "B", "C")] + [("resnet50", "A")],
)
def test_resnet_forward_every_shortcut(name, shortcut):
    torch.manual_seed(0)
    model = get_model(name, shortcut=shortcut, num_classes=7).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


class _Calls(TorchFunctionMode):
    """Records which torch functions run (to see that option A really slices and pads)."""

    def __init__(self):
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


def test_pad_shortcut_slices_and_pads():
    sc = PadShortcut(16, 32, stride=2)
    assert n_params(sc) == 0 and list(sc.buffers()) == []
    x = torch.randn(2, 16, 9, 9)
    with _Calls() as calls:
        y = sc(x)
    assert "pad" in calls.names and "__getitem__" in calls.names
    assert y.shape == (2, 32, 5, 5)  # ceil(9 / 2) = 5, like a stride-2 3x3 conv with padding 1
    torch.testing.assert_close(y[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(y[:, 16:]) == 0
    torch.testing.assert_close(y, F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 0, 16)))


def test_zero_init_residual():
    model = get_model("resnet18", zero_init_residual=True)
    assert all(torch.count_nonzero(b.bn2.weight) == 0 for b in model.layer1)
    model = get_model("resnet50", device="meta", zero_init_residual=True)  # skipped on meta
    assert model.zoo_config["zero_init_residual"] is True


def test_block_option_swaps_block():
    model = get_model("resnet18", device="meta", block="bottleneck")
    assert model.fc.in_features == 512 * 4
    assert model.zoo_config["block"] == "bottleneck"
    assert model_info("resnet50").options["block"].default == "bottleneck"


# ---------------------------------------------------------------------------------------------
# The seed's arithmetic: stacks of 3x3 convs (Simonyan & Zisserman 2015, Sec. 2.3)


def _weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize(("n", "big"), [(2, 5), (3, 7)])
def test_stack_vs_single_kernel(n, big):
    c = 64
    stack = conv_stack(n, 3, c)
    single = nn.Conv2d(c, c, big, padding=big // 2, bias=False)
    assert _weights(stack) == n * 9 * c * c  # 2 * 9 C^2 = 18 C^2, 3 * 9 C^2 = 27 C^2
    assert _weights(single) == big * big * c * c  # 25 C^2, 49 C^2
    assert stack.receptive_field == big
    assert stack.num_nonlinearities == n and stack.num_convs == n
    x = torch.randn(1, c, 16, 16)
    assert stack(x).shape == single(x).shape == x.shape  # "same" padding


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 4),
    k=st.sampled_from([1, 3, 5, 7]),
    c=st.integers(1, 8),
    d=st.integers(1, 3),
    s=st.integers(1, 2),
)
def test_conv_stack_counts(n, k, c, d, s):
    stack = conv_stack(n, k, c, stride=s, dilation=d)
    assert n_params(stack) == n * k * k * c * c  # bias=False
    # receptive field by recurrence r_i = r_{i-1} + (k-1) d s^(i-1) in closed form
    assert stack.receptive_field == 1 + (k - 1) * d * sum(s**i for i in range(n))
    h = 9
    for _ in range(n):  # conv output size, padding d (k-1) / 2
        h = (h + 2 * (d * (k - 1) // 2) - d * (k - 1) - 1) // s + 1
    assert stack(torch.zeros(1, c, 9, 9)).shape == (1, c, h, h)


def test_conv_stack_options():
    stack = conv_stack(3, activation=False, in_channels=3, bias=True)
    assert stack.num_nonlinearities == 0 and stack[0].in_channels == 3 and stack[0].bias is not None
    assert isinstance(stack[:2], zoo.ConvStack) and stack[:2].num_convs == 2
    model = get_model("conv_stack", channels=8, n=3, kernel_size=5)
    assert model.default_input_size == (1, 8, 32, 32)
    assert model_info("conv_stack").input_size_for({"channels": 8}) == (1, 8, 32, 32)
    assert model.zoo_config == {
        "n": 3, "kernel_size": 5, "channels": 8, "stride": 1, "dilation": 1, "activation": True
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"n": 0}, "'n'"),
        ({"n": 2, "kernel_size": 4}, "odd int >= 1"),
        ({"n": 2, "channels": 0}, "'channels'"),
        ({"n": 2, "stride": 0}, "'stride'"),
        ({"n": 2, "dilation": 0}, "'dilation'"),
        ({"n": 2, "in_channels": 0}, "in_channels"),
    ],
)
def test_conv_stack_validation(kwargs, needle):
    with pytest.raises(ZooError, match=needle):
        conv_stack(**kwargs)


# ---------------------------------------------------------------------------------------------
# Every registered model


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_on_meta(name):
    model = get_model(name, device="meta")  # speed is measured in bench/, not here
    info = model_info(name)
    assert model.zoo_name == name
    assert model.zoo_config == info.defaults()
    assert model.default_input_size == info.input_size and len(info.input_size) == 4
    assert all(p.is_meta for p in model.parameters())
    out = model.eval()(torch.empty(model.default_input_size, device="meta"))
    assert out.shape[0] == 1
    assert info.description and info.paper and info.family in zoo.registry.FAMILIES
    assert info.builder.__doc__ and type(model).__module__.startswith("cnnviz.zoo")
    assert __import__(info.builder.__module__, fromlist=["_"]).__doc__


@pytest.mark.parametrize("name", sorted(SMALL - {"alexnet_paper"}))
def test_small_models_forward_on_cpu(name):
    torch.manual_seed(0)
    model = get_model(name).eval()
    with torch.no_grad():
        out = model(torch.randn(model.default_input_size))
    assert torch.isfinite(out).all()


def test_default_input_sizes():
    assert model_info("alexnet").input_size == (1, 3, 224, 224)
    assert model_info("alexnet_paper").input_size == (1, 3, 227, 227)
    assert model_info("resnet56").input_size == (1, 3, 32, 32)
    assert model_info("conv_stack").input_size == (1, 64, 32, 32)


def test_list_models_order_and_families():
    names = list_models()
    assert names[:2] == ["alexnet", "alexnet_paper"] and names[-1] == "conv_stack"
    assert names.index("vgg19") < names.index("googlenet") < names.index("resnet18")
    assert list_models("vgg") == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert set(list_models("resnet")) == {f"resnet{d}" for d in (18, 34, 50, 101, 152)}
    assert len(names) == len(set(names)) == 24


def test_dtype_and_device():
    model = get_model("resnet20", dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert next(get_model("resnet20", device=torch.device("meta")).parameters()).is_meta


# ---------------------------------------------------------------------------------------------
# Errors and options


@pytest.mark.parametrize(
    ("name", "config", "needles"),
    [
        ("resnet18", {"shortcut": "D"}, ["'shortcut'", "'D'", "'none', 'A', 'B', 'C'"]),
        ("resnet50", {"block": "huge"}, ["'block'", "'huge'", "'basic', 'bottleneck'"]),
        ("resnet_cifar", {"depth": 21}, ["'depth'", "21", "6n + 2"]),
        ("resnet_cifar", {"depth": 0}, ["'depth'", "0", "6n + 2"]),
        ("resnet_cifar", {"depth": "20"}, ["'depth'", "expects int", "str"]),
        ("googlenet", {"aux_logits": 1}, ["'aux_logits'", "expects bool"]),
        ("alexnet", {"dropout": 1.5}, ["'dropout'", "0 <= p <= 1"]),
    ],
)
def test_bad_values(name, config, needles):
    with pytest.raises(ZooError) as err:
        get_model(name, device="meta", **config)
    msg = str(err.value)
    assert name in msg
    for needle in needles:
        assert needle in msg


def test_unknown_model_suggests_close_names():
    with pytest.raises(ZooError) as err:
        get_model("resnet05")
    msg = str(err.value)
    assert "'resnet05'" in msg and "'resnet50'" in msg and "list_models()" in msg
    with pytest.raises(ValueError, match="unknown model"):  # ZooError is a ValueError
        model_info("nope")


def test_unknown_option_lists_valid_ones():
    with pytest.raises(ZooError) as err:
        get_model("resnet18", shortcuts="A")
    msg = str(err.value)
    assert "'shortcuts'" in msg and "resnet18" in msg and "did you mean 'shortcut'" in msg
    assert "block, shortcut, num_classes, zero_init_residual" in msg
    with pytest.raises(ZooError, match="valid options: num_classes"):
        get_model("plain20", shortcut="A")  # plain twins have no shortcut to choose


def test_builders_validate_when_called_directly():
    with pytest.raises(ZooError, match=r"6n \+ 2"):
        resnet_cifar(depth=21)
    with pytest.raises(ZooError, match="'D'"):
        zoo.resnet.resnet18(shortcut="D")
    with pytest.raises(ZooError, match="'huge'"):
        zoo.ResNet("huge", [1, 1, 1, 1])


def test_option_parse():
    info = model_info("resnet_cifar")
    assert info.parse_options({"shortcut": "a", "depth": "56"}) == {"shortcut": "A", "depth": 56}
    assert info.options["shortcut"].choices == ("none", "A", "B", "C")
    with pytest.raises(ZooError, match=r"'depth'.*6n \+ 2"):
        info.options["depth"].parse("21")
    with pytest.raises(ZooError, match="cannot read 'x' as int"):
        info.options["depth"].parse("x")
    with pytest.raises(ZooError, match="no option 'dpeth'"):
        info.parse_options({"dpeth": "20"})
    flag = model_info("googlenet").options["aux_logits"]
    assert (flag.parse("true"), flag.parse("No"), flag.parse("1")) == (True, False, True)
    with pytest.raises(ZooError, match=r"cannot read 'maybe' as bool"):
        flag.parse("maybe")
    assert model_info("alexnet").options["dropout"].parse("0.25") == 0.25
    assert isinstance(info, ModelInfo) and info.family == "resnet_cifar"
    assert hash(info) == hash(model_info("resnet_cifar"))  # usable as a cache key


def test_duplicate_registration_raises():
    reg = Registry()
    options = {"width": Option(4, int, "width")}

    def tiny(*, width: int = 4) -> nn.Module:
        """A tiny test model."""
        return nn.Linear(width, width)

    reg.register("tiny", family="test", input_size=(1, 4), options=options)(tiny)
    assert reg.names() == ["tiny"] and reg.info("tiny").description == "A tiny test model."
    assert reg.build("tiny", width=3).zoo_config == {"width": 3}
    with pytest.raises(ValueError, match="already registered"):
        reg.register("tiny", family="test", input_size=(1, 4), options=options)(tiny)
    with pytest.raises(ValueError, match="already registered"):
        register_model("alexnet", family="alexnet", input_size=(1, 3, 224, 224))(tiny)
    assert model_info("alexnet").builder is zoo.alexnet


def test_registration_checks_builder_signature_and_defaults():
    reg = Registry()
    with pytest.raises(ValueError, match="lacks options"):
        reg.register("x", family="t", input_size=(1,), options={"w": Option(1, int, "w")})(
            lambda: nn.Identity()
        )
    with pytest.raises(ZooError, match="expects int"):
        reg.register("y", family="t", input_size=(1,), options={"w": Option("1", int, "w")})(
            lambda w=1: nn.Identity()
        )
