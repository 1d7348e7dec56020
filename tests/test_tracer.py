"""The tracer and what is assembled from it: stages, parameters, leaf modules, hooks left
behind, and the real-tensor trace for data-dependent models.

Each test names the defect it guards against; the expected values are written as the
arithmetic that gives them.
"""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import cnnviz
from cnnviz import erf, timing, zoo


# --------------------------------------------------------------------------- stages
class SE(nn.Module):
    """Squeeze-excitation (Hu et al. 2018): a global-pooled gate that rescales the channels."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, c // 2, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(c // 2, c, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class SENet(nn.Module):
    """conv (stride 2) -> SE -> conv -> conv (stride 2) -> SE -> conv -> pool, fc."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)  # 32 -> 16
        self.se1 = SE(8)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.down = nn.Conv2d(8, 16, 3, 2, 1)  # 16 -> 8
        self.se2 = SE(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))

    def forward(self, x):
        x = self.conv1(self.se1(self.stem(x)))
        return self.head(self.conv2(self.se2(self.down(x))))


def _stage_of(a: cnnviz.Analysis) -> dict[str, int]:
    return {r.name: r.stage for r in a.layers}


def test_se_gate_does_not_end_its_stage():
    # Defect: every row after the first SE gate landed in one "head" stage, the stride-2
    # conv at 8x8 included, because the gate's global field made everything after it global.
    s = _stage_of(cnnviz.analyze(SENet(), (1, 3, 32, 32)))
    first = ["stem", "se1.pool", "se1.fc1", "se1.relu", "se1.fc2", "se1.gate", "se1.mul"]
    second = ["down", "se2.pool", "se2.fc1", "se2.relu", "se2.fc2", "se2.gate", "se2.mul"]
    assert {s[n] for n in [*first, "conv1"]} == {0}  # 16x16, the gate's 1x1 rows inside
    assert {s[n] for n in [*second, "conv2"]} == {1}  # 8x8
    assert {s[n] for n in ("head.0", "head.1", "head.2")} == {2}  # after the last map


class UNet(nn.Module):
    """Two steps down, two steps up, skip connections concatenated (Ronneberger et al.)."""

    def __init__(self) -> None:
        super().__init__()
        self.enc = nn.Conv2d(3, 8, 3, padding=1)  # 32
        self.down1 = nn.Conv2d(8, 16, 3, 2, 1)  # 16
        self.down2 = nn.Conv2d(16, 32, 3, 2, 1)  # 8
        self.up1 = nn.ConvTranspose2d(32, 16, 2, 2)  # 16
        self.dec1 = nn.Conv2d(32, 16, 3, padding=1)
        self.up2 = nn.ConvTranspose2d(16, 8, 2, 2)  # 32
        self.dec2 = nn.Conv2d(16, 8, 3, padding=1)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        a = self.enc(x)
        b = self.down1(a)
        y = self.dec1(torch.cat([self.up1(self.down2(b)), b], 1))
        return self.out(self.dec2(torch.cat([self.up2(y), a], 1)))


def test_unet_decoder_is_not_its_encoders_stage():
    # Defect: decoder rows at 16x16 and 32x32 joined the encoder's stages 1 and 0. A
    # resolution seen again later in the data flow is a new stage, numbered in order.
    s = _stage_of(cnnviz.analyze(UNet(), (1, 3, 32, 32)))
    assert [s[n] for n in ("enc", "down1", "down2", "up1", "cat", "dec1")] == [0, 1, 2, 3, 3, 3]
    assert [s[n] for n in ("up2", "cat#2", "dec2", "out")] == [4, 4, 4, 4]  # no head


def test_stages_are_one_pure_function_of_the_rows():
    from cnnviz import stages

    a = cnnviz.analyze(zoo.get_model("resnet50", device="meta"), (1, 3, 224, 224))
    assert stages.assign(a.layers, len(a.input_spatial)) == [r.stage for r in a.layers]
    assert list(a.to_pandas()["stage"]) == [r.stage for r in a.layers]
    sizes = {r.stage: r.output_shape[2:] for r in a.layers if r.spatial and not r.rf_global}
    assert sorted(sizes.values()) == [(7, 7), (14, 14), (28, 28), (56, 56), (112, 112)]
    assert a.layers[-1].stage == len(sizes)  # the head: avgpool, flatten, fc


# --------------------------------------------------------------------------- parameters
class Extra(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.extra = nn.Parameter(torch.zeros(1, 2, 6, 6))  # read inside a list

    def forward(self, x):
        return torch.cat([self.conv(x), self.extra], 1)


def test_parameter_inside_a_list_is_in_its_row():
    # Defect: torch.cat([x, self.extra]) left `extra` unused and in no row.
    a = cnnviz.analyze(Extra(), (1, 3, 8, 8))
    rows = {r.name: r.params for r in a.layers}
    assert rows == {"conv": 4 * 3 * 9 + 4, "cat": 2 * 6 * 6}
    assert a.unused_params == () and a.unused_param_count == 0


class Transposed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(5, 6))
        self.act = nn.ReLU()

    def forward(self, x):
        return self.act(x @ self.w.T)  # a property read, then a matmul of the view


def test_parameter_read_through_a_property_is_in_a_row():
    a = cnnviz.analyze(Transposed(), (2, 6))
    assert [(r.name, r.params) for r in a.layers] == [("matmul", 5 * 6), ("act", 0)]
    assert a.unused_params == ()


class Unread(nn.Module):
    """A leaf whose forward never reads one of its parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(3))
        self.spare = nn.Parameter(torch.zeros(7))

    def forward(self, x):
        return x * self.weight


@pytest.mark.parametrize(
    "model",
    [
        zoo.get_model("googlenet", aux_logits=True, device="meta"),
        zoo.get_model("resnet18", device="meta"),
        Extra(),
        Transposed(),
        nn.Sequential(nn.Linear(3, 3), Unread()),
    ],
    ids=["googlenet_aux", "resnet18", "extra", "transposed", "unread"],
)
def test_rows_hold_every_parameter_but_the_unused(model):
    size = getattr(model, "default_input_size", (1, 3, 8, 8) if isinstance(model, Extra) else None)
    size = size or ((2, 6) if isinstance(model, Transposed) else (2, 3))
    a = cnnviz.analyze(model, size)
    named = dict(model.named_parameters())
    assert a.total_params == sum(p.numel() for p in named.values())
    assert sum(r.params for r in a.layers) == a.total_params - a.unused_param_count
    assert a.unused_param_count == sum(named[n].numel() for n in a.unused_params)


def test_unread_parameter_of_a_leaf_is_unused_not_in_its_row():
    a = cnnviz.analyze(nn.Sequential(nn.Linear(3, 3), Unread()), (2, 3))
    assert [r.params for r in a.layers] == [3 * 3 + 3, 3]
    assert a.unused_params == ("1.spare",) and a.unused_param_count == 7


def test_unused_parameters_are_a_note():
    a = cnnviz.analyze(zoo.get_model("googlenet", aux_logits=True, device="meta"), (1, 3, 224, 224))
    (note,) = [n for n in a.notes if "not used" in n]
    assert note.startswith(f"{a.unused_param_count:,} of the {a.total_params:,} parameters")
    assert "(aux1, aux2)" in note and "eval-mode forward pass" in note
    assert "in no layer" in note and note in str(a)
    plain = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    assert not any("not used" in n for n in plain.notes)


# --------------------------------------------------------------------------- leaf modules
class NoneFirst(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_module("downsample", None)  # an empty slot, registered first
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x)


def test_a_none_child_slot_does_not_make_a_leaf():
    # Defect: the root counted as a leaf and added a row of its own.
    a = cnnviz.analyze(NoneFirst(), (1, 3, 8, 8))
    assert [r.name for r in a.layers] == ["conv"]
    t = timing.layer_times(NoneFirst(), (1, 3, 8, 8), device="cpu", runs=1)
    assert list(t["name"]) == ["conv"]
    from cnnviz.modules import is_leaf  # the one definition both use

    assert not is_leaf(NoneFirst()) and is_leaf(nn.Conv2d(1, 1, 1)) and is_leaf(nn.Module())


# --------------------------------------------------------------------------- copies
class Waiting(nn.Module):
    """A leaf whose forward waits until the test lets it go: analyze is held mid-trace. The
    events live on the class, so a deep copy of the module copies no lock."""

    started = threading.Event()
    release = threading.Event()

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        Waiting.started.set()
        Waiting.release.wait(10)
        return self.conv(x)


@pytest.mark.parametrize(
    "take_copy",
    [
        lambda m: erf._copy(m, 0),
        lambda m: timing._materialize(m, torch.device("cpu"), torch.float32, False),
    ],
    ids=["erf", "timing"],
)
def test_copy_taken_during_an_analysis_has_no_tracer_hooks(take_copy):
    # Defect: a deep copy taken while another thread's analyze had its hooks on the model
    # carried those hooks (bound to a copy of the tracer) and the train flag analyze set.
    Waiting.started.clear()
    Waiting.release.clear()
    model = Waiting().eval()
    tracing = threading.Thread(target=lambda: cnnviz.analyze(model, (1, 3, 8, 8), mode="train"))
    tracing.start()
    assert Waiting.started.wait(10)
    copies = []
    copying = threading.Thread(target=lambda: copies.append(take_copy(model)))
    copying.start()
    copying.join(0.3)
    Waiting.release.set()
    tracing.join(10)
    copying.join(10)
    (copy,) = copies
    for m in copy.modules():
        assert not m._forward_pre_hooks and not m._forward_hooks, m
    assert not any(m.training for m in copy.modules())


# --------------------------------------------------------------------------- device="cpu"
class Detector(nn.Module):
    """A conv, then the kind of data-dependent post-processing a detector does."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)

    def forward(self, x):
        y = self.conv(x)  # (1, 4, 8, 8)
        kept = y[y > 0]  # a mask: the size depends on the values
        idx = torch.nonzero(y[0, 0] > 0)
        if kept.numel() and kept.max().item() > 100.0:
            return kept
        return F.relu(y), idx


def test_data_dependent_model_hints_at_a_cpu_trace():
    with pytest.raises(cnnviz.AnalysisError, match=r"try analyze\(\.\.\., device='cpu'\)"):
        cnnviz.analyze(Detector(), (1, 3, 8, 8))


def test_data_dependent_model_runs_on_cpu():
    torch.manual_seed(0)
    model = Detector().eval()
    a = cnnviz.analyze(model, (1, 3, 8, 8), device="cpu")
    x = torch.randn(1, 3, 8, 8)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.conv(x)
    rows = {r.name: r for r in a.layers}
    assert rows["conv"].macs == fc.get_total_flops() // 2 == 8 * 8 * 4 * 3 * 9
    assert rows["conv"].receptive_field.size == (3, 3)
    assert rows["conv"].params == 4 * 3 * 9 + 4 and a.unused_params == ()
    assert a.output_shapes[0] == (1, 4, 8, 8) and a.output_shapes[1][1] == 2
    assert any(u.name == "nonzero" for u in a.fallback_ops)
    assert a.peak_activation_bytes >= (3 + 4) * 64 * 4  # the input and the conv's output
    assert all(p.device.type == "cpu" for p in model.parameters())  # the model is untouched


def test_cpu_trace_agrees_with_the_meta_trace():
    model = zoo.get_model("resnet_cifar", depth=8)
    meta = cnnviz.analyze(model, (2, 3, 32, 32))
    cpu = cnnviz.analyze(model, (2, 3, 32, 32), device="cpu")
    assert cpu.layers == meta.layers
    assert (cpu.total_macs, cpu.total_params, cpu.activation_bytes) == (
        meta.total_macs,
        meta.total_params,
        meta.activation_bytes,
    )


def test_cpu_trace_refuses_a_meta_model_and_checks_the_cap_first():
    with pytest.raises(cnnviz.AnalysisError, match="meta device"):
        cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 32, 32), device="cpu")
    net = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU())
    # input 3*64*64*4 B = 48 KiB fits; the conv's output, 64*64*64*4 B = 1 MiB, does not
    with pytest.raises(cnnviz.AnalysisError, match=r"1\.0 MiB.*over the cap of 512\.0 KiB"):
        cnnviz.analyze(net, (1, 3, 64, 64), device="cpu", cap_bytes=512 * 1024)
    with pytest.raises(cnnviz.AnalysisError, match="device"):
        cnnviz.analyze(net, (1, 3, 8, 8), device="cuda:7")


def test_train_mode_cpu_trace_leaves_running_statistics_alone():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    cnnviz.analyze(net, (2, 3, 8, 8), device="cpu", mode="train")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
