"""PyTorch datasets over prepared shards (``pip install 'assay[train]'``).

- :class:`ConcatDataset`: concat-and-chunk, nanoGPT-style: item i is the
  ``context + 1`` tokens starting at ``i * context`` of a phase's stream (input = [:-1],
  target = [1:]); the stream's last partial window is left out.
- :class:`DocumentDataset`: item i is the i-th document of a phase (end-of-document token
  included), read through the Megatron-style index.
- :class:`BucketDataset` and :class:`BucketBatchSampler`: Dataset Decomposition
  (Pouransari et al. 2024): items are the pieces of every bucket; the sampler draws each
  batch from a single bucket, ``tokens_per_batch / 2^k`` pieces of 2^k tokens, so every
  batch has the same number of tokens and no padding.

Items are ``torch.int64`` tensors. Shuffling in the sampler is seeded.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from assay.prepare.packing import bucket_batch_size, windows
from assay.prepare.reader import Shards


def _open(shards: str | Path | Shards) -> Shards:
    return shards if isinstance(shards, Shards) else Shards(shards)


class ConcatDataset(Dataset):
    """Windows of ``context + 1`` tokens over a phase's concat-and-chunk stream."""

    def __init__(self, shards: str | Path | Shards, phase: int | str | None = None,
                 context: int | None = None) -> None:
        self.shards = _open(shards)
        self.context = int(context or self.shards.manifest["packing"]["context"])
        self.files = self.shards.concat_files(phase)
        counts = [windows(f.n_tokens, self.context) for f in self.files]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < len(self):
            raise IndexError(i)
        part = int(np.searchsorted(self.offsets, i, side="right")) - 1
        start = (i - int(self.offsets[part])) * self.context
        window = self.files[part].tokens[start: start + self.context + 1]
        return torch.from_numpy(window.astype(np.int64))


class DocumentDataset(Dataset):
    """The documents of a phase in training order, one item each."""

    def __init__(self, shards: str | Path | Shards, phase: int | str | None = None) -> None:
        self.shards = _open(shards)
        self.files = self.shards.concat_files(phase)
        self.offsets = np.concatenate([[0], np.cumsum([len(f) for f in self.files])]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < len(self):
            raise IndexError(i)
        part = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return torch.from_numpy(np.asarray(self.files[part][i - int(self.offsets[part])], dtype=np.int64))


class BucketDataset(Dataset):
    """Every piece of a phase's Dataset Decomposition buckets (``rest`` only if asked)."""

    def __init__(self, shards: str | Path | Shards, phase: int | str | None = None,
                 include_rest: bool = False) -> None:
        self.shards = _open(shards)
        buckets = self.shards.buckets(phase)
        self.keys = sorted((k for k in buckets if k != "rest"), key=int)
        if include_rest and "rest" in buckets:
            self.keys.append("rest")
        self.files = [buckets[k][0] for k in self.keys]
        self.pieces = [buckets[k][1] for k in self.keys]
        self.offsets = np.concatenate([[0], np.cumsum([len(f) for f in self.files])]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """(bucket number in ``keys``, piece within it) of item ``i``."""
        b = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return b, i - int(self.offsets[b])

    def __getitem__(self, i: int) -> torch.Tensor:
        if not 0 <= i < len(self):
            raise IndexError(i)
        b, j = self.locate(i)
        return torch.from_numpy(np.asarray(self.files[b][j], dtype=np.int64))


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of indices of a :class:`BucketDataset`, each from one bucket of 2^k tokens with
    ``tokens_per_batch / 2^k`` pieces (Dataset Decomposition's constant tokens per batch).
    Buckets and batches are shuffled with ``seed`` + the epoch set by :meth:`set_epoch`."""

    def __init__(self, dataset: BucketDataset, tokens_per_batch: int, seed: int = 0,
                 drop_last: bool = False) -> None:
        if "rest" in dataset.keys:
            raise ValueError("rest pieces have no fixed length; build the dataset without include_rest")
        largest = 1 << max((int(k) for k in dataset.keys), default=0)
        if tokens_per_batch < largest:
            raise ValueError(f"tokens_per_batch {tokens_per_batch:,} is below the largest bucket's pieces "
                             f"({largest:,} tokens)")
        self.dataset, self.tokens_per_batch = dataset, tokens_per_batch
        self.seed, self.drop_last = seed, drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = []
        for b, key in enumerate(self.dataset.keys):
            size = bucket_batch_size(self.tokens_per_batch, int(key))
            first, last = int(self.dataset.offsets[b]), int(self.dataset.offsets[b + 1])
            idx = rng.permutation(np.arange(first, last))
            for a in range(0, idx.size, size):
                chunk = idx[a: a + size]
                if chunk.size == size or not self.drop_last:
                    batches.append(chunk.tolist())
        order = rng.permutation(len(batches))
        return [batches[i] for i in order]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())
