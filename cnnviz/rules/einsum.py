"""``torch.einsum``: the output and MACs from PyTorch itself, the window when space passes through.

The output comes from PyTorch's meta kernel and the MACs from FlopCounterMode (its FLOPs
halved), so both are exactly what an einsum without a rule would get. The window is known when
the einsum leaves space alone: one operand carries the input's spatial dims and each of its
spatial letters appears once in the output and in no other operand (``"nchw,cd->ndhw"``, a
1x1 convolution). Then every output unit sees what its input unit saw, hulled over the
channels it mixes (Araujo et al., Distill 2019: a 1x1 layer leaves r, S and P unchanged).
Other einsums (a spatial letter summed, or shared with a second operand, as in attention)
get an unknown window that says why.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from cnnviz.receptive import CHAN, FOLD, Flow, Unknown, hull
from cnnviz.rules.registry import Out, RuleError, register

_UNKNOWN = "no receptive-field rule for `einsum` {eq!r}: {why}"


def parse(equation: str, n: int) -> tuple[list[str], str] | None:
    """The input terms and the output term of an einsum equation, the implicit output (letters
    that appear once, in alphabetical order) made explicit; None for an ellipsis.

    >>> parse("nchw,cd->ndhw", 2), parse("ij,jk", 2)
    ((['nchw', 'cd'], 'ndhw'), (['ij', 'jk'], 'ik'))
    """
    eq = equation.replace(" ", "")
    if "." in eq:
        return None
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != n:
        raise RuleError(f"einsum {equation!r} names {len(terms)} operands, got {n}")
    if "->" not in eq:
        letters = "".join(terms)
        rhs = "".join(sorted(c for c in set(letters) if letters.count(c) == 1))
    return terms, rhs


def _flow(eq: str, terms: list[str], rhs: str, flows: list[Flow]) -> tuple[tuple, object]:
    """Output dim labels and window, or labels and an :class:`Unknown` saying why."""
    live = [i for i, f in enumerate(flows) if f.window is not None]
    if not live:
        return (CHAN,) * len(rhs), None
    spatial = [i for i in live if any(isinstance(d, int) or d == FOLD for d in flows[i].dims)]
    plain = (CHAN,) * len(rhs)

    def unknown(why: str, i: int) -> tuple[tuple, object]:
        w = flows[i].window
        return plain, w if isinstance(w, Unknown) else Unknown(_UNKNOWN.format(eq=eq, why=why))

    if len(spatial) > 1:
        return unknown("more than one operand runs along the input's spatial axes", spatial[0])
    if any(len(set(t)) != len(t) for t in terms) or len(set(rhs)) != len(rhs):
        return unknown("a letter repeats within one term (a diagonal)", live[0])
    labels: dict[str, object] = {}
    if spatial:
        a = spatial[0]
        others = "".join(t for i, t in enumerate(terms) if i != a)
        for letter, label in zip(terms[a], flows[a].dims, strict=True):
            moves = isinstance(label, int) or label == FOLD
            if moves and (letter not in rhs or letter in others):
                why = f"the spatial letter {letter!r} is summed or shared with another operand"
                return unknown(why, a)
            labels[letter] = label
    dims = tuple(labels.get(c, CHAN) for c in rhs)
    window = hull([flows[i].window for i in live], "an einsum")  # channels mixed: one hull
    return dims, window


@register(torch.einsum, kind="linear", name="einsum")
def einsum_rule(ctx, equation, *operands):
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    metas = [t if t.is_meta else t.to("meta") for t in operands]
    try:
        with FlopCounterMode(display=False) as counter:
            value = torch.einsum(equation, *metas)
    except RuntimeError as e:
        raise RuleError(f"einsum {equation!r}: {str(e).splitlines()[0]}") from None
    macs = counter.get_total_flops() // 2
    if not any(value.untyped_storage()._cdata == t.untyped_storage()._cdata for t in metas):
        ctx.adopt(value)  # a new tensor, not a view of an operand (a permuting einsum)
    flows = [ctx.flow(t) for t in operands]
    parsed = parse(equation, len(operands))
    if parsed is None:
        dims = (CHAN,) * value.dim()
        live = [f.window for f in flows if f.window is not None]
        reason = _UNKNOWN.format(eq=equation, why="an ellipsis")
        window = (live[0] if isinstance(live[0], Unknown) else Unknown(reason)) if live else None
    else:
        dims, window = _flow(equation, *parsed, flows)
    depth = max((f.depth for f in flows), default=0) + (1 if macs else 0)
    return Out(value, Flow(dims, window, None, depth), macs, 0)
