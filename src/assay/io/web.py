"""WARC, WET and HTML-file readers: web records into the core schema.

The split follows :mod:`assay.io.readers`: the driver cuts each file into chunks of raw
records (:func:`warc_chunks`, :func:`html_file_chunks`), a worker decodes them
(:func:`decode_web_records`).

* **WARC** (``.warc``, ``.warc.gz``): ``response`` records only (requests, metadata and
  ``warcinfo`` records hold no document). The record's HTTP headers give the status, the
  content type and the declared charset; the payload is un-chunked and un-gzipped if the
  server said so. ``id`` is the WARC-Record-ID, ``url`` the WARC-Target-URI; the crawl date,
  content type, HTTP status and the charset used go into ``metadata``.
* **WET** (``.warc.wet.gz``, Common Crawl's extracted text): ``conversion`` records, whose
  payload is already UTF-8 text.
* **HTML files** (``.html``, ``.htm``, optionally compressed): one document per file, ``id``
  the file's path. Small files are grouped so a shard holds about ``chunk_bytes``.

A response that is not a successful HTML page (``not HTML: image/png``, ``HTTP status 404``),
a payload that cannot be decoded, and a record cut short by a truncated file go to
quarantine with the file, the record's byte offset and the reason, with the payload as
``raw``: nothing disappears.

Text is decoded as a browser does (WHATWG encoding sniffing, simplified): a byte-order mark,
then the HTTP ``charset``, then a ``<meta charset>`` in the first 4 KB, then UTF-8, then
detection with ``charset-normalizer`` for pages that declare nothing usable.
"""

from __future__ import annotations

import codecs
import re
import zlib
from collections.abc import Iterator
from typing import Any

import fsspec
import orjson
import pyarrow as pa

from assay.documents import CORE_SCHEMA, ID, METADATA, SOURCE, TEXT, URL
from assay.io.chunks import FieldMap, QuarantineRecord, RawChunk, WebRecord
from assay.io.files import InputError, InputFile, file_stem, read_decoded

HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_SNIFF_BYTES = 4096


class Undecodable(ValueError):
    """A payload no candidate charset decodes."""


# -- driver side ----------------------------------------------------------------------------


def warc_chunks(file_index: int, f: InputFile, chunk_bytes: int) -> Iterator[RawChunk]:
    """Cut a WARC or WET file into chunks of about ``chunk_bytes`` of record blocks."""
    try:
        from fastwarc.warc import ArchiveIterator, WarcRecordType
    except ImportError:
        raise InputError(f"{f.url}: reading WARC files needs the web extra: "
                         "pip install 'assay[web]'") from None

    if f.compression not in (None, "gzip"):
        raise InputError(f"{f.url}: WARC files must be plain or gzip-compressed, not {f.compression}")
    wanted = WarcRecordType.response | WarcRecordType.conversion
    chunk_index, records, size = 0, [], 0
    next_offset = 0
    with fsspec.open(f.url, "rb") as stream:
        # parse_http=False: the block is read whole, so a record cut short by a truncated
        # file is detected (block shorter than Content-Length); HTTP is parsed in the worker.
        records_read = iter(ArchiveIterator(stream, record_types=wanted, parse_http=False))
        while True:
            try:
                record = next(records_read)
                block = record.reader.read()
            except StopIteration:
                break
            except (OSError, ValueError, RuntimeError) as exc:
                # A corrupt or cut file: keep what was read, quarantine where it breaks.
                records.append(WebRecord(
                    file=f.url, offset=next_offset, kind="broken", record_id=None, target_uri=None,
                    date=None, block=b"", error=f"corrupt WARC stream after this offset: {exc}",
                ))
                break
            kind = "response" if record.record_type == WarcRecordType.response else "conversion"
            records.append(WebRecord(
                file=f.url, offset=int(record.stream_pos), kind=kind,
                record_id=_strip_angle(record.record_id), target_uri=record.headers.get("WARC-Target-URI"),
                date=record.headers.get("WARC-Date"), block=block,
                truncated=len(block) < int(record.content_length),
            ))
            next_offset = int(record.stream_pos) + 1
            size += len(block)
            if size >= chunk_bytes:
                yield RawChunk(file_index, chunk_index, f, 1, 0, records=records)
                chunk_index, records, size = chunk_index + 1, [], 0
    if records or chunk_index == 0:
        yield RawChunk(file_index, chunk_index, f, 1, 0, records=records)


def html_file_chunks(
    files: list[tuple[int, InputFile]], chunk_bytes: int
) -> Iterator[RawChunk]:
    """Group consecutive HTML files into chunks of about ``chunk_bytes``; one record per file."""
    records: list[WebRecord] = []
    first: tuple[int, InputFile] | None = None
    size = 0
    for file_index, f in files:
        if first is None:
            first = (file_index, f)
        error = None
        try:
            content = read_decoded(f)
        except Exception as exc:  # any codec's error: this file is quarantined, the run goes on
            with fsspec.open(f.url, "rb") as stream:
                content = stream.read()  # the raw (compressed) bytes, for repair
            error = f"undecodable file: {type(exc).__name__}: {exc}"
        records.append(WebRecord(file=f.url, offset=0, kind="file", record_id=f.url,
                                 target_uri=None, date=None, block=content, error=error))
        size += len(content)
        if size >= chunk_bytes:
            yield RawChunk(first[0], 0, first[1], 1, 0, records=records)
            records, first, size = [], None, 0
    if first is not None:
        yield RawChunk(first[0], 0, first[1], 1, 0, records=records)


def _strip_angle(record_id: str | None) -> str | None:
    if record_id and record_id.startswith("<") and record_id.endswith(">"):
        return record_id[1:-1]
    return record_id


# -- worker side ----------------------------------------------------------------------------


def decode_web_records(
    chunk: RawChunk, fields: FieldMap
) -> tuple[pa.Table, list[QuarantineRecord]]:
    """Decode the records of a web chunk into a core-schema table (and quarantine)."""
    quarantined = list(chunk.quarantined)
    columns: dict[str, list[Any]] = {c: [] for c in CORE_SCHEMA.names}
    for record in chunk.records or ():
        try:
            text, meta = _decode_record(record)
        except _Rejected as exc:
            quarantined.append(QuarantineRecord(record.file, None, record.offset, str(exc), exc.raw))
            continue
        except Exception as exc:  # a record no rule foresaw: quarantined, never the end of a run
            quarantined.append(QuarantineRecord(
                record.file, None, record.offset, f"unreadable record: {type(exc).__name__}: {exc}",
                record.block))
            continue
        columns[ID].append(record.record_id or f"{record.file}@{record.offset}")
        columns[TEXT].append(text)
        # Per record: HTML files grouped into one chunk each keep their own name.
        columns[SOURCE].append(fields.default_source or file_stem(record.file))
        columns[URL].append(record.target_uri)
        columns[METADATA].append(orjson.dumps(meta).decode())
    return pa.Table.from_pydict(columns, schema=CORE_SCHEMA), quarantined


class _Rejected(ValueError):
    def __init__(self, reason: str, raw: bytes | None) -> None:
        super().__init__(reason)
        self.raw = raw


def _decode_record(record: WebRecord) -> tuple[str, dict[str, Any]]:
    if record.error is not None:
        raise _Rejected(record.error, record.block or None)
    if record.truncated:
        raise _Rejected(f"truncated record: the file ends inside this {record.kind} record", record.block)
    meta: dict[str, Any] = {}
    if record.date:
        meta["date"] = record.date
    if record.kind == "conversion":  # WET: already text, UTF-8 by Common Crawl's spec
        text, charset = _decode_or_reject(record.block, "utf-8", html=False)
        meta.update(content_type="text/plain", charset=charset)
        return text, meta
    if record.kind == "file":
        payload, declared = record.block, None
        content_type = "text/html"
    else:
        status, headers, payload = parse_http_response(record.block)
        if status is None:
            raise _Rejected("not an HTTP response: no status line", record.block[:_SNIFF_BYTES])
        meta["http_status"] = status
        if not 200 <= status < 300:
            raise _Rejected(f"HTTP status {status}", payload)
        content_type, declared = parse_content_type(headers.get("content-type"))
        if content_type is not None and content_type not in HTML_CONTENT_TYPES:
            raise _Rejected(f"not HTML: content type {content_type}", payload)
        try:
            payload = _undo_encodings(payload, headers)
        except (ValueError, zlib.error) as exc:
            raise _Rejected(f"undecodable: {exc}", payload) from None
        if content_type is None:  # no header: sniff the body, as browsers do
            if not looks_like_html(payload):
                raise _Rejected("not HTML: content type missing and the body is not HTML", payload)
            content_type = "text/html"
    text, charset = _decode_or_reject(payload, declared, html=True)
    meta.update(content_type=content_type, charset=charset)
    return text, meta


def _decode_or_reject(payload: bytes, declared: str | None, *, html: bool) -> tuple[str, str]:
    utf16 = payload.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if b"\x00" in payload[:_SNIFF_BYTES] and not utf16:
        raise _Rejected("undecodable: binary content (NUL bytes)", payload)
    try:
        return decode_html(payload, declared) if html else decode_text(payload, declared)
    except Undecodable as exc:
        raise _Rejected(f"undecodable: {exc}", payload) from None


def parse_http_response(block: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of a raw HTTP response; status None if there is
    no ``HTTP/x.y NNN`` status line."""
    # Headers end at the first blank line, CRLF or bare LF, whichever comes first.
    end = _BLANK_LINE.search(block)
    head, body = (block[: end.start()], block[end.end():]) if end else (block, b"")
    lines = head.decode("latin-1").splitlines()
    if not lines or not lines[0].startswith("HTTP/"):
        return None, {}, block
    parts = lines[0].split(None, 2)
    status = int(parts[1]) if len(parts) > 1 and re.fullmatch(r"[0-9]{3}", parts[1]) else None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return status, headers, body


def parse_content_type(value: str | None) -> tuple[str | None, str | None]:
    """(media type, charset) of a Content-Type header value."""
    if not value:
        return None, None
    media, *params = value.split(";")
    charset = None
    for param in params:
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset":
            charset = val.strip().strip("\"'") or None
    return media.strip().lower() or None, charset


def looks_like_html(payload: bytes) -> bool:
    head = payload[:_SNIFF_BYTES].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head or b"<body" in head


def _undo_encodings(payload: bytes, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        payload = dechunk(payload)
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompress(payload, 16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        try:
            return zlib.decompress(payload)
        except zlib.error:
            return zlib.decompress(payload, -zlib.MAX_WBITS)  # raw deflate, as some servers send
    if encoding not in ("", "identity"):
        raise ValueError(f"unsupported content encoding {encoding!r}")
    return payload


def dechunk(payload: bytes) -> bytes:
    """The body of an HTTP/1.1 chunked transfer encoding (ValueError if malformed)."""
    out, pos = bytearray(), 0
    while True:
        end = payload.find(b"\r\n", pos)
        if end == -1:
            raise ValueError("malformed chunked transfer encoding")
        size_field = payload[pos:end].split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise ValueError("malformed chunked transfer encoding") from None
        if size == 0:
            return bytes(out)
        out += payload[end + 2 : end + 2 + size]
        pos = end + 2 + size + 2


# -- charsets -------------------------------------------------------------------------------

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_META_CHARSET = re.compile(rb"""<meta[^>]{0,512}?charset\s*=\s*["']?\s*([A-Za-z0-9_:.+-]{1,40})""", re.I)
# HTML5 decodes these labels as windows-1252, a superset.
_WHATWG_ALIASES = {"iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "us-ascii": "cp1252",
                   "ascii": "cp1252", "iso_8859-1": "cp1252", "x-user-defined": "cp1252"}
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    label = label.strip().lower()
    label = _WHATWG_ALIASES.get(label, label)
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return None
    if name.startswith(("utf-16", "utf-32")):
        # Without a BOM (checked first) a page is not UTF-16; HTML reads the label as UTF-8.
        return "utf-8"
    if name == "utf-7":
        return None  # not a web encoding; ignored as HTML says
    return name


def decode_html(payload: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode an HTML payload: BOM, declared charset, ``<meta charset>``, UTF-8, detection.

    Returns (text, codec used); raises :class:`Undecodable` if no candidate decodes it.
    """
    meta = _META_CHARSET.search(payload[:_SNIFF_BYTES])
    return _decode(payload, [declared, meta.group(1).decode("ascii") if meta else None])


def decode_text(payload: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode a plain-text payload: BOM, declared charset, UTF-8, detection."""
    return _decode(payload, [declared])


def _decode(payload: bytes, labels: list[str | None]) -> tuple[str, str]:
    for bom, codec in _BOMS:
        if payload.startswith(bom):
            return payload.decode(codec, errors="replace"), codec
    tried = []
    for codec in [*(_codec(label) for label in labels), "utf-8"]:
        if codec is None or codec in tried:
            continue
        tried.append(codec)
        try:
            return payload.decode(codec), codec
        except (UnicodeDecodeError, LookupError):
            continue
    from charset_normalizer import from_bytes

    best = from_bytes(payload).best()
    if best is None:
        raise Undecodable(f"no charset decodes it (tried {', '.join(tried)} and detection)")
    return str(best), best.encoding
