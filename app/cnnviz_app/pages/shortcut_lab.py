"""ResNet shortcut lab: identity, zero-pad, projection and all-projection shortcuts."""

import streamlit as st
from cnnviz_app import caching, widgets

from cnnviz import labs, zoo
from cnnviz.render import block_svg, erf_plots, lab_plots


def _header(column: str) -> str:
    """A header for shortcut_stage_table's columns: params_A "params, A",
    params_A_minus_none "params, A − none"."""
    metric, _, rest = column.partition("_")
    metric = {"macs": "MACs"}.get(metric, metric)
    return f"{metric}, {rest.replace('_minus_', ' − ')}" if rest else metric


@st.fragment
def stage_bars(depth: int, block: str) -> None:
    """The per-stage bars; switching the metric reruns only them."""
    metric = st.segmented_control(
        "metric", ["params", "macs"], default="params", key="metric", bind="query-params"
    )
    with widgets.user_errors():
        st.plotly_chart(_stage_bars(depth, block, metric or "params"), key="bars")


@st.fragment
def cases_section(depth: int, block: str, imagenet: bool) -> None:
    """The shortcut control and the four cases it draws; switching the shortcut reruns only
    them (so they show their own errors: the page's error box is not around a fragment's
    rerun)."""
    shortcut = st.segmented_control(
        "shortcut", ["none", "A", "B", "C"], default="B", key="shortcut", bind="query-params"
    )
    with widgets.user_errors():
        # CIFAR depths are drawn on ResNet-34's ImageNet blocks (the caption below says so)
        drawn = (shortcut or "B", depth if imagenet else 34, block if imagenet else None)
        cases = labs.block_cases(*drawn)
        figures = _diagrams(*drawn)
        if not imagenet:
            st.caption(
                f"Drawn on ImageNet ResNet blocks (224 px): ResNet-{depth} for CIFAR has only the "
                "first two cases, with 16 to 64 channels at 32x32 to 8x8."
            )
        elif block == "basic":
            st.caption(
                f"ResNet-{depth} with basic blocks never changes the channels at the same size and "
                "has no bottleneck: cases 3 and 4 are drawn from ResNet-50."
            )
        # Lazy tabs: only the open case is drawn, so a new shortcut type sends and redraws one
        # diagram, not four (a tab switch reruns this fragment to draw its case).
        titles = [c.title for c in cases]
        tabs = st.tabs(titles, key="case", on_change="rerun")
        for tab, figure in zip(tabs, figures, strict=True):
            if tab.open:
                tab.html(figure)  # the case's explanation, title and picture


st.title("ResNet shortcut lab")
st.caption(
    "Shortcuts fight degradation: a plain deep net trains worse than a shallower one, a "
    "residual net does not. He et al. compare three shortcut types: (A) parameter-free "
    "identity, zero-padding the extra channels where the shape changes; (B) identity, with a "
    "1x1 projection only where the shape changes; (C) projections everywhere."
)

DEPTHS = [18, 34, 50, 101, 152, 20, 32, 44, 56, 110]


# The diagrams are pictures (HTML and SVG), not Plotly charts: a new shortcut type would build
# a new chart from scratch, half of the browser's work on a switch (bench/README.md). The same
# for every visitor: one build per setting, shared by all sessions.
@st.cache_resource(max_entries=64, show_spinner=False)
def _diagrams(shortcut: str, depth: int, block: str | None) -> tuple[str, ...]:
    cases = labs.block_cases(shortcut, depth, block)
    return tuple(block_svg.block_diagram_html(c, explain=True) for c in cases)


@st.cache_resource(max_entries=64, show_spinner=False)
def _stage_bars(depth: int, block: str, metric: str):
    return lab_plots.shortcut_bars(labs.shortcut_stage_table(depth, block), metric)


def _own_block() -> None:
    """A new depth shows the blocks that net is built from (a block picked for the old depth
    described that net)."""
    # set, not dropped: a dropped value is read again from the link's ?block=. (Streamlit
    # logs once that the widget also has a default: that default keeps the link clean.)
    st.session_state["block"] = labs.default_block(st.session_state["depth"])


def _depth_caption(depth: int, block: str) -> str:
    info = zoo.model_info(f"resnet{depth}")
    if depth in labs.IMAGENET_DEPTHS:
        data = "an ImageNet net: 224x224 RGB input, 1000 classes"
    else:
        data = "a CIFAR-10 net: 32x32 RGB input, 10 classes, three stages of 16/32/64 channels"
    return (
        f"**ResNet-{depth}** ({data}), {block} blocks. {info.description} "
        f"Paper: {info.paper} (CVPR 2016)."
    )


c1, c2 = st.columns(2)
# Plain numbers (no format_func) so that ?depth=20 in a shared link selects ResNet-20.
depth = c1.selectbox(
    "depth (ImageNet 18-152, CIFAR 20-110)",
    DEPTHS,
    index=2,
    key="depth",
    bind="query-params",
    on_change=_own_block,
    help="18, 34, 50, 101, 152: ImageNet ResNets (224 px); 20, 32, 44, 56, 110: CIFAR ResNets "
    "(32 px). 50 and 152 mean the ImageNet nets.",
)
imagenet = depth in labs.IMAGENET_DEPTHS
if not imagenet and st.session_state.get("block", st.query_params.get("block")) == "bottleneck":
    st.info(
        f"ResNet-{depth} for CIFAR is built from basic blocks (bottleneck CIFAR nets need a "
        "depth of 9n + 2, such as 164): showing basic blocks.",
        icon=":material/info:",
    )
    st.session_state["block"] = "basic"
block = c2.segmented_control(
    "block",
    ["basic", "bottleneck"],
    default=labs.default_block(depth),
    required=True,
    key="block",
    bind="query-params",
    help="Default: basic up to ResNet-34, bottleneck from ResNet-50. The CIFAR nets (20-110) "
    "are built from basic blocks only.",
)
block = block or labs.default_block(depth)  # a link's empty ?block= clears even a required one
c1.caption(_depth_caption(depth, block))

with widgets.user_errors():
    st.subheader("The four cases, with real shapes")
    cases_section(depth, block, imagenet)

    st.subheader("Parameters and MACs per stage, for every shortcut type")
    table = labs.shortcut_stage_table(depth, block)
    # exact counts with thousands separators (Streamlit's "compact" would say 4.1B, where
    # the rest of the app says 4.1G)
    numbers = {
        c: st.column_config.NumberColumn(_header(c), format="localized")
        for c in table.columns
        if c != "stage"
    }
    st.dataframe(table, hide_index=True, column_config=numbers)
    stage_bars(depth, block)
    st.caption(
        "A adds no parameters; B pays only for the few projections where the shape "
        "changes; C projects on every block for little gain (the paper's Table 3)."
    )

    st.subheader("Effective receptive field: plain against residual")
    st.caption(
        "Skip connections shrink the effective RF (Luo et al., 2016): a residual unit leans on "
        "the short paths through its shortcuts, so its gradient concentrates near the centre, "
        "while the plain twin of the same depth spreads it wider. CIFAR nets, random weights."
    )
    k1, k2, k3 = st.columns(3)
    erf_depth = k1.selectbox(
        "CIFAR depth", [20, 32, 44, 56, 110], index=1, key="erf_depth", bind="query-params"
    )
    erf_layer = k2.selectbox(
        "layer", ["layer1", "layer2", "layer3"], index=1, key="erf_layer", bind="query-params"
    )
    shortcut = st.session_state.get("shortcut")  # the cases' control, read at this run
    residual = shortcut if shortcut in ("A", "B", "C") else "A"
    if k3.button("Measure both", key="erf_go"):
        maps, notes = {}, {}
        for sc in ("none", residual):
            cfg = (("depth", erf_depth), ("shortcut", sc))
            maps[sc], found = caching.effective_rf(
                "resnet_cifar", cfg, (1, 3, 64, 64), erf_layer, 4, progress=True
            )
            notes.update(dict.fromkeys(found))
        for note in notes:  # e.g. a theoretical RF larger than the 64 px input
            st.warning(note, icon=":material/info:")
        cols = st.columns(2)
        for col, (sc, m) in zip(cols, maps.items(), strict=True):
            label = "plain" if sc == "none" else f"residual ({sc})"
            col.plotly_chart(erf_plots.erf_heatmap(m, f"{label}: {erf_layer}"), key=f"erf_{sc}")
            col.metric(
                f"{label}: 50 % radius",
                f"{m.radius(0.5):g} px",
                help=f"95 %: {m.radius(0.95):g} px; theoretical RF {m.theoretical}",
            )
