"""What the AppTest files share: the app's path, clean caches, and opening a page by name.

A test module imports the fixtures by name so pytest uses them there:
``from apptest import APP, app_on_path, clear_caches, page``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app" / "streamlit_app.py")


@pytest.fixture(autouse=True, scope="module")
def app_on_path():
    """``streamlit run app/streamlit_app.py`` puts app/ on sys.path, so pages import the
    cnnviz_app package; AppTest does not, so these tests do it for their duration."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(Path(APP).parent))
        yield


@pytest.fixture(autouse=True)
def clear_caches():
    st.cache_data.clear()
    st.cache_resource.clear()
    yield


def page(name: str, **query) -> AppTest:
    """The app opened on page ``name`` with URL query values; fails on an exception."""
    at = AppTest.from_file(APP, default_timeout=120)
    for k, v in query.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(f"cnnviz_app/pages/{name}.py")
    at.run()
    if query:  # AppTest applies URL-bound values after a page switch on the next run
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def spec_editor(at: AppTest):
    """The Custom page's spec editor (a new key each time the page puts text in it)."""
    (box,) = [t for t in at.text_area if t.label == "YAML or JSON"]
    return box


def stack_panel(at: AppTest) -> ET.Element:
    """The RF lab's stack panel (one HTML block) as the page sends it, parsed: it is
    well-formed XML (cnnviz.render.lab_html)."""
    (body,) = [h.proto.body for h in at.get("html") if 'data-name="stack panel"' in h.proto.body]
    return ET.fromstring(body)


def field_figures(at: AppTest) -> list[ET.Element]:
    """The pages' drawings of a receptive field on the input, each an HTML figure of an SVG
    image and its caption (cnnviz.render.lab_html.svg_figure_html), parsed."""
    head = '<figure data-name="field"'
    return [ET.fromstring(h.proto.body) for h in at.get("html") if h.proto.body.startswith(head)]


def compare_charts(at: AppTest) -> dict[str, ET.Element]:
    """The Compare page's charts, ``scatter`` and ``stages``, each one HTML block
    (cnnviz.render.compare_html), parsed."""
    found = {}
    for h in at.get("html"):
        root = ET.fromstring(h.proto.body) if h.proto.body.startswith("<div data-name=") else None
        if root is not None and root.get("data-name") in ("scatter", "stages"):
            found[root.get("data-name")] = root
    return found
