"""Text for numbers, shapes, bytes and receptive fields: the one place cnnviz formats them.

Every face (text table, CLI, app, error messages) uses these, so a missing value always reads
``-`` (not applicable: no shape, no spatial input) and an unknown receptive field always reads
``unknown``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cnnviz.receptive import ReceptiveField

#: What a cell shows when the value does not apply (no output, no spatial input).
MISSING = "-"
#: What a cell shows for a receptive field no single (size, stride, padding) describes.
UNKNOWN = "unknown"
#: What a metric (a column of the analysis' tables) is called in a chart's title or axis.
METRICS = {
    "params": "Parameters",
    "trainable_params": "Trainable parameters",
    "macs": "MACs (multiply-accumulates)",
    "flops": "FLOPs (2 x MACs)",
    "extra_ops": "Other ops (bias, norm, act, pool, add)",
    "output_bytes": "Output size (bytes)",
    "layers": "Rows",
}

_SI = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def shape(s: Iterable[Any] | None) -> str:
    """A shape as ``1x3x224x224``; ``-`` for None.

    >>> shape((1, 3, 224, 224)), shape(None)
    ('1x3x224x224', '-')
    """
    return MISSING if s is None else "x".join(str(int(d)) for d in s)


def shapes(ss: Iterable[Iterable[Any]]) -> str:
    """Several shapes, comma-separated.

    >>> shapes([(1, 3, 8, 8), (1, 10)])
    '1x3x8x8, 1x10'
    """
    return ", ".join(shape(s) for s in ss)


def count(n: int) -> str:
    """An exact count with thousands separators.

    >>> count(61100840)
    '61,100,840'
    """
    return f"{int(n):,}"


def compact(n: float, unit: str = "") -> str:
    """A number with SI prefixes up to E: 61100840 -> '61.1M'. Past E it stays in E (a deep
    strided stack's field can reach 10^19 pixels); past a float it reads 'inf'.

    >>> compact(61100840), compact(15470264320), compact(999), compact(1.748e20), compact(10**400)
    ('61.1M', '15.5G', '999', '174.8E', 'inf')
    """
    try:
        x = float(n)
    except OverflowError:
        return "inf" + unit
    if math.isnan(x):
        return "nan" + unit
    if math.isinf(x):
        return ("-inf" if x < 0 else "inf") + unit
    for div, suffix in _SI:
        if abs(x) >= div:
            return f"{x / div:.1f}{suffix}{unit}"
    return f"{int(x)}{unit}"


def nbytes(n: float) -> str:
    """Bytes in binary units: 1536 -> '1.5 KiB'.

    >>> nbytes(1536), nbytes(100), nbytes(3 * 2**40)
    ('1.5 KiB', '100 B', '3.0 TiB')
    """
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(x) < 1024 or unit == "TiB":
            return f"{int(x)} B" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{n} B"  # pragma: no cover (the loop always returns)


def size(values: Iterable[int]) -> str:
    """Per-axis sizes as ``427x427``; sizes past a million compact (``1.0Ex1.0E``).

    >>> size((427, 427)), size((3 * 10**18, 5))
    ('427x427', '3.0Ex5')
    """
    return "x".join(str(int(v)) if abs(v) < 10**6 else compact(v) for v in values)


def rf(field: ReceptiveField, mark_unaligned: bool = False) -> str:
    """A receptive field's cell: ``427x427``, ``global``, ``unknown``, or ``-`` without a
    spatial input; ``mark_unaligned`` adds ``*`` where merged paths have different centres.

    >>> from cnnviz.receptive import ReceptiveField
    >>> rf(ReceptiveField((5, 5), (1, 1), (2, 2), aligned=False), mark_unaligned=True)
    '5x5*'
    >>> rf(ReceptiveField(None, reason="no rule for cumsum"))
    'unknown'
    """
    from cnnviz.receptive import NO_INPUT

    if field.size is None:
        return MISSING if field.reason == NO_INPUT else UNKNOWN
    if field.is_global:
        return "global"
    text = size(field.size)
    return text + "*" if mark_unaligned and not field.aligned else text


def rf_help(field: ReceptiveField) -> str:
    """A sentence beside :func:`rf`: why it is unknown, or the full field.

    >>> from cnnviz.receptive import ReceptiveField
    >>> rf_help(ReceptiveField(None, reason="no rule for cumsum"))
    'Unknown: no rule for cumsum.'
    """
    if field.size is None:
        return f"Unknown: {field.reason}."
    return "Every unit sees the whole input." if field.is_global else str(field)


def stride(field: ReceptiveField) -> str:
    """The effective stride's cell: ``32x32``; empty for global or unknown fields."""
    return size(field.stride) if field.stride and not field.is_global else ""
