"""``llm_rate``: a language model scores each document against a rubric."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from assay.steps.base import StepOutput, StepParams, first_failing_rule, register
from assay.steps.llm.base import (
    LLM_UNPARSEABLE,
    LLMParams,
    LLMStep,
    describe_failure,
    failure_reasons,
    ids_and_sources,
)
from assay.steps.llm.rubrics import load_rubric


class RateParams(LLMParams):
    rubric: str = Field("fineweb_edu", description="a shipped rubric (fineweb_edu, dataman) or a YAML file")
    min_scores: dict[str, float] = Field(
        default_factory=dict, description="reject a document scoring under these, e.g. {score: 3}")

    @model_validator(mode="after")
    def _known_scores(self) -> RateParams:
        rubric = load_rubric(self.rubric)
        unknown = sorted(set(self.min_scores) - set(rubric.scores))
        if unknown:
            raise ValueError(f"min_scores names {unknown}, not scores of rubric {rubric.name} "
                             f"(its scores: {', '.join(rubric.scores)})")
        return self


@register
class LLMRate(LLMStep):
    """Rate each document with a language model against a rubric; scores become signals.

    The shipped rubrics are FineWeb-Edu's additive 0-5 educational score (Penedo et al.
    2024, "The FineWeb Datasets: Decanting the Web for the Finest Text Data at Scale", whose
    threshold is 3) and DataMan's 14 quality criteria, overall score and domain (Peng et
    al. 2025, "DataMan: Data Manager for Pre-training Large Language Models"); see
    :mod:`assay.steps.llm.rubrics` for the format of a user's own. Each score is a signal
    ``llm_rate.<criterion>`` (null where the answer did not parse), labels are string
    signals, ``answer`` keeps the raw answer; ``min_scores`` are decisions
    (``llm_rate_low_<criterion>``). FineWeb-Edu then trains a cheap classifier on such
    labels (``assay select train-classifier --target``) and applies it to the whole crawl.
    """

    name: ClassVar[str] = "llm_rate"
    kind: ClassVar[str] = "filter"  # type: ignore[assignment]
    Params: ClassVar[type[StepParams]] = RateParams
    params: RateParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "score": pa.float64(), "answer": pa.string(), "error": pa.string()}

    def __init__(self, params: StepParams | None = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        rubric = self.rubric = load_rubric(self.params.rubric)
        self.signal_types = {**{name: pa.float64() for name in rubric.scores},
                             **{name: pa.string() for name in rubric.labels},
                             "answer": pa.string(), "error": pa.string()}

    def referenced_files(self) -> list[str]:
        from assay.steps.llm.rubrics import SHIPPED

        return [] if self.params.rubric in SHIPPED else [self.params.rubric]

    def compute_rows(self, table: pa.Table, texts: list[str]) -> StepOutput:
        ids, _ = ids_and_sources(table)
        answers = self.ask([(doc, self.rubric.messages(text), 0)
                            for doc, text in zip(ids, texts, strict=True)])
        signals: dict[str, list[Any]] = {name: [] for name in self.signal_types}
        for answer in answers:
            parsed = self.rubric.parse(answer.text) if answer.text is not None else None
            scores, labels = parsed if parsed is not None else ({}, {})
            for name in self.rubric.scores:
                signals[name].append(scores.get(name))
            for name in self.rubric.labels:
                signals[name].append(labels.get(name))
            signals["answer"].append(answer.text)
            if answer.reason is not None:
                signals["error"].append(describe_failure(answer))
            else:
                unparsed = f"{LLM_UNPARSEABLE}: no score of rubric {self.rubric.name} in the answer"
                signals["error"].append(None if parsed is not None else unparsed)
        return StepOutput(signals)

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        reasons = failure_reasons(signals["error"])
        thresholds = first_failing_rule(
            [(f"llm_rate_low_{name}", _below(signals[name], floor))
             for name, floor in self.params.min_scores.items()], len(reasons))
        return np.where(_is_none(reasons), thresholds, reasons)


def _is_none(values: np.ndarray) -> np.ndarray:
    return np.array([v is None for v in values], dtype=bool)


def _below(values: np.ndarray, floor: float) -> np.ndarray:
    scores = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    with np.errstate(invalid="ignore"):
        return scores < floor
