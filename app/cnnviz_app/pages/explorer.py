"""Layer explorer: one model layer by layer, its receptive field drawn on the input."""

import streamlit as st
from cnnviz_app import caching, uploads, widgets

from cnnviz import compare, fmt, safety, zoo
from cnnviz.render import erf_plots, graph, lab_html, plots

st.title("Layer explorer")
st.caption(
    "Every row is one call of a layer (or a functional op such as a residual add). The "
    "receptive field (RF) is the input window one output unit can see; the effective stride "
    "is how far that window moves between neighbouring units."
)

names = zoo.list_models()
c1, c2, c3 = st.columns([2, 3, 1])
name = c1.selectbox("Model", names, index=names.index("resnet50"), key="model", bind="query-params")
with c2.expander("Options"):
    cfg = widgets.option_widgets(name, "exp.")
info = zoo.model_info(name)  # what the picked name is, and where it comes from
st.caption(f"**{name}**: {info.description} *{info.paper}*")
default = None
with widgets.user_errors():  # an option the model refuses (an even kernel) is a message
    default = caching.default_input(name, cfg)
if default is None:
    st.stop()
shape = widgets.input_size_widget(default, "size", c3)


def _select_from_chart() -> None:
    event = st.session_state.get("bars")
    points = (event or {}).get("selection", {}).get("points", [])
    if points and points[0].get("customdata"):
        data = points[0]["customdata"]
        st.session_state["layer"] = data[0] if isinstance(data, list) else data


a = None
with widgets.user_errors():
    a = caching.analysis(name, cfg, shape)
if a is None:
    st.stop()

m1, m2, m3, m4 = st.columns(4)
m1.metric("Parameters", fmt.compact(a.total_params), help=fmt.count(a.total_params))
m2.metric("MACs", fmt.compact(a.total_macs), help=fmt.count(a.total_macs))
m3.metric("Weighted depth", a.weighted_depth, help="conv + linear layers on the longest path")
final = a.receptive_field()
m4.metric("Final RF", fmt.rf(final), help=fmt.rf_help(final))
for note in a.notes:  # conventions behind these numbers, unused parameters, for this model
    st.caption(f"Note: {note}.")

rows = [r.name for r in a.layers]
default_layer = a.default_layer() or rows[-1]
# A layer chosen for another model (or a stale link) gives way to the default, in the state
# and so in the URL; a valid one from the URL is left to the layer selectbox, bound to it.
if st.session_state.get("layer") not in rows:
    url_layer = st.query_params.get("layer")
    if "layer" in st.session_state or (url_layer is not None and url_layer not in rows):
        st.session_state["layer"] = default_layer


def productivity_caption(a) -> None:
    prod = compare.productivity_summary(a)
    if prod["unproductive"] or prod["probably_unproductive"]:
        st.caption(
            "Hatched bars add no new context at this input (Richter et al., ICMLA "
            "2021): their receptive field is larger than the input along every path "
            f"(x, unproductive: {prod['unproductive']}) or along the widest "
            f"(/, probably unproductive: {prod['probably_unproductive']}). None is "
            f"unproductive from {prod['productive_from']} on, none even probably from "
            f"{prod['all_productive_from']}."
        )
    else:
        st.caption(
            "Every layer adds context at this input: no receptive field is larger than it "
            f"(Richter et al., ICMLA 2021). Below {prod['productive_from']} some would not."
        )


# The bars and the RF growth are the same for every layer, so they sit outside the layer
# panel: a new layer does not send them again (a style rule in the panel colours its bar).
# A click on a bar picks its layer and reruns the page, the panel with it.
with widgets.user_errors():
    left, right = st.columns([3, 2])
    with left:
        metric = st.segmented_control(
            "bars", ["params", "macs"], default="macs", key="metric", bind="query-params"
        )
        log = st.checkbox("log scale", key="log", bind="query-params")
        bars = caching.layer_bars(name, cfg, shape, metric or "macs", bool(log))
        st.plotly_chart(bars, key="bars", on_select=_select_from_chart, selection_mode="points")
        st.caption("Click a bar to select that layer.")
        productivity_caption(a)
    with right:
        st.plotly_chart(caching.rf_growth_plot(name, cfg, shape), key="growth")
        st.caption(
            "The RF grows by (k-1) x stride-so-far at each layer: strided layers make "
            "every later layer grow it faster. The panel below counts that stride: how "
            "far the window moves between neighbouring units."
        )

# What depends on the layer is a fragment: picking a layer reruns the layer panel (its
# details and the unit view), moving a unit slider only the unit view. The graph and the ERF
# panel are fragments of their own, rerun by their own controls; the graph's outline is a
# style rule the layer panel writes. A fragment shows its own errors: the page's error box is
# not around a fragment's rerun.


def graph_outline_css(name: str, cfg, shape: tuple[int, ...], layer: str) -> str:
    """A rule outlining the box that holds ``layer`` at whatever depth the graph is drawn:
    the graph's box carries its depth in its key (graph_box_<depth>), one selector per
    depth."""
    ids = caching.graph_svg_ids(name, cfg, shape, layer)
    boxes = ", ".join(
        f".st-key-graph_box_{depth_tag(d)} g#{i} {part}"
        for d, i in ids.items()
        for part in ("path", "polygon")
    )
    return f"{boxes} {{stroke: {graph.OUTLINE}; stroke-width: 3px}}"


def depth_tag(depth: int | None) -> str:
    return "all" if depth is None else str(depth)


@st.fragment
def layer_panel(a, name: str, cfg, shape: tuple[int, ...], default_layer: str) -> None:
    """The layer picker and everything about that layer."""
    rows = [r.name for r in a.layers]
    with widgets.user_errors():
        # index=0 when a click already chose the layer (Streamlit warns about both otherwise).
        index = 0 if "layer" in st.session_state else rows.index(default_layer)
        layer = st.selectbox("Selected layer", rows, index=index, key="layer", bind="query-params")
        bar_css = plots.selected_bar_css("st-key-bars", rows.index(layer))
        st.html(f"<style>{bar_css}\n{graph_outline_css(name, cfg, shape, layer)}</style>")
        row = next(r for r in a.layers if r.name == layer)
        rf = row.receptive_field
        st.markdown(
            f"**`{row.name}`** ({row.type}): output {fmt.shape(row.output_shape)}, "
            f"{fmt.count(row.params)} params, {fmt.count(row.macs)} MACs, RF {rf}"
            + (f"; **{row.productivity}** at this input" if row.productivity in plots.HATCH else "")
        )
        if rf.size is None:
            st.info(f"The receptive field is unknown here: {rf.reason}.")
        elif rf.is_global:
            st.info(
                "Every unit here sees the whole input (after global pooling or flatten + linear)."
            )
        elif row.output_shape is not None and len(row.output_shape) == 4:
            unit_panel(a, name, cfg, shape, layer)


@st.fragment
def unit_panel(a, name: str, cfg, shape: tuple[int, ...], layer: str) -> None:
    """One unit of the layer and its window on the input: the unit sliders rerun only this."""
    row = next(r for r in a.layers if r.name == layer)
    rf = row.receptive_field
    seen = st.session_state.get("unit_for")
    recentre = seen is not None and seen != (name, layer)  # another layer: centre the unit
    st.session_state["unit_for"] = (name, layer)
    with widgets.user_errors():
        oh, ow = row.output_shape[2], row.output_shape[3]
        # one row of controls (wrapping on a phone): fewer blocks for each step to resend
        controls = st.container(horizontal=True, gap="medium", key="unit_controls")
        # The unit lives in the URL as unit=row,col, kept by hand: a bound slider would drop
        # the value 0 (its default) from the link.
        shared = widgets.parse_unit(st.query_params.get("unit"))
        for i, (k, n) in enumerate((("unit_row", oh), ("unit_col", ow))):
            fresh = k not in st.session_state
            if recentre or fresh or st.session_state[k] > n - 1:
                keep = fresh and shared is not None and shared[i] < n
                st.session_state[k] = shared[i] if keep else (n - 1) // 2
        ui = controls.slider("unit row", 0, oh - 1, key="unit_row") if oh > 1 else 0
        uj = controls.slider("unit column", 0, ow - 1, key="unit_col") if ow > 1 else 0
        st.query_params["unit"] = f"{ui},{uj}"
        spatial_in = a.input_spatial
        pic, credit = widgets.picture_widget(spatial_in, "pic", controls)
        # SVG shown as an image: a new unit or layer redraws it as a picture, where a Plotly
        # chart would be built again (about 50 ms of the browser's work per step)
        svg = caching.rf_svg(
            name, cfg, shape, layer, (ui, uj), caching.picture_key(pic), _picture=pic
        )
        view = compare.unit_view(rf, spatial_in, (ui, uj), (oh, ow))
        shifted = (
            "every unit here sees this same window (stride 0: the layer spreads fewer "
            "positions over more units)"
            if 0 in rf.stride
            else f"its neighbour's window is shifted by the effective stride {fmt.stride(rf)}"
        )
        caption = (
            f"Unit ({ui}, {uj}) sees input rows {view['window'][0][0]}..{view['window'][0][1]} "
            f"and columns {view['window'][1][0]}..{view['window'][1][1]}; {shifted}. "
            "Pixels outside the image fall on padding."
        )
        # the drawing, its caption and the photo's credit as one element: a step resends
        # one, not three
        st.html(lab_html.svg_figure_html(svg, caption, credit))


@st.fragment
def graph_section(a) -> None:
    """The data-flow graph; its own controls rerun only this part of the page."""
    with widgets.user_errors():
        st.subheader("Data-flow graph")
        auto = graph.default_depth(a)
        g1, g2 = st.columns([1, 2])
        pick = g1.selectbox(
            "graph depth",
            ["auto", *map(str, graph.depth_choices(a)), "all"],
            key="graph_depth",
            bind="query-params",
            help="Rows deeper than this are folded into their container (layer3, layer3.1) "
            "as one box that sums them; all: every row. Auto: "
            + ("every row" if auto is None else f"folded at {auto}")
            + f" for this model's {len(a.layers)} rows.",
        )
        color_by = g2.segmented_control(
            "colour by",
            graph.COLOR_BY,
            default="macs",
            key="graph_color",
            bind="query-params",
        )
        depth = auto if pick == "auto" else None if pick == "all" else int(pick)
        # The selected layer's box is outlined by the layer panel's style rule on its SVG id
        # (graph_outline_css), not in the DOT text: new text makes the browser lay out and
        # draw the whole graph again (a second on a big net), the same text leaves it as it is.
        # Drawn at its natural size in a scrolling box: stretched to the page's width, a
        # long chain of layers would be metres tall.
        st.container(height=720, key=f"graph_box_{depth_tag(depth)}").graphviz_chart(
            a.to_dot(depth, color_by or "macs"),
            width="content",
            alt=f"Data-flow graph of {a.model_name}",
        )
        st.caption(
            "One box per layer, or per container when folded; an arrow runs from each layer "
            "to the ones that read its output, so a residual add has two. The selected "
            "layer's box (or the container holding it) is outlined in red. Darker: more "
            "MACs, params or a larger RF; by productivity: green productive, yellow "
            "probably unproductive, red unproductive at this input."
        )


@st.fragment
def erf_panel(a, name: str, cfg, shape: tuple[int, ...], default_layer: str) -> None:
    """The effective RF of the selected layer, measured on request: its controls rerun only
    this, and a new layer does not (a measured ERF stays, named by its layer)."""
    layer = st.session_state.get("layer")
    if layer not in {r.name for r in a.layers}:
        layer = default_layer
    row = next(r for r in a.layers if r.name == layer)
    rf = row.receptive_field
    with widgets.user_errors():  # an ERF error leaves the rest of the page in place
        st.subheader("Effective receptive field")
        st.caption(
            "The theoretical RF says which pixels *can* influence a unit; the effective RF "
            "(Luo et al., 2016) measures how much each one does: the input gradient of the "
            "central unit, averaged over random inputs. It is roughly Gaussian and fills only "
            "part of the theoretical RF. Weights are random (seeded) unless you upload "
            "trained ones. It is measured for the layer selected above."
        )
        module_name = row.name if row.is_module else row.module
        e1, e2, e3 = st.columns([1, 2, 1])
        n_samples = e1.slider("samples", 1, 16, 4, key="erf_n", bind="query-params")
        # A file of this model's weights is at most this big; the browser and the page both
        # refuse a bigger one (the server holds at most uploads.MAX_UPLOAD_MB).
        weights_cap = caching.weights_bytes(name, cfg)
        upload = e2.file_uploader(
            "Trained weights for this model (.safetensors, matched to its state_dict)",
            type=["safetensors"],
            key="erf_weights",
            max_upload_size=max(1, min(uploads.MAX_UPLOAD_MB, -(-weights_cap // 2**20))),
        )
        if weights_cap > uploads.MAX_UPLOAD_MB * 2**20:
            e2.caption(
                f"This model's weights ({fmt.nbytes(weights_cap)}) are over the "
                f"{uploads.MAX_UPLOAD_MB} MB this server takes: random weights only."
            )
        if not uploads.within(upload, weights_cap, f"{name}'s weights"):
            upload = None
        too_much = None
        try:
            safety.check_erf_work(a, n_samples)
        except safety.BudgetError as e:
            too_much = str(e)
            st.caption(f"{too_much[0].upper()}{too_much[1:]}.")
        go = e3.button("Measure ERF", key="erf_go", disabled=too_much is not None)
        if go and (rf.size is None or rf.is_global):
            why = "it is unknown" if rf.size is None else "every unit sees the whole input"
            st.info(
                f"`{layer}` has no effective RF to measure: {why}. Pick a layer with a "
                "local receptive field."
            )
        elif go and too_much is None:
            weights = upload.getvalue() if upload is not None else None
            m, notes = caching.effective_rf(
                name, cfg, (1, *shape[1:]), module_name, n_samples, weights, progress=True
            )
            for note in notes:
                st.warning(widgets.md_text(note), icon=":material/info:")
            st.plotly_chart(erf_plots.erf_heatmap(m), key="erf_map")
            w50, w95 = m.width(0.5), m.width(0.95)
            st.caption(
                f"`{module_name}`: 50 % of the gradient mass within radius {m.radius(0.5):g} px "
                f"(the central {w50:g}x{w50:g} px square), 95 % within {m.radius(0.95):g} px "
                f"({w95:g}x{w95:g} px); ERF/RF width ratio (95 %) {m.ratio(0.95):.2f}."
            )


layer_panel(a, name, cfg, shape, default_layer)
graph_section(a)
erf_panel(a, name, cfg, shape, default_layer)

st.subheader("All layers")
saved = st.toggle(
    "saved for backward",
    key="saved",
    bind="query-params",
    help="Add the bytes each layer keeps for the backward pass in one training step at this "
    "input (train mode, its batch as shown), from cnnviz.training_step.",
)
step = None
if saved:
    with widgets.user_errors():
        step = caching.training_step(name, cfg, shape)
table = compare.layer_table(a, productivity=True, step=step)
st.dataframe(table, hide_index=True, key="table")
if step is not None:
    st.caption(
        f"Saved for backward in one training step of a {fmt.shape(shape)} input: "
        f"{fmt.nbytes(step.saved_bytes)} in all ({fmt.count(step.saved_bytes)} bytes)."
    )
