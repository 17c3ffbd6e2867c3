"""A seeded sample of a run's rejected documents per step and reason, with the signal values
that decided each; shown by ``assay report`` (HTML) and ``assay inspect --rejected``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assay.documents import ID, REASON, REJECTED_BY, SOURCE, TEXT
from assay.report.shards import numeric_signals, read_columns, shards, take_rows


@dataclass
class RejectedGroup:
    """The rejected documents of one step and reason: how many, and a sample of them."""

    step: str
    reason: str
    total: int
    records: list[dict[str, Any]] = field(default_factory=list)

    def signals(self, record: dict[str, Any]) -> dict[str, Any]:
        """The rejecting step's own signal values of a sampled record."""
        prefix = f"{self.step}."
        return {k.removeprefix(prefix): v for k, v in record.items()
                if k.startswith(prefix) and v is not None}


def format_signals(values: dict[str, Any]) -> str:
    return " · ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())


def sample_rejected(output: Path, seed: int = 0, per_reason: int = 5, step: str | None = None,
                    reason: str | None = None) -> list[RejectedGroup]:
    """Up to ``per_reason`` rejected documents of each (step, reason) of the run in ``output``
    (only ``step`` and ``reason`` where given), drawn with ``seed``: the small columns are
    read first, then only the sampled rows' text and signals."""
    table = read_columns(output / "rejected", [REJECTED_BY, REASON])
    if table is None or table.num_rows == 0:
        return []
    groups: dict[tuple[str, str], list[int]] = {}
    for row, key in enumerate(zip(table.column(REJECTED_BY).to_pylist(), table.column(REASON).to_pylist(),
                                  strict=True)):
        if (step is None or key[0] == step) and (reason is None or key[1] == reason):
            groups.setdefault(key, []).append(row)
    rng = np.random.default_rng(seed)
    chosen = {key: sorted(rng.choice(rows, size=min(per_reason, len(rows)), replace=False).tolist())
              for key, rows in sorted(groups.items())}
    wanted = sorted(r for rows in chosen.values() for r in rows)
    by_row = take_rows(output / "rejected", wanted, [ID, TEXT, SOURCE, REJECTED_BY, REASON,
                                                     *numeric_signals(shards(output / "rejected"))])
    return [RejectedGroup(s, r, len(groups[(s, r)]), [by_row[i] for i in rows])
            for (s, r), rows in chosen.items()]
