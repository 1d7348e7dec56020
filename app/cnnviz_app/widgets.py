"""The app's shared inputs and messages: zoo option widgets, the input size, the unit in the
URL, and the readable error box every page wraps its work in.

Widgets return parameters (a hashable config, a shape); pages pass them to the library.
"""

from __future__ import annotations

import contextlib
import math
import re
import traceback
from collections.abc import Iterator
from typing import Any

import streamlit as st

import cnnviz
from cnnviz import zoo
from cnnviz_app.caching import Config

# Upper bounds for integer zoo options typed (or put in a URL) by visitors: the analysis runs on
# the meta device, but building millions of modules still costs a shared server minutes.
INT_CAPS = {
    "n": 32,
    "depth": 1202,
    "channels": 2048,
    "kernel_size": 31,
    "stride": 4,
    "dilation": 16,
    "in_channels": 2048,
}


def option_widgets(name: str, prefix: str, container=None) -> Config:
    """Widgets for a zoo model's options (bound to the URL); returns the chosen config."""
    box = container or st
    info = zoo.model_info(name)
    chosen: dict[str, Any] = {}
    for opt_name, opt in info.options.items():
        if opt_name == "num_classes":
            continue
        key = f"{prefix}{name}.{opt_name}"
        label = opt_name.replace("_", " ")
        if opt.type is bool:
            value = box.checkbox(
                label, value=bool(opt.default), key=key, help=opt.help, bind="query-params"
            )
        elif opt.choices:
            choices = list(opt.choices)
            value = box.selectbox(
                label,
                choices,
                index=choices.index(opt.default),
                key=key,
                help=opt.help,
                bind="query-params",
            )
        elif opt.type is int:
            value = box.number_input(
                label,
                value=int(opt.default),
                min_value=1,
                max_value=INT_CAPS.get(opt_name, 4096),
                step=1,
                key=key,
                help=f"{opt.help} {opt.constraint}".strip(),
                bind="query-params",
            )
        else:
            continue
        if value != opt.default:
            chosen[opt_name] = value
    return tuple(sorted(chosen.items()))


def input_size_widget(default: tuple[int, ...], key: str, container=None) -> tuple[int, ...]:
    """Spatial size picker (square); the batch and channels stay the model's own."""
    box = container or st
    size = box.number_input(
        "input size (pixels)",
        min_value=8,
        max_value=1024,
        value=int(default[-1]),
        step=1,
        key=key,
        bind="query-params",
        help="Height = width of the input image. Defaults to the size the model was made for.",
    )
    return (*default[:-2], int(size), int(size))


# What starts Markdown or Streamlit markup in running text: links and images ([), autolinks
# (<...>), emphasis (*, ~, and _ unless inside a word), HTML, math ($), code, tables and
# headings take a backslash. Literal autolinks (https://, www., a@b) and Streamlit's
# :emoji: / :material/icon: are found in the text after escapes are read, so a word joiner
# (U+2060, invisible) goes after the colon, the "www" or the "@" instead.
_MARKUP = re.compile(
    r"([\\`*\[\]<>$~|#])|(?<![A-Za-z0-9])(_)|(_)(?![A-Za-z0-9])"
    r"|(:)(?=//|[A-Za-z])|(@)|(?<![\w.])(www)(?=\.)",
    re.IGNORECASE,
)
_CODE_SPAN = re.compile(r"(`[^`\n]+`)")
_JOINER = "\u2060"


def _escape(m: re.Match) -> str:
    if m[4] or m[5] or m[6]:
        return (m[4] or m[5] or m[6]) + _JOINER
    return "\\" + (m[1] or m[2] or m[3])


def md_text(text: object) -> str:
    r"""Text from a visitor (a spec value, a file name, a URL value) for a Markdown message: it
    shows as typed, never as a link, emphasis or markup. Code spans (`name`), which Markdown
    already shows literally, stay as they are; so do underscores inside words.

    >>> md = md_text("[Log in](https://e.vil/) at `layers[0]` __init__, www.e.vil, a_b")
    >>> print(md.replace("\u2060", "+"))
    \[Log in\](https:+//e.vil/) at `layers[0]` \_\_init\_\_, www+.e.vil, a_b
    """
    parts = _CODE_SPAN.split(" ".join(str(text).splitlines()))
    return "".join(p if i % 2 else _MARKUP.sub(_escape, p) for i, p in enumerate(parts))


def parse_unit(text: str | None) -> tuple[int, int] | None:
    """``"3,0"`` from the URL as (3, 0); anything else as None.

    >>> parse_unit("3,0"), parse_unit("x"), parse_unit(None)
    ((3, 0), None, None)
    """
    try:
        r, c = (int(v) for v in str(text).split(","))
    except ValueError:
        return None
    return (r, c) if r >= 0 and c >= 0 else None


class LinkCheck:
    """What a link (the URL's query values) asked of the page, against what the page shows.

    Streamlit fills URL-bound widgets from the link and resets a value it cannot use to the
    widget's default in silence (``?size=5000`` past a 1024 cap), or fails on it while filling
    the widget (``?size=1e400`` overflows an int: the page shows Streamlit's generic error and
    nothing below it). The router makes one per run, before the page (:meth:`before` drops
    values no widget can read) and reports after it (:meth:`after`: a note above the page for
    each value the page did not take). Only keys the session had no state for are checked, so
    the user's own changes later are never reported.
    """

    def __init__(self) -> None:
        qp = st.query_params
        self.given = {k: qp.get_all(k) for k in qp}
        self.fresh = [k for k in self.given if k not in st.session_state]
        self.dropped: list[str] = []

    def before(self) -> LinkCheck:
        for key in self.fresh:
            if any(_unreadable_number(v) for v in self.given[key]):
                _forget_url_value(key)
                self.dropped.append(key)
        return self

    def after(self, box) -> None:
        for key in self.fresh:
            if key not in st.session_state:  # not a widget or state of this page
                continue
            value = st.session_state[key]
            if key in self.dropped or not _link_matches(self.given[key], value):
                asked = ", ".join(v[:40] for v in self.given[key])
                used = md_text(f"`{key}={_shown(value)}`")
                box.warning(
                    f"This page cannot use {md_text(f'`{key}={asked}`')} from its link; it "
                    f"shows {used} instead.",
                    icon=":material/link_off:",
                )


def _unreadable_number(text: str) -> bool:
    """A number no widget can hold: infinite, NaN, or past an int64 (``1e400``, ``inf``).

    >>> [_unreadable_number(t) for t in ("1e400", "-inf", "nan", "224", "resnet50", "1e19")]
    [True, True, True, False, False, True]
    """
    try:
        x = float(text)
    except ValueError:
        return False
    return not math.isfinite(x) or abs(x) >= 2**63


def _link_matches(url: list[str], value: Any) -> bool:
    """Whether a widget's value is what the link's text for it says.

    >>> _link_matches(["224"], 224), _link_matches(["0.5"], 0.5), _link_matches(["true"], True)
    (True, True, True)
    >>> _link_matches(["1", "3"], [1, 8]), _link_matches(["5000"], 224)
    (False, False)
    """
    if isinstance(value, (list, tuple)):
        return len(url) == len(value) and all(
            _link_matches([u], v) for u, v in zip(url, value, strict=True)
        )
    text = url[-1] if url else ""
    if isinstance(value, bool):
        return text.lower() == str(value).lower()
    if isinstance(value, (int, float)):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return text == ("" if value is None else str(value))


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value)) or "(none)"
    return "(none)" if value is None else str(value)


def _forget_url_value(key: str) -> None:
    """Drop ``key`` from the link, and from the values Streamlit fills widgets from (its
    public API cannot: ``del st.query_params[key]`` leaves the initial values in place)."""
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None:
        return
    with ctx.session_state.query_params() as qp:
        qp.remove_param(key)
        initial = getattr(qp, "_initial_query_params", None)
        if isinstance(initial, dict):
            initial.pop(key, None)


@contextlib.contextmanager
def user_errors(what: str | None = None) -> Iterator[None]:
    """Show a readable message for any error the user's choices cause; the page keeps working.
    ``what`` names the thing at fault (a model on the Compare page)."""
    try:
        yield
    except (cnnviz.AnalysisError, zoo.ZooError, ValueError, KeyError) as e:
        head = f"Cannot show {md_text(what)}" if what else "Cannot show this"
        st.error(f"**{head}:** {md_text(e)}", icon=":material/warning:")
    except Exception as e:  # a bug of ours: say so without a traceback on the page
        traceback.print_exc()
        st.error(
            f"**Something went wrong** ({type(e).__name__}: {md_text(e)}). The rest of the app "
            "still works; please report this.",
            icon=":material/bug_report:",
        )


#: Headers for the library's machine column names (cnnviz.compare's and cnnviz.timing's
#: tables), as a reader says them; a page passes its own labels for anything else.
HEADERS = {
    "label": "model",
    "name": "layer",
    "macs": "MACs",
    "flops": "FLOPs",
    "rf": "RF",
    "rf_stride": "RF stride",
    "conv_params": "conv params",
    "fc_params": "FC params",
    "extra_ops": "other ops",
    "weighted_depth": "weighted depth",
    "batch_size": "batch size",
    "latency_ms": "latency (ms)",
    "iqr_ms": "spread, IQR (ms)",
    "throughput": "images/s",
    "host_ms": "host (ms)",
    "ms": "time (ms)",
    "gflops_per_s": "GFLOP/s",
    "unproductive": "unproductive layers",
    "probably_unproductive": "probably unproductive",
    "productive_from": "no unproductive layer from",
    "all_productive_from": "none even probably from",
}
#: A table with more columns than this is wider than a phone's screen (400 px): it says so.
WIDE_TABLE = 5
SCROLL_HINT = "{n} columns: scroll the table sideways to see them all."
_CHAR_PX, _HEADER_PAD_PX = 8, 36  # a header's letters at the grid's font, its sort arrow


def header(column: str) -> str:
    """The header a reader sees for a machine column name: :data:`HEADERS`, else the name
    with spaces.

    >>> header("weighted_depth"), header("peak_tflops"), header("fits")
    ('weighted depth', 'peak tflops', 'fits')
    """
    return HEADERS.get(column) or column.replace("_", " ")


def column_config(df, config: dict | None = None) -> dict[str, Any]:
    """Streamlit column configs for ``df``: each column gets a human header (``config``'s
    label, else :func:`header`) and, where the header is longer than every value, a width
    that shows it whole (an auto-sized column is as wide as its values, so "FC share of
    params" over "0.0 %" was cut off).

    >>> import pandas as pd
    >>> cfg = column_config(pd.DataFrame({"fc_params": ["1.2M"], "label": ["resnet"]}))
    >>> cfg["fc_params"]["label"], cfg["fc_params"]["width"]  # 9 letters * 8 px + 36 px
    ('FC params', 108)
    >>> cfg["label"]["label"], cfg["label"]["width"]  # "resnet" is longer than "model"
    ('model', None)
    """
    out: dict[str, Any] = {}
    for col in df.columns:
        given = (config or {}).get(col)
        cfg = {**st.column_config.Column(), **_as_config(given)}
        cfg["label"] = cfg.get("label") or header(str(col))
        longest = max((len(str(v)) for v in df[col].head(200)), default=0)
        if cfg.get("width") is None and len(cfg["label"]) > longest:
            cfg["width"] = len(cfg["label"]) * _CHAR_PX + _HEADER_PAD_PX
        out[str(col)] = cfg
    return out


def _as_config(given) -> dict[str, Any]:
    """A column's config as a dict: a bare string is its label."""
    if isinstance(given, str):
        return {"label": given}
    return {k: v for k, v in (given or {}).items() if v is not None}


def table(df, config: dict | None = None, *, container=None, **kwargs):
    """``st.dataframe`` with human headers (:func:`column_config`) and, when it has more
    than :data:`WIDE_TABLE` columns, a caption under it saying it scrolls sideways (nothing
    else shows that on a phone). ``kwargs`` go to ``st.dataframe``."""
    box = container or st
    kwargs.setdefault("hide_index", True)
    shown = box.dataframe(df, column_config=column_config(df, config), **kwargs)
    if len(df.columns) > WIDE_TABLE:
        box.caption(SCROLL_HINT.format(n=len(df.columns)))
    return shown


PICTURE_CHOICES = ("sample photo", "plain", "my picture")


def picture_widget(size: tuple[int, int], key: str, container=None) -> tuple[Any, str]:
    """A picture to draw the receptive field on: the shipped sample (default), none, or the
    visitor's own PNG/JPEG (read in memory with the caps of :mod:`cnnviz.picture`, never
    stored; a bad file is a message and the sample is drawn instead). Returns an (H, W, 3)
    array of the input's size, or None for the plain view, and the credit to show with the
    drawing ("" unless it is the sample): one caption under the drawing, not an element more
    for every step to send."""
    from cnnviz import picture
    from cnnviz_app import caching, uploads

    box = container or st
    choice = box.radio(
        "draw on", PICTURE_CHOICES, key=key, horizontal=True, bind="query-params",
        help=picture.SAMPLE_CREDIT,
    )  # fmt: skip
    if choice == "plain":
        return None, ""
    if choice == "my picture":
        cap = picture.MAX_UPLOAD_BYTES
        file = box.file_uploader(
            "A picture (PNG or JPEG; not stored)",
            type=["png", "jpg", "jpeg"],
            key=f"{key}_file",
            max_upload_size=cap // 2**20,
        )
        if file is not None and uploads.within(file, cap, "the picture"):
            try:
                return picture.fit(picture.read_upload(file.getvalue(), file.name), size), ""
            except picture.PictureError as e:
                box.error(f"{md_text(str(e))}. Showing the sample photo instead.")
    return caching.sample_picture(tuple(size)), picture.SAMPLE_CREDIT
