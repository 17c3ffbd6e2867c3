"""The C4 rule set (Raffel et al. 2020): line cleaning plus document rules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
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
from assay.text.spacy_words import WORDS

# Wikipedia-style citation marks, removed from lines: [1], [], [edit], [citation needed].
CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION: tuple[str, ...] = (".", "?", "!", '"', "'")
ELLIPSIS = "..."
# Lines mentioning site policies (TensorFlow Datasets' c4_utils, as in datatrove).
POLICY_SUBSTRINGS: tuple[str, ...] = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
_POLICY = re.compile("|".join(map(re.escape, POLICY_SUBSTRINGS)))


class C4QualityParams(StepParams):
    """Rules of C4 (Raffel et al. 2020, section 2.2). None disables a numeric rule."""

    # Line rules: they decide which lines are kept, so changing them means recomputing.
    remove_citations: bool = Field(True, description="remove Wikipedia citation marks such as [1]")
    filter_no_terminal_punct: bool = Field(
        True, description="drop lines not ending in terminal punctuation (FineWeb ran C4 without it)")
    min_words_per_line: int | None = Field(3, description="drop lines of fewer words")
    max_word_length: int | None = Field(1000, description="drop lines with a longer word")
    filter_javascript: bool = Field(True, description="drop lines that mention javascript")
    filter_policy: bool = Field(True, description="drop lines about terms of use, cookies, privacy policy")
    # Document rules: thresholds on the signals.
    min_num_sentences: int | None = Field(5, description="reject documents with fewer sentences left")
    filter_lorem_ipsum: bool = Field(True, description="reject documents containing lorem ipsum")
    filter_curly_bracket: bool = Field(True, description="reject documents with a curly bracket (code)")
    bad_words_file: str | None = Field(
        None, description="a local list of bad words, one per line (e.g. LDNOOBW's en); None: rule off")


_COUNTS = (
    "n_lines",
    "n_kept_lines",
    "lines_long_word",
    "lines_no_terminal_punct",
    "lines_few_words",
    "lines_javascript",
    "lines_policy",
    "n_sentences",
    "lorem_ipsum_line",
    "curly_bracket_line",
    "chars_removed",
)


@register
class C4Quality(DocumentStep):
    """C4 cleaning: keep the sentence-like lines, reject boilerplate and code pages.

    Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
    Text-to-Text Transformer", section 2.2, as implemented by datatrove's
    ``C4QualityFilter`` (after TensorFlow Datasets' ``c4_utils``). Each line (split with
    ``str.splitlines`` and stripped) is dropped, in this order, if a word (split on
    whitespace) is longer than 1000 characters; after removing citation marks, if it does
    not end in ``.``, ``?``, ``!``, ``"`` or ``'`` or ends in ``...``; if it has fewer than
    3 words; if it mentions "javascript"; if it mentions a cookie or terms-of-use policy.
    The text becomes the kept lines joined by newlines. Signals:

    * ``n_lines``, ``n_kept_lines``; lines dropped by each rule: ``lines_long_word``,
      ``lines_no_terminal_punct``, ``lines_few_words``, ``lines_javascript``,
      ``lines_policy``; ``chars_removed``: characters removed from the text.
    * ``n_sentences``: sentences in the kept lines (spaCy's rule-based sentencizer on
      each line, as datatrove counts them).
    * ``lorem_ipsum_line``: index of the first line that passes the length, punctuation
      and word-count rules and contains "lorem ipsum" (any case), -1 if none;
      ``curly_bracket_line``: the same for ``{`` in lines that also pass the javascript
      rule. The earlier of the two rejects the page (``lorem_ipsum`` / ``curly_bracket``),
      as datatrove stops at the first such line.
    * ``has_bad_words``: the kept text contains a word of ``bad_words_file`` (always
      False without one).

    Document rules, in datatrove's order: ``lorem_ipsum``, ``curly_bracket``,
    ``too_few_sentences`` (fewer than 5, the paper's threshold), then
    ``document_removed_with_badwords`` (datatrove's ``C4BadWordsFilter``, off by default).

    Follows datatrove 0.10.1 where it departs from the paper: lines are counted as sentences
    by spaCy's sentencizer; lines with a word over 1000 characters and policy lines are
    dropped (from the TFDS code, not the paper); a citation mark at the end of a line is
    removed before the punctuation check but leaves its preceding space, so the line is
    dropped. Rejected documents carry the cleaned text too.
    """

    name: ClassVar[str] = "c4_quality"
    kind: ClassVar = "transform"
    Params: ClassVar[type[StepParams]] = C4QualityParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        **{name: pa.int64() for name in _COUNTS},
        "has_bad_words": pa.bool_(),
    }

    def setup(self) -> None:
        p = self.params
        assert isinstance(p, C4QualityParams)
        self._bad_words: re.Pattern[str] | None = None
        if p.bad_words_file is not None:
            lines = Path(p.bad_words_file).read_text(encoding="utf-8").splitlines()
            words = sorted({w.strip().lower() for w in lines if w.strip()})
            if words:
                alternatives = "|".join(re.escape(w) for w in words)
                self._bad_words = re.compile(rf"(?:\W|^)({alternatives})(?:\W|$)")

    def compute(self, texts: list[str]) -> StepOutput:
        self.ensure_setup()
        WORDS.maybe_trim()
        counts = np.zeros((len(_COUNTS), len(texts)), dtype=np.int64)
        bad = np.zeros(len(texts), dtype=bool)
        if kernel.available():
            counts, cleaned = kernel.c4_lines(texts, self._kernel_settings(), WORDS.count_sentences)
        else:
            cleaned = [None] * len(texts)
        new_texts: list[str] = []
        for i, (text, kept) in enumerate(zip(texts, cleaned, strict=True)):
            if kept is None:  # no kernel, or a text it leaves to the rules below
                kept, counts[:, i] = self._clean(text)
            new_texts.append(kept)
            if self._bad_words is not None:
                bad[i] = self._bad_words.search(kept.lower()) is not None
        signals: dict[str, np.ndarray] = dict(zip(_COUNTS, counts, strict=True))
        signals["has_bad_words"] = bad
        return StepOutput(signals=signals, texts=new_texts)  # type: ignore[arg-type]

    def _kernel_settings(self) -> tuple[int, int, int, int, int, int]:
        """The line rules' settings as :func:`.kernel.c4_lines` takes them."""
        p = self.params
        assert isinstance(p, C4QualityParams)
        return (-(2**63) if p.max_word_length is None else p.max_word_length, int(p.remove_citations),
                int(p.filter_no_terminal_punct), max(p.min_words_per_line or 0, 0),
                int(p.filter_javascript), int(p.filter_policy))  # fmt: skip

    def _clean(self, text: str) -> tuple[str, list[int]]:
        """The reference: the line rules on one text (the kernel's ``c4.rs`` computes the same)."""
        p = self.params
        assert isinstance(p, C4QualityParams)
        long_word = punct = few = javascript = policy = 0
        lorem_line = curly_line = -1
        kept: list[str] = []
        max_word = p.max_word_length
        min_words = p.min_words_per_line
        lines = text.splitlines()
        for index, raw in enumerate(lines):
            line = raw.strip()
            # (A word can only be too long in a line that is longer still.)
            if (
                max_word is not None
                and len(line) > max_word
                and any(len(w) > max_word for w in line.split())
            ):
                long_word += 1
                continue
            words_of = line  # words are counted before citations go, as datatrove does
            if p.remove_citations and "[" in line:
                line = CITATION.sub("", line)
            if p.filter_no_terminal_punct and (
                not line.endswith(END_PUNCTUATION) or line.endswith(ELLIPSIS)
            ):
                punct += 1
                continue
            if (
                min_words is not None
                and min_words > 0
                and len(words_of.split(None, min_words - 1)) < min_words
            ):
                few += 1
                continue
            lower = line.lower()
            if lorem_line < 0 and "lorem ipsum" in lower:
                lorem_line = index
            if p.filter_javascript and "javascript" in lower:
                javascript += 1
                continue
            if curly_line < 0 and "{" in line:
                curly_line = index
            if p.filter_policy and _POLICY.search(lower):
                policy += 1
                continue
            kept.append(line)
        sentences = WORDS.total_sentences(kept)
        new_text = "\n".join(kept).strip()
        return new_text, [
            len(lines),
            len(kept),
            long_word,
            punct,
            few,
            javascript,
            policy,
            sentences,
            lorem_line,
            curly_line,
            len(text) - len(new_text),
        ]

    def thresholds(self) -> list[Threshold]:
        p = self.params
        assert isinstance(p, C4QualityParams)
        return set_thresholds(("too_few_sentences", "n_sentences", "<", p.min_num_sentences))

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        p = self.params
        assert isinstance(p, C4QualityParams)
        lorem = signals["lorem_ipsum_line"]
        curly = signals["curly_bracket_line"]
        has_lorem = (lorem >= 0) if p.filter_lorem_ipsum else np.zeros(len(lorem), dtype=bool)
        has_curly = (curly >= 0) if p.filter_curly_bracket else np.zeros(len(curly), dtype=bool)
        # datatrove stops at the first offending line; on the same line lorem ipsum is first.
        rules: list[tuple[str, np.ndarray]] = [
            ("lorem_ipsum", has_lorem & (~has_curly | (lorem <= curly))),
            ("curly_bracket", has_curly),
        ]
        rules += threshold_rules(self.thresholds(), signals)
        rules.append(("document_removed_with_badwords", signals["has_bad_words"]))
        return first_failing_rule(rules, len(lorem))
