"""Words and word n-gram shingles for near-duplicate detection, vectorised over a batch.

Normalisation (as datatrove's ``simplify_text`` for FineWeb's MinHash, minus its English
weekday and month names): the text is case-folded, decomposed (NFD) and stripped of
non-spacing marks, so accents do not count; every run of decimal digits becomes ``0``;
words are runs of letters, marks and digits, so punctuation, symbols and whitespace of
any kind only separate words. ``normalized_words`` is the readable definition; the
batch functions compute the same words' hashes with a few numpy passes over all texts
of a batch at once, with no Python work per word.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from itertools import chain

import numpy as np

SEPARATOR, WORD, DIGIT, DROPPED = 0, 1, 2, 3

# Polynomial hash of a word's code points mod 2**64 (the FNV-1 64-bit prime).
_P = 0x100000001B3


@cache
def char_classes() -> np.ndarray:
    """The class of every code point: digit (Nd), dropped (Mn), word (other L, M, N) or
    separator."""
    table = np.zeros(0x110000, dtype=np.uint8)
    category = unicodedata.category
    # Planes 4-13 are unassigned and 15-16 private use; plane 14 holds tags and selectors.
    for code in chain(range(0x40000), range(0xE0000, 0xE1000)):
        kind = category(chr(code))
        if kind == "Nd":
            table[code] = DIGIT
        elif kind == "Mn":
            table[code] = DROPPED
        elif kind[0] in "LMN":
            table[code] = WORD
    return table


def _prepare(text: str) -> str:
    folded = text.casefold()
    return folded if folded.isascii() else unicodedata.normalize("NFD", folded)


def normalized_words(text: str) -> list[str]:
    """The words of ``text`` after normalisation (the definition; slow, for tests and docs)."""
    classes = char_classes()
    words: list[str] = []
    current: list[str] = []
    in_number = False
    for char in _prepare(text):
        kind = classes[ord(char)]
        if kind == DROPPED:
            continue
        if kind == DIGIT:
            if not in_number:
                current.append("0")
            in_number = True
            continue
        in_number = False
        if kind == WORD:
            current.append(char)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (Steele et al. 2014): a bijection of uint64 that spreads
    every input bit over every output bit."""
    with np.errstate(over="ignore"):
        x = x ^ (x >> np.uint64(30))
        x = x * np.uint64(0xBF58476D1CE4E5B9)
        x = x ^ (x >> np.uint64(27))
        x = x * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def word_hash_reference(word: str) -> int:
    """64-bit hash of one normalised word, as :func:`word_hashes` computes it."""
    value = 0
    for k, char in enumerate(word):
        value = (value + ord(char) * pow(_P, k, 2**64)) % 2**64
    return int(mix64(np.array([value ^ len(word)], dtype=np.uint64))[0])


_power_table = np.ones(1, dtype=np.uint64)


def hash_powers(n: int) -> np.ndarray:
    """``P ** k mod 2**64`` for k < n at least (kept and grown: n is the longest word yet)."""
    global _power_table
    if len(_power_table) < n:
        out = np.full(max(n, 2 * len(_power_table), 64), _P, dtype=np.uint64)
        out[0] = 1
        _power_table = np.multiply.accumulate(out)  # wraps mod 2**64, which is the point
    return _power_table


def word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, counts)``: a 64-bit hash of every normalised word of every text, in
    order, and the number of words of each text."""
    prepared = [_prepare(t) for t in texts]
    joined = "\x00".join(prepared) + "\x00"  # a separator after each text
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    kinds = char_classes()[codes]
    # Where each text's added separator is, followed through the deletions below.
    text_ends = np.cumsum(np.fromiter(map(len, prepared), np.int64, len(prepared)) + 1) - 1
    kept = kinds != DROPPED
    codes, kinds = codes[kept], kinds[kept]
    text_ends = np.cumsum(kept)[text_ends] - 1
    digit = kinds == DIGIT
    repeat_digit = np.zeros(len(digit), dtype=bool)
    repeat_digit[1:] = digit[1:] & digit[:-1]
    if repeat_digit.any():  # a run of digits is one "0"
        kept = ~repeat_digit
        codes, kinds, digit = codes[kept], kinds[kept], digit[kept]
        text_ends = np.cumsum(kept)[text_ends] - 1
    codes = np.where(digit, np.uint32(ord("0")), codes).astype(np.uint64)
    in_word = kinds != SEPARATOR
    edge = np.diff(in_word.astype(np.int8), prepend=0, append=0)
    starts = np.flatnonzero(edge == 1)
    lengths = np.flatnonzero(edge == -1) - starts
    hashes = run_hashes(codes[in_word], lengths)
    counts = np.diff(np.searchsorted(starts, text_ends), prepend=0)
    return hashes, counts


def run_hashes(codes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The hash of :func:`word_hash_reference` of consecutive runs: ``codes`` are the code
    points of every word one after the other, ``lengths`` each word's length (all > 0)."""
    if not len(lengths):
        return np.zeros(0, dtype=np.uint64)
    # sum(code * P**k) over the k-th character of each word, one reduceat for all.
    first = np.cumsum(lengths) - lengths
    k = np.arange(len(codes)) - np.repeat(first, lengths)
    with np.errstate(over="ignore"):
        sums = np.add.reduceat(codes.astype(np.uint64) * hash_powers(int(lengths.max()))[k], first)
    return mix64(sums ^ lengths.astype(np.uint64))


def shingle_hashes(
    words: np.ndarray, counts: np.ndarray, n: int, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``(shingles, per_text)``: a 32-bit hash (in uint64) of each word n-gram of each
    text, texts one after the other, and how many each text has. A text with fewer than
    n words (but at least one) is one shingle of all its words."""
    total = len(words)
    texts = len(counts)
    owner = np.repeat(np.arange(texts), counts)
    first = np.cumsum(counts) - counts
    padded = np.concatenate([words, np.zeros(n - 1, dtype=np.uint64)])
    padded_owner = np.concatenate([owner, np.full(n - 1, -1)])
    combined = np.zeros(total, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for k in range(n):
            term = padded[k : k + total] * weights[k]
            term[padded_owner[k : k + total] != owner] = 0  # past the end of its text
            combined += term
    position = np.arange(total) - first[owner]
    length = counts[owner]
    valid = (position + n <= length) | ((position == 0) & (length < n))
    shingles = mix64(combined[valid]) >> np.uint64(32)
    return shingles, np.bincount(owner[valid], minlength=texts)
