"""Unproductive layers: where depth stops adding context at a given input size.

Richter, Schöning, Wiedenroth and Krumnack ("Should You Go Deeper? Optimizing CNN
Architectures without Training", ICMLA 2021; their RFA toolbox) call a layer unproductive
when its receptive field already exceeds the input: it can add no new context, so its
compute is dead weight at that resolution. On a branched net the paths from the input differ,
so two fields matter per spatial axis: the hull over all paths (``rf_size``) and the smallest
path's field (``rf_min``; a residual net's shortcut-only path keeps it small).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

Productivity = Literal["productive", "probably unproductive", "unproductive"]


def classify(
    rf_size: Sequence[int] | None, rf_min: Sequence[int] | None, extent: Sequence[int]
) -> Productivity | None:
    """``"unproductive"`` when even the smallest path's field exceeds the input on every
    spatial axis, ``"probably unproductive"`` when only the hull does, else ``"productive"``;
    None where the field is unknown or global (a row without a window of its own).

    >>> classify((5, 5), (5, 5), (4, 4)), classify((5, 5), (3, 3), (4, 4))
    ('unproductive', 'probably unproductive')
    >>> classify((5, 5), (5, 5), (4, 8)), classify(None, None, (4, 4))
    ('productive', None)
    """
    if rf_size is None or rf_min is None or not extent:
        return None
    if all(r > e for r, e in zip(rf_min, extent, strict=True)):
        return "unproductive"
    if all(r > e for r, e in zip(rf_size, extent, strict=True)):
        return "probably unproductive"
    return "productive"


def smallest_input(fields: Sequence[Sequence[int]], extent: Sequence[int]) -> tuple[int, ...]:
    """The smallest input, scaled from ``extent`` with its aspect ratio kept, at which no
    field in ``fields`` exceeds the input on every axis (a field that fits on one axis is
    productive). Each field needs a scale of min over axes of field/extent; the input needs
    the largest of those.

    >>> smallest_input([(195, 195), (67, 67)], (224, 224))
    (195, 195)
    >>> smallest_input([(40, 10)], (32, 64))  # fits on the second axis from 10 px on
    (5, 10)
    """
    need = max((min(f / e for f, e in zip(fld, extent, strict=True)) for fld in fields), default=0)
    if need <= 0:
        return tuple(1 for _ in extent)
    return tuple(max(1, math.ceil(need * e - 1e-9)) for e in extent)
