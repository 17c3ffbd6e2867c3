"""Words as GPT-3's decontamination counts them (Brown et al. 2020, appendix C): text
lower-cased, punctuation removed, split on whitespace; with their hashes and the hashes
of every word n-gram."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from assay.text.hashing import mix64, run_hashes, word_hash_reference

MAX_NGRAM = 64


SEPARATOR, WORD, DROPPED = 0, 1, 2


@cache
def char_tables() -> tuple[np.ndarray, np.ndarray]:
    """``(kinds, lower)`` for every code point: separator (whitespace, as ``str.isspace``),
    dropped (punctuation, symbols, control and format characters) or word; and its
    lower-case form when that is one code point (case folding first, so final sigma and
    sigma agree), else itself."""
    kinds = np.full(0x110000, WORD, dtype=np.uint8)
    lower = np.arange(0x110000, dtype=np.uint32)
    category = unicodedata.category
    # Case and whitespace live in planes 0-1; plane 14 holds tags and selectors (format);
    # the other planes hold ideographs, private use or nothing: word characters as they are.
    for code in (*range(0x20000), *range(0xE0000, 0xE1000)):
        char = chr(code)
        if char.isspace():
            kinds[code] = SEPARATOR
            continue
        if category(char)[0] in "PS" or category(char) in ("Cc", "Cf"):
            kinds[code] = DROPPED
        for mapped in (char.casefold(), char.lower()):
            if len(mapped) == 1:
                lower[code] = ord(mapped)
                break
    return kinds, lower


def normalized_words(text: str) -> list[str]:
    """The words of ``text`` as decontamination compares them: split on whitespace,
    lower-cased, punctuation and symbols removed, empty words dropped
    (``"Don't stop-now!"`` -> ``["dont", "stopnow"]``). The readable definition; :func:`word_table`
    computes the same words' hashes for many texts at once."""
    kinds, lower = char_tables()
    words = []
    for token in text.split():
        word = "".join(chr(lower[ord(c)]) for c in token if kinds[ord(c)] == WORD)
        if word:
            words.append(word)
    return words


def word_hash(word: str) -> int:
    """64-bit hash of one normalised word, as :func:`word_table` computes it (the same
    polynomial hash as near-duplicate shingles use)."""
    return word_hash_reference(word)


@dataclass(frozen=True)
class Words:
    """The normalised words of a list of texts, texts one after the other: each word's
    hash, the number of words of each text, and (if asked) the character span in its
    text of the whitespace-separated token each word comes from."""

    hashes: np.ndarray  # uint64
    counts: np.ndarray  # int64, per text
    starts: np.ndarray | None = None  # int64 character offsets within the word's text
    ends: np.ndarray | None = None


def word_table(texts: Sequence[str], spans: bool = False) -> Words:
    """:func:`normalized_words` of every text, hashed by :func:`word_hash`, with a few
    numpy passes over the whole batch (no Python work per word)."""
    lengths = np.fromiter(map(len, texts), np.int64, len(texts))
    text_starts = np.cumsum(lengths + 1) - (lengths + 1)
    joined = "\n".join(texts) + "\n"  # a separator after each text
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    kinds_table, lower_table = char_tables()
    kinds = kinds_table[codes]
    # Tokens are runs of non-separators; a token's word is its word characters.
    edge = np.diff((kinds != SEPARATOR).astype(np.int8), prepend=0, append=0)
    token_starts = np.flatnonzero(edge == 1)
    token_ends = np.flatnonzero(edge == -1)
    word_chars = np.flatnonzero(kinds == WORD)
    token_of = np.cumsum(edge[:-1] == 1)[word_chars] - 1
    per_token = np.bincount(token_of, minlength=len(token_starts))
    has_word = per_token > 0
    word_lengths = per_token[has_word]
    hashes = run_hashes(lower_table[codes[word_chars]], word_lengths)
    starts = token_starts[has_word]
    counts = np.diff(np.searchsorted(starts, text_starts + lengths), prepend=0)
    if not spans:
        return Words(hashes, counts)
    offset = np.repeat(text_starts, counts)
    return Words(hashes, counts, starts - offset, token_ends[has_word] - offset)


def _ngram_constants() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20200528)  # fixed: benchmark and corpus hashes must agree
    top = np.iinfo(np.uint64).max
    weights = rng.integers(0, top, MAX_NGRAM, dtype=np.uint64, endpoint=True) | np.uint64(1)
    tags = rng.integers(0, top, MAX_NGRAM + 1, dtype=np.uint64, endpoint=True)
    return weights, tags


_WEIGHTS, _TAGS = _ngram_constants()


def ngram_hashes(
    words: np.ndarray, counts: np.ndarray, lengths: Iterable[int]
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """For each length k in ``lengths``: ``(k, hashes, at)``, the 64-bit hash of every
    run of k consecutive words within a text and the index (in ``words``) of its first
    word. N-grams never span two texts. The hash is a weighted sum of the words' hashes
    with one odd weight per position, tagged with k and mixed (splitmix64's finaliser)."""
    wanted = sorted(set(lengths))
    total = len(words)
    if total == 0 or not wanted:
        return
    owner = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    remaining = counts[owner] - (np.arange(total) - first[owner])  # words from here to the end
    padded = np.concatenate([words, np.zeros(wanted[-1], dtype=np.uint64)])
    combined = np.zeros(total, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(1, wanted[-1] + 1):
            combined += padded[k - 1 : k - 1 + total] * _WEIGHTS[k - 1]
            if k in wanted:
                at = np.flatnonzero(remaining >= k)
                yield k, mix64(combined[at] ^ _TAGS[k]), at
