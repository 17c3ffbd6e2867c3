"""Counting repeated ids over shards: hashes find candidates, the ids confirm them."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from assay.engine.ids import HASH, count_duplicates, describe_duplicates, shard_ids


def _write(path: Path, table: pa.Table) -> str:
    pq.write_table(table, path)
    return str(path)


def test_repeats_are_counted_across_and_within_shards(tmp_path: Path) -> None:
    files = [_write(tmp_path / f"{i}.parquet", shard_ids(pa.table({"id": ids})))
             for i, ids in enumerate([["a", "b", "c"], ["c", "d", "a"], ["a", "e", "e"]])]
    counted = count_duplicates(files, lambda i: f"file{i}.jsonl", "keep")
    assert counted["documents"] == 9
    assert counted["duplicates"] == 4  # a twice more, c once more, e once more
    assert counted["repeated_ids"] == 3
    assert counted["examples"][0] == {"id": "a", "files": ["file0.jsonl", "file1.jsonl", "file2.jsonl"],
                                      "documents": 3}
    assert "4 document(s) share an id" in describe_duplicates(counted)


def test_a_hash_collision_is_not_a_duplicate(tmp_path: Path) -> None:
    forged = pa.table({"id": ["x", "y"], HASH: pa.array([7, 7], pa.uint64())})
    counted = count_duplicates([_write(tmp_path / "f.parquet", forged)], str, "keep")
    assert counted["duplicates"] == 0 and describe_duplicates(counted) is None


def test_no_shards_no_repeats() -> None:
    assert count_duplicates([], str, "fail")["duplicates"] == 0
