"""The cnnviz web app's own code, imported as a package (``app/`` is on ``sys.path`` because
``streamlit run app/streamlit_app.py`` puts the entry script's folder there).

* :mod:`cnnviz_app.caching`: cached calls into the library (models, analyses, effective RFs).
* :mod:`cnnviz_app.widgets`: shared inputs (zoo options, input size) and the error box.
* ``pages/``: one thin script per page, routed by ``app/streamlit_app.py``.
"""
