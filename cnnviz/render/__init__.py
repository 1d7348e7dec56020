"""Renderers, none of which imports Streamlit: text tables (``table``), plotly figures
(``plots``, ``lab_plots``, ``erf_plots``, ``timing_plots``), static markup for the app's
slider steps (``rf_svg``, ``lab_html``), in one palette (``palette``)."""
