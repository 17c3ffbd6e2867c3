"""The HTML report of a curation run: what each step did and why, from its output folder.

Built from the manifest and the Parquet shards of ``data/`` and ``rejected/``, reading only
the columns each section needs, a shard or a column at a time. Sections appear where the run
has their data: the header (recipe, versions, inputs, the accounting badge), the funnel,
the signals with the recipe's thresholds and the documents nearest them (``signals.py``),
a seeded sample of rejected documents per step and reason, the duplicates (``dedup.py``),
the composition by source and language before and after, the global steps' findings
(``artefacts.py``) and timings.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc

from assay.documents import ID, SOURCE, TEXT
from assay.report import html as h
from assay.report.artefacts import artefacts_section
from assay.report.dedup import dedup_section
from assay.report.rejected import format_signals, sample_rejected
from assay.report.shards import iter_tables, shards
from assay.report.signals import borderline_section, recipe_thresholds, signals_section

SAMPLE_CHARS = 800


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
        f'<h1 id="header">{h.text(manifest["name"])}</h1>'
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
    return '<h2 id="funnel-section">Funnel</h2>' + h.table(
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


def rejected_samples(output: Path, seed: int, per_reason: int) -> str:
    groups = sample_rejected(output, seed, per_reason)
    if not groups:
        return ""
    parts = ['<h2 id="rejected">Rejected documents</h2>']
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


LANGUAGE = "language.language"  # the language step's label, where it ran
UNIDENTIFIED = "(not identified)"


def _diff_html(diff: str) -> str:
    lines = []
    for line in diff.split("\n"):
        kind = {"+": "add", "-": "del", "@": "muted"}.get(line[:1], "")
        lines.append(f'<span class="{kind}">{h.text(line)}</span>' if kind else h.text(line))
    return '<div class="doc">' + "\n".join(lines) + "</div>"


def changes(manifest: dict[str, Any]) -> str:
    """Per step that rewrote kept documents: how many, and a sample of its changes."""
    parts = []
    for step in manifest["steps"]:
        if not step.get("changed"):
            continue
        parts.append(f"<h3>{h.text(step['name'])}: {step['changed']:,} kept documents rewritten "
                     f"({100 * step['changed'] / max(1, step['docs_kept']):.1f}% of those it kept)</h3>")
        for change in step.get("changes", []):
            parts.append(f"<p><b>{h.text(change['id'])}</b> <span class=\"muted\">"
                         f"{change['chars_before']:,} → {change['chars_after']:,} characters</span></p>")
            if "diff" in change:
                parts.append(_diff_html(change["diff"]))
            else:
                before, after = (f'<div class="doc">{h.text(change[k])}</div>' for k in ("before", "after"))
                parts.append(f'<div class="sides"><div><b>before</b>{before}</div>'
                             f"<div><b>after</b>{after}</div></div>")
    if not parts:
        return ""
    return ('<h2 id="changes">Rewritten documents</h2><p class="muted">a sample of each step\'s changes to '
            "the documents it kept (the same sample whatever the sharding)</p>" + "".join(parts))


def composition(output: Path) -> str:
    """Documents and text bytes per source, and per language where a language step ran,
    before the run (every document read) and after (the kept ones); one shard at a time."""
    # tallies[by][measure][stage][key]: by source or language, documents or bytes, before or after
    tallies = {by: {m: (Counter(), Counter()) for m in ("docs", "bytes")} for by in ("source", "language")}
    for folder in ("data", "rejected"):
        for _, table in iter_tables(shards(output / folder), (SOURCE, TEXT, LANGUAGE), batch_rows=1):
            names = set(table.column_names)
            sizes = pc.binary_length(table.column(TEXT)).to_numpy(zero_copy_only=False).tolist()
            keys = {"source": table.column(SOURCE).to_pylist(),
                    "language": (table.column(LANGUAGE).to_pylist() if LANGUAGE in names
                                 else [UNIDENTIFIED] * table.num_rows)}
            stages = (0, 1) if folder == "data" else (0,)
            for by, values in keys.items():
                for value, size in zip(values, sizes, strict=True):
                    for stage in stages:
                        tallies[by]["docs"][stage][value or UNIDENTIFIED] += 1
                        tallies[by]["bytes"][stage][value or UNIDENTIFIED] += size
    if not tallies["source"]["docs"][0]:
        return ""
    parts = ['<h2 id="composition">Composition</h2>']
    for by, tally in tallies.items():
        before = tally["docs"][0]
        if by == "language" and set(before) == {UNIDENTIFIED}:
            continue
        rows = []
        for key in sorted(before, key=lambda k: (-before[k], k)):
            row = [key]
            for measure in ("docs", "bytes"):
                for stage in (0, 1):
                    count, total = tally[measure][stage][key], max(1, sum(tally[measure][stage].values()))
                    row += [f"{count:,}", f"{100 * count / total:.1f}%"]
            rows.append(row)
        parts.append(f"<h3>by {by}</h3>" + h.table(
            [by, "documents before", "share", "after", "share", "text bytes before", "share", "after",
             "share"], rows))
    return "".join(parts)


def timings(manifest: dict[str, Any]) -> str:
    executor = manifest["executor"]
    rows = [
        (s["name"], f"{s['seconds']:.2f}", f"{s['docs_in'] / s['seconds']:,.0f}" if s["seconds"] else "")
        for s in manifest["steps"]
    ]
    return (
        '<h2 id="timings">Timings</h2>'
        + h.table(["step", "worker seconds", "documents/s"], rows)
        + f'<p class="muted">executor {h.text(executor.get("kind", "local"))} · '
        f"{executor.get('workers', '')} workers · {executor['shards']} shards · "
        f"{executor['stages']} stages · wall {manifest['wall_seconds']:.1f} s</p>"
    )


def run_report(output: Path, seed: int = 0, per_reason: int = 5) -> str:
    """The report of the finished run in ``output``, as one self-contained HTML page."""
    manifest = orjson.loads((output / "manifest.json").read_bytes())
    order = [step["name"] for step in manifest["steps"]]
    recipe_steps = manifest["recipe"].get("steps", [])
    signal_part, borders = signals_section(output, order, recipe_thresholds(recipe_steps), per_side=2)
    body = [
        header(manifest),
        funnel(manifest),
        signal_part,
        borderline_section(output, borders),
        rejected_samples(output, seed, per_reason),
        changes(manifest),
        dedup_section(output, manifest["steps"], recipe_steps, seed),
        composition(output),
        artefacts_section(manifest["steps"]),
        timings(manifest),
    ]
    return h.page(f"assay report: {manifest['name']}", [part for part in body if part])
