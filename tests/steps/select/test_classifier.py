"""quality_classifier: training, metrics, save/reload, and whole runs."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from select_helpers import read_folder, write_jsonl

from assay import Pipeline
from assay.steps.select.classifier import (
    LOW_SCORE,
    QualityClassifier,
    QualityClassifierStep,
    binary_metrics,
    held_out_rows,
    roc_auc,
    top_share_threshold,
    train_classifier,
    train_regressor,
)

SHARED = [f"w{i}" for i in range(300)]
GOOD = ["because", "therefore", "explains", "evidence", "example", "shows"]
BAD = ["click", "buy", "now", "free", "winner", "subscribe"]


def labelled_docs(seed: int, n: int) -> tuple[list[str], list[str]]:
    """Documents of shared words; positives carry ~5% explanation words, negatives ~5%
    advertising words, with the other class's words as noise at ~0.5%."""
    rng = random.Random(seed)

    def doc(own: list[str], other: list[str]) -> str:
        words = []
        for _ in range(rng.randint(40, 120)):
            r = rng.random()
            pool = own if r < 0.05 else other if r < 0.055 else SHARED
            words.append(rng.choice(pool))
        return " ".join(words)

    return [doc(GOOD, BAD) for _ in range(n)], [doc(BAD, GOOD) for _ in range(n)]


@pytest.fixture(scope="module")
def model() -> QualityClassifier:
    positives, negatives = labelled_docs(1, 300)
    return train_classifier(positives, negatives, num_buckets=2**16, validation=0.2, seed=0)


def test_held_out_auc_is_high(model: QualityClassifier) -> None:
    held_out = model.info["held_out"]
    assert held_out["documents"] == 120
    assert held_out["auc"] > 0.9
    assert held_out["precision"] > 0.8 and held_out["recall"] > 0.8
    # And on documents drawn afresh.
    positives, negatives = labelled_docs(2, 200)
    scores = model.score(positives + negatives)
    assert roc_auc(scores, np.r_[np.ones(200), np.zeros(200)]) > 0.9


def test_a_saved_model_reloads_and_scores_identically(model: QualityClassifier, tmp_path: Path) -> None:
    model.save(str(tmp_path / "clf"))
    again = QualityClassifier.load(str(tmp_path / "clf"))
    texts = [*labelled_docs(3, 20)[0], "", "because evidence"]
    twice = QualityClassifier.load(str(tmp_path / "clf"))
    np.testing.assert_array_equal(again.score(texts), twice.score(texts))
    np.testing.assert_allclose(again.score(texts), model.score(texts), rtol=1e-5)
    assert again.info["held_out"] == model.info["held_out"]


def test_training_is_deterministic_for_a_seed() -> None:
    positives, negatives = labelled_docs(4, 60)
    a = train_classifier(positives, negatives, num_buckets=2**12, seed=1)
    b = train_classifier(positives, negatives, num_buckets=2**12, seed=1)
    np.testing.assert_array_equal(a.weights, b.weights)


def test_auc_and_metrics_by_hand() -> None:
    scores, labels = np.array([0.9, 0.8, 0.3, 0.3, 0.1]), np.array([1, 0, 1, 0, 0])
    # Positive pairs won: (0.9 > all 3), (0.3 vs 0.8 lose, vs 0.3 tie, vs 0.1 win) = 3 + 1.5 of 6.
    assert roc_auc(scores, labels) == pytest.approx(4.5 / 6)
    metrics = binary_metrics(scores, labels)
    assert metrics["precision"] == 0.5 and metrics["recall"] == 0.5 and metrics["accuracy"] == 0.6


def test_top_share_keeps_the_highest_ties_by_order() -> None:
    keep, threshold = top_share_threshold(np.array([0.2, 0.9, 0.5, 0.5, 0.1]), 0.6)
    assert keep.tolist() == [False, True, True, True, False] and threshold == 0.5
    keep, _ = top_share_threshold(np.array([0.5, 0.5, 0.5]), 0.34)
    assert keep.tolist() == [True, False, False]


def test_run_keeps_the_top_share_and_rejects_the_rest_with_scores(model: QualityClassifier,
                                                                   tmp_path: Path) -> None:
    model.save(str(tmp_path / "clf"))
    positives, negatives = labelled_docs(5, 50)
    records = [{"id": f"p{i:03d}", "text": t} for i, t in enumerate(positives)]
    records += [{"id": f"n{i:03d}", "text": t} for i, t in enumerate(negatives)]
    random.Random(0).shuffle(records)
    corpus = write_jsonl(tmp_path / "corpus.jsonl", records)

    def run(out: Path, workers: int) -> list[str]:
        step = QualityClassifierStep(model=str(tmp_path / "clf"), top_fraction=0.3)
        manifest = Pipeline([step]).run(str(corpus), str(out), workers=workers, shard_mb=0.02).manifest
        assert manifest["accounting"]["balanced"]
        assert manifest["steps"][0]["fit"]["summary"]["kept"] == 30
        return sorted(read_folder(out / "data").column("id").to_pylist())

    kept = run(tmp_path / "a", 1)
    assert kept == run(tmp_path / "b", 1)  # (dsir's tests cover worker counts)
    assert sum(i.startswith("p") for i in kept) >= 28
    rejected = read_folder(tmp_path / "a" / "rejected")
    assert rejected.num_rows == 70
    assert set(rejected.column("rejected_by").to_pylist()) == {"quality_classifier"}
    assert set(rejected.column("reason").to_pylist()) == {LOW_SCORE}
    kept_scores = read_folder(tmp_path / "a" / "data").column("quality_classifier.score").to_numpy()
    assert kept_scores.min() >= rejected.column("quality_classifier.score").to_numpy().max()


def test_params_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a selector model"):
        QualityClassifierStep(model=str(tmp_path))


def graded_docs(seed: int, n: int) -> tuple[list[str], list[float]]:
    """Documents whose score (0-5) is how many of the GOOD words' share they carry."""
    rng = random.Random(seed)
    texts, scores = [], []
    for _ in range(n):
        score = rng.randint(0, 5)
        words = [rng.choice(GOOD) if rng.random() < 0.03 * score else rng.choice(SHARED)
                 for _ in range(rng.randint(60, 120))]
        texts.append(" ".join(words))
        scores.append(float(score))
    return texts, scores


def test_a_regression_learns_a_graded_target_and_selects_by_threshold(tmp_path: Path) -> None:
    """FineWeb-Edu's shape: a regression on 0-5 scores, then a threshold of 3."""
    texts, scores = graded_docs(3, 600)
    model = train_regressor(texts, scores, num_buckets=2**16, validation=0.2, seed=0, threshold=3)
    held_out = model.info["held_out"]
    assert held_out["documents"] == 120 and held_out["spearman"] > 0.8 and held_out["f1"] > 0.8
    assert model.info["training"]["target_mean"] == pytest.approx(np.mean(
        [s for s, h in zip(scores, held_out_rows(600, 0.2, 0), strict=True) if not h]), abs=1e-6)
    model.save(str(tmp_path / "edu"))
    again = QualityClassifier.load(str(tmp_path / "edu"))
    assert again.target == "regression"
    assert np.allclose(again.score(texts[:20]), model.score(texts[:20]), atol=1e-4)

    new_texts, new_scores = graded_docs(4, 200)
    records = [{"id": f"d{i:03d}", "text": t} for i, t in enumerate(new_texts)]
    corpus = write_jsonl(tmp_path / "corpus.jsonl", records)
    step = QualityClassifierStep(model=str(tmp_path / "edu"), threshold=3)
    Pipeline([step]).run(str(corpus), str(tmp_path / "out"), workers=1)
    kept = read_folder(tmp_path / "out" / "data")
    assert kept.column("quality_classifier.score").to_numpy().min() >= 3
    truth = {f"d{i:03d}": s for i, s in enumerate(new_scores)}
    kept_truth = [truth[i] for i in kept.column("id").to_pylist()]
    assert np.mean(kept_truth) > 3.5 > np.mean(new_scores)  # it keeps the high scorers


def test_a_binary_model_takes_no_threshold_above_one(model: QualityClassifier, tmp_path: Path) -> None:
    model.save(str(tmp_path / "clf"))
    with pytest.raises(ValidationError, match="a probability"):
        QualityClassifierStep(model=str(tmp_path / "clf"), threshold=3)
