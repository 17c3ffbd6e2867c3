"""What a rewriting step did to the text it kept: how many documents it changed, and a small
sample of the changes (a line diff, or both texts cut short where no line survived, as
when HTML becomes text) for the run's report.

The sample is the changed documents with the smallest hash of their id, so it is the same
whichever way the documents were split into shards and tasks: each task keeps its own
smallest few, and merging keeps the smallest few of those.
"""

from __future__ import annotations

import difflib
import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assay.documents import ID, REASON, TEXT

SAMPLES = 3  # changed documents shown per step
SHOWN_CHARS = 3_000  # of a diff, or of each text when there is no line in common
REWRITING_KINDS = ("transform", "global")  # filters and signal steps never touch the text


def sample_key(doc_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")


def text_change(doc_id: str, before: str, after: str) -> dict[str, Any]:
    """One changed document as the report shows it."""
    old, new = before.split("\n"), after.split("\n")
    change: dict[str, Any] = {"key": sample_key(doc_id), "id": doc_id, "chars_before": len(before),
                              "chars_after": len(after)}
    if set(old) & set(new):
        diff = difflib.unified_diff(old, new, "before", "after", lineterm="", n=1)
        change["diff"] = "\n".join(list(diff)[2:])[:SHOWN_CHARS]  # without the file header
    else:
        change["before"], change["after"] = before[:SHOWN_CHARS], after[:SHOWN_CHARS]
    return change


def merge_changes(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``SAMPLES`` changes with the smallest keys of both samples."""
    return sorted([*ours, *theirs], key=lambda c: (c["key"], c["id"]))[:SAMPLES]


def changed_rows(before: pa.Table, after: pa.Table) -> np.ndarray:
    """Rows a step kept with a text other than the one it was given."""
    differs = pc.fill_null(pc.not_equal(before.column(TEXT), after.column(TEXT)), False)
    if REASON in after.column_names:
        differs = pc.and_(differs, pc.is_null(after.column(REASON)))
    return np.flatnonzero(differs.to_numpy(zero_copy_only=False))


def sample_changes(before: pa.Table, after: pa.Table, rows: np.ndarray,
                   already: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``already`` merged with the changed ``rows`` of one batch (diffs computed only for
    the rows that enter the sample)."""
    ids = before.column(ID).take(pa.array(rows)).to_pylist()
    keys = sorted((sample_key(doc_id), doc_id, row) for doc_id, row in zip(ids, rows.tolist(), strict=True))
    bar = already[-1]["key"] if len(already) >= SAMPLES else None
    picked = [(doc_id, row) for key, doc_id, row in keys[:SAMPLES] if bar is None or key <= bar]
    new = [text_change(doc_id, before.column(TEXT)[row].as_py() or "", after.column(TEXT)[row].as_py() or "")
           for doc_id, row in picked]
    return merge_changes(already, new)
