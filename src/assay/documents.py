"""The batch schema every reader produces and every step receives.

Data moves between steps as Arrow tables with a small fixed core (``id``, ``text``,
``source``, ``url``, ``metadata``) plus signal columns named ``<step>.<signal>``.
Rejected and quarantined records carry the extra columns defined here so that every
input document can be accounted for and restored.
"""

from __future__ import annotations

import pyarrow as pa

ID = "id"
TEXT = "text"
SOURCE = "source"
URL = "url"
METADATA = "metadata"
CORE_COLUMNS: tuple[str, ...] = (ID, TEXT, SOURCE, URL, METADATA)

CORE_SCHEMA = pa.schema(
    [
        pa.field(ID, pa.string(), nullable=False),
        pa.field(TEXT, pa.string(), nullable=False),
        pa.field(SOURCE, pa.string(), nullable=False),
        pa.field(URL, pa.string()),
        # Every input field that is not a core column, as one JSON object string.
        pa.field(METADATA, pa.string()),
    ]
)

# Columns a step sets on a batch to mark rows it rejects (null = kept).
REASON = "reason"
# Added by the executor when a rejected row is written to ``rejected/``.
REJECTED_BY = "rejected_by"
# Set by deduplication steps on removed rows: the id of the kept document they duplicate.
DUPLICATE_OF = "duplicate_of"
# Set by near-duplicate removal on removed rows: the cluster they belong to.
CLUSTER_ID = "cluster_id"

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("file", pa.string(), nullable=False),
        # 1-based line (JSONL) or row (Parquet) in the decoded stream; null when unknown.
        pa.field("line", pa.int64()),
        # Byte offset of the record in the decoded stream.
        pa.field("offset", pa.int64()),
        pa.field("error", pa.string(), nullable=False),
        # The raw record bytes, so it can be repaired and restored.
        pa.field("raw", pa.binary()),
    ]
)


def signal_column(step_name: str, signal: str) -> str:
    """Name of the column holding ``signal`` computed by step ``step_name``."""
    return f"{step_name}.{signal}"


def empty_core_table() -> pa.Table:
    return CORE_SCHEMA.empty_table()


def text_bytes(table: pa.Table) -> int:
    """UTF-8 bytes of the ``text`` column (what the funnel reports as bytes)."""
    if table.num_rows == 0:
        return 0
    import pyarrow.compute as pc

    return int(pc.sum(pc.binary_length(table.column(TEXT))).as_py() or 0)
