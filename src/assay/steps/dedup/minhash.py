"""Near-duplicate removal with MinHash LSH: one recipe step, planned by the engine.

Map phase (every shard, in the workers): word 5-gram shingles, a MinHash signature and
its band keys. Fit (in the workers, then the driver): band collisions found by an
external sort of (band key, document) pairs, clusters by union-find, one survivor per
cluster chosen by the recipe's rule, every other member checked against the kept ones.
Apply (every shard, in the workers): removed documents go to ``rejected/`` with
``duplicate_of`` and ``cluster_id``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, field_validator, model_validator

from assay.documents import CLUSTER_ID, DUPLICATE_OF, ID, REASON, TEXT, signal_column
from assay.steps.base import FitContext, GlobalState, GlobalStep, Seed, StepParams, register
from assay.steps.dedup.lsh import (
    OLD_BASE,
    BucketTask,
    choose_bands,
    connected_components,
    find_collisions,
    implied_threshold,
)
from assay.steps.dedup.minhash_index import (
    INDEX_FORMAT,
    MinHashIndex,
    index_folder,
    old_survivors,
    open_index,
    write_index,
)
from assay.steps.dedup.survivors import Survivor, check_keep, survivor_priority
from assay.text.hashing import mix64, shingle_hashes, word_hashes

NEAR_DUPLICATE = "near_duplicate"


@dataclass(frozen=True)
class MinHasher:
    """MinHash signatures of word n-gram sets (Broder 1997).

    Words and shingles are those of :mod:`assay.text.hashing`; a shingle's 32-bit hash
    comes from its words' 64-bit hashes, weighted, summed and mixed. Each of
    the ``num_perm`` hash functions is ``(a * x + b) mod 2**64``, keeping the top 32 bits,
    Dietzfelbinger's multiply-add-shift family (1996), which is 2-universal. The minimum
    over the shingles of each function is the signature; two documents agree on one
    entry with probability equal to the Jaccard similarity of their shingle sets.
    """

    num_perm: int = 112
    ngram: int = 5
    seed: int = 1

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        top = np.iinfo(np.uint64).max

        def draw(n: int) -> np.ndarray:
            return rng.integers(0, top, n, dtype=np.uint64, endpoint=True)

        # Odd multipliers: multiplication by an odd number is a bijection mod 2**64.
        object.__setattr__(self, "_a", draw(self.num_perm) | np.uint64(1))
        object.__setattr__(self, "_b", draw(self.num_perm))
        object.__setattr__(self, "_weights", draw(self.ngram) | np.uint64(1))

    def signatures(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(signatures, has_words)``: a (len(texts), num_perm) uint32 matrix, and which
        texts have at least one word (the rows of the others are meaningless)."""
        words, counts = word_hashes(list(texts))
        shingles, per_text = shingle_hashes(words, counts, self.ngram, self._weights)  # type: ignore[attr-defined]
        has_words = counts > 0
        signatures = np.full((len(texts), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        rows = np.flatnonzero(has_words)
        first = np.cumsum(per_text) - per_text
        # Blocks of texts with up to ~64k shingles, so each pass stays in cache.
        start = 0
        while start < len(rows):
            end, total = start, 0
            while end < len(rows) and (end == start or total + per_text[rows[end]] <= 65_536):
                total += int(per_text[rows[end]])
                end += 1
            block = rows[start:end]
            lo = int(first[block[0]])
            signatures[block] = self._min_hash(shingles[lo : lo + total], per_text[block])
            start = end
        return signatures, has_words

    def _min_hash(self, shingles: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The signature of each text of a block, given its shingles (texts in order)."""
        starts = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        out = np.empty((len(lengths), self.num_perm), dtype=np.uint64)
        hashed = np.empty_like(shingles)
        # One hash function at a time over the block: 1-D passes run ~10x faster than one
        # (shingles x num_perm) product, which spills out of the cache.
        with np.errstate(over="ignore"):
            for j, (a, b) in enumerate(zip(self._a, self._b, strict=True)):  # type: ignore[attr-defined]
                np.multiply(shingles, a, out=hashed)
                hashed += b
                out[:, j] = np.minimum.reduceat(hashed, starts)
        return (out >> np.uint64(32)).astype(np.uint32)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) uint64: a 64-bit hash of each band's ``rows`` signature values
    (equal bands give equal keys; different ones collide with probability ~2**-64)."""
    values = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
    key = np.broadcast_to(np.arange(bands, dtype=np.uint64), values.shape[:2]).copy()
    for r in range(rows):
        key = mix64(key ^ values[:, :, r] ^ (np.uint64(r) << np.uint64(32)))
    return key


class MinHashDedupParams(StepParams):
    ngram: int = Field(5, ge=1, description="words per shingle")
    num_perm: int = Field(112, ge=1, le=1024, description="hash functions in a signature")
    bands: int = Field(14, ge=1, description="LSH bands")
    rows: int = Field(8, ge=1, description="signature values per band")
    threshold: float | None = Field(
        None, gt=0, lt=1,
        description="the Jaccard similarity to aim at: bands and rows are chosen for it "
        "(choose_bands, equal false-positive and false-negative weights) instead of given",
    )
    seed: Seed = Field(1, description="seed of the hash functions (indexes must share it)")
    keep: Survivor = Field(
        "first",
        description="survivor of each cluster: first in input order, lowest id, longest text, "
        "or highest value of keep_signal",
    )
    keep_signal: str | None = Field(None, description="column for keep: signal, e.g. a quality score")
    min_similarity: float | None = Field(
        0.5, ge=0, le=1,
        description="a member is removed only if its estimated Jaccard similarity to a kept "
        "document of its cluster is at least this (null: remove every member but the survivor)",
    )
    memory_mb: int = Field(1024, ge=1, description="memory for bucket sorting per worker, MB")
    write_index: bool = Field(False, description="write an index under OUTPUT/index/minhash_dedup")
    against: list[str] = Field(
        default_factory=list,
        description="indexes (or output folders) of earlier corpora: documents that duplicate "
        "them are removed, the earlier corpora are untouched",
    )

    @field_validator("against")
    @classmethod
    def _indexes_exist(cls, paths: list[str]) -> list[str]:
        for path in paths:
            index_folder(path)
        return paths

    @model_validator(mode="after")
    def _consistent(self) -> MinHashDedupParams:
        if self.threshold is not None:
            bands, rows = choose_bands(self.threshold, self.num_perm)
            given = {"bands", "rows"} & self.model_fields_set
            if given and (self.bands, self.rows) != (bands, rows):  # a resolved recipe repeats them
                raise ValueError(f"give threshold or {' and '.join(sorted(given))}, not both "
                                 f"(threshold {self.threshold} means {bands} bands of {rows} rows)")
            object.__setattr__(self, "bands", bands)
            object.__setattr__(self, "rows", rows)
        if self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands x rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}"
            )
        check_keep(self.keep, self.keep_signal)
        return self


@dataclass(frozen=True)
class ShardNearDuplicates:
    """Removed rows of one shard: positions, the kept document each duplicates, its cluster."""

    num_rows: int
    rows: np.ndarray
    duplicate_of: list[str]
    cluster_id: np.ndarray


@register
class MinHashDedup(GlobalStep):
    """Near-duplicate removal by MinHash locality-sensitive hashing.

    Broder 1997, "On the resemblance and containment of documents" (MinHash); Leskovec,
    Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3 (banding). Settings are
    FineWeb's (Penedo et al. 2024): word 5-gram shingles, 112 hash functions in 14 bands
    of 8 rows. Two documents become candidates when all 8 values of some band agree,
    which happens with probability ``1 - (1 - s**8)**14`` for Jaccard similarity ``s``:
    0.05 at s = 0.5, 0.21 at 0.6, 0.57 at 0.7, 0.92 at 0.8, 0.9996 at 0.9; the implied
    threshold is ``(1/14)**(1/8)`` = 0.72. ``threshold: s`` picks the bands and rows for
    another similarity (:func:`assay.steps.dedup.lsh.choose_bands`, which minimises the
    false positives below ``s`` plus the false negatives above it): with 112 functions,
    0.5 gives 22 bands of 5 rows, 0.6 gives 16 of 7, 0.8 gives 9 of 12.

    Shingles: the text is case-folded and stripped of accents, digit runs become ``0``,
    and words are runs of letters, marks and digits, so case, accents, numbers,
    punctuation and whitespace are folded away (datatrove's ``simplify_text`` for
    FineWeb, without its English weekday and month names). Scripts written without
    spaces form long "words", so this step suits space-separated languages best.

    Clusters are the connected components of band collisions (union-find). In each, the
    survivor is chosen by ``keep`` (ties: input order); then, in the same order, every
    other member is removed as ``near_duplicate`` if its signature agrees with that of a
    kept member on at least ``min_similarity`` of the entries (an estimate of Jaccard
    similarity, standard error <= 0.05 with 112 functions), else kept itself. So a chain
    A~B~C never removes C for a survivor A it does not resemble, and ``duplicate_of``
    always names a kept document its text is close to. ``cluster_id`` is the input
    position of the cluster's first document.

    With ``write_index`` the band keys, signatures and ids are written under
    ``OUTPUT/index/minhash_dedup``; a later run lists that folder in ``against`` to remove
    new documents that duplicate the old corpus, which is never modified.
    """

    name: ClassVar[str] = "minhash_dedup"
    Params: ClassVar[type[StepParams]] = MinHashDedupParams
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {
        "signature": pa.list_(pa.uint32()),
        "bands": pa.list_(pa.uint64()),
        "n_chars": pa.int64(),
    }

    params: MinHashDedupParams

    @property
    def hasher(self) -> MinHasher:
        if not hasattr(self, "_hasher"):
            p = self.params
            self._hasher = MinHasher(num_perm=p.num_perm, ngram=p.ngram, seed=p.seed)
        return self._hasher

    def requires(self) -> list[str]:
        return [self.params.keep_signal] if self.params.keep_signal else []

    def referenced_files(self) -> list[str]:
        return [index_folder(path) for path in self.params.against]

    def __call__(self, table: pa.Table) -> pa.Table:
        p = self.params
        texts = table.column(TEXT).to_pylist()
        signatures, has_words = self.hasher.signatures(texts)
        keys = band_keys(signatures, p.bands, p.rows)
        missing = pa.array(~has_words)
        signature_type = pa.list_(pa.uint32(), p.num_perm)
        band_type = pa.list_(pa.uint64(), p.bands)
        sig_col = pa.FixedSizeListArray.from_arrays(pa.array(signatures.ravel()), p.num_perm,
                                                    mask=missing)
        band_col = pa.FixedSizeListArray.from_arrays(pa.array(keys.ravel()), p.bands, mask=missing)
        table = table.append_column(pa.field(self._col("signature"), signature_type), sig_col)
        table = table.append_column(pa.field(self._col("bands"), band_type), band_col)
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
        against = [open_index(path, index_params(p)) for path in p.against]
        groups = [g for g in np.array_split(np.arange(p.bands), min(p.bands, max(1, ctx.workers)))
                  if len(g)]
        memory = p.memory_mb * 2**20 // max(1, ctx.workers)
        tasks = [
            BucketTask(
                shards=tuple(ctx.shards), offsets=tuple(int(o) for o in offsets[:-1]),
                column=self._col("bands"), bands=tuple(int(b) for b in group),
                scratch=ctx.scratch, memory_bytes=memory,
                against=tuple(a.folder for a in against), write_index=p.write_index,
            )
            for group in groups
        ]
        results = ctx.map(find_collisions, tasks)
        edges = np.concatenate([np.load(r.edges) for r in results], axis=1)
        if edges.shape[1]:
            edges = np.unique(edges, axis=1)
        nodes, roots = connected_components(edges)
        members = self._read_members(ctx, offsets, nodes[nodes < OLD_BASE])
        removed, duplicate_of, survivor_gids, kept_after_check, matched_old = self._choose(
            members, nodes, roots, against
        )
        clusters = len(np.unique(roots[nodes < OLD_BASE]))
        per_shard = _split_by_shard(removed, duplicate_of, members, roots, nodes, offsets)
        summary: dict[str, Any] = {
            "documents": n_docs,
            "candidate_pairs": int(edges.shape[1]),
            "clusters": clusters,
            "removed": len(removed),
            "kept_after_similarity_check": kept_after_check,
            "removed_as_duplicates_of_earlier_corpus": matched_old,
            "implied_threshold": round(implied_threshold(p.bands, p.rows), 4),
            "spilled_runs": int(sum(r.runs for r in results)),
            "peak_pairs_in_memory": int(max((r.peak_pairs for r in results), default=0)),
        }
        if p.write_index:
            survivor = np.arange(n_docs, dtype=np.int64)
            survivor[removed.astype(np.int64)] = survivor_gids  # -1: kept in an earlier corpus
            summary["index"] = write_index(ctx, index_params(p), n_docs, survivor, self._col("signature"))
        return GlobalState(per_shard=per_shard, summary=summary)

    def _read_members(self, ctx: FitContext, offsets: np.ndarray, gids: np.ndarray) -> _Members:
        """Signatures, ids, lengths (and the ranking signal) of the documents in clusters."""
        p = self.params
        columns = [ID, self._col("signature"), self._col("n_chars")]
        if p.keep_signal:
            columns.append(p.keep_signal)
        shard_of = np.searchsorted(offsets, gids, side="right") - 1
        ids: list[str] = []
        signatures = []
        n_chars = []
        ranking = []
        for shard in np.unique(shard_of):
            rows = (gids[shard_of == shard] - offsets[shard]).astype(np.int64)
            part = pq.read_table(ctx.shards[shard], columns=columns).take(pa.array(rows))
            ids += part.column(ID).to_pylist()
            sig = part.column(self._col("signature")).combine_chunks()
            signatures.append(sig.flatten().to_numpy().reshape(len(rows), p.num_perm))
            n_chars.append(part.column(self._col("n_chars")).to_numpy())
            if p.keep_signal:
                values = part.column(p.keep_signal).to_numpy(zero_copy_only=False)
                ranking.append(np.asarray(values, dtype=np.float64))
        empty_sig = np.zeros((0, p.num_perm), dtype=np.uint32)
        return _Members(
            gids=gids, ids=ids,
            signatures=np.concatenate(signatures) if signatures else empty_sig,
            n_chars=np.concatenate(n_chars) if n_chars else np.zeros(0, np.int64),
            signal=np.concatenate(ranking) if ranking else None,
        )

    def _choose(
        self, members: _Members, nodes: np.ndarray, roots: np.ndarray, against: list[MinHashIndex]
    ) -> tuple[np.ndarray, list[str], np.ndarray, int, int]:
        """Removed gids (ascending); for each, the id of the kept document it duplicates and
        that document's gid (-1 when it is in an earlier corpus); how many members were
        kept by the similarity check, and how many duplicate an earlier corpus."""
        p = self.params
        is_new = nodes < OLD_BASE
        new_roots = roots[is_new]
        priority = survivor_priority(p.keep, members.ids, members.n_chars, members.signal)
        order = np.lexsort((members.gids, priority, new_roots))
        # Kept documents of earlier corpora in each cluster, by root: (signatures, ids).
        old_by_root: dict[int, tuple[np.ndarray, list[str]]] = {}
        for root in np.unique(roots[~is_new]):
            old_by_root[int(root)] = old_survivors(against, nodes[(roots == root) & ~is_new])
        removed: dict[int, tuple[str, int]] = {}
        kept_after_check = 0
        matched_old = 0
        for cluster in np.split(order, np.flatnonzero(np.diff(new_roots[order])) + 1):
            if len(cluster) == 0:
                continue
            old_sigs, old_ids = old_by_root.get(int(new_roots[cluster[0]]), (None, []))
            # The cluster's kept documents so far: earlier corpora's first, never removed.
            kept_sigs = old_sigs if old_sigs is not None else members.signatures[:0]
            kept = [(doc_id, -1) for doc_id in old_ids]
            for i in cluster:
                sig = members.signatures[i]
                if kept:
                    agreement = (kept_sigs == sig).mean(axis=1)
                    best = int(np.argmax(agreement))
                    if p.min_similarity is None or agreement[best] >= p.min_similarity:
                        removed[int(members.gids[i])] = kept[best]
                        matched_old += kept[best][1] < 0
                        continue
                    kept_after_check += 1
                kept_sigs = np.concatenate([kept_sigs, sig[None, :]])
                kept.append((members.ids[i], int(members.gids[i])))
        gids = np.array(sorted(removed), dtype=np.uint64)
        return (gids, [removed[int(g)][0] for g in gids],
                np.array([removed[int(g)][1] for g in gids], dtype=np.int64),
                kept_after_check, matched_old)

    # -- apply --------------------------------------------------------------------------
    def apply(self, table: pa.Table, shard_state: ShardNearDuplicates) -> pa.Table:
        if table.num_rows != shard_state.num_rows:
            raise ValueError(
                f"shard has {table.num_rows} rows but was fitted with {shard_state.num_rows}"
            )
        # Signatures and band keys served the fit; the index keeps them when asked to.
        table = table.drop_columns([self._col("signature"), self._col("bands")])
        reasons = np.full(table.num_rows, None, dtype=object)
        reasons[shard_state.rows] = NEAR_DUPLICATE
        duplicate_of = np.full(table.num_rows, None, dtype=object)
        duplicate_of[shard_state.rows] = shard_state.duplicate_of
        cluster = np.full(table.num_rows, None, dtype=object)
        cluster[shard_state.rows] = shard_state.cluster_id.tolist()
        table = table.append_column(REASON, pa.array(reasons, pa.string()))
        table = table.append_column(DUPLICATE_OF, pa.array(duplicate_of, pa.string()))
        return table.append_column(CLUSTER_ID, pa.array(cluster, pa.int64()))


@dataclass
class _Members:
    """The documents of the current run that are in a cluster, in gid order."""

    gids: np.ndarray
    ids: list[str]
    signatures: np.ndarray
    n_chars: np.ndarray
    signal: np.ndarray | None


def _split_by_shard(
    removed: np.ndarray, duplicate_of: list[str], members: _Members, roots: np.ndarray,
    nodes: np.ndarray, offsets: np.ndarray,
) -> list[ShardNearDuplicates]:
    root_of = roots[np.searchsorted(nodes, removed)] if len(removed) else removed
    bounds = np.searchsorted(removed, offsets.astype(np.uint64))
    out = []
    for k in range(len(offsets) - 1):
        lo, hi = int(bounds[k]), int(bounds[k + 1])
        out.append(ShardNearDuplicates(
            num_rows=int(offsets[k + 1] - offsets[k]),
            rows=(removed[lo:hi] - np.uint64(offsets[k])).astype(np.int64),
            duplicate_of=duplicate_of[lo:hi],
            cluster_id=root_of[lo:hi].astype(np.int64),
        ))
    return out


# ------------------------------------------------------------------------- index


def index_params(p: MinHashDedupParams) -> dict[str, Any]:
    return {"format": INDEX_FORMAT, "ngram": p.ngram, "num_perm": p.num_perm, "bands": p.bands,
            "rows": p.rows, "seed": p.seed}
