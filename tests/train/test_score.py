"""Proxies asked about single documents (:mod:`assay.train.score`, the ``proxy_score`` step,
``assay detect``): per-document losses that add up to held-out evaluation, Min-K% and
Min-K%++ that tell documents a model trained on many times from unseen ones."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pytest
import torch
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from assay.cli import app
from assay.prepare import prepare
from assay.prepare.reader import Shards
from assay.prepare.recipe import parse_prepare_recipe
from assay.steps import step_class
from assay.train.evaluate import evaluate, heldout_set
from assay.train.score import auc, document_scores, load_run, min_k, position_scores
from assay.train.trainer import TrainConfig, Trainer, TrainError

from .conftest import write_curated

TINY = dict(model="2x64", context=32, batch_tokens=256, lr=3e-3, precision="fp32", log_every=50)


def test_min_k_is_the_mean_of_the_least_likely_share() -> None:
    values = np.array([-5.0, -1.0, -2.0, -3.0, -4.0])
    assert min_k(values, 0.4) == -4.5 and min_k(values, 1.0) == -3.0
    assert min_k(values, 0.01) == -5.0  # at least one token
    assert math.isnan(min_k(np.zeros(0), 0.2))


def test_position_scores_equal_the_definitions() -> None:
    torch.manual_seed(0)
    logits, targets = torch.randn(300, 50) * 4, torch.randint(0, 50, (300,))
    seen, z = position_scores(logits, targets, chunk_values=50 * 64)  # five chunks of rows
    lp = torch.log_softmax(logits.double(), dim=-1)
    p = lp.exp()
    mu = (p * lp).sum(-1)
    sigma = ((p * (lp - mu[:, None]) ** 2).sum(-1)).sqrt()
    expected = lp.gather(-1, targets[:, None]).squeeze(-1)
    assert torch.allclose(seen.double(), expected, atol=1e-5)
    assert torch.allclose(z.double(), (expected - mu) / sigma, atol=1e-4)


def test_auc_is_the_rank_statistic() -> None:
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=200), 1)  # with ties
    labels = rng.random(200) < 0.4
    assert auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert auc(np.array([1.0, 2.0, np.nan]), np.array([False, True, True])) == 1.0
    assert math.isnan(auc(np.array([1.0, 2.0]), np.array([True, True])))


@pytest.fixture(scope="module")
def fortunes(tmp_path_factory: pytest.TempPathFactory, small_docs: list[dict], tokenizer_512: Path) -> Path:
    """Shards of 200 fortunes: set A (110 documents) to train on, held-out set B (90)."""
    folder = tmp_path_factory.mktemp("fortunes")
    docs = [d for d in small_docs if d["source"] == "fortunes"][:200]
    curated = write_curated(folder / "curated", docs)
    return prepare(parse_prepare_recipe(f"""
name: fortunes
output: "{folder / 'shards'}"
tokenizer: {{path: "{tokenizer_512}"}}
mixture: {{sources: {{fortunes: {{path: "{curated}", epochs: 1}}}}}}
packing: {{method: concat, context: 32}}
heldout: 0.45
""")).output


@pytest.fixture(scope="module")
def seen_often(fortunes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A proxy trained for eight passes over set A."""
    main = int(Shards(fortunes).manifest["phases"][0]["tokens"])
    out = tmp_path_factory.mktemp("seen") / "run"
    Trainer(TrainConfig(str(fortunes), out=str(out), tokens=8 * main, **TINY)).train()
    return out


def _texts(shards: Path, phase: str, small_docs: list[dict]) -> list[str]:
    by_id = {d["id"]: d["text"] for d in small_docs}
    return [by_id[i] for i in Shards(shards).documents(phase).column("id").to_pylist()]


def test_document_losses_add_up_to_held_out_evaluation(seen_often: Path, fortunes: Path,
                                                        small_docs: list[dict]) -> None:
    run = load_run(seen_often)
    scores = document_scores(run, _texts(fortunes, "heldout", small_docs), 0.2)
    data = heldout_set(Shards(fortunes), run.context)
    expected = evaluate(run.model, data)
    assert int(scores["tokens"].sum()) == expected["tokens"]
    assert float((scores["loss"] * scores["tokens"]).sum() / scores["tokens"].sum()) == pytest.approx(
        expected["loss"], rel=1e-5)
    assert np.all(scores["min_k"] <= -scores["loss"] + 1e-9)  # the least likely share is below the mean
    empty = document_scores(run, [""], 0.2)
    assert empty["tokens"][0] == 1 and math.isfinite(empty["loss"][0])  # the end-of-document token


def test_min_k_tells_documents_seen_eight_times_from_unseen_ones(
        seen_often: Path, fortunes: Path, small_docs: list[dict], tmp_path: Path) -> None:
    members = _texts(fortunes, "main", small_docs)
    others = _texts(fortunes, "heldout", small_docs)
    candidates = tmp_path / "candidates.jsonl"
    candidates.write_bytes(b"".join(orjson.dumps({"text": t, "member": m}) + b"\n"
                                    for texts, m in ((members, True), (others, False)) for t in texts))
    done = CliRunner().invoke(app, ["detect", str(seen_often), str(candidates), "--json"])
    assert done.exit_code == 0, done.output
    result = orjson.loads(done.stdout[done.stdout.index("{"):])
    assert result["members"] == len(members) and result["non_members"] == len(others)
    for name in ("loss", "min_k", "min_k_plus_plus"):
        assert result["scores"][name]["auc"] > 0.8, result["scores"]
    # Bad candidates: one clear error naming the file and line.
    candidates.write_text('{"text": "a", "member": true}\n{"text": "b", "member": "yes"}\n')
    bad = CliRunner().invoke(app, ["detect", str(seen_often), str(candidates)])
    assert bad.exit_code == 2 and "candidates.jsonl:2: field 'member' must be true/false" in bad.output


def test_the_step_scores_with_every_run_in_order(seen_often: Path, fortunes: Path, small_docs: list[dict],
                                                 tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    Trainer(TrainConfig(str(fortunes), out=str(fresh), tokens=256 * 2, **TINY)).train()
    step = step_class("proxy_score")(runs=[str(seen_often), str(fresh)], k=0.2)
    texts = _texts(fortunes, "heldout", small_docs)[:5]
    table = step(pa.table({"id": [str(i) for i in range(5)], "text": texts}))
    losses = table.column("proxy_score.loss").to_pylist()
    direct = document_scores(load_run(seen_often), texts, 0.2)
    assert [row[0] for row in losses] == pytest.approx(direct["loss"].tolist())
    assert all(len(row) == 2 and row[1] > row[0] for row in losses)  # two steps of training: worse
    with pytest.raises(ValueError, match="not a finished `assay train` run"):
        step_class("proxy_score")(runs=[str(tmp_path / "missing")])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{}")
    with pytest.raises(TrainError, match="not an assay train run"):
        load_run(tmp_path / "broken")
