"""Independent receptive-field oracle: the support of an input gradient.

The input gradient of one output unit is Luo et al.'s effective receptive field (NeurIPS 2016);
its support is the theoretical one: in float64, with positive inputs, every weight and bias
positive, max-pool swapped for avg-pool of the same geometry, saturating activations (ReLU6)
swapped for ReLU, BN as a positive affine map and dropout off, the bounding box of the support
of the input gradient of one output position (summed over channels) is its theoretical RF, as
long as the box does not touch the input's border. Neighbouring positions give the effective
stride S, and the box's left edge gives P (unit i sees ``[-P + i*S, -P + i*S + r - 1]``).

Nothing here imports cnnviz: the oracle only runs the real model with real tensors.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

_MAX_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONVS = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


class SumPool(nn.Module):
    """Same geometry as a max-pool (kernel, stride, padding, dilation, ceil_mode), but every
    input in a window contributes with weight 1, so the gradient support is the full window."""

    def __init__(self, pool: nn.Module, n: int) -> None:
        super().__init__()
        self.pool = pool
        self.n = n

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, p = self.n, self.pool

        def tup(v):
            return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n

        k, s, pad, d = (
            tup(p.kernel_size),
            tup(p.stride or p.kernel_size),
            tup(p.padding),
            tup(p.dilation),
        )
        with torch.no_grad():
            want = p(x.detach()).shape[-n:]  # the max-pool's own output size (ceil mode too)
        spatial = x.shape[-n:]
        pads: list[int] = []
        for ax in reversed(range(n)):  # F.pad lists the last dim first
            need = (want[ax] - 1) * s[ax] + d[ax] * (k[ax] - 1) + 1 - spatial[ax] - pad[ax]
            pads += [pad[ax], max(pad[ax], need)]
        x = F.pad(x, pads)
        c = x.shape[1]
        w = torch.ones((c, 1, *k), dtype=x.dtype)
        y = _CONVS[n](x, w, None, s, 0, d, c)
        return y[(..., *(slice(0, L) for L in want))]


def positive_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A float64, eval-mode copy with every parameter in [0.1, 1), BN a positive affine map
    (mean 0, var 1), max-pools replaced by :class:`SumPool` and ReLU6/Hardtanh by ReLU."""
    m = copy.deepcopy(model).to(torch.float64).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.rand(p.shape, generator=g, dtype=torch.float64) * 0.9 + 0.1)
        for mod in m.modules():
            if isinstance(mod, _NORMS) and mod.running_mean is not None:
                mod.running_mean.zero_()
                mod.running_var.fill_(1.0)
    for parent in list(m.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _MAX_POOLS):
                n = _MAX_POOLS.index(type(child)) + 1
                setattr(parent, name, SumPool(child, n))
            elif isinstance(child, (nn.ReLU6, nn.Hardtanh)):
                setattr(parent, name, nn.ReLU())
    return m


@dataclass(frozen=True)
class OracleRF:
    size: tuple[int, ...]
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    unit: tuple[int, ...]  # the output unit the box was measured for
    boxes: tuple[tuple[tuple[int, int], ...], ...]  # (lo, hi) per axis of unit, unit + 1, ...


class TooSmall(AssertionError):
    """The measured window touches the input's border (or the output has too few units)."""


def gradient_boxes(
    model: nn.Module,
    x: torch.Tensor,
    units: Callable[[tuple[int, ...]], list[tuple[int, ...]]] | list[tuple[int, ...]],
    target: str | None = None,
    pick: Callable[[object], torch.Tensor] | None = None,
) -> tuple[list[tuple[tuple[int, int], ...]], tuple[int, ...]]:
    """Bounding boxes (inclusive ``(lo, hi)`` per spatial axis) of the support of
    ``d(sum_c y[0, c, unit]) / dx``, one per unit, and the spatial shape of y.

    ``target`` names a module whose output is y (forward hook); else y is the model's output;
    ``pick`` maps that output to a tensor. ``units`` may be a function of y's spatial shape.
    One forward and one backward pass: batch item b carries the gradient of unit b (the model
    must be in eval mode so that batch items do not interact). ``x`` has batch size 1."""
    n = x.dim() - 2
    captured: list = []
    handle = None
    if target is not None:
        mod = model.get_submodule(target)
        handle = mod.register_forward_hook(lambda _m, _i, o: captured.append(o))
    try:
        with torch.no_grad():
            probe = x
            y = model(probe)
            y = captured[-1] if target is not None else y
            y = pick(y) if pick is not None else y
        spatial = tuple(y.shape[-n:])
        ulist = units(spatial) if callable(units) else list(units)
        for u in ulist:
            if any(not 0 <= i < L for i, L in zip(u, spatial, strict=True)):
                raise TooSmall(f"unit {u} is outside output {tuple(y.shape)}")
        xb = x.detach().expand(len(ulist), *x.shape[1:]).clone().requires_grad_(True)
        captured.clear()
        out = model(xb)
    finally:
        if handle is not None:
            handle.remove()
    y = captured[-1] if target is not None else out
    y = pick(y) if pick is not None else y
    total = sum(y[(b, slice(None), *u)].sum() for b, u in enumerate(ulist))
    (grad,) = torch.autograd.grad(total, xb)
    boxes = []
    for b, u in enumerate(ulist):
        nz = (grad[b].abs().sum(dim=0) > 0).nonzero()
        if nz.numel() == 0:
            raise AssertionError(f"unit {u} does not depend on the input")
        boxes.append(tuple((int(nz[:, a].min()), int(nz[:, a].max())) for a in range(n)))
    return boxes, spatial


def oracle_input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A positive float64 input in [0.5, 1.5)."""
    g = torch.Generator().manual_seed(seed + 1)
    return torch.rand(shape, generator=g, dtype=torch.float64) + 0.5


def oracle_rf(
    model: nn.Module,
    input_shape: tuple[int, ...],
    target: str | None = None,
    pick: Callable[[object], torch.Tensor] | None = None,
    unit: tuple[int, ...] | None = None,
    n_units: int = 3,
    seed: int = 0,
) -> OracleRF:
    """(r, S, P) per axis from the gradient boxes of ``n_units`` diagonal neighbours
    ``unit, unit + 1, ...`` (by default starting just before the centre of the output), measured
    on a positive copy of ``model``.

    Raises :class:`TooSmall` when a box touches the input's border, or when the boxes are not
    translates of each other by one positive stride (a window clipped by padding: where a kernel
    is smaller than its stride the support has holes, so a clipped window need not touch the
    border). Enlarge the input, or use :func:`oracle_rf_grow`."""
    m = positive_copy(model, seed)
    x = oracle_input(input_shape, seed)

    def units(spatial):
        u = unit if unit is not None else tuple(max(L // 2 - 1, 0) for L in spatial)
        return [tuple(i + j for i in u) for j in range(n_units)]

    boxes, spatial = gradient_boxes(m, x, units, target, pick)
    u0 = units(spatial)[0]
    for box in boxes:
        for (lo, hi), L in zip(box, input_shape[2:], strict=True):
            if lo <= 0 or hi >= L - 1:
                raise TooSmall(f"window {box} touches the border of {input_shape[2:]}")
    box0 = boxes[0]
    size = tuple(hi - lo + 1 for lo, hi in box0)
    stride = tuple(b[0] - a[0] for a, b in zip(box0, boxes[1], strict=True))
    for j, box in enumerate(boxes):
        want = tuple((lo + j * s, hi + j * s) for (lo, hi), s in zip(box0, stride, strict=True))
        if box != want or min(stride) < 1:
            raise TooSmall(f"the boxes {boxes} of units {units(spatial)} are not translates")
    padding = tuple(i * s - lo for i, s, (lo, _) in zip(u0, stride, box0, strict=True))
    return OracleRF(size, stride, padding, u0, tuple(boxes))


def _same(a: OracleRF, b: OracleRF) -> bool:
    return (a.size, a.stride, a.padding) == (b.size, b.stride, b.padding)


def oracle_rf_grow(
    model: nn.Module,
    shape_of: Callable[[int], tuple[int, ...]],
    start: int,
    limit: int = 2048,
    **kwargs,
) -> tuple[OracleRF, tuple[int, ...]]:
    """:func:`oracle_rf` on ``shape_of(L)`` for growing L (from ``start``) until two consecutive
    sizes both fit and agree (an RF is a property of the net, not of the input size; a window
    clipped by padding would change with L). Returns the smaller one and its input shape."""
    length = start
    last: Exception | None = None
    prev: tuple[OracleRF, tuple[int, ...]] | None = None
    while length <= limit:
        shape = shape_of(length)
        try:
            o = oracle_rf(model, shape, **kwargs)
        except (TooSmall, RuntimeError) as e:  # torch: "output size is too small"
            last, prev = e, None
        else:
            if prev is not None and _same(prev[0], o):
                return prev
            last, prev = AssertionError(f"{o} at {shape} differs from {prev}"), (o, shape)
        # grow by half while nothing fits; confirm a fit with a quarter more
        length += (length // 4 if prev is not None else length // 2) + 1
    raise AssertionError(f"no input up to {limit} fits: {last}")


def slim_sequential(seq: nn.Sequential, in_channels: int, width: int = 2) -> nn.Sequential:
    """The same geometry with ``width`` channels everywhere (convs rebuilt with the same kernel,
    stride, padding and dilation; channel-wise layers kept): a cheap copy for the oracle, since
    a window depends only on geometry, not on channel counts."""
    layers: list[nn.Module] = []
    c = in_channels
    for mod in seq:
        if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            conv = type(mod)(c, width, mod.kernel_size, mod.stride, mod.padding, mod.dilation)
            layers.append(conv)
            c = width
        elif isinstance(mod, _NORMS):
            layers.append(type(mod)(c))
        else:
            layers.append(copy.deepcopy(mod))
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------- activation memory
def memory_oracle(model: nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(total, peak) bytes of the new tensor storages a real CPU forward creates, the input
    counted once: a dispatch mode sees every op's outputs, a storage counts when it first
    appears and is freed when its last tensor dies. Parameters and buffers are not counted;
    a view or an in-place result shares its base's storage and adds nothing."""
    import weakref

    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    known = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    start = x.numel() * x.element_size()

    class Mem(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live = self.peak = self.total = start
            self.refs: dict[int, list] = {x.untyped_storage().data_ptr(): [start, {id(x)}]}

        def _free(self, key: int, tid: int) -> None:
            entry = self.refs.get(key)
            if entry is not None:
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
                if key in known or st.nbytes() == 0:
                    continue
                if key not in self.refs:
                    self.refs[key] = [st.nbytes(), set()]
                    self.total += st.nbytes()
                    self.live += st.nbytes()
                    self.peak = max(self.peak, self.live)
                if id(t) not in self.refs[key][1]:
                    self.refs[key][1].add(id(t))
                    weakref.finalize(t, self._free, key, id(t))
            return out

    mode = Mem()
    with torch.no_grad(), mode:
        model(x)
    return mode.total, mode.peak
