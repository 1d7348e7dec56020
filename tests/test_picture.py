"""cnnviz.picture: the shipped sample, uploads with caps, and the RF drawn on a picture."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cnnviz import picture
from cnnviz.receptive import ReceptiveField
from cnnviz.render.plots import rf_on_input


def _png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (10, 200, 30)).save(buf, "PNG")
    return buf.getvalue()


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header declares w x h pixels but holds no image data (a decompression
    bomb's first bytes): the pixel cap must refuse it without decoding."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_sample_ships_with_its_terms():
    pic = picture.sample()
    assert pic.shape == (256, 256, 3) and pic.dtype == np.uint8
    notes = (picture.SAMPLE.parent / "README.md").read_text()
    assert "CC0" in notes and "chelsea" in notes


def test_uploads_are_read_and_fitted():
    pic = picture.read_upload(_png(40, 30), "a.png")
    assert pic.shape == (30, 40, 3) and tuple(pic[0, 0]) == (10, 200, 30)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buf, "JPEG")
    assert picture.read_upload(buf.getvalue()).shape == (64, 64, 3)
    assert picture.fit(pic, (16, 16)).shape == (16, 16, 3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"GIF89a" + b"\0" * 20, "not a PNG or JPEG"),
        (b"%PDF-1.4 hello", "not a PNG or JPEG"),
        (b"\x89PNG\r\n\x1a\n" + b"broken", "could not be read"),
        (_png_header_only(50_000, 50_000), "limited to 16 MP"),
        (b"\xff\xd8\xff" + b"\0" * (picture.MAX_UPLOAD_BYTES + 1), "limited to 5 MiB"),
    ],
    ids=["gif", "pdf", "truncated", "pixel-bomb", "too-big"],
)
def test_bad_uploads_get_a_clear_message(data, message):
    with pytest.raises(picture.PictureError, match=message):
        picture.read_upload(data, "upload")


def test_rf_is_drawn_on_the_picture():
    pic = picture.fit(picture.sample(), (32, 32))
    rf = ReceptiveField((5, 5), (2, 2), (2, 2))
    fig = rf_on_input(rf, (32, 32), (3, 4), picture=pic)
    # the pixels travel as a lossless PNG (one image for the browser), not as numbers
    assert fig.data[0].type == "image" and fig.data[0].z is None
    assert np.array_equal(picture.from_data_uri(fig.data[0].source), pic)
    box = next(s for s in fig.layout.shapes if s.name == "receptive field")
    # unit (3, 4) sees rows -2 + 3*2 .. +4 = 4..8 and cols 6..10 (pixel k spans k +- 0.5)
    assert (box.y0, box.y1, box.x0, box.x1) == (3.5, 8.5, 5.5, 10.5)
    with pytest.raises(ValueError, match="fit it first"):
        rf_on_input(rf, (32, 32), (3, 4), picture=picture.sample())
