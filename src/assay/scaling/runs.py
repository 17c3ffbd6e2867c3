"""Training runs to fit laws to: reading the CSV and checking it for a law.

A runs file has one row per trained model: ``params`` (N), ``tokens`` (D), the target
(``loss`` by default, or a metric such as ``bleu``), optionally ``unique_tokens`` (U) and
``group`` (a data recipe). ``flops`` may stand in for ``tokens`` (D = flops / 6N, Kaplan et al. 2020). Every
problem is reported with the file and line it comes from; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from assay.errors import AssayError
from assay.scaling.laws import Law

# Canonical input name -> accepted header spellings (compared lower-cased, stripped).
ALIASES: dict[str, tuple[str, ...]] = {
    "N": ("n", "params", "parameters", "n_params", "model_size"),
    "D": ("d", "tokens", "n_tokens", "training_tokens"),
    "U": ("u", "unique_tokens", "unique"),
    "C": ("c", "flops", "compute", "training_flops"),
}
GROUP_ALIASES = ("group", "recipe")
DISPLAY = {"N": "params", "D": "tokens", "U": "unique_tokens"}


class RunsError(AssayError, ValueError):
    """A runs table that cannot be fitted; the message names the file and line."""


@dataclass(frozen=True)
class Runs:
    """Columns of positive floats (NaN where a cell is empty), with source line numbers."""

    columns: Mapping[str, np.ndarray]
    target: str
    lines: np.ndarray
    groups: np.ndarray | None = None
    source: str = "runs"
    labels: Mapping[str, str] = field(default_factory=dict)  # canonical name -> header

    def __len__(self) -> int:
        return len(self.lines)

    def column_label(self, name: str) -> str:
        """The header the user wrote for a canonical column (for messages)."""
        return self.labels.get(name, DISPLAY.get(name, name))

    def subset(self, mask: np.ndarray) -> Runs:
        """The runs where mask is true."""
        return Runs({k: v[mask] for k, v in self.columns.items()}, self.target, self.lines[mask],
                    None if self.groups is None else self.groups[mask], self.source, self.labels)

    def by_group(self) -> dict[str | None, Runs]:
        """One Runs per group, in first-seen order ({None: self} without a group column)."""
        if self.groups is None:
            return {None: self}
        names = list(dict.fromkeys(self.groups.tolist()))
        return {name: self.subset(self.groups == name) for name in names}


def runs_from_arrays(target: str = "loss", groups: Sequence[str] | None = None,
                     source: str = "runs", **columns: Iterable[float]) -> Runs:
    """Runs from arrays (``N=..., D=..., U=..., loss=...``), numbered from line 2 like a CSV."""
    data = {k: np.asarray(list(v), dtype=float) for k, v in columns.items()}
    n = len(next(iter(data.values())))
    if any(len(v) != n for v in data.values()):
        raise RunsError(f"{source}: columns have different lengths")
    return Runs(data, target, np.arange(2, n + 2),
                None if groups is None else np.asarray(list(groups), dtype=object), source)


def read_runs(path: str | Path, target: str = "loss") -> Runs:
    """Read a runs CSV. Unknown columns are ignored; cells must be numbers or empty."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise RunsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header:
        raise RunsError(f"{path}: empty file (expected a header row)")
    names = [h.strip().lower() for h in header]
    wanted = dict(ALIASES)
    wanted["y"] = (target.strip().lower(),)
    positions: dict[str, int] = {}
    for key, spellings in wanted.items():
        found = [i for i, h in enumerate(names) if h in spellings]
        if len(found) > 1:
            raise RunsError(f"{path}: columns {', '.join(header[i] for i in found)} both mean "
                            f"{DISPLAY.get(key, target)}; keep one")
        if found:
            positions[key] = found[0]
    if "y" not in positions:
        raise RunsError(f"{path}: no {target!r} column (columns: {', '.join(header)}); "
                        "name the target column with --y")
    group_at = next((i for i, h in enumerate(names) if h in GROUP_ALIASES), None)
    values: dict[str, list[float]] = {k: [] for k in positions}
    groups: list[str] = []
    lines: list[int] = []
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise RunsError(f"{path}:{line}: {len(row)} cells, the header has {len(header)}")
        for key, i in positions.items():
            values[key].append(_number(row[i], path, line, header[i]))
        if group_at is not None:
            groups.append(row[group_at].strip())
        lines.append(line)
    if not lines:
        raise RunsError(f"{path}: no data rows")
    columns = {k: np.array(v, dtype=float) for k, v in values.items()}
    label = {k: header[i].strip() for k, i in positions.items()}
    columns[target] = columns.pop("y")
    label[target] = label.pop("y")
    if "D" not in columns and "C" in columns and "N" in columns:
        columns["D"] = columns["C"] / (6.0 * columns["N"])
        label["D"] = f"{label['C']}/(6*{label['N']})"
    return Runs(columns, target, np.array(lines), None if group_at is None else
                np.array(groups, dtype=object), str(path), label)


def _number(cell: str, path: Path, line: int, column: str) -> float:
    cell = cell.strip()
    if not cell:
        return math.nan
    try:
        return float(cell)
    except ValueError:
        raise RunsError(f"{path}:{line}: {column} {cell!r} is not a number") from None


def law_inputs(law: Law, runs: Runs) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Validated log inputs (each (1, n)) and log target (1, n) of runs for a law.

    Raises RunsError naming the first offending line: a missing column, an empty, NaN,
    infinite or non-positive value, or fewer runs than the law has parameters plus one.
    """
    cols = runs.columns
    for name in (*law.inputs, runs.target):
        if name not in cols:
            raise RunsError(f"{runs.source}: missing column {DISPLAY.get(name, name)!r} "
                            f"(the {law.name} law needs {', '.join(DISPLAY[i] for i in law.inputs)} "
                            f"and {runs.target})")
        bad = ~(np.isfinite(cols[name]) & (cols[name] > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            value = cols[name][i]
            what = "empty or NaN" if np.isnan(value) else f"{value:g}"
            raise RunsError(f"{runs.source}:{runs.lines[i]}: {runs.column_label(name)} is {what}; "
                            f"must be a positive number ({int(bad.sum())} such row(s))")
    needed = len(law.params) + 1
    if len(runs) < needed:
        raise RunsError(f"{runs.source}: {len(runs)} run(s) for the {len(law.params)}-parameter "
                        f"{law.name} law; need at least {needed}")
    logx = {k: np.log(cols[k])[None, :] for k in law.inputs}
    return logx, np.log(cols[runs.target])[None, :]
