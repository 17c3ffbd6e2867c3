"""Gopher's quality filter (Rae et al. 2021, MassiveText), as datatrove 0.10.1's
``GopherQualityFilter`` computes it: the reference implementation whose decisions this step
reproduces; where datatrove departs from the paper the class docstring says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
from assay.text.ngram_hashes import PRIMES
from assay.text.spacy_words import WORDS, word_hashes
from assay.text.tables import GOPHER_STOP_WORDS

# In the lines joined by "\n" with one more "\n" on each side: a line that starts with a
# bullet after whitespace (str.lstrip's whitespace is the regex engine's \s) and one that
# ends with an ellipsis before whitespace; [^\S\n]: whitespace other than the line break.
# Each starts with a literal, which the regex engine finds in C.
_BULLET_LINE = re.compile(r"\n[^\S\n]*[•-]")
_ELLIPSIS_LINE = re.compile(r"(?:\.\.\.|…)[^\S\n]*\n")


def _line_marks(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per text: lines (``str.splitlines``), bullet lines and ellipsis lines (the pure-Python
    reference of ``kernel.line_marks``)."""
    out = np.zeros((3, len(texts)), dtype=np.int64)
    for i, text in enumerate(texts):
        lines = text.splitlines()
        if lines:
            # The lines hold no line break, so joined by "\n" each is one regex line.
            joined = "\n" + "\n".join(lines) + "\n"
            out[:, i] = len(lines), len(_BULLET_LINE.findall(joined)), len(_ELLIPSIS_LINE.findall(joined))
    return out[0], out[1], out[2]


class GopherQualityParams(StepParams):
    """Thresholds of the Gopher quality filter (Rae et al. 2021, A.1.1); None disables."""

    min_doc_words: int | None = Field(50, description="fewest words (symbol-only words excluded)")
    max_doc_words: int | None = Field(100_000, description="most words")
    min_avg_word_length: float | None = Field(3, description="shortest mean word length, in characters")
    max_avg_word_length: float | None = Field(10, description="longest mean word length, in characters")
    max_symbol_word_ratio: float | None = Field(
        0.1, description="most '#' and most '...' per word (one threshold for both ratios)")
    max_bullet_lines_ratio: float | None = Field(0.9, description="most lines that start with a bullet")
    max_ellipsis_lines_ratio: float | None = Field(0.3, description="most lines that end in an ellipsis")
    min_alpha_words_ratio: float | None = Field(
        0.8, description="fewest words with a letter (datatrove's max_non_alpha_words_ratio)")
    min_stop_words: int | None = Field(2, description="fewest of the stop words present")
    stop_words: tuple[str, ...] = Field(
        GOPHER_STOP_WORDS, description="the stop words (changing them changes the n_stop_words signal)")


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
        n_docs = len(texts)
        out = {name: np.zeros(n_docs, dtype=dtype.to_pandas_dtype())
               for name, dtype in self.signal_types.items()}  # fmt: skip
        # Word counts: the whole batch at once, summed per document (each document's words
        # are a contiguous run of the table).
        words = WORDS.batch_table(texts)
        n_words = words.counts
        doc_starts = words.doc_starts
        firsts = np.minimum(doc_starts[:-1], max(len(words.length) - 1, 0))

        def per_doc(values: np.ndarray) -> np.ndarray:
            if not len(values):
                return np.zeros(n_docs, dtype=np.int64)
            sums = np.add.reduceat(values, firsts, dtype=np.int64)
            sums[n_words == 0] = 0  # reduceat gives an empty run its next value
            return sums

        non_symbol = words.symbol == 0
        n_non_symbol = per_doc(non_symbol).astype(np.int64)
        out["n_words"][:] = n_words
        out["n_non_symbol_words"][:] = n_non_symbol
        with np.errstate(invalid="ignore"):  # 0 / 0: NaN for a text without such words
            out["mean_word_length"][:] = per_doc(words.length * non_symbol) / n_non_symbol
        alpha = per_doc(words.alpha)
        has_words = n_words > 0
        out["alpha_words_ratio"][has_words] = alpha[has_words] / n_words[has_words]
        for i, text in enumerate(texts):
            if n_words[i]:
                out["hash_word_ratio"][i] = text.count("#") / n_words[i]
                out["ellipsis_word_ratio"][i] = (text.count("...") + text.count("…")) / n_words[i]
        n_lines, bullets, ellipses = kernel.line_marks(texts) if kernel.available() else _line_marks(texts)
        has_lines = n_lines > 0
        out["bullet_lines_ratio"][has_lines] = bullets[has_lines] / n_lines[has_lines]
        out["end_ellipsis_lines_ratio"][has_lines] = ellipses[has_lines] / n_lines[has_lines]
        # Distinct stop words per document: distinct (document, stop word) pairs, words
        # compared by their two hashes.
        stop_keys = np.array([a * PRIMES[1] + b for a, b in map(word_hashes, dict.fromkeys(p.stop_words))],
                             dtype=np.int64)  # fmt: skip
        if len(stop_keys):
            stop_keys.sort()
            keys = words.h[0].astype(np.int64) * PRIMES[1] + words.h[1]
            hit = np.flatnonzero(np.isin(keys, stop_keys))
            which = np.searchsorted(stop_keys, keys[hit])  # index of the stop word
            doc_of = np.searchsorted(doc_starts, hit, side="right") - 1
            present = np.bincount(doc_of * len(stop_keys) + which,
                                  minlength=n_docs * len(stop_keys))  # fmt: skip
            out["n_stop_words"][:] = (present.reshape(n_docs, len(stop_keys)) > 0).sum(axis=1)
        return StepOutput(signals=out)  # type: ignore[arg-type]

    def thresholds(self) -> list[Threshold]:
        p = self.params
        assert isinstance(p, GopherQualityParams)
        return set_thresholds(
            ("gopher_short_doc", "n_non_symbol_words", "<", p.min_doc_words),
            ("gopher_long_doc", "n_non_symbol_words", ">", p.max_doc_words),
            ("gopher_below_avg_threshold", "mean_word_length", "<", p.min_avg_word_length),
            ("gopher_above_avg_threshold", "mean_word_length", ">", p.max_avg_word_length),
            ("gopher_too_many_hashes", "hash_word_ratio", ">", p.max_symbol_word_ratio),
            ("gopher_too_many_ellipsis", "ellipsis_word_ratio", ">", p.max_symbol_word_ratio),
            ("gopher_too_many_bullets", "bullet_lines_ratio", ">", p.max_bullet_lines_ratio),
            ("gopher_too_many_end_ellipsis", "end_ellipsis_lines_ratio", ">", p.max_ellipsis_lines_ratio),
            ("gopher_below_alpha_threshold", "alpha_words_ratio", "<", p.min_alpha_words_ratio),
            ("gopher_enough_stop_words", "n_stop_words", "<", p.min_stop_words),
        )

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        return first_failing_rule(threshold_rules(self.thresholds(), signals), len(signals["n_words"]))
