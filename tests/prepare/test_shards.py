"""The token-file format, read back by an independent Megatron-style reader written here
from the format's specification (not from assay's reader)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from assay.prepare.shards import FormatError, TokenFile, TokenWriter, index_bytes, parse_index
from assay.prepare.tokenizer import dtype_for_vocab

NUMPY_OF_CODE = {4: "<i4", 8: "<u2"}


def read_megatron(prefix: Path) -> list[list[int]]:
    """Megatron-LM's MMapIndexedDataset layout, read with struct and plain file reads."""
    with open(f"{prefix}.idx", "rb") as f:
        assert f.read(9) == b"MMIDIDX\x00\x00"
        (version,) = struct.unpack("<Q", f.read(8))
        assert version == 1
        (code,) = struct.unpack("<B", f.read(1))
        (n_seq,) = struct.unpack("<Q", f.read(8))
        (n_doc,) = struct.unpack("<Q", f.read(8))
        lengths = struct.unpack(f"<{n_seq}i", f.read(4 * n_seq))
        pointers = struct.unpack(f"<{n_seq}q", f.read(8 * n_seq))
        doc_index = struct.unpack(f"<{n_doc}q", f.read(8 * n_doc))
        assert f.read() == b""
    assert doc_index[0] == 0 and doc_index[-1] == n_seq
    item = np.dtype(NUMPY_OF_CODE[code]).itemsize
    out = []
    with open(f"{prefix}.bin", "rb") as f:
        for length, pointer in zip(lengths, pointers, strict=True):
            f.seek(pointer)
            out.append(np.frombuffer(f.read(length * item), dtype=NUMPY_OF_CODE[code]).tolist())
    return out


@pytest.mark.parametrize("vocab", [1024, 65536, 200_000])
def test_writer_round_trip_and_dtype(tmp_path: Path, vocab: int) -> None:
    dtype = dtype_for_vocab(vocab)
    assert dtype == (np.uint16 if vocab <= 65536 else np.int32)
    rng = np.random.default_rng(0)
    docs = [rng.integers(0, vocab, size=n) for n in (5, 1, 300, 17)]
    writer = TokenWriter(tmp_path / "part-00000", dtype)
    writer.write(np.concatenate(docs[:2]), [5, 1])
    writer.write(np.concatenate(docs[2:]), [300, 17])
    assert writer.close() == 4
    assert read_megatron(tmp_path / "part-00000") == [d.tolist() for d in docs]
    tf = TokenFile(tmp_path / "part-00000")
    assert [tf[i].tolist() for i in range(len(tf))] == [d.tolist() for d in docs]
    # nanoGPT reads the .bin alone (as uint32 when ids exceed uint16).
    flat = np.memmap(tmp_path / "part-00000.bin", dtype=np.uint16 if vocab <= 65536 else np.uint32, mode="r")
    assert flat.tolist() == np.concatenate(docs).tolist()
    assert not list(tmp_path.glob(".*tmp"))


def test_index_bytes_parse_back() -> None:
    data = index_bytes(np.array([3, 0, 7]), np.dtype(np.uint16))
    idx = parse_index(data)
    assert idx.lengths.tolist() == [3, 0, 7]
    assert idx.pointers.tolist() == [0, 6, 6]
    assert idx.documents.tolist() == [0, 1, 2, 3]


def test_corrupt_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="magic"):
        parse_index(b"X" * 64)
    with pytest.raises(FormatError, match="size"):
        parse_index(index_bytes(np.array([1, 2]), np.dtype(np.uint16))[:-3])
    writer = TokenWriter(tmp_path / "p", np.uint16)
    writer.write(np.arange(10), [10])
    writer.close()
    with open(tmp_path / "p.bin", "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(FormatError, match="the index says 20"):
        TokenFile(tmp_path / "p")
    with pytest.raises(FormatError, match="add up"):
        TokenWriter(tmp_path / "q", np.uint16).write(np.arange(3), [2])
