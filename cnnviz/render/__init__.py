"""Renderers: text tables now; plotly figures live beside them (no Streamlit import here)."""
