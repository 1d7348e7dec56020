"""Custom model: a declarative spec (YAML / JSON or a layer table), built and analyzed.

The app never runs user code: specs are parsed with safe loaders and built by cnnviz.spec;
the analysis runs on the meta device, so only the spec's size is limited.
"""

from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from cnnviz_app import caching, uploads, widgets

from cnnviz import compare, fmt, spec
from cnnviz.render import plots
from cnnviz.result import Analysis


@dataclass(frozen=True)
class Views:
    """What the page shows for one valid spec text."""

    analysis: Analysis
    bars: go.Figure
    growth: go.Figure
    layers: pd.DataFrame
    yaml: str
    json: str
    token: str  # the spec in the page's link


# One per distinct text, shared by every rerun and visitor as it is (frozen results the page
# only reads: st.cache_data would unpickle them on each hit, the figures validated again),
# so a rerun that kept the text (a tab, a download) builds no figure or table again.
@st.cache_resource(max_entries=32, show_spinner=False)
def _views(text: str) -> Views:
    checked = caching.parsed_spec(text)
    a = caching.spec_analysis(text)
    return Views(
        analysis=a,
        bars=plots.layer_bars(a, "params"),
        growth=plots.rf_growth_plot(a),
        layers=compare.layer_table(a),
        yaml=spec.dumps(checked),
        json=spec.dumps(checked, "json"),
        token=spec.to_url(checked),
    )


st.title("Custom model")
st.caption(
    "Describe a network as a spec: conv, pool, norm, activation, residual add, concat "
    "branches, linear. cnnviz builds it (no code runs) and analyzes it."
)

examples = spec.examples()
MAX_UPLOAD = spec.LIMITS.text_bytes
MAX_URL_TOKEN = 4000  # characters; browsers and proxies handle URLs of this size


# The script never writes a live widget's key. A file upload sends two reruns back to back;
# a value written by the first run, cut short before it reached the browser, came back stale
# with the second: the example menu's callback fired and an example replaced the visitor's spec,
# or the editor's old text returned. So a widget that must show a value the page chose is a new
# widget under a new key, made with that value; a stale value for the old key is ignored.
def _put_text(text: str) -> None:
    """Show ``text`` in a new editor."""
    st.session_state["editor"] = (st.session_state.get("editor", (-1, ""))[0] + 1, text)


def _editor_key() -> str:
    return f"spec_text_{st.session_state['editor'][0]}"


def _text() -> str:
    """The editor's text: what the visitor typed, else what the page put there."""
    return st.session_state.get(_editor_key(), st.session_state["editor"][1])


def _apply_table() -> None:
    rows, shape, name = st.session_state["edited_rows"]
    try:
        _put_text(spec.dumps(spec.from_table(rows, shape, name)))
    except spec.SpecError as e:
        st.session_state["table_error"] = str(e)


def _load_example(key: str) -> None:
    if st.session_state[key] is not None:
        _put_text(examples[st.session_state[key]])


if "editor" not in st.session_state:
    token = st.query_params.get("spec")
    first = next(iter(examples.values()))
    if token:
        try:
            first = spec.dumps(spec.from_url(token))
        except spec.SpecError as e:
            st.error(f"The shared link's spec is unreadable: {widgets.md_text(e)}")
    _put_text(first)

c1, c2 = st.columns([1, 1])
upload = c2.file_uploader(
    "…or upload a spec (.yaml / .json)",
    type=["yaml", "yml", "json"],
    key="upload",
    max_upload_size=1,  # MB, the widget's smallest; the spec limit is checked below
    help=f"Specs are at most {MAX_UPLOAD // 1024} KB of text.",
)
if upload is not None and st.session_state.get("uploaded") != upload.file_id:
    st.session_state["uploaded"] = upload.file_id
    # The browser enforces the widget's 1 MB; a file sent past it is refused here by its size.
    if uploads.within(upload, MAX_UPLOAD, "specs"):
        try:
            _put_text(spec.decode(upload.getvalue()))
        except spec.SpecError as e:
            st.error(
                f"{widgets.md_text(upload.name)}: {widgets.md_text(e.reason)}. The editor "
                "keeps its spec.",
                icon=":material/warning:",
            )
        uploads.drop(upload)  # the text is in the editor now; the server need not keep it

# The example menu shows the example the editor holds, or nothing once the text is the user's.
held = next((k for k, v in examples.items() if v == _text()), None)
generation, shown = st.session_state.get("example_menu", (0, held))
if st.session_state.get(f"example_{generation}", shown) != held:
    generation, shown = generation + 1, held
st.session_state["example_menu"] = (generation, shown)
c1.selectbox(
    "Start from an example",
    list(examples),
    index=None if shown is None else list(examples).index(shown),
    key=f"example_{generation}",
    on_change=_load_example,
    args=(f"example_{generation}",),
    placeholder="choose an example…",
)

if "table_error" in st.session_state:
    st.error(
        f"**Layer table:** {widgets.md_text(st.session_state.pop('table_error'))}",
        icon=":material/warning:",
    )
tab_text, tab_table = st.tabs(["Spec text", "Layer table"])
with tab_text:
    # One character past the limit is kept (here and by the server), so an oversized paste
    # reads "more than the limit" at once instead of carrying megabytes to the server.
    text = st.text_area(
        "YAML or JSON",
        _text(),
        key=_editor_key(),
        height=360,
        max_chars=spec.LIMITS.text_bytes + 1,
    )
    # Kept outside the widget too: Streamlit forgets a widget's value on a page that is left.
    st.session_state["editor"] = (st.session_state["editor"][0], text)
    st.caption(
        f"At most {spec.LIMITS.text_bytes // 1024} KiB of text: the editor does not take a "
        "longer paste (it keeps its text); a longer file is refused with its size."
    )
checked, spec_error = None, None
try:  # parsed and validated once per text; the table, downloads and link all read it
    checked = caching.parsed_spec(text)
except spec.SpecError as e:
    spec_error = e
with tab_table, widgets.user_errors():
    if checked is None:
        st.info("The layer table shows a valid spec: fix the error in the spec text first.")
    else:
        try:
            rows = spec.to_table(checked)
        except spec.SpecError as e:
            st.info(str(e))
        else:
            edited = st.data_editor(rows, num_rows="dynamic", key="table", hide_index=True)
            # The callback runs before the next script run, when spec_text may still change.
            st.session_state["edited_rows"] = (list(edited), list(checked.input), checked.name)
            st.button("Apply table to the spec", key="apply", on_click=_apply_table)

if spec_error is not None:
    where = widgets.md_text(f"`{spec_error.path or 'top level'}`")  # a path holds user keys
    st.error(
        f"**Spec error** at {where}: {widgets.md_text(spec_error.reason)}",
        icon=":material/warning:",
    )
    st.stop()
with widgets.user_errors():
    v = _views(text)
    a = v.analysis
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Parameters", fmt.compact(a.total_params), help=fmt.count(a.total_params))
    m2.metric("MACs", fmt.compact(a.total_macs), help=fmt.count(a.total_macs))
    m3.metric("Weighted depth", a.weighted_depth)
    final = a.receptive_field()
    m4.metric("Final RF", fmt.rf(final), help=fmt.rf_help(final))
    for note in a.notes:  # the conventions behind these numbers, for this model
        st.caption(f"Note: {widgets.md_text(note)}.")
    st.plotly_chart(v.bars, key="bars")
    st.plotly_chart(v.growth, key="growth")
    widgets.table(v.layers, {"output": "output shape", "stride": "RF stride"})

    d1, d2, d3 = st.columns(3)
    # Made when clicked (a callable): a file sent with every run was dropped on the server by
    # the next run, and the browser, which checks each download link as it draws it, got a
    # 404 for the old one when two runs came back to back (seen in CI's busy pass). A click
    # needs no rerun either.
    for col, kind, text in ((d1, "YAML", v.yaml), (d2, "JSON", v.json)):
        col.download_button(
            f"Download {kind}",
            lambda text=text: text,
            f"cnnviz_spec.{kind.lower()}",
            mime="text/plain",
            key=f"dl_{kind.lower()}",
            on_click="ignore",
        )
    # Keep the URL in step with the spec, so a reload or a shared link shows this model.
    if len(v.token) <= MAX_URL_TOKEN:
        if st.query_params.get("spec") != v.token:
            st.query_params["spec"] = v.token
        d3.caption("The page URL holds this spec: copy it from the address bar to share it.")
    else:
        st.query_params.pop("spec", None)
        d3.caption("This spec is too long for a link: share the YAML file instead.")
