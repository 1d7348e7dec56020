"""Renderers, none of which imports Streamlit: text tables (``table``), plotly figures
(``plots``, ``lab_plots``, ``erf_plots``, ``timing_plots``) in one palette (``palette``)."""
