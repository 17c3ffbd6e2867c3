"""Exact deduplication of whole documents, by a hash of their normalised text."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import xxhash
from pydantic import Field

from assay.documents import DUPLICATE_OF, ID, REASON, TEXT, signal_column
from assay.steps.base import GlobalState, GlobalStep, StepParams, register

EXACT_DUPLICATE = "exact_duplicate"


def normalize_for_dedup(text: str) -> str:
    """NFKC, case-folded, whitespace runs (any Unicode space) collapsed to one space, stripped."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def content_hashes(texts: Sequence[str], normalize: bool = True) -> np.ndarray:
    """xxh3-64 of the UTF-8 bytes of each text (normalised first if ``normalize``)."""
    prepare = normalize_for_dedup if normalize else str
    return np.fromiter(
        (xxhash.xxh3_64_intdigest(prepare(t).encode("utf-8")) for t in texts),
        dtype=np.uint64,
        count=len(texts),
    )


def first_occurrences(hashes: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """For each row, the index of the first row with the same hash (itself if unique, and
    for rows that are not ``valid``: they have no key and duplicate nothing)."""
    out = np.arange(len(hashes), dtype=np.int64)
    rows = out if valid is None else np.flatnonzero(valid)
    if len(rows) == 0:
        return out
    # return_index gives the first occurrence of each value (np.unique sorts stably).
    _, first, inverse = np.unique(hashes[rows], return_index=True, return_inverse=True)
    out[rows] = rows[first[inverse.reshape(-1)]]
    return out


@dataclass(frozen=True)
class ShardDuplicates:
    """The duplicate rows of one shard: positions in the shard and the ids they duplicate."""

    num_rows: int
    rows: np.ndarray  # int64 positions within the shard, ascending
    duplicate_of: pa.Array  # string: the id of the kept first occurrence, per entry of rows


class ExactDedupParams(StepParams):
    normalize: bool = Field(
        default=True,
        description="hash NFKC, case-folded, whitespace-collapsed text; false hashes it raw",
    )


@register
class ExactDedup(GlobalStep):
    """Exact deduplication: keep the first document of each group with identical content.

    Key (map phase): ``exact_dedup.hash``, the xxh3-64 hash of the document's text after
    normalisation: Unicode NFKC, case folding, every run of whitespace collapsed to one
    space and the ends stripped. So copies that differ only in case, line wrapping,
    indentation, trailing spaces, CRLF line ends or compatibility characters (full-width
    forms, ligatures, non-breaking spaces) collapse, while any change of words, digits or
    punctuation keeps documents apart; near duplicates are the MinHash step's job.
    ``normalize: false`` hashes the raw UTF-8 text instead.

    Fit: the first occurrence in input order survives; every later document with the same
    hash is rejected as ``exact_duplicate`` with ``duplicate_of`` set to the survivor's id.
    Empty documents are duplicates of the first empty document.

    Sources: Lee et al. 2022, "Deduplicating Training Data Makes Language Models Better",
    show that verbatim copies are common in web corpora and that removing them reduces
    memorisation and train-test overlap. Exact matching is a stage of every large web
    pipeline: C4 (Raffel et al. 2020) drops repeated three-sentence spans, RefinedWeb
    (Penedo et al. 2023) exact substrings after MinHash, and dolma (Soldaini et al. 2024)
    exact documents and paragraphs found with a Bloom filter; this step applies it to whole
    documents. dolma and datatrove's ``ExactDedup`` hash the raw text; CCNet (Wenzek et al.
    2020) hashes paragraphs lower-cased, with digits replaced by 0 and punctuation and
    control characters removed, and datatrove's ``simplify_text`` (for MinHash and sentence
    dedup) also removes accents. Here normalisation stops before those lossy steps: a
    price, a date or a version number can be the only difference between two distinct
    whole documents.

    The hash is 64 bits: the chance that two different documents collide anywhere in a
    corpus of n documents is about n²/2⁶⁵ (3e-8 for a million, 3% for a billion).
    """

    name: ClassVar[str] = "exact_dedup"
    reason: ClassVar[str] = EXACT_DUPLICATE
    Params: ClassVar[type[StepParams]] = ExactDedupParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {"hash": pa.uint64()}

    params: ExactDedupParams

    @property
    def key_column(self) -> str:
        return signal_column(self.name, "hash")

    def __call__(self, table: pa.Table) -> pa.Table:
        texts = table.column(TEXT).to_pylist()
        hashes = content_hashes(texts, normalize=self.params.normalize)
        return table.append_column(self.key_column, pa.array(hashes, pa.uint64()))

    def fit(self, keys: pa.Table, shard_sizes: Sequence[int]) -> GlobalState:
        sizes = np.asarray(shard_sizes, dtype=np.int64)
        if int(sizes.sum()) != keys.num_rows:
            raise ValueError(
                f"shard sizes add up to {int(sizes.sum())} rows but the keys have {keys.num_rows}"
            )
        column = keys.column(self.key_column)
        valid = column.is_valid().to_numpy(zero_copy_only=False)
        hashes = column.cast(pa.uint64()).fill_null(0).to_numpy()
        first = first_occurrences(hashes, valid)
        duplicates = np.flatnonzero(first != np.arange(len(first)))
        survivor_ids = keys.column(ID).take(pa.array(first[duplicates]))
        if isinstance(survivor_ids, pa.ChunkedArray):
            survivor_ids = survivor_ids.combine_chunks()

        starts = np.concatenate([[0], np.cumsum(sizes)])
        # Rows are ascending, so each shard's duplicates are one contiguous slice.
        bounds = np.searchsorted(duplicates, starts)
        per_shard = [
            ShardDuplicates(
                num_rows=int(sizes[i]),
                rows=duplicates[bounds[i] : bounds[i + 1]] - starts[i],
                duplicate_of=survivor_ids.slice(bounds[i], bounds[i + 1] - bounds[i]),
            )
            for i in range(len(sizes))
        ]
        groups = np.unique(first[duplicates]).size
        summary: dict[str, Any] = {
            "documents": int(keys.num_rows),
            "unique": int(keys.num_rows - duplicates.size),
            "duplicates": int(duplicates.size),
            "duplicate_groups": int(groups),
        }
        return GlobalState(per_shard=per_shard, summary=summary)

    def apply(self, table: pa.Table, shard_state: ShardDuplicates) -> pa.Table:
        if table.num_rows != shard_state.num_rows:
            raise ValueError(
                f"shard has {table.num_rows} rows but was fitted with {shard_state.num_rows}"
            )
        reasons = np.full(table.num_rows, None, dtype=object)
        reasons[shard_state.rows] = self.reason
        duplicate_of = np.full(table.num_rows, None, dtype=object)
        duplicate_of[shard_state.rows] = shard_state.duplicate_of.to_numpy(zero_copy_only=False)
        table = table.append_column(REASON, pa.array(reasons, pa.string()))
        return table.append_column(DUPLICATE_OF, pa.array(duplicate_of, pa.string()))
