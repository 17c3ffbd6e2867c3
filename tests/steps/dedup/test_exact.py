"""The exact_dedup step: hashing, fitting over shards, and marking duplicates."""

from __future__ import annotations

import pickle
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pytest

from assay.documents import DUPLICATE_OF, ID, REASON
from assay.steps.base import step_class
from assay.steps.dedup.exact import (
    EXACT_DUPLICATE,
    ExactDedup,
    content_hashes,
    first_occurrences,
    normalize_for_dedup,
)

KEY = "exact_dedup.hash"


def shard(ids: list[str], texts: list[str]) -> pa.Table:
    return pa.table({ID: pa.array(ids, pa.string()), "text": pa.array(texts, pa.string())})


def run(step: ExactDedup, shards: list[pa.Table]) -> tuple[list[pa.Table], dict]:
    """Map every shard, fit on the keys of all rows in input order, then apply per shard."""
    mapped = [step(t) for t in shards]
    keys = pa.concat_tables([t.select([ID, KEY]) for t in mapped])
    state = step.fit(keys, [t.num_rows for t in mapped])
    assert len(state.per_shard) == len(shards)
    out = [step.apply(t, s) for t, s in zip(mapped, state.per_shard, strict=True)]
    return out, state.summary


def marks(table: pa.Table) -> list[tuple[str | None, str | None]]:
    return list(
        zip(
            table.column(REASON).to_pylist(),
            table.column(DUPLICATE_OF).to_pylist(),
            strict=True,
        )
    )


def test_registered_as_global() -> None:
    assert step_class("exact_dedup") is ExactDedup
    assert ExactDedup.kind == "global"
    assert ExactDedup().signal_columns() == [KEY]
    assert ExactDedup().params.normalize is True


def test_map_appends_uint64_hash() -> None:
    out = ExactDedup()(shard(["a", "b"], ["one", "two"]))
    assert out.schema.field(KEY).type == pa.uint64()
    assert out.column_names == [ID, "text", KEY]
    empty = ExactDedup()(shard([], []))
    assert empty.num_rows == 0 and empty.schema.field(KEY).type == pa.uint64()


def test_normalisation() -> None:
    assert normalize_for_dedup("  Hello,\r\n\tWORLD  \u00a0again ") == "hello, world again"
    assert normalize_for_dedup("ﬁle ＡＢＣ") == "file abc"  # NFKC: ligature, full width
    assert normalize_for_dedup("Straße") == normalize_for_dedup("STRASSE")  # case folding
    assert normalize_for_dedup("cafe\u0301") == normalize_for_dedup("café")
    assert normalize_for_dedup("1,000 items.") != normalize_for_dedup("1000 items")


def test_hashes_are_stable_xxh3() -> None:
    import xxhash

    assert content_hashes(["abc"], normalize=False)[0] == xxhash.xxh3_64_intdigest(b"abc")
    assert content_hashes([" ABC\n"])[0] == xxhash.xxh3_64_intdigest(b"abc")
    assert content_hashes([]).dtype == np.uint64


def test_first_occurrences() -> None:
    hashes = np.array([5, 3, 5, 7, 3, 5], dtype=np.uint64)
    assert first_occurrences(hashes).tolist() == [0, 1, 0, 3, 1, 0]
    assert first_occurrences(np.zeros(0, dtype=np.uint64)).tolist() == []


def test_duplicates_within_one_shard() -> None:
    texts = ["alpha", "beta", "alpha", "gamma", "beta", "alpha"]
    (out,), summary = run(ExactDedup(), [shard(list("abcdef"), texts)])
    assert marks(out) == [
        (None, None),
        (None, None),
        (EXACT_DUPLICATE, "a"),
        (None, None),
        (EXACT_DUPLICATE, "b"),
        (EXACT_DUPLICATE, "a"),
    ]
    assert summary == {"documents": 6, "unique": 3, "duplicates": 3, "duplicate_groups": 2}


def test_duplicates_across_shards_first_in_input_order_survives() -> None:
    shards = [
        shard(["s0-0", "s0-1"], ["shared text", "only here"]),
        shard([], []),
        shard(["s2-0", "s2-1", "s2-2"], ["other", "Shared   TEXT", "only here"]),
        shard(["s3-0"], ["shared text"]),
    ]
    out, summary = run(ExactDedup(), shards)
    assert marks(out[0]) == [(None, None), (None, None)]
    assert out[1].num_rows == 0
    assert out[1].schema.field(REASON).type == pa.string()
    assert out[1].schema.field(DUPLICATE_OF).type == pa.string()
    assert marks(out[2]) == [
        (None, None),
        (EXACT_DUPLICATE, "s0-0"),
        (EXACT_DUPLICATE, "s0-1"),
    ]
    assert marks(out[3]) == [(EXACT_DUPLICATE, "s0-0")]
    assert summary["duplicates"] == 3 and summary["duplicate_groups"] == 2


def test_case_and_whitespace_variants() -> None:
    texts = ["The Cat sat.\n", "the cat  sat.", "THE CAT\r\nSAT.", "The cat sat!"]
    ids = ["a", "b", "c", "d"]
    (normalised,), _ = run(ExactDedup(), [shard(ids, texts)])
    assert marks(normalised) == [
        (None, None),
        (EXACT_DUPLICATE, "a"),
        (EXACT_DUPLICATE, "a"),
        (None, None),  # punctuation differs: not an exact duplicate
    ]
    (raw,), summary = run(ExactDedup(normalize=False), [shard(ids, texts)])
    assert marks(raw) == [(None, None)] * 4
    assert summary["duplicates"] == 0
    (raw,), _ = run(ExactDedup(normalize=False), [shard(["x", "y"], ["Same.", "Same."])])
    assert marks(raw) == [(None, None), (EXACT_DUPLICATE, "x")]


def test_all_unique_and_all_empty_shards() -> None:
    out, summary = run(ExactDedup(), [shard(["a", "b"], ["1", "2"]), shard(["c"], ["3"])])
    assert all(m == (None, None) for t in out for m in marks(t))
    assert summary == {"documents": 3, "unique": 3, "duplicates": 0, "duplicate_groups": 0}
    out, summary = run(ExactDedup(), [shard([], []), shard([], [])])
    assert [t.num_rows for t in out] == [0, 0]
    assert summary["documents"] == 0
    no_shards = ExactDedup().fit(pa.table({ID: [], KEY: []}), [])
    assert no_shards.per_shard == [] and no_shards.summary["documents"] == 0


def test_empty_texts_duplicate_the_first_empty_text() -> None:
    (out,), _ = run(ExactDedup(), [shard(["a", "b", "c"], ["", "x", "  \n"])])
    assert marks(out) == [(None, None), (None, None), (EXACT_DUPLICATE, "a")]


def test_nothing_lost_and_state_is_small() -> None:
    rng = np.random.default_rng(0)
    texts = [f"doc {i}" for i in rng.integers(0, 50, size=400)]
    sizes = [0, 130, 70, 0, 200]
    starts = np.cumsum([0, *sizes])
    ids = [f"id{i}" for i in range(400)]
    shards = [shard(ids[a:b], texts[a:b]) for a, b in pairwise(starts)]
    step = ExactDedup()
    mapped = [step(t) for t in shards]
    keys = pa.concat_tables([t.select([ID, KEY]) for t in mapped])
    state = step.fit(keys, sizes)
    out = [step.apply(t, s) for t, s in zip(mapped, state.per_shard, strict=True)]
    reasons = [r for t in out for r in t.column(REASON).to_pylist()]
    survivors = [d for t in out for d in t.column(DUPLICATE_OF).to_pylist()]
    kept = [i for i, r in zip(ids, reasons, strict=True) if r is None]
    assert len(kept) == len(set(texts)) == state.summary["unique"]
    assert sum(r is not None for r in reasons) == state.summary["duplicates"]
    first_seen: dict[str, str] = {}
    for i, text, survivor in zip(ids, texts, survivors, strict=True):
        expected = first_seen.setdefault(text, i)
        assert survivor == (None if expected == i else expected)
    # Only duplicates are stored, and the state pickles to workers.
    assert sum(len(s.rows) for s in state.per_shard) == state.summary["duplicates"]
    assert pickle.loads(pickle.dumps(state.per_shard[2])).num_rows == 70


def test_misaligned_shards_are_errors() -> None:
    step = ExactDedup()
    mapped = step(shard(["a", "b"], ["x", "x"]))
    with pytest.raises(ValueError, match="shard sizes"):
        step.fit(mapped.select([ID, KEY]), [1])
    state = step.fit(mapped.select([ID, KEY]), [2])
    with pytest.raises(ValueError, match="fitted with 2"):
        step.apply(mapped.slice(0, 1), state.per_shard[0])
