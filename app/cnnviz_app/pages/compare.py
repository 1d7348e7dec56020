"""Compare architectures: totals, where the parameters sit, MACs against params, per stage."""

import streamlit as st
from cnnviz_app import caching, widgets

from cnnviz import compare, fmt, zoo
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
for name in names:  # a model that cannot take this input is a message; the others stay
    cfg = configs[name]
    label = name + "".join(f" {k}={v}" for k, v in cfg)
    with widgets.user_errors(label):
        shape = caching.default_input(name, cfg)
        if same:
            shape = (*shape[:-2], int(size), int(size))
        analyses[label] = caching.analysis(name, cfg, shape)
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
        column_config={
            "rf": "final RF",
            "fc_share": "params in FC",
            "peak_activation_bytes": "peak activations",
            "activation_bytes": "all activations",
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
        tables = {label: compare.stage_table(a) for label, a in analyses.items()}
        st.plotly_chart(plots.stage_bars(tables, metric or "macs"), key="stages")
        st.caption(
            "A stage is a run of layers at one spatial size, labelled by that size against "
            "the input's (1/4: a quarter of its height and width), so bars side by side work "
            "at the same resolution; 'head' is everything after global pooling or flatten."
        )
