"""Helpers of the engine tests (a module of its own, so no other test folder's conftest
shadows them)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def read_folder(folder: Path) -> pa.Table | None:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def write_jsonl_gz(path: Path, records: list[dict]) -> Path:
    path.write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in records)))
    return path


def arrow_allocator(_: object) -> str:
    """The allocator behind pyarrow's default memory pool in this process."""
    return pa.default_memory_pool().backend_name
