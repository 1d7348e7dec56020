"""Text renderings of an :class:`~cnnviz.result.Analysis`: a readable table and markdown."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnviz.receptive import NO_INPUT

if TYPE_CHECKING:
    from cnnviz.result import Analysis, LayerRecord


def compact(n: float, unit: str = "") -> str:
    """Compact number: 61100840 -> '61.1M', 15470264320 -> '15.5G'.

    >>> compact(61100840), compact(15470264320), compact(999)
    ('61.1M', '15.5G', '999')
    """
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}{unit}"
    return f"{int(n)}{unit}"


def nbytes(n: int) -> str:
    """Bytes in binary units: 1536 -> '1.5 KiB'.

    >>> nbytes(1536)
    '1.5 KiB'
    """
    x = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(x) < 1024 or unit == "TiB":
            return f"{int(x)} B" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{n} B"


def rf_text(r: LayerRecord) -> str:
    if r.rf_size is None:
        return "-" if r.rf_reason == NO_INPUT else "?"
    if r.rf_global:
        return "global"
    size = "x".join(map(str, r.rf_size))
    return size if r.rf_aligned else size + "*"


def _shape(s) -> str:
    return "-" if s is None else "x".join(map(str, s))


COLUMNS = ("layer", "type", "output", "params", "MACs", "RF", "stride")


def rows(a: Analysis, depth: int | None = None) -> list[tuple[str, ...]]:
    out = []
    for r in a.layers:
        if depth is not None and r.module.count(".") + (1 if r.module else 0) > depth:
            continue
        stride = "x".join(map(str, r.rf_stride)) if r.rf_stride and not r.rf_global else ""
        out.append(
            (
                r.name,
                r.type,
                _shape(r.output_shape),
                f"{r.params:,}",
                compact(r.macs),
                rf_text(r),
                stride,
            )
        )
    return out


def totals(a: Analysis) -> list[tuple[str, str]]:
    rf = a.receptive_field()
    return [
        ("input", ", ".join(_shape(s) for s in a.input_shapes)),
        ("params", f"{a.total_params:,} ({compact(a.total_params)})"),
        ("trainable params", f"{a.trainable_params:,}"),
        ("MACs", f"{a.total_macs:,} ({compact(a.total_macs)})"),
        ("FLOPs (2 x MACs)", f"{a.total_flops:,} ({compact(a.total_flops)})"),
        ("other ops (bias, norm, act, pool, add)", f"{a.total_extra_ops:,}"),
        (
            "activations (all outputs / peak)",
            f"{nbytes(a.activation_bytes)} / {nbytes(a.peak_activation_bytes)}",
        ),
        ("params size", nbytes(a.param_bytes)),
        ("weighted depth", str(a.weighted_depth)),
        ("final receptive field", str(rf)),
    ]


def render_text(a: Analysis, depth: int | None = None) -> str:
    """A fixed-width table with totals below, like torchinfo's summary."""
    body = rows(a, depth)
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(COLUMNS)
    ]
    line = "  ".join(h.ljust(w) for h, w in zip(COLUMNS, widths, strict=True))
    sep = "-" * len(line)
    out = [f"{a.model_name} ({a.mode}, {a.dtype})", sep, line, sep]
    for r in body:
        out.append(
            "  ".join(
                c.ljust(w) if i < 3 else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    out.append(sep)
    k = max(len(k) for k, _ in totals(a))
    out += [f"{key.ljust(k)}  {val}" for key, val in totals(a)]
    if a.uncounted:
        out.append("uncounted ops: " + ", ".join(f"{u.name} x{u.count}" for u in a.uncounted))
    if any(not r.rf_aligned for r in a.layers):
        out.append("* unaligned: merged paths have different centres")
    return "\n".join(out)


def render_markdown(a: Analysis, depth: int | None = None) -> str:
    """The same table as GitHub markdown."""
    body = rows(a, depth)
    out = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(r) + " |" for r in body]
    out.append("")
    out += [f"- **{k}**: {v}" for k, v in totals(a)]
    return "\n".join(out)
