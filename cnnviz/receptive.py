"""Receptive-field algebra: (r, S, P) per spatial axis, composed along the data flow.

Definitions follow Araujo, Norris & Sim, "Computing Receptive Fields of Convolutional Neural
Networks" (Distill, 2019), per spatial axis of the *input*:

- ``r``  size of the window that one output unit sees, in input pixels;
- ``S``  effective stride: how far the window moves between neighbouring units;
- ``P``  effective padding: unit ``i`` sees input pixels ``[-P + i*S, -P + i*S + r - 1]``.

A layer with kernel k, stride s, left padding p and dilation d (k' = d(k-1)+1) maps
``r -> r + (k'-1) S``, ``S -> S s``, ``P -> P + p S``. At a merge (add, concat) the window is
the hull of the incoming windows; centres that differ make the result *unaligned*; different
strides make the window vary from unit to unit, which we report as unknown.

:class:`ReceptiveField` is the public, frozen answer; :class:`Flow` is the tracer's per-tensor
state (which tensor dim is which input axis, the window, and per-channel-group windows).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

# Labels for tensor dims in a Flow: batch, channel/feature, folded (spatial mixed with
# something else by a reshape). Spatial dims are labelled by the input axis index (int).
BATCH = "b"
CHAN = "c"
FOLD = "x"
ONE = "1"  # a size-1 dim inserted by unsqueeze or a reshape
#: The reason given for a tensor that does not depend on the input (a constant, a parameter).
NO_INPUT = "does not depend on the input"


@dataclass(frozen=True)
class ReceptiveField:
    """The receptive field of one unit of a tensor, per spatial axis of the input.

    ``size``, ``stride`` and ``padding`` have one entry per spatial axis (H, W for 2-D). A
    global field (after global pooling or flatten + linear) has ``is_global`` true and
    ``size`` equal to the input's spatial size. When the field cannot be known, ``size`` is
    ``None`` and ``reason`` says why. ``min_size`` is the smallest field over all paths from
    the input (Richter et al., ICMLA 2021): on a residual net the shortcut-only path keeps it
    small while ``size``, the hull over paths, grows; None when global or unknown, equal to
    ``size`` on a single path.

    >>> rf = ReceptiveField((5, 5), (1, 1), (2, 2))
    >>> rf.size, rf.is_global, rf.smallest
    ((5, 5), False, (5, 5))
    """

    size: tuple[int, ...] | None
    stride: tuple[int, ...] | None = None
    padding: tuple[int, ...] | None = None
    aligned: bool = True
    is_global: bool = False
    reason: str | None = None
    min_size: tuple[int, ...] | None = None

    @property
    def smallest(self) -> tuple[int, ...] | None:
        """``min_size``, or ``size`` where no smaller path was recorded; None when global or
        unknown."""
        if self.size is None or self.is_global:
            return None
        return self.min_size if self.min_size is not None else self.size

    @property
    def known(self) -> bool:
        """True when ``size`` is known (global fields are known)."""
        return self.size is not None

    def center(self, index: tuple[int, ...]) -> tuple[float, ...]:
        """Centre of output unit ``index`` in input pixels: ``-P + i*S + (r-1)/2``.

        >>> ReceptiveField((3, 3), (2, 2), (1, 1)).center((0, 1))
        (0.0, 2.0)
        """
        if self.size is None or self.stride is None or self.padding is None:
            raise ValueError(f"receptive field is unknown: {self.reason}")
        return tuple(
            -p + i * s + (r - 1) / 2
            for i, r, s, p in zip(index, self.size, self.stride, self.padding, strict=True)
        )

    def window(self, index: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        """Inclusive ``(first, last)`` input pixel seen by unit ``index``, per axis.

        Values outside ``[0, extent)`` fall on padding.

        >>> ReceptiveField((3, 3), (2, 2), (1, 1)).window((0, 1))
        ((-1, 1), (1, 3))
        """
        if self.size is None or self.stride is None or self.padding is None:
            raise ValueError(f"receptive field is unknown: {self.reason}")
        return tuple(
            (-p + i * s, -p + i * s + r - 1)
            for i, r, s, p in zip(index, self.size, self.stride, self.padding, strict=True)
        )

    def __str__(self) -> str:
        if self.size is None:
            return f"unknown ({self.reason})"
        dims = "x".join(map(str, self.size))
        if self.is_global:
            return f"global ({dims})"
        tag = "" if self.aligned else ", unaligned"
        stride = "x".join(map(str, self.stride or ()))
        pad = "x".join(map(str, self.padding or ()))
        return f"{dims} (stride {stride}, padding {pad}{tag})"


# --------------------------------------------------------------------------- window state


@dataclass(frozen=True)
class Window:
    """Known per-axis window of one tensor: tuples over the input's spatial axes.

    ``r``, ``S``, ``P`` describe the hull over every path from the input (what a unit can
    see); ``rmin`` is the smallest field over those paths (a residual net's shortcut-only
    path), None while it equals ``r`` (a single path). An axis in ``global_axes`` has been
    reduced away: every unit sees that whole axis.
    """

    r: tuple[int, ...]
    S: tuple[int, ...]
    P: tuple[int, ...]
    aligned: bool = True
    global_axes: frozenset[int] = frozenset()
    rmin: tuple[int, ...] | None = None

    @property
    def smallest(self) -> tuple[int, ...]:
        """The smallest field over all paths, per axis."""
        return self.r if self.rmin is None else self.rmin

    def axis(self, a: int, r: int, s: int, p: int, rmin: int | None = None) -> Window:
        """This window with axis ``a`` set to (r, s, p) and, when given, its smallest field
        to ``rmin``; without it a single-path window's smallest field follows ``r``."""
        if rmin is None:
            rmin = r if self.rmin is None else self.rmin[a]
        small = _set(self.smallest, a, rmin)
        w = replace(self, r=_set(self.r, a, r), S=_set(self.S, a, s), P=_set(self.P, a, p))
        return replace(w, rmin=None if small == w.r else small)


@dataclass(frozen=True)
class Unknown:
    """The window cannot be known from here on; ``reason`` says why."""

    reason: str


# A tensor's window: known, unknown, or None when it does not depend on the input at all
# (a constant, a parameter, zero-padded channels).
WindowState = Window | Unknown | None


def unknown(w: WindowState, reason: str) -> WindowState:
    """``w`` made unknown for ``reason``; a window already unknown keeps its first (root)
    reason, and one that does not depend on the input stays so.

    >>> unknown(Unknown("no rule for `roll`"), "a conv slides over a folded dim").reason
    'no rule for `roll`'
    """
    if w is None or isinstance(w, Unknown):
        return w
    return Unknown(reason)


def _set(t: tuple[int, ...], i: int, v: int) -> tuple[int, ...]:
    return (*t[:i], v, *t[i + 1 :])


def slide(w: WindowState, axis: int, k: int, s: int, p: int, d: int = 1) -> WindowState:
    """Apply a sliding window (conv, pool) of kernel k, stride s, left pad p, dilation d."""
    if not isinstance(w, Window) or axis in w.global_axes:
        return w
    kk = d * (k - 1) + 1
    S = w.S[axis]
    grow = (kk - 1) * S  # every path grows alike: the smallest one too
    return w.axis(axis, w.r[axis] + grow, S * s, w.P[axis] + p * S, w.smallest[axis] + grow)


def shift(w: WindowState, axis: int, start: int, step: int = 1) -> WindowState:
    """New unit i is old unit ``start + i*step`` (strided slicing; F.pad gives start=-pad)."""
    if not isinstance(w, Window) or axis in w.global_axes:
        return w
    S = w.S[axis]
    return w.axis(axis, w.r[axis], S * step, w.P[axis] - start * S)


def make_global(w: WindowState, axes: tuple[int, ...] | None = None) -> WindowState:
    """Every unit sees all of ``axes`` (all axes when None). Unknown becomes known here."""
    if w is None:
        return None
    if isinstance(w, Unknown):
        if axes is not None:
            return w
        return Window((), (), (), True, frozenset({-1}))  # marker: fully global
    return replace(w, global_axes=w.global_axes | frozenset(axes if axes is not None else {-1}))


def is_fully_global(w: WindowState, n_axes: int) -> bool:
    return isinstance(w, Window) and (
        -1 in w.global_axes or all(a in w.global_axes for a in range(n_axes))
    )


def hull(states: list[WindowState], where: str) -> WindowState:
    """Merge windows that feed one unit (add, concat, channel mixing)."""
    live = [w for w in states if w is not None]
    if not live:
        return None
    for w in live:
        if isinstance(w, Unknown):
            return w
    known: list[Window] = live  # type: ignore[assignment]
    if len(known) == 1:
        return known[0]
    full = [w for w in known if -1 in w.global_axes]
    if full:
        return full[0]
    gaxes = frozenset().union(*(w.global_axes for w in known))
    n = len(known[0].r)
    r, S, P = list(known[0].r), list(known[0].S), list(known[0].P)
    small = list(known[0].smallest)
    aligned = all(w.aligned for w in known)
    for a in range(n):
        if a in gaxes:
            continue
        strides = {w.S[a] for w in known}
        if len(strides) > 1:
            return Unknown(
                f"paths with different effective strides ({', '.join(map(str, sorted(strides)))})"
                f" meet at {where}"
            )
        lefts = [-w.P[a] for w in known]
        rights = [-w.P[a] + w.r[a] - 1 for w in known]
        centres = {lo + hi for lo, hi in zip(lefts, rights, strict=True)}
        if len(centres) > 1:
            aligned = False
        lo, hi = min(lefts), max(rights)
        r[a], S[a], P[a] = hi - lo + 1, strides.pop(), -lo
        small[a] = min(w.smallest[a] for w in known)
    rmin = tuple(small)
    return Window(tuple(r), tuple(S), tuple(P), aligned, gaxes, None if rmin == tuple(r) else rmin)


def to_public(w: WindowState, input_spatial: tuple[int, ...]) -> ReceptiveField:
    """The public :class:`ReceptiveField` for a window over an input of this spatial size."""
    if w is None:
        return ReceptiveField(None, reason=NO_INPUT)
    if isinstance(w, Unknown):
        return ReceptiveField(None, reason=w.reason)
    n = len(input_spatial)
    if is_fully_global(w, n):
        return ReceptiveField(tuple(input_spatial), (0,) * n, (0,) * n, w.aligned, True, None)
    size = tuple(input_spatial[a] if a in w.global_axes else w.r[a] for a in range(n))
    stride = tuple(0 if a in w.global_axes else w.S[a] for a in range(n))
    pad = tuple(0 if a in w.global_axes else w.P[a] for a in range(n))
    small = tuple(input_spatial[a] if a in w.global_axes else w.smallest[a] for a in range(n))
    return ReceptiveField(size, stride, pad, w.aligned, False, None, small)


# --------------------------------------------------------------------------- per-tensor flow


@dataclass(frozen=True)
class Flow:
    """What the tracer knows about one tensor.

    ``dims`` labels each tensor dim: ``"b"`` batch, ``"c"`` channel, ``"x"`` folded, or the
    int index of the input spatial axis it runs along. ``window`` is the hull over all
    channels; ``groups`` (when channels differ) holds ``(start, stop, window)`` runs along the
    channel dim, as after a concat of branches. ``depth`` counts conv/linear layers on the
    longest path that produced the tensor.
    """

    dims: tuple[str | int, ...]
    window: WindowState
    groups: tuple[tuple[int, int, WindowState], ...] | None = None
    depth: int = 0

    def deeper(self) -> Flow:
        """The same flow one weighted (conv/linear) layer deeper."""
        return replace(self, depth=self.depth + 1)


def const_flow(ndim: int) -> Flow:
    """Flow of a tensor that does not depend on the input."""
    return Flow(("c",) * ndim, None)


# --------------------------------------------------------------------------- flow operations
# Each returns a new Flow; rules call them with the geometry they read off the op's arguments.


def each_group(flow: Flow, fn: Callable[[WindowState], WindowState]) -> Flow:
    """Apply ``fn`` to the hull window and to each channel group's window: how a rule changes
    every unit's window alike (``each_group(flow, lambda w: unknown(w, reason))``).

    >>> w = Window((3,), (1,), (0,))
    >>> f = Flow(("b", "c", 0), w, ((0, 2, None), (2, 4, w)))
    >>> g = each_group(f, lambda w: unknown(w, "why"))
    >>> g.window, g.groups[1][2]
    (Unknown(reason='why'), Unknown(reason='why'))
    """
    groups = None
    if flow.groups is not None:
        groups = tuple((a, b, fn(w)) for a, b, w in flow.groups)
    return Flow(flow.dims, fn(flow.window), groups, flow.depth)


def mix_channels(flow: Flow) -> Flow:
    """Every output channel sees every input channel: groups collapse into their hull."""
    if flow.groups is None:
        return flow
    return Flow(flow.dims, flow.window, None, flow.depth)


def slide_dims(
    flow: Flow,
    dims: tuple[int, ...],
    k: tuple[int, ...],
    s: tuple[int, ...],
    p: tuple[int, ...],
    d: tuple[int, ...],
    mixes_channels: bool,
    what: str,
) -> Flow:
    """A sliding window over tensor ``dims`` (the trailing spatial dims of a conv or pool)."""
    if mixes_channels:
        flow = mix_channels(flow)
    # A size-1 dim that is no input axis (reshape(n, c, 1, w)) holds one position: a window
    # over it sees that position and padding, so the field does not change along it.
    bad = [flow.dims[t] for t in dims if not isinstance(flow.dims[t], int)]
    if any(lab != ONE for lab in bad):
        reason = f"{what} slides over a dim that is not a spatial axis of the input"
        return each_group(flow, lambda w: unknown(w, reason))

    def fn(w: WindowState) -> WindowState:
        for t, kk, ss, pp, dd in zip(dims, k, s, p, d, strict=True):
            if isinstance(flow.dims[t], int):
                w = slide(w, flow.dims[t], kk, ss, pp, dd)
        return w

    return each_group(flow, fn)


def shift_dim(flow: Flow, dim: int, start: int, step: int) -> Flow:
    """Unit i along tensor ``dim`` becomes old unit ``start + i*step`` (slicing, padding)."""
    label = flow.dims[dim]
    if not isinstance(label, int):
        return flow
    return each_group(flow, lambda w: shift(w, label, start, step))


def reduce_dims(flow: Flow, dims: tuple[int, ...], keep: bool) -> Flow:
    """Reduce (mean, sum, max, global pool) over tensor ``dims``; spatial axes become global."""
    labels = [flow.dims[t] for t in dims]
    if FOLD in labels:
        window = make_global(flow.window)
        groups = None
    else:
        axes = tuple(label for label in labels if isinstance(label, int))
        flow = mix_channels(flow) if CHAN in labels else flow
        window = make_global(flow.window, axes) if axes else flow.window
        groups = (
            tuple((a, b, make_global(w, axes)) for a, b, w in flow.groups)
            if flow.groups is not None and axes
            else flow.groups
        )
    if keep:
        new_dims = flow.dims
    else:
        new_dims = tuple(lab for i, lab in enumerate(flow.dims) if i not in dims)
        if CHAN in labels:
            groups = None
    return Flow(new_dims, window, groups, flow.depth)


def mix_folded(flow: Flow, dim: int) -> Flow:
    """Mixing along a folded dim (``reshape(n, c * h, w)`` then a conv or linear): every unit
    sees the whole of each input axis folded away, that is, each axis that no longer has a
    dim of its own. The dim becomes a channel dim."""
    w = flow.window
    if isinstance(w, Window):
        present = {lab for lab in flow.dims if isinstance(lab, int)}
        w = make_global(w, tuple(a for a in range(len(w.r)) if a not in present))
    elif isinstance(w, Unknown) and not any(isinstance(lab, int) for lab in flow.dims):
        w = make_global(w)  # nothing spatial is left: every unit sees everything
    return Flow((*flow.dims[:dim], CHAN, *flow.dims[dim + 1 :]), w, None, flow.depth)


def mix_dim(flow: Flow, dim: int) -> Flow:
    """Every output element along ``dim`` sees every input element along it (linear, softmax)."""
    label = flow.dims[dim]
    if label == FOLD:
        return mix_folded(flow, dim)
    if isinstance(label, int):
        return reduce_dims(flow, (dim,), keep=True)
    return mix_channels(flow)


def _moving_axes(f: Flow, shape: tuple[int, ...]) -> set[int]:
    """Input axes along which this tensor's units move (a dim of size > 1 runs along them)."""
    return {lab for lab, n in zip(f.dims, shape, strict=False) if isinstance(lab, int) and n > 1}


def _pinned_axes(f: Flow, shape: tuple[int, ...]) -> set[int]:
    """Input axes this tensor's window is fixed on: no dim moves along them any more (``y[:,
    :, :1]``, ``y[:, :, 0]``) and they were not reduced away."""
    w = f.window
    if not isinstance(w, Window) or -1 in w.global_axes:
        return set()
    return set(range(len(w.r))) - _moving_axes(f, shape) - set(w.global_axes)


def _layout_clash(flows: list[Flow], shapes: list[tuple[int, ...]]) -> bool:
    """True when broadcast operands disagree on how their units map to input positions, so
    each output unit sees a window that depends on where it is: dims that run along
    different input axes (``y + y.transpose(2, 3)``), or an operand fixed on an axis the
    result moves along (``y + y[:, :, :1]``: every row also sees row 0)."""
    live = [(f, s) for f, s in zip(flows, shapes, strict=True) if isinstance(f.window, Window)]
    n = max(len(s) for s in shapes)
    for k in range(1, n + 1):  # dims aligned from the right, as broadcasting does
        labels = {f.dims[-k] for f, s in live if len(s) >= k and s[-k] != 1}
        if len(labels) > 1 and any(isinstance(lab, int) or lab == FOLD for lab in labels):
            return True
    moving = set().union(*(_moving_axes(f, s) for f, s in live)) if live else set()
    return any(_pinned_axes(f, s) & moving for f, s in live)


def written_into(
    base: Flow, base_shape: tuple[int, ...], part: Flow, part_shape: tuple[int, ...]
) -> Flow:
    """``base``'s flow after a view of it (``part``, now with the flow of what was written)
    changed in place: ``y[:, :2] = v``, ``y[:, :2].add_(v)``. A view over all of the base's
    spatial positions gives the base the hull of both windows (per-channel groups dropped);
    one over part of a spatial axis makes the window depend on the position: unknown."""
    if part.window is None or part.window == base.window:
        return base
    depth = max(base.depth, part.depth)

    def spatial(f: Flow, shape: tuple[int, ...]) -> dict:
        return {lab: n for lab, n in zip(f.dims, shape, strict=False) if isinstance(lab, int)}

    if math.prod(part_shape) == math.prod(base_shape):
        window = part.window
    elif spatial(base, base_shape) == spatial(part, part_shape):
        window = hull([base.window, part.window], "an in-place write into a view")
    else:
        window = unknown(base.window, "an in-place write into part of a spatial axis")
    return Flow(base.dims, window, None, depth)


def merge(flows: list[Flow], where: str, tensors: list | None = None) -> Flow:
    """Elementwise merge (add, mul, ...) of broadcast operands; the hull of their windows.

    With the operand ``tensors``, operands whose dims run along different input axes make
    the window unknown.
    """
    live = [f for f in flows if f.window is not None]
    depth = max((f.depth for f in flows), default=0)
    if not live:
        base = max(flows, key=lambda f: len(f.dims))
        return Flow(base.dims, None, None, depth)
    base = max(live, key=lambda f: len(f.dims))
    if len(live) == 1:
        f = live[0]
        return Flow(f.dims, f.window, f.groups, depth)
    if tensors is not None and _layout_clash(flows, [tuple(t.shape) for t in tensors]):
        reason = (
            f"operands that map to input positions differently (swapped axes, or one "
            f"broadcast along an axis the other runs along) meet at {where}"
        )
        return Flow(base.dims, Unknown(reason), None, depth)
    window = hull([f.window for f in live], where)
    grouped = [f for f in live if f.groups is not None]
    if not grouped:
        return Flow(base.dims, window, None, depth)
    # Split channels at every operand's group boundaries; an ungrouped operand (or one
    # broadcast over channels) adds its window to every segment.
    cuts = sorted({c for f in grouped for a, b, _ in f.groups for c in (a, b)})  # type: ignore[union-attr]
    groups = []
    for lo, hi in itertools.pairwise(cuts):
        ws = [_window_at(f, lo) for f in live]
        groups.append((lo, hi, hull(ws, where)))
    return Flow(base.dims, window, _compress(groups), depth)


def _window_at(flow: Flow, channel: int) -> WindowState:
    """The window of one channel of ``flow``."""
    if flow.groups is None:
        return flow.window
    for a, b, w in flow.groups:
        if a <= channel < b:
            return w
    return flow.window


def _compress(groups) -> tuple | None:
    """Join neighbouring groups with equal windows; None when one window is left."""
    out: list[tuple[int, int, WindowState]] = []
    for a, b, w in groups:
        if out and out[-1][2] == w and out[-1][1] == a:
            out[-1] = (out[-1][0], b, w)
        else:
            out.append((a, b, w))
    return tuple(out) if len(out) > 1 else None


def grouped_channels(flow: Flow, n_groups: int, c_in: int, c_out: int, where: str) -> Flow:
    """A grouped conv: output group j sees only input channels of group j (depthwise too)."""
    if flow.groups is None or n_groups == 1:
        return mix_channels(flow)
    gi, go = c_in // n_groups, c_out // n_groups
    groups = []
    for j in range(n_groups):
        ws = [w for a, b, w in flow.groups if a < (j + 1) * gi and b > j * gi]
        groups.append((j * go, (j + 1) * go, hull(ws, where)))
    return Flow(flow.dims, flow.window, _compress(groups), flow.depth)


def nearby_channels(flow: Flow, before: int, after: int, where: str) -> Flow:
    """Channel c sees channels c-before .. c+after (local response norm).

    Work is per group boundary, not per channel, so wide tensors stay cheap.
    """
    if flow.groups is None:
        return flow
    n = flow.groups[-1][1]
    # Output channels whose neighbourhood touches group [a, b) are [a - after, b + before).
    reach = [(max(0, a - after), min(n, b + before), w) for a, b, w in flow.groups]
    cuts = sorted({0, n} | {x for lo, hi, _ in reach for x in (lo, hi)})
    groups = []
    for lo, hi in itertools.pairwise(cuts):
        ws = [w for r_lo, r_hi, w in reach if r_lo <= lo and hi <= r_hi]
        groups.append((lo, hi, hull(ws, where)))
    return Flow(flow.dims, flow.window, _compress(groups), flow.depth)


def concat_channels(flows: list[Flow], sizes: list[int], where: str) -> Flow:
    """Concat along the channel dim: each branch keeps its own window as a channel group."""
    groups: list[tuple[int, int, WindowState]] = []
    start = 0
    for f, n in zip(flows, sizes, strict=True):
        for a, b, w in f.groups or ((0, n, f.window),):
            groups.append((start + a, start + b, w))
        start += n
    window = hull([w for _, _, w in groups], where)
    base = max(flows, key=lambda f: f.window is not None)
    depth = max(f.depth for f in flows)
    uniform = len({id(w) for _, _, w in groups}) == 1 or all(w == groups[0][2] for *_, w in groups)
    return Flow(base.dims, window, None if uniform else tuple(groups), depth)


def select_channels(flow: Flow, start: int, stop: int, step: int) -> Flow:
    """Channels ``start:stop:step`` of a grouped tensor keep their own groups' windows."""
    if flow.groups is None:
        return flow
    if step != 1:
        return mix_channels(flow)
    groups = []
    for a, b, w in flow.groups:
        lo, hi = max(a, start), min(b, stop)
        if lo < hi:
            groups.append((lo - start, hi - start, w))
    window = hull([w for *_, w in groups], "a channel slice") if groups else None
    return Flow(flow.dims, window, tuple(groups) if len(groups) > 1 else None, flow.depth)


def pad_channels(flow: Flow, before: int, after: int, n: int) -> Flow:
    """Zero channels added before/after ``n`` channels (ResNet option A): they see nothing."""
    groups = list(flow.groups or ((0, n, flow.window),))
    groups = [(a + before, b + before, w) for a, b, w in groups]
    if before:
        groups.insert(0, (0, before, None))
    if after:
        groups.append((n + before, n + before + after, None))
    return Flow(flow.dims, flow.window, tuple(groups), flow.depth)
