"""The RF lab's stack panel as static HTML and inline SVG, for the app's slider steps: the
table of the stack against one kernel, the comparison bars, where the stack stops adding
context, and the nested squares of its receptive field (:func:`stack_panel_html`); and an
SVG drawing with its caption as one block (:func:`svg_figure_html`, the RF lab's and the
Layer explorer's field on the input).

They show what :func:`cnnviz.render.lab_plots.compare_bars` and
:func:`~cnnviz.render.lab_plots.rf_steps_figure` show, with the same colours and names. A
changed Plotly chart is a new chart in Streamlit: each n or k step built both again with
``Plotly.newPlot``, most of the browser's work per step. This markup is only laid out again.
It is responsive without scaling its text: the bars are percentages of the column's width,
the squares are an SVG image that scales, and every word is HTML at a fixed size, readable on
a phone. A hover on a bar shows its exact value. The markup is well-formed XML, so a test can
parse it. The whole panel is one block on purpose: the browser's work per slider step grows
with the number of Streamlit elements it updates, not with the size of their markup.

>>> from cnnviz.labs import rf_lab
>>> html = compare_bars_html(rf_lab(2, 3, 64))
>>> html.startswith("<div"), 'title="2 x 3x3 conv: 73,728 weights"' in html
(True, True)
"""

from __future__ import annotations

import base64
from html import escape

from cnnviz import fmt
from cnnviz.labs import RFLab
from cnnviz.render.html_parts import MUTED, heading, panel, text_div
from cnnviz.render.lab_plots import (
    BAR_METRICS,
    bar_label,
    bar_names,
    single_name,
    step_name,
)
from cnnviz.render.palette import BLUES, COLORS, FONT_FAMILY, rgba

__all__ = [
    "BAR_SHARE",
    "compare_bars_html",
    "productive_html",
    "rf_steps_html",
    "stack_panel_html",
    "stack_table_html",
    "svg_figure_html",
]

#: The longer bar's share of the row (%): the rest holds its value label.
BAR_SHARE = 62.5


def compare_bars_html(lab: RFLab) -> str:
    """Weights, MACs and non-linearities of the stack vs the single conv: one metric per
    block, a horizontal bar per side, its value beside it.

    Bar lengths are ``value / max * BAR_SHARE`` % of the row; each bar's ``title`` gives the
    exact value, its label the same value, compact past 7 digits.

    >>> from cnnviz.labs import rf_lab
    >>> html = compare_bars_html(rf_lab(2, 3, 64))
    >>> 'data-value="73728"' in html and 'data-value="102400"' in html  # 2*9*64*64, 25*64*64
    True
    """
    names = bar_names(lab)
    sides = [(lab.stack, COLORS["stack"]), (lab.single, COLORS["single"])]
    rows: list[str] = []
    for title, attr, unit in BAR_METRICS:
        vals = [getattr(side, attr) for side, _ in sides]
        top = max(vals) or 1
        rows.append(
            f'<div data-name="metric" style="grid-column: 1 / -1; font-weight: 600; '
            f'font-size: 14px; margin-top: 8px">{title}</div>'
        )
        for name, (side, color), v in zip(names, sides, vals, strict=True):
            label = bar_label(v)
            tip = f"{side.label}: {fmt.count(v)} {unit}"
            rows.append(
                f'<div data-name="name" style="white-space: nowrap">{escape(name)}</div>'
                f'<div title="{escape(tip)}" style="display: flex; align-items: center; '
                f'gap: 6px; min-width: 0">'
                f'<div data-name="bar" data-value="{v}" style="flex: none; height: 20px; '
                f'width: {round(v / top * BAR_SHARE, 3)}%; background: {color}"></div>'
                f'<span data-name="value" style="white-space: nowrap">{label}</span></div>'
            )
    body = heading(
        [lab.stack.label, f"vs {lab.single.label}"],
        f"C = {lab.channels}, weight ratio {lab.weight_ratio:.3g}",
    ) + (
        '<div style="display: grid; grid-template-columns: max-content 1fr; '
        f'gap: 4px 10px; align-items: center">{"".join(rows)}</div>'
    )
    label = f"{lab.stack.label} vs {lab.single.label}: weights, MACs, non-linearities"
    return panel(label, body, "bars")


def _rect(
    side: float, fill: str, stroke: str, width: float, name: str, tip: str, attrs: str = ""
) -> str:
    h = side / 2
    return (
        f'<rect data-name="{name}" {attrs}x="{-h:g}" y="{-h:g}" width="{side:g}" height="{side:g}" '
        f'fill="{fill}" stroke="{stroke}" stroke-width="{width}" '
        f'vector-effect="non-scaling-stroke"><title>{escape(tip)}</title></rect>'
    )


def _pixel_grid(side: int) -> str:
    """One line per pixel edge over a side x side square centred on 0."""
    h = side / 2
    d = "".join(f"M{-h + j:g} {-h:g}V{h:g}M{-h:g} {-h + j:g}H{h:g}" for j in range(side + 1))
    return (
        f'<path data-name="pixel grid" d="{d}" stroke="rgba(0,0,0,0.12)" stroke-width="0.6" '
        'fill="none" vector-effect="non-scaling-stroke"/>'
    )


def _square_svg(view: int, label: str, shapes: list[str]) -> str:
    """A square SVG over ``view`` x ``view`` pixels centred on 0, as an image that fills its
    column (Streamlit's HTML sanitizer keeps no inline SVG; an image of it passes)."""
    h = view / 2
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="{-h:g} {-h:g} {view:g} {view:g}" '
        f'width="400" height="400">{"".join(shapes)}</svg>'
    )
    return svg_img(svg, label, "squares", "width: 100%")


def svg_img(svg: str, alt: str, name: str, width: str) -> str:
    uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
    return (
        f'<img data-name="{name}" src="{uri}" alt="{escape(alt)}" '
        f'style="display: block; {width}; height: auto"/>'
    )


def svg_figure_html(svg: str, caption: str, credit: str = "") -> str:
    """An SVG drawing (as an image: Streamlit's HTML sanitizer keeps no inline SVG) with its
    caption below, and the credit of a picture in it on a line of its own, as one block: for
    a page that would otherwise send an image and two captions on every step.

    >>> html = svg_figure_html('<svg xmlns="http://www.w3.org/2000/svg"/>', "a <b> field")
    >>> html.startswith('<figure data-name="field"'), "a &lt;b&gt; field</figcaption>" in html
    (True, True)
    >>> '<span data-name="credit"' in svg_figure_html("<svg/>", "a field", "Photo: CC0")
    True
    """
    if credit:
        credit = f'<br/><span data-name="credit" style="font-size: 12px">{escape(credit)}</span>'
    return (
        '<figure data-name="field" style="margin: 0">'
        + svg_img(svg, caption, "drawing", "max-width: 100%")
        + f'<figcaption style="font-family: {FONT_FAMILY}; font-size: 14px; color: {MUTED}; '
        f'margin-top: 6px">{escape(caption)}{credit}</figcaption></figure>'
    )


def _swatch(fill: str, stroke: str, name: str, round_: bool = False) -> str:
    shape = "border-radius: 50%; width: 12px" if round_ else "width: 14px"
    return (
        f'<span data-name="legend" style="display: inline-flex; align-items: center; gap: 5px; '
        f'margin-right: 14px; white-space: nowrap"><span style="{shape}; height: 12px; '
        f"background: {fill}; border: 1.5px solid {stroke}; "
        f'box-sizing: border-box"></span>{escape(name)}</span>'
    )


def rf_steps_html(lab: RFLab) -> str:
    """Nested squares: the RF of one output pixel after each conv of the stack (1x1, 3x3,
    5x5, ...), beside the single K x K kernel with the same RF, both at one scale; a pixel
    grid when K <= 41, and for dilation > 1 dots on the pixels the stack reads.

    >>> from cnnviz.labs import rf_lab
    >>> import base64, re
    >>> html = rf_steps_html(rf_lab(3, 3))
    >>> stack, single = [base64.b64decode(u).decode() for u in re.findall('base64,([^"]+)', html)]
    >>> [stack.count(f'data-rf="{s}"') for s in (1, 3, 5, 7)]  # the pixel, then each conv
    [1, 1, 1, 1]
    """
    big = lab.single.rf
    view = max(big, *(s.rf for s in lab.steps)) + 2  # a pixel's margin around the largest
    stack: list[str] = []
    legend: list[str] = []
    steps = sorted(lab.steps, key=lambda s: -s.rf)
    for i, st in enumerate(steps):
        name = step_name(st)
        if st.layer:
            fill, stroke = BLUES[min(i, len(BLUES) - 1)], COLORS["stack"]
        else:
            fill, stroke = COLORS["ink"], COLORS["ink"]
        stack.append(_rect(st.rf, fill, stroke, 1.5, "step", name, f'data-rf="{st.rf}" '))
        legend.append(_swatch(fill, stroke, name))
    single = [
        _rect(big, rgba(COLORS["single"], 0.18), COLORS["single"], 2, "single", single_name(lab)),
        _rect(1, COLORS["ink"], COLORS["ink"], 1, "centre", step_name(lab.steps[0])),
    ]
    legend.append(_swatch(rgba(COLORS["single"], 0.18), COLORS["single"], single_name(lab)))
    if big <= 41:  # finer grids would be a grey blur
        stack.append(_pixel_grid(big))
        single.append(_pixel_grid(big))
    if lab.dilation > 1 and big <= 61:
        half = (big - 1) // 2
        taps = [v for v in range(-half, half + 1) if v % lab.dilation == 0]
        r = max(0.15, big / 130)  # about 2 screen px at the column's usual width
        dots = "".join(f'<circle cx="{x}" cy="{y}" r="{r:.3g}"/>' for x in taps for y in taps)
        what = f"pixels the stack reads (1 in {lab.dilation} per axis)"
        stack.append(f'<g data-name="taps" fill="{COLORS["ink"]}"><title>{what}</title>{dots}</g>')
        legend.append(_swatch(COLORS["ink"], COLORS["ink"], what, round_=True))

    def column(side, shapes: list[str]) -> str:
        relus = f"{side.nonlinearities} ReLU" + ("s" if side.nonlinearities != 1 else "")
        return (
            '<div style="flex: 1 1 0; min-width: 0; text-align: center">'
            f'<div style="font-weight: 600">{escape(side.label)}</div>'
            + _square_svg(view, f"{side.label}: receptive field {big}x{big}", shapes)
            + f'<div style="color: {MUTED}">{fmt.count(side.weights)} weights · {relus}</div>'
            "</div>"
        )

    body = (
        heading(
            ["Receptive field of one output pixel"],
            f"{lab.stack.label} vs one {big}x{big} conv",
        )
        + '<div style="display: flex; gap: 16px; max-width: 760px">'
        + column(lab.stack, stack)
        + column(lab.single, single)
        + "</div>"
        + f'<div style="margin-top: 8px; font-size: 12px; line-height: 1.8">{"".join(legend)}'
        "</div>"
    )
    label = f"Receptive field of one output pixel: {lab.stack.label} vs one conv"
    return panel(label, body, "steps")


def stack_table_html(lab: RFLab) -> str:
    """The stack against the single conv, a row per quantity of :meth:`RFLab.table` (each
    cell's exact number in ``data-value``), then the arithmetic behind them and the lab's notes.

    >>> from cnnviz.labs import rf_lab
    >>> import xml.etree.ElementTree as ET
    >>> root = ET.fromstring(stack_table_html(rf_lab(2, 3, 64)))
    >>> row = root.find(".//tr[@data-quantity='weights']")
    >>> [td.get("data-value") for td in row.iter("td")]  # 2*3*3*64*64, 5*5*64*64
    ['73728', '102400']
    """
    t = lab.table()
    cell = "padding: 2px 10px; border-bottom: 1px solid rgba(49,51,63,0.1)"
    head = "".join(
        f'<th scope="col" style="{cell}; text-align: right">{escape(str(c))}</th>'
        for c in t.columns
    )
    rows = []
    for quantity, values in zip(t.index, t.to_numpy().tolist(), strict=True):
        cells = "".join(
            f'<td data-value="{escape(str(v))}" style="{cell}; text-align: right">'
            f"{fmt.count(v) if isinstance(v, int) else escape(str(v))}</td>"
            for v in values
        )
        rows.append(
            f'<tr data-name="row" data-quantity="{escape(str(quantity))}">'
            f'<th scope="row" style="{cell}; text-align: left; font-weight: 400">'
            f"{escape(str(quantity))}</th>{cells}</tr>"
        )
    table = (
        '<div style="overflow-x: auto"><table data-name="stack table" '
        'style="border-collapse: collapse; margin: 4px 0 8px">'
        f'<thead><tr><th style="{cell}"></th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )
    formulas = "".join(
        f'<li><code style="font-size: 12px; white-space: pre-wrap">{escape(x)}</code></li>'
        for x in lab.formulas
    )
    notes = "".join(text_div("note", escape(x), 12, MUTED, "; margin-top: 4px") for x in lab.notes)
    body = (
        '<div style="font-weight: 600">Stack</div>'
        + table
        + f'<ul data-name="formulas" style="margin: 0; padding-left: 18px">{formulas}</ul>'
        + notes
    )
    return text_div("stack", body)


def productive_html(lab: RFLab) -> str:
    """Where the stack stops adding context: the note when its RF exceeds the lab's input, the
    input size below which its last conv is unproductive, and each conv's own limit.

    >>> from cnnviz.labs import rf_lab
    >>> import xml.etree.ElementTree as ET
    >>> root = ET.fromstring(productive_html(rf_lab(4, 3)))  # RF 1 + 4*(3-1) = 9
    >>> root.find(".//*[@data-name='productive from']").get("data-value")
    '9'
    >>> "conv 2 (3x3) below 5 px" in root.find(".//*[@data-name='why']").text  # 1 + 2*(3-1)
    True
    """
    side = lab.productive_from
    help_ = (
        "Below this input size the stack's last conv (and the single conv) is unproductive: "
        "its receptive field is larger than the input."
    )
    parts = []
    if lab.rf_exceeds_input:
        parts.append(
            '<div data-name="exceeds" role="note" style="background: rgba(255,227,18,0.1); '
            'color: #926C05; border-radius: 8px; padding: 8px 12px; margin: 10px 0 4px">'
            f"{escape(lab.rf_exceeds_input)}</div>"
        )
    parts.append(
        f'<div title="{escape(help_)}" style="margin-top: 10px">last conv unproductive below</div>'
        f'<div data-name="productive from" data-value="{side}" style="font-size: 28px; '
        f'line-height: 1.3">{escape(fmt.size((side, side)))}</div>'
    )
    if side > 1:
        k = lab.single.kernel_size
        each = ", ".join(f"{conv.label} below {conv.rf} px" for conv in lab.steps[1:])
        why = (
            f"As the input shrinks below {fmt.size((side, side))} pixels, the stack's last convs "
            "stop adding context: their receptive field is larger than the input, so they are "
            "unproductive there (Richter et al., ICMLA 2021), and so is the single "
            f"{k}x{k} conv. Each conv stops below its own RF: {each}."
        )
    else:
        why = "1x1 convs never see past one pixel: they stay productive at any size."
    parts.append(text_div("why", escape(why), 12, MUTED))
    return text_div("productive", "".join(parts))


def stack_panel_html(lab: RFLab) -> str:
    """The RF lab's whole stack panel as one block: the table (:func:`stack_table_html`) beside
    the bars (:func:`compare_bars_html`) and :func:`productive_html`, side by side where the
    page is wide and one above the other on a phone, then the squares (:func:`rf_steps_html`).

    >>> from cnnviz.labs import rf_lab
    >>> import xml.etree.ElementTree as ET
    >>> root = ET.fromstring(stack_panel_html(rf_lab(3, 3)))
    >>> parts = ("stack", "bars", "productive", "steps")
    >>> [e.get("data-name") for e in root.iter() if e.get("data-name") in parts]
    ['stack', 'bars', 'productive', 'steps']
    """
    half = 'style="flex: 1 1 320px; min-width: 0"'
    top = (
        '<div style="display: flex; flex-wrap: wrap; gap: 16px 32px">'
        f"<div {half}>{stack_table_html(lab)}</div>"
        f"<div {half}>{compare_bars_html(lab)}{productive_html(lab)}</div>"
        "</div>"
    )
    note = "Each layer adds (k-1) x dilation x (stride so far) pixels to the window."
    return (
        f'<div data-name="stack panel">{top}'
        f'<div style="height: 16px"></div>{rf_steps_html(lab)}'
        + text_div("steps note", escape(note), 12, MUTED)
        + "</div>"
    )
