"""Batches as a pure function of the step: phases in order, permutations per pass, Dataset
Decomposition batches of one bucket with constant tokens."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from assay.prepare.reader import Shards
from assay.train.data import BucketBatches, ConcatBatches, phase_steps

from .conftest import prepare_shards


def test_phase_steps_are_proportional_and_add_up() -> None:
    assert phase_steps([850, 150], 100) == [85, 15]
    assert sum(phase_steps([3, 3, 3], 10)) == 10
    assert phase_steps([1000, 1], 10) == [9, 1]  # a phase with tokens keeps a step
    with pytest.raises(ValueError):
        phase_steps([], 3)


def test_concat_batches_are_windows_of_the_stream_in_a_fresh_order_each_pass(shards: Path) -> None:
    s = Shards(shards)
    stream = np.concatenate([f.tokens for f in s.concat_files("main")]).astype(np.int64)
    context, batch = 32, 8
    n_windows = (stream.size - 1) // context
    steps = 2 * n_windows // batch + 3  # a bit more than two passes
    b = ConcatBatches(s, ["main"], context, batch, steps, seed=3)
    assert len(b) == steps and b.epochs()[0] == pytest.approx(steps * batch / n_windows)
    seen = []
    for step in range(steps):
        x = b.batch(step)
        assert x.dtype == torch.int64 and x.shape == (batch, context + 1)
        _, idx = b.windows(step)
        for row, w in zip(x.numpy(), idx, strict=True):
            assert np.array_equal(row, stream[w * context: w * context + context + 1])
        seen.extend(idx.tolist())
    first, second = seen[:n_windows], seen[n_windows: 2 * n_windows]
    assert sorted(first) == list(range(n_windows)) == sorted(second)  # no repeat within a pass
    assert first != second
    again = ConcatBatches(s, ["main"], context, batch, steps, seed=3)
    assert torch.equal(again.batch(steps - 1), b.batch(steps - 1))  # pure function of (seed, step)
    other = ConcatBatches(s, ["main"], context, batch, steps, seed=4)
    assert not torch.equal(other.batch(0), b.batch(0))


def test_phases_are_trained_in_order(tmp_path: Path, curated_small: Path, tokenizer_512: Path) -> None:
    shards = prepare_shards(tmp_path / "phased", curated_small, tokenizer_512, method="concat",
                            phases="[{name: main, fraction: 0.8}, {name: anneal, fraction: 0.2, "
                                   "weights: {udhr: 1.0}}]")
    s = Shards(shards)
    b = ConcatBatches(s, s.phases, 32, 4, 50, seed=0)
    assert b.plan.steps[0] > b.plan.steps[1] > 0 and sum(b.plan.steps) == 50
    assert [b.windows(i)[0] for i in range(50)] == [0] * b.plan.steps[0] + [1] * b.plan.steps[1]


def test_bucket_batches_hold_one_bucket_and_constant_tokens(shards: Path) -> None:
    s = Shards(shards)
    context, tokens = 32, 256
    n = BucketBatches(s, ["main"], context, tokens, 1, seed=0).batches_per_epoch[0]
    b = BucketBatches(s, ["main"], context, tokens, n, seed=0)  # one pass
    # Buckets 2^4..2^6 (the fixture's min_log2/max_log2): rows of 16 or 32 tokens (the largest
    # power of two within context + 1); a 2^6 piece is cut into two rows.
    rows, widths = [], set()
    for step in range(n):
        x = b.batch(step)
        assert x.dtype == torch.int64 and x.numel() == tokens
        widths.add(x.shape[1])
        rows += [tuple(r) for r in x.numpy()]
    assert widths == {16, 32}
    expected = []
    for f in b.datasets[0].files:
        for i in range(len(f)):
            piece = np.asarray(f[i], dtype=np.int64)
            expected += [tuple(piece[a: a + 32]) for a in range(0, piece.size, 32)]
    # Each row is a stretch of one document, used once a pass; only each bucket's last
    # partial batch is left out.
    assert not Counter(rows) - Counter(expected) and len(rows) > 0.9 * len(expected)
    assert torch.equal(BucketBatches(s, ["main"], context, tokens, n, seed=0).batch(n - 1), b.batch(n - 1))
