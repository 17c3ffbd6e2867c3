"""Input files: finding them (paths, globs, fsspec URLs), telling their format from the
name, and reading their bytes with streaming decompression. A local file that cannot be read
at all (not a regular file, a denied permission) is kept with its problem, to be quarantined
whole.
"""

from __future__ import annotations

import bz2
import lzma
import os
import stat
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

import fsspec
import zstandard

from assay.errors import AssayError

Format = Literal["jsonl", "parquet", "warc", "html"]

_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_WARC_SUFFIXES = (".wet", ".warc")
_HTML_SUFFIXES = (".html", ".htm", ".xhtml")
_COMPRESSION = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd", ".bz2": "bz2", ".xz": "xz"}
_READ_BLOCK = 1 << 20


class InputError(AssayError, ValueError):
    """An input that cannot be read at all (missing file, unknown format)."""


@dataclass(frozen=True)
class InputFile:
    """One resolved input file."""

    url: str  # as fsspec understands it, protocol included for non-local files
    format: Format
    compression: str | None
    size: int
    relative: str = ""  # the path below the inputs' common folder (names generated ids)
    problem: str | None = None  # why the file cannot be read at all: it is quarantined whole

    @property
    def name(self) -> str:
        return PurePosixPath(self.url.split("://", 1)[-1]).name

    @property
    def label(self) -> str:
        """The file's name in generated ids: unique among the inputs of a run."""
        return self.relative or self.name

    @property
    def stem(self) -> str:
        return file_stem(self.url)


def file_stem(url: str) -> str:
    """A file's name without its format and compression suffixes (the default source)."""
    name = PurePosixPath(url.split("://", 1)[-1]).name
    for suffix in (*_COMPRESSION, *_JSONL_SUFFIXES, *_WARC_SUFFIXES, *_HTML_SUFFIXES, ".parquet"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name



def detect_format(url: str, declared: str = "auto") -> tuple[Format, str | None]:
    name = PurePosixPath(url.split("://", 1)[-1]).name.lower()
    compression = None
    for suffix, codec in _COMPRESSION.items():
        if name.endswith(suffix):
            compression, name = codec, name[: -len(suffix)]
            break
    if declared != "auto":
        return declared, compression  # type: ignore[return-value]
    if name.endswith(".parquet"):
        return "parquet", compression
    if name.endswith(_JSONL_SUFFIXES):
        return "jsonl", compression
    if name.endswith(_WARC_SUFFIXES):
        return "warc", compression
    if name.endswith(_HTML_SUFFIXES):
        return "html", compression
    raise InputError(
        f"{url}: cannot tell the format from the file name; name it *.jsonl[.gz|.zst], "
        "*.parquet, *.warc[.gz], *.warc.wet.gz or *.html, or set input.format"
    )


def resolve_inputs(patterns: str | Sequence[str], declared_format: str = "auto") -> list[InputFile]:
    """Expand paths, globs and fsspec URLs into a sorted, de-duplicated list of files.

    A local file that cannot be read (not a regular file, permission denied) is kept, with
    its ``problem``: the run quarantines it instead of failing or hanging on it.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    files: dict[str, InputFile] = {}
    for pattern in patterns:
        fs, path = fsspec.core.url_to_fs(pattern)
        matches = sorted(fs.glob(path)) if fsspec.core.has_magic(path) else [path]
        matches = [m for m in matches if fs.exists(m) and not fs.isdir(m)]
        if not matches:
            raise InputError(f"input {pattern!r} matches no file")
        for match in matches:
            local = _is_local(fs)
            url = fs.unstrip_protocol(match) if not local else match
            fmt, compression = detect_format(url, declared_format)
            problem = _local_problem(match) if local else None
            size = 0 if problem else int(fs.size(match) or 0)
            files[url] = InputFile(url, fmt, compression, size, problem=problem)
    ordered = [files[k] for k in sorted(files)]
    root = _common_folder([f.url for f in ordered])
    return [InputFile(f.url, f.format, f.compression, f.size, f.url[len(root):].lstrip("/"), f.problem)
            for f in ordered]


def _local_problem(path: str) -> str | None:
    """Why a local file cannot be read as input, or None. Opening is tried (a denied
    permission shows only then), but never on a FIFO or device, which could block."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return f"unreadable file: {exc.strerror}"
    if not stat.S_ISREG(mode):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file")
        return f"not a regular file: {kind}"
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        return f"unreadable file: {exc.strerror}"
    return None


def _common_folder(urls: Sequence[str]) -> str:
    """The deepest folder holding every URL (so relative paths are unique and short)."""
    if not urls:
        return ""
    parents = [u.rsplit("/", 1)[0] if "/" in u else "" for u in urls]
    first = parents[0].split("/")
    depth = len(first)
    for parent in parents[1:]:
        parts = parent.split("/")
        depth = min(depth, len(parts))
        while depth and parts[:depth] != first[:depth]:
            depth -= 1
    return "/".join(first[:depth])


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")



class TruncatedStream(EOFError):
    """A compressed stream that ends before its end-of-stream marker."""


def _decompressor(codec: str | None) -> Any:
    if codec == "gzip":
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if codec == "zstd":
        return zstandard.ZstdDecompressor().decompressobj()
    if codec == "bz2":
        return bz2.BZ2Decompressor()
    if codec == "xz":
        return lzma.LZMADecompressor()
    raise InputError(f"unsupported compression {codec!r}")


def read_blocks(f: InputFile, start: int = 0) -> Iterator[bytes]:
    """Decoded blocks of a file from decoded byte ``start`` on, decompressed incrementally.

    Decompressing here (rather than through a file object) yields every byte that decodes
    before a break, so a truncated file loses only its broken tail. Raises
    :class:`TruncatedStream` (or the codec's error) where the stream breaks. A plain file
    is read from ``start`` directly; a compressed one is decoded from its beginning and the
    first ``start`` bytes are dropped.
    """
    if start and f.compression is not None:
        yield from _skip(read_blocks(f), start)
        return
    with fsspec.open(f.url, "rb") as stream:
        if f.compression is None:
            stream.seek(start)
            while block := stream.read(_READ_BLOCK):
                yield block
            return
        decoder, fed = _decompressor(f.compression), False
        while block := stream.read(_READ_BLOCK // 4):
            while block:
                out = decoder.decompress(block)
                fed = True
                if out:
                    yield out
                if not decoder.eof:
                    break
                # End of one member: gzip and zstd files may hold several, back to back.
                block = decoder.unused_data
                decoder, fed = _decompressor(f.compression), False
        if fed and not decoder.eof:
            raise TruncatedStream("the compressed data ends before its end-of-stream marker")


def _skip(blocks: Iterator[bytes], count: int) -> Iterator[bytes]:
    for block in blocks:
        if count >= len(block):
            count -= len(block)
            continue
        yield block[count:]
        count = 0


def read_decoded(f: InputFile) -> bytes:
    """The whole decompressed content of a (small) file; raises where the stream breaks."""
    return b"".join(read_blocks(f))
