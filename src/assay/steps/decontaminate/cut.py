"""Cutting colliding n-grams out of a document, as GPT-3 did: the span with 200
characters either side is removed and the document split there (Brown et al. 2020,
appendix C)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from assay.documents import ID, TEXT
from assay.text.decon_words import ngram_hashes, word_table

PIECE_SEPARATOR = "\n\n"



@dataclass(frozen=True)
class Cut:
    """What removing the colliding n-grams (with their context) leaves of one text."""

    occurrences: int  # colliding n-gram occurrences found
    pieces: int  # pieces the text was split into, before short ones are dropped
    kept: tuple[tuple[int, int], ...]  # character spans of the pieces kept, in order
    text_length: int

    def text(self, original: str) -> str:
        return PIECE_SEPARATOR.join(original[a:b] for a, b in self.kept)

    @property
    def chars_kept(self) -> int:
        return sum(b - a for a, b in self.kept)


def collision_spans(text: str, active: np.ndarray, lengths: Sequence[int]) -> list[tuple[int, int]]:
    """Character spans of every occurrence in ``text`` of an n-gram whose hash is in
    ``active`` (from the first character of its first word's token to the end of its
    last word's token), in order of position."""
    words = word_table([text], spans=True)
    assert words.starts is not None and words.ends is not None
    spans = []
    for k, h, at in ngram_hashes(words.hashes, words.counts, lengths):
        hit = at[np.isin(h, active)]
        spans += zip(words.starts[hit].tolist(), words.ends[hit + k - 1].tolist(), strict=True)
    return sorted(spans)


def cut_text(text: str, spans: Sequence[tuple[int, int]], context_chars: int,
             min_piece_chars: int) -> Cut:
    """Remove each span and ``context_chars`` characters either side, as GPT-3 did.

    A window's ends move outward to the nearest whitespace, so no word is cut in half;
    overlapping windows merge. The text between windows makes the pieces (those with
    something besides whitespace); each piece loses its surrounding whitespace, and pieces
    shorter than ``min_piece_chars`` are dropped.
    """
    windows: list[list[int]] = []
    for start, end in spans:
        a, b = max(0, start - context_chars), min(len(text), end + context_chars)
        while a > 0 and not text[a - 1].isspace():
            a -= 1
        while b < len(text) and not text[b].isspace():
            b += 1
        if windows and a <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], b)
        else:
            windows.append([a, b])
    bounds = [0, *(x for w in windows for x in w), len(text)]
    pieces = 0
    kept = []
    for a, b in zip(bounds[0::2], bounds[1::2], strict=True):
        segment = text[a:b]
        stripped = segment.strip()
        if not stripped:
            continue
        pieces += 1
        if len(stripped) >= min_piece_chars:
            lead = len(segment) - len(segment.lstrip())
            kept.append((a + lead, a + lead + len(stripped)))
    return Cut(len(spans), pieces, tuple(kept), len(text))


@dataclass(frozen=True)
class CutTask:
    shard: str
    rows: np.ndarray  # positions in the shard, ascending
    active: tuple[np.ndarray, ...]  # per row: its benchmark n-gram hashes that count
    lengths: tuple[int, ...]
    context_chars: int
    min_piece_chars: int


def cut_shard(task: CutTask) -> tuple[list[str], list[Cut]]:
    """Ids and cuts of the colliding rows of one shard (runs in a worker)."""
    table = pq.read_table(task.shard, columns=[ID, TEXT]).take(pa.array(task.rows))
    ids = table.column(ID).to_pylist()
    cuts = []
    for text, active in zip(table.column(TEXT).to_pylist(), task.active, strict=True):
        spans = collision_spans(text, active, task.lengths)
        cuts.append(cut_text(text, spans, task.context_chars, task.min_piece_chars))
    return ids, cuts
