"""A rewriting step's changes in the manifest: how many kept documents it rewrote, and a
sample of them that does not depend on how the input was split into shards and workers."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

from assay import Pipeline
from assay.engine.changes import SAMPLES, merge_changes, sample_key, text_change
from assay.steps.filters.c4 import C4Quality


def _corpus(path: Path) -> Path:
    docs = []
    for i in range(240):
        lines = [f"Sentence {j} of document {i} is a line that ends well." for j in range(6)]
        if i % 3 == 0:  # a line C4 drops: too few words
            lines.insert(2, "Click here")
        docs.append({"id": f"d{i:03d}", "text": "\n".join(lines), "source": "s"})
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def test_the_sample_of_changes_is_the_same_whatever_the_sharding(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "docs.jsonl")
    steps, shards = {}, {}
    for name, workers, shard_mb in (("one", 1, 64.0), ("many", 2, 0.005)):
        result = Pipeline([C4Quality()]).run(str(corpus), str(tmp_path / name), workers=workers,
                                             shard_mb=shard_mb)
        steps[name], shards[name] = result.manifest["steps"][0], result.manifest["executor"]["shards"]
    assert shards["one"] == 1 and shards["many"] > 4
    one, many = steps["one"], steps["many"]
    assert one["changed"] == many["changed"] == 80  # the documents with a short line
    assert one["changes"] == many["changes"] and len(one["changes"]) == SAMPLES
    # The smallest keys among the changed documents, each with its real line diff.
    changed = sorted(f"d{i:03d}" for i in range(0, 240, 3))
    assert [c["id"] for c in one["changes"]] == sorted(changed, key=sample_key)[:SAMPLES]
    assert all(c["diff"].count("\n-Click here") == 1 and "\n+" not in c["diff"] for c in one["changes"])


def test_a_change_without_a_common_line_shows_both_texts() -> None:
    html = "<html><body><p>Hello there</p></body></html>"
    change = text_change("page", html, "Hello there")
    assert change["before"] == html and change["after"] == "Hello there" and "diff" not in change
    edited = text_change("doc", "a\nb\nc", "a\nB\nc")
    expected = list(difflib.unified_diff(["a", "b", "c"], ["a", "B", "c"], lineterm="", n=1))[2:]
    assert edited["diff"] == "\n".join(expected)


def test_merging_keeps_the_smallest_keys() -> None:
    changes = [text_change(f"id{i}", "a\nb", "a\nc") for i in range(10)]
    merged = merge_changes(changes[:5], changes[5:])
    assert [c["key"] for c in merged] == sorted(c["key"] for c in changes)[:SAMPLES]
