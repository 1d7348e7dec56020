"""Compare architectures: totals, where the parameters sit, MACs against params, per stage."""

from dataclasses import dataclass

import pandas as pd
import streamlit as st
from cnnviz_app import caching, widgets

from cnnviz import compare, fmt, training, zoo
from cnnviz.render import compare_html

Job = tuple[str, str, caching.Config, tuple[int, ...]]  # label, zoo name, config, input shape


# Cached across sessions with st.cache_resource: the results are frozen (an Analysis, tables
# and markup the page only reads), so every rerun and visitor shares them as they are, without
# st.cache_data's unpickling on each hit. A rerun that did not change the models repeats no
# analysis, table or chart.
@st.cache_resource(max_entries=64, show_spinner=False)
def _analysis(name: str, config: caching.Config, shape: tuple[int, ...]):
    return caching.analysis(name, config, shape)


@dataclass(frozen=True)
class Overview:
    """Everything the page shows for one set of models, but the training step."""

    totals: pd.DataFrame  # compare.compare as the table reads it (1.2M, 3.4 MiB, 12.5 %)
    exact: str  # exact params and MACs per model, then the notes, a line each
    csv: str
    json: str
    scatter: str  # MACs against parameters, HTML (cnnviz.render.compare_html)
    stages: dict[str, pd.DataFrame]
    productivity: pd.DataFrame


TOTALS = [
    "label",
    "input",
    "params",
    "macs",
    "flops",
    "weighted_depth",
    "rf",
    "activation_bytes",
    "peak_activation_bytes",
    "conv_params",
    "fc_params",
    "fc_share",
]


SCATTER_NOTE = (
    "Marker size: final receptive field. Right: parameter-heavy (AlexNet and VGG, mostly in "
    "their fully connected layers); up: compute-heavy (VGG, then ResNet-50). GoogLeNet and "
    "ResNet buy more compute per parameter."
)
STAGE_NOTE = (
    "A stage is a run of layers at one spatial size, labelled by that size against the "
    "input's (1/4: a quarter of its height and width), so bars side by side work at the same "
    "resolution; 'head' is everything after global pooling or flatten."
)


@st.cache_resource(max_entries=32, show_spinner=False)
def _overview(jobs: tuple[Job, ...]) -> Overview:
    analyses = {label: _analysis(name, cfg, shape) for label, name, cfg, shape in jobs}
    df = compare.compare(analyses)
    view = df.copy()
    for col in ("params", "conv_params", "fc_params", "macs", "flops"):
        view[col] = view[col].map(fmt.compact)
    for col in ("activation_bytes", "peak_activation_bytes"):
        view[col] = view[col].map(fmt.nbytes)
    view["fc_share"] = (df["fc_share"] * 100).round(1).astype(str) + " %"
    # 212, "7x5", "unknown": one type for the table (Arrow refuses a column of ints and text)
    view["rf"] = view["rf"].map(str)
    exact = "Exact counts: " + "; ".join(
        f"{r.label}: {fmt.count(r.params)} params, {fmt.count(r.macs)} MACs"
        for r in df.itertuples()
    )
    notes = [
        f"{r.label}: the final RF is unknown because {r.rf_note}."
        for r in df.itertuples()
        if r.rf_note
    ]
    notes += [f"{label}: {note}." for label, a in analyses.items() for note in a.notes]
    return Overview(
        totals=view[[c for c in TOTALS if c in view]],
        # one caption: unknown final RFs, unused parameters (aux heads), conventions
        exact="  \n".join([exact, *notes]),
        csv=compare.to_csv(df),
        json=compare.to_json(df),
        scatter=compare_html.scatter_html(df, SCATTER_NOTE),
        stages={label: compare.stage_table(a) for label, a in analyses.items()},
        productivity=compare.productivity_table(analyses),
    )


@st.cache_resource(max_entries=64, show_spinner=False)
def _stage_bars(jobs: tuple[Job, ...], metric: str, log: bool) -> str:
    return compare_html.stage_bars_html(_overview(jobs).stages, metric, log, STAGE_NOTE)


@st.fragment
def stage_section(jobs: tuple[Job, ...]) -> None:
    """Per-stage bars; their metric and scale rerun only this part of the page."""
    with widgets.user_errors():
        st.subheader("Per stage")
        metric = st.segmented_control(
            "metric", ["macs", "params"], default="macs", key="stage_metric", bind="query-params"
        )
        log = st.checkbox(
            "log scale",
            key="stage_log",
            bind="query-params",
            help="Small models' bars stay visible beside VGG's.",
        )
        # one HTML block (chart and note): laid out again, not redrawn like a Plotly chart
        st.html(_stage_bars(jobs, metric or "macs", log))


st.title("Compare architectures")
st.caption(
    "AlexNet and VGG hold most of their parameters in the fully connected layers; GoogLeNet "
    "and ResNet replace them with global average pooling and spend their budget on "
    "convolutions. Deeper nets see more of the image (receptive field) for their MACs."
)

DEFAULT = ["alexnet", "vgg16", "googlenet", "resnet50"]
names = st.multiselect(
    "Models", zoo.list_models(), default=DEFAULT, key="models", bind="query-params"
)
if names:  # what each picked name is, and where it comes from
    st.caption(
        "  \n".join(
            f"**{n}**: {zoo.model_info(n).description} *{zoo.model_info(n).paper}*" for n in names
        )
    )
# A popover, not an expander: the browser draws its widgets only when it is open, and a
# model change (which sends all of them again) took 26 ms less in a WebSocket probe (118
# against 144 ms; the server's run is about 20 ms of either).
with st.popover("Model options and input size", width="stretch"):
    same = st.checkbox(
        "Use one input size for all models",
        key="same_size",
        bind="query-params",
        help="Off: each model gets the size it was made for (224, 227 or 32).",
    )
    size = st.number_input(
        "input size (pixels)",
        min_value=16,
        max_value=1024,
        value=224,
        key="cmp_size",
        bind="query-params",
        disabled=not same,
    )
    configs = {}
    cols = st.columns(max(1, min(4, len(names))))
    for i, name in enumerate(names):
        box = cols[i % len(cols)].container(border=True)
        box.markdown(f"**{name}**")
        configs[name] = widgets.option_widgets(name, "cmp.", box)

if not names:
    st.info("Pick at least one model.")
    st.stop()

analyses = {}  # the models that could be analyzed at their input size
jobs = {}  # label -> (name, config, input shape): what the analysis and training step trace
for name in names:  # a model that cannot take this input is a message; the others stay
    cfg = configs[name]
    label = name + "".join(f" {k}={v}" for k, v in cfg)
    with widgets.user_errors(label):
        shape = caching.default_input(name, cfg)
        if same:
            shape = (*shape[:-2], int(size), int(size))
        analyses[label] = _analysis(name, cfg, shape)
        jobs[label] = (name, cfg, shape)
if not analyses:
    st.stop()
key = tuple((label, *job) for label, job in jobs.items())

with widgets.user_errors():
    ov = _overview(key)
    st.subheader("Totals")
    widgets.table(
        ov.totals,
        # the library's machine names, read as headers (each one distinct, so none is cut
        # to a second "params")
        {
            "label": "model",
            "params": "params",
            "macs": "MACs",
            "flops": "FLOPs",
            "weighted_depth": "weighted depth",
            "rf": "final RF",
            "activation_bytes": "all activations",
            "peak_activation_bytes": "peak activations",
            "conv_params": "conv params",
            "fc_params": "FC params",
            "fc_share": "FC share of params",
        },
    )
    st.caption(ov.exact)
    c1, c2 = st.columns(2)
    c1.download_button("Download CSV", ov.csv, "cnnviz_compare.csv", "text/csv", key="dl_csv")
    c2.download_button(
        "Download JSON", ov.json, "cnnviz_compare.json", "application/json", key="dl_json"
    )

    left, right = st.columns(2)
    with left:
        st.subheader("MACs against parameters")
        st.html(ov.scatter)
    with right:
        stage_section(key)


GPUS = (8, 16, 24, 40, 80)  # GB, common GPU memory sizes
DTYPES = ("float32", "bfloat16", "float16")


@st.fragment
def training_section(jobs: dict) -> None:
    """Training memory per model; its own widgets rerun only this part of the page (so it
    shows its own errors: the page's error box is not around a fragment's rerun)."""
    with widgets.user_errors():
        _training(jobs)


def _training(jobs: dict) -> None:
    st.subheader("Training step")
    # Off until asked for: it traces a forward and a backward per model (seconds each), and
    # the page's first view should cost no more than its totals.
    if not st.toggle(
        "Trace a training step for each model",
        key="train_on",
        bind="query-params",
        help="Peak memory, saved tensors and the largest batch that fits a GPU.",
    ):
        st.caption("Peak training memory, saved tensors and the largest batch per GPU size.")
        return
    st.caption(
        "One step of training: forward in train mode, backward of the summed outputs, and "
        "an optimizer step whose state already exists (a step of a running loop), traced "
        "on the meta device. Saved for backward: what autograd keeps from the forward; it "
        "grows with the batch, while parameters, gradients and optimizer state do not."
    )
    c1, c2, c3, c4 = st.columns(4)
    batch = c1.number_input("batch size", 1, 1024, 32, key="train_batch", bind="query-params")
    optimizer = c2.selectbox(
        "optimizer",
        list(training.STATE_BUFFERS),
        index=list(training.STATE_BUFFERS).index("adamw"),
        key="train_opt",
        bind="query-params",
        help="sgd keeps no state, sgd_momentum one buffer per parameter, adam and adamw two.",
    )
    dtype = c3.selectbox("dtype", DTYPES, key="train_dtype", bind="query-params")
    gpu = c4.selectbox(
        "GPU memory (GB)",
        GPUS,
        index=GPUS.index(24),
        key="gpu_gb",
        bind="query-params",
    )
    steps = {}
    bar = st.progress(0.0)
    for i, (label, (name, cfg, shape)) in enumerate(jobs.items()):
        bar.progress(i / len(jobs), text=f"Training step: {widgets.md_text(label)}")
        with widgets.user_errors(label):
            size = (int(batch), *shape[1:])
            steps[label] = caching.training_step(name, cfg, size, optimizer, dtype)
    bar.empty()
    if not steps:
        return
    df = compare.training_table(steps, gpu)
    view = df.copy()
    for col in ("peak_bytes", "saved_bytes", "state_bytes"):
        view[col] = view[col].map(fmt.nbytes)
    for col in ("forward_macs", "backward_macs"):
        view[col] = view[col].map(fmt.compact)
    cols = [
        "label",
        "peak_bytes",
        "saved_bytes",
        "state_bytes",
        "forward_macs",
        "backward_macs",
        "fits",
        "max_batch_text",
    ]
    widgets.table(
        view[cols],
        {
            "peak_bytes": "peak memory",
            "saved_bytes": "saved for backward",
            "state_bytes": "params + grads + optimizer",
            "forward_macs": "forward MACs",
            "backward_macs": "backward MACs",
            "fits": st.column_config.CheckboxColumn(f"fits at batch {batch}"),
            "max_batch_text": f"largest batch on a {gpu} GB GPU",
        },
        key="train_table",
    )
    st.caption(
        f"Batch {batch}, {optimizer}, {dtype}. The largest batch "
        "comes from the peak's batch-independent and per-sample parts; a real GPU also "
        "holds the CUDA context and the allocator's slack, so leave a margin. Exact peaks: "
        + "; ".join(f"{r.label}: {fmt.count(r.peak_bytes)} bytes" for r in df.itertuples())
    )


training_section(jobs)

with widgets.user_errors():
    st.subheader("Where depth stops adding context")
    widgets.table(_overview(key).productivity, key="productivity_table")
    st.caption(
        "A layer is unproductive at an input size when its receptive field, even along its "
        "smallest path from the input, already exceeds the input: it can add no new context, "
        "so its compute buys nothing there (Richter et al., ICMLA 2021). *Probably* "
        "unproductive: only the widest path's field does (shortcuts and branches keep "
        "smaller paths). The two sizes are where each model stops being so as the input "
        "shrinks, estimated from the fields (pooling that adapts to the input is not "
        "modelled). Try one input size of 32 for all models: VGG-16's last blocks turn "
        "unproductive."
    )
