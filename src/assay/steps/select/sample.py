"""``sample``: a seeded uniform sample of the documents, decided by each document's id."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import pyarrow as pa
import xxhash
from pydantic import Field

from assay.documents import ID
from assay.steps.base import DocumentStep, Seed, StepOutput, StepParams, register

NOT_DRAWN = "sample_not_drawn"


class SampleParams(StepParams):
    fraction: float = Field(gt=0, le=1, description="share of the documents to keep")
    seed: Seed = 0


@register
class Sample(DocumentStep):
    """Keep a seeded uniform sample of the documents (the rest: ``sample_not_drawn``).

    The annotation half of FineWeb-Edu (Penedo et al. 2024) labels a random sample (~450k
    pages) with an LLM and trains a classifier on it for the whole crawl; this step draws
    such a sample. Each document is kept when the 64-bit hash of (seed, id) falls under
    ``fraction`` of the range, so the draw depends on neither the shard cut nor the order
    nor the executor, and a larger fraction keeps a superset. Signal: ``draw`` in [0, 1).
    """

    name: ClassVar[str] = "sample"
    kind: ClassVar[str] = "filter"  # type: ignore[assignment]
    Params: ClassVar[type[StepParams]] = SampleParams
    params: SampleParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {"draw": pa.float64()}

    def compute(self, texts: list[str]) -> StepOutput:
        raise TypeError("sample draws by document id: call the step on a table")

    def compute_rows(self, table: pa.Table, texts: list[str]) -> StepOutput:
        seed = self.params.seed
        # The top 53 bits: exactly representable, so a draw is < 1 and fraction 1 keeps all.
        draws = [(xxhash.xxh64_intdigest(doc.encode(), seed) >> 11) / 2.0**53
                 for doc in table.column(ID).to_pylist()]
        return StepOutput({"draw": draws})

    def decide(self, signals: Mapping[str, np.ndarray]) -> np.ndarray:
        draws = np.asarray(signals["draw"], dtype=float)
        return np.where(draws < self.params.fraction, None, NOT_DRAWN)
