"""The compiled text kernel against the pure-Python reference it replaces."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from assay.text import kernel
from assay.text.spacy_words import WordSplitter

SAMPLE = Path(__file__).parents[2] / "data" / "sample" / "sample_text.jsonl.gz"

# `make test` builds the kernel; in CI a missing kernel is a failure, not a skip.
if not kernel.available():
    if os.environ.get("CI"):
        raise RuntimeError(f"the text kernel is not built ({kernel.LIBRARY}): run make test")
    pytest.skip("the text kernel is not built (make test builds it)", allow_module_level=True)

# Chunks that exercise every rule: exceptions (kept whole, split, behind affixes), merges
# of split exceptions, units and currencies after digits, dots, infixes of every kind,
# URLs and e-mail addresses, icons, scripts without case, astral and lone surrogate code
# points, and whitespace other than spaces.
TRICKY = [
    "", " ", "\n\t \u3000", "a", "don't", "(don't)", "\"I'm", "Mt. St. Helens", "n. (Zool.)",
    "5km 10kg 3.5mm US$5 C$ A$20 $5 5$ 12a.m. 3pm 7+ +7 +a", "e.g., i.e. etc.,", "...", "a..b",
    "1.5] [Obs.] --Shak. [L. (>= 2.2)", "apt-get 64-bit a--b a---b a——b a~b a—b", "x:y a/b a<b a=b",
    "1+2 3-4 5*6 7^8 9-", "a.B c.D 'a'.'B'", "a,b 1,2", "…word word… ……", "(o: :) ;-) <3 ¯\\(ツ)/¯",
    "https://www.gnu.org/licenses/gpl-3.0.html <mail@example.org>, www.example.com.",
    "sources.list 0.0.0.0:* 3.3 1.2.3 v.v. z.B. U.S.A.", "°C. °F 25°C. ABC. Ab. A. a.",
    "日本語のテキスト。次の文！ Привет, мир. Γειά σου. مرحبا بالعالم.", "🙂 ok 🙂🙂 (🙂) ☺.",
    "\U0001d400\U0001d401 \U00020001x", "lone \ud800 surrogate", "'s 'S ’s it's It’s Let's",
    "cannot gonna y'all how'd'y c'mon", "C++ and/or w/o 'cause", "a.m. p.m. Ph.D. D.C.",
    "end.\r\nnext line\u2028sep", "x\x00y \x0b \x1c", "!!! ?! .?", "§5 %20 =x —x –x",
]


def _texts() -> list[str]:
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        sample = [json.loads(line)["text"] for line in f]
    return TRICKY + sample + [" ".join(TRICKY)]


def test_word_tables_equal_the_reference() -> None:
    texts = _texts()
    compiled = WordSplitter().kernel_table(texts)
    reference = WordSplitter().reference_table(texts)
    for field in ("counts", "length", "symbol", "alpha", "h", "hs"):
        assert np.array_equal(getattr(compiled, field), getattr(reference, field)), field
    # The kernel splits nearly every chunk itself: the reference rules only see a few.
    splitter = WordSplitter()
    splitter.kernel_table(texts)
    chunks = sum(len(t.split()) for t in texts)
    assert 0 < len(splitter._complex) < 0.05 * chunks


def test_long_and_odd_chunks_equal_the_reference() -> None:
    # Chunks far longer than any word, runs of affixes and dots, lone surrogates and the last
    # code point: the same words, and no crash (a panic would abort the worker).
    texts = [
        "x" * 200_000, "." * 50_000, "\ud800" * 1000 + " \ud800x.", "\U0010ffff" * 100, "a-" * 50_000,
        "(" * 30_000 + "a" + ")" * 30_000, "1." * 40_000, "http://" + "a." * 20_000 + "com",
    ]
    compiled = WordSplitter().kernel_table(texts)
    reference = WordSplitter().reference_table(texts)
    for field in ("counts", "length", "symbol", "alpha", "h", "hs"):
        assert np.array_equal(getattr(compiled, field), getattr(reference, field)), field


def test_word_counts_and_line_marks_equal_the_reference() -> None:
    from assay.steps.filters.gopher_quality import _line_marks

    breaks = ["a\r\nb\rc\x0bd\x0ce\x1cf\x85g\u2028h\u2029i\n", "\n\n", " - x\n\t• y\n z … \n..."]
    texts = [*_texts(), *breaks]
    assert WordSplitter().word_counts(texts).tolist() == WordSplitter().reference_table(texts).counts.tolist()
    for compiled, reference in zip(kernel.line_marks(texts), _line_marks(texts), strict=True):
        assert compiled.tolist() == reference.tolist()


def test_line_repeats_equal_the_reference() -> None:
    from assay.steps.filters.gopher_repetition import GopherRepetition

    texts = [t for t in _texts() if t] + [
        "a\n\nb\n\n\na\n\n b", "x\n\ny\nx\n\n\nx\n", "\n\n  \n", "same\nsame\n\nsame", "a\r\na\r\n",
    ]
    counts = kernel.line_repeats(*kernel.code_points(texts))
    for i, text in enumerate(texts):
        fractions = (counts[1, i] / counts[0, i], counts[2, i] / len(text),
                     counts[4, i] / counts[3, i], counts[5, i] / len(text))  # fmt: skip
        assert fractions == GopherRepetition._line_fractions(text), text[:60]


# Lines for C4's rules: citations, terminal punctuation and ellipses, policies and
# javascript in any case, lorem ipsum, braces, long and few words, every line break, and
# characters that lower-case to ASCII (left to the reference).
C4_LINES = [
    "Foo bar baz. [1]\nLorem[2] ipsum dolor sit.\n  Our JavaScript here ok.  \r\n\x1cA b c d."
    "\u2028Privacy  policy is here.\u2029This site USES COOKIES now.\x85Terms of Use apply, see.",
    "", "\n\n", "a b c. [edit] [citation needed] [12] [１２]", "a b [１２] c.", "x" * 1200 + " y z.",
    "a b c.  \n{ a b c.\n a b c{.", "Ends with dots...\nSo. Ends with …", "İstanbul is nice, lorem ipsum.",
    "Kelvin \u212a says hi now.", "one.\ntwo words.\nthree words here.", "\t a b c!\t\n 'a b c'",
    "A (don't) line, it's fine. Mr. Smith went.  Next one!  And more?", "[1][2][3] a b c.",
]


@pytest.mark.parametrize("params", [
    {}, {"max_word_length": None, "remove_citations": False},
    {"filter_no_terminal_punct": False, "min_words_per_line": None},
    {"max_word_length": -3, "min_words_per_line": 0, "filter_javascript": False, "filter_policy": False},
    {"max_word_length": 5, "min_words_per_line": 10},
])  # fmt: skip
def test_c4_lines_equal_the_reference(params: dict) -> None:
    from assay.steps.filters.c4 import C4Quality

    step = C4Quality(**params)
    texts = C4_LINES + _texts()
    counts, cleaned = kernel.c4_lines(texts, step._kernel_settings(), WordSplitter().count_sentences)
    left = [i for i, c in enumerate(cleaned) if c is None]
    assert left == [i for i, text in enumerate(texts) if "\u0130" in text or "\u212a" in text]
    assert len(left) < 0.1 * len(texts)
    for i, text in enumerate(texts):
        if cleaned[i] is not None:
            new_text, reference = step._clean(text)
            assert (cleaned[i], counts[:, i].tolist()) == (new_text, reference), text[:60]


def test_sentence_counts_equal_the_reference() -> None:
    lines = [line for text in _texts() for line in text.splitlines()] + TRICKY
    splitter = WordSplitter()
    counts = kernel.count_sentences(lines)
    unsure = counts < 0
    assert unsure.mean() < 0.05
    assert [c for c, u in zip(counts.tolist(), unsure, strict=True) if not u] == [
        splitter.count_sentences(line) for line, u in zip(lines, unsure, strict=True) if not u
    ]
    assert splitter.total_sentences(lines) == sum(map(splitter.count_sentences, lines))


def test_unclassified_code_points_have_no_class() -> None:
    # The table stops at CLASSIFIED (the kernel reads 0 past it): every class must be empty
    # there.
    full = kernel.class_table(0x110000)
    assert np.array_equal(full[: kernel.CLASSIFIED], kernel.rules().classes)
    assert not full[kernel.CLASSIFIED :].any()


def test_steps_decide_the_same_with_and_without_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    from assay.steps.filters.c4 import C4Quality
    from assay.steps.filters.fineweb import FineWebQuality
    from assay.steps.filters.gopher_quality import GopherQuality
    from assay.steps.filters.gopher_repetition import GopherRepetition
    from assay.text import spacy_words

    texts = _texts()
    signals = {}
    for compiled in (True, False):
        monkeypatch.setattr(kernel, "available", lambda c=compiled: c)
        monkeypatch.setattr(spacy_words, "WORDS", WordSplitter())
        for module in ("c4", "fineweb", "gopher_quality", "gopher_repetition"):
            monkeypatch.setattr(f"assay.steps.filters.{module}.WORDS", spacy_words.WORDS)
        for step in (GopherRepetition(), GopherQuality(), C4Quality(), FineWebQuality()):
            out = step.compute(texts)
            for name, values in out.signals.items():
                signals.setdefault((step.name, name), []).append(np.asarray(values))
    for key, (with_kernel, without) in signals.items():
        assert np.array_equal(with_kernel, without, equal_nan=True), key
