"""Words as the reference quality filters count them: :class:`WordSplitter`, a fast
re-implementation of the word tokenizer datatrove uses for English, spaCy's blank ``"en"``
tokenizer, with the per-word attributes the rule sets need (:class:`WordTable`).

The splitter follows spaCy's algorithm: split on whitespace, then split each chunk by
spaCy's English rules (:mod:`.spacy_rules`). Where the compiled kernel is built
(:mod:`.kernel`) it splits the chunks and computes the attributes; otherwise, and for the
few chunks the kernel leaves to them, the rules here do, memoised per chunk (natural text
repeats its chunks). Both give the same words; the tests compare them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import chain, repeat

import numpy as np

from assay.text import kernel
from assay.text.ngram_hashes import BASES, PRIMES, power_table
from assay.text.spacy_rules import EXCEPTIONS, is_punct, split_chunk
from assay.text.tables import PUNCTUATION_SET, SENTENCE_PUNCTUATION

# --------------------------------------------------------------------------------------
# The memoising word splitter
# --------------------------------------------------------------------------------------

class _IntArray:
    """A growable int64 array (capacity doubles), for the chunk memo."""

    def __init__(self) -> None:
        self._data = np.empty(1 << 12, dtype=np.int64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def values(self) -> np.ndarray:
        """The elements (a view, valid until the next ``extend``)."""
        return self._data[: self._size]

    def item(self, i: int) -> int:
        """Element ``i``."""
        return int(self._data[i])

    def slice(self, start: int, stop: int) -> list[int]:
        """Elements ``start`` to ``stop`` (excluded)."""
        return self._data[start:stop].tolist()

    def extend(self, values: np.ndarray) -> None:
        """Append ``values``."""
        end = self._size + len(values)
        if end > len(self._data):
            grown = np.empty(max(end, 2 * len(self._data)), dtype=np.int64)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size : end] = values
        self._size = end


# Chunks the kernel leaves to the reference rules are rare (merges of split exceptions):
# a small memo of them suffices.
_MAX_COMPLEX = 100_000


@dataclass(frozen=True)
class WordTable:
    """The words of a batch of texts, laid end to end, with what the rule sets need of
    each: its ``length`` (characters, int32), ``symbol`` (1 if every character is
    punctuation, uint8), ``alpha`` (1 if it contains a letter, uint8) and the two polynomial
    hashes of the word without (``h``, one int32 row per prime) and with a following space
    (``hs``); ``counts`` holds the words of each text (int64). Compact types: a table of
    the words of recent texts is kept between steps."""

    counts: np.ndarray
    length: np.ndarray
    symbol: np.ndarray
    alpha: np.ndarray
    h: np.ndarray
    hs: np.ndarray

    @property
    def doc_starts(self) -> np.ndarray:
        """Index of each text's first word, and the total last."""
        starts = np.zeros(len(self.counts) + 1, dtype=np.int64)
        np.cumsum(self.counts, out=starts[1:])
        return starts

    def docs(self, lo: int, hi: int) -> WordTable:
        """The table of texts ``lo`` to ``hi`` (excluded), as views."""
        a, b = (int(x) for x in self.doc_starts[[lo, hi]])
        return self.span(lo, hi, a, b)

    def span(self, lo: int, hi: int, a: int, b: int) -> WordTable:
        """:meth:`docs` for callers that know where the texts' words are (``a`` to ``b``)."""
        return WordTable(self.counts[lo:hi], self.length[a:b], self.symbol[a:b], self.alpha[a:b],
                         self.h[:, a:b], self.hs[:, a:b])  # fmt: skip


def _concatenate(parts: Sequence[WordTable]) -> WordTable:
    return WordTable(
        np.concatenate([p.counts for p in parts]),
        *(np.concatenate([getattr(p, f) for p in parts]) for f in ("length", "symbol", "alpha")),
        *(np.concatenate([getattr(p, f) for p in parts], axis=1) for f in ("h", "hs")),
    )


def word_hashes(word: str) -> tuple[int, int]:
    """The polynomial hashes (one per prime) of ``word``, as ``WordTable.h`` holds them."""
    h1, h2 = (sum((ord(c) + 1) * pow(b, k, p) for k, c in enumerate(word)) % p
              for p, b in zip(PRIMES, BASES, strict=True))  # fmt: skip
    return h1, h2


class WordSplitter:
    """Words of a text as datatrove's English word tokenizer (spaCy ``blank("en")``) gives them.

    The rule sets ask for :class:`WordTable` s (:meth:`batch_table`, :meth:`word_counts`),
    kept for recent texts so that steps run one after the other on a batch split each text
    once; the compiled kernel builds them where it is loaded. The reference path below
    (:meth:`batch_word_ids`) works as follows. Every word gets an integer id in a
    per-process vocabulary, with per-id attributes kept in numpy arrays (length,
    symbol-only, contains a letter, hashes), so the quality signals are vectorised sums
    over ids. Whitespace-separated chunks get ids too
    and are split once: the memo maps a chunk to its id, and numpy arrays map a chunk id
    to its word ids, so the words of a batch of texts come from one dictionary look-up
    per chunk and a few array operations. The memo is dropped when it grows past
    ``max_chunks`` (between documents only).
    """

    def __init__(
        self, max_chunks: int = 1_000_000, max_cached_words: int = 4_000_000,
        max_table_words: int = 500_000,
    ) -> None:  # fmt: skip
        self.max_chunks = max_chunks
        self.max_cached_words = max_cached_words
        self.max_table_words = max_table_words
        self.clear()

    def clear(self) -> None:
        """Forget every memoised chunk and word."""
        self._chunks: dict[str, int] = {}  # chunk -> chunk id
        # Chunk id c -> its word ids: ``_chunk_words[_chunk_start[c]:][: _chunk_size[c]]``.
        self._chunk_start = _IntArray()
        self._chunk_size = _IntArray()
        self._chunk_words = _IntArray()
        # The words of recent texts, so that steps run one after the other on a batch
        # split each text once; oldest first, bounded by the number of words held.
        self._texts: dict[str, np.ndarray] = {}
        self._cached_words = 0
        self._sentence_steps: dict[str, tuple[int, bool, int, bool]] = {}
        self._tables: dict[str, WordTable] = {}  # per recent text, like ``_texts``
        self._table_words = 0
        self._complex: dict[str, tuple[int, ...]] = {}  # chunks the kernel left to the rules
        self._vocab: dict[str, int] = {}
        self._words: list[str] = []
        self._table = np.zeros((len(_ATTRS), 1 << 10), dtype=np.int64)  # grows as needed
        self._rows = 0

    # -- vocabulary ------------------------------------------------------------------
    def _add_chunks(self, chunks: Iterable[str]) -> None:
        """Split chunks not in the memo yet and give them (and their new words) ids."""
        vocab = self._vocab
        new_chunks: list[str] = []
        words: list[str] = []  # the words of every new chunk, end to end
        sizes: list[int] = []
        for chunk in chunks:
            new_chunks.append(chunk)
            if chunk.isalpha() and chunk not in EXCEPTIONS:  # no affix rule applies to letters
                words.append(chunk)
                sizes.append(1)
            else:
                tokens = split_chunk(chunk)
                words += tokens
                sizes.append(len(tokens))
        new_words = [w for w in dict.fromkeys(words) if w not in vocab]
        vocab.update(zip(new_words, range(len(vocab), len(vocab) + len(new_words)), strict=True))
        self._words += new_words
        memo = self._chunks
        memo.update(zip(new_chunks, range(len(memo), len(memo) + len(new_chunks)), strict=True))
        size = np.array(sizes, dtype=np.int64)
        self._chunk_start.extend(len(self._chunk_words) + np.cumsum(size) - size)
        self._chunk_size.extend(size)
        self._chunk_words.extend(np.fromiter(map(vocab.__getitem__, words), np.int64, len(words)))

    def _chunk_ids(self, chunk: str) -> list[int]:
        """The word ids of one chunk."""
        cid = self._chunks.get(chunk)
        if cid is None:
            self._add_chunks([chunk])
            cid = self._chunks[chunk]
        start = self._chunk_start.item(cid)
        return self._chunk_words.slice(start, start + self._chunk_size.item(cid))

    def attributes(self) -> dict[str, np.ndarray]:
        """Per-id attribute arrays (views) covering every id handed out so far."""
        end = len(self._words)
        if end > self._rows:
            if end > self._table.shape[1]:
                grown = np.zeros((len(_ATTRS), max(end, 2 * self._table.shape[1])), np.int64)
                grown[:, : self._rows] = self._table[:, : self._rows]
                self._table = grown
            self._table[:, self._rows : end] = _word_attributes(self._words[self._rows : end])
            self._rows = end
        return {name: self._table[i, : self._rows] for i, name in enumerate(_ATTRS)}

    def known_id(self, word: str) -> int | None:
        """The id of ``word`` if a text seen so far contained it, else None."""
        return self._vocab.get(word)

    def maybe_trim(self) -> None:
        """Forget the memo if it has grown too big; call between documents only."""
        if len(self._chunks) > self.max_chunks or len(self._vocab) > self.max_chunks:
            self.clear()

    # -- documents -------------------------------------------------------------------
    def word_ids(self, text: str) -> np.ndarray:
        """The id of every word of ``text``, in order (read-only)."""
        known = self._texts.get(text)
        return known if known is not None else self.batch_word_ids([text])[0]

    def batch_word_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """``word_ids`` of each text; texts not seen recently are split together."""
        out: list[np.ndarray | None] = [self._texts.get(text) for text in texts]
        todo = [i for i, ids in enumerate(out) if ids is None]
        if todo:
            splits = [texts[i].split() for i in todo]
            chunks = list(chain.from_iterable(splits))
            memo = self._chunks
            # One look-up per chunk (-1: not in the memo yet); new chunks are then split.
            cids = np.fromiter(map(memo.get, chunks, repeat(-1)), np.int64, len(chunks))
            missing = np.flatnonzero(cids < 0).tolist()
            if missing:
                new = [chunks[j] for j in missing]
                self._add_chunks(dict.fromkeys(new))
                cids[missing] = np.fromiter(map(memo.__getitem__, new), np.int64, len(new))
            starts = self._chunk_start.values[cids]
            sizes = self._chunk_size.values[cids]
            ends = np.zeros(len(chunks) + 1, dtype=np.int64)  # words before each chunk
            np.cumsum(sizes, out=ends[1:])
            if ends[-1] > len(chunks):  # some chunk has several words: one entry per word
                starts = np.repeat(starts - ends[:-1], sizes) + np.arange(ends[-1])
            ids = self._chunk_words.values[starts]
            ids.flags.writeable = False
            # A text's words are those of its chunks.
            bounds = ends[np.cumsum([0, *map(len, splits)])].tolist()
            for i, lo, hi in zip(todo, bounds[:-1], bounds[1:], strict=True):
                out[i] = self._remember(texts[i], ids[lo:hi])
        return out  # type: ignore[return-value]

    def _remember(self, text: str, ids: np.ndarray) -> np.ndarray:
        """Keep ``ids`` as the words of ``text`` for the next steps, within the word budget."""
        if len(ids) <= self.max_cached_words:
            texts = self._texts
            while texts and self._cached_words + len(ids) > self.max_cached_words:
                self._cached_words -= len(texts.pop(next(iter(texts))))
            texts[text] = ids
            self._cached_words += len(ids)
        return ids

    # -- word tables -------------------------------------------------------------------
    def batch_table(
        self, texts: Sequence[str], code_points: tuple[np.ndarray, np.ndarray] | None = None
    ) -> WordTable:
        """The :class:`WordTable` of ``texts``; texts not seen recently are split together,
        by the compiled kernel when it is built, else by the reference rules.
        ``code_points``: ``kernel.code_points(texts)``, where the caller has them."""
        if not texts:
            return _EMPTY_TABLE
        known = self._tables
        parts = {t: known[t] for t in texts if t in known}
        todo = [t for t in dict.fromkeys(texts) if t not in parts]
        if todo:
            if not kernel.available():
                fresh = self.reference_table(todo)
            else:  # the caller's code points are those of todo when every text is new
                fresh = self.kernel_table(todo, code_points if len(todo) == len(texts) else None)
            bounds = fresh.doc_starts.tolist()
            for i, text in enumerate(todo):
                parts[text] = fresh.span(i, i + 1, bounds[i], bounds[i + 1])
                self._keep_table(text, parts[text])
            if len(todo) == len(texts):  # all new and distinct: the fresh table, in order
                return fresh
        return _concatenate([parts[t] for t in texts])

    def word_counts(self, texts: Sequence[str]) -> np.ndarray:
        """The number of words of each text (without building a table for new texts)."""
        if not kernel.available():
            return self.batch_table(texts).counts
        known = self._tables
        counts = np.array([len(known[t].length) if t in known else -1 for t in texts], np.int64)
        todo = np.flatnonzero(counts < 0)
        if len(todo):
            new = [texts[i] for i in todo.tolist()]
            counts[todo] = self._kernel_split(new)[3]
        return counts

    def _keep_table(self, text: str, part: WordTable) -> None:
        words = len(part.length)
        tables = self._tables
        while tables and self._table_words + words > self.max_table_words:
            self._table_words -= len(tables.pop(next(iter(tables))).length)
        tables[text] = part
        self._table_words += words

    def reference_table(self, texts: Sequence[str]) -> WordTable:
        """The :class:`WordTable` of ``texts`` by the reference rules (not cached)."""
        docs = self.batch_word_ids(texts)
        ids = np.concatenate(docs) if docs else np.empty(0, dtype=np.int64)
        attrs = self.attributes()
        return WordTable(
            np.fromiter(map(len, docs), dtype=np.int64, count=len(docs)),
            attrs["length"][ids].astype(np.int32), attrs["symbol"][ids].astype(np.uint8),
            attrs["alpha"][ids].astype(np.uint8),
            np.stack([attrs["h1"][ids], attrs["h2"][ids]]).astype(np.int32),
            np.stack([attrs["hs1"][ids], attrs["hs2"][ids]]).astype(np.int32),
        )

    def kernel_table(
        self, texts: Sequence[str], code_points: tuple[np.ndarray, np.ndarray] | None = None
    ) -> WordTable:
        """The :class:`WordTable` of ``texts`` by the compiled kernel (not cached); chunks
        it leaves to the reference rules are split by them."""
        cp, starts, lengths, counts = self._kernel_split(texts, code_points)
        symbol, alpha, h, hs = kernel.word_attributes(cp, starts, lengths)
        return WordTable(counts, lengths, symbol, alpha, h, hs)

    def _kernel_split(
        self, texts: Sequence[str], code_points: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The kernel's split of ``texts`` (whose ``kernel.code_points`` may be given) with
        its complex chunks split by the reference rules: ``(code points, word starts, word
        lengths, words per text)``."""
        cp, doc_starts = code_points if code_points is not None else kernel.code_points(texts)
        starts, lengths, complex_, entries = kernel.split(cp, doc_starts)
        counts = entries  # the kernel's entries per text: words, but for complex chunks
        where = np.flatnonzero(complex_)
        if len(where):
            # The kernel left these chunks to the reference rules: each becomes its tokens,
            # in slots inserted after it (complex chunks are rare: no pass over every word
            # but the insertion).
            spans = zip(starts[where].tolist(), lengths[where].tolist(), strict=True)
            pieces = [self._token_lengths(cp[a : a + n].tobytes().decode("utf-32-le", "surrogatepass"))
                      for a, n in spans]  # fmt: skip
            sizes = np.fromiter(map(len, pieces), np.int64, len(pieces))
            extra = sizes - 1
            counts = entries.copy()
            np.add.at(counts, np.searchsorted(np.cumsum(entries), where, side="right"), extra)
            token_lengths = np.fromiter(chain.from_iterable(pieces), np.int32, int(sizes.sum()))
            offsets = np.cumsum(token_lengths) - token_lengths  # within the batch's tokens
            token_first = np.cumsum(sizes) - sizes  # first token of each complex chunk
            within = offsets - np.repeat(offsets[token_first], sizes)  # within its chunk
            rank = np.arange(len(token_lengths)) - np.repeat(token_first, sizes)  # in its chunk
            first = where + np.cumsum(extra) - extra  # each complex chunk's first word
            positions = np.repeat(first, sizes) + rank
            chunk_starts = np.repeat(starts[where], sizes)
            slots = np.repeat(where + 1, extra)
            starts, lengths = np.insert(starts, slots, 0), np.insert(lengths, slots, 0)
            starts[positions] = chunk_starts + within
            lengths[positions] = token_lengths
        return cp, starts, lengths, counts

    def _token_lengths(self, chunk: str) -> tuple[int, ...]:
        """Characters of each token of a chunk by the reference rules (memoised)."""
        memo = self._complex
        lengths = memo.get(chunk)
        if lengths is None:
            if len(memo) >= _MAX_COMPLEX:
                memo.clear()
            tokens = split_chunk(chunk)
            lengths = memo[chunk] = tuple(map(len, tokens))
            assert sum(lengths) == len(chunk), chunk  # spaCy's tokens always tile the chunk
        return lengths

    def words(self, text: str) -> list[str]:
        """The words of ``text`` (what datatrove's ``split_into_words`` returns for English)."""
        words = self._words
        return [words[i] for i in self.word_ids(text).tolist()]

    def total_sentences(self, texts: list[str]) -> int:
        """The sum of :meth:`count_sentences` over ``texts``, by the kernel when it is built
        (texts with a chunk it leaves to the reference rules are counted here)."""
        if not kernel.available():
            return sum(map(self.count_sentences, texts))
        counts = kernel.count_sentences(texts)
        unsure = np.flatnonzero(counts < 0).tolist()
        return int(counts.sum()) + len(unsure) + sum(self.count_sentences(texts[i]) for i in unsure)

    def count_sentences(self, text: str) -> int:
        """Sentences spaCy's rule-based sentencizer finds in ``text`` (0 for "").

        A sentence starts at each token that is neither punctuation nor sentence-final
        punctuation and follows a sentence-final character. Whitespace other than one
        space between chunks is a token of its own, so it can start a sentence too.
        """
        if not text:
            return 0
        final = _sentence_final(text)
        if final is None or is_punct(text[final.start() :]):
            return 1  # nothing but punctuation after the first sentence-final character
        steps = self._sentence_steps
        starts = 0
        seen_final = False
        for lead, chunk, gap in _CHUNK_AND_SPACE.findall(text):
            if lead and seen_final:  # leading whitespace token (never after a final)
                starts += 1
                seen_final = False
            step = steps.get(chunk)
            if step is None:
                ids = self._chunk_ids(chunk)
                step = steps[chunk] = _sentence_step([self._words[i] for i in ids])
            if seen_final:
                starts += step[2]
                seen_final = step[3]
            else:
                starts += step[0]
                seen_final = step[1]
            if seen_final and gap and (gap[0] != " " or len(gap) > 1):
                starts += 1
                seen_final = False
        return 1 + starts


_sentence_final = re.compile(
    "[" + re.escape("".join(sorted(SENTENCE_PUNCTUATION))) + "]"
).search
_CHUNK_AND_SPACE = re.compile(r"(\s*)(\S+)(\s*)")

_ATTRS = ("length", "symbol", "alpha", "h1", "h2", "hs1", "hs2")


def _word_attributes(words: list[str]) -> np.ndarray:
    """The per-word quantities the rule sets need, one column per word (rows: ``_ATTRS``).

    ``h`` is the polynomial hash sum((ord(c) + 1) * B**k) of a word, k being the position of
    character c, and ``hs`` that of the word followed by a space, mod each prime.
    """
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    chars = np.frombuffer("".join(words).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    starts = np.zeros(len(words), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    position = np.arange(len(chars)) - np.repeat(starts, lengths)  # within its word
    out = np.empty((len(_ATTRS), len(words)), dtype=np.int64)
    out[0] = lengths
    out[1] = np.logical_and.reduceat(_punctuation_table()[chars], starts)
    out[2] = [w.isalpha() or any(map(str.isalpha, w)) for w in words]
    values = chars.astype(np.int64) + 1
    for k, p in enumerate(PRIMES):
        power = power_table(k, int(lengths.max()) + 1)
        h = np.add.reduceat(values * power[position] % p, starts) % p
        out[3 + k] = h
        out[5 + k] = (h + 33 * power[lengths]) % p
    return out


@cache
def _punctuation_table() -> np.ndarray:
    """Whether each code point is in the punctuation set (built on first use: only the
    reference path needs it)."""
    table = np.zeros(0x110000, dtype=bool)
    table[[ord(c) for c in PUNCTUATION_SET]] = True
    return table


def _sentence_step(tokens: Sequence[str]) -> tuple[int, bool, int, bool]:
    """For a chunk's tokens: (new sentences, state after) starting from state False, then
    from state True, where the state is "a sentence-final character was seen"."""
    out: list[int | bool] = []
    for seen in (False, True):
        starts = 0
        for token in tokens:
            final = token in SENTENCE_PUNCTUATION
            if seen and not final and not is_punct(token):
                starts += 1
                seen = False
            elif final:
                seen = True
        out += [starts, seen]
    return out[0], out[1], out[2], out[3]  # type: ignore[return-value]


_EMPTY_TABLE = WordTable(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint8),
                         np.zeros(0, np.uint8), np.zeros((2, 0), np.int32),
                         np.zeros((2, 0), np.int32))  # fmt: skip

# One splitter per process, shared by every step (the memo is what makes it fast).
WORDS = WordSplitter()
