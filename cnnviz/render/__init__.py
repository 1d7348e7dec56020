"""Renderers, none of which imports Streamlit: text tables (``table``), plotly figures
(``plots``, ``lab_plots``, ``erf_plots``, ``timing_plots``), static markup for the app's
slider steps and comparisons (``rf_svg``, ``lab_html``, ``compare_html``, sharing
``html_parts``), in one palette (``palette``)."""
