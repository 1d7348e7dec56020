"""The receptive field as SVG (cnnviz.render.rf_svg): the window where the arithmetic puts it."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from cnnviz import picture
from cnnviz.receptive import ReceptiveField
from cnnviz.render.rf_svg import rf_on_input_svg

NS = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def _rects(root: ET.Element, name: str) -> list[tuple[float, float, float, float]]:
    return [
        tuple(float(e.get(k)) for k in ("x", "y", "width", "height"))
        for e in root.iter(f"{NS}rect")
        if e.get("data-name") == name
    ]


def _in_pixels(root: ET.Element, box: tuple[float, float, float, float]) -> tuple[float, ...]:
    """A screen box as input-pixel edges (y0, y1, x0, x1), from the input's own box: the
    input spans -0.5 .. H - 0.5 and -0.5 .. W - 0.5."""
    ((ix, iy, iw, ih),) = _rects(root, "input")
    h, w = map(int, re.search(r"the (\d+)x(\d+) input", ET.tostring(root, "unicode")).groups())
    sx, sy = iw / w, ih / h
    x, y, bw, bh = box
    return tuple(
        round(v, 3)
        for v in (
            (y - iy) / sy - 0.5,
            (y + bh - iy) / sy - 0.5,
            (x - ix) / sx - 0.5,
            (x + bw - ix) / sx - 0.5,
        )
    )


def test_the_window_lies_where_the_arithmetic_puts_it():
    # 3x3 window, stride 2, padding 1: unit (0, 1) sees rows -1 + 0*2 .. -1 + 2 = -1..1 and
    # columns -1 + 1*2 .. 1 + 2 = 1..3; as pixel edges (pixel k spans k - 0.5 .. k + 0.5)
    # that is y -1.5..1.5 and x 0.5..3.5.
    root = _parse(rf_on_input_svg(ReceptiveField((3, 3), (2, 2), (1, 1)), (8, 8), (0, 1)))
    (box,) = _rects(root, "receptive field")
    assert _in_pixels(root, box) == (-1.5, 1.5, 0.5, 3.5)
    # the right neighbour (0, 2) sees columns 3..5, the one below (1, 1) rows 1..3
    neighbours = sorted(_in_pixels(root, b) for b in _rects(root, "neighbour"))
    assert neighbours == [(-1.5, 1.5, 2.5, 5.5), (0.5, 3.5, 0.5, 3.5)]
    # one padding band: row -1 over the window's columns 1..3
    assert [_in_pixels(root, b) for b in _rects(root, "padding")] == [(-1.5, -0.5, 0.5, 3.5)]


def test_a_corner_unit_has_padding_above_and_left_and_a_hover_title():
    root = _parse(rf_on_input_svg(ReceptiveField((3, 3), (2, 2), (1, 1)), (8, 8), (0, 0)))
    bands = sorted(_in_pixels(root, b) for b in _rects(root, "padding"))
    # top: row -1 over columns -1..1; left: column -1 over rows 0..1 (the window's rows on
    # the image), so no pixel is shaded twice
    assert bands == [(-1.5, -0.5, -1.5, 1.5), (-0.5, 1.5, -1.5, -0.5)]
    box = next(e for e in root.iter(f"{NS}rect") if e.get("data-name") == "receptive field")
    assert box.find(f"{NS}title").text == "unit (0, 0) sees rows -1..1, cols -1..1"
    assert "partly on padding" in root.get("aria-label")


def test_the_picture_is_the_input_and_must_fit_it():
    pic = picture.fit(picture.sample(), (32, 32))
    root = _parse(
        rf_on_input_svg(ReceptiveField((7, 7), (1, 1), (3, 3)), (32, 32), (15, 15), picture=pic)
    )
    (image,) = root.iter(f"{NS}image")
    assert np.array_equal(picture.from_data_uri(image.get("href")), pic)  # lossless PNG
    # the image covers the input's box exactly
    ((ix, iy, iw, ih),) = _rects(root, "input")
    assert [float(image.get(k)) for k in ("x", "y", "width", "height")] == pytest.approx(
        [ix, iy, iw, ih], abs=0.01
    )
    with pytest.raises(ValueError, match="the picture is 32x32, the input 16x16"):
        rf_on_input_svg(ReceptiveField((7, 7), (1, 1), (3, 3)), (16, 16), (0, 0), picture=pic)


def test_grid_lines_every_effective_stride_and_none_for_stride_zero():
    root = _parse(rf_on_input_svg(ReceptiveField((3, 3), (2, 2), (1, 1)), (8, 8), (0, 0)))
    (grid,) = [e for e in root.iter(f"{NS}path") if e.get("data-name") == "unit grid"]
    # windows start at -1 + 2i: edges at x = 0.5, 2.5, 4.5, 6.5 inside the 8-pixel input,
    # four vertical and four horizontal lines
    assert grid.get("d").count("V") == 4 and grid.get("d").count("H") == 4
    assert grid.find(f"{NS}title").text == "unit grid (every 2 px)"
    # stride 0 (an adaptive pool spreading fewer positions over more units): one shared
    # window, no grid
    flat = _parse(rf_on_input_svg(ReceptiveField((3, 3), (0, 0), (0, 0)), (3, 3), (4, 1)))
    assert not [e for e in flat.iter(f"{NS}path") if e.get("data-name") == "unit grid"]


def test_unknown_and_global_fields_are_refused_with_their_reason():
    with pytest.raises(ValueError, match="strides differ at merge"):
        rf_on_input_svg(ReceptiveField(None, reason="strides differ at merge"), (8, 8), (0, 0))
    with pytest.raises(ValueError, match="global"):
        rf_on_input_svg(ReceptiveField((8, 8), (0, 0), (0, 0), True, True), (8, 8), (0, 0))


def test_the_legend_stays_inside_the_drawing_at_any_width():
    for width in (560, 320):
        svg = rf_on_input_svg(ReceptiveField((3, 3), (2, 2), (1, 1)), (8, 8), (0, 0), width=width)
        root = _parse(svg)
        assert root.get("width") == str(width)
        legend = root.findall(f"{NS}g")[-1]
        right = max(float(t.get("x")) + 6.6 * len(t.text) for t in legend.iter(f"{NS}text"))
        assert right <= width
        names = [t.text for t in legend.iter(f"{NS}text")]
        assert names == [
            "input",
            "receptive field",
            "neighbour",
            "padding",
            "unit grid (every 2 px)",
        ]
