"""The app's cached calls into the library: zoo models, analyses, spec analyses, effective RFs.

Results that do not depend on the visitor are cached across sessions on hashable keys (a zoo
name and its config, spec text), never on modules. Every number on screen comes from
``cnnviz.analyze`` through :func:`analysis` or :func:`spec_analysis`.
"""

from __future__ import annotations

import warnings
from typing import Any

import streamlit as st

import cnnviz
from cnnviz import spec, zoo
from cnnviz.result import Analysis
from cnnviz.training import TrainingStep

Config = tuple[tuple[str, Any], ...]  # hashable model config: sorted (option, value) pairs


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


@st.cache_resource(max_entries=64, show_spinner=False)
def parsed_spec(text: str) -> spec.Spec:
    """Spec text parsed and validated once per distinct text, shared as the frozen Spec (the
    page reads it as a table, YAML, JSON and a link). A :class:`cnnviz.spec.SpecError` is not
    cached: it is raised again on every run."""
    return spec.validate(spec.parse(text))


@st.cache_data(max_entries=64, show_spinner="Building and tracing…")
def spec_analysis(text: str) -> Analysis:
    """``cnnviz.analyze`` of the model a spec text describes, on the meta device."""
    model = spec.build(parsed_spec(text))
    return cnnviz.analyze(model, model.default_input_size)


@st.cache_data(max_entries=64, show_spinner="Tracing a training step…")
def training_step(
    name: str,
    config: Config,
    input_size: tuple[int, ...],
    optimizer: str = "adamw",
    dtype: str = "float32",
) -> TrainingStep:
    """``cnnviz.training_step`` of a zoo model (train mode, on the meta device), cached on
    the name, config, input size (batch first), optimizer and dtype."""
    return cnnviz.training_step(model(name, config), input_size, optimizer, dtype)  # type: ignore[arg-type]


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
