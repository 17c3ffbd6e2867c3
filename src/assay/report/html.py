"""Writing HTML that a hostile document cannot turn against its reader.

Every string from a document, a recipe or a path goes through :func:`text`: control
characters and bidirectional overrides become visible escapes (``\\u202e``) first, then
``html.escape`` with quotes. The page carries a Content-Security-Policy that allows no
script and no network access at all (styles inline, images as ``data:`` only), so even a
string that escaped escaping could not run or phone home. Charts are inline SVG built from
numbers only.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from assay.io.ownership import GENERATOR_META
from assay.report.terminal import inert

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #1d232a; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6rem 0; } td, th { padding: .2rem .6rem; text-align: right; }
th { background: #f2f4f6; } td.l, th.l { text-align: left; } tr:nth-child(even) td { background: #fafbfc; }
.badge { display: inline-block; padding: .15rem .6rem; border-radius: 1rem; font-weight: 600; }
.ok { background: #d9f2e3; color: #0b5a2a; } .bad { background: #fbe0e0; color: #8a1010; }
.doc { white-space: pre-wrap; font: 12px/1.35 ui-monospace, monospace; background: #f7f7f9;
       border: 1px solid #e3e3e8; padding: .4rem; max-height: 12rem; overflow: auto; }
.muted { color: #6b7480; } figure { margin: .5rem 0 1.2rem; } figcaption { font-weight: 600; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: .2rem 1.4rem; }
.grid .muted { font-size: 12px; }
.sides { display: grid; grid-template-columns: 1fr 1fr; gap: 0 1.4rem; }
.add { background: #e3f6e8; } .del { background: #fbe5e5; }
"""


def text(value: object) -> str:
    """Any value as inert HTML text."""
    return html.escape(inert(str(value)), quote=True)


def page(title: str, body: Iterable[str]) -> str:
    """A whole self-contained page."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f'{GENERATOR_META}<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{text(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def table(header: Sequence[str], rows: Iterable[Sequence[object]], left: int = 1, attrs: str = "") -> str:
    """A table: the first ``left`` columns left-aligned (names), the rest right (numbers)."""

    def cells(tag: str, values: Sequence[object]) -> str:
        names = ' class="l"'
        return "".join(f"<{tag}{names if i < left else ''}>{text(v)}</{tag}>" for i, v in enumerate(values))

    body = "".join(f"<tr>{cells('td', row)}</tr>" for row in rows)
    return f"<table{attrs}><thead><tr>{cells('th', header)}</tr></thead><tbody>{body}</tbody></table>"


def histogram_svg(
    edges: Sequence[float],
    kept: Sequence[int],
    rejected: Sequence[int],
    thresholds: Sequence[float] = (),
    width: int = 320,
    height: int = 90,
) -> str:
    """Stacked bars of kept (green) and rejected (red) counts per bin, with each threshold as
    a dashed line; numbers only, so nothing in it comes from a document."""
    bins = len(kept)
    top = max([k + r for k, r in zip(kept, rejected, strict=True)] + [1])
    bar = width / max(bins, 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 16}" '
        f'viewBox="0 0 {width} {height + 16}" role="img">'
    ]
    for i, (k, r) in enumerate(zip(kept, rejected, strict=True)):
        x = i * bar
        hk, hr = height * k / top, height * r / top
        if hr:
            parts.append(
                f'<rect x="{x:.1f}" y="{height - hr:.1f}" width="{bar - 1:.1f}" height="{hr:.1f}" '
                f'fill="#d9534f"><title>rejected {r}</title></rect>'
            )
        if hk:
            parts.append(
                f'<rect x="{x:.1f}" y="{height - hr - hk:.1f}" width="{bar - 1:.1f}" '
                f'height="{hk:.1f}" fill="#3c9a5f"><title>kept {k}</title></rect>'
            )
    lo, hi = float(edges[0]), float(edges[-1])
    for threshold in thresholds:
        if not (hi > lo and lo <= threshold <= hi):
            continue
        tx = width * (threshold - lo) / (hi - lo)
        parts.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="0" y2="{height}" stroke="#222" '
            f'stroke-dasharray="4 3"><title>threshold {threshold:g}</title></line>'
        )
    parts.append(
        f'<text x="0" y="{height + 13}" font-size="11">{lo:.4g}</text>'
        f'<text x="{width}" y="{height + 13}" font-size="11" text-anchor="end">{hi:.4g}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
_COLOUR = re.compile(r"#[0-9a-fA-F]{3,8}")


@dataclass(frozen=True)
class Series:
    """One thing drawn on a :func:`chart_svg`: a ``line`` (gaps where a value is not finite),
    ``points``, or a ``band`` between ``y`` (low) and ``high``. ``label`` names it in the
    legend and the points' tooltips (escaped); ``colour`` is ``#rgb`` or ``#rrggbb``."""

    x: Sequence[float]
    y: Sequence[float]
    kind: str = "line"
    colour: str = PALETTE[0]
    label: str = ""
    high: Sequence[float] | None = None
    dashed: bool = False


def chart_svg(
    series: Sequence[Series],
    *,
    log_x: bool = False,
    log_y: bool = False,
    x_label: str = "",
    y_label: str = "",
    width: int = 560,
    height: int = 300,
) -> str:
    """Lines, points and bands on shared axes (log10 where asked), with ticks, grid and a
    legend; values that are not finite (or not positive on a log axis) are left out. Only
    numbers and escaped labels go into it."""
    for s in series:
        if s.kind not in ("line", "points", "band") or not _COLOUR.fullmatch(s.colour):
            raise ValueError(f"series kind {s.kind!r} / colour {s.colour!r}")
    legend: dict[tuple[str, str], Series] = {}  # one entry per label and colour, the first drawn
    for s in series:
        if s.label and s.kind != "band":
            legend.setdefault((s.label, s.colour), s)
    rows = (len(legend) + 1) // 2
    left, right, top, bottom = 62, 12, 10, 40
    height += 14 * rows
    pw, ph = width - left - right, height - top - bottom - 14 * rows

    def scaled(values: Sequence[float] | None, log: bool) -> np.ndarray:
        v = np.asarray(values if values is not None else [], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(v > 0, np.log10(np.where(v > 0, v, 1.0)), np.nan) if log else v

    xs = [scaled(s.x, log_x) for s in series]
    ys = [scaled(s.y, log_y) for s in series]
    highs = [scaled(s.high, log_y) for s in series]
    x_lo, x_hi = _domain(np.concatenate([np.zeros(0), *xs]), pad=0.02)
    y_lo, y_hi = _domain(np.concatenate([np.zeros(0), *ys, *highs]), pad=0.05)

    def px(v: np.ndarray) -> np.ndarray:
        return left + pw * (v - x_lo) / (x_hi - x_lo)

    def py(v: np.ndarray) -> np.ndarray:
        return top + ph * (1.0 - (v - y_lo) / (y_hi - y_lo))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" font-size="11">'
        f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#bbb"/>'
    ]
    for value in _ticks(x_lo, x_hi, log_x):
        x = float(px(np.array(value)))
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="#eee"/>'
            f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle">{_tick_label(value, log_x)}</text>'
        )
    for value in _ticks(y_lo, y_hi, log_y):
        y = float(py(np.array(value)))
        parts.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{_tick_label(value, log_y)}</text>'
        )
    parts.append(
        f'<text x="{left + pw / 2:.1f}" y="{top + ph + 32}" text-anchor="middle">{text(x_label)}</text>'
        f'<text x="12" y="{top + ph / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {top + ph / 2:.1f})">{text(y_label)}</text>'
    )
    for s, x, y, hi in zip(series, xs, ys, highs, strict=True):
        parts.append(_draw(s, px(x), py(y), py(hi) if s.kind == "band" else None))
    for i, s in enumerate(legend.values()):  # below the axes, two columns
        x, y = left + (i % 2) * pw / 2, top + ph + bottom + 12 + 14 * (i // 2)
        mark = (
            f'<circle cx="{x + 6:.1f}" cy="{y - 4}" r="3" fill="{s.colour}"/>'
            if s.kind == "points"
            else f'<line x1="{x:.1f}" x2="{x + 12:.1f}" y1="{y - 4}" y2="{y - 4}" stroke="{s.colour}" '
            'stroke-width="2"/>'
        )
        parts.append(f'{mark}<text x="{x + 18:.1f}" y="{y}">{text(s.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _domain(values: np.ndarray, pad: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return 0.0, 1.0
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo < 1e-12:
        return lo - 0.5, hi + 0.5
    return lo - pad * (hi - lo), hi + pad * (hi - lo)


def _ticks(lo: float, hi: float, log: bool) -> list[float]:
    """Tick positions (in the axis' own units: log10 on a log axis): decades, else 1-2-5 steps."""
    if log and hi - lo >= 1.0:
        every = max(1, math.ceil((hi - lo) / 8))  # at most about 8 labelled decades
        return [float(k) for k in range(math.ceil(lo), math.floor(hi) + 1) if k % every == 0]
    if log:  # less than a decade: round values, placed on the log scale
        return [math.log10(v) for v in _ticks(10**lo, 10**hi, log=False) if v > 0]
    raw = (hi - lo) / 5
    step = min((m * 10 ** math.floor(math.log10(raw)) for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))
    return [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]


def _tick_label(value: float, log: bool) -> str:
    if log:
        return f"{10**value:.3g}"
    return f"{0.0 if abs(value) < 1e-12 else value:.4g}"


def _draw(s: Series, x: np.ndarray, y: np.ndarray, high: np.ndarray | None) -> str:
    if s.kind == "points":
        return "".join(
            f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{s.colour}" fill-opacity="0.85">'
            f"<title>{text(s.label)} {vx:.4g}, {vy:.4g}</title></circle>"
            for a, b, vx, vy in zip(x, y, s.x, s.y, strict=True)
            if np.isfinite(a) and np.isfinite(b)
        )
    if s.kind == "band" and high is not None:
        ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(high)
        if ok.sum() < 2:
            return ""
        pts = [*zip(x[ok], y[ok], strict=True), *reversed(list(zip(x[ok], high[ok], strict=True)))]
        coords = " ".join(f"{a:.1f},{b:.1f}" for a, b in pts)
        return f'<polygon points="{coords}" fill="{s.colour}" fill-opacity="0.18" stroke="none"/>'
    path, pen = [], "M"
    for a, b in zip(x, y, strict=True):
        if np.isfinite(a) and np.isfinite(b):
            path.append(f"{pen}{a:.1f} {b:.1f}")
            pen = "L"
        else:
            pen = "M"
    dash = ' stroke-dasharray="5 4"' if s.dashed else ""
    if not path:
        return ""
    return f'<path d="{" ".join(path)}" fill="none" stroke="{s.colour}" stroke-width="1.6"{dash}/>'
