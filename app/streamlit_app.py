"""cnnviz web app: the router and the shared sidebar. Pages live in cnnviz_app/pages/ and stay
thin; their shared code is the package cnnviz_app (``streamlit run`` puts this folder on
sys.path, so pages import it by name)."""

from pathlib import Path

import streamlit as st
from cnnviz_app import priority, uploads, widgets

priority.lower_this_thread()  # below the server's event loop, if $CNNVIZ_PAGE_NICE asks

st.set_page_config(
    page_title="cnnviz", page_icon=str(Path(__file__).parent / "favicon.png"), layout="wide"
)

pages = {
    "Explore": [
        # The default page is served at "/" (Streamlit empties its url_path), so the same
        # script is registered again, hidden, at its own path: /compare?... links work too.
        # The default's url_path only names it (two pages may not share one).
        st.Page(
            "cnnviz_app/pages/compare.py",
            title="Compare architectures",
            icon=":material/leaderboard:",
            url_path="compare-home",
            default=True,
        ),
        st.Page(
            "cnnviz_app/pages/compare.py",
            title="Compare architectures",
            icon=":material/leaderboard:",
            url_path="compare",
            visibility="hidden",
        ),
        st.Page(
            "cnnviz_app/pages/explorer.py",
            title="Layer explorer",
            icon=":material/layers:",
            url_path="explorer",
        ),
    ],
    "Labs": [
        st.Page(
            "cnnviz_app/pages/rf_lab.py",
            title="Receptive-field lab",
            icon=":material/center_focus_strong:",
            url_path="rf-lab",
        ),
        st.Page(
            "cnnviz_app/pages/shortcut_lab.py",
            title="ResNet shortcut lab",
            icon=":material/alt_route:",
            url_path="shortcut-lab",
        ),
    ],
    "Build": [
        st.Page(
            "cnnviz_app/pages/custom.py",
            title="Custom model",
            icon=":material/construction:",
            url_path="custom",
        ),
    ],
    "Measure": [
        st.Page(
            "cnnviz_app/pages/timing.py", title="Timing", icon=":material/timer:", url_path="timing"
        ),
    ],
}
with st.sidebar:
    st.markdown(
        "**cnnviz** shows why CNN architectures look the way they do, measured on real "
        "PyTorch models traced on the meta device (no weights, no memory).\n\n"
        "MACs count multiply-accumulates of conv and linear layers (no bias); "
        "FLOPs = 2 x MACs. Other arithmetic (bias, norm, activations, pooling, adds) is "
        "counted apart."
    )
uploads.guard()  # the upload caps hold on the server too (cnnviz_app/uploads.py)
notes = st.container()  # above the page: link values the page could not use
link = widgets.LinkCheck().before()
try:
    st.navigation(pages).run()
finally:
    link.after(notes)
