"""Compare architectures: totals, where the parameters sit, MACs against params, per stage."""

import streamlit as st
from cnnviz_app import caching, widgets

from cnnviz import compare, fmt, training, zoo
from cnnviz.render import plots

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
with st.expander("Model options and input size"):
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

analyses = {}
jobs = {}  # label -> (name, config, input shape): what the training step is traced on
for name in names:  # a model that cannot take this input is a message; the others stay
    cfg = configs[name]
    label = name + "".join(f" {k}={v}" for k, v in cfg)
    with widgets.user_errors(label):
        shape = caching.default_input(name, cfg)
        if same:
            shape = (*shape[:-2], int(size), int(size))
        analyses[label] = caching.analysis(name, cfg, shape)
        jobs[label] = (name, cfg, shape)
if not analyses:
    st.stop()

with widgets.user_errors():
    df = compare.compare(analyses)

    st.subheader("Totals")
    view = df.copy()
    for col in ("params", "conv_params", "fc_params", "macs", "flops"):
        view[col] = view[col].map(fmt.compact)
    for col in ("activation_bytes", "peak_activation_bytes"):
        view[col] = view[col].map(fmt.nbytes)
    view["fc_share"] = (df["fc_share"] * 100).round(1).astype(str) + " %"
    # 212, "7x5", "unknown": one type for the table (Arrow refuses a column of ints and text)
    view["rf"] = view["rf"].map(str)
    cols = [
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
    st.dataframe(
        view[[c for c in cols if c in view]],
        hide_index=True,
        # the library's machine names, read as headers (each one distinct, so none is cut
        # to a second "params")
        column_config={
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
    st.caption(
        "Exact counts: "
        + "; ".join(
            f"{r.label}: {fmt.count(r.params)} params, {fmt.count(r.macs)} MACs"
            for r in df.itertuples()
        )
    )
    for r in df.itertuples():
        if r.rf_note:
            st.caption(f"{r.label}: the final RF is unknown because {r.rf_note}.")
    for label, a in analyses.items():  # unused parameters (aux heads), norm conventions
        for note in a.notes:
            st.caption(f"{label}: {note}.")
    c1, c2 = st.columns(2)
    c1.download_button(
        "Download CSV", compare.to_csv(df), "cnnviz_compare.csv", "text/csv", key="dl_csv"
    )
    c2.download_button(
        "Download JSON",
        compare.to_json(df),
        "cnnviz_compare.json",
        "application/json",
        key="dl_json",
    )

    left, right = st.columns(2)
    with left:
        st.subheader("MACs against parameters")
        st.plotly_chart(plots.macs_vs_params(df), key="scatter")
        st.caption(
            "Marker size: final receptive field. Right: parameter-heavy (AlexNet and VGG, "
            "mostly in their fully connected layers); up: compute-heavy (VGG, then ResNet-50). "
            "GoogLeNet and ResNet buy more compute per parameter."
        )
    with right:
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
        tables = {label: compare.stage_table(a) for label, a in analyses.items()}
        st.plotly_chart(plots.stage_bars(tables, metric or "macs", log=log), key="stages")
        st.caption(
            "A stage is a run of layers at one spatial size, labelled by that size against "
            "the input's (1/4: a quarter of its height and width), so bars side by side work "
            "at the same resolution; 'head' is everything after global pooling or flatten."
        )


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
    st.dataframe(
        view[cols],
        hide_index=True,
        key="train_table",
        column_config={
            "peak_bytes": "peak memory",
            "saved_bytes": "saved for backward",
            "state_bytes": "params + grads + optimizer",
            "forward_macs": "forward MACs",
            "backward_macs": "backward MACs",
            "fits": st.column_config.CheckboxColumn(f"fits at batch {batch}"),
            "max_batch_text": f"on a {gpu} GB GPU",
        },
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
    pdf = compare.productivity_table(analyses)
    st.dataframe(
        pdf,
        hide_index=True,
        key="productivity_table",
        column_config={
            "unproductive": "unproductive layers",
            "probably_unproductive": "probably unproductive",
            "productive_from": "no unproductive layer from",
            "all_productive_from": "none even probably from",
        },
    )
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
