"""The run report's dedup section: for each step that removed duplicates (rows with
``duplicate_of``), the cluster sizes, the largest clusters with their kept member and the
true Jaccard similarity of a sample of removed members, and the duplicate rate per source.

A cluster is a kept document and the rows removed as its duplicates. The Jaccard is of the
sets of word n-grams of the normalised texts (the words near-duplicate detection hashes), so
it shows what MinHash estimated.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.documents import DUPLICATE_OF, ID, REJECTED_BY, SOURCE, TEXT
from assay.report import html as h
from assay.report.shards import read_columns, take_rows
from assay.text.hashing import normalized_words

LARGEST = 3
MEMBERS = 4
SHOWN_CHARS = 300
SIZE_BINS = ((2, 2), (3, 3), (4, 4), (5, 9), (10, 99), (100, None))


def jaccard(a: str, b: str, n: int = 5) -> float:
    """Jaccard similarity of the word n-gram sets of two texts (a text of fewer than n
    words is one n-gram of all its words, as the shingling does)."""

    def grams(text: str) -> set[tuple[str, ...]]:
        words = normalized_words(text)
        return {tuple(words[i:i + n]) for i in range(max(1, len(words) - n + 1))} if words else set()

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y) if x or y else 1.0


def changed_text(step: dict[str, Any]) -> bool:
    """Whether a step (its manifest entry) rewrote some text: its bytes out differ from in."""
    return step["bytes_kept"] + step["bytes_rejected"] != step["bytes_in"]


def _size_table(sizes: list[int]) -> str:
    rows = []
    for lo, hi in SIZE_BINS:
        count = sum(1 for s in sizes if s >= lo and (hi is None or s <= hi))
        if count:
            rows.append((f"{lo}" if lo == hi else f"{lo}+" if hi is None else f"{lo}-{hi}", f"{count:,}"))
    return h.table(["documents in the cluster", "clusters"], rows)


def _values(table: pa.Table | None, column: str) -> list[Any]:
    return table.column(column).to_pylist() if table is not None else []


def _find(kept: pa.Table | None, rejected: pa.Table, ids: list[str]) -> dict[str, tuple[str, int]]:
    """Where each of a few ids is: ``{id: (folder, row)}`` (absent: not in this output)."""
    found: dict[str, tuple[str, int]] = {}
    for folder, table in (("rejected", rejected), ("data", kept)):
        if table is None or not ids:
            continue
        hits = pc.is_in(table.column(ID), value_set=pa.array(ids)).to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(hits)
        names = table.column(ID).take(pa.array(rows)).to_pylist()
        found.update({doc: (folder, int(row)) for row, doc in zip(rows, names, strict=True)})
    return found


def dedup_section(output: Path, steps: list[dict[str, Any]], recipe_steps: list[dict[str, Any]],
                  seed: int) -> str:
    """The section, or "" when no step removed duplicates."""
    rejected = read_columns(output / "rejected", [ID, SOURCE, REJECTED_BY, DUPLICATE_OF])
    if rejected is None or DUPLICATE_OF not in rejected.column_names:
        return ""
    kept = read_columns(output / "data", [ID, SOURCE])
    order = [s["name"] for s in steps]
    params = {name: p or {} for item in recipe_steps for name, p in item.items()}
    by = rejected.column(REJECTED_BY)
    of = rejected.column(DUPLICATE_OF)
    rng = np.random.default_rng(seed)
    parts = []
    for step in order:
        mask = pc.and_(pc.equal(by, step), pc.is_valid(of)).to_numpy(zero_copy_only=False)
        members = np.flatnonzero(mask)
        if not len(members):
            continue
        clusters: dict[str, list[int]] = {}
        for row, survivor in zip(members.tolist(), of.take(pa.array(members)).to_pylist(), strict=True):
            clusters.setdefault(survivor, []).append(row)
        sizes = sorted((len(rows) + 1 for rows in clusters.values()), reverse=True)
        # Duplicate rate per source, over the documents that reached the step.
        reached_rows = pc.is_in(by, value_set=pa.array(order[order.index(step):]))
        reached = Counter(_values(rejected.filter(reached_rows), SOURCE)) + Counter(_values(kept, SOURCE))
        removed = Counter(_values(rejected.take(pa.array(members)), SOURCE))
        rate = h.table(["source", "reached the step", "removed as duplicates", "rate"],
                       [(s, f"{reached[s]:,}", f"{removed[s]:,}",
                         f"{100 * removed[s] / max(1, reached[s]):.1f}%")
                        for s in sorted(reached, key=lambda s: (-removed[s], s))])
        largest = sorted(clusters.items(), key=lambda c: (-len(c[1]), c[0]))[:LARGEST]
        shown = []
        for survivor, rows in largest:
            picked = sorted(rng.choice(rows, size=min(MEMBERS, len(rows)), replace=False).tolist())
            shown.append((survivor, rows, picked))
        where = _find(kept, rejected, [survivor for survivor, _, _ in shown])
        wanted: dict[str, list[int]] = {"data": [], "rejected": []}
        for survivor, _, picked in shown:
            if survivor in where:
                wanted[where[survivor][0]].append(where[survivor][1])
            wanted["rejected"] += picked
        texts = {folder: take_rows(output / folder, rows, [ID, TEXT]) for folder, rows in wanted.items()}
        ngram = int(params.get(step, {}).get("ngram", 5))
        blocks = []
        for survivor, rows, picked in shown:
            home = where.get(survivor)
            base = str(texts[home[0]][home[1]][TEXT] or "") if home else None
            kept_text = (f'<div class="doc">{h.text(base[:SHOWN_CHARS])}</div>' if base is not None
                         else '<p class="muted">(kept in an earlier run, not in this output)</p>')
            lines = []
            for row in picked:
                text = str(texts["rejected"][row][TEXT] or "")
                similarity = f"Jaccard {jaccard(base, text, ngram):.3f}" if base is not None else ""
                lines.append((texts["rejected"][row][ID], text[:80].replace("\n", " "), similarity))
            blocks.append(f"<h4>{h.text(survivor)}: {len(rows) + 1:,} documents, this one kept</h4>"
                          + kept_text
                          + h.table(["removed (a sample)", "beginning",
                                     f"similarity to the kept one ({ngram}-grams)"], lines, left=2))
        later = [s["name"] for s in steps[order.index(step) + 1:] if changed_text(s)]
        caveat = (f'<p class="muted">the kept texts are as written, after {h.text(", ".join(later))} '
                  "changed them; the similarities are to those texts</p>" if later else "")
        parts.append(f"<h3>{h.text(step)}: {len(members):,} removed in {len(clusters):,} clusters</h3>"
                     + _size_table(sizes) + rate + caveat + "".join(blocks))
    return '<h2 id="dedup">Duplicates</h2>' + "".join(parts) if parts else ""
