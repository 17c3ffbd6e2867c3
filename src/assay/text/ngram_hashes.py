"""Polynomial hashes of every word n-gram of a batch of documents, for any n.

Gopher's repetition rules count repeated and most frequent n-grams for n = 2..10; hashing
each n-gram of each n separately would cost a pass per n. Here every word carries two
31-bit polynomial hashes (:class:`.spacy_words.WordTable`), and the
hash of any window of words is a difference of prefix sums.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from assay.text.spacy_words import WordTable

# Two primes below 2**31 for polynomial string hashing (products of two residues fit in
# 62 bits, so numpy int64 arithmetic stays exact). The base of each is 2**32 mod p, so the
# hash of a word is its UTF-32 code read as one integer, mod p (see :func:`.spacy_words.word_attributes`).
PRIMES = (1610612741, 1879048201)
BASES = tuple(pow(2, 32, p) for p in PRIMES)


_powers: list[np.ndarray] = [np.ones(1, dtype=np.int64), np.ones(1, dtype=np.int64)]


def power_table(k: int, size: int) -> np.ndarray:
    """``B_k ** i mod P_k`` for i < size (grown by doubling and kept)."""
    table = _powers[k]
    if len(table) < size:
        p, b = PRIMES[k], BASES[k]
        n = max(size, 2 * len(table), 4096)
        block = 1024
        base = np.empty(block, dtype=np.int64)
        value = 1
        for i in range(block):
            base[i] = value
            value = value * b % p
        step = value  # b ** block
        blocks = []
        factor = 1
        for _ in range(-(-n // block)):
            blocks.append(base * factor % p)
            factor = factor * step % p
        table = np.concatenate(blocks)[:n]
        _powers[k] = table
    return table


class NgramHashes:
    """Hash keys of the word n-grams of a batch of documents, for any n.

    The documents' words are laid end to end ("positions" below are indices into that
    concatenation); an n-gram is identified by the position of its first word and only
    n-grams that lie inside one document exist. ``spaced=True`` hashes ``" ".join(ngram)``
    and ``spaced=False`` hashes ``"".join(ngram)`` (datatrove uses both), so two n-grams of
    one document get the same key exactly when those strings are equal, up to a ~2**-62
    chance of collision (two 31-bit polynomial hashes). Keys of different documents are not
    comparable. Character positions count from the start of each document, so the hash of
    any window is a difference of prefix sums.
    """

    def __init__(self, words: WordTable, spaced: bool) -> None:
        sizes = words.counts
        self.spaced = spaced
        self.n_docs = len(sizes)
        self.n_words = int(sizes.sum())
        # doc_starts[d]: position of the first word of document d (and the total, last).
        self.doc_starts = words.doc_starts
        self.doc_of = np.repeat(np.arange(self.n_docs), sizes)  # document of each position
        self._doc_end = np.repeat(self.doc_starts[1:], sizes)  # its end position
        unit_len = words.length + 1 if spaced else words.length
        # Character offset of each word from the start of the batch (windows are differences).
        self.offsets = np.zeros(self.n_words + 1, dtype=np.int64)
        np.cumsum(unit_len, out=self.offsets[1:])
        doc_chars = self.offsets[self.doc_starts]
        start = self.offsets[:-1] - np.repeat(doc_chars[:-1], sizes)  # from its document's start
        to_end = np.repeat(np.diff(doc_chars), sizes) - start  # to its document's end
        hashes = words.hs if spaced else words.h
        prefix = np.zeros((2, self.n_words + 1), dtype=np.int64)
        align = np.empty((2, self.n_words), dtype=np.int64)
        size = int(to_end.max()) + 1 if self.n_words else 1
        for k, p in enumerate(PRIMES):
            power = power_table(k, size)
            np.cumsum(hashes[k] * power[start] % p, out=prefix[k, 1:])
            # Multiplying a window by B**(chars to the document's end) moves every window
            # of a document to the same origin, the document's end.
            align[k] = power[to_end]
        self._prefix = prefix % self._p
        self._align = align

    _p = np.array(PRIMES, dtype=np.int64)[:, None]

    def keys(self, n: int, starts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, keys)``: the positions of the n-grams (ascending) and their keys.

        ``starts`` picks some n-grams (positions of n-grams, ascending); by default, all.
        """
        if starts is not None:
            p0, p1 = PRIMES
            a0 = (self._prefix[0, starts + n] - self._prefix[0, starts] + p0) * self._align[0, starts]
            a1 = (self._prefix[1, starts + n] - self._prefix[1, starts] + p1) * self._align[1, starts]
            return starts, a0 % p0 * p1 + a1 % p1
        m = self.n_words - n + 1
        if m <= 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        # Windows that run past the end of their document are computed, then dropped
        # (slices and one mask are faster than gathering the valid ones).
        inside = self._doc_end[:m] - np.arange(m) >= n
        # (window + p) < 2**32 and the factor < 2**31, so the product fits in int64.
        aligned = (self._prefix[:, n:] - self._prefix[:, :m] + self._p) * self._align[:, :m]
        aligned %= self._p
        keys = aligned[0] * PRIMES[1] + aligned[1]
        return np.flatnonzero(inside), keys[inside]

    def starts(self, n: int) -> np.ndarray:
        """Positions of all n-grams (ascending)."""
        m = max(self.n_words - n + 1, 0)
        return np.flatnonzero(self._doc_end[:m] - np.arange(m) >= n)

    def lengths(self, starts: np.ndarray, n: int) -> np.ndarray:
        """Characters of the n-grams at ``starts`` (their words joined as hashed)."""
        chars = self.offsets[starts + n] - self.offsets[starts]
        return chars - 1 if self.spaced else chars
