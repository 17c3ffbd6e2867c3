"""Per-document scores from trained proxies: loss, bits per byte, Min-K% and Min-K%++."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa
from pydantic import Field, field_validator

from assay.steps.base import DocumentStep, StepKind, StepOutput, StepParams, register

RUN_FILES = ("config.json", "checkpoint.safetensors")  # what of a run decides its scores


class ProxyScoreParams(StepParams):
    runs: list[str] = Field(min_length=1, description="`assay train` run folders: the proxies that score")
    k: float = Field(0.2, gt=0, le=1, description="Min-K%'s share of least likely tokens (Shi et al.: 0.2)")
    device: str = Field("cpu", description="cpu, cuda, cuda:N, or auto (a GPU when there is one)")
    threads: int | None = Field(1, ge=1, description="PyTorch threads per worker on a CPU")

    @field_validator("runs")
    @classmethod
    def _are_runs(cls, runs: list[str]) -> list[str]:
        for run in runs:
            folder = Path(run)
            missing = [name for name in RUN_FILES if not (folder / name).is_file()]
            if missing:
                raise ValueError(f"{run} is not a finished `assay train` run (no {' or '.join(missing)})")
        return runs


@register
class ProxyScore(DocumentStep):
    """Per-document loss, bits per byte and membership scores under trained proxy models.

    Each run of ``runs`` (an ``assay train --out`` folder) scores every document with its
    own tokenizer: the mean loss over its tokens and end-of-document token (nats per token),
    bits per UTF-8 byte (comparable across tokenizers), the token count, and two membership
    scores at ``k``: **Min-K% Prob** (Shi et al. 2024, "Detecting Pretraining Data from Large
    Language Models"), the mean log-probability of the ``k`` share of least likely tokens,
    and **Min-K%++** (Zhang et al. 2024), the same over log-probabilities standardised by the
    mean and deviation of the model's next-token distribution at each position. Higher
    membership scores mean more likely seen in training. Documents are cut into windows of
    the proxy's context and batched by length in bounded memory (:mod:`assay.train.score`).

    Signals are lists with one value per run, in the order of ``runs`` (what PreSelect's
    predictive strength compares across a family of proxies): ``loss``, ``bpb``, ``min_k``,
    ``min_k_plus_plus`` (NaN for a document without tokens) and ``tokens``. The step
    decides nothing; ``assay detect`` turns the membership scores into AUCs.
    """

    name: ClassVar[str] = "proxy_score"
    kind: ClassVar[StepKind] = "signal"
    Params: ClassVar[type[StepParams]] = ProxyScoreParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "loss": pa.list_(pa.float64()), "bpb": pa.list_(pa.float64()), "min_k": pa.list_(pa.float64()),
        "min_k_plus_plus": pa.list_(pa.float64()), "tokens": pa.list_(pa.int64()),
    }

    params: ProxyScoreParams

    def setup(self) -> None:
        import torch

        from assay.train.score import load_run
        from assay.train.trainer import resolve_device

        if self.params.threads is not None:
            torch.set_num_threads(self.params.threads)
        self._device = resolve_device(self.params.device)
        self._runs = [load_run(run, self._device) for run in self.params.runs]

    def compute(self, texts: list[str]) -> StepOutput:
        import numpy as np

        from assay.train.score import document_scores

        per_run = [document_scores(run, texts, self.params.k, self._device) for run in self._runs]
        # One row per text, one column per run: each text's list.
        return StepOutput({name: np.column_stack([scores[name] for scores in per_run]).tolist()
                           for name in self.signal_types})

    def identity(self) -> dict[str, Any]:
        # Threads and the device change how fast, not what (fp32 on either).
        return {self.name: self.params.model_dump(mode="json", exclude={"threads", "device"})}

    def referenced_files(self) -> list[str]:
        return [str(Path(run) / name) for run in self.params.runs for name in RUN_FILES]
