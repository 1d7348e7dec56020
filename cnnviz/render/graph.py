"""The data flow of an :class:`~cnnviz.result.Analysis` as a graph: Graphviz DOT or Mermaid.

One node per row, or per container when ``depth`` folds deeper rows into it (as the table's
``--max-depth`` does); one edge from each row that produced an op's input to that op's row,
so a residual add has an edge from its shortcut's source. Inputs are nodes named
``input``, ``input1``, ... Only text is produced: Graphviz is not needed to make it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from cnnviz import fmt

if TYPE_CHECKING:
    from cnnviz.result import Analysis, LayerRecord

ColorBy = Literal["macs", "params", "rf", "productivity"]
COLOR_BY: tuple[str, ...] = ("macs", "params", "rf", "productivity")

# A light-to-dark sequential scale (ColorBrewer "Blues", 7 classes): dark text stays readable
# on the first five, light text on the last two.
_SCALE = ("#eff3ff", "#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#084594")
_PRODUCTIVITY = {
    "productive": "#d9f0d3",
    "probably unproductive": "#fee391",
    "unproductive": "#fb8072",
}
_NEUTRAL = "#f0f0f0"
OUTLINE = "#d62728"  # the highlighted node's outline (``to_dot(highlight=...)``, the app's CSS)


@dataclass(frozen=True)
class Node:
    id: str  # the row's name, or the container's when folded
    label: tuple[str, ...]  # lines
    fill: str
    rows: int  # analyze rows behind this node


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    edges: tuple[tuple[str, str], ...]


def _level(r: LayerRecord) -> int:
    return r.module.count(".") + 1 if r.module else 0


def _node_of(r: LayerRecord, depth: int | None) -> str:
    """The node a row belongs to: its own, or its container's at ``depth``."""
    if depth is None:
        return r.name
    if depth == 0:
        return "model"
    folds = _level(r) > depth or (not r.is_module and _level(r) == depth)
    if not folds:
        return r.name
    return ".".join(r.module.split(".")[:depth])


def node_of(a: Analysis, row: str, depth: int | None = None) -> str:
    """The id of the node that holds row ``row`` in the graph at ``depth``: the row's own
    name, or its container's when ``depth`` folds it (what ``to_dot(highlight=...)`` takes).

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet18", device="meta"), (1, 3, 64, 64))
    >>> [node_of(a, "layer3.1.conv2", d) for d in (None, 2, 1)], node_of(a, "fc", 1)
    (['layer3.1.conv2', 'layer3.1', 'layer3'], 'fc')
    """
    for r in a.layers:
        if r.name == row:
            return _node_of(r, depth)
    raise KeyError(f"no row named {row!r} in {a.model_name}")


def svg_id(a: Analysis, node: str, depth: int | None = None) -> str:
    """The SVG id :func:`to_dot` gives node ``node`` (a :func:`node_of` id) at ``depth``:
    ``cnnviz-n<i>``, ``i`` its place in :func:`build`'s nodes. Graphviz writes it as the
    id of the node's ``<g>``, so a page can restyle one node with CSS while the DOT text
    (and so the drawing) stays the same; names such as ``layer3.5.relu#3`` are no CSS ids.

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet18", device="meta"), (1, 3, 64, 64))
    >>> svg_id(a, "input"), svg_id(a, "conv1"), svg_id(a, node_of(a, "layer3.1.relu#2", 1), 1)
    ('cnnviz-n0', 'cnnviz-n1', 'cnnviz-n7')
    """
    keys = _keys(a, depth)
    if node not in keys:
        at = "" if depth is None else f" at depth {depth}"
        raise KeyError(f"no node {node!r} in the graph of {a.model_name}{at}")
    return _svg_id(keys.index(node))


def svg_ids_of(a: Analysis, row: str) -> dict[int | None, str]:
    """The SVG id of the node that holds row ``row`` at every depth a page may draw (each
    of :func:`depth_choices` and None, every row), so one style rule per depth can outline
    it whichever depth is drawn, without the graph being drawn again.

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet18", device="meta"), (1, 3, 64, 64))
    >>> ids = svg_ids_of(a, "layer3.1.relu#2")
    >>> sorted(ids, key=str), ids[1] == svg_id(a, node_of(a, "layer3.1.relu#2", 1), 1)
    ([1, 2, 3, None], True)
    """
    return {d: svg_id(a, node_of(a, row, d), d) for d in (*depth_choices(a), None)}


def _svg_id(i: int) -> str:
    return f"cnnviz-n{i}"


def _keys(a: Analysis, depth: int | None) -> list[str]:
    """The graph's node ids in :func:`build`'s order: the inputs, then rows or containers."""
    owner = {r.name: _node_of(r, depth) for r in a.layers}
    inputs = sorted({p for r in a.layers for p in r.inputs if p not in owner})
    return [*inputs, *dict.fromkeys(owner.values())]


def depth_choices(a: Analysis) -> tuple[int, ...]:
    """The depths that fold some rows into their containers (deeper ones show every row).

    >>> import cnnviz
    >>> a = cnnviz.analyze(cnnviz.zoo.get_model("resnet18", device="meta"), (1, 3, 64, 64))
    >>> depth_choices(a)  # at 4 nothing folds: layer2.0.downsample.0 is the deepest row
    (1, 2, 3)
    """
    return tuple(
        d
        for d in range(1, max((_level(r) for r in a.layers), default=0) + 1)
        if len({_node_of(r, d) for r in a.layers}) < len(a.layers)
    )


def default_depth(a: Analysis, max_nodes: int = 60) -> int | None:
    """The depth a graph of ``a`` opens at: every row (None) when there are at most
    ``max_nodes``, else the deepest of :func:`depth_choices` with at most ``max_nodes``
    nodes (1 when even that has more), so a big net opens as its blocks.

    >>> import cnnviz
    >>> vgg = cnnviz.analyze(cnnviz.zoo.get_model("vgg16", device="meta"), (1, 3, 32, 32))
    >>> r50 = cnnviz.analyze(cnnviz.zoo.get_model("resnet50", device="meta"), (1, 3, 64, 64))
    >>> len(vgg.layers), default_depth(vgg), len(r50.layers), default_depth(r50)
    (40, None, 175, 2)
    """
    if len(a.layers) <= max_nodes:
        return None
    fits = [d for d in depth_choices(a) if len({_node_of(r, d) for r in a.layers}) <= max_nodes]
    return fits[-1] if fits else 1


def _shade(value: float, top: float) -> str:
    """A class of :data:`_SCALE` by the square root of the share of the largest value (a
    log scale would paint every conv of a net alike, a linear one hides the small ones)."""
    if value <= 0 or top <= 0:
        return _SCALE[0]
    i = int(len(_SCALE) * math.sqrt(value / top))
    return _SCALE[min(max(i, 0), len(_SCALE) - 1)]


def _ink(fill: str) -> str:
    return "white" if fill in _SCALE[-2:] else "black"


def build(a: Analysis, depth: int | None = None, color_by: ColorBy = "macs") -> Graph:
    """The graph's nodes and edges (what :func:`to_dot` and :func:`to_mermaid` draw).

    >>> import torch.nn as nn, cnnviz
    >>> g = build(cnnviz.analyze(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 1, 8, 8)))
    >>> [n.id for n in g.nodes], g.edges
    (['input', '0', '1'], (('input', '0'), ('0', '1')))
    """
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {', '.join(COLOR_BY)}, got {color_by!r}")
    if depth is not None and depth < 0:
        raise ValueError(f"depth must be >= 0, got {depth}")
    groups: dict[str, list[LayerRecord]] = {}
    for r in a.layers:
        groups.setdefault(_node_of(r, depth), []).append(r)
    owner = {r.name: _node_of(r, depth) for r in a.layers}
    value: Callable[[list[LayerRecord]], float]
    if color_by == "params":
        value = lambda rows: sum(r.params for r in rows)  # noqa: E731
    elif color_by == "rf":
        value = lambda rows: max(  # noqa: E731
            (math.prod(r.rf_size) for r in rows if r.rf_size and not r.rf_global), default=0
        )
    else:
        value = lambda rows: sum(r.macs for r in rows)  # noqa: E731
    top = max((value(rows) for rows in groups.values()), default=0)

    inputs = sorted({p for r in a.layers for p in r.inputs if p not in owner})
    nodes = [Node(i, (i, fmt.shapes([s]) if (s := _input_shape(a, i)) else ""), "white", 0)
             for i in inputs]  # fmt: skip
    for key, rows in groups.items():
        last = rows[-1]
        if len(rows) == 1 and key == last.name:
            head = f"{last.name or a.model_name} ({last.type})"
        else:
            head = f"{key or a.model_name} ({len(rows)} rows)"
        shape = a.container_shapes.get(key, last.output_shape) if key != last.name else None
        rf = a.containers.get(key) or last.receptive_field
        params, macs = sum(r.params for r in rows), sum(r.macs for r in rows)
        label = (
            head,
            f"out {fmt.shape(shape or last.output_shape)}",
            f"params {fmt.compact(params)}  MACs {fmt.compact(macs)}",
            f"RF {fmt.rf(rf)}",
        )
        if color_by == "productivity":
            worst = _worst(rows)
            fill = _PRODUCTIVITY.get(worst, _NEUTRAL) if worst else _NEUTRAL
        else:
            fill = _shade(value(rows), top)
        nodes.append(Node(key, label, fill, len(rows)))
    edges: dict[tuple[str, str], None] = {}
    for r in a.layers:
        dst = owner[r.name]
        for p in r.inputs:
            src = owner.get(p, p)
            if src != dst:
                edges[(src, dst)] = None
    return Graph(tuple(nodes), tuple(edges))


def _input_shape(a: Analysis, name: str) -> tuple[int, ...] | None:
    i = 0 if name == "input" else int(name.removeprefix("input") or 0)
    return a.input_shapes[i] if i < len(a.input_shapes) else None


def _worst(rows: list[LayerRecord]) -> str | None:
    order = ("unproductive", "probably unproductive", "productive")
    found = {r.productivity for r in rows if r.productivity}
    return next((o for o in order if o in found), None)


def _dot_id(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(
    a: Analysis, depth: int | None = None, color_by: ColorBy = "macs", highlight: str | None = None
) -> str:
    """Graphviz DOT text: node ids are the rows' (or containers') names, quoted; each node
    also has an SVG ``id`` (:func:`svg_id`: ``cnnviz-n0``, ``cnnviz-n1``, ... in order) for
    CSS. ``highlight`` names a node (a :func:`node_of` id) to outline in red.

    >>> import torch.nn as nn, cnnviz
    >>> print(to_dot(cnnviz.analyze(nn.Conv2d(1, 2, 3), (1, 1, 8, 8))))  # doctest: +ELLIPSIS
    digraph "Conv2d" {
    ...
      "input" -> "(root)";
    }
    >>> a = cnnviz.analyze(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), (1, 1, 8, 8))
    >>> to_dot(a, highlight="1").splitlines()[-4]  # doctest: +ELLIPSIS
    '  "1" [label="1 (ReLU)...", id="cnnviz-n2", penwidth=3, color="#d62728"];'
    """
    g = build(a, depth, color_by)
    out = [
        f"digraph {_dot_id(a.model_name)} {{",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];',
        '  edge [color="#555555"];',
    ]
    for i, n in enumerate(g.nodes):
        label = "\\n".join(line.replace("\\", "\\\\").replace('"', '\\"') for line in n.label)
        extra = (
            f', penwidth=3, color="{OUTLINE}"'
            if highlight is not None and n.id == highlight
            else ""
        )
        out.append(
            f'  {_dot_id(n.id or "(root)")} [label="{label}", fillcolor="{n.fill}", '
            f'fontcolor="{_ink(n.fill)}", id="{_svg_id(i)}"{extra}];'
        )
    for src, dst in g.edges:
        out.append(f"  {_dot_id(src or '(root)')} -> {_dot_id(dst or '(root)')};")
    out.append("}")
    return "\n".join(out)


def to_mermaid(a: Analysis, depth: int | None = None, color_by: ColorBy = "macs") -> str:
    """A Mermaid ``flowchart`` for Markdown (GitHub renders it); ids are ``n0``, ``n1``, ...
    since Mermaid ids cannot hold dots, and each node's first label line is its name.

    >>> import torch.nn as nn, cnnviz
    >>> print(to_mermaid(cnnviz.analyze(nn.Conv2d(1, 2, 3), (1, 1, 8, 8))))  # doctest: +ELLIPSIS
    flowchart TD
      n0["input<br/>1x1x8x8"]
      n1["Conv2d (Conv2d)<br/>out 1x2x6x6<br/>params 20  MACs 648<br/>RF 3x3"]
      n0 --> n1
    ...
    """
    g = build(a, depth, color_by)
    ids = {n.id: f"n{i}" for i, n in enumerate(g.nodes)}
    out = ["flowchart TD"]
    for n in g.nodes:
        text = "<br/>".join(_mermaid_text(line) for line in n.label if line)
        out.append(f'  {ids[n.id]}["{text}"]')
    for src, dst in g.edges:
        out.append(f"  {ids[src]} --> {ids[dst]}")
    for n in g.nodes:
        out.append(f"  style {ids[n.id]} fill:{n.fill},color:{_ink(n.fill)}")
    return "\n".join(out)


def _mermaid_text(s: str) -> str:
    # Mermaid labels: quotes and angle brackets as entities, so names stay text.
    return s.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")
