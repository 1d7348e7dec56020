"""Ops checked against PyTorch itself: result dtypes (so activation bytes), models PyTorch
rejects, bad input sizes, parameters of containers, and MACs FlopCounterMode leaves out.

The oracle is a real CPU forward run in the test: whatever torch returns or raises.
"""

from __future__ import annotations

import resource

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

import cnnviz


class Fn(nn.Module):
    """``fn(*inputs)`` inside a container (so every op is a row of its own)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.unused = nn.Identity()

    def forward(self, *xs):
        return self.fn(*xs)


def _x():
    return torch.randn(1, 3, 4, 4)


def _i():
    return torch.randint(0, 10, (1, 3, 4, 4))


# (id, fn, inputs): the last row's bytes and shape must be those of torch's result
DTYPE_CASES = [
    ("compare", lambda x: x > 0, (_x,)),
    ("eq-method", lambda x: x.eq(x), (_x,)),
    ("int true div", lambda i: i / 2, (_i,)),
    ("int floor div", lambda i: torch.div(i, 2, rounding_mode="floor"), (_i,)),
    ("int // int", lambda i: i // 2, (_i,)),
    ("int + float scalar", lambda i: i + 0.5, (_i,)),
    ("int * bool", lambda i: i * True, (_i,)),
    ("where int/float", lambda i, x: torch.where(i > 3, i, x), (_i, _x)),
    ("where scalars", lambda x: torch.where(x > 0, 1.0, 0.0), (_x,)),
    ("masked_fill with compare", lambda x: x.masked_fill(x == 0, -1e9), (_x,)),
    ("masked_fill with ~compare", lambda x: x.masked_fill(~(x > 0), 0), (_x,)),
    ("float()", lambda i: i.float(), (_i,)),
    ("half()", lambda x: x.half(), (_x,)),
    ("double()", lambda x: x.double(), (_x,)),
    ("bfloat16()", lambda x: x.bfloat16(), (_x,)),
    ("to(dtype)", lambda x: x.to(torch.float16), (_x,)),
    ("half channels_last", lambda x: x.half(memory_format=torch.channels_last), (_x,)),
    ("uint8 / 255", lambda u: u.float() / 255, (lambda: _i().to(torch.uint8),)),
    ("sigmoid of int", lambda i: torch.sigmoid(i), (_i,)),
    ("sqrt of int", lambda i: i.sqrt(), (_i,)),
    ("relu of int", lambda i: torch.relu(i), (_i,)),
    ("sum of int32", lambda i: i.to(torch.int32).sum(1), (_i,)),
    ("max over dim", lambda x: x.max(1)[0] * 1, (_x,)),
    ("std over dim", lambda x: x.std(1, keepdim=True), (_x,)),
    ("stack", lambda x: torch.stack([x, x], 2), (_x,)),
    ("repeat", lambda x: x.repeat(1, 2, 1, 1), (_x,)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fn", "make"), [c[1:] for c in DTYPE_CASES], ids=[c[0] for c in DTYPE_CASES]
)
def test_result_dtype_and_bytes_match_torch(fn, make):
    inputs = tuple(m() for m in make)
    real = fn(*inputs)
    a = cnnviz.analyze(Fn(fn), inputs=inputs)
    last = a.layers[-1]
    assert last.output_shape == tuple(real.shape)
    assert last.output_bytes == real.numel() * real.element_size(), real.dtype


def test_uint8_images_count_float_activations():
    # A model that takes uint8 images and converts them: every later activation is float32.
    class FromBytes(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())

        def forward(self, u):
            return self.net(u.float() / 255)

    a = cnnviz.analyze(FromBytes(), inputs=torch.zeros(1, 3, 8, 8, dtype=torch.uint8))
    conv = next(r for r in a.layers if r.type == "Conv2d")
    assert conv.output_bytes == 8 * 8 * 8 * 4  # float32, not uint8's 1 byte


def _raises(fn):
    try:
        fn()
    except Exception as e:  # any error torch raises is the oracle's verdict
        return e
    return None


# (id, module or fn, input size, words the error must contain): torch refuses each of these
REJECTED = [
    ("layernorm shape", nn.LayerNorm(5), (1, 4, 8, 8), ["normalizes over the last dims 5"]),
    ("groupnorm weight", nn.GroupNorm(2, 4), (1, 6, 8, 8), ["expects 4 channels, got 6"]),
    ("groupnorm groups", Fn(lambda x: F.group_norm(x, 4)), (1, 6, 8, 8),
     ["4 groups", "6 channels"]),
    ("reflect pad too big", nn.ReflectionPad2d(5), (1, 3, 4, 4), ["reflect padding 5", "size 4"]),
    ("conv reflect too big", nn.Conv2d(3, 3, 3, padding=4, padding_mode="reflect"), (1, 3, 4, 4),
     ["reflect padding 4"]),
    ("softmax dim", Fn(lambda x: F.softmax(x, dim=4)), (1, 3, 4, 4), ["dim 4 is out of range"]),
    ("mean dim", Fn(lambda x: x.mean(4)), (1, 3, 4, 4), ["dim 4 is out of range"]),
    ("sum dim -5", Fn(lambda x: x.sum(-5)), (1, 3, 4, 4), ["dim -5 is out of range"]),
    ("transpose dim", Fn(lambda x: x.transpose(1, 5)), (1, 3, 4, 4), ["dim 5 is out of range"]),
    ("cat dim", Fn(lambda x: torch.cat([x, x], 4)), (1, 3, 4, 4), ["dim 4 is out of range"]),
    ("permute repeat", Fn(lambda x: x.permute(0, 1, 1, 2)), (1, 3, 4, 4), ["not a permutation"]),
    ("upsample size rank", nn.Upsample(size=(2,)), (1, 3, 4, 4), ["has 1 dims", "2 spatial"]),
    ("linear bias", Fn(lambda x: F.linear(x, torch.ones(3, 4), torch.ones(5))), (2, 4),
     ["bias has 5 values for 3"]),
    ("conv stride 0", Fn(lambda x: F.conv2d(x, torch.ones(2, 3, 3, 3), stride=0)), (1, 3, 8, 8),
     ["stride must be at least 1"]),
    ("pool stride 0", Fn(lambda x: F.max_pool2d(x, 2, 0)), (1, 3, 8, 8),
     ["stride must be at least 1"]),
    ("adaptive size rank", nn.AdaptiveAvgPool2d((1, 2, 3)), (1, 3, 8, 8),
     ["output_size (1, 2, 3) has 3 values"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "size", "needles"), [c[1:] for c in REJECTED], ids=[c[0] for c in REJECTED]
)
def test_models_torch_rejects_are_errors_here_too(model, size, needles):
    assert _raises(lambda: model(torch.randn(size))) is not None  # the oracle: torch refuses
    with pytest.raises(cnnviz.AnalysisError) as e:
        cnnviz.analyze(model, size)
    for needle in needles:
        assert needle in str(e.value)


@pytest.mark.parametrize(
    "size",
    [224, "1x3x8x8", ("1", "3", "8", "8"), iter([1, 3, 8, 8]), (1, 3, float("inf"), 8),
     (True, 3, 8, 8), {"x": (1, 3, 8, 8)}],
    ids=["int", "str", "str items", "iterator", "inf", "bool", "dict"],
)  # fmt: skip
def test_bad_input_size_is_one_clear_error(size):
    with pytest.raises(cnnviz.AnalysisError, match="sequence of ints such as"):
        cnnviz.analyze(nn.Conv2d(3, 4, 3), size)


def test_huge_input_size_is_refused_before_torch_overflows():
    with pytest.raises(cnnviz.AnalysisError, match="too large"):
        cnnviz.analyze(nn.Conv2d(3, 4, 3), (1, 3, 2**40, 2**40))


def test_numpy_and_torch_sizes_are_sequences_too():
    np = pytest.importorskip("numpy")
    for size in (np.array([1, 3, 8, 8]), torch.Size([1, 3, 8, 8]), [1.0, 3.0, 8.0, 8.0]):
        assert cnnviz.analyze(nn.Conv2d(3, 4, 3), size).output_shapes == ((1, 4, 6, 6),)


# --------------------------------------------------------------------------- params in rows
def test_container_params_are_counted_in_the_row_that_uses_them():
    class LayerScale(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 8, 3, padding=1)
            self.gamma = nn.Parameter(torch.ones(8, 1, 1))
            self.w2 = nn.Parameter(torch.ones(4, 8, 1, 1))

        def forward(self, x):
            return F.conv2d(self.c(x) * self.gamma, self.w2)

    a = cnnviz.analyze(LayerScale(), (1, 3, 8, 8))
    rows = {r.name: r.params for r in a.layers}
    assert rows == {"c": 8 * 3 * 9 + 8, "mul": 8, "conv2d": 4 * 8}
    assert sum(rows.values()) == a.total_params == sum(p.numel() for p in LayerScale().parameters())


def test_parametrized_weights_are_counted_once():
    net = nn.Sequential(weight_norm(nn.Conv2d(3, 8, 3)), nn.ReLU(), nn.Flatten(), nn.Linear(288, 4))
    a = cnnviz.analyze(net, (1, 3, 8, 8))
    real = sum(p.numel() for p in net.parameters())  # g (8) + v (216) + bias 8 + linear 1156
    assert real == 8 + 216 + 8 + 1156
    assert sum(r.params for r in a.layers) == a.total_params == real


# --------------------------------------------------------------------------- MACs
def test_matrix_vector_products_count_their_macs():
    # FlopCounterMode has no formula for mv/dot (it reads 0); the arithmetic: m*n and n.
    cases = [
        (Fn(lambda m, v: torch.mv(m, v)), (torch.randn(3, 4), torch.randn(4)), 3 * 4),
        (Fn(lambda a, b: torch.dot(a, b)), (torch.randn(4), torch.randn(4)), 4),
        (Fn(lambda x, v: x @ v), (torch.randn(2, 3, 4), torch.randn(4)), 2 * 3 * 4),
    ]
    for model, inputs, macs in cases:
        assert cnnviz.analyze(model, inputs=inputs).total_macs == macs


def test_bilinear_macs_and_shape():
    m = nn.Bilinear(4, 5, 6)
    x1, x2 = torch.randn(3, 4), torch.randn(3, 5)
    a = cnnviz.analyze(m, inputs=(x1, x2))
    assert a.output_shapes == (tuple(m(x1, x2).shape),)
    assert a.total_macs == 3 * 6 * 4 * 5  # batch * out * in1 * in2
    assert a.total_params == 6 * 4 * 5 + 6
    with pytest.raises(cnnviz.AnalysisError, match="4 and 5 features"):
        cnnviz.analyze(m, inputs=(torch.randn(3, 5), x2))


# --------------------------------------------------------------------------- memory
def test_contiguous_on_a_real_buffer_copies_no_data():
    class Table(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("pe", torch.ones(1, 4096, 4096))  # 64 MiB, real

        def forward(self, x):
            return x + self.pe.transpose(1, 2).contiguous()[0, :4, :4].reshape(-1)[:4]

    m = Table()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    a = cnnviz.analyze(m, (4, 4))
    grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert a.output_shapes == ((4, 4),)
    assert grew < 32 * 1024  # a real copy would add 64 MiB to the peak


class _Copies(nn.Module):
    """Reshapes that must copy (non-contiguous inputs), and eval-mode dropout (no copy)."""

    def __init__(self):
        super().__init__()
        self.c = nn.Conv2d(3, 8, 3, padding=1)
        self.drop = nn.Dropout2d(0.3)

    def forward(self, x):
        y = self.drop(self.c(x))
        z = y.transpose(1, 2).reshape(y.shape[0], -1)  # a copy in torch
        w = y.permute(0, 2, 3, 1).flatten(1)  # another
        return z + w


@pytest.mark.parametrize(
    ("make", "size"),
    [
        (_Copies, (1, 3, 16, 16)),
        (lambda: nn.Sequential(nn.Dropout(0.5), nn.Conv2d(4, 4, 3), nn.Dropout(0.5)), (2, 4, 9, 9)),
        (lambda: nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
                               nn.Flatten(), nn.Linear(8 * 6 * 6, 5)), (1, 3, 8, 8)),
    ],
    ids=["reshape copies", "eval dropout", "conv-bn-relu-linear"],
)  # fmt: skip
def test_activation_memory_matches_a_real_forward(make, size):
    from oracles import memory_oracle

    torch.manual_seed(0)
    model = make().eval()
    total, peak = memory_oracle(model, torch.randn(size))
    a = cnnviz.analyze(model, size)
    assert (a.activation_bytes, a.peak_activation_bytes) == (total, peak)


# (id, model, inputs, words): torch refuses each; the inputs' dtypes are the point here
REJECTED_INPUTS = [
    ("long image into conv", nn.Conv2d(3, 4, 3), lambda: _i(), ["floating-point input"]),
    ("float64 weights", Fn(lambda x: F.conv2d(x, torch.ones(2, 3, 3, 3, dtype=torch.float64))),
     _x, ["the weight is torch.float64"]),
    ("half linear weights", Fn(lambda x: F.linear(x, torch.ones(2, 4, dtype=torch.float16))),
     lambda: torch.randn(3, 4), ["the weight is torch.float16"]),
    ("relu of bool", Fn(lambda x: F.relu(x > 0)), _x, ["does not take a torch.bool"]),
    ("gelu of int", Fn(lambda i: F.gelu(i)), _i, ["does not take a torch.int64"]),
    ("softmax of long", Fn(lambda i: F.softmax(i, 1)), _i, ["floating-point input"]),
    ("batch_norm of long", nn.BatchNorm2d(3), _i, ["floating-point input"]),
    ("mean of long", Fn(lambda i: i.mean()), _i, ["floating-point input"]),
    ("bilinear on 3-d", nn.Upsample(scale_factor=2, mode="bilinear"),
     lambda: torch.randn(1, 3, 8), ["needs a 4-d input"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "make", "needles"),
    [c[1:] for c in REJECTED_INPUTS],
    ids=[c[0] for c in REJECTED_INPUTS],
)
def test_inputs_torch_rejects_are_errors_here_too(model, make, needles):
    x = make()
    assert _raises(lambda: model(x)) is not None  # the oracle: torch refuses
    with pytest.raises(cnnviz.AnalysisError) as e:
        cnnviz.analyze(model, inputs=x)
    for needle in needles:
        assert needle in str(e.value)


def test_another_dtype_by_input_size_is_a_what_if():
    # a float32 model analyzed at bfloat16 through input_size: weights count as converted
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    a = cnnviz.analyze(net, (1, 3, 8, 8), dtype="bfloat16")
    assert a.layers[0].output_bytes == 4 * 6 * 6 * 2  # 2 bytes an element
