"""cnnviz.training_step against real runs on the CPU, never against its own formulas.

Oracles, each computed in the test from a real CPU training step of the same model:
- saved bytes: the unique storages that ``torch.autograd.graph.saved_tensors_hooks`` sees in a
  real train-mode forward, parameters, buffers and optimizer state excluded;
- peak bytes: a live-storage tracker (a dispatch mode written here, independent of
  cnnviz.memory) over a real forward, backward and ``optimizer.step()``, plus the parameters,
  buffers and optimizer state that exist before it;
- backward MACs: ``FlopCounterMode`` over forward + backward, FLOPs / 2 minus the forward.
"""

from __future__ import annotations

import copy
import weakref

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

import cnnviz
from cnnviz import zoo
from cnnviz.errors import AnalysisError


def _optimizer(name: str, params) -> torch.optim.Optimizer:
    return {
        "sgd": lambda: torch.optim.SGD(params, lr=0.01),
        "sgd_momentum": lambda: torch.optim.SGD(params, lr=0.01, momentum=0.9),
        "adam": lambda: torch.optim.Adam(params),
        "adamw": lambda: torch.optim.AdamW(params),
    }[name]()


class _Live(TorchDispatchMode):
    """Bytes of live storages made while active, keyed by data pointer; peak kept."""

    def __init__(self, known: set[int]) -> None:
        super().__init__()
        self.known, self.refs, self.live, self.peak = known, {}, 0, 0

    def _free(self, key: int, tid: int) -> None:
        entry = self.refs[key]
        entry[1].discard(tid)
        if not entry[1]:
            self.live -= entry[0]
            del self.refs[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if not isinstance(t, torch.Tensor):
                continue
            st = t.untyped_storage()
            key = st.data_ptr()
            if key in self.known or st.nbytes() == 0:
                continue
            if key not in self.refs:
                self.refs[key] = [st.nbytes(), set()]
                self.live += st.nbytes()
                self.peak = max(self.peak, self.live)
            if id(t) not in self.refs[key][1]:
                self.refs[key][1].add(id(t))
                weakref.finalize(t, self._free, key, id(t))
        return out


def real_step(model: nn.Module, size: tuple[int, ...], optimizer: str) -> dict[str, int]:
    """One steady-state training step on the CPU: saved bytes, peak bytes, MACs."""
    torch.manual_seed(0)
    m = copy.deepcopy(model)
    if any(p.is_meta for p in m.parameters()):
        m = m.to_empty(device="cpu")
        for p in m.parameters():
            nn.init.normal_(p, std=0.02)
        for name, b in m.named_buffers():
            b.fill_(1.0 if name.endswith("running_var") else 0.0)
    m.train()
    trainable = [p for p in m.parameters() if p.requires_grad]
    opt = _optimizer(optimizer, trainable)
    for p in trainable:  # the state a running loop already holds
        p.grad = torch.zeros_like(p)
    opt.step()
    opt.zero_grad(set_to_none=True)
    state = [t for s in opt.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
    own = [*m.parameters(), *m.buffers(), *state]
    known = {t.untyped_storage().data_ptr() for t in own}
    static = sum(t.untyped_storage().nbytes() for t in own)

    saved: dict[int, int] = {}

    def pack(t):
        st = t.untyped_storage()
        if st.data_ptr() not in known:
            saved[st.data_ptr()] = st.nbytes()
        return t

    live = _Live(known)
    with live:
        x = torch.randn(size)
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = m(x)
        loss = sum(o.sum() for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor))
        del out, x
        loss.backward()
        del loss
        opt.step()
    with FlopCounterMode(display=False) as fc:
        out = m(torch.randn(size))
        fwd = fc.get_total_flops()
        sum(o.sum() for o in tree_flatten(out)[0] if isinstance(o, torch.Tensor)).backward()
    return {
        "saved": sum(saved.values()),
        "peak": static + live.peak,
        "forward_macs": fwd // 2,
        "backward_macs": (fc.get_total_flops() - fwd) // 2,
    }


CASES = [  # three zoo models at small inputs: residual adds, concat + dropout + aux heads
    ("resnet20", {}, (4, 3, 32, 32), "adamw"),
    ("resnet18", {}, (2, 3, 32, 32), "sgd_momentum"),
    ("googlenet", {"aux_logits": True}, (2, 3, 96, 96), "adam"),
    ("vgg11", {"batch_norm": True}, (2, 3, 32, 32), "sgd"),
]


@pytest.fixture(scope="module")
def measured():
    out = {}
    for name, cfg, size, opt in CASES:
        model = zoo.get_model(name, **cfg)
        out[name] = (cnnviz.training_step(model, size, optimizer=opt), real_step(model, size, opt))
    return out


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_saved_bytes_equal_what_autograd_saves_on_a_real_run(measured, name):
    step, real = measured[name]
    assert step.saved_bytes == real["saved"]
    assert step.layers["saved_bytes"].sum() == step.saved_bytes


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_peak_within_ten_percent_of_a_live_storage_tracker(measured, name):
    step, real = measured[name]
    assert abs(step.peak_bytes - real["peak"]) <= 0.10 * real["peak"], (step.peak_bytes, real)


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_macs_equal_flop_counter_mode(measured, name):
    step, real = measured[name]
    assert step.forward_macs == real["forward_macs"]
    assert step.backward_macs == real["backward_macs"]
    assert step.layers["backward_macs"].sum() == step.backward_macs


def test_rows_are_the_analyze_rows_in_train_mode():
    model = zoo.get_model("resnet18", device="meta")
    step = cnnviz.training_step(model, (2, 3, 64, 64))
    a = cnnviz.analyze(model, (2, 3, 64, 64), mode="train")
    assert list(step.layers["name"]) == [r.name for r in a.layers]
    assert list(step.layers["forward_macs"]) == [r.macs for r in a.layers]


def test_backward_of_a_conv_is_input_and_weight_gradients():
    # conv2 (not the first layer): grad of its input and of its weight, each as many MACs as
    # the forward, so 2x; conv1 reads the input, which needs no gradient: 1x.
    net = nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.ReLU(), nn.Conv2d(8, 4, 3, bias=False))
    step = cnnviz.training_step(net, (2, 3, 10, 10), optimizer="sgd")
    rows = step.layers.set_index("name")
    conv1, conv2 = 2 * 8 * 8 * 8 * 3 * 9, 2 * 6 * 6 * 4 * 8 * 9  # N*H'*W'*Cout*Cin*k*k
    assert rows.loc["0", "forward_macs"] == conv1 and rows.loc["0", "backward_macs"] == conv1
    assert rows.loc["2", "forward_macs"] == conv2 and rows.loc["2", "backward_macs"] == 2 * conv2


@pytest.mark.parametrize(("optimizer", "buffers"), [("sgd", 0), ("sgd_momentum", 1), ("adam", 2)])
def test_optimizer_state_per_optimizer(optimizer, buffers):
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    frozen = net[2].bias
    frozen.requires_grad_(False)
    step = cnnviz.training_step(net, (2, 3, 8, 8), optimizer=optimizer)
    trainable = (8 * 3 * 9 + 8 + 8 * 36 * 5) * 4  # float32, the frozen bias excluded
    assert step.grad_bytes == trainable
    assert step.optimizer_bytes == buffers * trainable
    assert step.param_bytes == trainable + 5 * 4


def test_half_precision_halves_parameter_bytes():
    net = nn.Sequential(nn.Conv2d(3, 8, 3))
    s32 = cnnviz.training_step(net, (2, 3, 8, 8), optimizer="sgd")
    s16 = cnnviz.training_step(net, (2, 3, 8, 8), optimizer="sgd", dtype="bfloat16")
    assert s16.param_bytes * 2 == s32.param_bytes == (8 * 27 + 8) * 4


def test_max_batch_size_from_constant_and_linear_parts():
    model = zoo.get_model("resnet20", device="meta")
    step = cnnviz.training_step(model, (4, 3, 32, 32))
    # The linear model predicts the walk at batch 12 (an independent third run) closely.
    s12 = cnnviz.training_step(model, (12, 3, 32, 32))
    assert abs(step.peak_at(12) - s12.peak_bytes) <= 0.02 * s12.peak_bytes
    mem = s12.peak_bytes + step.batch_linear_bytes // 2
    assert step.max_batch_size(mem) == 12
    assert step.fits(step.peak_bytes) and not step.fits(step.peak_bytes - 1)
    assert step.max_batch_size(1000) == 0


def test_model_is_left_untouched():
    torch.manual_seed(0)
    model = zoo.get_model("resnet20")
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    cnnviz.training_step(model, (2, 3, 32, 32))
    assert all(p.grad is None for p in model.parameters())
    assert not any(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BN statistics included
    assert hooks == sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_resnet50_batch32_on_meta_is_quick_and_plausible():
    # Not a timing test: it checks the step runs at this size on meta at all (no memory).
    step = cnnviz.training_step(zoo.get_model("resnet50", device="meta"), (32, 3, 224, 224))
    assert step.forward_macs == 32 * 4_089_184_256  # torchvision's 4.09 GMACs per image
    assert step.param_bytes == 25_557_032 * 4
    assert step.peak_bytes > step.param_bytes + step.grad_bytes + step.optimizer_bytes


def test_errors_name_the_problem():
    with pytest.raises(AnalysisError, match="optimizer must be one of"):
        cnnviz.training_step(nn.Linear(2, 2), (1, 2), optimizer="lion")
    frozen = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(AnalysisError, match="trainable"):
        cnnviz.training_step(frozen, (1, 2))
