"""A chunk described as a slice of its file reads back to the same records, for every input
format, and the slice itself carries no document."""

from __future__ import annotations

import gzip
import json
import pickle
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from assay.io.chunks import FieldMap, RawChunk
from assay.io.files import resolve_inputs
from assay.io.readers import decode_chunk, plan_chunks
from assay.io.slices import ChunkSlice, read_slice, read_slices, slice_of

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample"


def _docs(n: int) -> list[dict]:
    # Uneven lengths, blank lines and a line without its final newline come below.
    return [{"id": f"d{i}", "text": f"document {i} " + "wörd " * (i % 37)} for i in range(n)]


def _jsonl(docs: list[dict]) -> bytes:
    lines = [json.dumps(d, ensure_ascii=False).encode() for d in docs]
    lines.insert(5, b"")
    lines.insert(9, b"{not json")
    return b"\n".join(lines)  # no newline after the last record


def _same_records(pattern: str, chunk_bytes: int) -> int:
    """Check every chunk of the inputs against its slice read back; return the slice count."""
    files = resolve_inputs(pattern)
    slices = 0
    for chunk in plan_chunks(files, chunk_bytes):
        where = slice_of(chunk, chunk_bytes, files)
        if isinstance(where, RawChunk):
            assert where is chunk and (chunk.quarantined or any(r.error for r in chunk.records or ()))
            continue
        slices += 1
        assert where.shard_id == chunk.shard_id
        assert len(pickle.dumps(where)) < 2_000  # where the records are, not the records
        table, bad = decode_chunk(read_slice(where), FieldMap())
        expected_table, expected_bad = decode_chunk(chunk, FieldMap())
        assert table.equals(expected_table)
        assert [vars(b) for b in bad] == [vars(b) for b in expected_bad]
    return slices


@pytest.mark.parametrize("name, encode", [
    ("docs.jsonl", lambda b: b),
    ("docs.jsonl.gz", gzip.compress),
    ("docs.jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_jsonl_slices_read_back_the_same_lines(tmp_path: Path, name: str, encode) -> None:
    (tmp_path / name).write_bytes(encode(_jsonl(_docs(400))))
    assert _same_records(str(tmp_path / name), chunk_bytes=2_000) > 10


def test_parquet_slices_cross_row_groups(tmp_path: Path) -> None:
    table = pa.Table.from_pylist(_docs(500))
    pq.write_table(table, tmp_path / "docs.parquet", row_group_size=37)
    pq.write_table(table.slice(0, 0), tmp_path / "empty.parquet")
    assert _same_records(str(tmp_path / "*.parquet"), chunk_bytes=3_000) > 10


def test_warc_and_html_slices(tmp_path: Path) -> None:
    pytest.importorskip("fastwarc")
    assert _same_records(str(SAMPLE / "sample_html.warc.gz"), chunk_bytes=200_000) > 5
    for i in range(12):
        (tmp_path / f"page{i:02d}.html").write_text(f"<html><body><p>page {i} " + "text " * i * 50)
    assert _same_records(str(tmp_path / "*.html"), chunk_bytes=2_000) > 2


def test_a_truncated_file_sends_its_broken_chunk_whole(tmp_path: Path) -> None:
    data = gzip.compress(_jsonl(_docs(300)))
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) * 2 // 3])
    files = resolve_inputs(str(tmp_path / "cut.jsonl.gz"))
    kinds = [type(slice_of(c, 2_000, files)) for c in plan_chunks(files, 2_000)]
    assert kinds[-1] is RawChunk and ChunkSlice in kinds
    assert _same_records(str(tmp_path / "cut.jsonl.gz"), chunk_bytes=2_000) == len(kinds) - 1


def test_sample_slices(tmp_path: Path) -> None:
    shutil.copy(SAMPLE / "sample_text.jsonl.gz", tmp_path)
    assert _same_records(str(tmp_path / "sample_text.jsonl.gz"), chunk_bytes=1_000_000) >= 10


@pytest.mark.parametrize("name", ["docs.jsonl.gz", "sample_html.warc.gz"])
def test_slices_of_a_file_read_in_one_pass_skip_the_gaps(tmp_path: Path, name: str) -> None:
    if name.endswith(".warc.gz"):
        pytest.importorskip("fastwarc")
        shutil.copy(SAMPLE / name, tmp_path)
        chunk_bytes = 200_000
    else:
        (tmp_path / name).write_bytes(gzip.compress(_jsonl(_docs(400))))
        chunk_bytes = 2_000
    files = resolve_inputs(str(tmp_path / name))
    chunks = list(plan_chunks(files, chunk_bytes))
    slices = [slice_of(c, chunk_bytes, files) for c in chunks]
    assert all(isinstance(s, ChunkSlice) and s.sequential for s in slices) and len(slices) > 5
    wanted = [i for i in range(len(slices)) if i % 3 != 1]  # as if every third shard were done
    read = list(read_slices([slices[i] for i in wanted]))
    assert [c.shard_id for c in read] == [chunks[i].shard_id for i in wanted]
    for i, chunk in zip(wanted, read, strict=True):
        table, bad = decode_chunk(chunk, FieldMap())
        expected_table, expected_bad = decode_chunk(chunks[i], FieldMap())
        assert table.equals(expected_table) and len(bad) == len(expected_bad)
