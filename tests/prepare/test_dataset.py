"""The PyTorch datasets read every shard format of the prepared sample."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from assay.prepare.dataset import BucketBatchSampler, BucketDataset, ConcatDataset, DocumentDataset
from assay.prepare.reader import Shards


def test_concat_windows_are_the_nanogpt_stream(prepared_sample: Path) -> None:
    shards = Shards(prepared_sample)
    data = ConcatDataset(shards)
    assert data.context == 512
    files = shards.manifest["phases"][0]["concat"]["files"]
    assert len(data) == shards.manifest["phases"][0]["concat"]["windows"] == sum(f["windows"] for f in files)
    first = np.memmap(prepared_sample / f"{files[0]['file']}.bin", dtype=np.uint16, mode="r")
    second = np.memmap(prepared_sample / f"{files[1]['file']}.bin", dtype=np.uint16, mode="r")
    assert data[3].tolist() == first[3 * 512: 4 * 512 + 1].tolist()
    assert data[files[0]["windows"]].tolist() == second[:513].tolist()
    batch = next(iter(DataLoader(data, batch_size=4, shuffle=False)))
    assert batch.shape == (4, 513) and batch.dtype == torch.int64
    x, y = batch[:, :-1], batch[:, 1:]
    assert torch.equal(x[:, 1:], y[:, :-1])
    with pytest.raises(IndexError):
        data[len(data)]


def test_documents_in_training_order(prepared_sample: Path) -> None:
    shards = Shards(prepared_sample)
    data = DocumentDataset(shards)
    docs = shards.documents()
    assert len(data) == docs.num_rows
    lengths = docs.column("tokens").to_pylist()
    for i in (0, 1, 500, len(data) - 1):
        item = data[i]
        assert item.numel() == lengths[i] and int(item[-1]) == shards.eos_id
        assert np.array_equal(item.numpy(), shards.document_tokens(None, i, "concat"))


def test_bucket_batches_come_from_one_bucket_with_constant_tokens(prepared_sample: Path) -> None:
    data = BucketDataset(prepared_sample)
    assert data.keys == ["8", "9", "10", "11", "12", "13"]
    sampler = BucketBatchSampler(data, tokens_per_batch=1 << 13, seed=5)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(data)))  # every piece once
    for batch in batches[:50]:
        buckets = {data.locate(i)[0] for i in batch}
        assert len(buckets) == 1
        size = 1 << int(data.keys[buckets.pop()])
        assert all(data[i].numel() == size for i in batch)
        assert len(batch) <= (1 << 13) // size
    assert batches == list(BucketBatchSampler(data, tokens_per_batch=1 << 13, seed=5))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    loader = DataLoader(data, batch_sampler=BucketBatchSampler(data, 1 << 14, seed=0, drop_last=True))
    for batch in loader:
        assert batch.numel() == 1 << 14
    with pytest.raises(ValueError, match="below the largest bucket"):
        BucketBatchSampler(data, 1 << 12)
    with pytest.raises(ValueError, match="rest"):
        BucketBatchSampler(BucketDataset(prepared_sample, include_rest=True), 1 << 13)
