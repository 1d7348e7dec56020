"""cnnviz web app: the router and the shared sidebar. Pages live in app_pages/ and stay thin."""

import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).parent))  # so pages can `import common`

st.set_page_config(
    page_title="cnnviz", page_icon=str(Path(__file__).parent / "favicon.png"), layout="wide"
)

pages = {
    "Explore": [
        st.Page(
            "app_pages/compare.py",
            title="Compare architectures",
            icon=":material/leaderboard:",
            url_path="compare",
            default=True,
        ),
        st.Page(
            "app_pages/explorer.py",
            title="Layer explorer",
            icon=":material/layers:",
            url_path="explorer",
        ),
    ],
    "Labs": [
        st.Page(
            "app_pages/rf_lab.py",
            title="Receptive-field lab",
            icon=":material/center_focus_strong:",
            url_path="rf-lab",
        ),
        st.Page(
            "app_pages/shortcut_lab.py",
            title="ResNet shortcut lab",
            icon=":material/alt_route:",
            url_path="shortcut-lab",
        ),
    ],
    "Build": [
        st.Page(
            "app_pages/custom.py",
            title="Custom model",
            icon=":material/construction:",
            url_path="custom",
        ),
    ],
    "Measure": [
        st.Page("app_pages/timing.py", title="Timing", icon=":material/timer:", url_path="timing"),
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
st.navigation(pages).run()
