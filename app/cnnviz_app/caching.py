"""The app's cached calls into the library: zoo models, analyses, spec analyses, effective RFs,
and the Layer explorer's figures.

Results that do not depend on the visitor are cached across sessions on hashable keys (a zoo
name and its config, spec text), never on modules. Every number on screen comes from
``cnnviz.analyze`` through :func:`analysis` or :func:`spec_analysis`.

Figures are cached as shared objects (``st.cache_resource``): building one costs tens of
milliseconds of plotly validation, and ``st.plotly_chart`` only reads it (``to_dict``), so a
page draws a cached figure as it is and never changes it.
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


@st.cache_resource(max_entries=64, show_spinner=False)
def layer_bars(
    name: str,
    config: Config,
    input_size: tuple[int, ...],
    metric: str,
    log: bool,
):
    """:func:`cnnviz.render.plots.layer_bars` of a zoo model's analysis, every bar muted (the
    page marks the selected one with a style rule), hatched by productivity (shared; never
    mutate)."""
    from cnnviz.render import plots

    a = analysis(name, config, input_size)
    return plots.layer_bars(a, metric, log=log, productivity=True, muted=True)


@st.cache_resource(max_entries=32, show_spinner=False)
def rf_growth_plot(name: str, config: Config, input_size: tuple[int, ...]):
    """:func:`cnnviz.render.plots.rf_growth_plot` of a zoo model (shared; never mutate)."""
    from cnnviz.render import plots

    return plots.rf_growth_plot(analysis(name, config, input_size))


@st.cache_data(max_entries=256, show_spinner=False)
def graph_svg_ids(name: str, config: Config, input_size: tuple[int, ...], layer: str):
    """:func:`cnnviz.render.graph.svg_ids_of` of a zoo model's row."""
    from cnnviz.render import graph

    return graph.svg_ids_of(analysis(name, config, input_size), layer)


@st.cache_resource(max_entries=64, show_spinner=False)
def rf_svg(
    name: str,
    config: Config,
    input_size: tuple[int, ...],
    layer: str,
    unit: tuple[int, int],
    picture_key: str | None,
    _picture=None,
) -> str:
    """:func:`cnnviz.render.rf_svg.rf_on_input_svg` of one unit of a zoo model's layer on a
    picture (shared). ``picture_key`` names ``_picture``'s content (a digest: the array itself
    is not hashed), None for the plain view."""
    from cnnviz.render import rf_svg as svg

    a = analysis(name, config, input_size)
    row = next(r for r in a.layers if r.name == layer)
    out = tuple(row.output_shape[2:4])
    uri = None if _picture is None else picture_uri(picture_key, _picture=_picture)
    return svg.rf_on_input_svg(
        row.receptive_field,
        a.input_spatial,
        unit,
        output_spatial=out,
        picture=_picture,
        picture_uri=uri,
    )


@st.cache_resource(max_entries=8, show_spinner=False)
def picture_uri(picture_key: str, _picture) -> str:
    """``_picture`` as a PNG data URI, encoded once per picture (``picture_key``, its digest)
    rather than for every unit drawn on it: 4 ms at 224x224, 60 ms at 1024x1024."""
    from cnnviz import picture

    return picture.data_uri(_picture)


def picture_key(picture) -> str | None:
    """A digest of a picture array's shape and pixels (the cache key of :func:`rf_svg`)."""
    if picture is None:
        return None
    import hashlib

    digest = hashlib.blake2b(picture.tobytes(), digest_size=16)
    digest.update(repr((picture.shape, str(picture.dtype))).encode())
    return digest.hexdigest()


def default_input(name: str, config: Config = ()) -> tuple[int, ...]:
    return tuple(zoo.model_info(name).input_size_for(dict(config)))


def parsed_spec(text: str) -> spec.Spec:
    """Spec text parsed and validated once per distinct text, shared as the frozen Spec (the
    page reads it as a table, YAML, JSON and a link). An invalid text is parsed once too: its
    :class:`cnnviz.spec.SpecError` is kept and raised again (a fresh copy) on every run."""
    out = _parse_once(text)
    if isinstance(out, spec.SpecError):
        raise spec.SpecError(out.path, out.reason)
    return out


@st.cache_resource(max_entries=64, show_spinner=False)
def _parse_once(text: str) -> spec.Spec | spec.SpecError:
    try:
        return spec.validate(spec.parse(text))
    except spec.SpecError as e:
        return e


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


def queue_note(bar):
    """A waiting callback for the compute lock that says the place in the queue on ``bar``."""

    def waiting(place: int) -> None:
        from cnnviz import safety

        bar.progress(0.0, text=safety.queue_text(place))

    return waiting


@st.cache_data(max_entries=32, show_spinner="Measuring the effective receptive field…")
def effective_rf(
    name: str,
    config: Config,
    input_size: tuple[int, ...],
    layer: str,
    n_samples: int,
    weights: bytes | None = None,
    seed: int = 0,
    progress: bool = False,
):
    """cnnviz.erf on a zoo model (seeded random weights, or uploaded safetensors bytes, which
    cnnviz.erf checks against the model from their header first and loads under the budget
    and the compute lock). ``progress``: a progress bar follows the samples (and the place in
    the compute queue) and is removed at the end.

    The bar is made here, not passed in: st.cache_data replays a cached call's elements on a
    hit, and it cannot replay updates of an element made outside the function (a second
    visitor's identical ERF failed with CacheReplayClosureError)."""
    from cnnviz import erf

    bar = st.progress(0.0, text="effective RF: starting…") if progress else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            m = erf.effective_receptive_field(
                model(name, config),
                layer,
                input_size,
                n_samples=n_samples,
                weights=weights,
                seed=seed,
                progress=None if bar is None else _erf_progress(bar),
                waiting=None if bar is None else queue_note(bar),
            )
    finally:
        if bar is not None:
            bar.empty()
    return m, tuple(str(w.message) for w in caught)


@st.cache_data(max_entries=64, show_spinner=False)
def weights_bytes(name: str, config: Config = ()) -> int:
    """The largest safetensors file of a zoo model's weights (its tensors and header)."""
    from cnnviz import erf

    return erf.weights_file_bytes(model(name, config))


@st.cache_data(max_entries=4, show_spinner="Measuring ERFs of conv stacks…")
def erf_growth(depths: tuple[int, ...]):
    from cnnviz import erf

    return erf.erf_growth(depths)


@st.cache_data(max_entries=256, ttl=300, show_spinner=False)
def timing_estimate(
    name: str,
    device: str,
    batches: tuple[int, ...],
    dtypes: tuple[str, ...],
    run_time: float,
    cuda_graph: bool = False,
) -> float:
    """Seconds timing.benchmark would take for one zoo model (kept 5 minutes: the rates it
    assumes learn from each run on this machine)."""
    from cnnviz import timing

    if not batches or not dtypes:
        return 0.0
    return timing.estimate_seconds(
        name,
        device=device,
        batch_sizes=batches,
        dtypes=dtypes,
        min_run_time=run_time,
        cuda_graph=cuda_graph,
    )


def layer_breakdown(name: str, device: str, dtype: str):
    """Per-layer times beside analyze's MACs (not cached: it measures this machine)."""
    from cnnviz import timing

    return timing.layer_breakdown(name, device=device, dtype=dtype, runs=5)


@st.cache_data(max_entries=32, show_spinner=False)
def sample_picture(size: tuple[int, int]):
    """The shipped sample photo fitted to an input size (the same for every visitor)."""
    from cnnviz import picture

    return picture.fit(picture.sample(), size)
