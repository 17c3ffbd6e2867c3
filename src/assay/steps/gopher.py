"""The Gopher rule sets: repetition and quality (Rae et al. 2021, MassiveText).

Both follow datatrove 0.10.1 (``GopherRepetitionFilter``, ``GopherQualityFilter``), the
reference implementation whose decisions these steps reproduce; where datatrove departs from
the paper the class docstring says so.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pyarrow as pa

from assay.steps.base import DocumentStep, StepOutput, StepParams, first_failing_rule, register
from assay.steps.text import GOPHER_STOP_WORDS, WORDS, NgramHashes, find_duplicates

TOP_NGRAMS: tuple[int, ...] = (2, 3, 4)
DUP_NGRAMS: tuple[int, ...] = (5, 6, 7, 8, 9, 10)

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


def _above(values: np.ndarray, threshold: float | None) -> np.ndarray | None:
    return None if threshold is None else values > threshold


def _below(values: np.ndarray, threshold: float | None) -> np.ndarray | None:
    return None if threshold is None else values < threshold


def _decide(rules: list[tuple[str, np.ndarray | None]], n_rows: int) -> np.ndarray:
    """``first_failing_rule`` over the rules whose threshold is set (mask not None)."""
    return first_failing_rule([(r, m) for r, m in rules if m is not None], n_rows)


# --------------------------------------------------------------------------------------
# Repetition
# --------------------------------------------------------------------------------------


def _group_starts(ordered: np.ndarray) -> np.ndarray:
    """Indices where a new value starts in a sorted array."""
    new = np.empty(len(ordered), dtype=bool)
    new[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
    return np.flatnonzero(new)


def top_duplicate_chars(keys: np.ndarray, lengths: np.ndarray) -> int:
    """Characters of the most frequent n-gram times its count (datatrove's
    ``find_top_duplicate``: ties go to the n-gram that occurs first)."""
    if len(keys) == 0:
        return 0
    ordered = np.sort(keys)
    starts = _group_starts(ordered)
    counts = np.diff(starts, append=len(keys))
    top = int(counts.max())
    if top == 1:
        return int(lengths[0])
    candidates = ordered[starts[counts == top]]
    if len(candidates) == 1:
        first = int(np.argmax(keys == candidates[0]))
    else:
        first = int(np.argmax(np.isin(keys, candidates)))
    return int(lengths[first]) * top


def all_duplicate_chars(keys: np.ndarray, lengths: np.ndarray, n: int) -> int:
    """Characters in n-grams that repeat an earlier one (datatrove's ``find_all_duplicate``).

    datatrove scans left to right: an n-gram seen before adds its length and the scan jumps
    ``n`` words ahead (the n-grams jumped over are not remembered); any other n-gram is
    remembered and the scan moves one word. Only positions whose n-gram occurred earlier
    ("repeats") can be duplicates. A repeat is one unless the first occurrence of its n-gram
    was jumped over and no later visited occurrence was remembered; first occurrences are
    only ever jumped over just after a run of consecutive repeats, so within a run that
    refers to no such position the duplicates are simply every n-th position.
    """
    m = len(keys)
    if m < 2 or len(_group_starts(np.sort(keys))) == m:
        return 0
    order = np.argsort(keys)
    ordered = keys[order]
    new_group = np.empty(m, dtype=bool)
    new_group[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=new_group[1:])
    first = np.empty(m, dtype=np.int64)  # position of the first occurrence of each n-gram
    first[order] = np.minimum.reduceat(order, np.flatnonzero(new_group))[np.cumsum(new_group) - 1]
    repeats = np.flatnonzero(first < np.arange(m))
    breaks = np.flatnonzero(np.diff(repeats) > 1) + 1
    run_lo = np.concatenate(([0], breaks))
    run_hi = np.concatenate((breaks, [len(repeats)]))
    firsts = first[repeats].tolist()
    sizes = lengths[repeats].tolist()
    total = 0
    resume = 0  # the next position the scan visits
    jumped_lo: list[int] = []  # [lo, hi) intervals of first occurrences jumped over
    jumped_hi: list[int] = []
    remembered: set[int] = set()  # n-grams (by first position) remembered at a repeat
    for lo, hi, a, b in zip(
        run_lo.tolist(), run_hi.tolist(), repeats[run_lo].tolist(), repeats[run_hi - 1].tolist(),
        strict=True,
    ):  # fmt: skip
        start = max(a, resume)
        if start > b:
            continue
        i0 = lo + start - a
        hit = False
        if jumped_lo:
            segment = firsts[i0:hi]
            k = bisect_right(jumped_lo, max(segment)) - 1
            hit = k >= 0 and jumped_hi[k] > min(segment)
        if not hit:
            total += sum(sizes[i0:hi:n])
            resume = start + ((b - start) // n + 1) * n
        else:
            pos = start
            while pos <= b:
                f = firsts[lo + pos - a]
                k = bisect_right(jumped_lo, f) - 1
                if k >= 0 and f < jumped_hi[k] and f not in remembered:
                    remembered.add(f)
                    pos += 1
                else:
                    total += sizes[lo + pos - a]
                    pos += n
            resume = pos
        if resume > b + 1:
            jumped_lo.append(b + 1)
            jumped_hi.append(resume)
    return total


class GopherRepetitionParams(StepParams):
    """Maximum fractions (Rae et al. 2021, Table A1); None disables a rule."""

    dup_para_frac: float | None = 0.3
    dup_para_char_frac: float | None = 0.2
    dup_line_frac: float | None = 0.3
    dup_line_char_frac: float | None = 0.2
    top_2_gram_frac: float | None = 0.20
    top_3_gram_frac: float | None = 0.18
    top_4_gram_frac: float | None = 0.16
    dup_5_gram_frac: float | None = 0.15
    dup_6_gram_frac: float | None = 0.14
    dup_7_gram_frac: float | None = 0.13
    dup_8_gram_frac: float | None = 0.12
    dup_9_gram_frac: float | None = 0.11
    dup_10_gram_frac: float | None = 0.10


_REPETITION_FRACS = (
    "dup_para_frac",
    "dup_para_char_frac",
    "dup_line_frac",
    "dup_line_char_frac",
    *(f"top_{n}_gram_frac" for n in TOP_NGRAMS),
    *(f"dup_{n}_gram_frac" for n in DUP_NGRAMS),
)


@register
class GopherRepetition(DocumentStep):
    """Gopher repetition filter: documents that repeat lines, paragraphs or n-grams.

    Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training
    Gopher", Appendix A.1.1 and Table A1. Signals (all fractions of ``len(text)`` unless
    noted):

    * ``n_chars``: characters; an empty text is rejected as ``empty``.
    * ``dup_para_frac``: paragraphs (split on 2+ newlines after stripping the text) equal to
      an earlier one, over the number of paragraphs; ``dup_para_char_frac``: their characters.
    * ``dup_line_frac``: lines (split on runs of newlines) equal to an earlier one, over the
      number of lines; ``dup_line_char_frac``: their characters.
    * ``top_{2,3,4}_gram_frac``: characters of the most frequent word n-gram
      (``" ".join`` of its words) times its number of occurrences, overlaps included.
    * ``dup_{5..10}_gram_frac``: characters of duplicated word n-grams, scanning left to
      right and jumping n words after each duplicate.

    Default thresholds (reject when the signal is above), Table A1: duplicate line fraction
    0.30, duplicate paragraph fraction 0.30, duplicate line / paragraph character fraction
    0.20; top 2/3/4-gram character fraction 0.20 / 0.18 / 0.16; duplicate 5..10-gram
    character fraction 0.15, 0.14, 0.13, 0.12, 0.11, 0.10.

    Rejection reasons and their order are datatrove's: ``empty``, ``dup_para_frac``,
    ``dup_para_char_frac``, ``dup_line_frac``, ``dup_line_char_frac``, ``top_{n}_gram``,
    ``duplicated_{n}_n_grams``.

    Follows datatrove 0.10.1 where it departs from the paper: words are spaCy English
    tokens (punctuation marks are words); n-gram characters exclude the spaces between
    words for duplicate n-grams but include them for the top n-gram; duplicate n-grams are
    compared as the concatenation of their words without spaces; the top n-gram count
    includes overlapping occurrences (so a fraction can exceed 1); all character fractions
    divide by the length of the whole text, spaces and newlines included; lines keep their
    ``\\r`` and surrounding spaces when compared. A threshold of 0 is a real threshold here
    (datatrove treats 0 as "off").
    """

    name: ClassVar[str] = "gopher_repetition"
    kind: ClassVar = "filter"
    Params: ClassVar[type[StepParams]] = GopherRepetitionParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "n_chars": pa.int64(),
        **{name: pa.float64() for name in _REPETITION_FRACS},
    }

    def compute(self, texts: list[str]) -> StepOutput:
        WORDS.maybe_trim()
        n_chars = np.zeros(len(texts), dtype=np.int64)
        fracs = np.zeros((len(_REPETITION_FRACS), len(texts)), dtype=np.float64)
        for i, text in enumerate(texts):
            n_chars[i] = len(text)
            if text:
                fracs[:, i] = self._fractions(text)
        signals: dict[str, np.ndarray] = {"n_chars": n_chars}
        signals.update(zip(_REPETITION_FRACS, fracs, strict=True))
        return StepOutput(signals=signals)  # type: ignore[arg-type]

    @staticmethod
    def _fractions(text: str) -> list[float]:
        n = len(text)
        paragraphs = _PARAGRAPHS.split(text.strip())
        para_dups, para_chars = find_duplicates(paragraphs)
        lines = _LINES.split(text)
        line_dups, line_chars = find_duplicates(lines)
        out = [para_dups / len(paragraphs), para_chars / n, line_dups / len(lines), line_chars / n]
        ids = WORDS.word_ids(text)
        attrs = WORDS.attributes()
        spaced = NgramHashes(ids, attrs, spaced=True)
        out += [top_duplicate_chars(*spaced.keys(k)) / n for k in TOP_NGRAMS]
        joined = NgramHashes(ids, attrs, spaced=False)
        out += [all_duplicate_chars(*joined.keys(k), k) / n for k in DUP_NGRAMS]
        return out

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        p = self.params
        assert isinstance(p, GopherRepetitionParams)
        n_rows = len(signals["n_chars"])
        rules: list[tuple[str, np.ndarray | None]] = [("empty", signals["n_chars"] == 0)]
        rules += [
            ("dup_para_frac", _above(signals["dup_para_frac"], p.dup_para_frac)),
            ("dup_para_char_frac", _above(signals["dup_para_char_frac"], p.dup_para_char_frac)),
            ("dup_line_frac", _above(signals["dup_line_frac"], p.dup_line_frac)),
            ("dup_line_char_frac", _above(signals["dup_line_char_frac"], p.dup_line_char_frac)),
        ]
        for k in TOP_NGRAMS:
            threshold = getattr(p, f"top_{k}_gram_frac")
            rules.append((f"top_{k}_gram", _above(signals[f"top_{k}_gram_frac"], threshold)))
        for k in DUP_NGRAMS:
            threshold = getattr(p, f"dup_{k}_gram_frac")
            rules.append(
                (f"duplicated_{k}_n_grams", _above(signals[f"dup_{k}_gram_frac"], threshold))
            )
        return _decide(rules, n_rows)


# --------------------------------------------------------------------------------------
# Quality
# --------------------------------------------------------------------------------------


class GopherQualityParams(StepParams):
    """Thresholds of the Gopher quality filter (Rae et al. 2021, A.1.1); None disables."""

    min_doc_words: int | None = 50
    max_doc_words: int | None = 100_000
    min_avg_word_length: float | None = 3
    max_avg_word_length: float | None = 10
    # Applies to the hash ratio and to the ellipsis ratio alike.
    max_symbol_word_ratio: float | None = 0.1
    max_bullet_lines_ratio: float | None = 0.9
    max_ellipsis_lines_ratio: float | None = 0.3
    # datatrove calls this max_non_alpha_words_ratio; it is a minimum of alphabetic words.
    min_alpha_words_ratio: float | None = 0.8
    min_stop_words: int | None = 2
    # Changing the word list changes the n_stop_words signal (it needs recomputing).
    stop_words: tuple[str, ...] = GOPHER_STOP_WORDS


@register
class GopherQuality(DocumentStep):
    """Gopher quality filter: word count and length, symbols, bullets, stop words.

    Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training
    Gopher", Appendix A.1.1 ("quality filtering"). Signals, with words as datatrove counts
    them (spaCy English tokens; "symbol" words consist only of punctuation characters):

    * ``n_words``: all words; ``n_non_symbol_words``: words with a non-punctuation
      character; ``mean_word_length``: mean length of the latter (NaN if none).
    * ``hash_word_ratio``, ``ellipsis_word_ratio``: occurrences of ``#`` and of ``...`` or
      ``…`` in the text, over ``n_words`` (0 for a text without words).
    * ``bullet_lines_ratio``: lines (``str.splitlines``) starting with ``•`` or ``-`` after
      leading whitespace; ``end_ellipsis_lines_ratio``: lines ending with ``...`` or ``…``.
    * ``alpha_words_ratio``: words containing a letter, over ``n_words``.
    * ``n_stop_words``: how many of the stop words (the, be, to, of, and, that, have,
      with; case-sensitive) occur as words.

    Default thresholds, from the paper: 50 to 100,000 words; mean word length 3 to 10;
    symbol-to-word ratio at most 0.1 for ``#`` and for ellipses; at most 90% of lines
    starting with a bullet and 30% ending with an ellipsis; at least 80% of words with an
    alphabetic character; at least 2 stop words.

    Reasons, in datatrove's order: ``gopher_short_doc``, ``gopher_long_doc``,
    ``gopher_below_avg_threshold``, ``gopher_above_avg_threshold``,
    ``gopher_too_many_hashes``, ``gopher_too_many_ellipsis``, ``gopher_too_many_bullets``,
    ``gopher_too_many_end_ellipsis``, ``gopher_below_alpha_threshold``,
    ``gopher_enough_stop_words``.

    Follows datatrove 0.10.1 where it departs from the paper: the word-count bounds count
    non-symbol words only, while the symbol and alphabetic ratios divide by all words
    (punctuation tokens included); "bullet" means ``•`` or ``-`` only; stop words must
    match exactly (``The`` does not count). An empty text is a short document. A threshold
    of 0 is a real threshold here (datatrove treats 0 as "off").
    """

    name: ClassVar[str] = "gopher_quality"
    kind: ClassVar = "filter"
    Params: ClassVar[type[StepParams]] = GopherQualityParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "n_words": pa.int64(),
        "n_non_symbol_words": pa.int64(),
        "mean_word_length": pa.float64(),
        "hash_word_ratio": pa.float64(),
        "ellipsis_word_ratio": pa.float64(),
        "bullet_lines_ratio": pa.float64(),
        "end_ellipsis_lines_ratio": pa.float64(),
        "alpha_words_ratio": pa.float64(),
        "n_stop_words": pa.int64(),
    }

    def compute(self, texts: list[str]) -> StepOutput:
        p = self.params
        assert isinstance(p, GopherQualityParams)
        WORDS.maybe_trim()
        stop_words = tuple(dict.fromkeys(p.stop_words))
        out = {name: np.zeros(len(texts), dtype=dtype.to_pandas_dtype())
               for name, dtype in self.signal_types.items()}  # fmt: skip
        for i, text in enumerate(texts):
            ids = WORDS.word_ids(text)
            attrs = WORDS.attributes()
            n_words = len(ids)
            non_symbol = attrs["symbol"][ids] == 0
            n_non_symbol = int(non_symbol.sum())
            out["n_words"][i] = n_words
            out["n_non_symbol_words"][i] = n_non_symbol
            out["mean_word_length"][i] = (
                attrs["length"][ids][non_symbol].mean() if n_non_symbol else np.nan
            )
            if n_words:
                out["hash_word_ratio"][i] = text.count("#") / n_words
                out["ellipsis_word_ratio"][i] = (text.count("...") + text.count("…")) / n_words
                out["alpha_words_ratio"][i] = attrs["alpha"][ids].sum() / n_words
            lines = text.splitlines()
            if lines:
                bullets = sum(1 for s in lines if s.lstrip().startswith(("•", "-")))
                ellipses = sum(1 for s in lines if s.rstrip().endswith(("...", "…")))
                out["bullet_lines_ratio"][i] = bullets / len(lines)
                out["end_ellipsis_lines_ratio"][i] = ellipses / len(lines)
            stop_ids = [w for w in map(WORDS.known_id, stop_words) if w is not None]
            out["n_stop_words"][i] = int(np.isin(stop_ids, ids).sum()) if stop_ids else 0
        return StepOutput(signals=out)  # type: ignore[arg-type]

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        p = self.params
        assert isinstance(p, GopherQualityParams)
        words = signals["n_non_symbol_words"]
        mean = signals["mean_word_length"]
        return _decide(
            [
                ("gopher_short_doc", _below(words, p.min_doc_words)),
                ("gopher_long_doc", _above(words, p.max_doc_words)),
                ("gopher_below_avg_threshold", _below(mean, p.min_avg_word_length)),
                ("gopher_above_avg_threshold", _above(mean, p.max_avg_word_length)),
                ("gopher_too_many_hashes", _above(signals["hash_word_ratio"],
                                                  p.max_symbol_word_ratio)),
                ("gopher_too_many_ellipsis", _above(signals["ellipsis_word_ratio"],
                                                    p.max_symbol_word_ratio)),
                ("gopher_too_many_bullets", _above(signals["bullet_lines_ratio"],
                                                   p.max_bullet_lines_ratio)),
                ("gopher_too_many_end_ellipsis", _above(signals["end_ellipsis_lines_ratio"],
                                                        p.max_ellipsis_lines_ratio)),
                ("gopher_below_alpha_threshold", _below(signals["alpha_words_ratio"],
                                                        p.min_alpha_words_ratio)),
                ("gopher_enough_stop_words", _below(signals["n_stop_words"], p.min_stop_words)),
            ],
            len(words),
        )  # fmt: skip
