"""The receptive field drawn on a real picture, in the Layer explorer and the RF lab."""

from __future__ import annotations

import json

from apptest import app_on_path, clear_caches, page  # noqa: F401 (fixtures)

import cnnviz
from cnnviz import picture, zoo


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def _with_image(at) -> list[dict]:
    return [f for f in _figures(at) if any(t.get("type") == "image" for t in f["data"])]


def test_explorer_draws_the_unit_on_the_sample_photo():
    at = page("explorer", model="resnet18", layer="layer1.0.conv1", unit="10,20")
    figs = _with_image(at)
    assert len(figs) == 1
    fig = figs[0]
    box = next(s for s in fig["layout"]["shapes"] if s.get("name") == "receptive field")
    # the library's window for unit (10, 20) of layer1.0.conv1 (19x19, stride 4, padding 9)
    rf = cnnviz.analyze(zoo.get_model("resnet18", device="meta"), (1, 3, 224, 224))
    (r0, r1), (c0, c1) = rf.receptive_field("layer1.0.conv1").window((10, 20))
    assert (box["y0"], box["y1"], box["x0"], box["x1"]) == (r0 - 0.5, r1 + 0.5, c0 - 0.5, c1 + 0.5)
    assert any(picture.SAMPLE_CREDIT in c.value for c in at.caption)  # the photo's credit


def test_explorer_plain_view_has_no_picture():
    at = page("explorer", model="resnet18", pic="plain")
    assert not _with_image(at) and len(_figures(at)) >= 2


def test_rf_lab_draws_the_stack_on_a_picture_at_the_chosen_size():
    at = page("rf_lab", n="3", k="3", pic_size="32")
    fig = _with_image(at)[0]
    image = next(t for t in fig["data"] if t.get("type") == "image")
    assert "z" not in image  # a PNG, not numbers the browser paints pixel by pixel
    assert picture.from_data_uri(image["source"]).shape == (32, 32, 3)
    text = "\n".join(c.value for c in at.caption)
    assert "sees 7x7 pixels, within the 32x32 input" in text  # 1 + 3 * 2
