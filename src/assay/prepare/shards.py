"""The token-file format: a flat ``.bin`` of token ids and a Megatron-style ``.idx``.

``NAME.bin`` is the token ids, little-endian, uint16 (vocabulary <= 65,536) or int32, with
no header: ``np.memmap("NAME.bin", dtype=np.uint16)`` is nanoGPT's reader. ``NAME.idx`` is
Megatron-LM's ``MMapIndexedDataset`` index, so ``IndexedDataset("NAME")`` reads the pair:

    9 bytes   magic b"MMIDIDX\\x00\\x00"
    8 bytes   version, uint64 = 1
    1 byte    dtype code (uint16 = 8, int32 = 4)
    8 bytes   number of sequences S, uint64
    8 bytes   number of document boundaries S + 1, uint64
    S x int32 sequence lengths, in tokens
    S x int64 byte offset of each sequence in NAME.bin
    (S+1) x int64 document boundaries 0, 1, ..., S (each sequence is one document)

All integers little-endian. :class:`TokenFile` reads a pair with numpy alone.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assay.errors import AssayError

MAGIC = b"MMIDIDX\x00\x00"
VERSION = 1
DTYPE_CODES: dict[int, np.dtype] = {
    1: np.dtype(np.uint8), 2: np.dtype(np.int8), 3: np.dtype(np.int16), 4: np.dtype(np.int32),
    5: np.dtype(np.int64), 6: np.dtype(np.float64), 7: np.dtype(np.float32), 8: np.dtype(np.uint16),
}
CODE_OF = {dtype: code for code, dtype in DTYPE_CODES.items()}
_HEADER = struct.Struct("<9sQBQQ")


class FormatError(AssayError, ValueError):
    """A token file or index that does not follow the format."""


def index_bytes(lengths: np.ndarray, dtype: np.dtype) -> bytes:
    """The ``.idx`` content for sequences of ``lengths`` tokens stored back to back."""
    lengths = np.asarray(lengths, dtype=np.int64)
    dtype = np.dtype(dtype)
    if lengths.size and (lengths.min() < 0 or lengths.max() > np.iinfo(np.int32).max):
        raise FormatError("sequence lengths must fit int32")
    pointers = np.zeros(lengths.size, dtype="<i8")
    if lengths.size:
        np.cumsum(lengths[:-1] * dtype.itemsize, out=pointers[1:])
    header = _HEADER.pack(MAGIC, VERSION, CODE_OF[dtype], lengths.size, lengths.size + 1)
    return b"".join([header, lengths.astype("<i4").tobytes(), pointers.tobytes(),
                     np.arange(lengths.size + 1, dtype="<i8").tobytes()])


@dataclass(frozen=True)
class Index:
    """A parsed ``.idx``."""

    dtype: np.dtype
    lengths: np.ndarray  # int32, tokens per sequence
    pointers: np.ndarray  # int64, byte offset per sequence
    documents: np.ndarray  # int64, sequence boundaries of documents


def parse_index(data: bytes | memoryview) -> Index:
    """Parse ``.idx`` bytes; :class:`FormatError` if they do not follow the format."""
    if len(data) < _HEADER.size:
        raise FormatError("index too short")
    magic, version, code, n_seq, n_doc = _HEADER.unpack_from(data, 0)
    if magic != MAGIC or version != VERSION or code not in DTYPE_CODES:
        raise FormatError("not a Megatron-style index (magic, version or dtype code)")
    at = _HEADER.size
    need = at + 4 * n_seq + 8 * n_seq + 8 * n_doc
    if len(data) != need:
        raise FormatError(f"index size {len(data)} != {need} for {n_seq} sequences")
    lengths = np.frombuffer(data, dtype="<i4", count=n_seq, offset=at)
    pointers = np.frombuffer(data, dtype="<i8", count=n_seq, offset=at + 4 * n_seq)
    documents = np.frombuffer(data, dtype="<i8", count=n_doc, offset=at + 12 * n_seq)
    return Index(DTYPE_CODES[code], lengths, pointers, documents)


def _with(prefix: Path, suffix: str) -> Path:
    return prefix.parent / (prefix.name + suffix)


class TokenFile:
    """A ``.bin``/``.idx`` pair, memory-mapped: ``len()`` sequences, ``[i]`` the i-th one."""

    def __init__(self, prefix: str | Path) -> None:
        self.prefix = Path(prefix)
        self.index = parse_index(_with(self.prefix, ".idx").read_bytes())
        bin_path = _with(self.prefix, ".bin")
        size = bin_path.stat().st_size
        expected = int(self.index.lengths.sum(dtype=np.int64)) * self.index.dtype.itemsize
        if size != expected:
            raise FormatError(f"{bin_path}: {size} bytes, the index says {expected}")
        self.tokens = (np.memmap(bin_path, dtype=self.index.dtype, mode="r") if size
                       else np.zeros(0, self.index.dtype))
        self.starts = self.index.pointers // self.index.dtype.itemsize

    def __len__(self) -> int:
        return int(self.index.lengths.size)

    def __getitem__(self, i: int) -> np.ndarray:
        start = int(self.starts[i])
        return self.tokens[start: start + int(self.index.lengths[i])]

    @property
    def n_tokens(self) -> int:
        return int(self.tokens.size)


class TokenWriter:
    """Appends sequences to ``PREFIX.bin`` and writes ``PREFIX.idx`` on :meth:`close`; both
    under temporary names until complete."""

    def __init__(self, prefix: str | Path, dtype: np.dtype) -> None:
        self.prefix = Path(prefix)
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self.dtype = np.dtype(dtype)
        self._tmp_bin = self.prefix.parent / f".{self.prefix.name}.bin.tmp"
        self._out = open(self._tmp_bin, "wb")
        self._lengths: list[np.ndarray] = []
        self.n_tokens = 0

    def write(self, tokens: np.ndarray, lengths: np.ndarray) -> None:
        """Append ``tokens``, made of sequences of ``lengths`` tokens."""
        tokens = np.ascontiguousarray(tokens, dtype=self.dtype)
        if int(np.sum(lengths)) != tokens.size:
            raise FormatError("sequence lengths do not add up to the tokens written")
        self._out.write(tokens.astype(self.dtype.newbyteorder("<"), copy=False).tobytes())
        self._lengths.append(np.asarray(lengths, dtype=np.int64))
        self.n_tokens += tokens.size

    def close(self) -> int:
        """Finish both files; return the number of sequences."""
        self._out.close()
        lengths = np.concatenate(self._lengths) if self._lengths else np.zeros(0, np.int64)
        tmp_idx = self.prefix.parent / f".{self.prefix.name}.idx.tmp"
        tmp_idx.write_bytes(index_bytes(lengths, self.dtype))
        os.replace(self._tmp_bin, _with(self.prefix, ".bin"))
        os.replace(tmp_idx, _with(self.prefix, ".idx"))
        return int(lengths.size)
