"""minhash_dedup: signatures, LSH maths, bucket sorting, clusters, and whole runs."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Mapping
from itertools import pairwise
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assay import Pipeline
from assay.recipe import load_recipe
from assay.steps import DocumentStep, Step, StepOutput, register
from assay.steps.dedup.lsh import (
    BucketTask,
    candidate_probability,
    choose_bands,
    connected_components,
    find_collisions,
    implied_threshold,
    merge_runs,
)
from assay.steps.dedup.minhash import NEAR_DUPLICATE, MinHashDedup, MinHashDedupParams, MinHasher, band_keys
from assay.text.hashing import normalized_words, word_hash_reference, word_hashes

# --------------------------------------------------------------------- a corpus with truth

VOCAB = [f"{a}{b}{c}" for a in "bcdfghklmnprstvz" for b in "aeiou" for c in "lmnrst"]


def _text(rng: random.Random, n_words: int) -> str:
    words = [rng.choice(VOCAB) for _ in range(n_words)]
    for i in range(12, n_words, 13):  # sentences, so punctuation has to be folded away
        words[i] += rng.choice([".", ",", ";", "!"])
    return " ".join(words).capitalize()


def _edit(rng: random.Random, text: str, rate: float) -> str:
    words = text.split()
    for i in range(len(words)):
        if rng.random() < rate:
            words[i] = rng.choice(VOCAB)
    return " ".join(words)


def shingles(text: str, n: int = 5) -> set[tuple[str, ...]]:
    words = normalized_words(text)
    if len(words) < n:
        return {tuple(words)}
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def jaccard(a: str, b: str) -> float:
    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y)


def make_corpus(seed: int, n_base: int, prefix: str) -> tuple[list[dict], dict[str, str]]:
    """Unique documents, and copies with 0.2-1% of their words replaced (near duplicates,
    Jaccard ~0.9-0.98) or 50% replaced (not duplicates). Returns the records and, for
    each near-duplicate copy, the id of its original."""
    rng = random.Random(seed)
    docs = [{"id": f"{prefix}{i:03d}", "text": _text(rng, rng.randint(150, 400))}
            for i in range(n_base)]
    truth: dict[str, str] = {}
    copies = []
    for i, doc in enumerate(docs):
        if i % 3 == 0:
            copy_id = f"{prefix}{i:03d}-near"
            copies.append({"id": copy_id, "text": _edit(rng, doc["text"], rng.uniform(0.002, 0.01))})
            truth[copy_id] = doc["id"]
        elif i % 5 == 1:
            copies.append({"id": f"{prefix}{i:03d}-far", "text": _edit(rng, doc["text"], 0.5)})
    mixed = docs + copies
    rng.shuffle(mixed)
    return mixed, truth


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_folder(folder: Path) -> pa.Table:
    files = sorted(folder.glob("*.parquet"))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def run(inputs: Path | str, out: Path, workers: int = 2, **params: object) -> dict:
    result = Pipeline([MinHashDedup(**params)], name="near").run(
        str(inputs), str(out), workers=workers, shard_mb=0.05, overwrite=True
    )
    return result.manifest


def folder_digest(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"
            and "_progress" not in p.parts}


# --------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict], dict[str, str]]:
    records, truth = make_corpus(seed=7, n_base=150, prefix="a")
    path = write_jsonl(tmp_path_factory.mktemp("near") / "corpus.jsonl", records)
    return path, records, truth


def test_finds_the_planted_near_duplicates(corpus, tmp_path: Path) -> None:
    path, records, truth = corpus
    manifest = run(path, tmp_path / "out")
    rejected = read_folder(tmp_path / "out" / "rejected")
    removed = dict(zip(rejected.column("id").to_pylist(), rejected.column("duplicate_of").to_pylist(),
                       strict=True))
    assert set(rejected.column("reason").to_pylist()) == {NEAR_DUPLICATE}
    # A copy or its original may be the one removed (the first in input order survives).
    found = {frozenset((doc, dup)) for doc, dup in removed.items()}
    planted = {frozenset((copy, original)) for copy, original in truth.items()}
    true_positives = len(found & planted)
    assert true_positives / len(found) >= 0.98  # precision
    assert true_positives / len(planted) >= 0.95  # recall
    fit = manifest["steps"][0]["fit"]["summary"]
    assert fit["removed"] == len(removed) and fit["documents"] == len(records)
    assert manifest["accounting"]["balanced"]


def test_duplicate_of_names_a_kept_similar_document(corpus, tmp_path: Path) -> None:
    path, records, _ = corpus
    run(path, tmp_path / "out")
    text = {r["id"]: r["text"] for r in records}
    kept = set(read_folder(tmp_path / "out" / "data").column("id").to_pylist())
    rejected = read_folder(tmp_path / "out" / "rejected").to_pylist()
    assert rejected
    for row in rejected:
        assert row["duplicate_of"] in kept
        assert jaccard(text[row["id"]], text[row["duplicate_of"]]) >= 0.5
        assert isinstance(row["cluster_id"], int)
    # The kept rows carry none of the removal columns or the bulky keys.
    data_columns = pq.read_schema(next((tmp_path / "out" / "data").glob("*.parquet"))).names
    assert "duplicate_of" not in data_columns and "minhash_dedup.signature" not in data_columns


def test_runs_are_deterministic_across_worker_counts(corpus, tmp_path: Path) -> None:
    path, _, _ = corpus
    run(path, tmp_path / "one", workers=1)
    run(path, tmp_path / "two", workers=2)
    run(path, tmp_path / "again", workers=2)
    assert folder_digest(tmp_path / "one") == folder_digest(tmp_path / "two")
    assert folder_digest(tmp_path / "two") == folder_digest(tmp_path / "again")


@register
class QuuxCount(DocumentStep):
    """Counts the word "quux" (a stand-in for a quality score; tests only)."""

    name = "quux_count_for_test"
    kind = "signal"
    signal_types: ClassVar[Mapping[str, pa.DataType]] = {"count": pa.float64()}

    def compute(self, texts: list[str]) -> StepOutput:
        return StepOutput({"count": [float(t.count("quux")) for t in texts]})


def test_survivor_rules(tmp_path: Path) -> None:
    rng = random.Random(3)
    base = _text(rng, 300)
    records = [
        {"id": "c", "text": base},
        {"id": "a", "text": _edit(rng, base, 0.003) + " extra words here"},
        {"id": "b", "text": _edit(rng, base, 0.003) + " quux"},
        {"id": "u", "text": _text(rng, 300)},
    ]
    path = write_jsonl(tmp_path / "c.jsonl", records)

    def survivor(*steps: Step, **params: object) -> str:
        Pipeline([*steps, MinHashDedup(**params)]).run(
            str(path), str(tmp_path / "o"), workers=1, overwrite=True)
        kept = set(read_folder(tmp_path / "o" / "data").column("id").to_pylist())
        assert "u" in kept and len(kept) == 2
        return (kept - {"u"}).pop()

    assert survivor() == "c"
    assert survivor(keep="lowest_id") == "a"
    assert survivor(keep="longest") == "a"
    assert survivor(QuuxCount(), keep="signal", keep_signal="quux_count_for_test.count") == "b"
    with pytest.raises(ValueError, match="needs column"):
        survivor(keep="signal", keep_signal="quux_count_for_test.count")


def test_against_an_earlier_corpus(corpus, tmp_path: Path) -> None:
    path, records, _ = corpus
    old = tmp_path / "old"
    run(path, old, write_index=True)
    before = folder_digest(old)
    kept_old = set(read_folder(old / "data").column("id").to_pylist())
    rng = random.Random(11)
    originals = [r for r in records if r["id"] in kept_old][:20]
    new, new_truth = make_corpus(seed=12, n_base=60, prefix="n")
    copies = [{"id": f"copy-of-{r['id']}", "text": _edit(rng, r["text"], 0.005)} for r in originals]
    new_path = write_jsonl(tmp_path / "new.jsonl", new + copies)
    manifest = run(new_path, tmp_path / "new", against=[str(old)])
    rejected = read_folder(tmp_path / "new" / "rejected").to_pylist()
    by_id = {r["id"]: r["duplicate_of"] for r in rejected}
    for copy, original in zip(copies, originals, strict=True):
        assert by_id.get(copy["id"]) == original["id"]
    found = sum(doc in by_id or by_id.get(orig) == doc for doc, orig in new_truth.items())
    assert found >= 0.95 * len(new_truth)
    fit = manifest["steps"][0]["fit"]["summary"]
    assert fit["removed_as_duplicates_of_earlier_corpus"] == len(copies)
    assert folder_digest(old) == before  # the earlier corpus is untouched


def test_against_a_folder_without_index_fails_at_once(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="holds no minhash_dedup index"):
        MinHashDedup(against=[str(tmp_path)])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"name: r\ninput: {{path: {tmp_path}/*.jsonl}}\noutput: {tmp_path}/o\n"
                      f"steps:\n  - minhash_dedup:\n      against: [{tmp_path}]\n")
    write_jsonl(tmp_path / "c.jsonl", [{"id": "x", "text": "some words"}])
    with pytest.raises(ValueError, match=r"r\.yaml:6: against: .*holds no minhash_dedup index"):
        load_recipe(recipe)


def test_documents_without_words_are_never_clustered(tmp_path: Path) -> None:
    records = [{"id": f"e{i}", "text": t} for i, t in enumerate(["", "...", "!!! ???", "", "—"])]
    path = write_jsonl(tmp_path / "e.jsonl", records)
    manifest = run(path, tmp_path / "o", workers=1)
    assert manifest["totals"]["kept"] == 5


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="exceeds num_perm"):
        MinHashDedupParams(bands=20, rows=8)
    with pytest.raises(ValueError, match="keep_signal"):
        MinHashDedupParams(keep="signal")
    with pytest.raises(ValueError, match="keep_signal"):
        MinHashDedupParams(keep_signal="x.y")


# --------------------------------------------------------------------- signatures


def test_words_are_normalised() -> None:
    assert normalized_words("Hello, WORLD!  it's\tnaïve—ok STRASSE straße v2.10 ١٢٣") == [
        "hello", "world", "it", "s", "naive", "ok", "strasse", "strasse", "v0", "0", "0"]


@given(st.lists(st.text(alphabet=st.sampled_from("aZ é\u0301ß,.\n\x00٣7-İ字"), max_size=30), max_size=4))
@settings(max_examples=300, deadline=None)
def test_batch_word_hashes_match_the_definition(texts: list[str]) -> None:
    hashes, counts = word_hashes(texts)
    expected = [[word_hash_reference(w) for w in normalized_words(t)] for t in texts]
    assert counts.tolist() == [len(e) for e in expected]
    assert hashes.tolist() == [h for e in expected for h in e]


def test_signature_agreement_estimates_jaccard() -> None:
    rng = random.Random(5)
    hasher = MinHasher(num_perm=256)
    errors = []
    for rate in (0.0, 0.02, 0.05, 0.1, 0.2, 0.4):
        a = _text(rng, 400)
        b = _edit(rng, a, rate)
        sig, has_words = hasher.signatures([a, b])
        assert has_words.all()
        errors.append(abs((sig[0] == sig[1]).mean() - jaccard(a, b)))
    # standard error <= sqrt(0.25 / 256) ~ 0.031 for each estimate
    assert max(errors) < 0.11 and np.mean(errors) < 0.05


def test_signatures_do_not_depend_on_batching_or_case() -> None:
    texts = ["The cat sat on the mat today.", "", "a b", "x " * 5000, "Über straße, naïve café."]
    hasher = MinHasher()
    together, words = hasher.signatures(texts)
    alone = np.vstack([hasher.signatures([t])[0] for t in texts])
    assert words.tolist() == [True, False, True, True, True]
    assert (together[words] == alone[words]).all()
    upper, _ = hasher.signatures([t.upper() for t in texts])
    assert (upper[words] == together[words]).all()
    other_seed, _ = MinHasher(seed=2).signatures(texts[:1])
    assert not (other_seed[0] == together[0]).all()


def test_band_keys_equal_exactly_when_bands_equal() -> None:
    rng = np.random.default_rng(0)
    sig = rng.integers(0, 2**32, (50, 112), dtype=np.uint64).astype(np.uint32)
    sig[1, :8] = sig[0, :8]  # documents 0 and 1 share band 0 only
    keys = band_keys(sig, 14, 8)
    assert keys.shape == (50, 14)
    assert keys[0, 0] == keys[1, 0] and (keys[0, 1:] != keys[1, 1:]).all()
    assert len(np.unique(keys)) == 50 * 14 - 1


# --------------------------------------------------------------------- LSH maths


def test_banding_threshold_and_choice() -> None:
    assert implied_threshold(14, 8) == pytest.approx(0.719, abs=1e-3)
    p = candidate_probability(np.array([0.5, 0.7, 0.8, 0.9]), 14, 8)
    assert np.all(np.diff(p) > 0) and p[0] < 0.1 and p[-1] > 0.99
    for target in (0.5, 0.7, 0.85):
        bands, rows = choose_bands(target, num_perm=128)
        assert bands * rows <= 128
        assert abs(implied_threshold(bands, rows) - target) < 0.12
    # Weighting false negatives more buys recall: a lower curve midpoint.
    b_fn, r_fn = choose_bands(0.7, 128, fp_weight=0.1, fn_weight=0.9)
    b_fp, r_fp = choose_bands(0.7, 128, fp_weight=0.9, fn_weight=0.1)
    assert implied_threshold(b_fn, r_fn) < implied_threshold(b_fp, r_fp)
    with pytest.raises(ValueError):
        choose_bands(1.5)


def _reference_components(edges: list[tuple[int, int]]) -> dict[int, int]:
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    for u, v in edges:
        ru, rv = find(u), find(v)
        parent[max(ru, rv)] = min(ru, rv)
    return {x: find(x) for x in parent}


@given(st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), max_size=60))
@settings(max_examples=200, deadline=None)
def test_connected_components_match_union_find(edges: list[tuple[int, int]]) -> None:
    array = np.array(edges, dtype=np.uint64).T.reshape(2, -1)
    nodes, roots = connected_components(array)
    assert dict(zip(nodes.tolist(), roots.tolist(), strict=True)) == _reference_components(edges)


@given(st.lists(st.lists(st.integers(0, 30), max_size=40), min_size=1, max_size=5),
       st.integers(1, 7))
@settings(max_examples=150, deadline=None)
def test_merge_runs_never_splits_equal_keys(tmp_path_factory, runs: list[list[int]], block: int) -> None:
    folder = tmp_path_factory.mktemp("runs")
    paths = []
    gid = 0
    for k, keys in enumerate(runs):
        keys = sorted(keys)
        gids = list(range(gid, gid + len(keys)))
        gid += len(keys)
        path = folder / f"r{k}.npy"
        np.save(path, np.array([keys, gids], dtype=np.uint64).reshape(2, -1))
        paths.append(str(path))
    batches = list(merge_runs(paths, block))
    keys = np.concatenate([b[0] for b in batches]) if batches else np.zeros(0)
    assert keys.tolist() == sorted(k for r in runs for k in r)
    for earlier, later in pairwise(batches):
        assert earlier[0][-1] < later[0][0]


def test_spilled_buckets_equal_in_memory_buckets(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    shards = []
    for k in range(4):
        keys = rng.integers(0, 50, (100, 3), dtype=np.uint64)  # many collisions
        column = pa.FixedSizeListArray.from_arrays(pa.array(keys.ravel()), 3,
                                                   mask=pa.array(rng.random(100) < 0.1))
        path = tmp_path / f"s{k}.parquet"
        pq.write_table(pa.table({"k": column}), path)
        shards.append(str(path))

    def edges(memory: int, folder: str) -> np.ndarray:
        (tmp_path / folder).mkdir()
        task = BucketTask(shards=tuple(shards), offsets=(0, 100, 200, 300), column="k",
                          bands=(0, 1, 2), scratch=str(tmp_path / folder), memory_bytes=memory)
        result = find_collisions(task)
        assert (result.runs > 0) == (memory < 10_000)
        found = np.load(result.edges)
        return found[:, np.lexsort(found[::-1])]

    assert np.array_equal(edges(10**9, "memory"), edges(48 * 64, "spilled"))


def test_against_a_chain_of_indexes(tmp_path: Path) -> None:
    rng = random.Random(21)
    first = [{"id": f"f{i}", "text": _text(rng, 200)} for i in range(4)]
    second = [{"id": "s-copy", "text": _edit(rng, first[0]["text"], 0.003)},
              {"id": "s-new", "text": _text(rng, 200)}]
    third = [{"id": "t-copy-of-removed", "text": _edit(rng, second[0]["text"], 0.003)},
             {"id": "t-copy-of-kept", "text": _edit(rng, second[1]["text"], 0.003)}]
    run(write_jsonl(tmp_path / "1.jsonl", first), tmp_path / "o1", workers=1, write_index=True)
    run(write_jsonl(tmp_path / "2.jsonl", second), tmp_path / "o2", workers=1, write_index=True,
        against=[str(tmp_path / "o1")])
    removed = read_folder(tmp_path / "o2" / "rejected").to_pylist()
    assert [(r["id"], r["duplicate_of"]) for r in removed] == [("s-copy", "f0")]
    # Against both earlier corpora: each copy points at the kept document it resembles.
    run(write_jsonl(tmp_path / "3.jsonl", third), tmp_path / "o3", workers=1,
        against=[str(tmp_path / "o2"), str(tmp_path / "o1")])
    removed = {r["id"]: r["duplicate_of"] for r in read_folder(tmp_path / "o3" / "rejected").to_pylist()}
    assert removed == {"t-copy-of-removed": "f0", "t-copy-of-kept": "s-new"}
    # Against the second only, the copy of a document it removed has no kept original there.
    run(write_jsonl(tmp_path / "3.jsonl", third), tmp_path / "o4", workers=1,
        against=[str(tmp_path / "o2")])
    removed = {r["id"]: r["duplicate_of"] for r in read_folder(tmp_path / "o4" / "rejected").to_pylist()}
    assert removed == {"t-copy-of-kept": "s-new"}


def test_a_lower_threshold_finds_copies_with_more_edits(tmp_path: Path) -> None:
    """Copies with 8% of their words replaced (5-gram Jaccard ~0.5) escape FineWeb's 14x8
    curve; `threshold: 0.5` with 3-gram shingles (Jaccard ~0.65) finds them, and still
    leaves the half-rewritten documents alone."""
    rng = random.Random(3)
    docs = [{"id": f"b{i:03d}", "text": _text(rng, 300)} for i in range(60)]
    copies = [{"id": f"b{i:03d}-edited", "text": _edit(rng, d["text"], 0.08)}
              for i, d in enumerate(docs[:40])]
    far = [{"id": f"b{i:03d}-far", "text": _edit(rng, d["text"], 0.5)} for i, d in enumerate(docs[40:], 40)]
    path = write_jsonl(tmp_path / "edited.jsonl", docs + copies + far)
    recall = {}
    for name, params in (("default", {}), ("threshold", {"ngram": 3, "threshold": 0.5})):
        manifest = run(path, tmp_path / name, **params)
        removed = set(read_folder(tmp_path / name / "rejected").column("id").to_pylist())
        assert removed <= {c["id"] for c in copies}  # no original, no far copy
        recall[name] = len(removed) / len(copies)
        bands, rows = choose_bands(0.5, 112) if params else (14, 8)
        fit = manifest["steps"][0]["fit"]["summary"]
        assert fit["implied_threshold"] == round(implied_threshold(bands, rows), 4)
    assert recall["default"] < 0.3 and recall["threshold"] > 0.8


def test_threshold_chooses_the_bands_and_rows() -> None:
    params = MinHashDedup(threshold=0.6).params
    assert (params.bands, params.rows) == choose_bands(0.6, 112) == (16, 7)
    assert MinHashDedup(**params.model_dump()).params == params  # a resolved recipe runs again
    with pytest.raises(ValueError, match="give threshold or bands"):
        MinHashDedup(threshold=0.6, bands=14)
