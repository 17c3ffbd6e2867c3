"""dsir: the maths against hand computations, and whole runs against a corpus with truth."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from select_helpers import lang_of, read_folder

from assay import Pipeline
from assay.recipe import load_recipe
from assay.steps.select.dsir import (
    NOT_SELECTED,
    SMOOTHING,
    TOO_SHORT,
    Dsir,
    batched_ngram_counts,
    kl_divergence,
    log_importance_ratio,
    long_text_counts,
    resample,
    split_count,
    text_batches,
)
from assay.steps.select.model_files import load_model
from assay.text.wordpunct import hashed_ngram_counts

# --------------------------------------------------------------------- the maths


def test_log_ratio_is_the_smoothed_log_of_normalised_counts() -> None:
    target, raw = np.array([3.0, 1.0, 0.0]), np.array([1.0, 1.0, 2.0])
    expected = np.log(np.array([0.75, 0.25, 0]) + SMOOTHING) - np.log(np.array([0.25, 0.25, 0.5]) + SMOOTHING)
    np.testing.assert_allclose(log_importance_ratio(target, raw), expected)


def test_kl_divergence() -> None:
    p, q = np.array([1.0, 1.0, 0.0]), np.array([1.0, 3.0, 4.0])
    expected = 0.5 * np.log(0.5 / 0.125) + 0.5 * np.log(0.5 / 0.375)
    assert kl_divergence(p, q) == pytest.approx(expected, rel=1e-6)
    assert kl_divergence(p, 2 * p) == pytest.approx(0, abs=1e-12)
    # A bucket the second distribution never saw costs log(q / 1e-8): large but finite.
    unseen = 0.125 * np.log(0.125 / 0.5) + 0.375 * np.log(0.375 / 0.5) + 0.5 * np.log(0.5 / SMOOTHING)
    assert kl_divergence(q, p) == pytest.approx(unseen, rel=1e-6)


def test_split_count_gives_the_remainder_to_the_last_target() -> None:
    assert split_count(10, [0.33, 0.33, 0.34]) == [3, 3, 4]
    assert sum(split_count(7, [0.5, 0.5])) == 7


def test_top_k_keeps_the_largest_eligible_weights_ties_by_order() -> None:
    w = np.array([[1.0], [5.0], [3.0], [5.0], [9.0]])
    eligible = np.array([True, True, True, True, False])
    chosen, target = resample(w, [2], eligible, seed=0, method="top_k")
    assert chosen.tolist() == [False, True, False, True, False]
    assert target.tolist() == [-1, 0, -1, 0, -1]


def test_gumbel_top_k_samples_in_proportion_to_the_weights() -> None:
    weights = np.array([1.0, 2.0, 7.0])
    eligible = np.ones(3, dtype=bool)
    first = Counter()
    for seed in range(4000):
        chosen, _ = resample(np.log(weights)[:, None], [1], eligible, seed)
        first[int(np.flatnonzero(chosen)[0])] += 1
    shares = np.array([first[i] for i in range(3)]) / 4000
    np.testing.assert_allclose(shares, weights / weights.sum(), atol=0.03)


def test_resampling_is_deterministic_for_a_seed_and_without_replacement() -> None:
    rng = np.random.default_rng(5)
    w = rng.normal(size=(500, 2))
    eligible = rng.random(500) > 0.1
    a = resample(w, [40, 60], eligible, seed=3)
    b = resample(w, [40, 60], eligible, seed=3)
    c = resample(w, [40, 60], eligible, seed=4)
    assert np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])
    chosen, target = a
    assert chosen.sum() == 100 and (target == 0).sum() == 40 and (target == 1).sum() == 60
    assert not np.any(chosen & ~eligible)


def test_resampling_never_draws_more_than_is_eligible() -> None:
    chosen, _ = resample(np.zeros((5, 1)), [10], np.array([True, False, True, False, False]), seed=0)
    assert chosen.tolist() == [True, False, True, False, False]


def test_text_batches_cut_by_characters_and_keep_every_text() -> None:
    lengths = np.array([3, 3, 3, 10, 1, 0, 2])
    assert text_batches(lengths) == [(0, 7)]
    assert text_batches(lengths, max_chars=8) == [(0, 2), (2, 3), (3, 4), (4, 7)]
    assert text_batches(lengths, max_chars=3) == [(0, 1), (1, 2), (2, 3), (3, 4), (4, 7)]
    assert text_batches(np.array([100]), max_chars=8) == [(0, 1)]
    assert text_batches(np.zeros(0, dtype=np.int64)) == []


TEXTS = [
    "Der Hund, der Hund!", "", "  ", "ein Satz -- noch einer.", "x" * 40, "a b a b a b", "ü ß",
    # Final sigma depends on what follows; İ lower-cases to two characters; marks and
    # joiners are word characters; NBSP is a space that does not cut a long text.
    "ΟΔΟΣ ΟΔΟΣ\tΣΟΦΟΣ\nİSTANBUL İzmir e\u0301te a\u200db\u00a0c " * 7,
    "\n\n word...word!!  \r\n" + "abc" * 30 + " " + "é" * 25,
]


@pytest.mark.parametrize("n", [1, 2, 3])
def test_batched_and_long_text_counts_are_those_of_one_call(n: int) -> None:
    whole, whole_tokens = hashed_ngram_counts(TEXTS, n, 64)
    for max_chars, window in ((1, 1), (5, 2), (20, 3), (1000, 1 << 16)):
        batches = [TEXTS[a:b] for a, b in text_batches(np.array([len(t) for t in TEXTS]), max_chars)]
        sparse, n_tokens = batched_ngram_counts(batches, n, 64, max_chars)
        for got, want in ((sparse.offsets, whole.offsets), (sparse.buckets, whole.buckets),
                          (sparse.counts, whole.counts), (n_tokens, whole_tokens)):
            assert got.dtype == want.dtype and np.array_equal(got, want)
        for text in TEXTS:
            one, tokens = hashed_ngram_counts([text], n, 64)
            long, long_tokens = long_text_counts(text, n, 64, max_chars, window)
            assert np.array_equal(long.offsets, one.offsets) and np.array_equal(long.buckets, one.buckets)
            assert np.array_equal(long.counts, one.counts) and np.array_equal(long_tokens, tokens)
    empty, tokens = batched_ngram_counts([], n, 64)
    assert empty.num_texts == 0 and len(tokens) == 0


# --------------------------------------------------------------------- whole runs


def run(corpus: dict[str, Path], out: Path, workers: int = 1, **params: object) -> dict:
    params.setdefault("targets", [str(corpus["ka"])])
    result = Pipeline([Dsir(**params)], name="select").run(
        str(corpus["raw"]), str(out), workers=workers, shard_mb=0.05, overwrite=True
    )
    return result.manifest


def test_selects_toward_the_target_and_accounts_for_every_document(select_corpus, tmp_path: Path) -> None:
    manifest = run(select_corpus, tmp_path / "out", fraction=0.1)
    kept = read_folder(tmp_path / "out" / "data")
    rejected = read_folder(tmp_path / "out" / "rejected")
    assert kept.num_rows == 32  # round(0.1 * 320)
    assert Counter(map(lang_of, kept.column("id").to_pylist())) == {"ka": 32}
    # Every unselected document is in rejected/ with the step, the reason and its score.
    assert kept.num_rows + rejected.num_rows == 320
    assert set(rejected.column("rejected_by").to_pylist()) == {"dsir"}
    reasons = dict(zip(rejected.column("id").to_pylist(), rejected.column("reason").to_pylist(), strict=True))
    assert {i for i, r in reasons.items() if r == TOO_SHORT} == {i for i in reasons if i.startswith("s")}
    assert set(reasons.values()) == {NOT_SELECTED, TOO_SHORT}
    assert rejected.column("dsir.log_weight").null_count == 0
    assert kept.column("dsir.log_weight").null_count == 0
    assert "dsir.buckets" not in kept.column_names and "dsir.buckets" not in rejected.column_names
    # The target-language documents outweigh the others.
    weights = dict(zip(rejected.column("id").to_pylist(), rejected.column("dsir.log_weight").to_pylist(),
                       strict=True))
    assert min(kept.column("dsir.log_weight").to_pylist()) > max(w for i, w in weights.items()
                                                                  if lang_of(i) != "ka")
    fit = manifest["steps"][0]["fit"]["summary"]
    assert fit["selected"] == 32 and fit["documents"] == 320 and fit["eligible"] == 300
    target = fit["targets"][0]
    assert target["kl_to_selected"] < target["kl_to_raw"] / 3
    assert fit["kl_reduction"] == pytest.approx(target["kl_to_raw"] - target["kl_to_selected"], abs=1e-5)
    assert manifest["accounting"]["balanced"]


def test_runs_are_deterministic_for_a_seed_across_worker_counts(select_corpus, tmp_path: Path) -> None:
    def selected(out: Path) -> list[str]:
        return sorted(read_folder(out / "data").column("id").to_pylist())

    # The raw corpus as its own target: weights near 0, so the draw depends on the noise.
    params = {"targets": [str(select_corpus["raw"])], "fraction": 0.3}
    run(select_corpus, tmp_path / "a", workers=1, seed=7, **params)
    run(select_corpus, tmp_path / "b", workers=2, seed=7, **params)
    run(select_corpus, tmp_path / "c", workers=1, seed=8, **params)
    assert selected(tmp_path / "a") == selected(tmp_path / "b")
    assert selected(tmp_path / "a") != selected(tmp_path / "c")
    weights = [read_folder(tmp_path / x / "rejected").sort_by("id").column("dsir.log_weight") for x in "ab"]
    assert weights[0].equals(weights[1])


def test_top_k_is_the_highest_weights(select_corpus, tmp_path: Path) -> None:
    run(select_corpus, tmp_path / "out", method="top_k", count=50, min_tokens=0)
    kept = read_folder(tmp_path / "out" / "data").column("dsir.log_weight").to_numpy()
    rejected = read_folder(tmp_path / "out" / "rejected").column("dsir.log_weight").to_numpy()
    assert len(kept) == 50 and kept.min() >= rejected.max()


def test_separate_targets_draw_their_proportions(select_corpus, tmp_path: Path) -> None:
    targets = [{"path": str(select_corpus["ka"]), "proportion": 1, "name": "ka"},
               {"path": str(select_corpus["zo"]), "proportion": 3, "name": "zo"}]
    manifest = run(select_corpus, tmp_path / "out", targets=targets, separate=True, count=40)
    langs = Counter(map(lang_of, read_folder(tmp_path / "out" / "data").column("id").to_pylist()))
    assert langs == {"ka": 10, "zo": 30}
    fit = manifest["steps"][0]["fit"]["summary"]
    assert [t["selected"] for t in fit["targets"]] == [10, 30]
    assert [t["proportion"] for t in fit["targets"]] == [0.25, 0.75]


def test_mixed_targets_draw_from_both(select_corpus, tmp_path: Path) -> None:
    run(select_corpus, tmp_path / "out", targets=[str(select_corpus["ka"]), str(select_corpus["zo"])],
        count=60)
    langs = Counter(map(lang_of, read_folder(tmp_path / "out" / "data").column("id").to_pylist()))
    # Both targets draw; which one draws more depends on document lengths (weights add up
    # over tokens), so only the split between targets and the rest is known.
    assert langs["ka"] >= 5 and langs["zo"] >= 5 and langs["ka"] + langs["zo"] == 60


def test_the_fitted_model_is_saved_with_a_manifest(select_corpus, tmp_path: Path) -> None:
    run(select_corpus, tmp_path / "out")
    arrays, manifest = load_model(str(tmp_path / "out" / "models" / "dsir"), "dsir")
    assert arrays["raw_counts"].shape == (10_000,) and arrays["target_counts"].shape == (1, 10_000)
    assert manifest["params"]["num_buckets"] == 10_000 and manifest["summary"]["selected"] == 32
    np.testing.assert_allclose(arrays["log_ratio"][0],
                               log_importance_ratio(arrays["target_counts"][0], arrays["raw_counts"]))


def test_recipe_targets_are_checked_when_the_recipe_loads(select_corpus, tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: s\ninput:\n  path: {select_corpus['raw']}\noutput: {tmp_path / 'out'}\nsteps:\n"
        f"  - dsir:\n      targets: {tmp_path / 'missing.jsonl'}\n"
    )
    with pytest.raises(ValueError, match="matches no file"):
        load_recipe(recipe)
    recipe.write_text(recipe.read_text().replace(str(tmp_path / "missing.jsonl"), str(select_corpus["ka"])))
    step = load_recipe(recipe).steps[0]
    assert step.params.fraction == 0.1 and step.params.num_buckets == 10_000


def test_params_are_checked(select_corpus) -> None:
    with pytest.raises(ValidationError):
        Dsir(targets=[])
    with pytest.raises(ValidationError, match="proportion for every target"):
        Dsir(targets=[{"path": str(select_corpus["ka"]), "proportion": 1}, str(select_corpus["zo"])])
    with pytest.raises(ValidationError, match="give fraction or count"):
        Dsir(targets=str(select_corpus["ka"]), fraction=None)
