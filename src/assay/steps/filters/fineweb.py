"""The FineWeb quality rule set (Penedo et al. 2024)."""

from __future__ import annotations

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
from assay.text.lines import find_duplicates
from assay.text.spacy_words import WORDS
from assay.text.tables import TERMINAL_PUNCTUATION


class FineWebQualityParams(StepParams):
    """Thresholds of the FineWeb quality filter (Penedo et al. 2024); None disables a rule."""

    line_punct_thr: float | None = Field(
        0.12, description="reject when fewer lines end in terminal punctuation than this share")
    line_punct_exclude_zero: bool = Field(
        False, description="do not apply line_punct_thr when no line ends in punctuation")
    short_line_thr: float | None = Field(0.67, description="reject when more lines are short than this share")
    char_duplicates_ratio: float | None = Field(
        0.01, description="reject when more characters are in duplicated lines than this share")
    new_line_ratio: float | None = Field(0.3, description="reject when there are more newlines per word")
    # These two change the signals (they need recomputing).
    short_line_length: int = Field(30, description="the longest line that counts as short, in characters")
    stop_chars: tuple[str, ...] | None = Field(
        None, description="line endings that count as terminal punctuation (None: datatrove's set)")


@register
class FineWebQuality(DocumentStep):
    """FineWeb quality filter: punctuation at line ends, short lines, repeated lines, lists.

    Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web for the Finest Text Data
    at Scale", section 3.3 (custom filters). Over the non-blank lines of the text
    (split on ``\\n``):

    * ``n_lines``: non-blank lines; a text without any is rejected as ``empty``.
    * ``line_punct_ratio``: lines ending in terminal punctuation (datatrove's
      ``TERMINAL_PUNCTUATION``: ``.``, ``?``, ``!`` and their equivalents in other scripts).
    * ``short_line_ratio``: lines of at most ``short_line_length`` (30) characters.
    * ``char_dup_ratio``: characters in lines equal to an earlier line, over the characters
      of the text without its newlines.
    * ``newline_ratio``: newlines over words (spaCy English tokens).

    Default thresholds, from the paper: line punctuation ratio at least 0.12, short line
    ratio at most 0.67, duplicated-line character ratio at most 0.01, newline-to-word ratio
    at most 0.3. Reasons, in datatrove's order: ``empty``, ``line_punct_ratio``,
    ``short_line_ratio``, ``char_dup_ratio``, ``list_ratio``.

    Follows datatrove 0.10.1: lines are not stripped before the end-of-line check, so a
    line ending in ``.\\r`` (Windows newlines) or ``. `` does not count as punctuated.
    """

    name: ClassVar[str] = "fineweb_quality"
    kind: ClassVar = "filter"
    Params: ClassVar[type[StepParams]] = FineWebQualityParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "n_lines": pa.int64(),
        "line_punct_ratio": pa.float64(),
        "short_line_ratio": pa.float64(),
        "char_dup_ratio": pa.float64(),
        "newline_ratio": pa.float64(),
    }

    def compute(self, texts: list[str]) -> StepOutput:
        p = self.params
        assert isinstance(p, FineWebQualityParams)
        WORDS.maybe_trim()
        stop_chars = tuple(TERMINAL_PUNCTUATION) if p.stop_chars is None else p.stop_chars
        single_chars = frozenset(stop_chars) if all(len(c) == 1 for c in stop_chars) else None
        short = p.short_line_length
        n = len(texts)
        n_lines = np.zeros(n, dtype=np.int64)
        n_words = WORDS.word_counts(texts).tolist()
        ratios = {name: np.zeros(n) for name in list(self.signal_types)[1:]}
        for i, text in enumerate(texts):
            lines = [line for line in text.split("\n") if line.strip()]
            if not lines:
                continue
            n_lines[i] = len(lines)
            if single_chars is not None:
                punct = sum(1 for line in lines if line[-1] in single_chars)
            else:
                punct = sum(1 for line in lines if line.endswith(stop_chars))
            ratios["line_punct_ratio"][i] = punct / len(lines)
            ratios["short_line_ratio"][i] = sum(1 for x in lines if len(x) <= short) / len(lines)
            dup_chars = find_duplicates(lines)[1]
            ratios["char_dup_ratio"][i] = dup_chars / (len(text) - text.count("\n"))
            ratios["newline_ratio"][i] = text.count("\n") / n_words[i]
        return StepOutput(signals={"n_lines": n_lines, **ratios})  # type: ignore[arg-type]

    def thresholds(self) -> list[Threshold]:
        p = self.params
        assert isinstance(p, FineWebQualityParams)
        return set_thresholds(
            ("line_punct_ratio", "line_punct_ratio", "<", p.line_punct_thr),
            ("short_line_ratio", "short_line_ratio", ">", p.short_line_thr),
            ("char_dup_ratio", "char_dup_ratio", ">", p.char_duplicates_ratio),
            ("list_ratio", "newline_ratio", ">", p.new_line_ratio),
        )

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        p = self.params
        assert isinstance(p, FineWebQualityParams)
        n_lines = signals["n_lines"]
        rules: list[tuple[str, np.ndarray]] = [("empty", n_lines == 0)]
        for reason, mask in threshold_rules(self.thresholds(), signals):
            if reason == "line_punct_ratio" and p.line_punct_exclude_zero:
                mask &= signals["line_punct_ratio"] != 0  # no line ends in punctuation: kept
            rules.append((reason, mask))
        return first_failing_rule(rules, len(n_lines))
