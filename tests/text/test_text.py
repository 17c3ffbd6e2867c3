"""The word splitter against spaCy's English tokenizer, and the shared text helpers."""

from __future__ import annotations

import numpy as np
import pytest

from assay.text.lines import find_duplicates
from assay.text.ngram_hashes import NgramHashes
from assay.text.spacy_words import WordSplitter
from assay.text.tables import PUNCTUATION_SET, TERMINAL_PUNCTUATION

# Worked out from spaCy's English rules (prefixes, suffixes, infixes, exceptions).
CASES = [
    ("The cat sat on the mat.", ["The", "cat", "sat", "on", "the", "mat", "."]),
    ("don't stop", ["do", "n't", "stop"]),  # exception
    ("e.g. this", ["e.g.", "this"]),  # exception
    ("U.S. and the U.K.", ["U.S.", "and", "the", "U.K."]),  # no suffix split after "S."
    ("(hello),", ["(", "hello", ")", ","]),  # prefix, then two suffixes
    ("co-operate", ["co", "-", "operate"]),  # hyphen infix between letters
    ("10km 5pm $5", ["10", "km", "5", "pm", "$", "5"]),  # unit suffix, time exception
    ("Mr.Smith", ["Mr.", "Smith"]),  # infix "." then the "Mr." exception re-merged
    ("http://example.com/a-b.", ["http://example.com/a-b", "."]),  # URL kept whole
    ("wait... what…", ["wait", "...", "what", "…"]),
    ("你好，世界。", ["你好，世界", "。"]),
    ("  \r\n\t ", []),
    ("", []),
]


@pytest.mark.parametrize(("text", "words"), CASES)
def test_words_by_hand(text: str, words: list[str]) -> None:
    assert WordSplitter().words(text) == words


def test_agrees_with_spacy_on_tricky_chunks() -> None:
    spacy = pytest.importorskip("spacy")
    tokenizer = spacy.blank("en").tokenizer
    tricky = (
        "I'm can't won't y'all gonna Let's ’s 'em 3a.m. 12pm °C. C++ :) :-)) <3 ^_^ "
        "(:-)) x:) Mr. mr. Dr.No e.g., (e.g.) U.S.A. A. a. ä. 1.5 3,000 -5 +5 5+ 5- 100% "
        "$100 US$5 €5 5€ 10kg 5m² km/h ...hello hello... hi!!! ??? «quoted» „x“ 'x' "
        "(a) [b] {c} <d> a/b a:b a=b a<b 1/2 x-ray x--y x—y x–y ~x a~b l'amour "
        "https://a.b/c?d=e#f www.x.org user@host.com 192.168.0.1 10.0.0.1:80 ©2024 "
        "😀smile smile😀 №5 ½ ™x Привет-мир мир. Мир. Αθήνα. 東京。 こんにちは、 "
        "co., Co. co-op. a.m.. ’tis 'tis rock'n'roll o'clock O'Neill Ph.D. vs. v.s. "
        "IS_ALPHA \\t \\n <space> '' \"\" ` `` ¿Qué? ¡Sí! 5'10\" 1990s '90s '90s. "
    )
    for chunk in tricky.split():
        expected = [t.text for t in tokenizer(chunk)]
        assert WordSplitter().words(chunk) == expected, chunk


def test_word_ids_and_attributes() -> None:
    splitter = WordSplitter()
    ids = splitter.word_ids("the cat . the")
    assert ids[0] == ids[3] and len(set(ids.tolist())) == 3
    attrs = splitter.attributes()
    assert attrs["length"][ids].tolist() == [3, 3, 1, 3]
    assert attrs["symbol"][ids].tolist() == [0, 0, 1, 0]
    assert attrs["alpha"][ids].tolist() == [1, 1, 0, 1]
    assert splitter.known_id("cat") == ids[1] and splitter.known_id("dog") is None
    splitter.clear()
    assert splitter.known_id("cat") is None


def test_ngram_hashes_match_strings() -> None:
    # A batch of documents: keys of one document's n-grams are equal exactly when the
    # joined strings are; n-grams never span two documents.
    splitter = WordSplitter()
    texts = ["a b a b ab c a bc a b", "", "ab c", "a b a b ab"]
    docs = [text.split() for text in texts]
    table = splitter.reference_table(texts)
    for spaced, sep in ((True, " "), (False, "")):
        hashes = NgramHashes(table, spaced)
        assert hashes.n_docs == 4 and hashes.doc_starts.tolist() == [0, 10, 10, 12, 17]
        for n in (1, 2, 3, 11):
            starts, keys = hashes.keys(n)
            expected_starts = []
            for d, words in enumerate(docs):
                expected_starts += [hashes.doc_starts[d] + i for i in range(len(words) - n + 1)]
            assert starts.tolist() == expected_starts
            doc_of = hashes.doc_of[starts]
            strings = [
                sep.join(docs[d][s - hashes.doc_starts[d] : s - hashes.doc_starts[d] + n])
                for d, s in zip(doc_of.tolist(), starts.tolist(), strict=True)
            ]
            assert hashes.lengths(starts, n).tolist() == [len(s) for s in strings]
            same_key = (keys[:, None] == keys[None, :]) & (doc_of[:, None] == doc_of[None, :])
            same_str = np.array(
                [[a == b and da == db for b, db in zip(strings, doc_of, strict=True)]
                 for a, da in zip(strings, doc_of, strict=True)], dtype=bool,
            )  # fmt: skip
            assert (same_key == same_str).all()


def test_tables_and_duplicates() -> None:
    assert "." in TERMINAL_PUNCTUATION and "," not in TERMINAL_PUNCTUATION
    assert {"#", "…", "\x00", "。"} <= PUNCTUATION_SET and "a" not in PUNCTUATION_SET
    # "a" repeats once (1 character), "bb" once (2 characters).
    assert find_duplicates(["a", "bb", "a", "c", "bb"]) == (2, 3)
    assert find_duplicates([]) == (0, 0)


def test_tables_match_the_reference_implementations() -> None:
    text = pytest.importorskip("datatrove.utils.text")
    sentencizer = pytest.importorskip("spacy.pipeline.sentencizer")
    from assay.text.tables import PUNCTUATION, SENTENCE_PUNCTUATION

    assert text.PUNCTUATION == PUNCTUATION
    assert text.TERMINAL_PUNCTUATION == TERMINAL_PUNCTUATION
    assert text.PUNCTUATION_SET == PUNCTUATION_SET
    assert set(sentencizer.Sentencizer.default_punct_chars) == SENTENCE_PUNCTUATION


def test_exceptions_match_spacy() -> None:
    spacy = pytest.importorskip("spacy")
    from spacy.symbols import ORTH

    from assay.text.spacy_rules import EXCEPTIONS as _EXCEPTIONS

    rules = spacy.blank("en").tokenizer.rules
    assert {k: tuple(t[ORTH] for t in v) for k, v in rules.items()} == _EXCEPTIONS


def test_ascii_infix_rules_equal_the_full_ones_on_ascii() -> None:
    import re

    from assay.text import spacy_rules as text

    pairs = [
        (text.ALPHA_CHARS, "A-Za-z"),
        (text.ALPHA_LOWER_CHARS, "a-z"),
        (text.ALPHA_UPPER_CHARS, "A-Z"),
        (text._ICONS, None),
    ]
    for full, ascii_only in pairs:
        big = re.compile(f"[{full}]")
        small = re.compile(f"[{ascii_only}]") if ascii_only else None
        for c in map(chr, range(128)):
            assert bool(big.fullmatch(c)) == bool(small and small.fullmatch(c)), c


def test_ascii_infix_regex_finds_what_the_full_one_finds() -> None:
    # The ASCII regex is rewritten (each alternative starts with what it consumes); on
    # ASCII text it must find exactly the matches of the full rules.
    import random

    from assay.text import spacy_rules as text

    rng = random.Random(0)
    alphabet = "aZx09.,-~:<>=/+*^'\"`_()"
    for _ in range(20000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
        full = [m.span() for m in text._infix_finditer(s)]
        assert [m.span() for m in text._ascii_infix_finditer(s)] == full, s


def test_suffix_after_a_digit() -> None:
    # Units, currencies and "+" split off after a digit, the longest one first; not after a
    # letter (as spaCy 3.8 splits these).
    words = WordSplitter().words("10km 5m/s 3+ km x5kg 2US$ 12kmh 3mbar 4.5kg")
    assert words == [
        "10", "km", "5", "m/s", "3", "+", "km", "x5", "kg", "2", "US$", "12", "kmh", "3", "mbar",
        "4.5", "kg",
    ]  # fmt: skip
