"""Shared pieces of the app: cached models and analyses, the model picker, error display.

Pages stay thin: they choose inputs with these helpers, call the library and draw. Every
number on screen comes from ``cnnviz.analyze`` (through ``analysis()`` below).
"""

from __future__ import annotations

import contextlib
import traceback
import warnings
from collections.abc import Iterator
from typing import Any

import streamlit as st

import cnnviz
from cnnviz import zoo
from cnnviz.render.table import compact
from cnnviz.result import Analysis

Config = tuple[tuple[str, Any], ...]  # hashable model config: sorted (option, value) pairs

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


#: Work one effective-RF request may do on a shared server (MACs, forward and backward over
#: all samples): about 15 s on 2 CPU cores, which holds the compute lock the Timing page
#: needs too.
ERF_MAX_MACS = 300 * 10**9


@st.cache_resource(max_entries=32, show_spinner=False)
def model(name: str, config: Config = ()):
    """A zoo model on the meta device (no memory), shared by all sessions and never mutated."""
    return zoo.get_model(name, device="meta", **dict(config))


@st.cache_data(max_entries=128, show_spinner="Tracing the model…")
def analysis(name: str, config: Config = (), input_size: tuple[int, ...] | None = None) -> Analysis:
    """``cnnviz.analyze`` of a zoo model, cached on hashable keys (switching back is instant)."""
    m = model(name, config)
    return cnnviz.analyze(m, input_size or tuple(m.default_input_size))


def default_input(name: str, config: Config = ()) -> tuple[int, ...]:
    return tuple(zoo.model_info(name).input_size_for(dict(config)))


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


def fmt_shape(shape) -> str:
    return "x".join(str(s) for s in shape)


def fmt_rf(rf) -> str:
    """'427x427', 'global' or 'unknown' for a ReceptiveField (sizes past a million compact:
    a deep strided stack's field can reach 10^19 pixels)."""
    if rf.size is None:
        return "unknown"
    if rf.is_global:
        return "global"
    return "x".join(str(s) if s < 10**6 else compact(s) for s in rf.size)


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


def unused_note(a: Analysis, label: str | None = None) -> str | None:
    """A line about parameters the forward pass never read (GoogLeNet's aux heads in eval
    mode): they are in the total but in no row."""
    if not a.unused_param_count:
        return None
    tops = sorted({n.split(".")[0] for n in a.unused_params})
    who = f"{label}: " if label else ""
    return (
        f"{who}{a.unused_param_count:,} of the {a.total_params:,} parameters "
        f"({', '.join(tops[:4])}) are not used by this {a.mode}-mode forward pass; they count "
        "in the total but in no layer."
    )


def rf_help(rf) -> str:
    """The tooltip beside :func:`fmt_rf`: why it is unknown, or the full field."""
    if rf.size is None:
        return f"Unknown: {rf.reason}."
    return "Every unit sees the whole input." if rf.is_global else str(rf)


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


def _erf_progress(bar):
    def report(done: int, total: int) -> None:
        bar.progress(done / total, text=f"effective RF: sample {min(done + 1, total)} of {total}")

    return report


@st.cache_data(max_entries=32, show_spinner="Measuring the effective receptive field…")
def effective_rf(
    name: str,
    config: Config,
    input_size: tuple[int, ...],
    layer: str,
    n_samples: int,
    weights: bytes | None = None,
    seed: int = 0,
    _bar=None,
):
    """cnnviz.erf on a zoo model (seeded random weights, or uploaded safetensors bytes).
    ``_bar`` (an st.progress, not part of the cache key) follows the samples."""
    from cnnviz import erf

    state = None
    if weights is not None:
        from safetensors.torch import load as load_safetensors

        try:
            state = load_safetensors(weights)
        except Exception as e:
            msg = f"the uploaded file is not a readable safetensors file: {e}"
            raise erf.WeightsError(msg) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = erf.effective_receptive_field(
            model(name, config),
            layer,
            input_size,
            n_samples=n_samples,
            weights=state,
            seed=seed,
            progress=None if _bar is None else _erf_progress(_bar),
        )
    return m, tuple(str(w.message) for w in caught)


@st.cache_data(max_entries=4, show_spinner="Measuring ERFs of conv stacks…")
def erf_growth(depths: tuple[int, ...]):
    from cnnviz import erf

    return erf.erf_growth(depths)


def layer_breakdown(name: str, device: str, dtype: str):
    """Per-layer times beside analyze's MACs (not cached: it measures this machine)."""
    from cnnviz import timing

    return timing.layer_breakdown(name, device=device, dtype=dtype, runs=5)
