"""Reading the Parquet shards of a run's output for a report: only the named columns, one
shard at a time, so memory follows the columns asked for and never the text of every row."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

BATCH_ROWS = 50_000


@dataclass(frozen=True)
class Shard:
    """One Parquet file of an output folder: where it is, its rows, its columns' types."""

    path: Path
    rows: int
    schema: pa.Schema
    metadata: pq.FileMetaData

    def read(self, columns: Sequence[str]) -> pa.Table:
        """The named columns this shard has (the others are left out)."""
        wanted = [c for c in columns if c in self.schema.names]
        return pq.ParquetFile(self.path, metadata=self.metadata).read(columns=wanted)


def shards(folder: Path) -> list[Shard]:
    """The shards of ``folder`` in order (each file's footer read once while it is unchanged:
    a report's sections all walk the same shards)."""
    found = []
    for path in sorted(folder.glob("*.parquet")):
        stat = path.stat()
        found.append(_shard(path, stat.st_mtime_ns, stat.st_size))
    return found


@functools.lru_cache(maxsize=4096)
def _shard(path: Path, mtime_ns: int, size: int) -> Shard:
    meta = pq.read_metadata(path)
    return Shard(path, meta.num_rows, meta.schema.to_arrow_schema(), meta)


def iter_tables(folder_shards: Sequence[Shard], columns: Sequence[str],
                batch_rows: int = BATCH_ROWS) -> Iterator[tuple[int, pa.Table]]:
    """``(first row, table)``: the named columns of consecutive shards, several small shards
    to a table of up to about ``batch_rows`` rows (the work per table is numpy's, not
    Python's), one table in memory at a time."""
    start, parts, rows = 0, [], 0
    for shard in folder_shards:
        parts.append(shard.read(columns))
        rows += shard.rows
        if rows >= batch_rows:
            yield start, pa.concat_tables(parts, promote_options="default")
            start, parts, rows = start + rows, [], 0
    if parts:
        yield start, pa.concat_tables(parts, promote_options="default")


def read_columns(folder: Path, columns: list[str]) -> pa.Table | None:
    """The named columns (those a shard has) of every Parquet shard of ``folder``, in order."""
    parts = [table for _, table in iter_tables(shards(folder), columns)]
    return pa.concat_tables(parts, promote_options="default") if parts else None


def numbers(table: pa.Table, column: str) -> np.ndarray:
    """A numeric column as float64, NaN where a row has no value or the table lacks the
    column (the rows a step never saw)."""
    if column not in table.column_names:
        return np.full(table.num_rows, np.nan)
    return table.column(column).cast(pa.float64()).fill_null(np.nan).to_numpy()


def take_rows(folder: Path, rows: Sequence[int], columns: list[str]) -> dict[int, dict[str, object]]:
    """The named columns of the given rows of ``folder`` (row numbers across its shards, in
    order), as ``{row: record}``: each shard is read only if it holds one of the rows."""
    wanted = np.unique(np.asarray(rows, dtype=np.int64))
    found: dict[int, dict[str, object]] = {}
    start = 0
    for shard in shards(folder) if len(wanted) else []:
        mine = wanted[(wanted >= start) & (wanted < start + shard.rows)]
        if len(mine):
            records = shard.read(columns).take(pa.array(mine - start)).to_pylist()
            found.update(zip(mine.tolist(), records, strict=True))
        start += shard.rows
    return found


def numeric_signals(folder_shards: Sequence[Shard]) -> list[str]:
    """The numeric signal columns (``step.signal``) of the shards; not the unsigned 64-bit
    ones, which hold hashes (dedup keys), not measures."""
    names: set[str] = set()
    for shard in folder_shards:
        names |= {f.name for f in shard.schema
                  if "." in f.name and not pa.types.is_uint64(f.type)
                  and (pa.types.is_floating(f.type) or pa.types.is_integer(f.type))}
    return sorted(names)
