"""Effective receptive field: what a unit really looks at, beside what it could look at.

Luo, Li, Urtasun & Zemel, "Understanding the Effective Receptive Field in Deep Convolutional
Neural Networks" (NeurIPS 2016): the input-gradient magnitude of a central output unit is
roughly Gaussian and fills only part of the theoretical RF; its width grows like sqrt(depth)
while the theoretical RF grows linearly. Skip connections shrink it; subsampling and dilation
enlarge it.

:func:`effective_receptive_field` measures it on a copy of any model :func:`cnnviz.analyze`
handles and pairs it with the theoretical RF of the same unit.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cnnviz import fmt, safety
from cnnviz.analysis import analyze
from cnnviz.errors import AnalysisError
from cnnviz.modules import copy_model
from cnnviz.receptive import ReceptiveField
from cnnviz.result import Analysis

#: Largest weights file the app accepts (bytes).
MAX_WEIGHTS_BYTES = 512 * 1024**2
#: A safetensors header may take this much, plus :data:`HEADER_BYTES_PER_TENSOR` per tensor the
#: model has (a ResNet-152's 932 entries take about 100 KB).
HEADER_BYTES = 64 * 1024
HEADER_BYTES_PER_TENSOR = 512
#: safetensors dtype names, and the torch dtypes they load as.
_ST_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool, "C64": torch.complex64,
}  # fmt: skip


class WeightsError(ValueError):
    """Weights that do not fit the model: the message lists every mismatch."""


@dataclass(frozen=True)
class EffectiveRF:
    """An ERF measurement. ``map`` is (H, W) over the input: mean |d y_centre / d x| summed
    over input channels; ``unit`` is the measured output position, ``center`` its theoretical
    RF centre in input pixels."""

    map: np.ndarray
    theoretical: ReceptiveField
    layer: str
    unit: tuple[int, ...]
    center: tuple[float, ...]
    n_samples: int

    def radius(self, mass: float = 0.95) -> float:
        """Half-width of the smallest square centred on ``center`` that holds ``mass`` of the
        map (Chebyshev distance; half-integers when the centre falls between pixels).

        >>> import numpy as np
        >>> m = EffectiveRF(np.pad(np.ones((3, 3)), 2), ReceptiveField((3, 3), (1, 1), (1, 1)),
        ...                 "x", (3, 3), (3.0, 3.0), 1)
        >>> m.radius(0.1), m.radius(1.0)
        (0.0, 1.0)
        """
        if not 0 < mass <= 1:
            raise ValueError(f"mass must be in (0, 1], got {mass}")
        total = float(self.map.sum())
        if total == 0:
            return 0.0
        d = self._distance().ravel()
        order = np.argsort(d, kind="stable")
        ds, cum = d[order], np.cumsum(self.map.ravel()[order])
        levels, starts = np.unique(ds, return_index=True)
        mass_within = cum[np.append(starts[1:], len(ds)) - 1]  # mass inside each square
        i = int(np.searchsorted(mass_within, mass * total * (1 - 1e-12)))
        return float(levels[min(i, len(levels) - 1)])

    def width(self, mass: float = 0.95) -> float:
        """Side of that square in pixels: ``2 * radius + 1``."""
        return 2 * self.radius(mass) + 1

    def ratio(self, mass: float = 0.95) -> float:
        """ERF width / theoretical RF width (the larger axis of the theoretical RF)."""
        if self.theoretical.size is None:
            raise ValueError(f"the theoretical RF is unknown: {self.theoretical.reason}")
        return self.width(mass) / max(self.theoretical.size)

    def variance(self, axis: int) -> float:
        """Variance of the map's marginal along ``axis`` (0 = rows), in pixels²."""
        marginal = self.map.sum(axis=1 - axis) if self.map.ndim == 2 else self.map
        if marginal.sum() == 0:  # no gradient reached the input (dead ReLUs): no spread
            return 0.0
        p = marginal / marginal.sum()
        x = np.arange(len(p))
        mean = float((p * x).sum())
        return float((p * (x - mean) ** 2).sum())

    def _distance(self) -> np.ndarray:
        grids = np.meshgrid(*(np.arange(n) for n in self.map.shape), indexing="ij")
        return np.max([np.abs(g - c) for g, c in zip(grids, self.center, strict=True)], axis=0)


def max_header_bytes(model: nn.Module) -> int:
    """The largest safetensors header :func:`read_safetensors` reads for ``model``."""
    return HEADER_BYTES + HEADER_BYTES_PER_TENSOR * len(model.state_dict())


def weights_file_bytes(model: nn.Module) -> int:
    """The largest safetensors file of ``model``'s weights: its tensors' bytes and the
    largest header (8 + :func:`max_header_bytes`). Works on a meta model (no memory).

    >>> weights_file_bytes(nn.Linear(4, 2)) - max_header_bytes(nn.Linear(4, 2))  # 10 floats + 8
    48
    """
    data = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return data + 8 + max_header_bytes(model)


def _header(data: bytes, model: nn.Module, what: str) -> dict[str, dict]:
    """The tensor entries of a safetensors header, each checked for form and against
    ``model``'s state_dict (names, shapes, dtype kinds, data offsets), reading nothing but the
    header: a file with more tensors, or a bigger header, than ``model`` could need is refused
    before its JSON is parsed."""
    if len(data) < 8:
        raise WeightsError(f"{what} is not a readable safetensors file ({len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    cap = max_header_bytes(model)
    if n > cap:
        raise WeightsError(
            f"{what}: its safetensors header is {n:,} bytes, more than the {cap:,} that "
            f"{type(model).__name__}'s {len(model.state_dict())} tensors need"
        )
    if 8 + n > len(data):
        raise WeightsError(
            f"{what} is not a readable safetensors file (cut short: its header says {n:,} "
            "bytes, the file is shorter)"
        )
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, RecursionError):
        raise WeightsError(
            f"{what} is not a readable safetensors file (its header is not JSON)"
        ) from None
    if not isinstance(header, dict):
        raise WeightsError(
            f"{what} is not a readable safetensors file (its header is not a mapping)"
        )
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    own = model.state_dict()
    if len(entries) > len(own):
        raise WeightsError(
            f"{what} holds {len(entries):,} tensors; {type(model).__name__} has {len(own)}"
        )
    body = len(data) - 8 - n
    shapes: dict[str, torch.Tensor] = {}
    for key, e in entries.items():
        ok = isinstance(e, dict) and e.get("dtype") in _ST_DTYPES
        shape, offsets = (e.get("shape"), e.get("data_offsets")) if ok else (None, None)
        ok = ok and isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)
        ok = ok and isinstance(offsets, list) and len(offsets) == 2
        ok = ok and all(type(o) is int for o in offsets) and 0 <= offsets[0] <= offsets[1] <= body
        if ok:
            dtype = _ST_DTYPES[e["dtype"]]
            numel = math.prod(shape)
            ok = offsets[1] - offsets[0] == numel * torch.empty((), dtype=dtype).element_size()
        if not ok:
            raise WeightsError(f"{what}: the entry for {str(key)[:80]!r} is malformed")
        # a meta tensor carries the shape and dtype the checks need, and no memory
        shapes[key] = torch.empty(shape, dtype=dtype, device="meta")
    check_state_dict(model, shapes)
    return entries


def read_safetensors(data: bytes, model: nn.Module, *, what: str = "the weights file"):
    """The state dict in safetensors ``data``, for ``model``: the header is checked first
    (size, tensor count, names, shapes, dtypes and offsets against ``model.state_dict()``,
    without materialising anything), then the tensors are loaded and checked for NaN and
    infinite values. Raises :class:`WeightsError` naming what does not fit.

    >>> from safetensors.torch import save
    >>> net = nn.Linear(2, 1)
    >>> sorted(read_safetensors(save(dict(net.state_dict())), net))
    ['bias', 'weight']
    """
    _header(data, model, what)
    from safetensors.torch import load

    try:
        state = load(data)
    except Exception as e:  # the header passed, the body did not
        raise WeightsError(f"{what} is not a readable safetensors file: {e}") from None
    check_state_dict(model, state)
    return state


def _load_weights(model: nn.Module, weights, seed: int) -> None:
    if weights is None:
        return
    if isinstance(weights, str) and weights == "random":
        _reinit(model, seed)
        return
    if isinstance(weights, (str, Path)):
        path = Path(weights)
        if path.suffix != ".safetensors":
            raise WeightsError(
                f"{path.name}: only .safetensors files are read (they carry no "
                "code); convert other formats in your own code"
            )
        if path.stat().st_size > MAX_WEIGHTS_BYTES:
            raise WeightsError(f"{path.name} is over the {MAX_WEIGHTS_BYTES // 2**20} MiB limit")
        state = read_safetensors(path.read_bytes(), model, what=path.name)
    elif isinstance(weights, (bytes, bytearray, memoryview)):
        state = read_safetensors(bytes(weights), model)
    elif isinstance(weights, Mapping):
        state = dict(weights)
    else:
        raise WeightsError(
            "weights must be None, 'random', a state dict, safetensors bytes or a .safetensors path"
        )
    check_state_dict(model, state)
    model.load_state_dict(state, strict=True)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`WeightsError` listing missing, unexpected and mis-shaped keys.

    >>> check_state_dict(nn.Linear(2, 3), {"weight": torch.zeros(3, 2)})
    Traceback (most recent call last):
    ...
    cnnviz.erf.WeightsError: weights do not fit Linear: missing bias
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [str(k)[:80] for k in state if k not in own]
    shapes = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    # floating parameters need floating weights; integer buffers (BN's num_batches_tracked)
    # integers: int8, bool or complex weights would be cast into something else
    kinds = [
        f"{k} is {str(state[k].dtype).removeprefix('torch.')}, not "
        + ("float" if v.is_floating_point() else "an integer")
        for k, v in own.items()
        if k in state and not _same_kind(state[k].dtype, v.dtype)
    ]
    parts = []
    for label, items in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("shape", shapes),
        ("dtype", kinds),
    ):
        if items:
            more = f" (+{len(items) - 8} more)" if len(items) > 8 else ""
            parts.append(f"{label} {', '.join(items[:8])}{more}")
    if parts:
        raise WeightsError(f"weights do not fit {type(model).__name__}: " + "; ".join(parts))
    real = [(k, t) for k, t in state.items() if not t.is_meta and t.is_floating_point()]
    bad = [k for k, t in real if not bool(torch.isfinite(t).all())]
    if bad:
        more = f" (+{len(bad) - 8} more)" if len(bad) > 8 else ""
        raise WeightsError(
            f"weights hold NaN or infinite values (not finite): {', '.join(bad[:8])}{more}"
        )
    cast = sorted({str(t.dtype).removeprefix("torch.") for k, t in real if t.dtype != own[k].dtype})
    if cast:
        warnings.warn(
            f"the weights are {' and '.join(cast)}; they are measured as "
            f"{str(next(iter(own.values())).dtype).removeprefix('torch.')}, the model's dtype",
            stacklevel=3,
        )


def _same_kind(a: torch.dtype, b: torch.dtype) -> bool:
    """Floating with floating, integer with integer (bool and complex with nothing)."""
    if a.is_floating_point or b.is_floating_point:
        return a.is_floating_point and b.is_floating_point
    bad = (torch.bool,)
    return not (a.is_complex or b.is_complex or a in bad or b in bad)


def _reinit(model: nn.Module, seed: int) -> None:
    """Seeded random weights that keep the signal's scale with depth: He (Kaiming) normal,
    fan-out, for conv and linear weights (torchvision's ResNet init), zero biases, norms at
    weight 1 and bias 0. PyTorch's default init shrinks the variance by about 3x per layer,
    so a deep plain net's gradient would underflow to exactly 0 (ResNet-110's plain twin)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
            w = getattr(m, "weight", None)
            if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)) and w is not None:
                nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu")
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)


def _copy(model: nn.Module, seed: int) -> nn.Module:
    """A float32 CPU copy; a meta model is materialised with seeded random weights."""
    if any(p.is_meta for p in model.parameters()) or any(b.is_meta for b in model.buffers()):
        m = copy_model(model).to_empty(device="cpu")
        _reinit(m, seed)
        for name, buf in m.named_buffers():  # BN statistics: mean 0, var 1
            if name.endswith("running_var"):
                buf.fill_(1.0)
            elif name.endswith(("running_mean", "num_batches_tracked")):
                buf.zero_()
        return m.float()
    return copy_model(model).cpu().float()


def default_layer(model: nn.Module, input_size) -> str:
    """The layer an ERF starts on: :meth:`Analysis.default_layer`'s row (the one the app's
    explorer starts on), as the module call it comes from (``"conv#2"`` for a second call)."""
    return _module_call(analyze(model, input_size))


def _module_call(a: Analysis) -> str:
    """:meth:`Analysis.default_layer`'s row as a layer name :func:`effective_receptive_field`
    takes: a module row keeps its name (``relu#2``), a functional row is measured at the
    output of the module that called it."""
    name = a.default_layer()
    if name is None:
        raise AnalysisError("no layer of this model has a spatial output")
    row = next(r for r in a.layers if r.name == name)
    return row.name if row.is_module else row.module


def effective_receptive_field(
    model: nn.Module,
    layer: str | None = None,
    input_size: tuple[int, ...] | None = None,
    *,
    n_samples: int = 8,
    weights: str | Path | Mapping[str, torch.Tensor] | bytes | None = None,
    seed: int = 0,
    cap_bytes: int | None = safety.DEFAULT_CAP_BYTES,
    progress: Callable[[int, int], None] | None = None,
    waiting: Callable[[int], None] | None = None,
) -> EffectiveRF:
    """Measure the ERF of the central unit of ``layer`` over the input.

    ``layer`` is a module name, or an analysis row name such as ``"layer1.0.relu#2"`` for a
    later call of a module that runs more than once; None picks :func:`default_layer`.

    The unit is at index (n-1)//2 on each spatial axis of the layer's output, summed over
    channels; gradients run on real CPU tensors in eval mode, averaged over ``n_samples``
    seeded random inputs. ``input_size`` has batch 1 (as in ``analyze``). The model is not
    changed: this works on a float32 copy. ``weights``: None keeps the model's own (a meta
    model gets seeded random ones), ``"random"`` re-initialises with ``seed``, a state dict,
    safetensors bytes or a ``.safetensors`` path loads those (never ``torch.load``; files go
    through :func:`read_safetensors`, their header checked before the budget and the lock,
    their tensors loaded under the lock).

    Cost: ``n_samples`` forward and backward passes on the CPU, about 3x the model's
    activation memory plus its parameters, checked against ``cap_bytes`` first.
    ``progress(done, n_samples)`` is called after each sample; ``waiting(place)`` while
    other jobs hold or wait for the compute lock (:func:`cnnviz.safety.exclusive`).

    >>> import torch.nn as nn
    >>> net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1))
    >>> m = effective_receptive_field(net, "1", (1, 1, 9, 9), n_samples=1)
    >>> m.map.shape, m.theoretical.size, m.unit
    ((9, 9), (5, 5), (4, 4))
    """
    if input_size is None:
        input_size = getattr(model, "default_input_size", None)
        if input_size is None:
            raise ValueError("input_size is required for a model without default_input_size")
    input_size = tuple(int(s) for s in input_size)
    if input_size[0] != 1:
        raise ValueError(f"input_size must have batch 1, got {input_size}")
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    a = analyze(model, input_size)
    if layer is None:
        layer = _module_call(a)
    # "relu#3": the third call of a module that runs more than once (analyze's row names)
    module_name, _, call = layer.partition("#")
    call_index = int(call) - 1 if call.isdigit() and int(call) > 0 else 0
    modules = dict(model.named_modules())
    if module_name not in modules:
        import difflib

        close = difflib.get_close_matches(module_name, [n for n in modules if n], n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise AnalysisError(f"no module named {layer!r}{hint}")
    theoretical = a.receptive_field(layer) if layer else a.receptive_field("")
    if theoretical.size is None or theoretical.is_global or len(input_size) < 3:
        why = theoretical.reason or "its output is global"
        raise AnalysisError(f"layer {layer!r} has no spatial output with a known RF ({why})")
    budget = safety.estimate(a)
    safety.check(
        safety.Budget(budget.param_bytes, 3 * budget.activation_bytes),
        "cpu",
        cap_bytes,
        what=f"the effective RF of {layer!r}",
    )
    spatial = input_size[2:]
    if any(r > n for r, n in zip(theoretical.size, spatial, strict=True)):
        warnings.warn(
            f"the theoretical RF of {layer!r} ({fmt.shape(theoretical.size)}) is larger than "
            f"the input ({fmt.shape(spatial)}): the map is clipped and the ratio biased",
            stacklevel=2,
        )

    if isinstance(weights, (bytes, bytearray, memoryview)):
        _header(bytes(weights), model, "the weights file")  # a bad file never waits for the lock
    job = _Job(layer, module_name, call_index, input_size, theoretical, n_samples, seed)
    with safety.exclusive(waiting):  # one real-compute job at a time (shared with timing)
        return _measure(model, job, weights, progress)


@dataclass(frozen=True)
class _Job:
    """What one measurement needs besides the model and its weights."""

    layer: str
    module_name: str
    call_index: int
    input_size: tuple[int, ...]
    theoretical: ReceptiveField
    n_samples: int
    seed: int


def _measure(model, job: _Job, weights, progress=None) -> EffectiveRF:
    m = _copy(model, job.seed)
    _load_weights(m, weights, job.seed)
    m.eval()
    target = dict(m.named_modules())[job.module_name]
    captured: list[torch.Tensor] = []
    handle = target.register_forward_hook(
        lambda mod, args, out: captured.append(out if torch.is_tensor(out) else out[0])
    )
    gen = torch.Generator().manual_seed(job.seed)
    total = torch.zeros(job.input_size[2:], dtype=torch.float64)
    unit: tuple[int, ...] = ()
    try:
        for i in range(job.n_samples):
            if progress is not None:
                progress(i, job.n_samples)
            captured.clear()
            x = torch.randn(job.input_size, generator=gen, requires_grad=True)
            m(x)
            if job.call_index >= len(captured):
                raise AnalysisError(
                    f"module {job.module_name!r} ran {len(captured)} time(s), "
                    f"not {job.call_index + 1}"
                )
            out = captured[job.call_index]  # (1, C, *spatial)
            unit = tuple((n - 1) // 2 for n in out.shape[2:])
            y = out[(0, slice(None), *unit)].sum()
            (grad,) = torch.autograd.grad(y, x)
            total += grad[0].abs().sum(0).double()
        if progress is not None:
            progress(job.n_samples, job.n_samples)
    finally:
        handle.remove()
    center = job.theoretical.center(unit)
    mean = (total / job.n_samples).numpy()
    return EffectiveRF(mean, job.theoretical, job.layer, unit, center, job.n_samples)


def sqrt_trend(depths, widths) -> float:
    """Least-squares ``c`` in ``width ≈ c * sqrt(depth)`` (for the RF lab's trend line).

    >>> round(sqrt_trend([1, 4, 9], [2, 4, 6]), 6)
    2.0
    """
    s = np.sqrt(np.asarray(depths, dtype=float))
    w = np.asarray(widths, dtype=float)
    return float((s * w).sum() / (s * s).sum())


__all__ = [
    "MAX_WEIGHTS_BYTES",
    "EffectiveRF",
    "WeightsError",
    "check_state_dict",
    "default_layer",
    "effective_receptive_field",
    "max_header_bytes",
    "read_safetensors",
    "sqrt_trend",
    "weights_file_bytes",
]


def erf_growth(
    depths=(1, 2, 3, 4, 6, 8, 12, 16),
    *,
    kernel_size: int = 3,
    channels: int = 16,
    activation: bool = True,
    n_samples: int = 4,
    seed: int = 0,
):
    """ERF against theoretical RF for stacks of n kxk convolutions (random weights).

    Returns a DataFrame with n, the theoretical width (1 + n(k-1)), the ERF's standard
    deviation along rows (Luo et al.'s width measure: it grows like sqrt(n)) and its 95 %
    width. The input is large enough that no window touches the border.

    >>> df = erf_growth((1, 4), channels=2, n_samples=1)
    >>> list(df["theoretical"])
    [3, 9]
    """
    import pandas as pd

    from cnnviz.zoo import conv_stack

    rows = []
    for n in depths:
        theo = 1 + n * (kernel_size - 1)
        size = 2 * theo + 8
        torch.manual_seed(seed)
        net = conv_stack(n, kernel_size, channels, activation=activation)
        m = effective_receptive_field(
            net,
            str(len(net) - 1),
            (1, channels, size, size),
            n_samples=n_samples,
            weights="random",
            seed=seed,
        )
        rows.append(
            {
                "n": n,
                "theoretical": theo,
                "erf_std": m.variance(0) ** 0.5,
                "erf_width_95": m.width(0.95),
                "ratio_95": m.ratio(0.95),
            }
        )
    return pd.DataFrame(rows)
