"""Receptive-field lab: n stacked kxk convolutions against one large kernel."""

import streamlit as st
from cnnviz_app import caching, widgets

from cnnviz import fmt, labs
from cnnviz.render import erf_plots, lab_html, rf_svg

st.title("Receptive-field lab")
st.caption(
    "VGG uses only 3x3 convolutions: two stacked 3x3 convs see a 5x5 region, three see 7x7. "
    "They do it with fewer weights (n x 9C² against K²C²) and with a non-linearity after "
    "each conv, so the stack can model more than one big linear filter."
)

opts = labs.valid_rf_lab_options()


# The stack's panel (table, bars, squares) is one HTML block, not Plotly charts and a dozen
# elements: a slider step lays it out again, where Streamlit would build new charts and update
# every element (the browser's work per step grows with their number). It is the same for
# every visitor: one build per setting, shared by all sessions.
@st.cache_resource(max_entries=64, show_spinner=False)
def _panel(n: int, k: int, ch: int, d: int, s: int) -> str:
    return lab_html.stack_panel_html(labs.rf_lab(n, k, ch, dilation=d, stride=s))


@st.cache_resource(max_entries=2, show_spinner=False)
def _growth_figure(depths: tuple[int, ...]):
    return erf_plots.erf_growth_plot(caching.erf_growth(depths))


@st.cache_resource(max_entries=32, show_spinner=False)
def _field_svg(n: int, k: int, ch: int, d: int, s: int, side: int, photo: bool, _pic) -> str:
    """The stack's field on the sample photo (``_pic``, the same for a given ``side``) or, when
    not ``photo``, on a plain grid."""
    return _draw_field(labs.rf_lab(n, k, ch, dilation=d, stride=s).stack.field, side, _pic)


def _draw_field(field, side: int, pic) -> str:
    """The central unit's window on a side x side input, as SVG: a slider step redraws it as
    an image, where a Plotly chart would be built again (about 50 ms of the browser's work
    per step)."""
    # "same" padding: each conv of stride s keeps ceil(in / s) positions
    out = -(-side // field.stride[0])
    centre = ((out - 1) // 2, (out - 1) // 2)
    return rf_svg.rf_on_input_svg(field, (side, side), centre, picture=pic)


def _pair(col, n: int, k: int, channels: int) -> None:
    lab = labs.rf_lab(n, k, channels)
    big = lab.single.kernel_size
    h = lab.input_size[-1]
    col.markdown(f"**{n} x {k}x{k} vs one {big}x{big}**")
    col.metric("RF", f"{lab.stack.rf} = {lab.single.rf}")
    for label, attr, help_text in (
        ("weights", "weights", None),
        ("MACs", "macs", f"Multiply-accumulates on a {h}x{h} input with C = {channels}."),
    ):
        ours, theirs = getattr(lab.stack, attr), getattr(lab.single, attr)
        col.metric(
            label,
            fmt.count(ours),
            f"{fmt.count(ours - theirs)} vs {fmt.count(theirs)}",
            delta_color="inverse",
            help=help_text,
        )
    col.metric(
        "non-linearities",
        lab.stack.nonlinearities,
        f"+{lab.stack.nonlinearities - lab.single.nonlinearities} vs one kernel",
    )


@st.fragment
def picture_section(lab: labs.RFLab) -> None:
    """The stack's field on a picture; its own widgets (input size, the picture) rerun only
    this part of the page (so it shows its own errors: the page's error box is not around a
    fragment's rerun)."""
    st.subheader("The stack's field on a picture")
    with widgets.user_errors():
        _picture(lab)


def _picture(lab: labs.RFLab) -> None:
    p1, p2 = st.columns([1, 3])
    side = p1.select_slider(
        "input size", (32, 64, 96, 128, 224), value=64, key="pic_size", bind="query-params"
    )
    field = lab.stack.field
    with p1:
        pic, credit = widgets.picture_widget((side, side), "lab_pic")
    if field is not None and field.known and not field.is_global:
        if st.session_state.get("lab_pic") == "my picture":  # a visitor's picture: not kept
            svg = _draw_field(field, side, pic)
        else:  # the sample photo or none: the same for everyone
            args = (lab.n, lab.k, lab.channels, lab.dilation, lab.stride, side, pic is not None)
            svg = _field_svg(*args, pic)
        verdict = (
            f"larger than the {side}x{side} input: the last convs add no context here"
            if side < lab.productive_from
            else f"within the {side}x{side} input"
        )
        caption = (
            f"The central unit of {lab.stack.label} sees {fmt.size(field.size)} pixels, "
            f"{verdict}. Dashed: its neighbour, one effective stride over; shaded: padding."
        )
        # the drawing, its caption and the photo's credit as one element: a slider step
        # resends one, not three
        p2.html(lab_html.svg_figure_html(svg, caption, credit))


@st.fragment
def own_stack() -> None:
    """The stack built from the sliders: its widgets rerun only this part of the page, not
    the classic cases or the ERF growth figure above and below it (so it shows its own
    errors: the page's error box is not around a fragment's rerun)."""
    with widgets.user_errors():
        # one horizontal container, not five columns: a step resends one block, not six
        row = st.container(horizontal=True, gap="medium")
        n = row.slider("n (layers)", *opts.n, 3, key="n", bind="query-params")
        k = row.select_slider(
            "k (kernel)", opts.kernel_sizes, value=3, key="k", bind="query-params"
        )
        ch = row.select_slider("channels C", opts.channels, value=64, key="c", bind="query-params")
        d = row.slider("dilation", *opts.dilation, 1, key="d", bind="query-params")
        s = row.slider("stride", *opts.stride, 1, key="s", bind="query-params")
        if s > 1 and n > opts.max_strided_n:
            side = labs.rf_lab_input_size(n, s)
            st.warning(
                f"With stride {s}, n stops at {opts.max_strided_n}: {n} strided convs would need a "
                f"{side:,}x{side:,} input ({s}^{n}) to end on a whole grid. Showing "
                f"n = {opts.max_strided_n}.",
                icon=":material/info:",
            )
            n = opts.max_strided_n
        lab = labs.rf_lab(n, k, ch, dilation=d, stride=s)

        st.html(_panel(n, k, ch, d, s))  # found by its data-name="stack panel"
        picture_section(lab)


with widgets.user_errors():
    st.subheader("The two classic cases (C = 64)")
    a, b = st.columns(2)
    _pair(a, 2, 3, 64)
    _pair(b, 3, 3, 64)

    st.subheader("Try your own stack")
    own_stack()

    st.subheader("Theoretical against effective RF as depth grows")
    st.plotly_chart(_growth_figure((1, 2, 3, 4, 6, 8, 12, 16)), key="erf_growth")
    st.caption(
        "n stacked 3x3 convs with ReLUs and random weights: the theoretical RF grows by 2 "
        "pixels per layer, the effective RF (the input gradient's spread) only like √n "
        "(Luo et al., 2016), so deep stacks use the middle of their window most."
    )
