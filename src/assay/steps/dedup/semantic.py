"""Semantic deduplication (SemDeDup): one recipe step, planned by the engine.

Map phase (every shard, in the workers): each document's all-MiniLM-L6-v2 embedding.
Fit: k-means (scikit-learn) on the embeddings, or on a seeded sample of them, in the
driver; each document assigned to its nearest centroid in the workers, which write their
documents out grouped by cluster; then, in the workers, one cluster at a time, a greedy
pass in the survivor order removes every document whose cosine similarity to a kept one
is at least ``1 - eps``. Apply (every shard): removed documents go to ``rejected/`` with
``duplicate_of`` and ``cluster_id``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from assay.documents import CLUSTER_ID, DUPLICATE_OF, ID, REASON, TEXT, signal_column
from assay.steps.base import FitContext, GlobalState, GlobalStep, Seed, StepParams, register
from assay.steps.dedup.survivors import Survivor, check_keep, survivor_priority

SEMANTIC_DUPLICATE = "semantic_duplicate"
DIMENSIONS = 384  # all-MiniLM-L6-v2
# Rows of a cluster compared at once, and kept documents per product: a block's
# similarities take BLOCK x CHUNK float32 (16 MB), whatever the cluster's size.
BLOCK = 1024
CHUNK = 4096
# Documents (about) per partition of clusters that one fit task holds: 1.5 KB each.
PARTITION_DOCS = 50_000


class SemanticDedupParams(StepParams):
    eps: float = Field(
        0.1, gt=0, lt=1,
        description="a document is removed when its cosine similarity to a kept document of its "
        "cluster is at least 1 - eps",
    )
    n_clusters: int | None = Field(
        None, ge=1, description="k-means clusters (null: the square root of the number of documents)"
    )
    keep: Survivor = Field(
        "first",
        description="survivor order in each cluster: first in input order, lowest id, longest text, "
        "or highest value of keep_signal",
    )
    keep_signal: str | None = Field(None, description="column for keep: signal, e.g. a quality score")
    seed: Seed = Field(1, description="seed of k-means (its initial centroids and its sample)")
    batch_size: int = Field(
        1, ge=1,
        description="texts per encoder batch; above 1 is faster (a GPU needs it) but an embedding "
        "then varies by ~1e-7 with the texts batched with it, so outputs can differ with the sharding",
    )
    kmeans_sample: int = Field(
        100_000, ge=1, description="k-means is fitted on a seeded sample of this many documents at most"
    )
    max_cluster_size: int = Field(
        20_000, ge=2,
        description="a larger cluster is split by k-means into pieces of at most this many documents "
        "(bounds the time and memory of the pairwise comparison)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SemanticDedupParams:
        check_keep(self.keep, self.keep_signal)
        return self


# ------------------------------------------------------------------------ the maths


def kmeans_centroids(embeddings: np.ndarray, k: int, seed: int) -> np.ndarray:
    """(k, dims) float32 centroids of scikit-learn's ``KMeans`` (k-means++, one run, on one
    thread: its multi-threaded sums depend on which thread finishes first)."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    k = max(1, min(k, len(embeddings)))
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # fewer distinct points than k
        model = KMeans(n_clusters=k, n_init=1, max_iter=100, random_state=seed).fit(embeddings)
    return np.asarray(model.cluster_centers_, dtype=np.float32)


def nearest_centroid(embeddings: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (Euclidean, as k-means assigns) of each row, computed in
    float64 so that no batching or thread count can turn a near tie; exact ties go to the
    lower index."""
    c = centroids.astype(np.float64)
    half_norms = 0.5 * np.einsum("ij,ij->i", c, c)
    out = np.empty(len(embeddings), dtype=np.int64)
    step = max(1, 4_000_000 // max(len(c), c.shape[1]))  # rows a pass: 32 MB of float64 at most
    for start in range(0, len(embeddings), step):
        part = embeddings[start:start + step].astype(np.float64)
        out[start:start + step] = np.argmax(part @ c.T - half_norms, axis=1)
    return out


def greedy_duplicates(embeddings: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """For unit embeddings in survivor order (best first): the row each row duplicates
    (-1: kept) and its cosine similarity to the most similar kept row before it (NaN for a
    row with none before it).

    Row ``i`` is removed when that similarity is at least ``threshold``, and then
    duplicates that row; ties go to the earlier row. Only kept rows are compared, so a
    chain A~B~C, with B removed for A, never removes C for B. Rows are compared a block at
    a time, so memory stays at BLOCK x CHUNK similarities.
    """
    n = len(embeddings)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, np.nan, dtype=np.float32)
    kept = np.zeros(0, dtype=np.int64)
    for start in range(0, n, BLOCK):
        block = embeddings[start:start + BLOCK]
        best = np.full(len(block), -np.inf, dtype=np.float32)
        best_row = np.full(len(block), -1, dtype=np.int64)
        for lo in range(0, len(kept), CHUNK):
            rows = kept[lo:lo + CHUNK]
            sims = block @ embeddings[rows].T
            j = np.argmax(sims, axis=1)
            value = sims[np.arange(len(block)), j]
            better = value > best  # strictly: ties stay with the earlier kept row
            best[better], best_row[better] = value[better], rows[j[better]]
        inner = block @ block.T
        kept_here: list[int] = []
        for i in range(len(block)):
            if kept_here:
                row = inner[i, kept_here]
                j = int(np.argmax(row))
                if row[j] > best[i]:
                    best[i], best_row[i] = row[j], start + kept_here[j]
            if best_row[i] >= 0:
                similarity[start + i] = best[i]
                if best[i] >= threshold:
                    duplicate_of[start + i] = best_row[i]
                    continue
            kept_here.append(i)
        kept = np.concatenate([kept, start + np.asarray(kept_here, dtype=np.int64)])
    return duplicate_of, similarity


def split_cluster(embeddings: np.ndarray, limit: int, seed: int) -> list[np.ndarray]:
    """Row numbers of a cluster in pieces of at most ``limit`` (each in the given order):
    k-means into ``2 * ceil(n / limit)`` sub-clusters, again for any piece still too large;
    rows that k-means cannot separate (equal embeddings) are cut in the given order."""
    n = len(embeddings)
    if n <= limit:
        return [np.arange(n)]
    labels = nearest_centroid(embeddings, kmeans_centroids(embeddings, 2 * math.ceil(n / limit), seed))
    groups = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    if len(groups) == 1:
        return [np.arange(lo, min(lo + limit, n)) for lo in range(0, n, limit)]
    return [group[piece] for group in groups for piece in split_cluster(embeddings[group], limit, seed)]


# ------------------------------------------------------------------------ fit tasks


@dataclass(frozen=True)
class AssignTask:
    """Assign one shard's documents to clusters and write them, grouped by partition of
    clusters, to ``out`` (an Arrow IPC file)."""

    shard: str
    offset: int
    centroids: str
    partitions: int
    out: str
    embedding: str
    n_chars: str
    keep_signal: str | None


def assign_shard(task: AssignTask) -> np.ndarray:
    """Rows of ``task.out`` where each partition starts (``partitions + 1`` bounds)."""
    from threadpoolctl import threadpool_limits

    columns = [ID, task.embedding, task.n_chars] + ([task.keep_signal] if task.keep_signal else [])
    table = pq.read_table(task.shard, columns=columns)
    valid = np.flatnonzero(table.column(task.embedding).is_valid().to_numpy(zero_copy_only=False))
    table = table.take(pa.array(valid))
    embeddings = _embeddings(table.column(task.embedding))
    with threadpool_limits(limits=1):
        labels = nearest_centroid(embeddings, np.load(task.centroids))
    part = labels % task.partitions
    order = np.argsort(part, kind="stable")  # rows stay in input order within a partition
    signal = (table.column(task.keep_signal).to_numpy(zero_copy_only=False).astype(np.float64)
              if task.keep_signal else np.zeros(len(valid)))
    out = pa.table({
        "gid": pa.array(task.offset + valid[order]),
        "label": pa.array(labels[order]),
        ID: table.column(ID).take(pa.array(order)),
        "n_chars": table.column(task.n_chars).take(pa.array(order)),
        "signal": pa.array(signal[order]),
        "embedding": table.column(task.embedding).take(pa.array(order)),
    })
    with pa.OSFile(task.out, "wb") as sink, pa.ipc.new_file(sink, out.schema) as writer:
        writer.write_table(out)
    return np.searchsorted(part[order], np.arange(task.partitions + 1))


@dataclass(frozen=True)
class PartitionTask:
    """Deduplicate the clusters of one partition: rows ``lo:hi`` of each assigned file."""

    files: tuple[str, ...]
    bounds: tuple[tuple[int, int], ...]
    threshold: float
    keep: Survivor
    max_cluster_size: int
    seed: int


@dataclass(frozen=True)
class PartitionResult:
    """Every clustered document's gid and similarity (see :func:`greedy_duplicates`); the
    removed ones' gids, kept documents' ids and cluster ids; and cluster counts."""

    gids: np.ndarray
    similarity: np.ndarray
    removed: np.ndarray
    duplicate_of: list[str]
    cluster_id: np.ndarray
    clusters: int
    largest: int
    split: int


def dedup_partition(task: PartitionTask) -> PartitionResult:
    from threadpoolctl import threadpool_limits

    # Memory-mapped: only this partition's rows of each file are read (the map stays open
    # while the table refers to it).
    table = pa.concat_tables([pa.ipc.open_file(pa.memory_map(path)).read_all().slice(lo, hi - lo)
                              for path, (lo, hi) in zip(task.files, task.bounds, strict=True)])
    gids = table.column("gid").to_numpy()
    labels = table.column("label").to_numpy()
    ids = table.column(ID).to_pylist()
    embeddings = _embeddings(table.column("embedding"))
    priority = survivor_priority(task.keep, ids, table.column("n_chars").to_numpy(),
                                 table.column("signal").to_numpy())
    order = np.lexsort((gids, priority, labels))
    similarity = np.full(len(gids), np.nan, dtype=np.float32)
    removed: list[tuple[int, str, int]] = []
    clusters = largest = split = 0
    with threadpool_limits(limits=1):
        for cluster in np.split(order, np.flatnonzero(np.diff(labels[order])) + 1):
            if len(cluster) == 0:
                continue
            largest = max(largest, len(cluster))
            pieces = split_cluster(embeddings[cluster], task.max_cluster_size, task.seed)
            split += len(pieces) > 1
            for piece in pieces:
                members = cluster[piece]
                clusters += 1
                cluster_id = int(gids[members].min())
                duplicate_of, sims = greedy_duplicates(embeddings[members], task.threshold)
                similarity[members] = sims
                for row, of in zip(members, duplicate_of, strict=True):
                    if of >= 0:
                        removed.append((int(gids[row]), ids[members[of]], cluster_id))
    removed.sort()
    return PartitionResult(
        gids=gids, similarity=similarity,
        removed=np.array([r[0] for r in removed], dtype=np.int64),
        duplicate_of=[r[1] for r in removed],
        cluster_id=np.array([r[2] for r in removed], dtype=np.int64),
        clusters=clusters, largest=largest, split=split,
    )


def _embeddings(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(rows, dims) float32 from a fixed-size-list column without nulls."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return array.flatten().to_numpy().reshape(len(array), DIMENSIONS)


# ------------------------------------------------------------------------ the step


@dataclass(frozen=True)
class ShardSemanticDuplicates:
    """One shard's part of the fit: removed rows, the kept document each duplicates, its
    cluster, and every row's similarity (NaN: none)."""

    num_rows: int
    rows: np.ndarray
    duplicate_of: list[str]
    cluster_id: np.ndarray
    similarity: np.ndarray


@register
class SemanticDedup(GlobalStep):
    """Semantic deduplication: removes documents whose embeddings nearly coincide.

    Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale through semantic
    deduplication": embed every document, cluster the embeddings with k-means, and within
    each cluster remove the documents whose cosine similarity to a kept one is at least
    ``1 - eps``; NeMo Curator's semantic deduplication workflow is the production
    reference. The embedding is all-MiniLM-L6-v2's (the ``embed`` extra, as
    ``embedding_similarity``: the first 256 tokens, mean pooling, unit length): two
    documents that open alike are duplicates whatever follows their 256th token, and the
    model is English-only, so run the step on English text (after ``language``): texts in
    other scripts, or translations of one page, come out close whatever they say.

    Clusters: scikit-learn's ``KMeans`` (k-means++, seeded, one thread) on the embeddings,
    or on a seeded sample of ``kmeans_sample`` of them; every document goes to its nearest
    centroid. ``n_clusters`` defaults to the square root of the number of documents, which
    makes k-means (documents x clusters) and the comparisons within clusters (documents x
    cluster size) cost alike. Duplicates that k-means puts in different clusters are not
    found: 2.5% of the benchmark's true pairs above the threshold (1.1% with four times
    the clusters, 4.2% with a quarter; ``bench/semantic_dedup.py``). A cluster larger than
    ``max_cluster_size`` is split by k-means again, so no comparison exceeds that size
    squared; memory stays at a block of similarities whatever the size.

    Within a cluster, documents are taken in the order of ``keep`` (first in input order,
    lowest id, longest text, highest ``keep_signal``; ties by input order); each one is
    removed as ``semantic_duplicate`` if its cosine similarity to a document kept before
    it is at least ``1 - eps``, with ``duplicate_of`` naming the most similar such kept
    document, else it is kept. NeMo Curator compares each document with every document
    ranked before it, removed or not, so a chain A~B~C can remove C for a removed B;
    here ``duplicate_of`` always names a kept document the removed one resembles.
    ``cluster_id`` is the input position of the cluster's first document. The signal
    ``semantic_dedup.similarity`` is each document's highest similarity to a kept
    document before it in its cluster (null for the first of a cluster).

    ``eps`` = 0.1 (similarity 0.9) has the best F1 on the benchmark's English near
    duplicates (copies with 1-10% of their words edited: precision 0.97, recall 0.96;
    eps 0.05: 0.99 and 0.88; 0.15: 0.92 and 0.98). Its "false positives" are mostly
    semantic duplicates the truth does not list (one entry in two dictionaries, the man
    pages of sibling functions). Paraphrases (sentences dropped and swapped, synonyms) are
    further apart: eps 0.1 removes 64% of them, 0.15 84%, 0.2 89% (at precision 1.0,
    1.0, 0.99), where MinHash removes 8%; a larger eps removes documents that only share a
    template or a topic. Deterministic for a seed: each text is embedded on its own
    (``batch_size`` 1, no padding shared with other texts), k-means runs on one thread and
    clusters are compared in input order, so shard and worker counts do not change the
    output.
    """

    name: ClassVar[str] = "semantic_dedup"
    Params: ClassVar[type[StepParams]] = SemanticDedupParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "embedding": pa.list_(pa.float32(), DIMENSIONS),
        "n_chars": pa.int64(),
        "similarity": pa.float64(),
    }

    params: SemanticDedupParams

    def requires(self) -> list[str]:
        return [self.params.keep_signal] if self.params.keep_signal else []

    def setup(self) -> None:
        from assay.steps.select.embedding import shared_encoder

        self._encoder = shared_encoder()

    def __call__(self, table: pa.Table) -> pa.Table:
        self.ensure_setup()
        texts = table.column(TEXT).to_pylist()
        has_text = np.array([bool(t and t.strip()) for t in texts], dtype=bool)
        embeddings = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
        rows = np.flatnonzero(has_text)
        if len(rows):
            embeddings[rows] = self._encoder.encode([texts[i] for i in rows], self.params.batch_size)
        column = pa.FixedSizeListArray.from_arrays(pa.array(embeddings.ravel()), DIMENSIONS,
                                                   mask=pa.array(~has_text))
        table = table.append_column(pa.field(self._col("embedding"), self.signal_types["embedding"]), column)
        n_chars = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        return table.append_column(self._col("n_chars"), pa.array(n_chars))

    def _col(self, signal: str) -> str:
        return signal_column(self.name, signal)

    # -- fit ----------------------------------------------------------------------------
    def fit_all(self, ctx: FitContext) -> GlobalState:
        p = self.params
        sizes = np.asarray(ctx.shard_sizes, dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        n_docs = int(offsets[-1])
        embedded, sample = self._sample(ctx, offsets)
        k = min(p.n_clusters or max(1, round(math.sqrt(embedded))), max(1, len(sample)))
        summary: dict[str, Any] = {"documents": n_docs, "embedded": embedded, "eps": p.eps,
                                   "min_similarity": round(1 - p.eps, 6), "k": 0}
        similarity = np.full(n_docs, np.nan)
        if embedded == 0:
            summary.update(clusters=0, largest_cluster=0, clusters_split=0, removed=0)
            return GlobalState(_split_by_shard([], similarity, offsets), summary)
        centroids = os.path.join(ctx.scratch, "centroids.npy")
        np.save(centroids, kmeans_centroids(sample, k, p.seed))
        partitions = max(1, min(k, max(2 * ctx.workers, math.ceil(embedded / PARTITION_DOCS))))
        tasks = [
            AssignTask(shard=shard, offset=int(offsets[i]), centroids=centroids, partitions=partitions,
                       out=os.path.join(ctx.scratch, f"assigned-{i:06d}.arrow"),
                       embedding=self._col("embedding"), n_chars=self._col("n_chars"),
                       keep_signal=p.keep_signal)
            for i, shard in enumerate(ctx.shards)
        ]
        bounds = ctx.map(assign_shard, tasks)
        results = ctx.map(dedup_partition, [
            PartitionTask(files=tuple(t.out for t in tasks),
                          bounds=tuple((int(b[q]), int(b[q + 1])) for b in bounds),
                          threshold=1 - p.eps, keep=p.keep, max_cluster_size=p.max_cluster_size, seed=p.seed)
            for q in range(partitions)
        ])
        removed = []
        for r in results:
            similarity[r.gids] = r.similarity
            removed += zip(r.removed.tolist(), r.duplicate_of, r.cluster_id.tolist(), strict=True)
        removed.sort()
        summary.update(k=k, clusters=sum(r.clusters for r in results),
                       largest_cluster=max(r.largest for r in results),
                       clusters_split=sum(r.split for r in results), removed=len(removed))
        return GlobalState(_split_by_shard(removed, similarity, offsets), summary)

    def _sample(self, ctx: FitContext, offsets: np.ndarray) -> tuple[int, np.ndarray]:
        """How many documents have an embedding, and the embeddings k-means is fitted on:
        all of them, or those at ``kmeans_sample`` seeded positions of the input order."""
        p = self.params
        n_docs = int(offsets[-1])
        chosen = np.arange(n_docs)
        if n_docs > p.kmeans_sample:
            chosen = np.sort(np.random.default_rng(p.seed).choice(n_docs, p.kmeans_sample, replace=False))
        embedded = 0
        parts = []
        for i, shard in enumerate(ctx.shards):
            column = pq.read_table(shard, columns=[self._col("embedding")]).column(0)
            valid = column.is_valid().to_numpy(zero_copy_only=False)
            embedded += int(valid.sum())
            rows = chosen[(chosen >= offsets[i]) & (chosen < offsets[i + 1])] - offsets[i]
            rows = rows[valid[rows]]
            parts.append(_embeddings(column.take(pa.array(rows))))
        return embedded, np.concatenate(parts) if parts else np.zeros((0, DIMENSIONS), np.float32)

    # -- apply --------------------------------------------------------------------------
    def apply(self, table: pa.Table, shard_state: ShardSemanticDuplicates) -> pa.Table:
        if table.num_rows != shard_state.num_rows:
            raise ValueError(
                f"shard has {table.num_rows} rows but was fitted with {shard_state.num_rows}"
            )
        table = table.drop_columns([self._col("embedding")])  # the fit's key, 1.5 KB a row
        reasons = np.full(table.num_rows, None, dtype=object)
        reasons[shard_state.rows] = SEMANTIC_DUPLICATE
        duplicate_of = np.full(table.num_rows, None, dtype=object)
        duplicate_of[shard_state.rows] = shard_state.duplicate_of
        cluster = np.full(table.num_rows, None, dtype=object)
        cluster[shard_state.rows] = shard_state.cluster_id.tolist()
        similarity = shard_state.similarity
        table = table.append_column(self._col("similarity"),
                                    pa.array(similarity, pa.float64(), mask=np.isnan(similarity)))
        table = table.append_column(REASON, pa.array(reasons, pa.string()))
        table = table.append_column(DUPLICATE_OF, pa.array(duplicate_of, pa.string()))
        return table.append_column(CLUSTER_ID, pa.array(cluster, pa.int64()))


def _split_by_shard(removed: Sequence[tuple[int, str, int]], similarity: np.ndarray,
                    offsets: np.ndarray) -> list[ShardSemanticDuplicates]:
    """Removed ``(gid, duplicate_of, cluster_id)`` (ascending gids) and every row's
    similarity, cut into the shards' parts."""
    gids = np.array([r[0] for r in removed], dtype=np.int64)
    bounds = np.searchsorted(gids, offsets)
    out = []
    for k in range(len(offsets) - 1):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        out.append(ShardSemanticDuplicates(
            num_rows=int(offsets[k + 1] - offsets[k]),
            rows=gids[lo:hi] - offsets[k],
            duplicate_of=[r[1] for r in removed[lo:hi]],
            cluster_id=np.array([r[2] for r in removed[lo:hi]], dtype=np.int64),
            similarity=similarity[offsets[k]:offsets[k + 1]],
        ))
    return out
