"""Reading the Parquet shards of a run's output for a report: only the named columns."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def read_columns(folder: Path, columns: list[str]) -> pa.Table | None:
    """The named columns (those a shard has) of every Parquet shard of ``folder``, in order."""
    parts = []
    for path in sorted(folder.glob("*.parquet")):
        names = set(pq.read_schema(path).names)
        parts.append(pq.read_table(path, columns=[c for c in columns if c in names]))
    return pa.concat_tables(parts, promote_options="default") if parts else None


def numeric_signals(folder: Path) -> list[str]:
    """The numeric signal columns (``step.signal``) of the shards of ``folder``."""
    names: set[str] = set()
    for path in sorted(folder.glob("*.parquet")):
        names |= {f.name for f in pq.read_schema(path)
                  if "." in f.name and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))}
    return sorted(names)
