"""What the app's static HTML blocks share (:mod:`~cnnviz.render.lab_html`,
:mod:`~cnnviz.render.compare_html`): the font sizes, the text colours, the outer block, a
title and a named block of text. Every word is HTML at a fixed size, so it stays readable
when a block is as narrow as a phone (400 px); the markup is well-formed XML, so a test can
parse it.

>>> import xml.etree.ElementTree as ET
>>> root = ET.fromstring(panel("a <b> chart", heading(["Title"], "sub"), "chart"))
>>> root.get("data-name"), root.get("aria-label"), root[0].text
('chart', 'a <b> chart', 'Title')
"""

from __future__ import annotations

from html import escape

from cnnviz.render.palette import FONT_FAMILY

__all__ = ["FONT", "INK", "MUTED", "TITLE_FONT", "heading", "panel", "text_div"]

#: The smallest font (px) of labels and values: readable on a phone and on a projector.
FONT = 13
#: A block's title (px).
TITLE_FONT = FONT + 2
#: Text colours: Streamlit's text, and notes beside it.
INK, MUTED = "#31333F", "#666"


def panel(label: str, body: str, name: str) -> str:
    """The outer block: one font, a role and a name for screen readers."""
    return (
        f'<div data-name="{name}" role="img" aria-label="{escape(label)}" '
        f'style="font-family: {FONT_FAMILY}; '
        f'font-size: {FONT}px; color: {INK}; line-height: 1.35">{body}</div>'
    )


def heading(lines: list[str], sub: str) -> str:
    """A block's title (one or more lines) and a muted line below it."""
    head = "<br/>".join(escape(x) for x in lines)
    return (
        f'<div style="font-size: {TITLE_FONT}px; font-weight: 600">{head}</div>'
        f'<div style="font-size: 12px; color: {MUTED}; margin-bottom: 6px">{escape(sub)}</div>'
    )


def text_div(name: str, body: str, size: int = FONT, color: str = INK, extra: str = "") -> str:
    """A named block of text (``body`` is markup: escape what it takes from users)."""
    return (
        f'<div data-name="{name}" style="font-family: {FONT_FAMILY}; font-size: {size}px; '
        f'color: {color}; line-height: 1.5{extra}">{body}</div>'
    )
