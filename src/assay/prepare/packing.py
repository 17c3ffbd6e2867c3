"""Packing documents into training sequences; pure functions on arrays of lengths.

- **Concat-and-chunk** (GPT-2, nanoGPT, Megatron): documents, each followed by the
  end-of-document token, are laid end to end and a trainer reads windows of the context
  length. Nothing to compute here beyond the order; :func:`windows` counts the windows.
- **Dataset Decomposition** (Pouransari et al. 2024, "Dataset Decomposition: Faster LLM
  Training with Variable Sequence Length Curriculum"): a document of length l is cut into
  pieces of power-of-two lengths following the binary representation of l (pieces longer
  than 2^max become several 2^max pieces), each piece going to the bucket of its length, so
  a batch drawn from one bucket has no padding and no attention across documents. The
  buckets run from 2^min to 2^max (2^8..2^13 by default); what is left at a document's end
  below 2^min (l mod 2^min tokens) goes to a ``rest`` set, so nothing is lost and a trainer
  may use or skip it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

REST = -1  # the bucket key of the pieces shorter than 2^min


@dataclass(frozen=True)
class Pieces:
    """Pieces of one bucket: which document, where in it, and how long (tokens)."""

    doc: np.ndarray  # int64 document number
    offset: np.ndarray  # int64 token offset within the document
    length: np.ndarray  # int64

    @property
    def n_tokens(self) -> int:
        return int(self.length.sum())


def decompose(lengths: np.ndarray, min_log2: int = 8, max_log2: int = 13) -> dict[int, Pieces]:
    """Dataset Decomposition of documents of ``lengths`` tokens into buckets 2^min..2^max.

    Returns ``{k: Pieces}`` for each bucket of pieces of 2^k tokens and ``{REST: Pieces}`` for
    the shorter ends. Within a document the pieces are largest first, so they cover
    ``[0, l)`` in order of decreasing size; every piece of a bucket lists its documents in
    the order given.
    """
    if not 0 <= min_log2 <= max_log2 <= 30:
        raise ValueError(f"need 0 <= min_log2 <= max_log2 <= 30, got {min_log2}, {max_log2}")
    lengths = np.asarray(lengths, dtype=np.int64)
    docs = np.arange(lengths.size, dtype=np.int64)
    out: dict[int, Pieces] = {}
    top = 1 << max_log2
    count = lengths >> max_log2
    doc = np.repeat(docs, count)
    first = np.cumsum(count) - count  # index of each document's first top piece
    within = np.arange(doc.size, dtype=np.int64) - np.repeat(first, count)
    out[max_log2] = Pieces(doc, within * top, np.full(doc.size, top, dtype=np.int64))
    for k in range(max_log2 - 1, min_log2 - 1, -1):
        has = ((lengths >> k) & 1).astype(bool)
        offset = (lengths[has] >> (k + 1)) << (k + 1)
        out[k] = Pieces(docs[has], offset, np.full(int(has.sum()), 1 << k, dtype=np.int64))
    rest = lengths & ((1 << min_log2) - 1)
    has = rest > 0
    out[REST] = Pieces(docs[has], lengths[has] - rest[has], rest[has])
    return out


def gather(tokens: np.ndarray, doc_starts: np.ndarray, pieces: Pieces) -> np.ndarray:
    """The tokens of ``pieces``, back to back; ``doc_starts[d]`` is where document d starts
    in ``tokens``."""
    if pieces.doc.size == 0:
        return tokens[:0].copy()
    starts = doc_starts[pieces.doc] + pieces.offset
    ends = np.cumsum(pieces.length)
    shift = np.repeat(starts - (ends - pieces.length), pieces.length)
    index = np.arange(int(ends[-1]), dtype=np.int64) + shift
    return tokens[index]


def windows(n_tokens: int, context: int) -> int:
    """How many (context + 1)-token windows, stepping by ``context``, fit in ``n_tokens`` (the
    nanoGPT input/target pairs of a concat-and-chunk stream)."""
    return max(n_tokens - 1, 0) // context


def bucket_batch_size(tokens_per_batch: int, log2: int) -> int:
    """Sequences per batch from bucket 2^log2 keeping tokens per batch constant, as Dataset
    Decomposition does (at least one)."""
    return max(tokens_per_batch >> log2, 1)
