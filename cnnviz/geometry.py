"""Sliding-window arithmetic shared by the op rules and the spec validator.

Pure functions of sizes, no tensors: how long a conv or pool output is, which inputs
PyTorch's pools refuse, when an adaptive pool's windows are all alike, and which pixels
nearest-neighbour downsampling picks. Each one follows PyTorch's own formula (the
``nn.Conv2d`` / ``nn.MaxPool2d`` / ``F.interpolate`` docs and ``aten/src/ATen/native``), so
:func:`cnnviz.analyze` and :mod:`cnnviz.spec` agree with PyTorch and with each other.
"""

from __future__ import annotations

import itertools


def out_len(n: int, k: int, s: int, p_total: int, d: int, ceil: bool = False) -> int:
    """Output length of a sliding window over ``n`` positions: kernel ``k``, stride ``s``,
    padding ``p_total`` (both sides together), dilation ``d``; ``ceil`` is a pool's
    ``ceil_mode``. Zero or less means PyTorch refuses the input as too small.

    ``floor((n + p_total - d(k-1) - 1) / s) + 1``; in ceil mode the division rounds up, but the
    last window must still start inside the input or the left padding.

    >>> out_len(7, 3, 2, 2, 1), out_len(7, 3, 2, 2, 1, ceil=True)
    (4, 4)
    >>> out_len(2, 3, 2, 0, 1, ceil=True), out_len(2, 3, 2, 0, 1)
    (1, 0)
    >>> out_len(2, 3, 1, 2, 1)  # padding counts: a 3-wide window fits 2 + 1 + 1
    2
    """
    span = n + p_total - d * (k - 1) - 1
    if ceil:
        span += s - 1  # PyTorch rounds up: a partial last window still counts
    if span < 0:
        return 0
    out = span // s + 1
    if ceil and (out - 1) * s >= n + p_total // 2:
        out -= 1
    return out


def pool_fits(spatial: tuple[int, ...], kernel: tuple[int, ...], avg: bool) -> bool:
    """False when PyTorch refuses a pool's input for being under the kernel *before padding*.

    Only ``avg_pool3d`` (and ``lp_pool3d``, which calls it) checks this ("input image smaller
    than kernel size"); ``max_pool3d`` and the 1-d and 2-d pools only need a positive output
    length (:func:`out_len`), so padding counts there.

    >>> pool_fits((2, 7, 7), (3, 3, 3), avg=False), pool_fits((2, 7, 7), (3, 3, 3), avg=True)
    (True, False)
    >>> pool_fits((2, 7), (3, 3), avg=True)  # 2-d pools: only the output length matters
    True
    """
    if not avg or len(spatial) != 3:
        return True
    return all(k <= n for n, k in zip(spatial, kernel, strict=True))


def adaptive_bounds(n: int, o: int, i: int) -> tuple[int, int]:
    """Window ``i`` of an adaptive pool from ``n`` to ``o`` positions: ``[start, stop)`` with
    ``start = floor(i n / o)`` and ``stop = ceil((i + 1) n / o)`` (PyTorch's
    ``start_index``/``end_index``).

    >>> [adaptive_bounds(7, 3, i) for i in range(3)]
    [(0, 3), (2, 5), (4, 7)]
    """
    return i * n // o, -(-(i + 1) * n // o)


def adaptive_window(n: int, o: int) -> tuple[int, int] | None:
    """``(kernel, stride)`` when adaptive pooling from ``n`` to ``o`` positions has windows
    of one size, evenly spaced (so it is an ordinary pool); None when they vary.

    >>> adaptive_window(8, 4), adaptive_window(7, 3), adaptive_window(8, 3)
    ((2, 2), (3, 2), None)
    """
    bounds = [adaptive_bounds(n, o, i) for i in range(o)]
    sizes = {stop - start for start, stop in bounds}
    steps = {b[0] - a[0] for a, b in itertools.pairwise(bounds)} or {1}
    if len(sizes) != 1 or len(steps) != 1:
        return None
    return sizes.pop(), steps.pop()


def nearest_pick(
    n: int, o: int, scale_factor: float | None, exact: bool = False
) -> tuple[int, int] | None:
    """``(start, step)`` when nearest-neighbour resampling from ``n`` to ``o`` positions picks
    input ``start + i * step`` for output ``i``, on every device; None otherwise.

    PyTorch's source index is ``floor(i * scale)`` (mode ``nearest``) or
    ``floor((i + 0.5) * scale)`` (``nearest-exact``), where ``scale`` is ``1 / scale_factor``
    when a scale factor is used and ``n / o`` when a size is. That is a fixed step only when
    ``scale`` is a whole number k (integer downsampling: ``scale_factor=1/k``, or
    ``size = n/k``), or 1 with no scale factor (the identity); CPU and CUDA kernels round other
    scales differently (CPU keeps ``o == n`` as the identity whatever the factor).

    >>> nearest_pick(8, 4, 0.5), nearest_pick(9, 3, None, exact=True), nearest_pick(8, 8, None)
    ((0, 2), (1, 3), (0, 1))
    >>> nearest_pick(7, 3, None), nearest_pick(4, 8, 2.0), nearest_pick(5, 5, 1.1)
    (None, None, None)
    """
    if scale_factor is not None:
        scale = 1.0 / scale_factor
        k = round(scale)
        if scale != k or k < 1:
            return None
    elif n % o:
        return None
    else:
        k = n // o
    return (k // 2 if exact else 0), k
