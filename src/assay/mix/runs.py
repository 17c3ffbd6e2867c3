"""The table of proxy runs a mixture is fitted to: one row per trained proxy.

Columns: ``weight:<domain>`` for each domain (the proxy's training mixture; each row sums
to 1), the target loss (``target`` by default; held-out nats per token) and, optionally,
``loss:<domain>`` (held-out loss on each domain), ``tokens`` and ``seed``. Every problem
names the file and line; nothing is dropped silently.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assay.errors import AssayError

WEIGHT = "weight:"
LOSS = "loss:"
SUM_TOLERANCE = 1e-3


class MixError(AssayError, ValueError):
    """Runs, a target or caps from which no mixture can be fitted or found."""


@dataclass(frozen=True)
class MixRuns:
    """Weights (runs x domains), the target loss of each run, and where each row came from."""

    domains: tuple[str, ...]
    weights: np.ndarray
    target: np.ndarray
    lines: tuple[int, ...]
    source: str = "<runs>"


def read_runs(path: str | Path, target: str = "target") -> MixRuns:
    """The runs of a CSV file (see the module docstring)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except FileNotFoundError:
        raise MixError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MixError(f"{path}: cannot read it as CSV: {exc}") from None
    domains = tuple(h[len(WEIGHT):].strip() for h in header if h.startswith(WEIGHT))
    if not domains:
        raise MixError(f"{path}:1: no `{WEIGHT}<domain>` column: each run needs its mixture's weights")
    if target not in header:
        raise MixError(f"{path}:1: no `{target}` column (the target loss; --target names another)")
    weights, losses, lines = [], [], []
    for line, row in enumerate(rows, start=2):
        values = []
        for d in domains:
            values.append(_number(row.get(WEIGHT + d), f"{path}:{line}: {WEIGHT}{d}"))
        w = np.array(values)
        if (w < 0).any() or abs(w.sum() - 1.0) > SUM_TOLERANCE:
            raise MixError(f"{path}:{line}: the weights must be non-negative and sum to 1 "
                           f"(they sum to {w.sum():.6g})")
        loss = _number(row.get(target), f"{path}:{line}: {target}")
        if loss <= 0:
            raise MixError(f"{path}:{line}: {target} must be a positive loss, not {loss:g}")
        weights.append(w / w.sum())
        losses.append(loss)
        lines.append(line)
    return MixRuns(domains, np.array(weights).reshape(len(lines), len(domains)), np.array(losses),
                   tuple(lines), str(path))


def _number(text: str | None, where: str) -> float:
    try:
        value = float(text) if text not in (None, "") else math.nan
    except ValueError:
        raise MixError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise MixError(f"{where}: missing or not finite")
    return value
