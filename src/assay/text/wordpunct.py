"""Hashed word n-gram features, vectorised over a batch of texts.

Tokens are those of DSIR's reference code (Xie et al. 2023, the ``data-selection``
package): the text is lower-cased (``str.lower``) and split by NLTK's
``WordPunctTokenizer``, whose pattern ``\\w+|[^\\w\\s]+`` yields maximal runs of word
characters and maximal runs of other non-space characters, with ``\\w`` and ``\\s`` as the
``regex`` module defines them (NLTK compiles patterns with it).
:func:`wordpunct_tokens` is that definition, readable and slow; :func:`token_hashes`
computes a 64-bit hash of the same tokens for a whole batch with a few numpy passes.

A word n-gram's hash chains its tokens' hashes; :func:`hashed_ngram_counts` folds the
unigrams up to n-grams of every text into ``num_buckets`` buckets and returns sparse
per-text counts (DSIR's "hashed n-gram features"; the package hashes the space-joined
n-gram's SHA-256 instead, so the buckets differ but their number and meaning do not).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import regex

from assay.text.hashing import mix64, run_hashes, word_hash_reference

SPACE, WORD, OTHER = 0, 1, 2

# Multiplier that chains n-gram hashes (an odd 64-bit constant, the golden ratio's bits).
_CHAIN = np.uint64(0x9E3779B97F4A7C15)
_WORDPUNCT = regex.compile(r"\w+|[^\w\s]+", regex.UNICODE | regex.MULTILINE | regex.DOTALL)


@cache
def char_classes() -> np.ndarray:
    """The class of every code point: word (``\\w``), space (``\\s``) or other, as the
    ``regex`` module defines them, which is what NLTK compiles its tokenizers' patterns
    with (Unicode word characters: letters, marks, decimal digits, connector punctuation
    and join controls; Python's ``re`` leaves out marks and join controls)."""
    table = np.full(0x110000, OTHER, dtype=np.uint8)
    # 64K code points at a time: a string of all of them is built from a list of 1.1M
    # one-character strings, ~100 MB for a moment in every worker process.
    for start in range(0, 0x110000, 1 << 16):
        block = "".join(map(chr, range(start, start + (1 << 16))))
        for kind, pattern in ((SPACE, r"\s+"), (WORD, r"\w+")):
            for run in regex.finditer(pattern, block):
                table[start + run.start():start + run.end()] = kind
    return table


def wordpunct_tokens(text: str) -> list[str]:
    """The tokens of ``text`` as DSIR sees them: ``WordPunctTokenizer`` on ``text.lower()``."""
    classes = char_classes()
    tokens: list[str] = []
    current: list[str] = []
    current_kind = SPACE
    for char in text.lower():
        kind = int(classes[ord(char)])
        if kind != current_kind and current:
            tokens.append("".join(current))
            current = []
        if kind != SPACE:
            current.append(char)
        current_kind = kind
    if current:
        tokens.append("".join(current))
    return tokens


def regex_tokens(text: str) -> list[str]:
    """The same tokens by NLTK's pattern and flags, compiled as NLTK compiles it (for tests)."""
    return _WORDPUNCT.findall(text.lower())


# A token is hashed as a near-duplicate word is (the same polynomial hash, one definition).
token_hash_reference = word_hash_reference


def token_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, counts)``: the 64-bit hash of every token of every text, texts one after
    the other, and the number of tokens of each text."""
    lowered = [t.lower() for t in texts]
    joined = "\n".join(lowered) + "\n"  # a space after each text ends its last token
    codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    kinds = char_classes()[codes]
    text_ends = np.cumsum(np.fromiter(map(len, lowered), np.int64, len(lowered)) + 1) - 1
    change = np.empty(len(kinds), dtype=bool)
    change[0] = True
    np.not_equal(kinds[1:], kinds[:-1], out=change[1:])
    run_starts = np.flatnonzero(change)
    is_token = kinds[run_starts] != SPACE
    starts = run_starts[is_token]
    ends = np.append(run_starts[1:], len(kinds))[is_token]
    # Tokens are the runs of non-space characters, in order.
    hashes = run_hashes(codes[kinds != SPACE], ends - starts)
    counts = np.diff(np.searchsorted(starts, text_ends), prepend=0)
    return hashes, counts


def chain(previous: np.ndarray, token: np.ndarray) -> np.ndarray:
    """The hash of an n-gram from the hash of its first n-1 tokens and its last token's."""
    with np.errstate(over="ignore"):
        return mix64(previous * _CHAIN + token)


def ngram_hash_reference(tokens: list[str]) -> int:
    """64-bit hash of one n-gram of tokens (an n-gram of one token is the token's hash)."""
    value = np.array([token_hash_reference(tokens[0])], dtype=np.uint64)
    for token in tokens[1:]:
        value = chain(value, np.array([token_hash_reference(token)], dtype=np.uint64))
    return int(value[0])


def ngram_hashes(tokens: np.ndarray, counts: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, owner)``: the hash of every 1..n-gram of every text (grouped by order:
    all unigrams, then all bigrams, ...) and the index of the text each belongs to.
    N-grams never cross texts."""
    owner = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(len(tokens)) - np.repeat(np.cumsum(counts) - counts, counts)
    parts, owners = [tokens], [owner]
    current = tokens  # current[i]: the hash of the order-gram that ends at token i
    for order in range(2, n + 1):
        extended = np.zeros(len(tokens), dtype=np.uint64)
        extended[1:] = chain(current[:-1], tokens[1:])
        valid = position >= order - 1
        parts.append(extended[valid])
        owners.append(owner[valid])
        current = extended
    return np.concatenate(parts), np.concatenate(owners)


@dataclass(frozen=True)
class SparseCounts:
    """Per-text bucket counts in CSR form: text i has ``buckets[offsets[i]:offsets[i+1]]``
    (ascending) with ``counts`` beside them."""

    offsets: np.ndarray  # int64, len(texts) + 1
    buckets: np.ndarray  # uint32
    counts: np.ndarray  # uint32

    @property
    def num_texts(self) -> int:
        return len(self.offsets) - 1

    def dot(self, weights: np.ndarray) -> np.ndarray:
        """``sum(count * weights[bucket])`` for each text (float64)."""
        values = self.counts * weights[self.buckets].astype(np.float64)
        out = np.zeros(self.num_texts)
        nonempty = np.flatnonzero(np.diff(self.offsets) > 0)
        if len(nonempty):
            out[nonempty] = np.add.reduceat(values, self.offsets[nonempty])
        return out

    def total(self, num_buckets: int, rows: np.ndarray | None = None) -> np.ndarray:
        """Summed counts per bucket over all texts, or over ``rows`` (a boolean mask)."""
        if rows is None:
            return np.bincount(self.buckets, weights=self.counts, minlength=num_buckets)
        per_entry = np.repeat(rows, np.diff(self.offsets))
        return np.bincount(self.buckets[per_entry], weights=self.counts[per_entry],
                           minlength=num_buckets)


def hashed_ngram_counts(
    texts: list[str], n: int = 2, num_buckets: int = 10_000
) -> tuple[SparseCounts, np.ndarray]:
    """``(counts, n_tokens)``: the bucket counts of every 1..n-gram of each text, and each
    text's number of tokens."""
    tokens, per_text = token_hashes(texts)
    hashes, owner = ngram_hashes(tokens, per_text, n)
    key = owner.astype(np.uint64) * np.uint64(num_buckets) + hashes % np.uint64(num_buckets)
    unique, counts = np.unique(key, return_counts=True)
    docs = unique // np.uint64(num_buckets)
    buckets = (unique % np.uint64(num_buckets)).astype(np.uint32)
    offsets = np.searchsorted(docs, np.arange(len(texts) + 1, dtype=np.uint64)).astype(np.int64)
    return SparseCounts(offsets, buckets, counts.astype(np.uint32)), per_text


def dense_counts(counts: SparseCounts, num_buckets: int) -> np.ndarray:
    """A (texts, buckets) matrix of the counts (small inputs only: tests and model fits)."""
    out = np.zeros((counts.num_texts, num_buckets), dtype=np.float64)
    rows = np.repeat(np.arange(counts.num_texts), np.diff(counts.offsets))
    out[rows, counts.buckets] = counts.counts
    return out
