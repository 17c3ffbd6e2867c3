"""The machinery behind MinHash LSH deduplication: buckets, clusters and the index.

Pure functions for the maths (band collisions, connected components, the banding
S-curve) and small file helpers for the parts that must not hold a whole corpus in
memory: band keys are spilled to disk in sorted runs and merged in bounded blocks, the
way an external sort works.

A document is named by its *gid*: its position in the input order of the run (shard
after shard), so every decision that breaks ties by gid is reproducible.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq

# gids of documents in an earlier corpus (``against:`` indexes) are offset by this, so
# they sort after every gid of the current run and never collide with one.
OLD_BASE = np.uint64(1 << 62)
# Index k of a run's ``against`` list numbers its documents from OLD_BASE + k * INDEX_STRIDE.
INDEX_STRIDE = 1 << 52

# Bytes held per (band key, gid) pair while sorting: the pair plus numpy's sort buffers.
_BYTES_PER_PAIR = 48


# ------------------------------------------------------------------ banding S-curve


def candidate_probability(similarity: np.ndarray | float, bands: int, rows: int) -> np.ndarray:
    """Probability that two documents with Jaccard ``similarity`` share at least one band
    bucket: ``1 - (1 - s**rows)**bands`` (Leskovec, Rajaraman & Ullman, *Mining of
    Massive Datasets*, ch. 3.4)."""
    s = np.asarray(similarity, dtype=np.float64)
    return 1.0 - (1.0 - s**rows) ** bands


def implied_threshold(bands: int, rows: int) -> float:
    """The similarity where the S-curve is steepest, about ``(1/bands)**(1/rows)``."""
    return float((1.0 / bands) ** (1.0 / rows))


def choose_bands(
    threshold: float, num_perm: int = 112, fp_weight: float = 0.5, fn_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm that minimise the weighted area of
    false positives (pairs below ``threshold`` that become candidates) and false
    negatives (pairs above it that do not), integrated over the similarity, as
    datasketch's ``MinHashLSH`` chooses them (Zhu et al. 2016)."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    if num_perm < 1:
        raise ValueError(f"num_perm must be positive, got {num_perm}")
    below = np.linspace(0.0, threshold, 201)
    above = np.linspace(threshold, 1.0, 201)
    best: tuple[float, int, int] | None = None
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = np.trapezoid(candidate_probability(below, bands, rows), below)
            fn = np.trapezoid(1.0 - candidate_probability(above, bands, rows), above)
            error = fp_weight * fp + fn_weight * fn
            if best is None or error < best[0] - 1e-12:
                best = (float(error), bands, rows)
    assert best is not None
    return best[1], best[2]


# ------------------------------------------------------------------ buckets


@dataclass(frozen=True)
class BucketTask:
    """Find the band collisions of ``bands`` over every shard (one task per worker)."""

    shards: tuple[str, ...]
    offsets: tuple[int, ...]  # gid of each shard's first row
    column: str  # fixed-size list of band keys (uint64, one per band; null: no words)
    bands: tuple[int, ...]
    scratch: str
    memory_bytes: int
    against: tuple[str, ...] = ()  # index folders of earlier corpora, opened read-only
    write_index: bool = False


@dataclass(frozen=True)
class BucketResult:
    edges: str  # .npy file of (2, E) uint64: (member gid, gid of the bucket's first member)
    n_edges: int
    runs: int  # sorted runs spilled to disk (0: everything fit in memory)
    peak_pairs: int  # most (key, gid) pairs held in memory at once


def find_collisions(task: BucketTask) -> BucketResult:
    """Every document that shares a band key with an earlier one, linked to the earliest.

    Pairs (band key, gid) are buffered up to the memory budget, then sorted and spilled
    as a run per band; the runs are merged in blocks so that memory stays bounded. With
    ``write_index`` the first gid of every distinct key is written per band as well.
    """
    budget = max(1, task.memory_bytes // _BYTES_PER_PAIR)
    runs: dict[int, list[str]] = {b: [] for b in task.bands}
    buffers: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {b: [] for b in task.bands}
    held = 0
    peak = 0

    def spill() -> None:
        nonlocal held
        for band in task.bands:
            if buffers[band]:
                keys, gids = _sorted_pairs(buffers[band])
                path = os.path.join(task.scratch, f"run-b{band:03d}-{len(runs[band]):05d}.npy")
                np.save(path, np.stack([keys, gids]))
                runs[band].append(path)
                buffers[band] = []
        held = 0

    for path, offset in zip(task.shards, task.offsets, strict=True):
        column = pq.read_table(path, columns=[task.column]).column(0).combine_chunks()
        present = np.flatnonzero(column.is_valid().to_numpy(zero_copy_only=False))
        if len(present) == 0:
            continue
        width = column.type.list_size
        keys = column.flatten().to_numpy().reshape(-1, width)
        gids = present.astype(np.uint64) + np.uint64(offset)
        for band in task.bands:
            buffers[band].append((keys[:, band].copy(), gids))
        held += len(present) * len(task.bands)
        peak = max(peak, held)
        if held >= budget:
            spill()

    spilled = any(runs.values())
    if spilled:
        spill()
    edges: list[np.ndarray] = []
    for band in task.bands:
        if spilled:
            batches: Iterator[tuple[np.ndarray, np.ndarray]] = merge_runs(
                runs[band], max(1, budget // max(1, len(runs[band])))
            )
        else:
            batches = iter([_sorted_pairs(buffers[band])]) if buffers[band] else iter(())
        old = [_IndexBand.open(folder, band, k) for k, folder in enumerate(task.against)]
        index_out = _IndexWriter(task.scratch, band) if task.write_index else None
        for keys, gids in batches:
            first = _first_of_group(keys)
            members = first != np.arange(len(keys))
            edges.append(np.stack([gids[members], gids[first[members]]]))
            leaders = ~members
            for index in old:
                edges.append(index.links(keys[leaders], gids[leaders]))
            if index_out is not None:
                index_out.append(keys[leaders], gids[leaders])
        if index_out is not None:
            index_out.close()
        for path in runs[band]:
            os.remove(path)
    found = np.concatenate(edges, axis=1) if edges else np.empty((2, 0), dtype=np.uint64)
    out = os.path.join(task.scratch, f"edges-{task.bands[0]:03d}.npy")
    np.save(out, found)
    return BucketResult(out, found.shape[1], sum(len(r) for r in runs.values()) if spilled else 0,
                        peak)


def _sorted_pairs(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (keys, gids) parts and sort by key, then gid."""
    keys = np.concatenate([k for k, _ in parts])
    gids = np.concatenate([g for _, g in parts])
    order = np.lexsort((gids, keys))
    return keys[order], gids[order]


def _first_of_group(keys: np.ndarray) -> np.ndarray:
    """For sorted ``keys``: the index of the first entry of each entry's run of equal keys."""
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.ones(len(keys), dtype=bool)
    np.not_equal(keys[1:], keys[:-1], out=starts[1:])
    return np.maximum.accumulate(np.where(starts, np.arange(len(keys)), 0))


def merge_runs(paths: Sequence[str], block: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Merge sorted runs (each a (2, n) uint64 .npy of keys and gids) into sorted batches
    of about ``block`` pairs per run, never splitting a run of equal keys across batches.

    Each round reads the next block of every run and takes, from every run, the pairs up
    to the smallest last key among those blocks: nothing smaller can come later.
    """
    runs = [np.load(p, mmap_mode="r") for p in paths]
    pos = [0] * len(runs)
    while True:
        live = [i for i, r in enumerate(runs) if pos[i] < r.shape[1]]
        if not live:
            return
        bound = min(runs[i][0, min(pos[i] + block, runs[i].shape[1]) - 1] for i in live)
        parts = []
        for i in live:
            end = pos[i] + int(np.searchsorted(runs[i][0, pos[i]:], bound, side="right"))
            parts.append((np.array(runs[i][0, pos[i] : end]), np.array(runs[i][1, pos[i] : end])))
            pos[i] = end
        yield _sorted_pairs(parts)


# ------------------------------------------------------------------ clusters


def connected_components(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union-find over an edge list: ``(nodes, root)`` where ``nodes`` are the distinct
    node ids (ascending) and ``root[i]`` the smallest node id of node i's component.

    Label propagation with pointer jumping, vectorised: every round gives both ends of
    each edge the smaller of their labels, then follows labels to their labels until
    stable; rounds repeat until no label changes (O(log n) rounds for typical graphs).
    """
    if edges.shape[1] == 0:
        empty = np.zeros(0, dtype=edges.dtype)
        return empty, empty
    nodes, inverse = np.unique(edges.ravel(), return_inverse=True)
    u, v = inverse.reshape(2, -1)
    label = np.arange(len(nodes))
    while True:
        smaller = np.minimum(label[u], label[v])
        before = label.copy()
        np.minimum.at(label, u, smaller)
        np.minimum.at(label, v, smaller)
        while True:  # pointer jumping: a label's label is at most the label
            jumped = label[label]
            if np.array_equal(jumped, label):
                break
            label = jumped
        if np.array_equal(label, before):
            return nodes, nodes[label]


# ------------------------------------------------------------------ index files


def index_band_paths(folder: str, band: int) -> tuple[str, str]:
    return (os.path.join(folder, f"band-{band:03d}.keys.u64"),
            os.path.join(folder, f"band-{band:03d}.gids.u64"))


class _IndexWriter:
    """Appends (key, gid) of each distinct band key, in key order, to two raw files."""

    def __init__(self, folder: str, band: int) -> None:
        keys, gids = index_band_paths(folder, band)
        self._keys = open(keys, "wb")  # closed in close()
        self._gids = open(gids, "wb")

    def append(self, keys: np.ndarray, gids: np.ndarray) -> None:
        self._keys.write(keys.astype("<u8").tobytes())
        self._gids.write(gids.astype("<u8").tobytes())

    def close(self) -> None:
        self._keys.close()
        self._gids.close()


@dataclass
class _IndexBand:
    """One band of an earlier corpus's index: sorted distinct keys and the gid of each."""

    keys: np.ndarray
    gids: np.ndarray
    base: np.uint64  # added to the index's gids to make them nodes of this run's graph

    @classmethod
    def open(cls, folder: str, band: int, position: int) -> _IndexBand:
        keys, gids = index_band_paths(folder, band)
        base = OLD_BASE + np.uint64(position * INDEX_STRIDE)
        if os.path.getsize(keys) == 0:
            empty = np.zeros(0, dtype=np.uint64)
            return cls(empty, empty, base)
        return cls(np.memmap(keys, dtype="<u8", mode="r"), np.memmap(gids, dtype="<u8", mode="r"),
                   base)

    def links(self, keys: np.ndarray, gids: np.ndarray) -> np.ndarray:
        """Edges (gid, base + old gid) for the keys the earlier corpus holds too."""
        if len(self.keys) == 0 or len(keys) == 0:
            return np.empty((2, 0), dtype=np.uint64)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        hit = self.keys[at] == keys
        return np.stack([gids[hit], np.asarray(self.gids[at[hit]], dtype=np.uint64) + self.base])
