"""The Gopher rule sets: repetition and quality (Rae et al. 2021, MassiveText).

Both follow datatrove 0.10.1 (``GopherRepetitionFilter``, ``GopherQualityFilter``), the
reference implementation whose decisions these steps reproduce; where datatrove departs from
the paper the class docstring says so.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import pyarrow as pa

from assay.steps.base import DocumentStep, StepOutput, StepParams, first_failing_rule, register
from assay.steps.text import GOPHER_STOP_WORDS, WORDS, NgramHashes, find_duplicates

TOP_NGRAMS: tuple[int, ...] = (2, 3, 4)
DUP_NGRAMS: tuple[int, ...] = (5, 6, 7, 8, 9, 10)

_PARAGRAPHS = re.compile(r"\n{2,}")


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


def _stack(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of different lengths in one matrix, padded with distinct negative numbers (real
    keys are non-negative, so padding never equals anything)."""
    width = max(len(r) for r in rows)
    out = np.empty((len(rows), width), dtype=np.int64)
    out[:] = -1 - np.arange(width)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Equal keys within each row: (the columns of each row in key order, earliest first
    among equal keys; group start indices into those flattened; first column of each
    group; size of each group).

    One sort orders by key and then by column: the key, shifted right to make room, goes
    above the column in a single integer. Keys that differ only in the bits shifted out
    would end up mixed; that is detected and the rows are then sorted by full key instead.
    """
    bits = max(1, (keys.shape[1] - 1).bit_length())
    columns = np.arange(keys.shape[1])
    high = np.where(keys < 0, keys, keys >> bits)  # padding (negative) stays distinct
    packed = np.sort((high << bits) | columns, axis=1)
    order = packed & ((1 << bits) - 1)
    ordered = np.take_along_axis(keys, order, axis=1)
    new = np.ones(keys.shape, dtype=bool)
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=new[:, 1:])
    if (new[:, 1:] & (packed[:, 1:] >> bits == packed[:, :-1] >> bits)).any():
        order = np.argsort(keys, axis=1, kind="stable")
        ordered = np.take_along_axis(keys, order, axis=1)
        np.not_equal(ordered[:, 1:], ordered[:, :-1], out=new[:, 1:])
    starts = np.flatnonzero(new)  # every row starts a group
    first = order.ravel()[starts]
    sizes = np.diff(starts, append=keys.size)
    return order, starts, first, sizes


def top_ngram_chars(hashes: NgramHashes, ns: Sequence[int]) -> list[int]:
    """For each n: characters of the most frequent n-gram (its words joined by spaces)
    times its number of occurrences, overlaps included (datatrove's ``find_top_duplicate``:
    ties go to the n-gram that occurs first); 0 when there is no n-gram."""
    rows = [hashes.keys(n) for n in ns]
    if all(len(keys) == 0 for keys, _ in rows):
        return [0] * len(ns)
    keys = _stack([k for k, _ in rows])
    _, starts, first, sizes = _groups(keys)
    row_of = starts // keys.shape[1]
    row_start = np.searchsorted(row_of, np.arange(len(ns)))
    top = np.maximum.reduceat(sizes, row_start)
    earliest = np.where(sizes == top[row_of], first, keys.shape[1])
    position = np.minimum.reduceat(earliest, row_start)
    return [
        int(lengths[p]) * int(t) if len(lengths) else 0
        for (_, lengths), p, t in zip(rows, position.tolist(), top.tolist(), strict=True)
    ]


def duplicate_ngram_chars(hashes: NgramHashes, ns: Sequence[int]) -> list[int]:
    """For each n: characters in n-grams (words joined without spaces) that repeat an
    earlier one, as datatrove's ``find_all_duplicate`` counts them."""
    rows = [hashes.keys(n) for n in ns]
    if all(len(keys) < 2 for keys, _ in rows):
        return [0] * len(ns)
    keys = _stack([k for k, _ in rows])
    width = keys.shape[1]
    order, _, first, sizes = _groups(keys)
    if sizes.max() == 1:
        return [0] * len(ns)
    # first occurrence of the n-gram at each (row, column)
    first_at = np.empty(keys.size, dtype=np.int64)
    first_at[order.ravel() + np.repeat(np.arange(len(ns)) * width, width)] = np.repeat(first, sizes)
    first_at = first_at.reshape(keys.shape)
    out = []
    for n, (_, lengths), row in zip(ns, rows, first_at, strict=True):
        repeats = np.flatnonzero(row < np.arange(width))
        out.append(_scan(repeats, row[repeats], lengths, n) if len(repeats) else 0)
    return out


def _scan(repeats: np.ndarray, firsts_of: np.ndarray, lengths: np.ndarray, n: int) -> int:
    """datatrove's left-to-right duplicate scan, for n-grams at ``repeats`` that occurred
    before (first at ``firsts_of``).

    Usually every repeat the scan reaches is a duplicate: then the duplicates are the
    chain "first repeat, then the first repeat at least n words further, ...". That holds
    unless the first occurrence of one of them was jumped over; if so, ``_scan_exact``.
    """
    # Repeats come in runs of consecutive positions; within a run the chain steps by n.
    breaks = np.flatnonzero(np.diff(repeats) > 1) + 1
    run_lo = np.concatenate(([0], breaks))
    run_hi = np.concatenate((breaks, [len(repeats)]))
    begins: list[int] = []  # index (into repeats) of the first duplicate in each run
    counts: list[int] = []
    resume = 0
    for lo, a, b in zip(
        run_lo.tolist(), repeats[run_lo].tolist(), repeats[run_hi - 1].tolist(), strict=True
    ):
        start = a if a >= resume else resume
        if start <= b:
            count = (b - start) // n + 1
            begins.append(lo + start - a)
            counts.append(count)
            resume = start + count * n
    offsets = np.arange(sum(counts)) - np.repeat(np.cumsum(counts) - counts, counts)
    chain = np.repeat(begins, counts) + n * offsets
    dups = repeats[chain]
    firsts = firsts_of[chain]
    before = np.searchsorted(dups, firsts) - 1  # the last duplicate before each first occurrence
    jumped = (before >= 0) & (firsts < dups[np.maximum(before, 0)] + n)
    if not jumped.any():
        return int(lengths[dups].sum())
    return _scan_exact(repeats, firsts_of, lengths, n)


def _scan_exact(repeats: np.ndarray, firsts_of: np.ndarray, lengths: np.ndarray, n: int) -> int:
    """datatrove's left-to-right duplicate scan, visiting only the repeats.

    datatrove scans left to right: an n-gram seen before adds its length and the scan jumps
    ``n`` words ahead (the n-grams jumped over are not remembered); any other n-gram is
    remembered and the scan moves one word. Only positions whose n-gram occurred earlier
    ("repeats", with ``firsts_of`` the position of that earlier first occurrence) can be
    duplicates. A repeat is one unless the first occurrence of its n-gram was jumped over
    and no later visited occurrence was remembered; first occurrences are only ever jumped
    over just after a run of consecutive repeats, so within a run that refers to no such
    position the duplicates are simply every n-th position.
    """
    breaks = np.flatnonzero(np.diff(repeats) > 1) + 1
    run_lo = np.concatenate(([0], breaks))
    run_hi = np.concatenate((breaks, [len(repeats)]))
    firsts = firsts_of.tolist()
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
        lines = text.split("\n")
        if len(lines) > 2:  # as re.split("\n+"): runs of newlines make no empty lines inside
            lines = [lines[0], *filter(None, lines[1:-1]), lines[-1]]
        line_dups, line_chars = find_duplicates(lines)
        out = [para_dups / len(paragraphs), para_chars / n, line_dups / len(lines), line_chars / n]
        ids = WORDS.word_ids(text)
        attrs = WORDS.attributes()
        out += [c / n for c in top_ngram_chars(NgramHashes(ids, attrs, True), TOP_NGRAMS)]
        out += [c / n for c in duplicate_ngram_chars(NgramHashes(ids, attrs, False), DUP_NGRAMS)]
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
