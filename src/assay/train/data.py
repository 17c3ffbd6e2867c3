"""Training batches from prepared shards, as a pure function of the step.

The batch of step ``s`` depends only on the shards, the seed and ``s``, so a run resumed
from a checkpoint at step ``s`` sees exactly the batches an uninterrupted run sees, with no
sampler state to save.

- Phases (``assay prepare``'s ``mixture.phases``) are trained in order; each gets a share
  of the steps proportional to its tokens, so a run shorter than the shards keeps the
  mixture's curriculum (an annealing phase stays at the end).
- :class:`ConcatBatches`: concat-and-chunk windows of ``context + 1`` tokens
  (:class:`assay.prepare.dataset.ConcatDataset`), in a seeded permutation per pass over a
  phase; windows are gathered from the memory-mapped files with one numpy index per file.
- :class:`BucketBatches`: Dataset Decomposition (Pouransari et al. 2024): each batch comes
  from one length bucket (:class:`assay.prepare.dataset.BucketDataset`), so it has no padding
  and no attention across documents. Pieces longer than the model's context are cut into
  rows of the largest power of two that fits (``context + 1`` tokens at most); a batch holds
  ``batch_tokens / row`` rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from assay.prepare.dataset import BucketDataset, ConcatDataset
from assay.prepare.packing import bucket_batch_size
from assay.prepare.reader import Shards
from assay.train.config import TrainError


def phase_steps(phase_tokens: Sequence[int], total_steps: int) -> list[int]:
    """Steps per phase in proportion to its tokens, adding up to ``total_steps`` (largest
    remainder; a phase with tokens gets at least one step while steps remain)."""
    tokens = np.asarray(phase_tokens, dtype=np.float64)
    if total_steps < 0 or tokens.size == 0 or tokens.sum() <= 0:
        raise TrainError("need phases with tokens and a non-negative number of steps")
    exact = total_steps * tokens / tokens.sum()
    steps = np.floor(exact).astype(np.int64)
    for i in np.argsort(-(exact - steps), kind="stable")[: total_steps - int(steps.sum())]:
        steps[i] += 1
    for i in np.flatnonzero((steps == 0) & (tokens > 0)):
        j = int(np.argmax(steps))
        if steps[j] > 1:
            steps[i], steps[j] = 1, steps[j] - 1
    return [int(s) for s in steps]


def epoch_order(n: int, seed: int, phase: int, epoch: int) -> np.ndarray:
    """The seeded order of the ``n`` items of a phase in pass ``epoch``."""
    return np.random.default_rng([seed, phase, epoch]).permutation(n)


class _Steps:
    """Which phase a step belongs to, and its step number within the phase."""

    def __init__(self, steps: list[int]) -> None:
        self.steps = steps
        self.first = np.concatenate([[0], np.cumsum(steps)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.first[-1])

    def locate(self, step: int) -> tuple[int, int]:
        if not 0 <= step < len(self):
            raise IndexError(f"step {step} outside 0..{len(self) - 1}")
        p = int(np.searchsorted(self.first, step, side="right")) - 1
        return p, step - int(self.first[p])


class ConcatBatches:
    """``batch_size`` windows of ``context + 1`` tokens per step, phase by phase."""

    def __init__(self, shards: Shards, phases: Sequence[str], context: int, batch_size: int,
                 total_steps: int, seed: int = 0) -> None:
        self.context, self.batch_size, self.seed = context, batch_size, seed
        self.datasets = [ConcatDataset(shards, p, context) for p in phases]
        empty = [p for p, d in zip(phases, self.datasets, strict=True) if len(d) == 0]
        if empty:
            raise TrainError(f"phase(s) {', '.join(empty)} hold fewer than {context + 1} tokens")
        self.plan = _Steps(phase_steps([len(d) for d in self.datasets], total_steps))
        self._order = lru_cache(maxsize=4)(self._epoch_order)

    def __len__(self) -> int:
        return len(self.plan)

    def _epoch_order(self, phase: int, epoch: int) -> np.ndarray:
        return epoch_order(len(self.datasets[phase]), self.seed, phase, epoch)

    def epochs(self) -> list[float]:
        """Passes over each phase's windows that the planned steps make."""
        return [s * self.batch_size / len(d) for s, d in zip(self.plan.steps, self.datasets, strict=True)]

    def windows(self, step: int) -> tuple[int, np.ndarray]:
        """The phase and the window numbers of ``step``."""
        p, local = self.plan.locate(step)
        n = len(self.datasets[p])
        j = np.arange(local * self.batch_size, (local + 1) * self.batch_size, dtype=np.int64)
        epochs, within = np.divmod(j, n)
        out = np.empty_like(j)
        for e in np.unique(epochs):
            mask = epochs == e
            out[mask] = self._order(p, int(e))[within[mask]]
        return p, out

    def batch(self, step: int) -> torch.Tensor:
        """(batch_size, context + 1) int64 tokens of ``step``."""
        p, idx = self.windows(step)
        ds = self.datasets[p]
        part = np.searchsorted(ds.offsets, idx, side="right") - 1
        starts = (idx - ds.offsets[part]) * self.context
        out = np.empty((idx.size, self.context + 1), dtype=np.int64)
        span = np.arange(self.context + 1, dtype=np.int64)
        for f in np.unique(part):
            rows = np.flatnonzero(part == f)
            out[rows] = ds.files[int(f)].tokens[starts[rows, None] + span]
        return torch.from_numpy(out)


class BucketBatches:
    """Dataset Decomposition batches of about ``batch_tokens`` tokens, one bucket each."""

    def __init__(self, shards: Shards, phases: Sequence[str], context: int, batch_tokens: int,
                 total_steps: int, seed: int = 0) -> None:
        self.seed = seed
        self.row_log2 = int(np.floor(np.log2(min(context + 1, batch_tokens))))
        if self.row_log2 < 1:
            raise TrainError("context and batch_tokens must allow rows of at least 2 tokens")
        self.datasets = [BucketDataset(shards, p) for p in phases]
        self.rows: list[list[tuple[int, int, int]]] = []  # per phase: (bucket, row log2, rows per piece)
        self.batches_per_epoch = []
        for d in self.datasets:
            layout = []
            n_batches = 0
            for b, key in enumerate(d.keys):
                k = int(key)
                r = min(k, self.row_log2)
                layout.append((b, r, 1 << (k - r)))
                per_batch = bucket_batch_size(batch_tokens, r)
                n_batches += (len(d.files[b]) << (k - r)) // per_batch
            self.rows.append(layout)
            self.batches_per_epoch.append(n_batches)
        self.batch_tokens = batch_tokens
        empty = [p for p, n in zip(phases, self.batches_per_epoch, strict=True) if n == 0]
        if empty:
            raise TrainError(f"phase(s) {', '.join(empty)} have no full Dataset Decomposition batch of "
                             f"{batch_tokens:,} tokens")
        self.plan = _Steps(phase_steps(self.batches_per_epoch, total_steps))
        self._batches = lru_cache(maxsize=4)(self._epoch_batches)

    def __len__(self) -> int:
        return len(self.plan)

    def epochs(self) -> list[float]:
        return [s / n for s, n in zip(self.plan.steps, self.batches_per_epoch, strict=True)]

    def _epoch_batches(self, phase: int, epoch: int) -> list[tuple[int, int, np.ndarray]]:
        """Every full batch of a pass over a phase, shuffled: (bucket, row log2, row numbers)."""
        rng = np.random.default_rng([self.seed, phase, epoch])
        batches = []
        for b, r, per_piece in self.rows[phase]:
            size = bucket_batch_size(self.batch_tokens, r)
            order = rng.permutation(len(self.datasets[phase].files[b]) * per_piece)
            for a in range(0, order.size - size + 1, size):
                batches.append((b, r, order[a: a + size]))
        return [batches[i] for i in rng.permutation(len(batches))]

    def batch(self, step: int) -> torch.Tensor:
        """(rows, 2^r) int64 tokens of ``step``: rows of one bucket."""
        p, local = self.plan.locate(step)
        epoch, i = divmod(local, self.batches_per_epoch[p])
        b, r, rows = self._batches(p, epoch)[i]
        file = self.datasets[p].files[b]
        width = 1 << r
        per_piece = (1 << int(self.datasets[p].keys[b])) >> r
        piece, within = np.divmod(rows, per_piece)
        starts = file.starts[piece] + within * width
        return torch.from_numpy(file.tokens[starts[:, None] + np.arange(width)].astype(np.int64))
