"""Stages: runs of rows at one output resolution along the data flow, read from the rows.

A stage is what a reader of a CNN calls one: the layers that work at one spatial size, such
as ResNet's ``layer2`` at 28x28. It is computed here, from the finished rows, and nowhere
else (:func:`cnnviz.analyze` fills each row's ``stage`` from :func:`assign`).

Definition, over the rows in the order they ran (the data flow):

- A row's *resolution* is the spatial size of its output. A row whose output has no
  spatial axes (flatten, linear), or whose spatial output was pooled to 1 per axis over the
  whole input (a global pool, an SE gate's 1x1 branch), has none: it is a side branch or the
  head, never a new resolution for the main path.
- A new stage starts at each row whose resolution differs from the current one, going down
  (a stride-2 conv, a pool) or up (a transposed conv, an upsample). A resolution seen again
  later (a U-Net decoder back at 16x16) is a new stage, numbered in data-flow order.
- The head is every row after the last row with a resolution, one stage of its own.

Resolutions are the last ``n`` dims of the output (``n`` = the input's spatial axes), as in
(N, C, H, W) layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cnnviz.result import LayerRecord


def resolution(
    shape: Sequence[int] | None, spatial: bool, is_global: bool, n: int
) -> tuple[int, ...] | None:
    """The spatial size of an output of ``shape`` (the row's ``output_shape``, ``spatial``
    and ``rf_global``), or None when it has none (see the module doc).

    >>> resolution((1, 8, 16, 16), True, False, 2), resolution((1, 8, 1, 1), True, True, 2)
    ((16, 16), None)
    """
    if not spatial or n == 0 or shape is None or len(shape) < n:
        return None
    size = tuple(shape[-n:])
    if is_global and all(s == 1 for s in size):
        return None  # pooled over the whole input: the gate's branch or the head
    return size


def number(sizes: Sequence[tuple[int, ...] | None]) -> list[int]:
    """Stage numbers, 0 first, for rows of these resolutions in data-flow order.

    >>> number([(8, 8), None, (8, 8), (4, 4), (8, 8), None])  # SE gate, down, up, head
    [0, 0, 0, 1, 2, 3]
    """
    last = max((i for i, s in enumerate(sizes) if s is not None), default=-1)
    stage, current, out = 0, None, []
    for i, size in enumerate(sizes):
        if i == last + 1 and last >= 0:
            stage += 1  # the head
        elif i <= last and size is not None and size != current:
            stage += current is not None
            current = size
        out.append(stage)
    return out


def assign(rows: Sequence[LayerRecord], n: int) -> list[int]:
    """Stage number of each row; ``n`` is the number of the input's spatial axes."""
    return number([resolution(r.output_shape, r.spatial, r.rf_global, n) for r in rows])
