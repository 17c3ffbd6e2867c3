"""The HTML report of a curation run: what each step did and why, from its output folder.

Built from the manifest and the Parquet shards of ``data/`` and ``rejected/``, reading only
the columns each section needs. Sections appear where the run has their data: the header
(recipe, versions, inputs, the accounting badge), the funnel, each numeric signal's
histogram split by the step's own decision with percentiles, a seeded sample of rejected
documents per step and reason with the signal values that decided them, the composition
by source before and after, and timings.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.compute as pc

from assay.documents import ID, REJECTED_BY, SOURCE, TEXT
from assay.report import html as h
from assay.report.rejected import format_signals, sample_rejected
from assay.report.shards import numeric_signals, read_columns

SAMPLE_CHARS = 800
BINS = 30


def header(manifest: dict[str, Any]) -> str:
    recipe = manifest["recipe"]
    digest = hashlib.sha256(orjson.dumps(recipe, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
    totals = manifest["totals"]
    ok = manifest["accounting"]["balanced"]
    badge = (
        f'<span class="badge {"ok" if ok else "bad"}">'
        f"{'nothing lost' if ok else 'the books do not balance'}: in {totals['in']:,} = kept "
        f"{totals['kept']:,} + rejected {totals['rejected']:,} + quarantined {totals['quarantined']:,}</span>"
    )
    inputs = h.table(
        ["input", "format", "bytes", "sha256"],
        [
            (i["url"], i["format"], f"{i['size']:,}", (i.get("sha256") or i.get("problem", ""))[:16])
            for i in manifest["inputs"]
        ],
    )
    return (
        f"<h1>{h.text(manifest['name'])}</h1>"
        f'<p class="muted">recipe {digest} · assay {h.text(manifest["assay_version"])} · seed '
        f"{manifest['seed']} · {h.text(manifest['created'])} · {manifest['wall_seconds']:.1f} s</p>"
        f"<p>{badge}</p>{inputs}"
    )


def funnel(manifest: dict[str, Any]) -> str:
    total_in = max(1, manifest["totals"]["in"])
    rows = []
    for step in manifest["steps"]:
        rows.append(
            (
                step["name"],
                f"{step['docs_in']:,}",
                f"{step['docs_kept']:,}",
                f"{step['docs_rejected']:,}",
                f"{100 * step['docs_rejected'] / max(1, step['docs_in']):.1f}%",
                f"{100 * step['docs_rejected'] / total_in:.1f}%",
                f"{step['bytes_in']:,} → {step['bytes_kept']:,}",
                f"{step['seconds']:.2f}",
            )
        )
        for reason, count in step["reasons"].items():
            rows.append(
                (
                    f"↳ {reason}",
                    "",
                    "",
                    f"{count:,}",
                    f"{100 * count / max(1, step['docs_in']):.1f}%",
                    f"{100 * count / total_in:.1f}%",
                    "",
                    "",
                )
            )
    return "<h2>Funnel</h2>" + h.table(
        [
            "step / reason",
            "in",
            "kept",
            "rejected",
            "of the step",
            "of the total",
            "bytes in → kept",
            "seconds",
        ],
        rows,
        attrs=' id="funnel"',
    )


def signals(output: Path, step_order: list[str]) -> str:
    kept_cols = numeric_signals(output / "data")
    rejected_cols = numeric_signals(output / "rejected")
    rank = {name: i for i, name in enumerate(step_order)}
    columns = sorted(set(kept_cols) | set(rejected_cols),
                     key=lambda c: (rank.get(c.split(".", 1)[0], len(rank)), c))
    if not columns:
        return ""
    kept = read_columns(output / "data", columns)
    rejected = read_columns(output / "rejected", [*columns, REJECTED_BY])
    figures = []
    constant = []
    for column in columns:
        step = column.split(".", 1)[0]
        own: list[np.ndarray] = []
        other: list[np.ndarray] = []
        for table, by_step in ((kept, None), (rejected, True)):
            if table is None or column not in table.column_names:
                continue
            values = table.column(column).to_numpy(zero_copy_only=False).astype(float)
            if by_step:
                mine = np.asarray(table.column(REJECTED_BY).to_pylist(), dtype=object) == step
                own.append(values[mine])
                other.append(values[~mine])
            else:
                other.append(values)
        passed = np.concatenate(other) if other else np.zeros(0)
        failed = np.concatenate(own) if own else np.zeros(0)
        passed, failed = passed[np.isfinite(passed)], failed[np.isfinite(failed)]
        every = np.concatenate([passed, failed])
        if not len(every):
            continue
        lo, hi = float(every.min()), float(every.max())
        if lo == hi:  # nothing to draw: one value for every document
            constant.append(f"{column} = {lo:.4g}")
            continue
        edges = np.linspace(lo, hi if hi > lo else lo + 1, BINS + 1)
        k, _ = np.histogram(passed, edges)
        r, _ = np.histogram(failed, edges)
        pct = np.percentile(every, [1, 10, 50, 90, 99])
        figures.append(
            f"<figure><figcaption>{h.text(column)}</figcaption>"
            f"{h.histogram_svg(edges.tolist(), k.tolist(), r.tolist())}"
            f'<div class="muted">passed {len(passed):,} · rejected by {h.text(step)} {len(failed):,} · '
            f"p1 {pct[0]:.4g} · p10 {pct[1]:.4g} · p50 {pct[2]:.4g} · p90 {pct[3]:.4g} · "
            f"p99 {pct[4]:.4g}</div>"
            "</figure>"
        )
    if not figures and not constant:
        return ""
    same = ""
    if constant:
        same = f'<p class="muted">the same for every document: {h.text(", ".join(constant))}</p>'
    return '<h2>Signals</h2><div class="grid">' + "".join(figures) + "</div>" + same


def rejected_samples(output: Path, seed: int, per_reason: int) -> str:
    groups = sample_rejected(output, seed, per_reason)
    if not groups:
        return ""
    parts = ["<h2>Rejected documents</h2>"]
    for group in groups:
        parts.append(f"<h3>{h.text(group.step)}: {h.text(group.reason)} ({group.total:,})</h3>")
        for record in group.records:
            body = record[TEXT] or ""
            more = f" … ({len(body):,} characters)" if len(body) > SAMPLE_CHARS else ""
            parts.append(
                f'<p><b>{h.text(record[ID])}</b> <span class="muted">{h.text(record[SOURCE])}'
                f" · {h.text(format_signals(group.signals(record)))}</span></p>"
                f'<div class="doc">{h.text(body[:SAMPLE_CHARS])}{h.text(more)}</div>'
            )
    return "".join(parts)


def composition(output: Path) -> str:
    kept = read_columns(output / "data", [SOURCE, TEXT])
    rejected = read_columns(output / "rejected", [SOURCE, TEXT])
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    for table, counters in ((kept, (before, after)), (rejected, (before,))):
        if table is None:
            continue
        sizes = pc.binary_length(table.column(TEXT)).to_numpy(zero_copy_only=False)
        for source, size in zip(table.column(SOURCE).to_pylist(), sizes, strict=True):
            for counter in counters:
                counter[source] += int(size)
    if not before:
        return ""
    total_before, total_after = max(1, sum(before.values())), max(1, sum(after.values()))
    rows = [
        (
            source,
            f"{before[source]:,}",
            f"{100 * before[source] / total_before:.1f}%",
            f"{after[source]:,}",
            f"{100 * after[source] / total_after:.1f}%",
        )
        for source in sorted(before, key=lambda s: -before[s])
    ]
    return "<h2>Composition by source (text bytes)</h2>" + h.table(
        ["source", "before", "share", "after", "share"], rows
    )


def timings(manifest: dict[str, Any]) -> str:
    executor = manifest["executor"]
    rows = [
        (s["name"], f"{s['seconds']:.2f}", f"{s['docs_in'] / s['seconds']:,.0f}" if s["seconds"] else "")
        for s in manifest["steps"]
    ]
    return (
        "<h2>Timings</h2>"
        + h.table(["step", "worker seconds", "documents/s"], rows)
        + f'<p class="muted">executor {h.text(executor.get("kind", "local"))} · '
        f"{executor.get('workers', '')} workers · {executor['shards']} shards · "
        f"{executor['stages']} stages · wall {manifest['wall_seconds']:.1f} s</p>"
    )


def run_report(output: Path, seed: int = 0, per_reason: int = 5) -> str:
    """The report of the finished run in ``output``, as one self-contained HTML page."""
    manifest = orjson.loads((output / "manifest.json").read_bytes())
    body = [
        header(manifest),
        funnel(manifest),
        signals(output, [step["name"] for step in manifest["steps"]]),
        rejected_samples(output, seed, per_reason),
        composition(output),
        timings(manifest),
    ]
    return h.page(f"assay report: {manifest['name']}", [part for part in body if part])
