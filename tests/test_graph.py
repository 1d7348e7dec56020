"""The data-flow graph: edges from the rows that made an op's inputs, DOT and Mermaid text.

Expected edges are read off each model's forward code by hand (the data flow written out).
"""

from __future__ import annotations

import re

import pytest
import torch
from torch import nn

import cnnviz
from cnnviz import zoo
from cnnviz.render import graph
from cnnviz.render.graph import build


def edges(a, depth=None) -> set[tuple[str, str]]:
    return set(build(a, depth).edges)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.conv2(self.relu(self.conv1(x)))
        return self.relu(y + x)  # the shortcut: an edge from the input to the add


class Concat(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 3, padding=1)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


class DictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.head = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 2, 1)

    def forward(self, x):
        f = self.stem(x)
        return {"features": f, "logits": self.head(f)}


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, image, mask):
        return self.conv(image) * mask


def test_residual_add_has_an_edge_from_its_shortcut_source():
    a = cnnviz.analyze(Residual(), (1, 4, 8, 8))
    assert edges(a) == {
        ("input", "conv1"),
        ("conv1", "relu"),
        ("relu", "conv2"),
        ("conv2", "add"),
        ("input", "add"),  # the shortcut
        ("add", "relu#2"),
    }


def test_concat_has_an_edge_from_each_branch():
    a = cnnviz.analyze(Concat(), (1, 3, 8, 8))
    assert edges(a) == {("input", "a"), ("input", "b"), ("a", "cat"), ("b", "cat")}


def test_dict_outputs_and_several_inputs():
    a = cnnviz.analyze(DictOut(), (1, 3, 8, 8))
    assert edges(a) == {("input", "stem"), ("stem", "head")}
    b = cnnviz.analyze(TwoInputs(), [(1, 3, 8, 8), (1, 3, 8, 8)])
    assert edges(b) == {("input", "conv"), ("conv", "mul"), ("input1", "mul")}


def test_resnet18_blocks_and_folding():
    a = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    e = edges(a)
    # torchvision's BasicBlock: out = bn2(conv2(relu(bn1(conv1(x))))) + downsample(x)
    assert ("layer1.0.bn2", "layer1.0.add") in e
    assert ("maxpool", "layer1.0.add") in e  # layer1.0's identity shortcut
    assert ("layer1.1.relu#2", "layer2.0.downsample.0") in e  # the projection reads x
    assert ("layer2.0.downsample.1", "layer2.0.add") in e
    assert ("layer4.1.relu#2", "avgpool") in e
    # every row but the first reads something, and only rows (or the input) are sources
    names = {r.name for r in a.layers}
    assert all(r.inputs for r in a.layers)
    assert all(src in names or src == "input" for src, _ in e)
    # folded at depth 1, the stages chain and no edge stays inside a node
    folded = edges(a, depth=1)
    assert ("layer1", "layer2") in folded and ("layer3", "layer4") in folded
    assert all(src != dst for src, dst in folded)


def test_googlenet_inception_branches_meet_at_the_concat():
    a = cnnviz.analyze(zoo.get_model("googlenet", device="meta"), (1, 3, 224, 224))
    e = edges(a)
    # Inception 3a: four branches from maxpool2 (after conv3), concatenated
    for first in ("branch1.conv", "branch2.0.conv", "branch3.0.conv", "branch4.0"):
        assert ("maxpool2", f"inception3a.{first}") in e
    for last in ("branch1.relu", "branch2.1.relu", "branch3.1.relu", "branch4.1.relu"):
        assert (f"inception3a.{last}", "inception3a.cat") in e
    assert ("inception3a.cat", "inception3b.branch1.conv") in e
    folded = edges(a, depth=1)
    assert ("inception3a", "inception3b") in folded


def test_dot_text_quotes_names_and_labels_each_node():
    a = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    dot = a.to_dot()
    assert dot.startswith('digraph "resnet18" {') and dot.rstrip().endswith("}")
    assert '"layer1.0.bn2" -> "layer1.0.add";' in dot
    node = re.search(r'"layer1\.0\.conv1" \[label="([^"]*)"', dot).group(1)
    # type, output shape, params (64*64*9), MACs (56*56*64*64*9) and the RF
    assert node.split("\\n") == [
        "layer1.0.conv1 (Conv2d)",
        "out 1x64x56x56",
        "params 36.9K  MACs 115.6M",
        "RF 19x19",
    ]
    assert len(re.findall(r"^  \"[^\"]+\" \[label", dot, re.M)) == len(a.layers) + 1  # + input
    folded = a.to_dot(depth=1, highlight="layer2")
    assert '"layer2" [label="layer2 (16 rows)' in folded and "penwidth=3" in folded


def test_each_node_has_a_css_safe_svg_id_in_the_dot_text():
    # The app outlines the selected node by CSS on this id, so a new layer needs no new DOT
    a = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    for depth in (None, 1, 2):
        dot = a.to_dot(depth)
        ids = dict(re.findall(r'^  "([^"]+)" \[.*, id="([^"]+)"\];$', dot, re.M))
        nodes = [n.id or "(root)" for n in build(a, depth).nodes]
        assert list(ids) == nodes and len(set(ids.values())) == len(nodes)
        assert all(re.fullmatch(r"cnnviz-n\d+", i) for i in ids.values())  # no dots, no #
        assert all(ids[n] == graph.svg_id(a, n, depth) for n in nodes)
        assert a.to_dot(depth, "productivity").count(" id=") == len(nodes)
    assert graph.svg_id(a, graph.node_of(a, "layer3.1.relu#2", 2), 2) == ids["layer3.1"]
    with pytest.raises(KeyError, match="no node 'layer3' in the graph of resnet18 at depth 2"):
        graph.svg_id(a, "layer3", 2)
    # highlight keeps the id and adds the outline (the CLI and library users' way)
    line = next(x for x in a.to_dot(2, highlight="layer3.1").splitlines() if "penwidth" in x)
    assert line.startswith('  "layer3.1" [') and f'id="{ids["layer3.1"]}"' in line
    assert f'color="{graph.OUTLINE}"' in line


def test_svg_ids_of_a_row_name_its_box_at_every_depth():
    # The explorer outlines the selected row at every depth with one rule each, so a depth
    # change needs no new rule: each id must be, in that depth's DOT text, the box that holds
    # the row (written there as the highlight's outline)
    a = cnnviz.analyze(zoo.get_model("resnet50", device="meta"), (1, 3, 224, 224))
    for row in ("conv1", "layer3.1.conv2", "layer4.2.relu#3", "fc"):
        ids = graph.svg_ids_of(a, row)
        assert set(ids) == {*graph.depth_choices(a), None} and None in ids
        for depth, svg in ids.items():
            node = graph.node_of(a, row, depth)
            line = next(x for x in a.to_dot(depth, highlight=node).splitlines() if "penwidth" in x)
            assert f'id="{svg}"' in line
    assert graph.svg_ids_of(a, "layer3.1.conv2")[1] != graph.svg_ids_of(a, "layer3.1.conv2")[None]


def test_mermaid_has_the_same_edges_with_safe_ids():
    a = cnnviz.analyze(Residual(), (1, 4, 8, 8))
    text = a.to_mermaid()
    ids = dict(re.findall(r'^  (n\d+)\["([^<"]+)', text, re.M))
    heads = {k: v.split(" (")[0] for k, v in ids.items()}
    got = {(heads[s], heads[d]) for s, d in re.findall(r"^  (n\d+) --> (n\d+)$", text, re.M)}
    assert got == edges(a)


@pytest.mark.parametrize("color_by", ["macs", "params", "rf", "productivity"])
def test_color_by_each_metric(color_by):
    a = cnnviz.analyze(zoo.get_model("vgg11", device="meta"), (1, 3, 32, 32))
    g = build(a, color_by=color_by)
    fills = {n.id: n.fill for n in g.nodes}
    if color_by == "productivity":
        # at 32 px VGG-11's later convs see more than the input (see test_productivity)
        assert fills[a.unproductive()["name"].iloc[0]] != fills["features.0"]
    else:
        assert len(set(fills.values())) > 2


def test_bad_arguments_are_clear_errors():
    a = cnnviz.analyze(Residual(), (1, 4, 8, 8))
    with pytest.raises(ValueError, match="color_by must be one of"):
        a.to_dot(color_by="speed")
    with pytest.raises(ValueError, match="depth must be >= 0"):
        a.to_mermaid(depth=-1)
