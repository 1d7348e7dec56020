"""The analysis result: frozen records and totals, no references to modules or tensors.

An :class:`Analysis` is cheap to cache, pickle, diff and send to a browser. Rendering lives in
:mod:`cnnviz.render`; this module only holds data and simple views of it.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from cnnviz.productivity import Productivity
from cnnviz.receptive import NO_INPUT, ReceptiveField

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class LayerRecord:
    """One row: one call of a leaf module, or one functional op called outside a leaf.

    ``macs`` are multiply-accumulates of conv/linear/matmul (bias excluded), ``flops`` is
    ``2 * macs``; ``extra_ops`` is every other arithmetic op (bias, norm, activation, pooling,
    elementwise merges), kept apart. ``output_bytes`` is the size of the output tensor(s).
    The ``rf_*`` fields describe one unit of the output (see :class:`ReceptiveField`):
    ``rf_size`` is the hull over every path from the input, ``rf_min`` the smallest field
    over those paths (both None when global or unknown). ``productivity`` reads them against
    the input (see :mod:`cnnviz.productivity`). ``inputs`` names the rows (or ``input``,
    ``input1``, ...) whose tensors this row read: the edges of the data-flow graph.
    """

    index: int
    name: str
    type: str
    kind: str
    module: str  # qualified name of the module that ran it ("" for the root)
    is_module: bool  # a leaf module call (True) or a functional op (False)
    stage: int
    output_shape: tuple[int, ...] | None
    params: int
    trainable_params: int
    macs: int
    flops: int
    extra_ops: int
    output_bytes: int
    spatial: bool
    rf_size: tuple[int, ...] | None
    rf_stride: tuple[int, ...] | None
    rf_padding: tuple[int, ...] | None
    rf_aligned: bool
    rf_global: bool
    rf_reason: str | None
    depth: int  # conv/linear layers on the longest path up to and including this row
    rf_min: tuple[int, ...] | None = None  # the smallest field over all paths
    productivity: Productivity | None = None
    inputs: tuple[str, ...] = ()

    @property
    def receptive_field(self) -> ReceptiveField:
        """This row's output receptive field as a :class:`ReceptiveField`."""
        return ReceptiveField(
            self.rf_size,
            self.rf_stride,
            self.rf_padding,
            self.rf_aligned,
            self.rf_global,
            self.rf_reason,
            self.rf_min,
        )


@dataclass(frozen=True)
class FallbackOp:
    """An op that ran without a rule: its MACs come from FlopCounterMode's formulas (so they
    are counted), its extra ops are not counted and its receptive field is unknown.
    ``where`` names the modules that called it ("" for the root)."""

    name: str
    count: int
    where: tuple[str, ...]


@dataclass(frozen=True)
class Analysis:
    """Everything :func:`cnnviz.analyze` measured, as plain data.

    >>> import torch.nn as nn, cnnviz
    >>> a = cnnviz.analyze(nn.Conv2d(3, 8, 3), (1, 3, 8, 8))
    >>> a.total_params, a.total_macs  # 8*3*3*3 + 8; 6*6*8*27
    (224, 7776)
    """

    model_name: str
    input_shapes: tuple[tuple[int, ...], ...]
    dtype: str
    mode: str
    layers: tuple[LayerRecord, ...]
    total_params: int
    trainable_params: int
    total_macs: int
    total_flops: int
    total_extra_ops: int
    activation_bytes: int
    peak_activation_bytes: int
    param_bytes: int
    weighted_depth: int
    input_spatial: tuple[int, ...]
    containers: dict[str, ReceptiveField] = field(default_factory=dict)
    #: Output shape of each container call (``layer1``, ``blk#2``), its first tensor output.
    container_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    #: Ops without a rule (MACs from FlopCounterMode, RF unknown), one entry per op name.
    fallback_ops: tuple[FallbackOp, ...] = ()
    unused_params: tuple[str, ...] = ()  # parameters this forward pass never read
    unused_param_count: int = 0  # their elements (in total_params, in no row)
    output_shapes: tuple[tuple[int, ...], ...] = ()
    #: Conventions that shaped these numbers for this model (normalisation statistics taken
    #: as constants, parameters the forward pass never read, ...), one line each.
    notes: tuple[str, ...] = ()

    # ---------------------------------------------------------------- views
    def receptive_field(self, name: str | None = None) -> ReceptiveField:
        """RF of a row or a container's output; without a name, the RF of the last output
        that is not global (the network's final feature map).

        >>> import torch.nn as nn, cnnviz
        >>> net = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3))
        >>> cnnviz.analyze(net, (1, 1, 9, 9)).receptive_field().size  # 1 + 2 + 2
        (5, 5)
        """
        if name is None:
            # The model's output, unless it is global (a classifier): then the last row before
            # the network turns global. An unknown one there is the answer too (an earlier,
            # known row would be a wrong one).
            out = self.containers.get("")
            if out is not None and not out.is_global and out.reason != NO_INPUT:
                return out
            for row in reversed(self.layers):
                if not row.rf_global and row.rf_reason != NO_INPUT:
                    return row.receptive_field
            return ReceptiveField(None, reason="no layer has a spatial output")
        for row in self.layers:
            if row.name == name:
                return row.receptive_field
        if name in self.containers:
            return self.containers[name]
        names = [r.name for r in self.layers] + list(self.containers)
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise KeyError(f"no layer or module named {name!r}{hint}")

    def default_layer(self) -> str | None:
        """The row a viewer starts on: the last one whose output is a spatial feature map
        with a known, non-global RF and that does arithmetic (so it has a bar to show); else
        the last spatial one; None when no row is spatial. The app's explorer and
        :func:`cnnviz.erf.default_layer` both start here.

        >>> import torch.nn as nn, cnnviz
        >>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2))
        >>> cnnviz.analyze(net, (1, 1, 5, 5)).default_layer()
        '0'
        """
        maps = [r for r in self.layers if r.spatial and r.rf_size and not r.rf_global]
        busy = [r for r in maps if r.macs] or maps
        return busy[-1].name if busy else None

    def unproductive(self) -> pd.DataFrame:
        """The rows that are not productive at this input size (Richter et al., ICMLA 2021):
        their field, even along the smallest path (``unproductive``) or only as the hull over
        paths (``probably unproductive``), already exceeds the input on every spatial axis,
        so they add no new context here.

        >>> import cnnviz
        >>> a = cnnviz.analyze(cnnviz.zoo.get_model("alexnet", device="meta"), (1, 3, 64, 64))
        >>> bad = a.unproductive()
        >>> list(bad["name"][:3]), bad["rf_min"][0], bad["productivity"][0]
        (['features.5', 'features.6', 'features.7'], (67, 67), 'unproductive')
        """
        df = self.to_pandas()
        cols = ["name", "type", "output_shape", "rf_size", "rf_min", "productivity", "macs"]
        bad = df["productivity"].isin(["unproductive", "probably unproductive"])
        return df.loc[bad, cols].reset_index(drop=True)

    def input_resolution_range(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(no_unproductive, none_even_probably)``: the smallest input (the input's aspect
        ratio kept) at which no row is unproductive, and the smallest at which none is even
        probably unproductive.

        How they are found: a row is unproductive at input extents E when its smallest-path
        field exceeds E on every axis, so it needs a scale of min over axes of rf_min/E; the
        first size is the largest such need over all rows with a known, non-global field
        (the hull ``rf_size`` for the second). It reads this analysis's fields, which do not
        depend on the input size for convolutions and pools of fixed kernels; rows whose
        window follows the input (adaptive pooling, global ops) and sizes at which a layer
        would output nothing are not modelled, so analyze again at the size found to
        confirm. Below the first size some layers add no context; from the second on every
        path does.

        >>> import cnnviz
        >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
        >>> a.input_resolution_range()  # layer4.1.conv2's smallest path: 11 + 2*(3-1)*32 = 139
        ((139, 139), (435, 435))
        """
        from cnnviz.productivity import smallest_input

        rows = [r for r in self.layers if r.rf_min is not None and r.rf_size is not None]
        extent = self.input_spatial
        if not extent or not rows:
            return tuple(extent), tuple(extent)
        return (
            smallest_input([r.rf_min for r in rows], extent),  # type: ignore[misc]
            smallest_input([r.rf_size for r in rows], extent),  # type: ignore[misc]
        )

    def to_dot(
        self, depth: int | None = None, color_by: str = "macs", highlight: str | None = None
    ) -> str:
        """Graphviz DOT text of the data flow: one node per row (per container when
        ``depth`` folds rows, as ``--max-depth`` does), quoted by name, labelled with type,
        output shape, params, MACs and RF; an edge from each row that produced an op's input
        to that op's row. ``color_by`` is ``"macs"``, ``"params"``, ``"rf"`` or
        ``"productivity"``; ``highlight`` names a node to outline.

        >>> import torch.nn as nn, cnnviz
        >>> a = cnnviz.analyze(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 1, 8, 8))
        >>> [line for line in a.to_dot().splitlines() if "->" in line]
        ['  "input" -> "0";', '  "0" -> "1";']
        """
        from cnnviz.render.graph import to_dot

        return to_dot(self, depth, color_by, highlight)  # type: ignore[arg-type]

    def to_mermaid(self, depth: int | None = None, color_by: str = "macs") -> str:
        """The same graph as a Mermaid flowchart, for Markdown (see :meth:`to_dot`).

        >>> import torch.nn as nn, cnnviz
        >>> a = cnnviz.analyze(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 1, 8, 8))
        >>> a.to_mermaid().splitlines()[0]
        'flowchart TD'
        """
        from cnnviz.render.graph import to_mermaid

        return to_mermaid(self, depth, color_by)  # type: ignore[arg-type]

    def by_kind(self) -> pd.DataFrame:
        """Rows, params, MACs and extra ops summed per kind (conv, linear, norm, ...).

        >>> import torch.nn as nn, cnnviz
        >>> a = cnnviz.analyze(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 1, 5, 5))
        >>> list(a.by_kind().index)
        ['conv', 'activation']
        """
        df = self.to_pandas()
        out = df.groupby("kind", sort=False)[["params", "macs", "flops", "extra_ops"]].sum()
        out.insert(0, "layers", df.groupby("kind", sort=False).size())
        return out

    def to_pandas(self) -> pd.DataFrame:
        """One row per record, columns as in :class:`LayerRecord`."""
        import pandas as pd

        cols = list(LayerRecord.__dataclass_fields__)
        return pd.DataFrame([[getattr(r, c) for c in cols] for r in self.layers], columns=cols)

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain Python values (records and receptive fields as dicts, tuples
        kept as tuples): ``json.dumps`` writes it as it is.

        >>> import json, torch.nn as nn, cnnviz
        >>> d = cnnviz.analyze(nn.Conv2d(1, 2, 3), (1, 1, 5, 5)).to_dict()
        >>> d["layers"][0]["output_shape"], json.loads(json.dumps(d))["containers"]
        ((1, 2, 3, 3), {})
        """
        return asdict(self)

    def __str__(self) -> str:
        from cnnviz.render.table import render_text

        return render_text(self)

    def _repr_html_(self) -> str:
        """Jupyter's view: the table (the first and last rows of a long one) and totals."""
        from cnnviz.render.table import render_html

        return render_html(self, max_rows=NOTEBOOK_ROWS)

    def _repr_markdown_(self) -> str:
        from cnnviz.render.table import render_markdown

        return render_markdown(self, max_rows=NOTEBOOK_ROWS)


#: Rows a notebook shows before it folds the middle of the table away.
NOTEBOOK_ROWS = 40
