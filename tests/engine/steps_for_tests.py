"""Small steps for engine tests (importable by spawned workers via PYTHONPATH/sys.path)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pyarrow as pa

from assay.steps import DocumentStep, StepOutput, StepParams, first_failing_rule, register


class MinCharsParams(StepParams):
    min_chars: int = 10
    sleep_s: float = 0.0


@register
class MinChars(DocumentStep):
    """Rejects documents shorter than ``min_chars`` characters (engine tests only)."""

    name = "min_chars_for_test"
    kind = "filter"
    Params = MinCharsParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {"chars": pa.int64()}

    def compute(self, texts: list[str]) -> StepOutput:
        if self.params.sleep_s:
            time.sleep(self.params.sleep_s)
        return StepOutput({"chars": [len(t) for t in texts]})

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        too_short = signals["chars"] < self.params.min_chars
        return first_failing_rule([("too_short", too_short)], len(too_short))


@register
class StripDigits(DocumentStep):
    """Removes ASCII digits from the text and records how many (engine tests only)."""

    name = "strip_digits_for_test"
    kind = "transform"
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {"digits_removed": pa.int64()}

    def compute(self, texts: list[str]) -> StepOutput:
        stripped = [t.translate(str.maketrans("", "", "0123456789")) for t in texts]
        removed = [len(a) - len(b) for a, b in zip(texts, stripped, strict=True)]
        return StepOutput({"digits_removed": removed}, texts=stripped)


class FailOnParams(StepParams):
    needle: str = "\u2400 never in a text"


@register
class FailOn(DocumentStep):
    """Raises on a batch holding a text with ``needle`` (engine tests only)."""

    name = "fail_on_for_test"
    kind = "signal"
    Params = FailOnParams

    def compute(self, texts: list[str]) -> StepOutput:
        if any(self.params.needle in t for t in texts):
            raise ZeroDivisionError("planted failure")
        return StepOutput({})
