"""Sharded writers: Parquet (zstd, the default) or JSONL, written atomically.

Every file is written under a temporary name and renamed when complete, so a killed
run never leaves a half-written shard that a re-run would mistake for a finished one.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import fsspec
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import zstandard

OutputFormat = Literal["parquet", "jsonl"]
Compression = Literal["zstd", "gzip", "none"]

_JSONL_SUFFIX = {"none": ".jsonl", "gzip": ".jsonl.gz", "zstd": ".jsonl.zst"}


def shard_suffix(fmt: OutputFormat, compression: Compression) -> str:
    return ".parquet" if fmt == "parquet" else _JSONL_SUFFIX[compression]


def write_table(
    table: pa.Table, url: str, fmt: OutputFormat = "parquet", compression: Compression = "zstd"
) -> None:
    """Write ``table`` to ``url`` via a temporary file and an atomic rename."""
    fs, path = fsspec.core.url_to_fs(url)
    parent = path.rsplit("/", 1)[0]
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.{path.rsplit('/', 1)[1]}.tmp"
    with fs.open(tmp, "wb") as out:
        if fmt == "parquet":
            pq.write_table(
                table, out, compression=None if compression == "none" else compression
            )
        else:
            out.write(_jsonl_bytes(table, compression))
    fs.mv(tmp, path)


def write_json(url: str, data: object) -> None:
    """Write JSON atomically (temporary name, then rename): indented, keys sorted, numpy
    values as numbers. Every JSON file assay writes (manifests, reports, results) goes here."""
    write_bytes(url, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS
                                  | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS))


def write_bytes(url: str, data: bytes) -> None:
    """Write a whole file atomically: a temporary name, then a rename."""
    fs, path = fsspec.core.url_to_fs(url)
    parent, name = path.rsplit("/", 1)
    fs.makedirs(parent, exist_ok=True)
    tmp = f"{parent}/.{name}.tmp"
    with fs.open(tmp, "wb") as out:
        out.write(data)
    fs.mv(tmp, path)


def append_csv_row(path: Path, columns: Sequence[str], row: Mapping[str, object]) -> None:
    """Append one row to a local CSV file (with the header first when the file is new): a
    table of finished runs that a later run reads to skip them."""
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        if new:
            writer.writeheader()
        writer.writerow(row)


def read_json(url: str) -> object | None:
    """A JSON file's content, or None if there is no such file."""
    fs, path = fsspec.core.url_to_fs(url)
    if not fs.exists(path):
        return None
    with fs.open(path, "rb") as f:
        return orjson.loads(f.read())


def _jsonl_bytes(table: pa.Table, compression: Compression) -> bytes:
    body = b"".join(orjson.dumps(row, default=_bytes_to_str) + b"\n" for row in table.to_pylist())
    if compression == "gzip":
        return gzip.compress(body, mtime=0)  # mtime=0 keeps re-runs byte-identical
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(body)
    return body


def _bytes_to_str(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="backslashreplace")
    raise TypeError(f"cannot write {type(value).__name__} to JSONL")
