"""perplexity: the Kneser-Ney model's maths, language separation, buckets, whole runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from select_helpers import LANGUAGES, make_docs, read_folder, write_jsonl

from assay import Pipeline
from assay.steps.select.perplexity import CCNET_CUTOFFS, NgramLM, Perplexity, buckets, events, train_lm

UDHR = Path(__file__).resolve().parents[2] / "fixtures" / "langid_udhr.jsonl"


def udhr() -> dict[str, list[str]]:
    by_lang: dict[str, list[str]] = {}
    for line in UDHR.read_text().splitlines():
        record = json.loads(line)
        by_lang.setdefault(record["lang"], []).append(record["text"])
    return by_lang


@pytest.mark.parametrize("order", [1, 2, 3])
def test_probabilities_after_a_context_sum_to_one(order: int) -> None:
    model = NgramLM.train(["a b c a b d", "b c c a", "d a b b c"], order)
    # P(x | "a b") for every word, the end of the sentence and one unknown word.
    candidates = ["a b a", "a b b", "a b c", "a b d", "a b", "a b zzz"]
    total = 0.0
    for text in candidates:
        log_probs = model.token_log_probs(events([text], order))
        total += math.exp(log_probs[2])  # the third event: the candidate (or </s>)
    assert total == pytest.approx(1.0, abs=1e-9)


def test_a_model_of_one_language_prefers_held_out_text_of_it() -> None:
    texts = udhr()
    model = train_lm(texts["en"][:7], order=3, validation=0)
    english = model.perplexity(texts["en"][7:])
    for lang in ("de", "fr", "es", "it", "pt", "ru", "zh"):
        assert english.max() < model.perplexity(texts[lang]).min(), lang


def test_synthetic_languages_separate_too() -> None:
    model = train_lm([d["text"] for d in make_docs(1, {"zo": 100}, "x")], order=2, validation=0.1, seed=0)
    same = model.perplexity([d["text"] for d in make_docs(2, {"zo": 20}, "y")])
    other = model.perplexity([d["text"] for d in make_docs(2, {"mi": 20, "ka": 20}, "y")])
    assert same.max() * 10 < other.min()
    held_out = model.info["held_out"]
    assert held_out["texts"] == 10 and held_out["p30"] <= held_out["p60"]


def test_bucket_assignment_matches_the_cutoffs() -> None:
    head, middle = CCNET_CUTOFFS["en"]
    assert (head, middle) == (340, 520)
    ppl = np.array([10, 339.9, 340, 519.9, 520, 1e6, np.nan])
    assert buckets(ppl, head, middle).tolist() == ["head", "head", "middle", "middle", "tail", "tail", "tail"]
    assert CCNET_CUTOFFS["de"] == (370, 590) and len(CCNET_CUTOFFS) == 48


def test_empty_texts_have_no_perplexity() -> None:
    model = NgramLM.train(["a b c"], 2)
    ppl = model.perplexity(["", "a b", "\n\n"])
    assert np.isnan(ppl[0]) and np.isfinite(ppl[1]) and np.isnan(ppl[2])


def test_a_saved_model_reloads_and_scores_identically(tmp_path: Path) -> None:
    model = train_lm(udhr()["de"], order=3)
    model.save(str(tmp_path / "lm"))
    again = NgramLM.load(str(tmp_path / "lm"))
    texts = udhr()["en"][:3] + udhr()["de"][:3]
    np.testing.assert_array_equal(again.perplexity(texts), model.perplexity(texts))
    assert again.info["held_out"] == model.info["held_out"]


@pytest.fixture(scope="module")
def lm_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = str(tmp_path_factory.mktemp("lm") / "ka-lm")
    train_lm([d["text"] for d in make_docs(5, {"ka": 150}, "x")], order=3, seed=0).save(folder)
    return folder


def test_run_buckets_and_rejects_with_scores(lm_folder: str, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", make_docs(6, {"ka": 30, "mi": 10}, "r"))

    def run(out: Path, workers: int, **params: object) -> tuple:
        manifest = Pipeline([Perplexity(model=lm_folder, **params)]).run(
            str(corpus), str(out), workers=workers, shard_mb=0.01).manifest
        assert manifest["accounting"]["balanced"]
        kept = read_folder(out / "data")
        rejected = read_folder(out / "rejected")
        return kept, rejected

    kept, rejected = run(tmp_path / "a", 1)
    kept_b, _ = run(tmp_path / "b", 1)
    assert kept.sort_by("id").equals(kept_b.sort_by("id"))
    # Every other-language document is in the tail, so rejected, with its perplexity.
    rejected_ids = rejected.column("id").to_pylist()
    assert {i for i in rejected_ids if i[1:3] == "mi"} == {f"rmi{i:04d}" for i in range(10)}
    assert set(rejected.column("rejected_by").to_pylist()) == {"perplexity"}
    assert set(rejected.column("reason").to_pylist()) <= {"perplexity_tail"}
    assert rejected.column("perplexity.perplexity").null_count == 0
    assert set(kept.column("perplexity.bucket").to_pylist()) <= {"head", "middle"}
    # The inverse use: a model of unwanted text rejects what it finds familiar.
    kept, rejected = run(tmp_path / "c", 1, keep=["head", "middle", "tail"], min_perplexity=100)
    assert {i[1:3] for i in kept.column("id").to_pylist()} == {"mi"}
    assert set(rejected.column("reason").to_pylist()) == {"perplexity_too_low"}


def test_params_are_checked(lm_folder: str) -> None:
    with pytest.raises(ValidationError, match="CCNet has no cutoffs"):
        Perplexity(model=lm_folder, cutoffs="ccnet", language="xx")
    with pytest.raises(ValidationError, match="both head_max and middle_max"):
        Perplexity(model=lm_folder, head_max=10)
    step = Perplexity(model=lm_folder, cutoffs="ccnet", language="en")
    step.ensure_setup()
    assert step._edges == (340, 520)
    assert set(LANGUAGES) == {"ka", "mi", "zo"}
