"""The app's training-step, unproductive-layer and graph views under AppTest (issue #11).

Every number shown must be the library's: the oracle is ``cnnviz.training_step`` or
``cnnviz.analyze`` run in the test on the same zoo model, formatted with ``cnnviz.fmt``.
"""

from __future__ import annotations

import json
import re

from apptest import APP, app_on_path, clear_caches, page, stack_panel  # noqa: F401 (fixtures)
from streamlit.testing.v1 import AppTest

import cnnviz
from cnnviz import fmt, labs, zoo
from cnnviz.render import graph


def table(at: AppTest, column: str):
    """The table that has ``column`` (AppTest does not expose a dataframe's key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def captions(at: AppTest) -> str:
    return "\n".join(c.value for c in at.caption)


def dot(at: AppTest) -> str:
    (chart,) = at.get("graphviz_chart")
    return chart.proto.spec


def analysis(name: str, size: int, **cfg) -> cnnviz.Analysis:
    return cnnviz.analyze(zoo.get_model(name, device="meta", **cfg), (1, 3, size, size))


# --------------------------------------------------------------------------- compare
def test_compare_training_step_of_resnet18_is_the_librarys():
    at = page("compare", models=["resnet18"])
    assert not any("peak_bytes" in d.value.columns for d in at.dataframe)  # off until asked
    at.toggle(key="train_on").set_value(True).run()
    step = cnnviz.training_step(zoo.get_model("resnet18", device="meta"), (32, 3, 224, 224))
    row = table(at, "peak_bytes").iloc[0]
    assert row["label"] == "resnet18"
    assert row["peak_bytes"] == fmt.nbytes(step.peak_bytes)
    assert row["saved_bytes"] == fmt.nbytes(step.saved_bytes)
    state = step.param_bytes + step.grad_bytes + step.optimizer_bytes  # AdamW: 2 buffers
    assert row["state_bytes"] == fmt.nbytes(state) == fmt.nbytes(4 * 4 * 11_689_512)
    assert row["backward_macs"] == fmt.compact(step.backward_macs)
    assert bool(row["fits"]) is True
    assert row["max_batch_text"] == f"up to batch {fmt.count(step.max_batch_size(24 * 2**30))}"
    assert f"resnet18: {fmt.count(step.peak_bytes)} bytes" in captions(at)


def test_compare_training_choices_come_from_the_link_and_the_widgets():
    at = page(
        "compare",
        models=["resnet20"],
        train_on="true",
        train_batch="8",
        gpu_gb="8",
        train_opt="sgd",
    )
    model = zoo.get_model("resnet20", device="meta")
    step = cnnviz.training_step(model, (8, 3, 32, 32), optimizer="sgd")
    row = table(at, "peak_bytes").iloc[0]
    assert row["peak_bytes"] == fmt.nbytes(step.peak_bytes)
    assert row["max_batch_text"] == f"up to batch {fmt.count(step.max_batch_size(8 * 2**30))}"
    # SGD keeps no state: parameters and gradients only
    assert row["state_bytes"] == fmt.nbytes(step.param_bytes + step.grad_bytes)
    at.selectbox(key="train_opt").set_value("adam").run()
    at.selectbox(key="train_dtype").set_value("bfloat16").run()
    assert not at.exception and not at.error
    step = cnnviz.training_step(model, (8, 3, 32, 32), optimizer="adam", dtype="bfloat16")
    row = table(at, "peak_bytes").iloc[0]
    assert row["peak_bytes"] == fmt.nbytes(step.peak_bytes)
    assert row["state_bytes"] == fmt.nbytes(4 * step.param_bytes)  # weights, grads, 2 moments


def test_compare_vgg16_at_32_shows_its_unproductive_layers():
    at = page("compare", models=["alexnet", "vgg16"])
    at.checkbox(key="same_size").check().run()
    at.number_input(key="cmp_size").set_value(32).run()
    assert not at.exception
    # AlexNet cannot take 32x32 at all (a message); VGG-16 can, with dead layers
    assert any("alexnet" in e.value and "too small" in e.value for e in at.error)
    a = analysis("vgg16", 32)
    row = table(at, "all_productive_from").set_index("label").loc["vgg16"]
    assert row["unproductive"] == len(a.unproductive()) > 0
    smallest, every_path = a.input_resolution_range()
    assert (row["productive_from"], row["all_productive_from"]) == (
        fmt.size(smallest),
        fmt.size(every_path),
    )


# --------------------------------------------------------------------------- explorer
def test_explorer_marks_vgg16s_unproductive_layers_at_32():
    at = page("explorer", model="vgg16", size="32")
    assert not at.error
    expected = list(analysis("vgg16", 32).unproductive()["name"])
    t = table(at, "productivity")
    marked = t["productivity"].isin(["unproductive", "probably unproductive"])
    assert list(t.loc[marked, "name"]) == expected
    assert set(t.loc[marked, "productivity"]) == {"unproductive"}  # a plain chain: one path
    bars = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]
    shapes = bars["marker"]["pattern"]["shape"]
    hatched = [n for n, p in zip(bars["customdata"], shapes, strict=True) if p]
    assert hatched == expected
    assert f"unproductive: {len(expected)}" in captions(at)
    assert "Richter et al., ICMLA 2021" in captions(at)


def test_explorer_saved_for_backward_is_the_training_steps():
    at = page("explorer", model="resnet18")
    assert "saved" not in table(at, "productivity")  # on request only
    at.toggle(key="saved").set_value(True).run()
    assert not at.exception and not at.error
    step = cnnviz.training_step(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    saved = dict(zip(table(at, "saved")["name"], table(at, "saved")["saved"], strict=True))
    assert saved == {r.name: fmt.nbytes(r.saved_bytes) for r in step.rows}
    assert f"({fmt.count(step.saved_bytes)} bytes)" in captions(at)


def outlined(at: AppTest, depth: int | None) -> str:
    """The DOT name of the node the page's style rule outlines in red, by its SVG id, in the
    graph drawn at ``depth`` (the rule has one selector per depth, on the graph's box key)."""
    (rule,) = [h.proto.body for h in at.get("html") if "#d62728" in h.proto.body]
    tag = "all" if depth is None else depth
    (sid,) = set(re.findall(rf"\.st-key-graph_box_{tag} g#(cnnviz-n\d+) ", rule))
    assert "stroke:#d62728" in rule.replace(" ", "") and "stroke-width:3px" in rule.replace(" ", "")
    (name,) = re.findall(rf'^  "((?:[^"\\]|\\.)*)" \[.*\bid="{sid}"', dot(at), re.M)
    return name


def test_explorer_graph_highlights_the_selected_layer():
    at = page("explorer")  # resnet50: 175 rows, so the graph opens folded
    a = analysis("resnet50", 224)
    depth = graph.default_depth(a)
    assert depth is not None and at.selectbox(key="graph_depth").value == "auto"
    before = dot(at)
    assert before == a.to_dot(depth, "macs")  # no highlight in the DOT text: CSS draws it
    assert outlined(at, depth) == graph.node_of(a, at.selectbox(key="layer").value, depth)
    at.selectbox(key="layer").set_value("layer3.5.relu#3").run()
    assert dot(at) == before  # the same text: the browser does not lay the graph out again
    assert outlined(at, depth) == "layer3.5" == graph.node_of(a, "layer3.5.relu#3", depth)
    at.selectbox(key="layer").set_value("fc").run()
    assert dot(at) == before and outlined(at, depth) == "fc"
    at.selectbox(key="layer").set_value("layer3.5.relu#3").run()
    at.selectbox(key="graph_depth").set_value("all").run()
    at.segmented_control(key="graph_color").set_value("productivity").run()
    assert not at.exception
    assert dot(at) == a.to_dot(None, "productivity")
    assert outlined(at, None) == "layer3.5.relu#3"


def test_explorer_graph_view_from_a_link():
    at = page("explorer", model="resnet18", graph_depth="1", graph_color="rf")
    a = analysis("resnet18", 224)
    layer = at.selectbox(key="layer").value
    assert dot(at) == a.to_dot(1, "rf")
    assert outlined(at, 1) == graph.node_of(a, layer, 1)


# --------------------------------------------------------------------------- RF lab
def _productive(at) -> tuple[str, str]:
    """The RF lab's "last conv unproductive below" size and the sentence under it, from the
    stack panel (one HTML block, well-formed XML)."""
    found = {e.get("data-name"): e.text for e in stack_panel(at).iter()}
    return found["productive from"], found["why"]


def test_rf_lab_says_where_the_stack_stops_adding_context():
    at = page("rf_lab")
    below, _ = _productive(at)
    assert below == "7x7" == fmt.size([labs.rf_lab(3, 3).productive_from] * 2)  # 1 + 3*(3-1)
    at.slider(key="n").set_value(4).run()
    at.select_slider(key="k").set_value(5).run()
    below, why = _productive(at)
    assert below == "17x17" == fmt.size([labs.rf_lab(4, 5).productive_from] * 2)  # 1 + 4*(5-1)
    assert "conv 4 (5x5) below 17 px" in why
