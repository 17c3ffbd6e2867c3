"""Readers: formats, globs, fsspec URLs, chunking, and every kind of malformed record."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from assay.documents import CORE_SCHEMA
from assay.io.chunks import FieldMap
from assay.io.files import InputError, resolve_inputs
from assay.io.readers import decode_chunk, plan_chunks

DOCS = [{"id": f"d{i}", "text": f"document number {i}", "lang": "en"} for i in range(10)]


def _jsonl(docs: list[dict]) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


def _read_all(pattern: str, chunk_bytes: int = 1 << 20, fields: FieldMap | None = None):
    tables, bad = [], []
    for chunk in plan_chunks(resolve_inputs(pattern), chunk_bytes):
        table, quarantined = decode_chunk(chunk, fields or FieldMap())
        tables.append(table)
        bad.extend(quarantined)
    return pa.concat_tables(tables), bad


@pytest.mark.parametrize(
    ("name", "encode"),
    [
        ("docs.jsonl", lambda b: b),
        ("docs.jsonl.gz", gzip.compress),
        ("docs.jsonl.zst", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_jsonl_variants_read_the_same_documents(tmp_path: Path, name: str, encode) -> None:
    path = tmp_path / name
    path.write_bytes(encode(_jsonl(DOCS)))
    table, bad = _read_all(str(path))
    assert bad == []
    assert table.schema == CORE_SCHEMA
    assert table.column("id").to_pylist() == [d["id"] for d in DOCS]
    assert table.column("text").to_pylist() == [d["text"] for d in DOCS]
    # Fields outside the core schema are kept in metadata, as JSON.
    assert json.loads(table.column("metadata")[0].as_py()) == {"lang": "en"}
    # No source field in the records: the file's stem names the source.
    assert set(table.column("source").to_pylist()) == {"docs"}


def test_parquet_input_and_glob(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(DOCS[:4]), tmp_path / "a.parquet")
    pq.write_table(pa.Table.from_pylist(DOCS[4:]), tmp_path / "b.parquet")
    table, bad = _read_all(str(tmp_path / "*.parquet"))
    assert bad == []
    assert table.column("id").to_pylist() == [d["id"] for d in DOCS]


def test_memory_filesystem_url() -> None:
    with fsspec.open("memory://corpus/docs.jsonl", "wb") as f:
        f.write(_jsonl(DOCS))
    table, _ = _read_all("memory://corpus/*.jsonl")
    assert table.num_rows == len(DOCS)


def test_missing_input_names_the_pattern(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"nothing\.jsonl"):
        resolve_inputs(str(tmp_path / "nothing.jsonl"))


def test_unknown_extension_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "docs.txt").write_text("x")
    with pytest.raises(InputError, match="cannot tell the format"):
        resolve_inputs(str(tmp_path / "docs.txt"))


def test_chunks_cover_every_line_once_and_keep_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_bytes(_jsonl(DOCS))
    chunks = list(plan_chunks(resolve_inputs(str(path)), chunk_bytes=100))
    assert len(chunks) > 2
    lines = [c.first_line + i for c in chunks for i in range(c.n_records)]
    assert lines == list(range(1, len(DOCS) + 1))
    assert [c.shard_id for c in chunks] == [f"00000-{i:05d}" for i in range(len(chunks))]


def test_malformed_records_are_quarantined_with_file_line_and_reason(tmp_path: Path) -> None:
    lines = [
        b'{"id": "ok1", "text": "fine"}',
        b'{"id": "bad-json", "text": ',
        b'{"id": "bad-utf8", "text": "caf\xe9"}',
        b'{"id": "no-text"}',
        b'{"id": "int-text", "text": 42}',
        b'["a", "list"]',
        b"",
        b'{"id": "ok2", "text": "also fine"}',
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    table, bad = _read_all(str(path))
    assert table.column("id").to_pylist() == ["ok1", "ok2"]
    found = {(b.line, b.error.split(":")[0]) for b in bad}
    assert found == {
        (2, "invalid JSON"),
        (3, "invalid UTF-8"),
        (4, "missing text"),
        (5, "text not a string"),
        (6, "not an object"),
    }
    assert all(b.file.endswith("mixed.jsonl") for b in bad)
    # The raw bytes are kept so the record can be repaired and restored.
    assert {b.raw for b in bad} == set(lines[1:6])
    # Offsets point at the start of each bad line.
    data = path.read_bytes()
    for b in bad:
        assert data[b.offset:].startswith(b.raw)


def test_truncated_gzip_keeps_complete_lines_and_quarantines_the_tail(tmp_path: Path) -> None:
    payload = gzip.compress(_jsonl(DOCS * 50))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(payload[: len(payload) // 2])
    table, bad = _read_all(str(path))
    assert 0 < table.num_rows < len(DOCS) * 50
    assert len(bad) == 1
    assert bad[0].error.startswith("truncated stream")
    assert bad[0].line == table.num_rows + 1


def test_field_mapping_and_generated_ids(tmp_path: Path) -> None:
    path = tmp_path / "custom.jsonl"
    path.write_bytes(_jsonl([{"content": "hello", "link": "https://x.org"}, {"content": "bye"}]))
    fields = FieldMap(text="content", url="link", default_source="web")
    table, bad = _read_all(str(path), fields=fields)
    assert bad == []
    assert table.column("text").to_pylist() == ["hello", "bye"]
    assert table.column("url").to_pylist() == ["https://x.org", None]
    assert table.column("source").to_pylist() == ["web", "web"]
    # Without an id field, the id is file:line, stable across runs.
    assert table.column("id").to_pylist() == ["custom.jsonl:1", "custom.jsonl:2"]


def test_parquet_null_text_is_quarantined(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["a", "b"], "text": ["x", None]}), tmp_path / "n.parquet")
    table, bad = _read_all(str(tmp_path / "n.parquet"))
    assert table.column("id").to_pylist() == ["a"]
    assert [(b.line, b.error.split(":")[0]) for b in bad] == [(2, "text not a string")]
