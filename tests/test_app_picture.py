"""The receptive field drawn on a real picture, in the Layer explorer and the RF lab."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET

from apptest import app_on_path, clear_caches, field_figures, page  # noqa: F401 (fixtures)

import cnnviz
from cnnviz import picture, zoo

NS = "{http://www.w3.org/2000/svg}"


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _with_image(at) -> list[dict]:
    return [f for f in _figures(at) if any(t.get("type") == "image" for t in f["data"])]


def test_explorer_draws_the_unit_on_the_sample_photo():
    at = page("explorer", model="resnet18", layer="layer1.0.conv1", unit="10,20")
    (svg,) = _svg_images(at)
    (image,) = svg.iter(f"{NS}image")
    assert picture.from_data_uri(image.get("href")).shape == (224, 224, 3)
    # the library's window for unit (10, 20) of layer1.0.conv1 (19x19, stride 4, padding 9):
    # rows -9 + 10*4 .. +18, columns -9 + 20*4 .. +18
    rf = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    (r0, r1), (c0, c1) = rf.receptive_field("layer1.0.conv1").window((10, 20))
    assert (r0, r1, c0, c1) == (31, 49, 71, 89)
    box = next(e for e in svg.iter(f"{NS}rect") if e.get("data-name") == "receptive field")
    assert box.find(f"{NS}title").text == f"unit (10, 20) sees rows {r0}..{r1}, cols {c0}..{c1}"
    # and the same window in words, under the drawing
    assert f"Unit (10, 20) sees input rows {r0}..{r1} and columns {c0}..{c1}" in _field_caption(at)
    assert _credit(at) == picture.SAMPLE_CREDIT  # under the drawing, on a line of its own


def test_explorer_plain_view_has_no_picture():
    at = page("explorer", model="resnet18", pic="plain")
    (svg,) = _svg_images(at)
    assert not list(svg.iter(f"{NS}image")) and len(_figures(at)) >= 2
    assert _credit(at) is None  # no photo, no credit


def _svg_images(at) -> list[ET.Element]:
    """The pages' SVG drawings of the field on the input, parsed."""
    head = "data:image/svg+xml;base64,"
    urls = [img.get("src") for fig in field_figures(at) for img in fig.iter("img")]
    return [ET.fromstring(base64.b64decode(u[len(head) :])) for u in urls if u.startswith(head)]


def _field_caption(at) -> str:
    """The caption under the page's drawing of the field."""
    (fig,) = field_figures(at)
    return fig.find("figcaption").text


def _credit(at) -> str | None:
    """The photo's credit in the caption under the page's drawing of the field, if any."""
    (fig,) = field_figures(at)
    found = [e.text for e in fig.iter("span") if e.get("data-name") == "credit"]
    assert len(found) <= 1
    return found[0] if found else None


def test_rf_lab_draws_the_stack_on_a_picture_at_the_chosen_size():
    at = page("rf_lab", n="3", k="3", pic_size="32")
    assert not _with_image(at)  # an SVG picture now, no Plotly chart of it
    (svg,) = _svg_images(at)
    (image,) = svg.iter(f"{NS}image")
    assert picture.from_data_uri(image.get("href")).shape == (32, 32, 3)
    # the central unit (15, 15) of three 3x3 convs (stride 1, padding 1 each): rows and
    # columns 15 - 3 .. 15 + 3, in the shape's hover title
    box = next(e for e in svg.iter(f"{NS}rect") if e.get("data-name") == "receptive field")
    assert box.find(f"{NS}title").text == "unit (15, 15) sees rows 12..18, cols 12..18"
    assert "sees 7x7 pixels, within the 32x32 input" in _field_caption(at)  # 1 + 3 * 2
    assert _credit(at) == picture.SAMPLE_CREDIT
