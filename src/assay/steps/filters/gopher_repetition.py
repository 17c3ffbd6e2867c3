"""Gopher's repetition filter (Rae et al. 2021, MassiveText), as datatrove 0.10.1's
``GopherRepetitionFilter`` computes it: the reference implementation whose decisions this
step reproduces; where datatrove departs from the paper the class docstring says so.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import pyarrow as pa
from pydantic import Field

from assay.steps.base import (
    DocumentStep,
    StepOutput,
    StepParams,
    Threshold,
    first_failing_rule,
    register,
    set_thresholds,
    threshold_rules,
)
from assay.text import kernel
from assay.text.lines import find_duplicates
from assay.text.ngram_hashes import NgramHashes
from assay.text.spacy_words import WORDS, WordTable

TOP_NGRAMS: tuple[int, ...] = (2, 3, 4)
DUP_NGRAMS: tuple[int, ...] = (5, 6, 7, 8, 9, 10)

# Runs of 2+ newlines, written so that the regex engine scans for the literal "\n" in C
# (6x faster than r"\n{2,}", which it tries at every position).
_PARAGRAPHS = re.compile(r"\n\n+")



# The n-gram counts work on a whole batch of documents at once (per-document numpy calls
# would cost more than the arithmetic on documents of a few hundred words): the words of
# the batch are laid end to end, every n-gram is identified by its start position in that
# concatenation (``NgramHashes``), and entries (n-grams) always stay in position order, so
# they are also grouped by document.

_LOW = (1 << 32) - 1  # low half of an int64
_SLICE_WORDS = 1 << 16  # words per slice of a batch (see GopherRepetition.compute)


def _group(keys: np.ndarray, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries with equal keys in the same document, gathered: ``(order, starts)``.

    ``order`` lists the entry indices group after group, each group in index order (so
    its first entry is the n-gram's first occurrence in the document); ``starts`` are the
    indices into ``order`` where groups begin. ``docs`` is the (ascending) document of
    each entry.

    One sort orders by key and then by index: the key, shifted right to make room, goes
    above the index in a single integer. Keys that differ only in the bits shifted out
    can end up interleaved. Across documents that is harmless (each document's entries
    are a contiguous range of indices, so within a run of equal high bits they stay
    contiguous); within one document it is detected (an adjacent pair with equal high
    bits and document but different keys) and the entries are then sorted by full key.
    """
    m = len(keys)
    bits = max(1, (m - 1).bit_length())
    packed = np.sort((keys >> bits << bits) | np.arange(m))
    order = packed & ((1 << bits) - 1)
    ordered = keys[order]
    same_doc = docs[order]
    same_doc = same_doc[1:] == same_doc[:-1]
    new_key = ordered[1:] != ordered[:-1]
    if (new_key & same_doc & (packed[1:] >> bits == packed[:-1] >> bits)).any():
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        same_doc = docs[order]
        same_doc = same_doc[1:] == same_doc[:-1]
        new_key = ordered[1:] != ordered[:-1]
    new = np.ones(m, dtype=bool)
    np.logical_or(new_key, ~same_doc, out=new[1:])
    return order, np.flatnonzero(new)


def top_ngram_chars(hashes: NgramHashes, ns: Sequence[int]) -> np.ndarray:
    """For each n (rows) and document (columns): characters of the document's most frequent
    n-gram (its words joined by spaces) times its number of occurrences, overlaps included
    (datatrove's ``find_top_duplicate``: ties go to the n-gram that occurs first); 0 when
    the document has no n-gram. ``hashes`` must be ``spaced``.

    Two n-grams joined by spaces are equal exactly when their words are (words contain no
    whitespace), so an n-gram can only occur twice if both of its (n-1)-grams do: when n-1
    was counted just before, only those positions are grouped. A document whose n-grams all
    occur once has its first n-gram as the most frequent one.
    """
    assert hashes.spaced
    out = np.zeros((len(ns), hashes.n_docs), dtype=np.int64)
    doc_words = np.diff(hashes.doc_starts)
    repeated: np.ndarray | None = None  # positions whose (n-1)-gram occurs twice or more
    for n in sorted(set(ns)):
        if repeated is not None:
            starts = hashes.starts(n)
            starts, keys = hashes.keys(n, starts[repeated[starts] & repeated[starts + 1]])
        else:
            starts, keys = hashes.keys(n)
        docs = hashes.doc_of[starts]
        order, group_starts = _group(keys, docs)
        sizes = np.diff(group_starts, append=len(order))
        several = sizes > 1
        # "Most occurrences, then earliest" as one number to maximise per document:
        # occurrences in the high half, the complement of the first entry in the low half.
        firsts = order[group_starts[several]]  # entry of each group's first occurrence
        score = (sizes[several] << 32) | (_LOW - firsts)
        best = np.full(hashes.n_docs, -1, dtype=np.int64)
        np.maximum.at(best, docs[firsts], score)
        top = best >> 32
        first = starts[_LOW - (best & _LOW)[best >= 0]]
        chars = np.zeros(hashes.n_docs, dtype=np.int64)
        chars[best >= 0] = hashes.lengths(first, n) * top[best >= 0]
        once = (best < 0) & (doc_words >= n)
        chars[once] = hashes.lengths(hashes.doc_starts[:-1][once], n)
        out[[i for i, m in enumerate(ns) if m == n]] = chars
        repeated = np.zeros(hashes.n_words, dtype=bool) if n + 1 in ns else None
        if repeated is not None:
            repeated[starts[order[np.repeat(several, sizes)]]] = True
    return out


def duplicate_ngram_chars(hashes: NgramHashes, ns: Sequence[int]) -> np.ndarray:
    """For each n (rows) and document (columns): characters in n-grams (words joined
    without spaces) that repeat an earlier one, as datatrove's ``find_all_duplicate``
    counts them."""
    out = np.zeros((len(ns), hashes.n_docs), dtype=np.int64)
    for row, n in zip(out, ns, strict=True):
        starts, keys = hashes.keys(n)
        if len(starts) < 2:
            continue
        docs = hashes.doc_of[starts]
        order, group_starts = _group(keys, docs)
        if len(group_starts) == len(order):
            continue  # every n-gram occurs once
        sizes = np.diff(group_starts, append=len(order))
        first = np.empty(len(order), dtype=np.int64)  # entry of each entry's first occurrence
        first[order] = np.repeat(order[group_starts], sizes)
        repeats = np.flatnonzero(first != np.arange(len(order)))
        positions = starts[repeats]
        row[:] = _scan(positions, starts[first[repeats]], hashes.lengths(positions, n),
                       docs[repeats], n, hashes.n_docs)  # fmt: skip
    return out


def _scan(
    repeats: np.ndarray,
    firsts: np.ndarray,
    sizes: np.ndarray,
    docs: np.ndarray,
    n: int,
    n_docs: int,
) -> np.ndarray:
    """datatrove's left-to-right duplicate scan over every document of a batch at once.

    ``repeats``: positions (ascending) of the n-grams that occurred before in their
    document, ``firsts`` the position of that first occurrence, ``sizes`` their characters,
    ``docs`` their document. Returns the characters of duplicates per document.

    datatrove scans left to right: an n-gram seen before adds its length and the scan
    jumps ``n`` words ahead (the n-grams jumped over are not remembered); any other n-gram
    is remembered and the scan moves one word. Usually every repeat the scan reaches is a
    duplicate: then the duplicates in each run of consecutive repeats are every n-th
    position from where the scan enters it (``_run_entries``). That holds unless the first
    occurrence of one of them was jumped over: from the first such duplicate on, the
    document gets ``_scan_exact``. Documents cannot interact: a jump from a document's last
    n-gram lands at most on the next document's first position, which the scan would reach
    anyway.
    """
    breaks = np.flatnonzero(np.diff(repeats) != 1) + 1
    run_lo = np.concatenate(([0], breaks))  # runs of consecutive positions, as indices
    run_hi = np.concatenate((breaks, [len(repeats)]))
    a, b = repeats[run_lo], repeats[run_hi - 1]
    entry = _run_entries(a, b, n)
    counts = np.where(entry <= b, (b - entry) // n + 1, 0)  # duplicates in each run
    steps = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    chain = np.repeat(run_lo + entry - a, counts) + n * steps  # duplicates, as indices
    dups = repeats[chain]
    dup_firsts = firsts[chain]
    # A jump skips the positions after a duplicate d up to d + n; jumps do not overlap, so
    # a first occurrence f was skipped if the last duplicate before it is within n.
    before = np.searchsorted(dups, dup_firsts) - 1
    jumped = (before >= 0) & (dup_firsts < dups[np.maximum(before, 0)] + n)
    out = np.bincount(docs[chain], weights=sizes[chain], minlength=n_docs).astype(np.int64)
    # In a document with such a duplicate, everything before its first one is right: the
    # exact scan takes over from there.
    wrong = np.flatnonzero(jumped)
    wrong_docs = docs[chain[wrong]]
    for stop in wrong[np.flatnonzero(np.diff(wrong_docs, prepend=-1))].tolist():
        doc = int(docs[chain[stop]])
        lo, hi = np.searchsorted(docs, [doc, doc + 1]).tolist()  # its repeats
        start = int(np.searchsorted(chain, lo))  # its first duplicate
        prior = chain[start:stop]
        out[doc] = int(sizes[prior].sum()) + _scan_exact(
            repeats[lo:hi], firsts[lo:hi], sizes[lo:hi], n, int(dups[stop]), repeats[prior]
        )
    return out


_MAX_SWEEPS = 32


def _run_entries(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """Where the scan enters each run ``[a, b]`` of consecutive repeats, if all it
    reaches are duplicates (after ``b`` when a jump carries it past the whole run).

    It enters at the run's start unless the jump after the previous run's last duplicate
    lands further: entry = max(a, exit of the previous run), where a run entered at e
    with k = (b - e) // n + 1 duplicates is left at e + k * n (left at e if e > b). A
    run is left at most n past its end, so only runs starting less than n after the
    previous one ends ("linked") can be entered late. Chains of linked runs are short:
    sweep them all at once until nothing changes (each sweep settles one more link; a
    fixed point is the answer), and finish any chain still unsettled one run at a time.
    """
    entry = a.copy()
    linked = np.flatnonzero(a[1:] < b[:-1] + n) + 1
    for _ in range(_MAX_SWEEPS):
        if not len(linked):
            return entry
        prev, prev_end = entry[linked - 1], b[linked - 1]
        left = np.where(prev <= prev_end, prev + ((prev_end - prev) // n + 1) * n, prev)
        new = np.maximum(a[linked], left)
        if np.array_equal(new, entry[linked]):
            return entry
        entry[linked] = new
    for r in linked.tolist():
        prev, prev_end = int(entry[r - 1]), int(b[r - 1])
        left = prev + ((prev_end - prev) // n + 1) * n if prev <= prev_end else prev
        entry[r] = max(int(a[r]), left)
    return entry


def _scan_exact(
    repeats: np.ndarray,
    firsts: np.ndarray,
    sizes: np.ndarray,
    n: int,
    resume: int,
    prior: np.ndarray,
) -> int:
    """datatrove's left-to-right duplicate scan of one document, visiting only its repeats;
    the characters of its duplicates from position ``resume`` on.

    ``repeats``, ``firsts`` and ``sizes`` as for ``_scan``; ``prior``: the duplicates
    (positions) the scan found before ``resume``. A repeat is a duplicate unless the first
    occurrence of its n-gram was jumped over and no later visited occurrence was
    remembered. First occurrences are only ever jumped over just after a run of
    consecutive repeats, so within a run that refers to none of them (checked with the
    least and greatest first occurrence it refers to) the duplicates are simply every n-th
    position; only other runs are walked one repeat at a time.
    """
    run_lo = np.concatenate(([0], np.flatnonzero(np.diff(repeats) != 1) + 1))
    run_a, run_b = repeats[run_lo], repeats[np.append(run_lo[1:], len(repeats)) - 1]
    run_min = np.minimum.reduceat(firsts, run_lo)
    run_max = np.maximum.reduceat(firsts, run_lo)
    skip = int(np.searchsorted(run_b, resume))  # runs the scan is past already
    # every_nth[i]: sizes[i] + sizes[i - n] + sizes[i - 2n] + ... (a strided running sum)
    padded = np.zeros(-(-len(sizes) // n) * n, dtype=np.int64)
    padded[: len(sizes)] = sizes
    every_nth = padded.reshape(-1, n).cumsum(axis=0).ravel().tolist()
    firsts_list = firsts.tolist()
    size_list = sizes.tolist()
    # [lo, hi) intervals the scan jumped over, sorted and disjoint. After the prior
    # duplicates, whole jumps are listed; the loop below lists only the parts past a
    # run's end: the rest are repeats, never first occurrences, so it makes no difference.
    prior_list = prior.tolist()
    jumped_lo = [d + 1 for d in prior_list]
    jumped_hi = [d + n for d in prior_list]
    remembered: set[int] = set()  # n-grams (by first position) remembered at a repeat
    total = 0
    for lo, a, b, least, most in zip(
        run_lo[skip:].tolist(), run_a[skip:].tolist(), run_b[skip:].tolist(),
        run_min[skip:].tolist(), run_max[skip:].tolist(), strict=True,
    ):  # fmt: skip
        start = a if a >= resume else resume
        if start > b:
            continue
        i0 = lo + start - a
        k = bisect_right(jumped_lo, most) - 1
        if k < 0 or jumped_hi[k] <= least:  # no first occurrence of this run was jumped
            last = i0 + (b - start) // n * n
            total += every_nth[last] - (every_nth[i0 - n] if i0 >= n else 0)
            resume = last - lo + a + n
        else:
            pos = start
            while pos <= b:
                f = firsts_list[lo + pos - a]
                k = bisect_right(jumped_lo, f) - 1
                if k >= 0 and f < jumped_hi[k] and f not in remembered:
                    remembered.add(f)
                    pos += 1
                else:
                    total += size_list[lo + pos - a]
                    pos += n
            resume = pos
        if resume > b + 1:
            jumped_lo.append(b + 1)
            jumped_hi.append(resume)
    return total


def ngram_chars(words: WordTable) -> tuple[np.ndarray, np.ndarray]:
    """``(top, dup)``: :func:`top_ngram_chars` for ``TOP_NGRAMS`` and
    :func:`duplicate_ngram_chars` for ``DUP_NGRAMS`` of each document of ``words``, by the
    compiled kernel when it is built, else by numpy."""
    if kernel.available():
        return kernel.repetition(words.length, words.h, words.hs, words.doc_starts, TOP_NGRAMS, DUP_NGRAMS)
    # Many documents at once, in slices of about _SLICE_WORDS words: enough for numpy to
    # run at full speed, few enough to keep the dozens of temporary arrays per word small.
    n_docs = len(words.counts)
    top = np.zeros((len(TOP_NGRAMS), n_docs), dtype=np.int64)
    dup = np.zeros((len(DUP_NGRAMS), n_docs), dtype=np.int64)
    bounds = words.doc_starts
    lo = 0
    while lo < n_docs:
        hi = int(np.searchsorted(bounds, bounds[lo] + _SLICE_WORDS, side="right")) - 1
        hi = min(max(hi, lo + 1), n_docs)
        part = words.docs(lo, hi)
        top[:, lo:hi] = top_ngram_chars(NgramHashes(part, True), TOP_NGRAMS)
        dup[:, lo:hi] = duplicate_ngram_chars(NgramHashes(part, False), DUP_NGRAMS)
        lo = hi
    return top, dup


class GopherRepetitionParams(StepParams):
    """Maximum fractions (Rae et al. 2021, Table A1); None disables a rule."""

    dup_para_frac: float | None = Field(0.3, description="repeated paragraphs, share of all")
    dup_para_char_frac: float | None = Field(0.2, description="characters in repeated paragraphs")
    dup_line_frac: float | None = Field(0.3, description="repeated lines, share of all")
    dup_line_char_frac: float | None = Field(0.2, description="characters in repeated lines")
    top_2_gram_frac: float | None = Field(0.20, description="characters of the most frequent word 2-gram")
    top_3_gram_frac: float | None = Field(0.18, description="characters of the most frequent word 3-gram")
    top_4_gram_frac: float | None = Field(0.16, description="characters of the most frequent word 4-gram")
    dup_5_gram_frac: float | None = Field(0.15, description="characters in repeated word 5-grams")
    dup_6_gram_frac: float | None = Field(0.14, description="characters in repeated word 6-grams")
    dup_7_gram_frac: float | None = Field(0.13, description="characters in repeated word 7-grams")
    dup_8_gram_frac: float | None = Field(0.12, description="characters in repeated word 8-grams")
    dup_9_gram_frac: float | None = Field(0.11, description="characters in repeated word 9-grams")
    dup_10_gram_frac: float | None = Field(0.10, description="characters in repeated word 10-grams")


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
        n_chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        fracs = np.zeros((len(_REPETITION_FRACS), len(texts)), dtype=np.float64)
        code_points = None
        if kernel.available():
            code_points = kernel.code_points(texts)
            counts = kernel.line_repeats(*code_points)
            has_text = n_chars > 0
            length = n_chars[has_text]
            fracs[0, has_text] = counts[1, has_text] / counts[0, has_text]
            fracs[1, has_text] = counts[2, has_text] / length
            fracs[2, has_text] = counts[4, has_text] / counts[3, has_text]
            fracs[3, has_text] = counts[5, has_text] / length
        else:
            for i, text in enumerate(texts):
                if text:
                    fracs[:4, i] = self._line_fractions(text)
        top, dup = ngram_chars(WORDS.batch_table(texts, code_points))
        length = np.maximum(n_chars, 1)
        fracs[4 : 4 + len(TOP_NGRAMS)] = top / length
        fracs[4 + len(TOP_NGRAMS) :] = dup / length
        signals: dict[str, np.ndarray] = {"n_chars": n_chars}
        signals.update(zip(_REPETITION_FRACS, fracs, strict=True))
        return StepOutput(signals=signals)  # type: ignore[arg-type]

    @staticmethod
    def _line_fractions(text: str) -> tuple[float, float, float, float]:
        """Duplicate paragraph and line fractions (count, characters) of a non-empty text."""
        n = len(text)
        paragraphs = _PARAGRAPHS.split(text.strip())
        para_dups, para_chars = find_duplicates(paragraphs)
        lines = text.split("\n")
        if len(lines) > 2:  # as re.split("\n+"): runs of newlines make no empty lines inside
            lines = [lines[0], *filter(None, lines[1:-1]), lines[-1]]
        line_dups, line_chars = find_duplicates(lines)
        return para_dups / len(paragraphs), para_chars / n, line_dups / len(lines), line_chars / n

    def thresholds(self) -> list[Threshold]:
        p = self.params
        assert isinstance(p, GopherRepetitionParams)
        return set_thresholds(
            ("dup_para_frac", "dup_para_frac", ">", p.dup_para_frac),
            ("dup_para_char_frac", "dup_para_char_frac", ">", p.dup_para_char_frac),
            ("dup_line_frac", "dup_line_frac", ">", p.dup_line_frac),
            ("dup_line_char_frac", "dup_line_char_frac", ">", p.dup_line_char_frac),
            *((f"top_{k}_gram", f"top_{k}_gram_frac", ">", getattr(p, f"top_{k}_gram_frac"))
              for k in TOP_NGRAMS),
            *((f"duplicated_{k}_n_grams", f"dup_{k}_gram_frac", ">", getattr(p, f"dup_{k}_gram_frac"))
              for k in DUP_NGRAMS),
        )

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        rules = [("empty", signals["n_chars"] == 0), *threshold_rules(self.thresholds(), signals)]
        return first_failing_rule(rules, len(signals["n_chars"]))
