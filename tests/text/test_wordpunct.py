"""Hashed n-gram features: the batch tokenizer and hashes against their definitions."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from assay.text.wordpunct import (
    dense_counts,
    hashed_ngram_counts,
    ngram_hash_reference,
    regex_tokens,
    token_hash_reference,
    token_hashes,
    wordpunct_tokens,
)

# Letters, digits, marks, punctuation, symbols and many kinds of space, from several scripts.
ALPHABET = st.sampled_from(
    list("aZ_9 \t\n.,!?-'\"()éßİıΣσЖж中文ア١٢\u0301\u0307\u00a0\u2003€$…—\u200c\u094dन½²")
)
TEXTS = st.lists(st.text(ALPHABET, max_size=40), max_size=6)


def test_wordpunct_splits_words_from_punctuation_runs() -> None:
    assert wordpunct_tokens("Don't STOP... now_or-never 3.14!") == [
        "don", "'", "t", "stop", "...", "now_or", "-", "never", "3", ".", "14", "!"
    ]


def test_word_characters_are_those_nltk_uses() -> None:
    # NLTK compiles the pattern with the `regex` module: combining marks and joiners are
    # word characters (Python's `re` would split these words).
    assert wordpunct_tokens("محدودیت\u200cها İstanbul") == ["محدودیت\u200cها", "i\u0307stanbul"]
    assert wordpunct_tokens("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]


@settings(max_examples=200, deadline=None)
@given(st.text(ALPHABET, max_size=60))
def test_tokens_match_the_tokenizer_pattern(text: str) -> None:
    assert wordpunct_tokens(text) == regex_tokens(text)


@settings(max_examples=100, deadline=None)
@given(TEXTS)
def test_batch_token_hashes_match_the_definition(texts: list[str]) -> None:
    hashes, counts = token_hashes(texts)
    expected = [token_hash_reference(t) for text in texts for t in regex_tokens(text)]
    assert hashes.tolist() == expected
    assert counts.tolist() == [len(regex_tokens(t)) for t in texts]


@settings(max_examples=100, deadline=None)
@given(TEXTS, st.integers(1, 3), st.integers(2, 50))
def test_bucket_counts_match_brute_force(texts: list[str], n: int, buckets: int) -> None:
    sparse, n_tokens = hashed_ngram_counts(texts, n, buckets)
    expected = np.zeros((len(texts), buckets))
    for row, text in enumerate(texts):
        tokens = regex_tokens(text)
        for order in range(1, n + 1):
            for i in range(len(tokens) - order + 1):
                expected[row, ngram_hash_reference(tokens[i:i + order]) % buckets] += 1
    np.testing.assert_array_equal(dense_counts(sparse, buckets), expected)
    assert n_tokens.tolist() == [len(regex_tokens(t)) for t in texts]
    for row in range(len(texts)):  # buckets ascending within each text
        assert np.all(np.diff(sparse.buckets[sparse.offsets[row]:sparse.offsets[row + 1]].astype(int)) > 0)


def test_counts_do_not_depend_on_batching() -> None:
    texts = ["alpha beta, gamma", "", "Beta GAMMA delta!", "x"]
    whole, _ = hashed_ngram_counts(texts, 2, 97)
    parts = [dense_counts(hashed_ngram_counts([t], 2, 97)[0], 97) for t in texts]
    np.testing.assert_array_equal(dense_counts(whole, 97), np.concatenate(parts))


def test_sparse_dot_and_totals() -> None:
    sparse, _ = hashed_ngram_counts(["a b a", "c", ""], 1, 7)
    dense = dense_counts(sparse, 7)
    weights = np.arange(7, dtype=np.float64)
    np.testing.assert_allclose(sparse.dot(weights), dense @ weights)
    np.testing.assert_allclose(sparse.total(7), dense.sum(axis=0))
    np.testing.assert_allclose(sparse.total(7, np.array([False, True, True])), dense[1:].sum(axis=0))
