"""cnnviz web app: the router. Pages live in app_pages/ and stay thin."""

import streamlit as st

st.set_page_config(page_title="cnnviz", page_icon="🔍", layout="wide")

pages = [st.Page("app_pages/home.py", title="Overview", icon="🏠", default=True)]
st.navigation(pages).run()
