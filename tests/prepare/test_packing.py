"""Dataset Decomposition and concat-and-chunk arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.prepare.packing import REST, Pieces, bucket_batch_size, decompose, gather, windows


def test_decompose_follows_the_binary_representation() -> None:
    # 8192*2 + 1024 + 256 + 7 = 17671 tokens (Pouransari et al. 2024, Fig. 2's scheme).
    out = decompose(np.array([17671]), 8, 13)
    assert out[13].offset.tolist() == [0, 8192]
    assert out[10].offset.tolist() == [16384]
    assert out[8].offset.tolist() == [17408]
    assert out[REST].offset.tolist() == [17664] and out[REST].length.tolist() == [7]
    assert out[12].doc.size == out[11].doc.size == out[9].doc.size == 0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 40_000), min_size=1, max_size=30), st.integers(0, 6), st.integers(0, 6))
def test_pieces_tile_every_document_exactly(lengths: list[int], lo: int, span: int) -> None:
    lo, hi = lo + 4, lo + 4 + span
    arr = np.array(lengths)
    out = decompose(arr, lo, hi)
    covered = [[] for _ in lengths]
    for k, pieces in out.items():
        if k != REST:
            assert np.all(pieces.length == 1 << k)
        else:
            assert np.all(pieces.length < 1 << lo)
        for d, o, n in zip(pieces.doc, pieces.offset, pieces.length, strict=True):
            covered[d].append((int(o), int(n)))
    for d, spans in enumerate(covered):
        spans.sort()
        position = 0
        for o, n in spans:
            assert o == position
            position += n
        assert position == lengths[d]
        sizes = [n for _, n in spans]
        assert sizes == sorted(sizes, reverse=True)  # largest first


def test_gather_reads_pieces_back_to_back() -> None:
    tokens = np.arange(100)
    starts = np.array([0, 10, 40])
    pieces = Pieces(np.array([2, 0, 1]), np.array([5, 0, 3]), np.array([2, 3, 4]))
    assert gather(tokens, starts, pieces).tolist() == [45, 46, 0, 1, 2, 13, 14, 15, 16]


def test_window_counts_and_batch_sizes() -> None:
    assert windows(2049, 2048) == 1 and windows(2048, 2048) == 0 and windows(0, 8) == 0
    assert bucket_batch_size(1 << 16, 13) == 8 and bucket_batch_size(1 << 16, 8) == 256
    assert bucket_batch_size(100, 13) == 1
    with pytest.raises(ValueError):
        decompose(np.array([5]), 9, 8)
