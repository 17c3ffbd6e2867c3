"""WARC, WET and HTML-file readers: records, charsets, and every record that cannot be a document."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest

from assay.io.chunks import FieldMap
from assay.io.files import resolve_inputs
from assay.io.readers import decode_chunk, plan_chunks
from assay.io.web import dechunk, decode_html, parse_content_type, parse_http_response

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_WARC = ROOT / "data" / "sample" / "sample_html.warc.gz"

PAGE = "<html><head><title>T</title></head><body><p>{}</p></body></html>"


def _read_all(pattern: str | list[str], chunk_bytes: int = 1 << 20):
    tables, bad, chunks = [], [], 0
    for chunk in plan_chunks(resolve_inputs(pattern), chunk_bytes):
        table, quarantined = decode_chunk(chunk, FieldMap())
        tables.append(table)
        bad.extend(quarantined)
        chunks += 1
    return pa.concat_tables(tables), bad, chunks


def _http(body: bytes, content_type: str | None = "text/html; charset=utf-8", status: int = 200,
          extra: str = "") -> bytes:
    head = f"HTTP/1.1 {status} OK\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    head += extra + f"Content-Length: {len(body)}\r\n\r\n"
    return head.encode("latin-1") + body


def _record(kind: str, block: bytes, n: int, uri: str = "https://example.org/") -> bytes:
    content_type = {"response": "application/http; msgtype=response",
                    "request": "application/http; msgtype=request",
                    "conversion": "text/plain", "warcinfo": "application/warc-fields"}[kind]
    head = (f"WARC/1.0\r\nWARC-Type: {kind}\r\n"
            f"WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{n:012d}>\r\n"
            f"WARC-Date: 2026-01-0{1 + n % 9}T00:00:00Z\r\nWARC-Target-URI: {uri}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(block)}\r\n\r\n")
    return head.encode() + block + b"\r\n\r\n"


def _warc(records: list[bytes], path: Path, gzip_members: bool = True) -> Path:
    # Real .warc.gz files compress each record as its own gzip member.
    data = b"".join(gzip.compress(r) for r in records) if gzip_members else b"".join(records)
    path.write_bytes(data)
    return path


def test_bundled_sample_warc_reads_every_response() -> None:
    table, bad, _ = _read_all(str(SAMPLE_WARC))
    assert table.num_rows == 274 and bad == []
    ids = table.column("id").to_pylist()
    assert len(set(ids)) == 274 and all(i.startswith("urn:uuid:") for i in ids)
    assert all(u.startswith("https://") for u in table.column("url").to_pylist())
    meta = json.loads(table.column("metadata")[0].as_py())
    assert meta["http_status"] == 200 and meta["content_type"] == "text/html" and meta["charset"] == "utf-8"
    assert meta["date"].startswith("20")
    assert set(table.column("source").to_pylist()) == {"sample_html"}
    assert all("<html" in t.lower() for t in table.column("text").to_pylist())


def test_responses_only_charsets_and_quarantine(tmp_path: Path) -> None:
    cyrillic = "Привет, мир! Это страница на русском языке, без объявленной кодировки. " * 8
    records = [
        _record("warcinfo", b"software: test\r\n", 0),
        _record("request", b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n", 1),
        _record("response", _http(PAGE.format("café utf-8").encode()), 2, "https://a.example/"),
        # Declared latin-1 in HTTP: decoded as windows-1252, as browsers do.
        _record("response", _http(PAGE.format("café latin").encode("latin-1"),
                                  "text/html; charset=ISO-8859-1"), 3),
        # Declared only in <meta>.
        _record("response", _http(('<html><head><meta charset="windows-1251"></head><body>'
                                   + cyrillic + "</body></html>").encode("cp1251"), "text/html"), 4),
        # Declared nowhere, not UTF-8: detected.
        _record("response", _http(PAGE.format(cyrillic).encode("cp1251"), "text/html"), 5),
        _record("response", _http(b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"), 6),
        _record("response", _http(PAGE.format("not found").encode(), status=404), 7),
        _record("response", _http(b"\x00\x01\x02binary\x00" * 20, "text/html"), 8),
        # Chunked and gzip-encoded body, no content type but clearly HTML.
        _record("response", _http(_chunked(gzip.compress(PAGE.format("gzipped").encode())), None,
                                  extra="Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n"), 9),
        _record("response", _http(PAGE.format("brotli").encode(), extra="Content-Encoding: br\r\n"), 10),
    ]
    table, bad, _ = _read_all(str(_warc(records, tmp_path / "crawl.warc.gz")))
    texts = table.column("text").to_pylist()
    assert len(texts) == 5  # warcinfo and request records are not documents
    assert "café utf-8" in texts[0] and "café latin" in texts[1]
    assert cyrillic.strip() in texts[2] and cyrillic.strip() in texts[3]
    assert "gzipped" in texts[4]
    charsets = [json.loads(m)["charset"] for m in table.column("metadata").to_pylist()]
    assert charsets[:3] == ["utf-8", "cp1252", "cp1251"]
    assert table.column("url")[0].as_py() == "https://a.example/"
    errors = sorted(b.error for b in bad)
    assert errors == [
        "HTTP status 404",
        "not HTML: content type image/png",
        "undecodable: binary content (NUL bytes)",
        "undecodable: unsupported content encoding 'br'",
    ]
    assert all(b.file.endswith("crawl.warc.gz") and b.offset is not None and b.raw for b in bad)
    assert len({b.offset for b in bad}) == 4  # each names its own record


def _chunked(body: bytes) -> bytes:
    parts = [body[:10], body[10:]]
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


def test_truncated_warc_keeps_complete_records_and_quarantines_the_cut_one(tmp_path: Path) -> None:
    records = [_record("response", _http(PAGE.format(f"page {i} " + "x" * 3000).encode()), i)
               for i in range(5)]
    whole = _warc(records, tmp_path / "whole.warc", gzip_members=False).read_bytes()
    (tmp_path / "cut.warc").write_bytes(whole[: len(whole) - 1500])
    table, bad, _ = _read_all(str(tmp_path / "cut.warc"))
    assert table.num_rows == 4
    assert len(bad) == 1 and bad[0].error.startswith("truncated record")
    # The offset names the fifth record's start; its partial payload is kept as raw.
    assert bad[0].offset == whole.index(b"WARC/1.0", whole.index(b"page 3")) and b"page 4" in bad[0].raw


def test_wet_conversion_records_are_text(tmp_path: Path) -> None:
    records = [_record("conversion", "Plain extracted text, déjà vu.".encode(), 1)]
    table, bad, _ = _read_all(str(_warc(records, tmp_path / "crawl.warc.wet.gz")))
    assert bad == [] and table.column("text").to_pylist() == ["Plain extracted text, déjà vu."]
    assert json.loads(table.column("metadata")[0].as_py())["content_type"] == "text/plain"
    assert table.column("source")[0].as_py() == "crawl"


def test_html_files_are_grouped_into_chunks_one_document_each(tmp_path: Path) -> None:
    for i in range(6):
        (tmp_path / f"p{i}.html").write_bytes(PAGE.format(f"page {i} ñ " + "y" * 400).encode("utf-8"))
    (tmp_path / "legacy.htm").write_bytes(
        ('<html><head><meta http-equiv="Content-Type" content="text/html; charset=iso-8859-15">'
         "</head><body>€ 5 Ärger</body></html>").encode("iso-8859-15"))
    (tmp_path / "z.html.gz").write_bytes(gzip.compress(PAGE.format("zipped").encode()))
    table, bad, chunks = _read_all([str(tmp_path / "*.htm*")], chunk_bytes=1000)
    assert bad == [] and table.num_rows == 8
    assert 1 < chunks < 8  # small files share chunks
    by_id = dict(zip(table.column("id").to_pylist(), table.column("text").to_pylist(), strict=True))
    assert "€ 5 Ärger" in by_id[str(tmp_path / "legacy.htm")]
    assert "zipped" in by_id[str(tmp_path / "z.html.gz")]


def test_http_and_charset_helpers() -> None:
    status, headers, body = parse_http_response(b"HTTP/1.0 301 Moved\r\nLocation: /x\r\n\r\nbody")
    assert (status, headers, body) == (301, {"location": "/x"}, b"body")
    assert parse_http_response(b"garbage")[0] is None
    assert parse_content_type('text/HTML; Charset="UTF-8"') == ("text/html", "UTF-8")
    assert parse_content_type(None) == (None, None)
    assert dechunk(b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n") == b"abcde"
    with pytest.raises(ValueError):
        dechunk(b"zz\r\nabc")
    # A BOM wins over a wrong declaration; an unknown label falls through to UTF-8.
    assert decode_html("\ufeffé".encode("utf-8"), "iso-8859-1") == ("é", "utf-8-sig")
    assert decode_html("é".encode(), "no-such-charset") == ("é", "utf-8")


def test_corrupt_or_cut_warc_keeps_what_was_read(tmp_path: Path) -> None:
    records = [_record("response", _http(PAGE.format(f"page {i} " + "x" * 3000).encode()), i)
               for i in range(3)]
    members = [gzip.compress(r) for r in records]
    broken = bytearray(members[1])
    broken[30:40] = b"\xff" * 10  # a corrupt gzip member in the middle
    (tmp_path / "corrupt.warc.gz").write_bytes(members[0] + bytes(broken) + members[2])
    whole = b"".join(records)
    (tmp_path / "cut.warc").write_bytes(whole[: len(records[0]) + len(records[1]) + 5])  # ends in "WARC/"
    for name in ("corrupt.warc.gz", "cut.warc"):
        table, bad, _ = _read_all(str(tmp_path / name))
        assert "page 0" in table.column("text")[0].as_py()
        assert len(bad) == 1 and bad[0].error.startswith("corrupt WARC stream"), name


def test_odd_records_are_quarantined_not_fatal(tmp_path: Path) -> None:
    records = [
        _record("response", b"HTTP/1.1 \xb200 OK\r\nContent-Type: text/html\r\n\r\n<html>x</html>", 1),
        _record("response", _http(PAGE.format("fine").encode()), 2),
    ]
    table, bad, _ = _read_all(str(_warc(records, tmp_path / "odd.warc.gz")))
    assert table.num_rows == 1 and [b.error for b in bad] == ["not an HTTP response: no status line"]


def test_broken_html_file_is_quarantined_and_sources_do_not_depend_on_chunking(tmp_path: Path) -> None:
    for name in ("alpha", "beta", "gamma"):
        (tmp_path / f"{name}.html").write_text(PAGE.format(name))
    (tmp_path / "delta.html.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 10)
    for chunk_bytes in (10, 1 << 20):
        table, bad, _ = _read_all(str(tmp_path / "*.htm*"), chunk_bytes=chunk_bytes)
        assert table.column("source").to_pylist() == ["alpha", "beta", "gamma"]
        assert len(bad) == 1 and bad[0].error.startswith("undecodable file: ZstdError")
        assert bad[0].raw.startswith(b"\x28\xb5\x2f\xfd")  # the raw bytes, for repair


def test_http_edge_cases() -> None:
    block = (b"HTTP/1.1 200 OK\nContent-Type: text/html\n\n"
             b"<html>\r\n<head></head>\r\n\r\n<body>Hi</body></html>")
    assert parse_http_response(block)[2].startswith(b"<html>")  # LF headers, CRLF body
    page = b'<html><head><meta charset="utf-16"><title>Hi</title></head><body>Hello</body></html>'
    for payload in (page, page + b" "):  # odd and even lengths
        assert decode_html(payload) == (payload.decode(), "utf-8")
