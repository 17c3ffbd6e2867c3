"""Exact deduplication of lines or paragraphs across the corpus (a global transform)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash
from pydantic import Field

from assay.documents import REASON, TEXT, signal_column
from assay.steps.base import FitContext, GlobalState, GlobalStep, StepParams, register

ALL_UNITS_DUPLICATED = "all_units_duplicated"

_PARAGRAPH_BREAK = re.compile(r"(\n[ \t\r\f\v]*\n\s*)")


def split_units(text: str, unit: Literal["line", "paragraph"]) -> list[str]:
    """The text cut into units and the separators after them, alternating: joining the
    list gives the text back. Lines end at ``\\n``; paragraphs at blank lines."""
    if unit == "line":
        parts = text.split("\n")
        out: list[str] = []
        for i, part in enumerate(parts):
            out += [part, "\n" if i < len(parts) - 1 else ""]
        return out
    pieces = _PARAGRAPH_BREAK.split(text)
    if len(pieces) % 2:
        pieces.append("")
    return pieces


def unit_hash(unit: str) -> int | None:
    """Key of a unit: xxh3-64 of its text without surrounding whitespace; None if blank
    (blank units are separators, never duplicates)."""
    stripped = unit.strip()
    return xxhash.xxh3_64_intdigest(stripped.encode("utf-8")) if stripped else None


class LineDedupParams(StepParams):
    unit: Literal["line", "paragraph"] = Field("line", description="what is compared")
    max_docs: int = Field(1, ge=1, description="a unit may occur in at most this many documents")
    keep: Literal["first", "none"] = Field(
        "first",
        description="first: the first max_docs documents (input order) keep a frequent unit, "
        "later ones lose it; none: it is removed from every document (boilerplate)",
    )
    min_chars: int = Field(0, ge=0, description="units shorter than this (stripped) are never removed")


@dataclass(frozen=True)
class ShardUnits:
    """Per shard: for each row to edit, the unit hashes to remove from it."""

    num_rows: int
    rows: np.ndarray
    hashes: list[np.ndarray]


@dataclass(frozen=True)
class _UnitTask:
    shards: tuple[str, ...]
    offsets: tuple[int, ...]
    column: str
    partition: int
    partitions: int
    max_docs: int
    keep: str


def _find_removals(task: _UnitTask) -> tuple[np.ndarray, np.ndarray, int]:
    """For the unit hashes of one partition (hash mod partitions): the (gid, hash) pairs
    to remove, and how many distinct hashes occur in more than max_docs documents."""
    gids, hashes = [], []
    for path, offset in zip(task.shards, task.offsets, strict=True):
        column = pq.read_table(path, columns=[task.column]).column(0).combine_chunks()
        values = column.flatten().to_numpy()
        if len(values) == 0:
            continue
        lengths = column.value_lengths().fill_null(0).to_numpy()
        owner = np.repeat(np.arange(len(lengths), dtype=np.int64) + offset, lengths)
        mine = values % np.uint64(task.partitions) == np.uint64(task.partition)
        gids.append(owner[mine])
        hashes.append(values[mine])
    if not gids:
        return np.zeros(0, np.int64), np.zeros(0, np.uint64), 0
    gid = np.concatenate(gids)
    key = np.concatenate(hashes)
    order = np.lexsort((gid, key))
    gid, key = gid[order], key[order]
    starts = np.ones(len(key), dtype=bool)
    np.not_equal(key[1:], key[:-1], out=starts[1:])
    group_start = np.maximum.accumulate(np.where(starts, np.arange(len(key)), 0))
    rank = np.arange(len(key)) - group_start  # documents before this one holding the unit
    size = np.diff(np.append(np.flatnonzero(starts), len(key)))
    frequent = np.repeat(size > task.max_docs, size)
    remove = frequent & (rank >= task.max_docs) if task.keep == "first" else frequent
    return gid[remove], key[remove], int((size > task.max_docs).sum())


@register
class LineDedup(GlobalStep):
    """Exact line (or paragraph) deduplication across the corpus: a transform.

    Each line (or paragraph) is keyed by the xxh3-64 hash of its stripped text. A unit
    that occurs in more than ``max_docs`` documents is removed from the documents after
    the first ``max_docs`` that contain it (``keep: first``, span deduplication as in C4,
    Raffel et al. 2020, which keeps one of each repeated three-sentence span, and dolma's
    paragraph deduplication, Soldaini et al. 2024), or from all of them (``keep: none``,
    for boilerplate such as navigation and cookie notices; RefinedWeb, Penedo et al.
    2023, removes repeated lines before its document-level deduplication). Blank units
    and those shorter than ``min_chars`` are never removed; the separators of the other
    units are kept as they were. A document with nothing left is rejected as
    ``all_units_duplicated`` (its text unchanged). Signals: ``units_removed`` and
    ``chars_removed`` per document.
    """

    name: ClassVar[str] = "line_dedup"
    kind: ClassVar = "global"
    Params: ClassVar[type[StepParams]] = LineDedupParams
    # ``hashes`` are the keys the fit reads (dropped once applied); the others are what was cut.
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "hashes": pa.list_(pa.uint64()), "units_removed": pa.int64(), "chars_removed": pa.int64(),
    }

    params: LineDedupParams

    def _units(self, text: str) -> tuple[list[str], list[int | None]]:
        pieces = split_units(text, self.params.unit)
        units = pieces[0::2]
        min_chars = self.params.min_chars
        keys = [unit_hash(u) if len(u.strip()) >= min_chars else None for u in units]
        return pieces, keys

    def __call__(self, table: pa.Table) -> pa.Table:
        distinct = []
        for text in table.column(TEXT).to_pylist():
            _, keys = self._units(text)
            distinct.append(sorted({k for k in keys if k is not None}))
        return table.append_column(signal_column(self.name, "hashes"),
                                   pa.array(distinct, pa.list_(pa.uint64())))

    def fit_all(self, ctx: FitContext) -> GlobalState:
        p = self.params
        sizes = np.asarray(ctx.shard_sizes, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        partitions = max(1, ctx.workers)
        tasks = [
            _UnitTask(tuple(ctx.shards), tuple(int(o) for o in offsets[:-1]),
                      signal_column(self.name, "hashes"), k, partitions, p.max_docs, p.keep)
            for k in range(partitions)
        ]
        results = ctx.map(_find_removals, tasks)
        gid = np.concatenate([r[0] for r in results])
        key = np.concatenate([r[1] for r in results])
        order = np.lexsort((key, gid))
        gid, key = gid[order], key[order]
        per_shard = []
        bounds = np.searchsorted(gid, offsets)
        for k in range(len(sizes)):
            g, h = gid[bounds[k] : bounds[k + 1]], key[bounds[k] : bounds[k + 1]]
            rows, starts = np.unique(g, return_index=True)
            hashes = np.split(h, starts[1:]) if len(rows) else []
            per_shard.append(ShardUnits(int(sizes[k]), rows - offsets[k], hashes))
        summary: dict[str, Any] = {
            "documents": int(offsets[-1]),
            "frequent_units": int(sum(r[2] for r in results)),
            "documents_edited": len(np.unique(gid)),
            "unit_occurrences_removed": len(gid),
        }
        return GlobalState(per_shard=per_shard, summary=summary)

    def apply(self, table: pa.Table, shard_state: ShardUnits) -> pa.Table:
        if table.num_rows != shard_state.num_rows:
            raise ValueError(
                f"shard has {table.num_rows} rows but was fitted with {shard_state.num_rows}"
            )
        texts = table.column(TEXT).to_pylist()
        removed_units = np.zeros(len(texts), dtype=np.int64)
        removed_chars = np.zeros(len(texts), dtype=np.int64)
        reasons = np.full(len(texts), None, dtype=object)
        for row, drop in zip(shard_state.rows.tolist(), shard_state.hashes, strict=True):
            pieces, keys = self._units(texts[row])
            drop_set = set(drop.tolist())
            kept: list[str] = []
            for unit, separator, key in zip(pieces[0::2], pieces[1::2], keys, strict=True):
                if key is not None and key in drop_set:
                    removed_units[row] += 1
                    removed_chars[row] += len(unit) + len(separator)
                else:
                    kept += [unit, separator]
            new = "".join(kept)
            if new.strip():
                texts[row] = new
            else:
                reasons[row] = ALL_UNITS_DUPLICATED
        table = table.drop_columns([signal_column(self.name, "hashes")])
        table = table.set_column(table.schema.get_field_index(TEXT), TEXT, pa.array(texts, pa.string()))
        table = table.append_column(signal_column(self.name, "units_removed"),
                                    pa.array(removed_units, pa.int64()))
        table = table.append_column(signal_column(self.name, "chars_removed"),
                                    pa.array(removed_chars, pa.int64()))
        return table.append_column(REASON, pa.array(reasons, pa.string()))
