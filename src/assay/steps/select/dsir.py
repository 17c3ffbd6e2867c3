"""DSIR: data selection toward a target by importance resampling on hashed n-grams.

Xie, Santurkar, Ma & Liang 2023, "Data Selection for Language Models via Importance
Resampling" (NeurIPS), and their ``data-selection`` package (``HashedNgramDSIR``).

Map phase (workers): the hashed unigram+bigram counts of every document (sparse) and its
token count. Fit (workers, then the driver): the bucket distribution of the target set(s)
and of the whole raw corpus, each document's log importance weight, and the resampling.
Apply (workers): the log weight as a signal; unselected documents go to ``rejected/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assay.documents import REASON, TEXT, signal_column
from assay.steps.base import FitContext, GlobalState, GlobalStep, Seed, StepParams, register
from assay.steps.select.model_files import save_model
from assay.steps.select.sources import ExampleSet, check_example_set, iter_texts
from assay.text.wordpunct import SparseCounts, hashed_ngram_counts, ngram_hashes, token_hashes

NOT_SELECTED = "dsir_not_selected"
TOO_SHORT = "dsir_too_short"
# The package smooths both distributions by this before taking logs (HashedNgramDSIR).
SMOOTHING = 1e-8


# ------------------------------------------------------------------------ the maths


def bucket_distribution(counts: np.ndarray) -> np.ndarray:
    """Normalised bucket counts (uniform when there are none)."""
    total = counts.sum()
    return counts / total if total > 0 else np.full(len(counts), 1 / len(counts))


def log_importance_ratio(target: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """``log(p_target + 1e-8) - log(q_raw + 1e-8)`` per bucket, from bucket counts."""
    return (np.log(bucket_distribution(target) + SMOOTHING)
            - np.log(bucket_distribution(raw) + SMOOTHING))


def kl_divergence(p_counts: np.ndarray, q_counts: np.ndarray) -> float:
    """KL(p || q) in nats between two bucket-count vectors, each normalised, with the same
    1e-8 smoothing as the importance weights (so a bucket q never saw costs a finite amount)."""
    p, q = bucket_distribution(p_counts), bucket_distribution(q_counts)
    seen = p > 0
    return float(np.sum(p[seen] * (np.log(p[seen] + SMOOTHING) - np.log(q[seen] + SMOOTHING))))


def split_count(total: int, proportions: Sequence[float]) -> list[int]:
    """``int(total * p)`` per target, the remainder to the last (the package's rule)."""
    counts = [int(total * p) for p in proportions]
    counts[-1] += total - sum(counts)
    return counts


def resample(
    log_weights: np.ndarray, counts: Sequence[int], eligible: np.ndarray, seed: int,
    method: Literal["gumbel", "top_k"] = "gumbel",
) -> tuple[np.ndarray, np.ndarray]:
    """Choose ``counts[t]`` documents for each target t (column t of ``log_weights``,
    shape (documents, targets)) among the ``eligible`` ones, without replacement.

    ``gumbel``: the top k of ``log w + G`` with G standard Gumbel noise, which draws k
    documents without replacement with probabilities proportional to w (the Gumbel-top-k
    trick, Kool et al. 2019; DSIR's resampling). ``top_k``: the k largest weights, ties by
    input order. Targets choose in order; a chosen document is not available to later
    ones. Returns ``(chosen, target)``: a boolean mask and, per document, the index of the
    target that chose it (-1 if none). Deterministic for a seed.
    """
    n = len(log_weights)
    rng = np.random.default_rng(seed)
    available = eligible.copy()
    target = np.full(n, -1, dtype=np.int64)
    for t, k in enumerate(counts):
        keys = log_weights[:, t].astype(np.float64)
        if method == "gumbel":
            keys = keys + rng.gumbel(size=n)
        keys = np.where(available, keys, -np.inf)
        k = min(k, int(available.sum()))
        if k <= 0:
            continue
        picked = np.argsort(-keys, kind="stable")[:k]
        target[picked] = t
        available[picked] = False
    return target >= 0, target


# ------------------------------------------------------------------------ features

# Texts are featurised about this many characters at a time: the tokenising kernels hold
# ~40 bytes per character at their peak (~90 MB for a whole 2 MB shard at once, in every
# worker). A longer text is tokenised in pieces of about this size and its n-grams are
# counted WINDOW_TOKENS tokens at a time. A text's counts do not depend on how it is cut.
BATCH_CHARS = 1 << 18
WINDOW_TOKENS = 1 << 16
# Where a long text is cut: no token spans these, and lower-casing does not look across them.
_ASCII_SPACES = np.array([ord(c) for c in " \t\n\r\x0b\x0c"], dtype=np.uint32)


def text_batches(lengths: np.ndarray, max_chars: int = BATCH_CHARS) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive groups of texts with these character ``lengths``, of
    at most ``max_chars`` characters each; a longer text is a group of its own."""
    bounds, size = [0], 0
    for i, length in enumerate(lengths.tolist()):
        if i > bounds[-1] and size + length > max_chars:
            bounds.append(i)
            size = 0
        size += length
    return list(pairwise([*bounds, len(lengths)])) if len(lengths) else []


def batched_ngram_counts(
    batches: Iterable[list[str]], n: int, num_buckets: int, max_chars: int = BATCH_CHARS
) -> tuple[SparseCounts, np.ndarray]:
    """:func:`~assay.text.wordpunct.hashed_ngram_counts` of the texts of ``batches`` (from
    :func:`text_batches`), one batch at a time, a text longer than ``max_chars`` by
    :func:`long_text_counts`, joined: the same arrays as one call on all the texts."""
    parts = [long_text_counts(texts[0], n, num_buckets, max_chars)
             if len(texts) == 1 and len(texts[0]) > max_chars
             else hashed_ngram_counts(texts, n, num_buckets) for texts in batches]
    if len(parts) <= 1:
        return parts[0] if parts else hashed_ngram_counts([], n, num_buckets)
    offsets, start = [np.zeros(1, dtype=np.int64)], 0
    for sparse, _ in parts:
        offsets.append(sparse.offsets[1:] + start)
        start += len(sparse.buckets)
    joined = SparseCounts(np.concatenate(offsets), np.concatenate([s.buckets for s, _ in parts]),
                          np.concatenate([s.counts for s, _ in parts]))
    return joined, np.concatenate([n_tokens for _, n_tokens in parts])


def long_text_counts(
    text: str, n: int, num_buckets: int, max_chars: int = BATCH_CHARS, window: int = WINDOW_TOKENS
) -> tuple[SparseCounts, np.ndarray]:
    """``hashed_ngram_counts([text], n, num_buckets)`` in memory bounded by ``max_chars``
    and ``window``: the tokens of pieces cut at ASCII spaces about every ``max_chars``
    characters (a piece runs on to the next such space), then the n-grams that end in
    each ``window`` of tokens: those of the window and the n - 1 tokens before it, less
    those of these n - 1 tokens alone."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    spaces = np.flatnonzero(np.isin(codes, _ASCII_SPACES))
    after = np.searchsorted(spaces, np.arange(max_chars, len(codes), max_chars))
    cuts = np.unique(spaces[after[after < len(spaces)]]).tolist()
    del codes, spaces
    tokens = np.concatenate([token_hashes([text[a:b]])[0] for a, b in pairwise([0, *cuts, len(text)])])
    total = np.zeros(num_buckets, dtype=np.int64)
    for start in range(0, len(tokens), window):
        before = max(0, start - (n - 1))
        total += _bucket_counts(tokens[before:start + window], n, num_buckets)
        total -= _bucket_counts(tokens[before:start], n, num_buckets)
    buckets = np.flatnonzero(total)
    sparse = SparseCounts(np.array([0, len(buckets)], dtype=np.int64), buckets.astype(np.uint32),
                          total[buckets].astype(np.uint32))
    return sparse, np.array([len(tokens)], dtype=np.int64)


def _bucket_counts(tokens: np.ndarray, n: int, num_buckets: int) -> np.ndarray:
    """Bucket counts of the 1..n-grams of one run of tokens."""
    hashes, _ = ngram_hashes(tokens, np.array([len(tokens)]), n)
    return np.bincount((hashes % np.uint64(num_buckets)).astype(np.int64), minlength=num_buckets)


# ------------------------------------------------------------------------ parameters


class DsirTarget(BaseModel):
    """One target set: files, globs, URLs or assay outputs, and its share of the selection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str | list[str] = Field(description="JSONL/Parquet files, globs, URLs or assay output folders")
    proportion: float | None = Field(
        None, gt=0,
        description="share of this target (normalised over targets); default: its token count",
    )
    text_field: str = Field("text", description="field holding the text")
    name: str | None = Field(None, description="label in the fit summary (default: the path)")

    @field_validator("path")
    @classmethod
    def _readable(cls, path: str | list[str]) -> str | list[str]:
        check_example_set(path)
        return path

    @property
    def label(self) -> str:
        return self.name or (self.path if isinstance(self.path, str) else ",".join(self.path))


class DsirParams(StepParams):
    targets: list[DsirTarget] = Field(
        min_length=1, description="target sets (a path, a list of paths, or {path, proportion})"
    )
    fraction: float | None = Field(
        0.1, gt=0, le=1, description="share of the documents to select (the benchmark's 10%)"
    )
    count: int | None = Field(
        None, ge=0, description="number of documents to select (when given, fraction is ignored)"
    )
    method: Literal["gumbel", "top_k"] = Field(
        "gumbel", description="gumbel: importance resampling without replacement; top_k: the "
        "largest weights (deterministic)",
    )
    separate: bool = Field(
        False, description="select for each target on its own, in proportion (the package's "
        "separate_targets); false: one mixture target",
    )
    ngrams: int = Field(2, ge=1, le=5, description="word n-grams up to this order (2: unigrams+bigrams)")
    num_buckets: int = Field(10_000, ge=2, le=2**31, description="hash buckets")
    min_tokens: int = Field(
        100, ge=0, description="documents with fewer tokens are never selected (min_example_length)"
    )
    seed: Seed = Field(0, description="seed of the Gumbel noise")
    write_model: bool = Field(True, description="write the fitted distributions to OUTPUT/models/dsir")

    @field_validator("targets", mode="before")
    @classmethod
    def _coerce(cls, value: Any) -> Any:
        if isinstance(value, str | dict):
            value = [value]
        if isinstance(value, list):
            return [{"path": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DsirParams:
        if self.fraction is None and self.count is None:
            raise ValueError("give fraction or count")
        given = [t.proportion is not None for t in self.targets]
        if any(given) and not all(given):
            raise ValueError("give a proportion for every target or for none")
        return self


# ------------------------------------------------------------------------ fit tasks


@dataclass(frozen=True)
class _ShardTask:
    path: str
    buckets: str
    counts: str
    n_tokens: str
    num_buckets: int
    log_ratio: np.ndarray | None = None  # (targets, buckets), for the weights pass
    chosen: np.ndarray | None = None  # boolean per row, for the selected-totals pass


def _read_sparse(task: _ShardTask) -> tuple[SparseCounts, np.ndarray]:
    table = pq.read_table(task.path, columns=[task.buckets, task.counts, task.n_tokens])
    buckets = table.column(task.buckets).combine_chunks()
    counts = table.column(task.counts).combine_chunks()
    offsets = np.asarray(buckets.offsets.to_numpy(), dtype=np.int64)
    sparse = SparseCounts(offsets - offsets[0], buckets.flatten().to_numpy(), counts.flatten().to_numpy())
    return sparse, table.column(task.n_tokens).to_numpy()


def shard_totals(task: _ShardTask) -> np.ndarray:
    """Bucket counts of every document of a shard, summed (the raw distribution's part)."""
    sparse, _ = _read_sparse(task)
    return sparse.total(task.num_buckets)


def shard_weights(task: _ShardTask) -> tuple[np.ndarray, np.ndarray]:
    """``(log_weights, n_tokens)`` of a shard's documents: (rows, targets) and (rows,)."""
    assert task.log_ratio is not None
    sparse, n_tokens = _read_sparse(task)
    weights = np.stack([sparse.dot(row) for row in task.log_ratio], axis=1)
    return weights, n_tokens


def shard_selected_totals(task: _ShardTask) -> np.ndarray:
    """Bucket counts of a shard's chosen documents, summed."""
    assert task.chosen is not None
    sparse, _ = _read_sparse(task)
    return sparse.total(task.num_buckets, task.chosen)


@dataclass(frozen=True)
class _TargetTask:
    examples: ExampleSet
    ngrams: int
    num_buckets: int


def target_counts(task: _TargetTask) -> tuple[np.ndarray, int, int]:
    """``(bucket counts, documents, tokens)`` of one target set."""
    total = np.zeros(task.num_buckets)
    docs = tokens = 0
    for chunk in iter_texts(task.examples):
        batches = text_batches(np.fromiter(map(len, chunk), np.int64, len(chunk)))
        sparse, n_tokens = batched_ngram_counts((chunk[a:b] for a, b in batches), task.ngrams,
                                                task.num_buckets)
        total += sparse.total(task.num_buckets)
        docs += len(chunk)
        tokens += int(n_tokens.sum())
    return total, docs, tokens


# ------------------------------------------------------------------------ the step


@dataclass(frozen=True)
class ShardSelection:
    """One shard's outcome: each row's log importance weight, and its rejection reason."""

    num_rows: int
    log_weight: np.ndarray  # float64 per row
    reasons: np.ndarray  # object: None (selected), NOT_SELECTED or TOO_SHORT


@register
class Dsir(GlobalStep):
    """DSIR: keep the documents that importance resampling draws toward a target set.

    Xie et al. 2023, "Data Selection for Language Models via Importance Resampling", and
    their reference code, the ``data-selection`` package (``HashedNgramDSIR``), whose
    defaults these are. Each document is lower-cased and split by NLTK's
    ``WordPunctTokenizer`` (``\\w+|[^\\w\\s]+``); its unigrams and bigrams
    (``ngrams: 2``) are hashed into 10,000 buckets (``num_buckets``). The target's bucket
    distribution p (all target documents' counts pooled) and the raw corpus's q (every
    input document of this step) give each document the log importance weight
    ``sum over buckets of count * (log(p + 1e-8) - log(q + 1e-8))``. Then ``fraction``
    (or ``count``) of the documents are drawn without replacement with probability
    proportional to the weights, by Gumbel top-k (``method: gumbel``), or the top weights
    are kept (``method: top_k``). Documents with fewer than 100 tokens (``min_tokens``,
    the package's ``min_example_length``) are never drawn. The default fraction, 10%,
    is the shared benchmark's; the paper has none.

    Several targets: by default their distributions are mixed, each with its
    ``proportion`` (default: its share of the target tokens, which is the package's
    pooling); with ``separate: true`` each target draws its share of the documents by
    its own weights, from those still undrawn (the package's ``separate_targets``).

    The fit reports what the paper uses to predict downstream gains: the KL divergence
    from each target's hashed-feature distribution to the raw corpus's and to the
    selection's, and the KL reduction, their difference averaged over the targets. The
    fitted distributions go to ``OUTPUT/models/dsir`` (``write_model``).

    Signals: ``dsir.log_weight`` (the log importance weight toward the mixture target),
    ``dsir.n_tokens``. Unselected documents go to ``rejected/`` with reason
    ``dsir_not_selected`` or ``dsir_too_short``. The draw is deterministic for ``seed``,
    whatever the number of workers.
    """

    name: ClassVar[str] = "dsir"
    Params: ClassVar[type[StepParams]] = DsirParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "buckets": pa.list_(pa.uint32()),
        "counts": pa.list_(pa.uint32()),
        "n_tokens": pa.int64(),
        "log_weight": pa.float64(),
    }

    params: DsirParams

    def _col(self, signal: str) -> str:
        return signal_column(self.name, signal)

    def __call__(self, table: pa.Table) -> pa.Table:
        p = self.params
        column = table.column(TEXT)
        lengths = pc.utf8_length(column).to_numpy(zero_copy_only=False)
        sparse, n_tokens = batched_ngram_counts(
            (column.slice(start, stop - start).to_pylist() for start, stop in text_batches(lengths)),
            p.ngrams, p.num_buckets,
        )
        offsets = pa.array(sparse.offsets.astype(np.int32))
        table = table.append_column(self._col("buckets"),
                                    pa.ListArray.from_arrays(offsets, pa.array(sparse.buckets)))
        table = table.append_column(self._col("counts"),
                                    pa.ListArray.from_arrays(offsets, pa.array(sparse.counts)))
        return table.append_column(self._col("n_tokens"), pa.array(n_tokens.astype(np.int64)))

    # -- fit ----------------------------------------------------------------------------
    def fit_all(self, ctx: FitContext) -> GlobalState:
        p = self.params
        targets = ctx.map(target_counts, [
            _TargetTask(ExampleSet.of(t.path, t.text_field), p.ngrams, p.num_buckets)
            for t in p.targets
        ])
        target_matrix = np.stack([counts for counts, _, _ in targets])
        target_tokens = np.array([tokens for _, _, tokens in targets], dtype=np.float64)
        if p.targets[0].proportion is not None:
            proportions = np.array([t.proportion for t in p.targets], dtype=np.float64)
        else:
            proportions = target_tokens.copy()
        proportions = proportions / proportions.sum() if proportions.sum() > 0 else \
            np.full(len(targets), 1 / len(targets))
        mixture = sum(w * bucket_distribution(c) for w, c in zip(proportions, target_matrix, strict=True))

        def task(path: str, **extra: Any) -> _ShardTask:
            return _ShardTask(path, self._col("buckets"), self._col("counts"), self._col("n_tokens"),
                              p.num_buckets, **extra)

        raw = np.sum(ctx.map(shard_totals, [task(s) for s in ctx.shards]) or [np.zeros(p.num_buckets)],
                     axis=0)
        ratios = [log_importance_ratio(mixture, raw)]
        if p.separate:
            ratios += [log_importance_ratio(c, raw) for c in target_matrix]
        log_ratio = np.stack(ratios)
        parts = ctx.map(shard_weights, [task(s, log_ratio=log_ratio) for s in ctx.shards])
        weights = np.concatenate([w for w, _ in parts]) if parts else np.zeros((0, len(ratios)))
        n_tokens = np.concatenate([t for _, t in parts]) if parts else np.zeros(0, np.int64)
        n_docs = len(weights)
        total = p.count if p.count is not None else round(p.fraction * n_docs)
        eligible = n_tokens >= p.min_tokens
        if p.separate:
            chosen, target = resample(weights[:, 1:], split_count(total, proportions), eligible,
                                      p.seed, p.method)
        else:
            chosen, target = resample(weights[:, :1], [total], eligible, p.seed, p.method)

        sizes = np.asarray(ctx.shard_sizes, dtype=np.int64)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        selected_parts = ctx.map(shard_selected_totals, [
            task(s, chosen=chosen[bounds[i]:bounds[i + 1]]) for i, s in enumerate(ctx.shards)
        ])
        selected = np.sum(selected_parts or [np.zeros(p.num_buckets)], axis=0)

        reasons = np.full(n_docs, None, dtype=object)
        reasons[~chosen] = NOT_SELECTED
        reasons[~chosen & ~eligible] = TOO_SHORT
        per_shard = [
            ShardSelection(int(sizes[i]), weights[bounds[i]:bounds[i + 1], 0],
                           reasons[bounds[i]:bounds[i + 1]])
            for i in range(len(sizes))
        ]
        summary = self._summary(n_docs, total, eligible, chosen, target, targets, proportions,
                                target_matrix, mixture, raw, selected)
        if p.write_model:
            local = save_model(
                os.path.join(ctx.scratch, "dsir-model"), "dsir",
                {"target_counts": target_matrix, "raw_counts": raw, "selected_counts": selected,
                 "log_ratio": log_ratio, "proportions": proportions},
                {"params": p.model_dump(mode="json"), "summary": summary},
            )
            summary["model"] = ctx.publish(local, "models/dsir")
        return GlobalState(per_shard=per_shard, summary=summary)

    def _summary(
        self, n_docs: int, total: int, eligible: np.ndarray, chosen: np.ndarray, target: np.ndarray,
        targets: list[tuple[np.ndarray, int, int]], proportions: np.ndarray,
        target_matrix: np.ndarray, mixture: np.ndarray, raw: np.ndarray, selected: np.ndarray,
    ) -> dict[str, Any]:
        p = self.params
        per_target = []
        for i, (spec, (counts, docs, tokens)) in enumerate(zip(p.targets, targets, strict=True)):
            to_raw, to_selected = kl_divergence(counts, raw), kl_divergence(counts, selected)
            entry = {"target": spec.label, "documents": docs, "tokens": tokens,
                     "proportion": round(float(proportions[i]), 6),
                     "kl_to_raw": round(to_raw, 6), "kl_to_selected": round(to_selected, 6),
                     "kl_reduction": round(to_raw - to_selected, 6)}
            if p.separate:
                entry["selected"] = int((target == i).sum())
            per_target.append(entry)
        return {
            "documents": n_docs,
            "eligible": int(eligible.sum()),
            "requested": total,
            "selected": int(chosen.sum()),
            "method": p.method,
            "kl_reduction": round(float(np.mean([t["kl_reduction"] for t in per_target])), 6),
            "mixture": {"kl_to_raw": round(kl_divergence(mixture, raw), 6),
                        "kl_to_selected": round(kl_divergence(mixture, selected), 6)},
            "targets": per_target,
        }

    # -- apply --------------------------------------------------------------------------
    def apply(self, table: pa.Table, shard_state: ShardSelection) -> pa.Table:
        if table.num_rows != shard_state.num_rows:
            raise ValueError(
                f"shard has {table.num_rows} rows but was fitted with {shard_state.num_rows}"
            )
        table = table.drop_columns([self._col("buckets"), self._col("counts")])
        table = table.append_column(self._col("log_weight"), pa.array(shard_state.log_weight, pa.float64()))
        return table.append_column(REASON, pa.array(shard_state.reasons, pa.string()))
