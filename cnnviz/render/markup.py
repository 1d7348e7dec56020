"""Text from users in Plotly figures.

Plotly draws titles, hover labels, legend entries, tick labels and annotations from a subset
of HTML (``<a href>``, ``<b>``, ``<br>``), so a spec named ``<a href='...'>log in</a>`` would
become a live link. Every text a figure takes from a model, a spec or a label (not the
figure's own markup) goes through :func:`plain`.
"""

from __future__ import annotations

import html


def plain(text: object) -> str:
    """``text`` as Plotly shows it literally: ``<``, ``>`` and ``&`` as entities.

    >>> plain("<a href='https://e.vil/'>log in</a> & more")
    "&lt;a href='https://e.vil/'&gt;log in&lt;/a&gt; &amp; more"
    """
    return html.escape(str(text), quote=False)
