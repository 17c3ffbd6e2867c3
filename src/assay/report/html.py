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
from collections.abc import Iterable, Sequence

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
    threshold: float | None = None,
    width: int = 320,
    height: int = 90,
) -> str:
    """Stacked bars of kept (green) and rejected (red) counts per bin, with the threshold as
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
    if threshold is not None and hi > lo and lo <= threshold <= hi:
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
