"""Links that work: every page answers at its own path, opened directly with a query string,
and shows the view its link asks for. The default page (Compare) is at ``/`` and also at
``/compare``, its own path, which must render the same view (not "Page not found").

Run with ``python -m pytest tests/e2e/test_links.py``; fixtures are in tests/e2e/conftest.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import pytest

import cnnviz
from cnnviz import spec, zoo

from .test_browser import TINY_SPEC, expect, no_exception, wait_idle

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.e2e

COMPARE_160 = "cmp_size=160&same_size=true"  # one input size for all models: 160x160
# path with query -> the page's title (its h1)
LINKS = {
    f"/?{COMPARE_160}": "Compare architectures",
    f"/compare?{COMPARE_160}": "Compare architectures",
    "/explorer?model=alexnet": "Layer explorer",
    "/rf-lab?n=4": "Receptive-field lab",
    "/shortcut-lab?shortcut=A": "ResNet shortcut lab",
    f"/custom?spec={spec.to_url(spec.parse(TINY_SPEC))}": "Custom model",
    "/timing?t_models=conv_stack&t_batches=1": "Timing",
}


def open_link(page: Page, link: str, title: str) -> None:
    page.goto(link)
    expect(page.locator("h1")).to_have_text(title)
    wait_idle(page)
    no_exception(page)
    # Streamlit's "Page not found" dialog (it then runs the default page under it)
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_text("no corresponding file was found")).to_have_count(0)


@pytest.mark.parametrize("link", list(LINKS), ids=lambda link: urlsplit(link).path)
def test_page_answers_at_its_own_path(page: Page, link: str):
    open_link(page, link, LINKS[link])
    expect(page).to_have_title("cnnviz")
    # the address bar keeps the page's path and every value of the link
    shown = urlsplit(page.url)
    assert shown.path == urlsplit(link).path
    given = parse_qs(urlsplit(link).query)
    assert {k: v for k, v in parse_qs(shown.query).items() if k in given} == given
    # and the page took them: no "this page cannot use ... from its link" note
    expect(page.locator('[data-testid="stAlertContentWarning"]')).to_have_count(0)


def _compare_view(page: Page, link: str) -> str:
    """Open ``link`` (Compare, input size 160) and return its exact counts."""
    open_link(page, link, "Compare architectures")
    page.get_by_text("Model options and input size").click()  # open the popover
    expect(page.get_by_role("checkbox", name="Use one input size for all models")).to_be_checked()
    expect(page.get_by_role("spinbutton", name="input size (pixels)")).to_have_value("160")
    return page.locator('[data-testid="stCaptionContainer"]', has_text="Exact counts:").inner_text()


def test_compare_at_its_path_and_at_the_root_is_the_same_view(page: Page, base_url: str):
    at_path = _compare_view(page, f"/compare?{COMPARE_160}")
    # /compare is not a second menu entry: the menu has one Compare link, to the root
    link = page.locator('[data-testid="stSidebarNav"]').get_by_role("link")
    expect(link.filter(has_text="Compare architectures")).to_have_count(1)
    expect(link).to_have_count(6)
    # the root in a context of its own: a new session, nothing kept from the first load
    other = page.context.browser.new_context(base_url=base_url)
    try:
        at_root = _compare_view(other.new_page(), f"/?{COMPARE_160}")
    finally:
        other.close()
    assert at_path == at_root
    # resnet50 analyzed at 160x160, not at its own 224x224 (4,089,184,256 MACs)
    macs = cnnviz.analyze(zoo.get_model("resnet50", device="meta"), (1, 3, 160, 160)).total_macs
    assert macs != 4_089_184_256
    assert f"resnet50: 25,557,032 params, {macs:,} MACs" in at_root
