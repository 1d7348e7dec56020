"""The explorer's data-flow graph in a real browser: Graphviz (compiled to WebAssembly in the
page, no system Graphviz) draws ``Analysis.to_dot``, the selected layer's box is outlined, and
the depth control redraws it. The page fixture fails a test whose browser logged an error.

Run with ``python -m pytest tests/e2e``; fixtures are in tests/e2e/conftest.py.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

import cnnviz
from cnnviz.render import graph
from e2e.conftest import SCREENSHOTS
from e2e.test_browser import choose, expect, open_page, url_has, wait_idle

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

pytestmark = pytest.mark.e2e

SVG = '[data-testid="stGraphVizChart"] svg'
RED = "rgb(214, 39, 40)"  # graph.OUTLINE, #d62728, as the browser computes it
# The names of the nodes whose box the browser draws with the outline colour (by the computed
# style: the page outlines the selected node with a CSS rule on its SVG id).
OUTLINED = """(svg, red) => [...svg.querySelectorAll("g.node")]
  .filter(g => getComputedStyle(g.querySelector("path, polygon")).stroke === red)
  .map(g => g.querySelector("title").textContent)"""


def svg(page: Page) -> Locator:
    return page.locator(SVG)


def node(page: Page, name: str) -> Locator:
    """The drawn box of DOT node ``name`` (Graphviz writes the id as the group's title)."""
    title = page.locator("title", has_text=re.compile(f"^{re.escape(name)}$"))
    return svg(page).locator("g.node", has=title)


def outlined(page: Page, name: str) -> None:
    """Wait until node ``name``, and it alone, is outlined in red, 3 px wide."""
    box = node(page, name).locator("path, polygon").first
    expect(box).to_have_css("stroke", RED)
    expect(box).to_have_css("stroke-width", "3px")
    one = f"red => ({OUTLINED})(document.querySelector({SVG!r}), red).length === 1"
    page.wait_for_function(one, arg=RED)
    assert svg(page).evaluate(OUTLINED, RED) == [name]


def shot(page: Page, target: Locator, name: str) -> None:
    """A picture of the graph's box with ``target`` scrolled into it, for the report."""
    target.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("[class*=st-key-graph_box_]").screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def test_explorer_graph_renders_with_the_selected_layer_outlined(page: Page):
    a = cnnviz.analyze(cnnviz.zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    folded = graph.build(a, graph.default_depth(a))  # 69 rows: auto folds them
    every = graph.build(a)
    open_page(page, "/explorer?model=resnet18&layer=layer3.1.conv2")
    expect(svg(page)).to_have_count(1)
    svg(page).scroll_into_view_if_needed()
    expect(svg(page).locator("g.node")).to_have_count(len(folded.nodes))
    expect(svg(page).locator("g.edge")).to_have_count(len(folded.edges))
    folded_node = graph.node_of(a, "layer3.1.conv2", graph.default_depth(a))
    outlined(page, folded_node)
    shot(page, node(page, folded_node), "explorer_graph_resnet18_folded")

    choose(page, "graph depth", "all")
    expect(page).to_have_url(url_has("graph_depth", "all"))
    wait_idle(page)
    expect(svg(page).locator("g.node")).to_have_count(len(every.nodes))
    outlined(page, "layer3.1.conv2")
    shot(page, node(page, "layer3.1.conv2"), "explorer_graph_resnet18_all")

    # colour by productivity: the fragment redraws the graph with the library's fills
    fills = [n.fill for n in graph.build(a, None, "productivity").nodes]
    yellow = "#fee391"  # probably unproductive: only the widest path outgrows 224 px
    assert fills.count(yellow) > 0
    page.locator(".st-key-graph_color").get_by_text("productivity", exact=True).click()
    expect(page).to_have_url(url_has("graph_color", "productivity"))
    wait_idle(page)
    expect(svg(page).locator(f'g.node path[fill="{yellow}"]')).to_have_count(fills.count(yellow))
    shot(page, svg(page).locator(f'g.node path[fill="{yellow}"]').first, "explorer_graph_prod")
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def test_explorer_graph_outline_follows_the_layer_without_a_redraw(page: Page):
    # Another layer changes no DOT text, so Graphviz does not lay the graph out again: the
    # drawing stays as it is, untouched, and a style rule moves the outline. (Streamlit's
    # renderer keeps its <svg> even for new text and updates the nodes in place, so the
    # test watches every change inside it.)
    a = cnnviz.analyze(cnnviz.zoo.get_model("resnet50", device="meta"), (1, 3, 224, 224))
    depth = graph.default_depth(a)  # 175 rows: folded
    open_page(page, "/explorer?layer=layer3.1.conv2")
    expect(svg(page)).to_have_count(1)
    svg(page).scroll_into_view_if_needed()
    outlined(page, graph.node_of(a, "layer3.1.conv2", depth))
    svg(page).evaluate(
        """svg => {
            svg.cnnvizMark = "first drawing";
            svg.cnnvizChanges = [];
            new MutationObserver(records => svg.cnnvizChanges.push(
                ...records.map(r => `${r.type} ${r.target.nodeName} ${r.attributeName ?? ""}`)
            )).observe(svg, {subtree: true, childList: true, attributes: true});
        }"""
    )
    for layer in ("layer4.0.conv1", "fc", "layer3.1.conv2"):
        choose(page, "Selected layer", layer)
        expect(page).to_have_url(url_has("layer", layer))
        wait_idle(page)
        outlined(page, graph.node_of(a, layer, depth))
        expect(svg(page)).to_have_count(1)
        assert svg(page).evaluate("svg => svg.cnnvizMark") == "first drawing", layer
        assert svg(page).evaluate("svg => svg.cnnvizChanges.slice(0, 5)") == [], layer
    shot(page, node(page, graph.node_of(a, "layer3.1.conv2", depth)), "explorer_graph_moved")
