"""cnnviz.erf: the effective receptive field against arithmetic and the theoretical RF.

Oracles: for a stack of n 3x3 convolutions with uniform weights and no non-linearity, the
gradient along one axis is the n-fold convolution of [1, 1, 1], whose variance is n * 2/3
(the variance of a uniform step in {-1, 0, 1} is 2/3; variances of independent steps add).
The support of any gradient lies inside the theoretical window (REFERENCE.md section 3).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import cnnviz
from cnnviz import erf, safety, zoo


def uniform_stack(n: int) -> nn.Sequential:
    net = nn.Sequential(*[nn.Conv2d(2, 2, 3, padding=1, bias=False) for _ in range(n)])
    for conv in net:
        nn.init.constant_(conv.weight, 1.0)
    return net


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_uniform_stack_variance_is_2n_over_3(n):
    size = 4 * n + 9  # the support (2n+1 wide) stays clear of the border
    m = erf.effective_receptive_field(uniform_stack(n), str(n - 1), (1, 2, size, size), n_samples=2)
    for axis in (0, 1):
        assert m.variance(axis) == pytest.approx(2 * n / 3, rel=0.02)
    assert m.theoretical.size == (2 * n + 1, 2 * n + 1)  # 1 + n(3-1)


def _support_box(m: erf.EffectiveRF):
    rows, cols = np.nonzero(m.map > 0)
    return (rows.min(), rows.max()), (cols.min(), cols.max())


@pytest.mark.parametrize(
    ("name", "config", "layer", "size"),
    [
        (
            "conv_stack",
            {"n": 3, "kernel_size": 3, "dilation": 2, "stride": 2, "channels": 4},
            "4",
            (1, 4, 48, 48),
        ),
        ("resnet_cifar", {"depth": 8, "shortcut": "A"}, "layer2", (1, 3, 48, 48)),
        ("resnet_cifar", {"depth": 8, "shortcut": "B"}, "layer3", (1, 3, 64, 64)),
        ("resnet18", {}, "layer2", (1, 3, 128, 128)),
    ],
)
def test_support_never_exceeds_theoretical_rf(name, config, layer, size):
    model = zoo.get_model(name, device="meta", **config)
    m = erf.effective_receptive_field(model, layer, size, n_samples=2, weights="random")
    window = m.theoretical.window(m.unit)
    for (lo, hi), (wlo, whi) in zip(_support_box(m), window, strict=True):
        assert wlo <= lo and hi <= whi
    assert m.map.sum() > 0


def test_residual_erf_is_more_concentrated_than_plain():
    # 12 basic blocks (depth 26 = 6*4 + 2): Luo et al. 2016, skip connections shrink the ERF.
    radii = {}
    for shortcut in ("none", "A"):
        model = zoo.get_model("resnet_cifar", depth=26, shortcut=shortcut, device="meta")
        m = erf.effective_receptive_field(
            model, "layer2", (1, 3, 64, 64), n_samples=4, weights="random", seed=1
        )
        radii[shortcut] = m.radius(0.5)
        assert m.theoretical.size == (49, 49)  # the same theoretical RF for both
    assert radii["A"] < radii["none"]


def test_radius_width_ratio_arithmetic():
    # a 3x3 block of ones centred at (3, 3): half the mass needs the centre pixel plus a ring
    patch = np.pad(np.ones((3, 3)), 2)
    m = erf.EffectiveRF(
        patch, cnnviz.ReceptiveField((5, 5), (1, 1), (2, 2)), "x", (3, 3), (3.0, 3.0), 1
    )
    assert m.radius(1 / 9) == 0.0 and m.radius(0.5) == 1.0 and m.radius(1.0) == 1.0
    assert m.width(1.0) == 3 and m.ratio(1.0) == 3 / 5


def test_safetensors_round_trip_and_mismatches(tmp_path):
    torch.manual_seed(0)
    model = zoo.get_model("resnet_cifar", depth=8)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    own = erf.effective_receptive_field(model, "layer1", (1, 3, 32, 32), n_samples=2)
    loaded = erf.effective_receptive_field(
        zoo.get_model("resnet_cifar", depth=8, device="meta"),
        "layer1",
        (1, 3, 32, 32),
        n_samples=2,
        weights=path,
    )
    np.testing.assert_allclose(own.map, loaded.map, rtol=1e-6)

    other = tmp_path / "other.safetensors"
    state = model.state_dict()
    state["fc.weight"] = torch.zeros(5, 64)
    state.pop("conv1.weight")
    state["extra.bias"] = torch.zeros(3)
    save_file({k: v.contiguous() for k, v in state.items()}, str(other))
    with pytest.raises(erf.WeightsError) as e:
        erf.effective_receptive_field(model, "layer1", (1, 3, 32, 32), weights=other)
    msg = str(e.value)
    assert "missing conv1.weight" in msg and "unexpected extra.bias" in msg
    assert "fc.weight (5, 64) != (10, 64)" in msg

    (tmp_path / "w.pt").write_bytes(b"not read")
    with pytest.raises(erf.WeightsError, match=r"only \.safetensors"):
        erf.effective_receptive_field(model, "layer1", (1, 3, 32, 32), weights=tmp_path / "w.pt")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 16)
    with pytest.raises(erf.WeightsError, match="not a readable"):
        erf.effective_receptive_field(model, "layer1", (1, 3, 32, 32), weights=bad)


def test_model_is_not_changed():
    torch.manual_seed(0)
    model = zoo.get_model("resnet_cifar", depth=8).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    erf.effective_receptive_field(
        model, "layer1", (1, 3, 32, 32), n_samples=1, weights="random", seed=3
    )
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_layer_errors():
    model = zoo.get_model("resnet20", device="meta")
    with pytest.raises(cnnviz.AnalysisError, match="no spatial output"):
        erf.effective_receptive_field(model, "fc", (1, 3, 32, 32))
    with pytest.raises(cnnviz.AnalysisError, match=r"did you mean.*'layer2'"):
        erf.effective_receptive_field(model, "layer22", (1, 3, 32, 32))
    with pytest.raises(ValueError, match="batch 1"):
        erf.effective_receptive_field(model, "layer1", (2, 3, 32, 32))


def test_rf_larger_than_input_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        erf.effective_receptive_field(uniform_stack(6), "5", (1, 2, 9, 9), n_samples=1)
    assert any("larger than the input" in str(w.message) for w in caught)


def test_memory_cap_is_checked_first():
    model = zoo.get_model("vgg16", device="meta")
    with pytest.raises(safety.BudgetError, match="cap"):
        erf.effective_receptive_field(model, "features", (1, 3, 224, 224), cap_bytes=10_000_000)


def test_default_layer_is_the_analysis_default_row():
    # The app's explorer and the ERF start on the same row: Analysis.default_layer().
    model = zoo.get_model("resnet20", device="meta")
    a = cnnviz.analyze(model, (1, 3, 32, 32))
    assert erf.default_layer(model, (1, 3, 32, 32)) == a.default_layer() == "layer3.2.conv2"


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.conv(self.conv(x)))


class _Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(2, 2, 3, 3))
        self.block = nn.Sequential(nn.Identity())

    def forward(self, x):
        return self.block(x) + 0 * torch.nn.functional.conv2d(x, self.w, padding=1)


def test_default_layer_maps_a_row_to_the_module_call():
    # Defect: the second call of a module ("conv#2") was measured at its first call.
    assert erf.default_layer(_Twice(), (1, 2, 9, 9)) == "conv#2"
    m = erf.effective_receptive_field(_Twice(), None, (1, 2, 9, 9), n_samples=1)
    assert m.layer == "conv#2" and m.theoretical.size == (5, 5)  # 1 + 2 + 2
    # a functional row (the root's conv2d) is measured at the module that called it
    assert erf.default_layer(_Functional(), (1, 2, 9, 9)) == ""


def test_later_call_of_a_module():
    # torchvision-style BasicBlock: one ReLU module runs twice; "relu#2" is after the add.
    model = zoo.get_model("resnet18", device="meta")
    first = erf.effective_receptive_field(model, "layer1.0.relu", (1, 3, 64, 64), n_samples=1)
    second = erf.effective_receptive_field(model, "layer1.0.relu#2", (1, 3, 64, 64), n_samples=1)
    a = cnnviz.analyze(model, (1, 3, 64, 64))
    assert first.theoretical == a.receptive_field("layer1.0.relu")  # 19x19
    assert second.theoretical == a.receptive_field("layer1.0.relu#2")  # 27x27
    # conv1 7 (S 2) -> maxpool 7 + 2*2 = 11 (S 4) -> conv 11 + 2*4 = 19 -> conv 19 + 2*4 = 27
    assert second.theoretical.size == (27, 27) and first.theoretical.size == (19, 19)


def test_random_weights_keep_a_deep_plain_nets_gradient():
    # PyTorch's default init shrinks the signal about 3x per layer: ResNet-110's plain twin
    # had an all-zero map. He (fan-out) init keeps it; progress reports every sample.
    seen = []
    with pytest.warns(UserWarning, match=r"\(217x217\) is larger than the input \(32x32\)"):
        m = erf.effective_receptive_field(
            zoo.get_model("resnet_cifar", depth=110, shortcut="none", device="meta"),
            "layer2",
            (1, 3, 32, 32),
            n_samples=2,
            progress=lambda done, total: seen.append((done, total)),
        )
    assert m.map.max() > 0 and m.radius(0.5) > 0
    assert seen == [(0, 2), (1, 2), (2, 2)]


# --------------------------------------------------------------------------- the ERF map's legend
def _rgb(color: str) -> tuple[float, float, float]:
    """A plotly colour ("white", "#RRGGBB", "rgb(..)", "rgba(..)") as 0..1 channels."""
    named = {"white": "#FFFFFF", "black": "#000000"}
    color = named.get(color, color)
    if color.startswith("#"):
        return tuple(int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]
    parts = color[color.index("(") + 1 : -1].split(",")
    return tuple(float(p) / 255 for p in parts[:3])  # type: ignore[return-value]


def _contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours: (L1 + 0.05) / (L2 + 0.05), 1 (same) to 21."""

    def luminance(c: str) -> float:
        lin = [v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4 for v in _rgb(c)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_erf_heatmap_legend_shows_and_names_what_is_drawn():
    from cnnviz.render import erf_plots

    # A 9x9 map centred on (4, 4): 7 at the centre, 0.5 on each of the 8 pixels of the first
    # ring, 0.0625 on each of the 16 of the second: 7 + 4 + 1 = 12 in all.
    z = np.zeros((9, 9))
    z[2:7, 2:7] = 0.0625
    z[3:6, 3:6] = 0.5
    z[4, 4] = 7.0
    assert z.sum() == 7 + 8 * 0.5 + 16 * 0.0625 == 12
    # 7x7 theoretical RF, stride 1, padding 3: unit (4, 4) sees rows/cols 4 - 3 = 1 .. 1 + 6 = 7
    rf = cnnviz.ReceptiveField((7, 7), (1, 1), (3, 3))
    m = erf.EffectiveRF(z, rf, "x", (4, 4), (4.0, 4.0), 1)
    # 50 % (6 of 12) lies in the centre pixel alone: radius 0, a 1x1 square;
    # 95 % (11.4) needs the second ring (7 + 4 = 11 < 11.4): radius 2, a 2*2+1 = 5 px square
    assert (m.radius(0.5), m.radius(0.95)) == (0.0, 2.0)
    fig = erf_plots.erf_heatmap(m)
    entries = {t.name: t for t in fig.data if t.type == "scatter" and t.showlegend is not False}
    assert set(entries) == {
        "theoretical RF: 7x7 px",
        "95 % of the mass: 5x5 px square",
        "50 % of the mass: 1x1 px square",
    }
    assert not [n for n in entries if "r=" in n]  # no radius posing as what is drawn
    # the title's first line is short enough for a phone: unit and samples go below it
    assert fig.layout.title.text == "Effective RF of x<br><sup>unit (4, 4), 1 sample</sup>"
    # each entry's swatch is the line it names: same colour and dash, and the side it states
    shapes = {s.name: s for s in fig.layout.shapes}
    for name, trace in entries.items():
        box = shapes[name]
        assert (trace.line.color, trace.line.dash) == (box.line.color, box.line.dash)
        side = int(name.split(": ")[1].split("x")[0])
        assert (box.x1 - box.x0, box.y1 - box.y0) == (side, side)
    # ... and visible on the legend's own background (WCAG's 3:1 for graphics)
    legend = fig.layout.legend
    background = legend.bgcolor or fig.layout.template.layout.paper_bgcolor or "white"
    for trace in entries.values():
        assert _contrast(trace.line.color, background) >= 3, (trace.name, background)
    assert _contrast(legend.font.color or "black", background) >= 4.5  # readable text
    # the legend lies beside the map, horizontally, not over it
    assert legend.orientation == "h" and (legend.y < 0 or legend.y > 1)
