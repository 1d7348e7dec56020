"""Comparison tables: plain pandas views of one or more analyses, ready to draw or download.

The library computes, a page draws: every function here returns data (a dict or a
DataFrame); :mod:`cnnviz.render` turns them into figures and markup.

>>> import cnnviz
>>> from cnnviz.compare import compare
>>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
>>> compare({"resnet20": a}).loc[0, ["params", "macs", "rf"]].tolist()
[269722, 40551040, 81]
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from cnnviz import fmt
from cnnviz.receptive import ReceptiveField

if TYPE_CHECKING:
    from cnnviz.result import Analysis, LayerRecord
    from cnnviz.training import TrainingStep

__all__ = [
    "compare",
    "layer_table",
    "productivity_summary",
    "productivity_table",
    "rf_growth",
    "rf_paths",
    "stage_table",
    "summarize",
    "to_csv",
    "to_json",
    "training_summary",
    "training_table",
    "unit_view",
]

SUMMARY_COLUMNS = (
    "label",
    "input",
    "params",
    "trainable_params",
    "macs",
    "flops",
    "extra_ops",
    "weighted_depth",
    "rf",
    "rf_stride",
    "rf_note",
    "activation_bytes",
    "peak_activation_bytes",
    "param_bytes",
    "conv_params",
    "fc_params",
    "other_params",
    "fc_share",
)
STAGE_COLUMNS = (
    "stage",
    "size",
    "scale",
    "layers",
    "params",
    "macs",
    "extra_ops",
    "first",
    "last",
    "rf",
)
LAYER_COLUMNS = ("name", "type", "kind", "output", "params", "macs", "rf", "stride")
TRAINING_COLUMNS = (
    "label",
    "input",
    "batch",
    "optimizer",
    "dtype",
    "peak_bytes",
    "saved_bytes",
    "state_bytes",
    "forward_macs",
    "backward_macs",
    "gpu_bytes",
    "fits",
    "max_batch",
    "max_batch_text",
)
PRODUCTIVITY_COLUMNS = (
    "label",
    "input",
    "unproductive",
    "probably_unproductive",
    "productive_from",
    "all_productive_from",
)
GROWTH_COLUMNS = ("index", "name", "depth", "rf", "stride")


# --------------------------------------------------------------------------- helpers


def _dims(values: tuple[int, ...] | None) -> int | str | None:
    """One int when every axis agrees (square), else ``"HxW"``; None for None."""
    if values is None:
        return None
    if len(values) >= 1 and len(set(values)) == 1:
        return int(values[0])
    return "x".join(map(str, values))


def _rf_value(rf: ReceptiveField) -> int | str:
    """Final-RF cell: ``195`` (square), ``"7x5"``, ``"global"`` or ``"unknown"``."""
    if not rf.known:
        return "unknown"
    if rf.is_global:
        return "global"
    return _dims(rf.size)  # type: ignore[return-value]


def _scale(full: int, size: int) -> str:
    """``size`` against ``full`` as 1/2^k, k rounded (AlexNet's 55 of 224 is "1/4").

    >>> _scale(224, 55), _scale(224, 224), _scale(32, 64)
    ('1/4', '1', '2')
    """
    k = round(math.log2(full / size))
    return "1" if k == 0 else (f"1/{2**k}" if k > 0 else str(2**-k))


def _spatial_size(a: Analysis, row: LayerRecord) -> tuple[int, ...] | None:
    """Spatial size of a row's output (its last ``len(input_spatial)`` dims), when spatial."""
    n = len(a.input_spatial)
    if not row.spatial or row.rf_global or row.output_shape is None or n == 0:
        return None
    if len(row.output_shape) < n:
        return None
    return tuple(row.output_shape[-n:])


# --------------------------------------------------------------------------- totals


def summarize(a: Analysis, label: str | None = None) -> dict[str, Any]:
    """One row of totals for ``a`` (columns as in :data:`SUMMARY_COLUMNS`).

    ``rf`` is the final receptive field (an int when square, else ``"HxW"``, or
    ``"global"``/``"unknown"``); ``fc_share`` is the fraction of parameters in linear layers.

    >>> import torch.nn as nn, cnnviz
    >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(18, 4))
    >>> row = summarize(cnnviz.analyze(net, (1, 1, 5, 5)), "tiny")
    >>> row["input"], row["conv_params"], row["fc_params"], row["fc_share"], row["rf"]
    ('1x1x5x5', 20, 76, 0.7916666666666666, 3)
    """
    rf = a.receptive_field()
    kinds = a.by_kind()
    conv = int(kinds.loc["conv", "params"]) if "conv" in kinds.index else 0
    fc = int(kinds.loc["linear", "params"]) if "linear" in kinds.index else 0
    total = int(a.total_params)
    known = rf.known and not rf.is_global
    return {
        "label": a.model_name if label is None else label,
        "input": ", ".join(fmt.shape(s) for s in a.input_shapes),
        "params": total,
        "trainable_params": int(a.trainable_params),
        "macs": int(a.total_macs),
        "flops": int(a.total_flops),
        "extra_ops": int(a.total_extra_ops),
        "weighted_depth": int(a.weighted_depth),
        "rf": _rf_value(rf),
        "rf_stride": _dims(rf.stride) if known else None,
        "rf_note": rf.reason,  # why the final RF is unknown (None when it is known)
        "activation_bytes": int(a.activation_bytes),
        "peak_activation_bytes": int(a.peak_activation_bytes),
        "param_bytes": int(a.param_bytes),
        "conv_params": conv,
        "fc_params": fc,
        "other_params": total - conv - fc,
        "fc_share": fc / total if total else 0.0,
    }


def compare(analyses: Mapping[str, Analysis]) -> pd.DataFrame:
    """One :func:`summarize` row per label, in the mapping's order.

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    >>> df = compare({"A": a, "B": a})
    >>> df["label"].tolist(), int(df["params"].sum())
    (['A', 'B'], 539444)
    """
    rows = [summarize(a, label) for label, a in analyses.items()]
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


# --------------------------------------------------------------------------- training


def training_summary(
    step: TrainingStep, label: str | None = None, gpu_gb: float = 24
) -> dict[str, Any]:
    """One row of a training step's costs (columns as in :data:`TRAINING_COLUMNS`), read
    against a GPU of ``gpu_gb`` GB, counted as GPU memory is sold: a 24 GB card holds
    24 x 2**30 bytes (before the CUDA context and the allocator's slack take their share).

    ``state_bytes`` is parameters + gradients + optimizer state, what a model keeps whatever
    the batch; ``fits`` says whether the step's peak fits the GPU at this batch;
    ``max_batch`` is the largest batch that does (0 when not even one does, None when
    nothing grows with the batch) and ``max_batch_text`` says it in words.

    >>> import torch.nn as nn, cnnviz
    >>> s = cnnviz.training_step(nn.Conv2d(3, 8, 3), (2, 3, 16, 16), optimizer="sgd")
    >>> row = training_summary(s, "conv", gpu_gb=8)
    >>> row["state_bytes"]  # (8*3*3*3 + 8) float32 weights, and as many gradients; SGD: none
    1792
    >>> row["fits"], row["max_batch"] == s.max_batch_size(8 * 2**30), row["max_batch_text"][:9]
    (True, True, 'up to bat')
    """
    gpu_bytes = int(gpu_gb * 2**30)
    top = step.max_batch_size(gpu_bytes)
    if top >= 2**62:  # training_step's "nothing grows with the batch"
        max_batch, text = None, "any batch"
    elif top == 0:
        max_batch, text = 0, "not even batch 1"
    else:
        max_batch, text = int(top), f"up to batch {fmt.count(top)}"
    return {
        "label": step.model_name if label is None else label,
        "input": fmt.shapes(step.input_shapes),
        "batch": int(step.batch_size),
        "optimizer": step.optimizer,
        "dtype": step.dtype,
        "peak_bytes": int(step.peak_bytes),
        "saved_bytes": int(step.saved_bytes),
        "state_bytes": int(step.param_bytes + step.grad_bytes + step.optimizer_bytes),
        "forward_macs": int(step.forward_macs),
        "backward_macs": int(step.backward_macs),
        "gpu_bytes": gpu_bytes,
        "fits": bool(step.fits(gpu_bytes)),
        "max_batch": max_batch,
        "max_batch_text": text,
    }


def training_table(steps: Mapping[str, TrainingStep], gpu_gb: float = 24) -> pd.DataFrame:
    """One :func:`training_summary` row per label, in the mapping's order.

    >>> import torch.nn as nn, cnnviz
    >>> s = cnnviz.training_step(nn.Conv2d(3, 8, 3), (2, 3, 16, 16))
    >>> training_table({"a": s, "b": s})[["label", "batch", "optimizer"]].values.tolist()
    [['a', 2, 'adamw'], ['b', 2, 'adamw']]
    """
    rows = [training_summary(s, label, gpu_gb) for label, s in steps.items()]
    return pd.DataFrame(rows, columns=list(TRAINING_COLUMNS))


# --------------------------------------------------------------------------- productivity


def productivity_summary(a: Analysis, label: str | None = None) -> dict[str, Any]:
    """Where ``a`` stops adding context as the input shrinks (Richter et al., ICMLA 2021; see
    :meth:`Analysis.unproductive`), as one row (columns as in :data:`PRODUCTIVITY_COLUMNS`):
    how many rows are ``unproductive`` and ``probably_unproductive`` at this input, and
    :meth:`Analysis.input_resolution_range` as sizes: ``productive_from``, the smallest
    input with no unproductive row, and ``all_productive_from``, with none even probably.

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("vgg16", device="meta"), (1, 3, 32, 32))
    >>> row = productivity_summary(a)
    >>> row["unproductive"], row["probably_unproductive"], row["productive_from"]
    (16, 0, '196x196')
    """
    states = [r.productivity for r in a.layers]
    smallest, every_path = a.input_resolution_range()
    return {
        "label": a.model_name if label is None else label,
        "input": ", ".join(fmt.shape(s) for s in a.input_shapes),
        "unproductive": states.count("unproductive"),
        "probably_unproductive": states.count("probably unproductive"),
        "productive_from": fmt.size(smallest),
        "all_productive_from": fmt.size(every_path),
    }


def productivity_table(analyses: Mapping[str, Analysis]) -> pd.DataFrame:
    """One :func:`productivity_summary` row per label, in the mapping's order.

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    >>> row = productivity_table({"r18": a}).iloc[0]
    >>> int(row.unproductive), int(row.probably_unproductive), row.productive_from
    (0, 14, '139x139')
    """
    rows = [productivity_summary(a, label) for label, a in analyses.items()]
    return pd.DataFrame(rows, columns=list(PRODUCTIVITY_COLUMNS))


# --------------------------------------------------------------------------- per stage / layer


def stage_table(a: Analysis) -> pd.DataFrame:
    """Rows grouped by ``stage`` (one spatial size each; ``"head"`` after global pooling).

    ``scale`` is the stage's size against the input's, to the nearest power of two
    (``"1/4"``; ``"1"`` at full size): the same label means the same resolution in any
    model. ``first``/``last`` name the stage's first and last rows, ``rf`` is the receptive
    field at its last row; ``params``, ``macs`` and ``extra_ops`` sum to the analysis totals.

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet20", device="meta"), (1, 3, 32, 32))
    >>> t = stage_table(a)[["size", "scale", "layers", "rf"]].values.tolist()
    >>> t[:2], t[-1]
    ([['32x32', '1', 24, 15], ['16x16', '1/2', 22, 37]], ['head', 'head', 3, 'global'])
    """
    groups: dict[int, list[LayerRecord]] = {}
    for row in a.layers:
        groups.setdefault(row.stage, []).append(row)
    out = []
    for stage in sorted(groups):
        rows = groups[stage]
        size = next((s for s in (_spatial_size(a, r) for r in rows) if s is not None), None)
        out.append(
            {
                "stage": stage,
                "size": "head" if size is None else fmt.size(size),
                "scale": "head" if size is None else _scale(a.input_spatial[0], size[0]),
                "layers": len(rows),
                "params": sum(r.params for r in rows),
                "macs": sum(r.macs for r in rows),
                "extra_ops": sum(r.extra_ops for r in rows),
                "first": rows[0].name,
                "last": rows[-1].name,
                "rf": _rf_value(rows[-1].receptive_field),
            }
        )
    return pd.DataFrame(out, columns=list(STAGE_COLUMNS))


def layer_table(
    a: Analysis,
    compact: bool = True,
    *,
    productivity: bool = False,
    step: TrainingStep | None = None,
) -> pd.DataFrame:
    """The explorer's per-row table: name, type, kind, output, params, macs, rf, stride.

    With ``compact`` the numbers are short strings (``61.1M``, ``15.5G``; RF ``195x195``,
    ``*`` when unaligned); without it params/MACs are ints and rf/stride ints when square.
    ``productivity`` adds each row's :attr:`LayerRecord.productivity` at this input;
    ``step`` (a :func:`cnnviz.training_step` of the same model) adds ``saved``, the bytes
    each row keeps for the backward (None for a row the step did not run).

    >>> import torch.nn as nn, cnnviz
    >>> a = cnnviz.analyze(nn.Sequential(nn.Conv2d(3, 64, 3, 2, 1)), (1, 3, 224, 224))
    >>> layer_table(a).iloc[0].tolist()
    ['0', 'Conv2d', 'conv', '1x64x112x112', '1.8K', '21.7M', '3x3', '2x2']
    >>> row = layer_table(a, compact=False).to_dict("records")[0]
    >>> row["params"], row["macs"], row["rf"], row["stride"]
    (1792, 21676032, 3, 2)
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    >>> s = cnnviz.training_step(net, (1, 3, 8, 8))
    >>> t = layer_table(cnnviz.analyze(net, (1, 3, 8, 8)), False, productivity=True, step=s)
    >>> t[["name", "productivity", "saved"]].values.tolist()  # bytes: 4 * (3*8*8), 4 * (8*6*6)
    [['0', 'productive', 768], ['1', 'productive', 1152]]
    """
    saved = {r.name: r.saved_bytes for r in step.rows} if step is not None else {}
    out = []
    for r in a.layers:
        has_stride = r.rf_stride is not None and not r.rf_global
        if compact:
            params: int | str = fmt.compact(r.params)
            macs: int | str = fmt.compact(r.macs)
            rf: int | str | None = fmt.rf(r.receptive_field, mark_unaligned=True)
            stride: int | str | None = fmt.stride(r.receptive_field)
        else:
            params, macs = r.params, r.macs
            rf = _rf_value(r.receptive_field)
            stride = _dims(r.rf_stride) if has_stride else None
        cells = [r.name, r.type, r.kind, fmt.shape(r.output_shape), params, macs, rf, stride]
        if productivity:
            cells.append(r.productivity)
        if step is not None:
            b = saved.get(r.name)
            cells.append(fmt.nbytes(b) if compact and b is not None else b)
        out.append(cells)
    extra = ["productivity"] * productivity + ["saved"] * (step is not None)
    return pd.DataFrame(out, columns=[*LAYER_COLUMNS, *extra])


def rf_growth(a: Analysis) -> pd.DataFrame:
    """Rows with a known, non-global spatial RF: index, name, depth, rf and stride (max over
    axes), for the RF growth curve.

    >>> import torch.nn as nn, cnnviz
    >>> net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3, stride=2), nn.Conv2d(1, 1, 3))
    >>> rf_growth(cnnviz.analyze(net, (1, 1, 32, 32)))[["depth", "rf", "stride"]].values.tolist()
    [[1, 3, 1], [2, 5, 2], [3, 9, 2]]
    """
    out = [
        (r.index, r.name, r.depth, max(r.rf_size), max(r.rf_stride or (0,)))
        for r in a.layers
        if r.spatial and r.rf_size is not None and not r.rf_global and len(r.rf_size) > 0
    ]
    return pd.DataFrame(out, columns=list(GROWTH_COLUMNS))


def rf_paths(a: Analysis) -> list[list[int]]:
    """The data-flow graph cut into chains of row indices, the main path (the one through
    the last row) first: a row continues the chain of its first input when that chain ends
    there, else starts a branch that begins at that input (its fork). A merge (add, concat)
    also ends the chains of its other inputs, so a branch's line runs from fork to join.

    >>> import cnnviz
    >>> from cnnviz import spec
    >>> net = spec.build({"input": [1, 1, 8, 8], "layers": [{"concat": {"branches": [
    ...     [{"conv": {"out": 1, "kernel": 3, "padding": 1}},
    ...      {"conv": {"out": 1, "kernel": 3, "padding": 1}}],
    ...     [{"conv": {"out": 1, "kernel": 5, "padding": 2}}]]}}]})
    >>> rf_paths(cnnviz.analyze(net, (1, 1, 8, 8)))
    [[0, 1, 3], [2, 3]]
    """
    index = {r.name: r.index for r in a.layers}
    chain_of: dict[str, int] = {}
    chains: list[list[int]] = []
    for r in a.layers:
        parents = [p for p in r.inputs if p in index]
        first = parents[0] if parents else None
        if first is not None and chains[chain_of[first]][-1] == index[first]:
            c = chain_of[first]
            chains[c].append(r.index)
        else:
            c = len(chains)
            chains.append(([index[first]] if first is not None else []) + [r.index])
        chain_of[r.name] = c
        for p in parents[1:]:
            q = chain_of[p]
            if q != c and chains[q][-1] == index[p]:
                chains[q].append(r.index)
    if a.layers:
        main = chain_of[a.layers[-1].name]
        chains.insert(0, chains.pop(main))
    return chains


# --------------------------------------------------------------------------- one unit's RF


def unit_view(
    rf: ReceptiveField,
    input_spatial: tuple[int, int],
    unit: tuple[int, int],
    output_spatial: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Where output ``unit`` (row, col) looks on an ``input_spatial`` (H, W) image.

    Windows are ``((first_row, last_row), (first_col, last_col))``, inclusive, as from
    :meth:`ReceptiveField.window`: unit ``i`` sees ``-P + i*S .. -P + i*S + r - 1`` per axis;
    indices outside ``[0, extent)`` fall on padding. Keys: ``window``, ``inside`` (its part on
    the image, None when it misses the image), ``on_padding``, ``outside`` (pixels past
    ``top``/``bottom``/``left``/``right``), ``center`` (y, x), ``size``, ``stride``,
    ``padding``, ``aligned``, ``input``, ``unit``, and ``neighbour_w``/``neighbour_h`` (the
    windows of the units one step right / down, ``neighbour_w_unit``/``neighbour_h_unit``).
    Give ``output_spatial`` (the layer's output H, W) to check ``unit`` and get
    ``output_grid``; a neighbour that would fall off that grid is taken on the other side.

    >>> v = unit_view(ReceptiveField((3, 3), (2, 2), (1, 1)), (8, 8), (0, 1))
    >>> v["window"], v["inside"], v["outside"]["top"], v["center"]
    (((-1, 1), (1, 3)), ((0, 1), (1, 3)), 1, (0.0, 2.0))
    >>> v["neighbour_w"], v["neighbour_h"]
    (((-1, 1), (3, 5)), ((1, 3), (1, 3)))
    """
    if not rf.known or rf.stride is None or rf.padding is None:
        raise ValueError(f"cannot draw an unknown receptive field ({rf.reason or 'no reason'})")
    if rf.is_global:
        raise ValueError("the receptive field is global: every unit sees the whole input")
    if len(rf.size) != 2 or len(input_spatial) != 2 or len(unit) != 2:  # type: ignore[arg-type]
        raise ValueError(
            f"unit_view needs a 2-D receptive field, input and unit; got size {rf.size}, "
            f"input {tuple(input_spatial)}, unit {tuple(unit)}"
        )
    # Stride 0 on an axis: every unit along it sees the same window (an adaptive pool that
    # spreads fewer positions over more units); the view draws it like any other.
    unit = (int(unit[0]), int(unit[1]))
    if min(unit) < 0:
        raise ValueError(f"unit indices must be >= 0, got {unit}")
    height, width = int(input_spatial[0]), int(input_spatial[1])
    if output_spatial is not None:
        oh, ow = int(output_spatial[0]), int(output_spatial[1])
        if unit[0] >= oh or unit[1] >= ow:
            raise ValueError(f"unit {unit} is outside the {oh}x{ow} output grid")
    (r0, r1), (c0, c1) = rf.window(unit)
    outside = {
        "top": max(0, -r0),
        "bottom": max(0, r1 - (height - 1)),
        "left": max(0, -c0),
        "right": max(0, c1 - (width - 1)),
    }
    lo_r, hi_r, lo_c, hi_c = max(r0, 0), min(r1, height - 1), max(c0, 0), min(c1, width - 1)
    inside = ((lo_r, hi_r), (lo_c, hi_c)) if lo_r <= hi_r and lo_c <= hi_c else None
    step_w = 1 if output_spatial is None or unit[1] + 1 < output_spatial[1] or unit[1] == 0 else -1
    step_h = 1 if output_spatial is None or unit[0] + 1 < output_spatial[0] or unit[0] == 0 else -1
    unit_w, unit_h = (unit[0], unit[1] + step_w), (unit[0] + step_h, unit[1])
    view: dict[str, Any] = {
        "unit": unit,
        "input": (height, width),
        "size": tuple(rf.size),  # type: ignore[arg-type]
        "stride": tuple(rf.stride),
        "padding": tuple(rf.padding),
        "aligned": rf.aligned,
        "window": ((r0, r1), (c0, c1)),
        "inside": inside,
        "on_padding": any(outside.values()),
        "outside": outside,
        "center": rf.center(unit),
        "neighbour_w": rf.window(unit_w),
        "neighbour_h": rf.window(unit_h),
        "neighbour_w_unit": unit_w,
        "neighbour_h_unit": unit_h,
    }
    if output_spatial is not None:
        view["output_grid"] = (int(output_spatial[0]), int(output_spatial[1]))
    return view


# --------------------------------------------------------------------------- downloads


def _plain(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):  # numpy / pandas scalars
        return _plain(v.item())
    return v


def to_csv(df: pd.DataFrame) -> str:
    """CSV text without the index, for a download button.

    >>> to_csv(pd.DataFrame({"label": ["a"], "params": [61100840]}))
    'label,params\\na,61100840'
    """
    return df.to_csv(index=False, lineterminator="\n").rstrip("\n")


def to_json(df: pd.DataFrame, indent: int | None = None) -> str:
    """JSON records (one object per row); ints stay ints, NaN becomes null.

    >>> to_json(pd.DataFrame({"label": ["a"], "params": [61100840], "share": [0.5]}))
    '[{"label": "a", "params": 61100840, "share": 0.5}]'
    """
    records = [{str(k): _plain(v) for k, v in row.items()} for row in df.to_dict(orient="records")]
    return json.dumps(records, indent=indent)
