"""Document ids across a run's inputs: each shard's id list, and the duplicates among them.

Ids name documents in every later step (``duplicate_of``, prepare's two-sources check,
held-out splits), so two documents sharing one is a problem worth knowing about. Each
first-stage task writes its shard's ids with a 64-bit hash (:func:`shard_ids`); after the
first stage the driver counts repeats over all shards (:func:`count_duplicates`): the
hashes find candidates, the ids themselves confirm them, so a hash collision never counts.

``input.id_policy`` says what a repeat means: ``keep`` (counted, warned about, kept),
``prefix_source`` (every id becomes ``SOURCE/ID`` before counting, for inputs whose sources
number their documents independently) or ``fail`` (the run stops after the first stage).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from assay.documents import ID

IdPolicy = Literal["keep", "prefix_source", "fail"]
HASH = "hash"
_EXAMPLES = 3


def shard_ids(table: pa.Table) -> pa.Table:
    """The ``id`` column of a shard with its 64-bit hash (xxh3)."""
    ids = table.column(ID)
    hashes = np.fromiter((xxhash.xxh3_64_intdigest(i.encode()) for i in ids.to_pylist()),
                         dtype=np.uint64, count=len(ids))
    return pa.table({ID: ids, HASH: pa.array(hashes, pa.uint64())})


def count_duplicates(
    id_files: Sequence[str], file_of: Callable[[int], str], policy: IdPolicy
) -> dict[str, Any]:
    """How many documents repeat an earlier document's id, over the shards' id files in
    input order; ``file_of(i)`` names the input of the ``i``-th id file, for examples."""
    parts = [pq.read_table(path, columns=[HASH]).column(HASH).to_numpy() for path in id_files]
    hashes = np.concatenate(parts) if parts else np.zeros(0, np.uint64)
    values, counts = np.unique(hashes, return_counts=True)
    candidates = pa.array(values[counts > 1], pa.uint64())
    found: dict[str, list[str]] = {}
    if len(candidates):
        for i, path in enumerate(id_files):
            table = pq.read_table(path)
            for doc_id in table.filter(pc.is_in(table.column(HASH), candidates)).column(ID).to_pylist():
                found.setdefault(doc_id, []).append(file_of(i))
    repeated = {doc_id: files for doc_id, files in found.items() if len(files) > 1}
    examples = [{"id": doc_id, "files": sorted(set(files)), "documents": len(files)}
                for doc_id, files in sorted(repeated.items())[:_EXAMPLES]]
    return {
        "policy": policy,
        "documents": int(hashes.size),
        "duplicates": sum(len(files) - 1 for files in repeated.values()),
        "repeated_ids": len(repeated),
        "examples": examples,
    }


def describe_duplicates(counted: dict[str, Any]) -> str | None:
    """One sentence on the repeats, or None if every id is unique."""
    if not counted["duplicates"]:
        return None
    shown = "; ".join(f"{e['id']!r} {e['documents']} times in {', '.join(e['files'])}"
                      for e in counted["examples"])
    return (f"{counted['duplicates']:,} document(s) share an id with an earlier document "
            f"({counted['repeated_ids']:,} id(s) repeated; e.g. {shown}); set input.id_policy: "
            "prefix_source to make ids unique per source, or fail to stop on them")
