"""JSONL (plain, gzip, zstd), Parquet, WARC/WET and HTML readers producing core-schema tables.

Reading is split in two so that two workers stay busy on one big file:

* :func:`plan_chunks` runs in the driver. It streams each file once and cuts it into
  chunks of about ``chunk_bytes`` of decoded input (raw JSONL lines or Parquet record
  batches). Chunk boundaries depend only on the input and that setting, so a re-run
  finds the same chunks and can skip the ones already done.
* :func:`decode_chunk` runs in a worker. It parses the records into the core schema and
  routes every malformed record (bad JSON, invalid UTF-8, missing or non-string text)
  to quarantine with its file, line and byte offset.

A compressed file that ends early yields its complete lines and one quarantine record
for the truncated tail. A file that cannot be read at all (a corrupt or empty Parquet
file, a denied permission, a FIFO or other non-regular file) becomes one quarantine
record naming the file and the reason, and the run goes on. Web formats (WARC, WET, HTML
files) are cut and decoded in :mod:`assay.io.web`.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import fsspec
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import zstandard

from assay.documents import CORE_SCHEMA, ID, METADATA, QUARANTINE_SCHEMA, SOURCE, TEXT, URL
from assay.io.chunks import FieldMap, QuarantineRecord, RawChunk
from assay.io.files import InputFile, read_blocks
from assay.io.web import decode_web_records, html_file_chunks, warc_chunks


def plan_chunks(
    files: Sequence[InputFile], chunk_bytes: int
) -> Iterator[RawChunk]:
    """Cut every input file into chunks of about ``chunk_bytes`` decoded bytes, in order.

    Consecutive HTML files are grouped into shared chunks (one record per file).
    """
    html_run: list[tuple[int, InputFile]] = []
    for file_index, f in enumerate(files):
        if f.problem is not None:
            if html_run:
                yield from html_file_chunks(html_run, chunk_bytes)
                html_run = []
            yield _unreadable_chunk(file_index, 0, f, f.problem)
            continue
        if f.format == "html":
            html_run.append((file_index, f))
            continue
        if html_run:
            yield from html_file_chunks(html_run, chunk_bytes)
            html_run = []
        if f.format == "jsonl":
            yield from _jsonl_chunks(file_index, f, chunk_bytes)
        elif f.format == "warc":
            yield from warc_chunks(file_index, f, chunk_bytes)
        else:
            yield from _parquet_chunks(file_index, f, chunk_bytes)
    if html_run:
        yield from html_file_chunks(html_run, chunk_bytes)


def _unreadable_chunk(file_index: int, chunk_index: int, f: InputFile, reason: str,
                      line: int | None = None) -> RawChunk:
    """A chunk holding no record, only the quarantine record of a file (or of its rest)
    that cannot be read."""
    return RawChunk(file_index, chunk_index, f, line or 1, 0, lines=[],
                    quarantined=[QuarantineRecord(f.url, line, None, reason, None)])



def _jsonl_chunks(file_index: int, f: InputFile, chunk_bytes: int) -> Iterator[RawChunk]:
    chunk_index, line_no, offset = 0, 1, 0
    lines: list[bytes] = []
    size = 0
    chunk_line, chunk_offset = 1, 0
    pending = b""
    blocks = read_blocks(f)
    while True:
        try:
            block = next(blocks)
        except StopIteration:
            block = None
        except (EOFError, OSError, zlib.error, ValueError, RuntimeError, zstandard.ZstdError,
                lzma.LZMAError) as exc:
            # A truncated or corrupt compressed stream: keep what decoded, quarantine the rest.
            reason = (f"truncated stream: {f.compression} data ends or breaks here ({exc})"
                      if f.compression else f"read error: {exc}")
            bad = QuarantineRecord(f.url, line_no, offset, reason, pending or None)
            yield RawChunk(file_index, chunk_index, f, chunk_line, chunk_offset, lines, None, [bad])
            return
        if block is None:
            if pending:
                lines.append(pending)
            if lines or chunk_index == 0:
                yield RawChunk(file_index, chunk_index, f, chunk_line, chunk_offset, lines)
            return
        data = pending + block
        start = 0
        while (end := data.find(b"\n", start)) != -1:
            line = data[start:end]
            lines.append(line)
            size += len(line) + 1
            line_no += 1
            offset += end + 1 - start
            start = end + 1
            if size >= chunk_bytes:
                yield RawChunk(file_index, chunk_index, f, chunk_line, chunk_offset, lines)
                chunk_index += 1
                lines, size = [], 0
                chunk_line, chunk_offset = line_no, offset
        pending = data[start:]


def _parquet_chunks(file_index: int, f: InputFile, chunk_bytes: int) -> Iterator[RawChunk]:
    """Record batches of about ``chunk_bytes``; a file that is not Parquet, or breaks part
    way, yields what it read and one quarantine record for the rest."""
    with fsspec.open(f.url, "rb") as stream:
        try:
            parquet = pq.ParquetFile(stream)
        except (pa.ArrowException, OSError) as exc:
            yield _unreadable_chunk(file_index, 0, f, f"not a readable Parquet file: {exc}")
            return
        meta = parquet.metadata
        avg_row_bytes = max(1, _uncompressed_bytes(meta) // max(1, meta.num_rows))
        batch_rows = max(1, chunk_bytes // avg_row_bytes)
        row, chunk_index = 1, 0
        batches = parquet.iter_batches(batch_size=batch_rows)
        while True:
            try:
                batch = next(batches, None)
            except (pa.ArrowException, OSError) as exc:
                yield _unreadable_chunk(file_index, chunk_index, f,
                                        f"corrupt Parquet data from row {row} on: {exc}", line=row)
                return
            if batch is None:
                break
            yield RawChunk(file_index, chunk_index, f, row, 0, None, pa.Table.from_batches([batch]))
            row, chunk_index = row + batch.num_rows, chunk_index + 1
        if meta.num_rows == 0:
            yield RawChunk(file_index, 0, f, 1, 0, None, parquet.schema_arrow.empty_table())


def _uncompressed_bytes(meta: pq.FileMetaData) -> int:
    return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))


def decode_chunk(chunk: RawChunk, fields: FieldMap) -> tuple[pa.Table, list[QuarantineRecord]]:
    """Parse a chunk into a core-schema table; malformed records go to the quarantine list."""
    if chunk.records is not None:
        table, quarantined = decode_web_records(chunk, fields)
    else:
        table, quarantined = _decode_records(chunk, fields)
    if fields.prefix_source:
        ids = pc.binary_join_element_wise(table.column(SOURCE), table.column(ID), "/")
        table = table.set_column(table.schema.get_field_index(ID), ID, ids)
    return table, quarantined


def _decode_records(chunk: RawChunk, fields: FieldMap) -> tuple[pa.Table, list[QuarantineRecord]]:
    quarantined = list(chunk.quarantined)
    if chunk.lines is not None:
        records = _jsonl_records(chunk, quarantined)
    else:
        records = _parquet_records(chunk, quarantined)
    columns: dict[str, list[Any]] = {c: [] for c in CORE_SCHEMA.names}
    default_source = fields.default_source or chunk.file.stem
    for line_no, offset, raw, record in records:
        problem = _core_problem(record, fields)
        if problem:
            if raw is None:
                raw = orjson.dumps(record, default=str)
            quarantined.append(QuarantineRecord(chunk.file.url, line_no, offset, problem, raw))
            continue
        doc_id = record.get(fields.id)
        source = record.get(fields.source)
        url = record.get(fields.url)
        extra = {
            k: v for k, v in record.items() if k not in (fields.text, fields.id, fields.source, fields.url)
        }
        columns[ID].append(str(doc_id) if doc_id is not None else f"{chunk.file.label}:{line_no}")
        columns[TEXT].append(record[fields.text])
        columns[SOURCE].append(source if isinstance(source, str) else default_source)
        columns[URL].append(url if isinstance(url, str) else None)
        columns[METADATA].append(orjson.dumps(extra, default=str).decode() if extra else None)
    table = pa.Table.from_pydict(columns, schema=CORE_SCHEMA)
    return table, quarantined


def _jsonl_records(
    chunk: RawChunk, quarantined: list[QuarantineRecord]
) -> Iterator[tuple[int, int | None, bytes | None, dict[str, Any]]]:
    offset = chunk.first_offset
    for i, raw in enumerate(chunk.lines or ()):
        line_no = chunk.first_line + i
        line_offset = offset
        offset += len(raw) + 1
        stripped = raw.strip()
        if not stripped:
            continue  # blank lines hold no record
        try:
            stripped.decode("utf-8")
        except UnicodeDecodeError as exc:
            quarantined.append(
                QuarantineRecord(chunk.file.url, line_no, line_offset,
                                 f"invalid UTF-8: bad byte at column {exc.start + 1}", raw)
            )
            continue
        try:
            record = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            quarantined.append(
                QuarantineRecord(chunk.file.url, line_no, line_offset, f"invalid JSON: {exc}", raw)
            )
            continue
        if not isinstance(record, dict):
            quarantined.append(
                QuarantineRecord(chunk.file.url, line_no, line_offset,
                                 f"not an object: the record is a JSON {type(record).__name__}", raw)
            )
            continue
        yield line_no, line_offset, raw, record


def _parquet_records(
    chunk: RawChunk, quarantined: list[QuarantineRecord]
) -> Iterator[tuple[int, int | None, bytes | None, dict[str, Any]]]:
    rows = chunk.rows.to_pylist() if chunk.rows is not None else []
    for i, record in enumerate(rows):
        yield chunk.first_line + i, None, None, record


def _core_problem(record: dict[str, Any], fields: FieldMap) -> str | None:
    if fields.text not in record:
        return f"missing text: no field {fields.text!r}"
    text = record[fields.text]
    if not isinstance(text, str):
        kind = "null" if text is None else type(text).__name__
        return f"text not a string: field {fields.text!r} is {kind}"
    return None


def quarantine_table(records: Sequence[QuarantineRecord]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {"file": r.file, "line": r.line, "offset": r.offset, "error": r.error, "raw": r.raw}
            for r in records
        ],
        schema=QUARANTINE_SCHEMA,
    )
