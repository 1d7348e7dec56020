"""The app's shared inputs and messages: zoo option widgets, the input size, the unit in the
URL, and the readable error box every page wraps its work in.

Widgets return parameters (a hashable config, a shape); pages pass them to the library.
"""

from __future__ import annotations

import contextlib
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


@contextlib.contextmanager
def user_errors(what: str | None = None) -> Iterator[None]:
    """Show a readable message for any error the user's choices cause; the page keeps working.
    ``what`` names the thing at fault (a model on the Compare page)."""
    try:
        yield
    except (cnnviz.AnalysisError, zoo.ZooError, ValueError, KeyError) as e:
        head = f"Cannot show {what}" if what else "Cannot show this"
        st.error(f"**{head}:** {e}", icon=":material/warning:")
    except Exception as e:  # a bug of ours: say so without a traceback on the page
        traceback.print_exc()
        st.error(
            f"**Something went wrong** ({type(e).__name__}: {e}). The rest of the app "
            "still works; please report this.",
            icon=":material/bug_report:",
        )
