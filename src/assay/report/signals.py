"""The run report's view of the signals: a histogram per numeric signal, split by the step's
own decision, with the recipe's thresholds drawn and percentiles; and the documents nearest
each threshold on both sides, with their values.

Reads one signal column at a time (8 bytes a row) and, for the documents shown, only their
rows; the thresholds are the steps' own (:meth:`assay.steps.base.Step.thresholds`), built
from the recipe the manifest holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assay.documents import ID, REASON, REJECTED_BY, SOURCE, TEXT
from assay.report import html as h
from assay.report.shards import iter_tables, numbers, numeric_signals, shards, take_rows
from assay.steps import step_class
from assay.steps.base import Threshold

BINS = 30
BORDER_CHARS = 400
FOLDERS = ("data", "rejected")


def recipe_thresholds(recipe_steps: list[dict[str, Any]]) -> dict[str, list[Threshold]]:
    """Each step's thresholds as the recipe set them (a step that cannot be rebuilt here, for
    a file it names that is gone, has none to draw)."""
    found: dict[str, list[Threshold]] = {}
    for item in recipe_steps:
        ((name, params),) = item.items()
        try:
            found[name] = step_class(name)(**(params or {})).thresholds()
        except Exception:  # a report draws what it can; the run is over
            found[name] = []
    return found


@dataclass
class Border:
    """The documents nearest one threshold: ``(folder, row, value)`` on each side."""

    step: str
    threshold: Threshold
    passing: list[tuple[str, int, float]]
    failing: list[tuple[str, int, float]]


SAMPLE_ROWS = 100_000  # values kept per signal for its histogram and percentiles


def _range(values: np.ndarray, thresholds: list[Threshold]) -> tuple[float, float]:
    """The histogram's range: the 1st to 99th percentile (a few outliers would squeeze every
    other bar into one), widened to each threshold that lies among the values."""
    lo, hi = (float(v) for v in np.percentile(values, [1, 99]))
    if lo == hi:
        lo, hi = float(values.min()), float(values.max())
    for t in thresholds:
        if values.min() <= t.value <= values.max():
            lo, hi = min(lo, t.value), max(hi, t.value)
    return lo, hi


@dataclass
class _Column:
    """What one pass over the shards keeps of one signal: every ``stride``-th value, split by
    the step's own decision, the counts, and the rows nearest each threshold on each side."""

    step: str
    thresholds: list[Threshold]
    passed: list[np.ndarray] = field(default_factory=list)
    failed: list[np.ndarray] = field(default_factory=list)
    n_passed: int = 0
    n_failed: int = 0
    near: dict[tuple[int, bool], list[tuple[float, str, int, float]]] = field(default_factory=dict)

    def add(self, folder: str, first: int, values: np.ndarray, mine: np.ndarray, stride: int, k: int) -> None:
        finite = np.isfinite(values)
        picked = np.zeros(len(values), dtype=bool)
        picked[(-first) % stride::stride] = True  # every stride-th row of the folder
        for rows, into in ((finite & ~mine, self.passed), (finite & mine, self.failed)):
            into.append(values[rows & picked])
        self.n_passed += int((finite & ~mine).sum())
        self.n_failed += int((finite & mine).sum())
        for i, t in enumerate(self.thresholds):
            with np.errstate(invalid="ignore"):
                fails = t.fails(values)
            for side in (False, True):
                rows = np.flatnonzero(finite & (fails == side))
                distance = np.abs(values[rows] - t.value)
                if len(rows) > k:  # the k nearest, then in order of distance
                    closest = np.argpartition(distance, k)[:k]
                    rows, distance = rows[closest], distance[closest]
                nearest = rows[np.argsort(distance, kind="stable")]
                merged = self.near.setdefault((i, side), []) + [
                    (abs(float(values[r]) - t.value), folder, first + int(r), float(values[r]))
                    for r in nearest]
                self.near[(i, side)] = sorted(merged, key=lambda c: c[0])[:k]


def signals_section(output: Path, step_order: list[str], thresholds: dict[str, list[Threshold]],
                    per_side: int) -> tuple[str, list[Border]]:
    """The histograms' HTML, and the documents nearest each threshold (fetched later). One
    pass over the shards' signal columns; above ``SAMPLE_ROWS`` rows the histograms and
    percentiles are drawn from every n-th row (the counts and borderline rows stay exact)."""
    folders = {folder: shards(output / folder) for folder in FOLDERS}
    columns = sorted(set(numeric_signals(folders["data"])) | set(numeric_signals(folders["rejected"])),
                     key=lambda c: (step_order.index(c.split(".", 1)[0])
                                    if c.split(".", 1)[0] in step_order else len(step_order), c))
    if not columns:
        return "", []
    stride = max(1, -(-sum(s.rows for f in folders.values() for s in f) // SAMPLE_ROWS))
    state = {}
    for column in columns:
        step, signal = column.split(".", 1)
        state[column] = _Column(step, [t for t in thresholds.get(step, []) if t.signal == signal])
    for folder, folder_shards in folders.items():
        for first, table in iter_tables(folder_shards, [*columns, REJECTED_BY]):
            by = (np.asarray(table.column(REJECTED_BY).to_pylist(), dtype=object)
                  if REJECTED_BY in table.column_names else np.full(table.num_rows, None, dtype=object))
            for column, col in state.items():
                values = numbers(table, column)
                col.add(folder, first, values, by == col.step, stride, per_side)
    figures, constant, borders = [], [], []
    for column, col in state.items():
        passed = np.concatenate(col.passed) if col.passed else np.zeros(0)
        failed = np.concatenate(col.failed) if col.failed else np.zeros(0)
        every = np.concatenate([passed, failed])
        if not len(every):
            continue
        drawn = col.thresholds
        if every.min() == every.max() and not drawn:  # nothing to draw: one value for every document
            constant.append(f"{column} = {every[0]:.4g}")
            continue
        lo, hi = _range(every, drawn)
        edges = np.linspace(lo, hi if hi > lo else lo + 1, BINS + 1)
        k, _ = np.histogram(np.clip(passed, edges[0], edges[-1]), edges)
        r, _ = np.histogram(np.clip(failed, edges[0], edges[-1]), edges)
        pct = np.percentile(every, [1, 10, 50, 90, 99])
        rules = " · ".join(f"{t.reason} if {t.op} {t.value:g}" for t in drawn)
        sampled = f" · drawn from 1 row in {stride:,}" if stride > 1 else ""
        figures.append(
            f"<figure><figcaption>{h.text(column)}</figcaption>"
            f"{h.histogram_svg(edges.tolist(), k.tolist(), r.tolist(), [t.value for t in drawn])}"
            f'<div class="muted">passed {col.n_passed:,} · rejected by {h.text(col.step)} {col.n_failed:,}'
            + (f" · rejected: {h.text(rules)}" if rules else "")
            + f" · p1 {pct[0]:.4g} · p10 {pct[1]:.4g} · p50 {pct[2]:.4g} · p90 {pct[3]:.4g} · "
            f"p99 {pct[4]:.4g} (outside p1-p99 in the end bars){sampled}</div></figure>"
        )
        for i, t in enumerate(drawn):
            sides = [[(folder, row, value) for _, folder, row, value in col.near.get((i, fails), [])]
                     for fails in (False, True)]
            borders.append(Border(col.step, t, sides[0], sides[1]))
    if not figures and not constant:
        return "", borders
    same = ""
    if constant:
        same = f'<p class="muted">the same for every document: {h.text(", ".join(constant))}</p>'
    return '<h2 id="signals">Signals</h2><div class="grid">' + "".join(figures) + "</div>" + same, borders


def borderline_section(output: Path, borders: list[Border]) -> str:
    """Per threshold, the documents just on the kept side and just on the rejected side."""
    if not borders:
        return ""
    columns = [ID, TEXT, SOURCE, REJECTED_BY, REASON]
    rows: dict[str, list[int]] = {folder: [] for folder in FOLDERS}
    for b in borders:
        for folder, row, _ in [*b.passing, *b.failing]:
            rows[folder].append(row)
    records = {folder: take_rows(output / folder, rows[folder], columns) for folder in FOLDERS}
    parts = ['<h2 id="borderline">Borderline documents</h2><p class="muted">the documents nearest each '
             "threshold, on both sides, with the value that decided them</p>"]
    for b in borders:
        t = b.threshold
        parts.append(f"<h3>{h.text(b.step)}: {h.text(t.reason)} (rejected when {h.text(t.signal)} "
                     f"{h.text(t.op)} {t.value:g})</h3><div class=\"sides\">")
        for title, side in (("passes", b.passing), ("fails", b.failing)):
            parts.append(f"<div><b>{title}</b>")
            for folder, row, value in side:
                record = records[folder][row]
                outcome = ("kept" if folder == "data"
                           else f"rejected by {record[REJECTED_BY]}: {record[REASON]}")
                body = str(record[TEXT] or "")
                more = f" … ({len(body):,} characters)" if len(body) > BORDER_CHARS else ""
                cut = body[:BORDER_CHARS] + more
                parts.append(f'<p><b>{h.text(record[ID])}</b> <span class="muted">{h.text(t.signal)} '
                             f"{value:.4g} · {h.text(outcome)} · {h.text(record[SOURCE])}</span></p>"
                             f'<div class="doc">{h.text(cut)}</div>')
            if not side:
                parts.append('<p class="muted">no document on this side</p>')
            parts.append("</div>")
        parts.append("</div>")
    return "".join(parts)
