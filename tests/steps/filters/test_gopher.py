"""Gopher repetition and quality: signals worked out by hand, decisions at thresholds."""

from __future__ import annotations

import math
import random

import numpy as np
import pyarrow as pa
import pytest

from assay.documents import CORE_SCHEMA, REASON
from assay.steps import step_class
from assay.steps.filters.gopher_quality import GopherQuality
from assay.steps.filters.gopher_repetition import GopherRepetition

# --------------------------------------------------------------------------------------
# Repetition signals
# --------------------------------------------------------------------------------------


def repetition(text: str) -> dict[str, float]:
    out = GopherRepetition().compute([text])
    return {name: float(values[0]) for name, values in out.signals.items()}


def test_repetition_paragraphs_lines_and_ngrams() -> None:
    # "a\n\nb\n\na": 7 characters. Paragraphs (split on 2+ newlines): a, b, a -> one
    # duplicate of one character. Lines (split on runs of newlines): the same.
    # Words: a b a. 2-grams "a b", "b a" occur once each: the first, "a b" (3 characters)
    # is the top one -> 3/7. The only 3-gram "a b a" (5 characters) -> 5/7. No 4-gram.
    s = repetition("a\n\nb\n\na")
    assert s["n_chars"] == 7
    assert s["dup_para_frac"] == pytest.approx(1 / 3)
    assert s["dup_para_char_frac"] == pytest.approx(1 / 7)
    assert s["dup_line_frac"] == pytest.approx(1 / 3)
    assert s["dup_line_char_frac"] == pytest.approx(1 / 7)
    assert s["top_2_gram_frac"] == pytest.approx(3 / 7)
    assert s["top_3_gram_frac"] == pytest.approx(5 / 7)
    assert s["top_4_gram_frac"] == 0
    assert s["dup_5_gram_frac"] == 0


def test_top_ngram_counts_overlaps() -> None:
    # "a a a a" (7 characters): "a a" occurs 3 times (overlapping) -> 3 * 3 = 9 > 7;
    # "a a a" twice -> 2 * 5 = 10; "a a a a" once -> 7.
    s = repetition("a a a a")
    assert s["top_2_gram_frac"] == pytest.approx(9 / 7)
    assert s["top_3_gram_frac"] == pytest.approx(10 / 7)
    assert s["top_4_gram_frac"] == pytest.approx(1.0)


def test_duplicate_ngrams_jump_after_a_duplicate() -> None:
    # Three copies of "x y z w v" (15 words, 29 characters). 5-grams at positions 0..10:
    # 0..4 are new; 5 repeats 0 -> +5 characters ("xyzwv", spaces not counted), jump to 10;
    # 10 repeats 0 -> +5. Total 10 / 29.
    s = repetition(" ".join(["x y z w v"] * 3))
    assert s["dup_5_gram_frac"] == pytest.approx(10 / 29)
    # 6-grams at 0..9: 0..4 new, 5 ("xyzwvx") repeats 0 -> +6, jump to 11 > 9. 6 / 29.
    assert s["dup_6_gram_frac"] == pytest.approx(6 / 29)


def test_duplicate_ngrams_compare_words_joined_without_spaces() -> None:
    # "ab c d e f a bc d e f" (21 characters): the 5-gram at 5, "a bc d e f", joins to
    # "abcdef" like the one at 0, "ab c d e f": a duplicate of 6 characters.
    s = repetition("ab c d e f a bc d e f")
    assert s["dup_5_gram_frac"] == pytest.approx(6 / 21)
    # Joined with spaces they differ, so no 5-word top n-gram effect: 2-grams all distinct
    # except "d e" and "e f" (twice each); the first of those, "d e", gives 2 * 3 = 6.
    assert s["top_2_gram_frac"] == pytest.approx(6 / 21)


def test_repetition_edge_cases() -> None:
    empty = repetition("")
    assert empty["n_chars"] == 0 and empty["dup_line_frac"] == 0
    # Only whitespace: one paragraph "" and one line "   ", no words -> all zero.
    blank = repetition("   ")
    assert blank["n_chars"] == 3
    assert all(v == 0 for k, v in blank.items() if k != "n_chars")
    # One word: nothing repeats, no 2-gram.
    single = repetition("hello")
    assert all(v == 0 for k, v in single.items() if k != "n_chars")


def test_repetition_windows_newlines_keep_carriage_returns() -> None:
    # "a\r\na\r\n" (6 characters): one paragraph; lines split on "\n": "a\r", "a\r", "" ->
    # one duplicate line of 2 characters.
    s = repetition("a\r\na\r\n")
    assert s["dup_para_frac"] == 0
    assert s["dup_line_frac"] == pytest.approx(1 / 3)
    assert s["dup_line_char_frac"] == pytest.approx(2 / 6)


def test_repetition_non_latin() -> None:
    # "да да да" (8 characters): "да да" twice -> 2 * 5 = 10; "да да да" once -> 8.
    s = repetition("да да да")
    assert s["top_2_gram_frac"] == pytest.approx(10 / 8)
    assert s["top_3_gram_frac"] == pytest.approx(1.0)


def test_repetition_very_long_line() -> None:
    # 5000 words "x" on one line (10000 characters). "x x" occurs 4999 times: 3 * 4999.
    # 5-grams "xxxxx" at 0..4995: 0 is new, then duplicates at 1, 6, 11, ... 4991 (999 of
    # them, 5 characters each).
    s = repetition("x " * 5000)
    assert s["top_2_gram_frac"] == pytest.approx(3 * 4999 / 10000)
    assert s["dup_5_gram_frac"] == pytest.approx(999 * 5 / 10000)


# --------------------------------------------------------------------------------------
# Repetition decisions
# --------------------------------------------------------------------------------------


def repetition_signals(**values: float) -> dict[str, np.ndarray]:
    signals = {name: np.zeros(1) for name in GopherRepetition.signal_types}
    signals["n_chars"] = np.array([100])
    for name, value in values.items():
        signals[name] = np.array([value])
    return signals


@pytest.mark.parametrize(
    ("signal", "threshold", "reason"),
    [
        ("dup_para_frac", 0.3, "dup_para_frac"),
        ("dup_para_char_frac", 0.2, "dup_para_char_frac"),
        ("dup_line_frac", 0.3, "dup_line_frac"),
        ("dup_line_char_frac", 0.2, "dup_line_char_frac"),
        ("top_2_gram_frac", 0.2, "top_2_gram"),
        ("top_3_gram_frac", 0.18, "top_3_gram"),
        ("top_4_gram_frac", 0.16, "top_4_gram"),
        ("dup_5_gram_frac", 0.15, "duplicated_5_n_grams"),
        ("dup_10_gram_frac", 0.10, "duplicated_10_n_grams"),
    ],
)
def test_repetition_thresholds(signal: str, threshold: float, reason: str) -> None:
    step = GopherRepetition()
    assert step.decide(repetition_signals(**{signal: threshold}))[0] is None
    assert step.decide(repetition_signals(**{signal: threshold + 0.001}))[0] == reason
    off = GopherRepetition(**{signal: None})
    assert off.decide(repetition_signals(**{signal: 1.0}))[0] is None


def test_repetition_reason_order_and_empty() -> None:
    step = GopherRepetition()
    both = repetition_signals(dup_line_frac=0.5, top_2_gram_frac=0.5)
    assert step.decide(both)[0] == "dup_line_frac"
    assert step.decide(repetition_signals(n_chars=0))[0] == "empty"


# --------------------------------------------------------------------------------------
# Quality signals
# --------------------------------------------------------------------------------------


def quality(text: str, **params: object) -> dict[str, float]:
    out = GopherQuality(**params).compute([text])
    return {name: float(values[0]) for name, values in out.signals.items()}


def test_quality_signals_english() -> None:
    # Words: The cat sat on the mat . -> 7 words, 6 with a non-punctuation character,
    # lengths 3 3 3 2 3 3 -> mean 17/6. 6 of 7 contain a letter. Stop words: "the" only
    # ("The" does not match, "on" is not one).
    s = quality("The cat sat on the mat.")
    assert s["n_words"] == 7
    assert s["n_non_symbol_words"] == 6
    assert s["mean_word_length"] == pytest.approx(17 / 6)
    assert s["alpha_words_ratio"] == pytest.approx(6 / 7)
    assert s["n_stop_words"] == 1
    assert s["hash_word_ratio"] == 0 and s["bullet_lines_ratio"] == 0


def test_quality_symbols_and_ellipses() -> None:
    # "# a # b": words # a # b -> 2 hashes over 4 words.
    assert quality("# a # b")["hash_word_ratio"] == pytest.approx(0.5)
    # "wait... what…": words wait ... what … ; one "..." and one "…" over 4 words; the one
    # line ends with "…".
    s = quality("wait... what…")
    assert s["ellipsis_word_ratio"] == pytest.approx(0.5)
    assert s["end_ellipsis_lines_ratio"] == 1.0


def test_quality_windows_newlines_and_bullets() -> None:
    # "- a\r\n- b\r\n": splitlines -> "- a", "- b": both bullets. Words - a - b.
    s = quality("- a\r\n- b\r\n")
    assert s["bullet_lines_ratio"] == 1.0
    assert s["n_words"] == 4 and s["n_non_symbol_words"] == 2


def test_quality_edge_cases() -> None:
    empty = quality("")
    assert empty["n_words"] == 0 and math.isnan(empty["mean_word_length"])
    assert empty["alpha_words_ratio"] == 0 and empty["bullet_lines_ratio"] == 0
    blank = quality(" \n\t ")
    assert blank["n_words"] == 0
    # "hello": one word of 5 letters.
    single = quality("hello")
    assert (single["n_words"], single["mean_word_length"], single["alpha_words_ratio"]) == (
        1,
        5.0,
        1.0,
    )


def test_quality_non_latin() -> None:
    # Привет , мир ! Как дела ? -> 7 words, 4 non-symbol of lengths 6 3 3 4 -> mean 4.
    s = quality("Привет, мир! Как дела?")
    assert s["n_words"] == 7 and s["n_non_symbol_words"] == 4
    assert s["mean_word_length"] == pytest.approx(4.0)
    assert s["alpha_words_ratio"] == pytest.approx(4 / 7)
    # "你好，世界。": the full stop is a suffix; the comma is not split -> 你好，世界 and 。
    s = quality("你好，世界。")
    assert s["n_words"] == 2 and s["mean_word_length"] == 5.0


def test_quality_very_long_line_and_custom_stop_words() -> None:
    s = quality("word " * 20000)
    assert s["n_words"] == 20000 and s["mean_word_length"] == 4.0
    assert quality("to be or not to be", stop_words=("be", "or", "xyz"))["n_stop_words"] == 2


# --------------------------------------------------------------------------------------
# Quality decisions
# --------------------------------------------------------------------------------------


def quality_signals(**values: float) -> dict[str, np.ndarray]:
    passing = {
        "n_words": 100,
        "n_non_symbol_words": 100,
        "mean_word_length": 5.0,
        "hash_word_ratio": 0.0,
        "ellipsis_word_ratio": 0.0,
        "bullet_lines_ratio": 0.0,
        "end_ellipsis_lines_ratio": 0.0,
        "alpha_words_ratio": 1.0,
        "n_stop_words": 4,
    }
    passing.update(values)
    return {name: np.array([value]) for name, value in passing.items()}


@pytest.mark.parametrize(
    ("signal", "ok", "bad", "reason", "param"),
    [
        ("n_non_symbol_words", 50, 49, "gopher_short_doc", "min_doc_words"),
        ("n_non_symbol_words", 100_000, 100_001, "gopher_long_doc", "max_doc_words"),
        ("mean_word_length", 3.0, 2.99, "gopher_below_avg_threshold", "min_avg_word_length"),
        ("mean_word_length", 10.0, 10.01, "gopher_above_avg_threshold", "max_avg_word_length"),
        ("hash_word_ratio", 0.1, 0.101, "gopher_too_many_hashes", "max_symbol_word_ratio"),
        ("ellipsis_word_ratio", 0.1, 0.101, "gopher_too_many_ellipsis", "max_symbol_word_ratio"),
        ("bullet_lines_ratio", 0.9, 0.91, "gopher_too_many_bullets", "max_bullet_lines_ratio"),
        ("end_ellipsis_lines_ratio", 0.3, 0.31, "gopher_too_many_end_ellipsis",
         "max_ellipsis_lines_ratio"),
        ("alpha_words_ratio", 0.8, 0.79, "gopher_below_alpha_threshold", "min_alpha_words_ratio"),
        ("n_stop_words", 2, 1, "gopher_enough_stop_words", "min_stop_words"),
    ],
)  # fmt: skip
def test_quality_thresholds(signal: str, ok: float, bad: float, reason: str, param: str) -> None:
    step = GopherQuality()
    assert step.decide(quality_signals(**{signal: ok}))[0] is None
    assert step.decide(quality_signals(**{signal: bad}))[0] == reason
    assert GopherQuality(**{param: None}).decide(quality_signals(**{signal: bad}))[0] is None


def test_quality_reason_order_and_empty_text() -> None:
    step = GopherQuality()
    both = quality_signals(hash_word_ratio=0.5, n_stop_words=0)
    assert step.decide(both)[0] == "gopher_too_many_hashes"
    out = step.compute([""])
    signals = {k: np.asarray(v) for k, v in out.signals.items()}
    assert step.decide(signals)[0] == "gopher_short_doc"


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------


def core_table(texts: list[str]) -> pa.Table:
    n = len(texts)
    return pa.table(
        {
            "id": [str(i) for i in range(n)],
            "text": texts,
            "source": ["test"] * n,
            "url": [None] * n,
            "metadata": [None] * n,
        },
        schema=CORE_SCHEMA,
    )


GOOD = (
    "The history of the town is long and it is well documented in the archives of the "
    "county. Many of the buildings that line the main street were built with local stone "
    "and they have been restored with care by the people who live there now. Visitors come "
    "to see the old church and the market, and to walk along the river that runs through "
    "the valley to the sea."
)


@pytest.mark.parametrize("name", ["gopher_repetition", "gopher_quality"])
def test_step_on_core_table(name: str) -> None:
    step = step_class(name)()
    table = step(core_table([GOOD, "", "spam " * 100]))
    for signal in step.signal_types:
        assert f"{name}.{signal}" in table.column_names
    reasons = table.column(REASON).to_pylist()
    assert reasons[0] is None
    assert reasons[1] == ("empty" if name == "gopher_repetition" else "gopher_short_doc")
    assert reasons[2] is not None
    assert table.num_rows == 3


# --------------------------------------------------------------------------------------
# The vectorised n-gram counts against a direct transcription of datatrove's loops
# --------------------------------------------------------------------------------------


def reference_top(words: list[str], n: int) -> int:
    """datatrove's find_top_duplicate over get_n_grams (Counter.most_common(1))."""
    grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0
    counts: dict[str, int] = {}
    for g in grams:
        counts[g] = counts.get(g, 0) + 1
    top = max(counts.values())
    first = next(g for g in counts if counts[g] == top)
    return len(first) * top


def reference_duplicates(words: list[str], n: int) -> int:
    """datatrove's find_all_duplicate."""
    seen: set[str] = set()
    total, idx = 0, 0
    while idx < len(words) - n + 1:
        gram = "".join(words[idx : idx + n])
        if gram in seen:
            total += len(gram)
            idx += n
        else:
            seen.add(gram)
            idx += 1
    return total


def random_words(rng: random.Random) -> list[str]:
    """Words from a small vocabulary (some of them concatenations of others, so that
    different n-grams can join to the same string), with copies of earlier stretches."""
    vocab = ["a", "b", "ab", "ba", "c", "abc", "x", "y"][: rng.randint(1, 8)]
    words: list[str] = []
    target = rng.randint(0, 60)
    while len(words) < target:
        if words and rng.random() < 0.3:
            i = rng.randrange(len(words))
            words += words[i : rng.randint(i, min(len(words), i + 15))]
        else:
            words.append(rng.choice(vocab))
    return words


@pytest.mark.parametrize("sweeps", [32, 1, 0])
def test_ngram_counts_match_datatrove_semantics_on_random_texts(
    sweeps: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Documents are counted in batches of random sizes, as the step does; with few or no
    # sweeps the scan settles linked runs one by one instead.
    from assay.steps.filters import gopher_repetition as gopher
    from assay.text import kernel
    from assay.text.ngram_hashes import NgramHashes
    from assay.text.spacy_words import WordSplitter

    monkeypatch.setattr(gopher, "_MAX_SWEEPS", sweeps)
    splitter = WordSplitter()
    rng = random.Random(sweeps)
    ns = list(range(1, 12))
    docs = [random_words(rng) for _ in range(1500)]
    i = 0
    while i < len(docs):
        batch = docs[i : i + rng.randint(1, 40)]
        i += len(batch)
        table = splitter.reference_table([" ".join(words) for words in batch])
        duplicates = gopher.duplicate_ngram_chars(NgramHashes(table, False), ns)
        top = gopher.top_ngram_chars(NgramHashes(table, True), ns)
        if kernel.available():  # the compiled counts must be the same
            compiled = kernel.repetition(table.length, table.h, table.hs, table.doc_starts, ns, ns)
            assert (compiled[0] == top).all() and (compiled[1] == duplicates).all()
        for j, words in enumerate(batch):
            assert duplicates[:, j].tolist() == [reference_duplicates(words, n) for n in ns], words
            assert top[:, j].tolist() == [reference_top(words, n) for n in ns], words


def test_group_keys_sharing_high_bits() -> None:
    # Four entries need 2 index bits; keys 8 and 9 only differ below them, so the packed
    # sort interleaves them within document 0 and the full-key sort must take over. Key 8
    # in document 1 is a group of its own.
    from assay.steps.filters.gopher_repetition import _group

    keys = np.array([8, 9, 8, 9, 8])
    docs = np.array([0, 0, 0, 0, 1])
    order, starts = _group(keys, docs)
    groups = [group.tolist() for group in np.split(order, starts[1:])]
    assert sorted(groups) == [[0, 2], [1, 3], [4]]  # each group in entry order


@pytest.mark.parametrize("slice_words", [1 << 16, 40, 1])
def test_repetition_batch_equals_one_by_one(slice_words: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Signals do not depend on which documents share a batch, nor on how the batch is
    # sliced for the n-gram counts.
    from assay.steps.filters import gopher_repetition as gopher

    monkeypatch.setattr(gopher, "_SLICE_WORDS", slice_words)
    rng = random.Random(1)
    texts = ["", "a b c d e a b c d e", "x " * 30, GOOD, "   "]
    texts += [" ".join(random_words(rng)) for _ in range(40)]
    batch = GopherRepetition().compute(texts).signals
    for i, text in enumerate(texts):
        alone = GopherRepetition().compute([text]).signals
        for name in batch:
            assert batch[name][i] == alone[name][0], (name, text)
