"""A chunk as a place in its file, for executors whose workers read their own input.

The driver cuts the input into chunks (:func:`assay.io.readers.plan_chunks`) and the local
executor sends each chunk's records to a worker on the same machine. On a cluster the
documents should not travel through the driver: :func:`slice_of` keeps only where a chunk
lies (its first line and byte offset and its record count, or for web formats the files and
chunk number), and :func:`read_slice`, run by the worker, reads exactly the same records
again. A plain JSONL file is read from the chunk's offset; a compressed one is decoded from
its start (the skipped bytes are only decompressed, not parsed); a WARC file is cut again up
to the chunk; :func:`read_slices` reads several slices of such a file in one pass. Chunks
that carry quarantine records (a file that breaks part way) are small and rare, and are sent
whole.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from assay.io.chunks import RawChunk
from assay.io.files import InputFile, read_blocks
from assay.io.web import html_file_chunks, warc_chunks


@dataclass(frozen=True)
class ChunkSlice:
    """Where a chunk's records lie: enough for a worker to read them itself."""

    kind: str  # "jsonl" | "parquet" | "warc" | "html"
    file_index: int
    chunk_index: int
    file: InputFile
    first_line: int
    first_offset: int
    count: int  # JSONL lines or Parquet rows
    chunk_bytes: int  # the cut's setting, to cut a WARC file again
    html_files: tuple[tuple[int, InputFile], ...] = ()

    @property
    def shard_id(self) -> str:
        return f"{self.file_index:05d}-{self.chunk_index:05d}"

    @property
    def sequential(self) -> bool:
        """Whether reaching this slice means reading its file from the start (a compressed
        JSONL file, a WARC file): such slices are best read together, in one pass."""
        return self.kind == "warc" or (self.kind == "jsonl" and self.file.compression is not None)


def slice_of(chunk: RawChunk, chunk_bytes: int, inputs: Sequence[InputFile]) -> ChunkSlice | RawChunk:
    """The slice a worker reads ``chunk`` back from, or the chunk itself where it carries
    quarantine records. ``chunk_bytes`` is the cut's setting, ``inputs`` the run's files."""
    if chunk.quarantined or any(r.error for r in chunk.records or ()):
        return chunk
    if chunk.records is not None:
        if chunk.file.format == "html":
            # An HTML chunk holds consecutive input files, one record each, from its first.
            first = chunk.file_index
            files = tuple((first + i, inputs[first + i]) for i in range(len(chunk.records)))
            assert all(f.url == r.file for (_, f), r in zip(files, chunk.records, strict=True))
            return ChunkSlice("html", first, chunk.chunk_index, chunk.file, 1, 0, 0, chunk_bytes, files)
        return ChunkSlice("warc", chunk.file_index, chunk.chunk_index, chunk.file, 1, 0, 0, chunk_bytes)
    if chunk.lines is not None:
        return ChunkSlice("jsonl", chunk.file_index, chunk.chunk_index, chunk.file, chunk.first_line,
                          chunk.first_offset, len(chunk.lines), chunk_bytes)
    rows = chunk.rows.num_rows if chunk.rows is not None else 0
    return ChunkSlice("parquet", chunk.file_index, chunk.chunk_index, chunk.file, chunk.first_line,
                      0, rows, chunk_bytes)


def read_slice(where: ChunkSlice) -> RawChunk:
    """The chunk that :func:`slice_of` described, read again from its file."""
    if where.kind == "jsonl":
        return RawChunk(where.file_index, where.chunk_index, where.file, where.first_line,
                        where.first_offset, _read_lines(where.file, where.first_offset, where.count))
    if where.kind == "parquet":
        return RawChunk(where.file_index, where.chunk_index, where.file, where.first_line, 0, None,
                        _read_rows(where.file, where.first_line - 1, where.count))
    if where.kind == "html":
        return next(html_file_chunks(list(where.html_files), chunk_bytes=2**62))
    chunk = next(read_slices([where]), None)  # a WARC file: cut again up to the chunk
    if chunk is None:
        raise RuntimeError(f"{where.file.url}: chunk {where.chunk_index} is gone; did the file change?")
    return chunk


def read_slices(slices: Sequence[ChunkSlice]) -> Iterator[RawChunk]:
    """The chunks of ``slices`` (of one file, in file order), reading a file that must be
    read from its start only once."""
    if not slices or not slices[0].sequential:
        yield from map(read_slice, slices)
        return
    first = slices[0]
    assert all(s.file_index == first.file_index for s in slices)
    if first.kind == "warc":
        wanted = {s.chunk_index for s in slices}
        for chunk in warc_chunks(first.file_index, first.file, first.chunk_bytes):
            if chunk.chunk_index in wanted:
                yield chunk
        return
    stream = _lines_from(first.file, first.first_offset)
    position = first.first_offset
    for where in slices:
        while position < where.first_offset:  # skip the lines of finished shards
            position += len(next(stream)) + 1
        lines = list(itertools.islice(stream, where.count))
        position += sum(len(line) + 1 for line in lines)
        yield RawChunk(where.file_index, where.chunk_index, where.file, where.first_line,
                       where.first_offset, lines)


def _lines_from(f: InputFile, offset: int) -> Iterator[bytes]:
    pending = b""
    for block in read_blocks(f, offset):
        parts = (pending + block).split(b"\n")
        pending = parts.pop()
        yield from parts
    if pending:
        yield pending


def _read_lines(f: InputFile, offset: int, count: int) -> list[bytes]:
    return list(itertools.islice(_lines_from(f, offset), count))


def _read_rows(f: InputFile, first_row: int, count: int) -> pa.Table:
    with fsspec.open(f.url, "rb") as stream:
        parquet = pq.ParquetFile(stream)
        meta = parquet.metadata
        groups, group_start, start = [], 0, None
        for i in range(meta.num_row_groups):
            rows = meta.row_group(i).num_rows
            if group_start + rows > first_row and group_start < first_row + count:
                if start is None:
                    start = group_start
                groups.append(i)
            group_start += rows
        if not groups:
            return parquet.schema_arrow.empty_table()
        table = parquet.read_row_groups(groups)
    assert start is not None
    return table.slice(first_row - start, count)
