"""A real picture to draw receptive fields on: the shipped sample or a visitor's upload.

Uploads are decoded with Pillow from bytes held in memory, never written anywhere, and
refused before decoding when the file or its pixel count is over the caps (a small PNG can
declare a huge canvas: Pillow reads the size from the header first, so the check is cheap).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

#: The sample: "Chelsea" the cat by Stéfan van der Walt, CC0, from scikit-image's data
#: (cnnviz/data/README.md says where it comes from and under what terms).
SAMPLE = Path(__file__).with_name("data") / "chelsea.jpg"
SAMPLE_CREDIT = "Photo: “Chelsea” by Stéfan van der Walt (CC0), from scikit-image's sample data"

MAX_UPLOAD_BYTES = 5 * 1024 * 1024  # 5 MiB
MAX_PIXELS = 16_000_000  # 16 MP: a 4000x4000 photo; decoding one takes ~50 MB


class PictureError(ValueError):
    """The upload is not a picture cnnviz will read (type, size or content)."""


def _image_module():
    from PIL import Image  # Pillow comes with Streamlit; only the picture needs it

    return Image


def sample() -> np.ndarray:
    """The shipped sample picture as an (H, W, 3) uint8 array (256x256).

    >>> sample().shape, sample().dtype
    ((256, 256, 3), dtype('uint8'))
    """
    Image = _image_module()
    with Image.open(SAMPLE) as im:
        return np.asarray(im.convert("RGB"))


def read_upload(data: bytes, name: str = "the upload") -> np.ndarray:
    """A PNG or JPEG upload as an (H, W, 3) uint8 array, or :class:`PictureError` saying what
    is wrong (too big, too many pixels, another format, unreadable).

    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO(); Image.new("RGB", (4, 3), "red").save(buf, "PNG")
    >>> read_upload(buf.getvalue()).shape
    (3, 4, 3)
    >>> read_upload(b"GIF89a...", "a.gif")
    Traceback (most recent call last):
    cnnviz.picture.PictureError: a.gif is not a PNG or JPEG picture
    """
    if len(data) > MAX_UPLOAD_BYTES:
        raise PictureError(
            f"{name} is {len(data) / 2**20:.1f} MiB; pictures are limited to "
            f"{MAX_UPLOAD_BYTES // 2**20} MiB"
        )
    if not (data.startswith(b"\x89PNG\r\n\x1a\n") or data.startswith(b"\xff\xd8\xff")):
        raise PictureError(f"{name} is not a PNG or JPEG picture")
    Image = _image_module()
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size  # from the header: nothing decoded yet
            if w * h > MAX_PIXELS:
                raise PictureError(
                    f"{name} is {w}x{h} pixels; pictures are limited to {MAX_PIXELS // 10**6} MP"
                )
            if im.format not in ("PNG", "JPEG"):
                raise PictureError(f"{name} is not a PNG or JPEG picture")
            return np.asarray(im.convert("RGB"))
    except PictureError:
        raise
    except Image.DecompressionBombError:  # Pillow's own guard, for far larger canvases
        limit = MAX_PIXELS // 10**6
        raise PictureError(
            f"{name} has too many pixels; pictures are limited to {limit} MP"
        ) from None
    except Exception as e:  # Pillow's errors for truncated or corrupt files vary
        raise PictureError(f"{name} could not be read as a picture ({type(e).__name__})") from None


def fit(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``picture`` centre-cropped to the aspect of ``size`` (H, W) and resized to it, as a
    model's input would be (the crop keeps the middle, where the subject usually is).

    >>> fit(np.zeros((300, 451, 3), np.uint8), (224, 224)).shape
    (224, 224, 3)
    """
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {h}x{w}")
    Image = _image_module()
    ph, pw = picture.shape[:2]
    scale = min(pw / w, ph / h)
    cw, ch = max(1, round(w * scale)), max(1, round(h * scale))
    left, top = (pw - cw) // 2, (ph - ch) // 2
    im = Image.fromarray(picture).crop((left, top, left + cw, top + ch))
    return np.asarray(im.resize((w, h), Image.BILINEAR))


def data_uri(picture: np.ndarray) -> str:
    """``picture`` (an (H, W, 3) uint8 array) as a PNG ``data:`` URI, lossless.

    A chart draws it as one image; given the pixels as numbers instead, Plotly's browser code
    paints them one by one on every redraw.

    >>> uri = data_uri(np.zeros((2, 3, 3), np.uint8))
    >>> uri.startswith("data:image/png;base64,")
    True
    >>> from_data_uri(uri).shape
    (2, 3, 3)
    """
    picture = np.asarray(picture)
    if picture.ndim != 3 or picture.shape[2] != 3 or picture.dtype != np.uint8:
        raise ValueError(
            f"a picture is an (H, W, 3) uint8 array, got {picture.shape} {picture.dtype}"
        )
    out = io.BytesIO()
    # compress_level 1: the PNG is a little larger, the encoding several times faster
    _image_module().fromarray(picture).save(out, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def from_data_uri(uri: str) -> np.ndarray:
    """The (H, W, 3) uint8 pixels of a PNG ``data:`` URI made by :func:`data_uri`.

    >>> pic = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    >>> bool((from_data_uri(data_uri(pic)) == pic).all())
    True
    """
    head, _, body = uri.partition(",")
    if head != "data:image/png;base64":
        raise ValueError(f"not a PNG data URI: {head[:40]!r}")
    with _image_module().open(io.BytesIO(base64.b64decode(body))) as im:
        return np.asarray(im.convert("RGB"))
