"""Labs: small, interactive-ready experiments on the seed ideas, as plain data.

Every number here comes from :func:`cnnviz.analyze` run on zoo models on the meta device (or
from the zoo's own arithmetic); a page only draws the results (see
:mod:`cnnviz.render.lab_plots`).

* RF lab (Simonyan & Zisserman 2015, Sec. 2.3): :func:`rf_lab` puts ``n`` stacked k x k convs
  next to the one K x K conv with the same receptive field. "Two 3x3 = one 5x5" is
  ``rf_lab(2, 3)``, "three 3x3 = one 7x7" is ``rf_lab(3, 3)``.
* ResNet shortcut lab (He et al. 2016, Sec. 3.3): :func:`shortcut_stage_table` sums params and
  MACs per stage for shortcut types none/A/B/C; :func:`block_cases` reads real blocks' shapes
  for block diagrams; :func:`degradation_depths` sizes plain vs residual CIFAR nets.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import torch
from torch import nn

from cnnviz import fmt
from cnnviz.analysis import analyze
from cnnviz.receptive import ReceptiveField
from cnnviz.result import Analysis, LayerRecord
from cnnviz.zoo import SHORTCUTS, PadShortcut, conv_stack, get_model

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BLOCKS",
    "IMAGENET_DEPTHS",
    "BlockCase",
    "BlockNode",
    "RFLab",
    "RFLabOptions",
    "RFSide",
    "RFStep",
    "block_cases",
    "default_block",
    "degradation_depths",
    "rf_lab",
    "rf_lab_input_size",
    "shortcut_stage_table",
    "valid_rf_lab_options",
]

# ================================================================== RF lab


@dataclass(frozen=True)
class RFLabOptions:
    """Valid inputs of :func:`rf_lab` (what a UI should offer; anything else raises).

    Kernel sizes are odd only: "same" padding ``d(k - 1) / 2`` needs an odd k, and then the
    stack's RF ``1 + (k - 1) d (1 + s + ... + s^(n-1))`` is odd too, so the single K x K conv
    is centred on the same pixel.
    """

    n: tuple[int, int] = (1, 16)  # inclusive range
    kernel_sizes: tuple[int, ...] = (1, 3, 5, 7, 9, 11)  # 11: AlexNet's first conv
    channels: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    dilation: tuple[int, int] = (1, 4)  # inclusive range
    stride: tuple[int, int] = (1, 2)  # inclusive range
    #: With stride s > 1, n is at most this: the input side is a multiple of s**n
    #: (:func:`rf_lab_input_size`), so stride 2 and n = 16 would need a 65536x65536 input.
    max_strided_n: int = 8
    defaults: tuple[tuple[str, int], ...] = (
        ("n", 2),
        ("k", 3),
        ("channels", 64),
        ("dilation", 1),
        ("stride", 1),
    )


_OPTIONS = RFLabOptions()


def valid_rf_lab_options() -> RFLabOptions:
    """The slider ranges / choices :func:`rf_lab` accepts.

    >>> o = valid_rf_lab_options()
    >>> o.n, o.kernel_sizes, o.stride, o.max_strided_n, dict(o.defaults)["k"]
    ((1, 16), (1, 3, 5, 7, 9, 11), (1, 2), 8, 3)
    """
    return _OPTIONS


def rf_lab_input_size(n: int, stride: int = 1) -> int:
    """Input side used by :func:`rf_lab`: the smallest multiple of ``stride**n`` that is >= 32,
    so every layer's output is a whole ``H / stride**i`` (>= 1) and the stack and the single
    strided conv end on the same grid.

    >>> rf_lab_input_size(3), rf_lab_input_size(16), rf_lab_input_size(3, 2)
    (32, 32, 32)
    >>> rf_lab_input_size(8, 2)  # the largest strided stack (max_strided_n): 2^8
    256
    """
    step = stride**n
    return -(-32 // step) * step


@dataclass(frozen=True)
class RFStep:
    """The RF after one conv of the stack (read from that conv's analysis row)."""

    layer: int  # 1-based conv index; 0 is the output pixel itself (rf 1, stride 1)
    name: str  # analysis row name ("" for step 0)
    label: str  # e.g. "conv 2 (3x3)"
    rf: int
    stride: int  # effective stride (jump) after this layer
    output_shape: tuple[int, ...] | None


@dataclass(frozen=True)
class RFSide:
    """One side of the comparison: the stack or the single conv."""

    label: str  # "2 x 3x3 conv" / "1 x 5x5 conv"
    kernel_size: int
    conv_stride: int  # stride of each conv on this side
    dilation: int
    layers: int  # conv layers (from the analysis)
    rf: int  # receptive field side (from the analysis)
    rf_stride: int  # effective stride of the output (from the analysis)
    weights: int  # params, no bias (from the analysis)
    macs: int  # from the analysis
    nonlinearities: int  # ReLU rows in the analysis
    output_shape: tuple[int, ...]
    field: ReceptiveField | None = None  # the output's full field (from the analysis)


@dataclass(frozen=True)
class RFLab:
    """n stacked k x k convs (ReLU after each) vs one K x K conv, K = the stack's RF."""

    n: int
    k: int
    channels: int
    dilation: int
    stride: int
    input_size: tuple[int, int, int, int]
    stack: RFSide
    single: RFSide
    steps: tuple[RFStep, ...]  # step 0 (the output pixel) then one per conv
    formulas: tuple[str, ...]
    notes: tuple[str, ...]
    #: The smallest input side at which no conv of the stack is unproductive (its field
    #: exceeds the input: Richter et al., ICMLA 2021), from the stack analysis's
    #: ``input_resolution_range()``: below it the last convs add no new context. Conv i
    #: stops adding context below ``steps[i].rf``.
    productive_from: int = 0

    @property
    def rf_exceeds_input(self) -> str | None:
        """A sentence when the stack's RF is larger than the analysed input, else None.

        >>> print(rf_lab(16, 3).rf_exceeds_input)  # doctest: +NORMALIZE_WHITESPACE
        The receptive field (33x33) exceeds the 32x32 input: part of every window falls on
        padding, and conv 16 adds no new context.
        >>> rf_lab(2, 3).rf_exceeds_input is None  # 1 + 2*(3-1) = 5 <= 32
        True
        """
        side = self.input_size[-1]
        if self.stack.rf <= side:
            return None
        first = next(s.layer for s in self.steps if s.rf > side)
        later = f"conv {first} adds" if first == self.n else f"convs {first} to {self.n} add"
        return (
            f"The receptive field ({self.stack.rf}x{self.stack.rf}) exceeds the "
            f"{side}x{side} input: part of every window falls on padding, and {later} "
            "no new context."
        )

    @property
    def weight_ratio(self) -> float:
        """stack / single weights, e.g. 18/25 = 0.72 for two 3x3 vs one 5x5."""
        return self.stack.weights / self.single.weights

    def table(self) -> pd.DataFrame:
        """Stack vs single, one row per quantity (all from the analyses).

        >>> rf_lab(2, 3, 64).table().loc["weights"].tolist()
        [73728, 102400]
        """
        import pandas as pd

        rows = {
            "conv layers": "layers",
            "kernel size": "kernel_size",
            "receptive field": "rf",
            "effective stride": "rf_stride",
            "weights": "weights",
            "MACs": "macs",
            "non-linearities": "nonlinearities",
        }
        return pd.DataFrame(
            {
                side.label: [getattr(side, attr) for attr in rows.values()]
                for side in (self.stack, self.single)
            },
            index=pd.Index(list(rows), name="quantity"),
        )


def _check_int(field: str, value: object, valid: Sequence[int], text: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in valid:
        raise ValueError(f"rf_lab: {field}={value!r} is invalid; valid {field}: {text}")
    return value


def _validate_rf(n: object, k: object, channels: object, dilation: object, stride: object):
    o = _OPTIONS
    _check_int("n", n, range(o.n[0], o.n[1] + 1), f"int {o.n[0]}..{o.n[1]}")
    _check_int("k", k, o.kernel_sizes, f"odd kernel size, one of {o.kernel_sizes}")
    _check_int("channels", channels, o.channels, f"one of {o.channels}")
    d0, d1 = o.dilation
    _check_int("dilation", dilation, range(d0, d1 + 1), f"int {d0}..{d1}")
    s0, s1 = o.stride
    _check_int("stride", stride, range(s0, s1 + 1), f"int {s0}..{s1}")
    if stride > 1 and n > o.max_strided_n:  # type: ignore[operator]
        side = rf_lab_input_size(n, stride)  # type: ignore[arg-type]
        raise ValueError(
            f"rf_lab: n={n} with stride={stride} would need a {side}x{side} input "
            f"({stride}^{n}); valid n with stride > 1: int {o.n[0]}..{o.max_strided_n}"
        )


def _side(a: Analysis, label: str, k: int, s: int, d: int) -> RFSide:
    convs = [r for r in a.layers if r.kind == "conv"]
    last = a.layers[-1]
    assert last.rf_size is not None and last.rf_stride is not None and last.output_shape
    return RFSide(
        label=label,
        kernel_size=k,
        conv_stride=s,
        dilation=d,
        layers=len(convs),
        rf=last.rf_size[0],
        rf_stride=last.rf_stride[0],
        weights=a.total_params,
        macs=a.total_macs,
        nonlinearities=sum(r.kind == "activation" for r in a.layers),
        output_shape=last.output_shape,
        field=last.receptive_field,
    )


def rf_lab(n: int, k: int = 3, channels: int = 64, dilation: int = 1, stride: int = 1) -> RFLab:
    """Analyze ``n`` stacked k x k convs (bias-free, "same" padding, ReLU after each, via
    :func:`cnnviz.zoo.conv_stack`) and the single K x K conv with K = the stack's RF and stride
    ``stride**n`` (same output grid), both on the meta device.

    Raises ``ValueError`` naming the field for inputs outside :func:`valid_rf_lab_options`.

    >>> lab = rf_lab(2, 3, channels=64)  # two 3x3 = one 5x5
    >>> lab.stack.rf, lab.single.kernel_size, lab.stack.weights, lab.single.weights
    (5, 5, 73728, 102400)
    >>> lab.formulas[0]
    'RF = 1 + n(k-1)d = 1 + 2*(3-1)*1 = 5'
    >>> rf_lab(4, 3).productive_from, rf_lab(3, 3, stride=2).productive_from  # the stacks' RFs
    (9, 15)
    """
    _validate_rf(n, k, channels, dilation, stride)
    return _rf_lab(n, k, channels, dilation, stride)


@lru_cache(maxsize=256)
def _rf_lab(n: int, k: int, channels: int, dilation: int, stride: int) -> RFLab:
    h = rf_lab_input_size(n, stride)
    size = (1, channels, h, h)
    with torch.device("meta"):
        stack_model = conv_stack(n, k, channels, stride=stride, dilation=dilation)
    sa = analyze(stack_model, size)
    big = sa.layers[-1].rf_size[0]  # type: ignore[index]
    with torch.device("meta"):
        single_model = conv_stack(1, big, channels, stride=stride**n)
    ga = analyze(single_model, size)

    stack = _side(
        sa,
        f"{n} x {k}x{k} conv" + (f" (dilation {dilation})" if dilation > 1 else ""),
        k,
        stride,
        dilation,
    )
    single = _side(ga, f"1 x {big}x{big} conv", big, stride**n, 1)

    steps = [RFStep(0, "", "output pixel", 1, 1, None)]
    for i, row in enumerate((r for r in sa.layers if r.kind == "conv"), start=1):
        assert row.rf_size is not None and row.rf_stride is not None
        steps.append(
            RFStep(
                i,
                row.name,
                f"conv {i} ({k}x{k})",
                row.rf_size[0],
                row.rf_stride[0],
                row.output_shape,
            )
        )

    c = channels
    if stride == 1:
        rf_f = f"RF = 1 + n(k-1)d = 1 + {n}*({k}-1)*{dilation} = {stack.rf}"
    else:
        jumps = "+".join(str(stride**i) for i in range(n))
        rf_f = (
            f"RF = 1 + (k-1)d(1 + s + ... + s^(n-1)) = 1 + ({k}-1)*{dilation}*({jumps})"
            f" = {stack.rf}"
        )
    w_f = (
        f"weights: n*k*k*C*C = {n}*{k}*{k}*{c}*{c} = {fmt.count(stack.weights)} vs "
        f"K*K*C*C = {big}*{big}*{c}*{c} = {fmt.count(single.weights)}"
    )
    conv_rows = [r for r in sa.layers if r.kind == "conv"]
    positions = [r.output_shape[2] * r.output_shape[3] for r in conv_rows]  # type: ignore[index]
    out_pos = positions[-1]
    if stride == 1:
        m_f = (
            f"MACs: H*W*n*k*k*C*C = {h}*{h}*{n}*{k}*{k}*{c}*{c} = {fmt.count(stack.macs)} vs "
            f"H*W*K*K*C*C = {h}*{h}*{big}*{big}*{c}*{c} = {fmt.count(single.macs)}"
        )
    else:
        pos = "+".join(str(p) for p in positions)
        m_f = (
            f"MACs: (sum of output positions)*k*k*C*C = ({pos})*{k}*{k}*{c}*{c} = "
            f"{fmt.count(stack.macs)} vs {out_pos}*{big}*{big}*{c}*{c} = {fmt.count(single.macs)}"
        )
    formulas = (
        rf_f,
        f"stride = s^n = {stride}^{n} = {stack.rf_stride}",
        w_f,
        m_f,
        f"non-linearities: {stack.nonlinearities} ReLUs vs {single.nonlinearities}",
        f"weight ratio = {stack.weights / single.weights:.3g}, "
        f"MAC ratio = {stack.macs / single.macs:.3g}",
    )
    notes = [
        f"Both sides are bias-free convs with {c} channels in and out on a {h}x{h} input "
        f'("same" padding), analyzed on the meta device.',
    ]
    if dilation > 1:
        notes.append(
            f"With dilation {dilation}, K = {big} is the dilated extent: the stack spans "
            f"{big}x{big} pixels but touches only 1 pixel in {dilation} per axis (gridding), "
            "while the single conv is dense."
        )
    if stride > 1:
        grid = "x".join(map(str, stack.output_shape[2:]))
        notes.append(
            f"Each conv has stride {stride}, so the single conv uses stride "
            f"{stride}^{n} = {stride**n} to end on the same {grid} output grid."
        )
    if k == 1:
        notes.append("1x1 convs do not grow the RF: K = 1, only non-linearities are added.")
    return RFLab(
        n=n,
        k=k,
        channels=c,
        dilation=dilation,
        stride=stride,
        input_size=size,
        stack=stack,
        single=single,
        steps=tuple(steps),
        formulas=formulas,
        notes=tuple(notes),
        productive_from=sa.input_resolution_range()[0][0],
    )


# ================================================================== ResNet shortcut lab

IMAGENET_DEPTHS = (18, 34, 50, 101, 152)
IMAGENET_INPUT = (1, 3, 224, 224)
CIFAR_INPUT = (1, 3, 32, 32)


def _input_tuple(input_size: int | Sequence[int] | None, default: tuple[int, ...]):
    if input_size is None:
        return default
    if isinstance(input_size, int):
        return (1, 3, input_size, input_size)
    return tuple(int(v) for v in input_size)


@lru_cache(maxsize=64)
def _resnet(
    name: str, shortcut: str, config: tuple[tuple[str, object], ...], size: tuple[int, ...]
) -> tuple[nn.Module, Analysis]:
    model = get_model(name, device="meta", shortcut=shortcut, **dict(config))
    return model, analyze(model, size)


def _resolve_depth(depth: int, block: str | None, dataset: str | None):
    """-> (zoo name, extra config, default input, stage names)."""
    if dataset is None:
        dataset = "imagenet" if depth in IMAGENET_DEPTHS else "cifar"
    if dataset == "imagenet":
        if depth not in IMAGENET_DEPTHS:
            raise ValueError(f"depth={depth!r} is invalid for ImageNet; valid: {IMAGENET_DEPTHS}")
        if block is not None and block not in BLOCKS:
            raise ValueError(f"block={block!r} is invalid; valid block: 'basic', 'bottleneck'")
        # the net's own block is no override: one traced net, whichever way it is named
        cfg = () if block in (None, default_block(depth)) else (("block", block),)
        return f"resnet{depth}", cfg, IMAGENET_INPUT, ("layer1", "layer2", "layer3", "layer4")
    if dataset == "cifar":
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ValueError(
                f"depth={depth!r} is invalid; valid depth: {IMAGENET_DEPTHS} (ImageNet) or "
                "6n + 2 >= 8 (CIFAR: 8, 14, 20, ..., 56, ..., 110)"
            )
        if block not in (None, "basic"):
            raise ValueError(f"block={block!r} is invalid for CIFAR nets; valid block: 'basic'")
        return "resnet_cifar", (("depth", depth),), CIFAR_INPUT, ("layer1", "layer2", "layer3")
    raise ValueError(f"dataset={dataset!r} is invalid; valid dataset: 'imagenet', 'cifar'")


def _stage_labels(a: Analysis) -> list[str]:
    """stem / layerN / head per row: layerN from the row name's first component; other rows
    are stem before the first layer row and head after it."""
    labels, seen_layer = [], False
    for r in a.layers:
        top = r.name.split(".")[0].split("#")[0]
        if top.startswith("layer") and top[5:].isdigit():
            labels.append(top)
            seen_layer = True
        else:
            labels.append("head" if seen_layer else "stem")
    return labels


def shortcut_stage_table(
    depth: int,
    block: str | None = None,
    input_size: int | Sequence[int] | None = None,
    *,
    dataset: str | None = None,
) -> pd.DataFrame:
    """Params and MACs per stage (stem, layer1.., head) for shortcut types none/A/B/C.

    ``depth`` 18/34/50/101/152 is the ImageNet ResNet (``block`` may override its block type);
    any other 6n + 2 is the CIFAR net (``resnet_cifar``). 50 and 152 are also 6n + 2: pass
    ``dataset="cifar"`` for those CIFAR nets. Columns: ``stage``, ``params_<s>`` and
    ``macs_<s>`` per shortcut ``s``, and the differences ``params_A_minus_none``,
    ``params_B_minus_A``, ``params_C_minus_B`` (same for MACs). The last row, ``total``,
    equals each analysis's totals.

    >>> df = shortcut_stage_table(20)  # CIFAR ResNet-20
    >>> list(df.stage)
    ['stem', 'layer1', 'layer2', 'layer3', 'head', 'total']
    >>> int(df.params_A.iloc[-1]), int(df.params_B_minus_A.iloc[-1])  # B: two 1x1 projections
    (269722, 2752)
    """
    import pandas as pd

    name, cfg, default_size, layers = _resolve_depth(depth, block, dataset)
    size = _input_tuple(input_size, default_size)
    stages = ["stem", *layers, "head"]
    data: dict[str, list[int]] = {}
    for s in SHORTCUTS:
        _, a = _resnet(name, s, cfg, size)
        params = dict.fromkeys(stages, 0)
        macs = dict.fromkeys(stages, 0)
        for label, r in zip(_stage_labels(a), a.layers, strict=True):
            params[label] += r.params
            macs[label] += r.macs
        data[f"params_{s}"] = [params[st] for st in stages] + [a.total_params]
        data[f"macs_{s}"] = [macs[st] for st in stages] + [a.total_macs]
    df = pd.DataFrame({"stage": [*stages, "total"]})
    for metric in ("params", "macs"):
        for s in SHORTCUTS:
            df[f"{metric}_{s}"] = data[f"{metric}_{s}"]
    for metric in ("params", "macs"):
        for lo, hi in itertools.pairwise(SHORTCUTS):
            df[f"{metric}_{hi}_minus_{lo}"] = df[f"{metric}_{hi}"] - df[f"{metric}_{lo}"]
    return df


@dataclass(frozen=True)
class BlockNode:
    """One analysis row of a block, for a diagram box."""

    name: str  # full row name, e.g. "layer2.0.downsample.0"
    short: str  # name inside the block, e.g. "downsample.0"
    type: str  # "Conv2d", "BatchNorm2d", "ReLU", "PadShortcut", "add"
    detail: str  # e.g. "3x3, 64->128, stride 2"
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    params: int
    macs: int


@dataclass(frozen=True)
class BlockCase:
    """One residual-block situation, with the real rows of a zoo model's block."""

    title: str
    explanation: str
    model: str  # zoo name, e.g. "resnet34"
    block: str  # module prefix, e.g. "layer2.0"
    block_type: str  # "basic" or "bottleneck"
    shortcut_type: str  # "none", "A", "B", "C"
    shortcut_kind: str  # "identity", "projection 1x1 stride 2", "zero-pad + ...", "none"
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    main: tuple[BlockNode, ...]  # residual branch F(x), in order
    shortcut: tuple[BlockNode, ...]  # empty for identity / none
    merge: BlockNode | None  # the "add" row (None for the plain net)
    post: tuple[BlockNode, ...]  # the final ReLU after the merge
    params: int  # whole block
    shortcut_params: int
    macs: int
    shortcut_macs: int


def _detail(m: nn.Module) -> str:
    if isinstance(m, nn.Conv2d):
        k, s = m.kernel_size[0], m.stride[0]
        return f"{k}x{k}, {m.in_channels}->{m.out_channels}" + (f", stride {s}" if s > 1 else "")
    if isinstance(m, nn.BatchNorm2d):
        return f"{m.num_features} ch"
    if isinstance(m, PadShortcut):
        parts = []
        if m.stride != 1:
            parts.append(f"x[:, :, ::{m.stride}, ::{m.stride}]")
        if m.out_channels > m.in_channels:
            parts.append(f"+{m.out_channels - m.in_channels} zero channels")
        return ", ".join(parts) or "identity"
    return type(m).__name__


def _shortcut_kind(shortcut: str, model: nn.Module, prefix: str) -> str:
    if shortcut == "none":
        return "none"
    ds = model.get_submodule(prefix).downsample
    if ds is None:
        return "identity"
    if isinstance(ds, PadShortcut):
        if ds.stride != 1:
            return f"zero-pad + stride-{ds.stride} subsample"
        return "zero-pad channels"
    conv = ds[0]
    s = conv.stride[0]
    return "projection 1x1" + (f" stride {s}" if s != 1 else "")


def _shortcut_sentence(kind: str, case: BlockCase) -> str:
    i, o, p = fmt.shape(case.in_shape), fmt.shape(case.out_shape), case.shortcut_params
    if kind == "none":
        return "In the plain net (no shortcut) the block is only out = ReLU(F(x))."
    if kind == "identity":
        return "The shortcut is the identity, out = ReLU(F(x) + x): 0 parameters, 0 MACs."
    if kind.startswith("zero-pad"):
        ci, co = case.in_shape[1], case.out_shape[1]
        sub = "takes every 2nd pixel (x[:, :, ::2, ::2]) and " if "subsample" in kind else ""
        return (
            f"Option A stays parameter-free: it {sub}appends {co - ci} zero channels, "
            f"turning {i} into {o} with 0 parameters."
        )
    extra = " even though the shapes already match" if case.in_shape == case.out_shape else ""
    return (
        f"A projection ({kind.replace('projection ', '')} conv + BN) maps x from {i} to {o}{extra} "
        f"({fmt.count(p)} parameters, {fmt.count(case.shortcut_macs)} MACs)."
    )


BLOCKS = ("basic", "bottleneck")

# One entry per case: (title, {block type: (situation template, block prefix)}). A case a block
# type never meets is drawn from the other type's net: basic nets never change the channels at
# the same size, and the 1x1-3x3-1x1 case is the bottleneck itself.
_CASES = (
    (
        "Same shape in and out",
        {
            "basic": (
                "Both convs keep {i}, so F(x) and x already have the same shape.",
                "layer1.1",
            ),
            "bottleneck": (
                "The first 1x1 conv shrinks {ci} to {mid} channels and the last restores "
                "{co}, so F(x) ends at {o}, the shape of x.",
                "layer2.1",
            ),
        },
    ),
    (
        "Spatial size halves, channels double",
        {
            b: ("A stride-2 3x3 conv halves the size, so F(x) is {o} while x is {i}.", "layer2.0")
            for b in BLOCKS
        },
    ),
    (
        "Channels change at the same size",
        {
            "bottleneck": (
                "The bottleneck's last 1x1 conv expands the channels, so F(x) is {o} while x "
                "is {i}.",
                "layer1.0",
            )
        },
    ),
    (
        "Bottleneck 1x1-3x3-1x1",
        {
            "bottleneck": (
                "A 1x1 conv reduces {ci} to {mid} channels, the 3x3 works at that width and a "
                "1x1 restores {co}, which is cheaper than two 3x3 convs at full width.",
                "layer1.1",
            )
        },
    ),
)


def default_block(depth: int) -> str:
    """The block type ``resnet{depth}`` is built from: bottleneck from ResNet-50 on (He et al.
    2016, Table 1), basic for 18/34 and every CIFAR net (Sec. 4.2).

    >>> [default_block(d) for d in (18, 34, 50, 101, 152, 20, 110)]
    ['basic', 'basic', 'bottleneck', 'bottleneck', 'bottleneck', 'basic', 'basic']
    """
    return "bottleneck" if depth in IMAGENET_DEPTHS and depth >= 50 else "basic"


def _block_case(
    title: str,
    template: str,
    net: tuple[str, str, tuple[tuple[str, object], ...]],
    prefix: str,
    shortcut: str,
    number: int,
) -> BlockCase:
    name, block_type, cfg = net
    model, a = _resnet(name, shortcut, cfg, IMAGENET_INPUT)
    dotted = prefix + "."
    idx = [i for i, r in enumerate(a.layers) if r.name.startswith(dotted)]
    rows = [a.layers[i] for i in idx]
    before = a.layers[idx[0] - 1].output_shape
    assert before is not None

    def node(r: LayerRecord, in_shape: tuple[int, ...] | None) -> BlockNode:
        short = r.name[len(dotted) :]
        detail = r.type if not r.is_module else _detail(model.get_submodule(r.module))
        if not r.is_module and r.type == "add":
            detail = "F(x) + shortcut"
        return BlockNode(r.name, short, r.type, detail, in_shape, r.output_shape, r.params, r.macs)

    ds_prefix = dotted + "downsample"
    add_pos = next((j for j, r in enumerate(rows) if r.type == "add" and not r.is_module), None)
    main: list[BlockNode] = []
    short: list[BlockNode] = []
    cur_main = cur_short = before
    head_rows = rows if add_pos is None else rows[:add_pos]
    if add_pos is None:  # plain net: the last ReLU is the "post" node
        head_rows = rows[:-1]
    for r in head_rows:
        if r.name == ds_prefix or r.name.startswith(ds_prefix + "."):
            short.append(node(r, cur_short))
            cur_short = r.output_shape
        else:
            main.append(node(r, cur_main))
            cur_main = r.output_shape
    merge = None
    tail = rows[-1:]
    if add_pos is not None:
        merge = node(rows[add_pos], cur_main)
        tail = rows[add_pos + 1 :]
        cur_main = rows[add_pos].output_shape
    post = tuple(node(r, cur_main) for r in tail)
    out_shape = rows[-1].output_shape
    assert out_shape is not None
    kind = _shortcut_kind(shortcut, model, prefix)
    case = BlockCase(
        title=f"{number}. {title}",
        explanation="",
        model=name,
        block=prefix,
        block_type=block_type,
        shortcut_type=shortcut,
        shortcut_kind=kind,
        in_shape=before,
        out_shape=out_shape,
        main=tuple(main),
        shortcut=tuple(short),
        merge=merge,
        post=post,
        params=sum(r.params for r in rows),
        shortcut_params=sum(n.params for n in short),
        macs=sum(r.macs for r in rows),
        shortcut_macs=sum(n.macs for n in short),
    )
    convs = [n for n in main if n.type == "Conv2d"]
    mid = convs[0].out_shape[1] if convs and convs[0].out_shape else 0
    situation = template.format(
        i=fmt.shape(before), o=fmt.shape(out_shape), ci=before[1], co=out_shape[1], mid=mid
    )
    explanation = f"{situation} {_shortcut_sentence(kind, case)}"
    return BlockCase(**{**case.__dict__, "explanation": explanation})


def block_cases(shortcut: str = "B", depth: int = 50, block: str | None = None) -> list[BlockCase]:
    """The four residual-block situations of He et al. 2016 as data, read from real blocks.

    Every case comes from ``resnet{depth}`` built from ``block`` (default
    :func:`default_block`) where that block type meets it: 1. same shape (basic ``layer1.1``,
    bottleneck ``layer2.1``), 2. size halves and channels double (``layer2.0``), 3. channels
    change at the same size (bottleneck ``layer1.0``), 4. the 1x1-3x3-1x1 bottleneck
    (``layer1.1``). A basic net never meets cases 3-4: they come from resnet50. A bottleneck
    net's cases 1-4 all come from itself. Under option A, ``PadShortcut`` is a single leaf row
    (its slicing and ``F.pad`` run inside it and get no rows of their own).

    >>> cases = block_cases("B", 34)
    >>> [(c.model, c.shortcut_kind) for c in cases]  # doctest: +NORMALIZE_WHITESPACE
    [('resnet34', 'identity'), ('resnet34', 'projection 1x1 stride 2'),
     ('resnet50', 'projection 1x1'), ('resnet50', 'identity')]
    >>> cases[1].shortcut[0].out_shape, cases[1].shortcut_params  # 64*128 + 2*128
    ((1, 128, 28, 28), 8448)
    >>> [c.model for c in block_cases("B", 101)]
    ['resnet101', 'resnet101', 'resnet101', 'resnet101']
    """
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut={shortcut!r} is invalid; valid shortcut: {SHORTCUTS}")
    if depth not in IMAGENET_DEPTHS:
        raise ValueError(f"depth={depth!r} is invalid; valid depth: {IMAGENET_DEPTHS}")
    if block is not None and block not in BLOCKS:
        raise ValueError(f"block={block!r} is invalid; valid block: {BLOCKS}")
    return list(_block_cases(shortcut, depth, block or default_block(depth)))


@lru_cache(maxsize=64)
def _block_cases(shortcut: str, depth: int, block: str) -> tuple[BlockCase, ...]:
    own = (f"resnet{depth}", block, () if block == default_block(depth) else (("block", block),))
    other = ("resnet50", "bottleneck", ()) if block == "basic" else ("resnet34", "basic", ())
    out = []
    for i, (title, by_block) in enumerate(_CASES, start=1):
        net = own if block in by_block else other
        template, prefix = by_block[net[1]]
        out.append(_block_case(title, template, net, prefix, shortcut, i))
    return tuple(out)


def degradation_depths(depths: Sequence[int] = (20, 32, 44, 56, 110)) -> pd.DataFrame:
    """Plain (``shortcut="none"``) vs residual (option A) CIFAR nets: params, MACs and weighted
    depth per depth, from the analysis (He et al. 2016, Sec. 4.2: same size, option A adds
    no parameters).

    >>> df = degradation_depths((20, 56))
    >>> df.depth.tolist(), bool((df.plain_params == df.residual_params).all())
    ([20, 56], True)
    """
    import pandas as pd

    rows = []
    for d in depths:
        name, cfg, size, _ = _resolve_depth(d, None, "cifar")
        _, plain = _resnet(name, "none", cfg, size)
        _, res = _resnet(name, "A", cfg, size)
        rows.append(
            {
                "depth": d,
                "plain_params": plain.total_params,
                "residual_params": res.total_params,
                "plain_macs": plain.total_macs,
                "residual_macs": res.total_macs,
                "weighted_depth": res.weighted_depth,
            }
        )
    return pd.DataFrame(rows)
