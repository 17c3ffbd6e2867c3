"""PreSelect (Shum et al. 2025): predictive strength ranks documents by how well a family's
bits per byte on them order the models as their target scores do; on a family whose target
depends on one source, the classifier trained on it finds that source."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.mix.search import load_mix_spec, run_search
from assay.steps.select.classifier import QualityClassifier
from assay.steps.select.model_files import read_manifest
from assay.steps.select.preselect import PreselectError, predictive_strength, read_family, split_by_strength


def test_strength_is_the_share_of_pairs_ranked_as_the_scores() -> None:
    scores = np.array([3.0, 2.0, 1.0])  # losses: model 2 is the best, model 0 the worst
    bpb = np.array([[5.0, 4.0, 3.0],    # ranks the models as the scores do: 1
                    [3.0, 4.0, 5.0],    # the opposite: 0
                    [4.0, 4.0, 3.0],    # one tie (half), two agreements of three pairs
                    [4.0, np.nan, 3.0]])
    strength = predictive_strength(bpb, scores)
    assert strength[:3].tolist() == pytest.approx([1.0, 0.0, 2.5 / 3]) and math.isnan(strength[3])
    assert predictive_strength(bpb[:2], -scores, higher_is_better=True).tolist() == [1.0, 0.0]
    with pytest.raises(PreselectError, match="the same score"):
        predictive_strength(bpb, np.ones(3))
    top, bottom = split_by_strength(np.array([0.5, 0.9, 0.1, np.nan, 0.7, 0.3]), 0.4)
    assert top.tolist() == [1, 4] and bottom.tolist() == [2, 5]


def test_a_family_is_read_from_either_csv(tmp_path: Path) -> None:
    (tmp_path / "family.csv").write_text("run,score\na,1.5\nb,2\n/abs/c,3\n")
    assert read_family(tmp_path / "family.csv") == [(str(tmp_path / "a"), 1.5), (str(tmp_path / "b"), 2.0),
                                                    ("/abs/c", 3.0)]
    (tmp_path / "runs.csv").write_text("mixture,seed,weight:a,target\n0,0,1,4.5\n1,0,1,4.0\n2,1,1,3.9\n")
    assert read_family(tmp_path / "runs.csv")[2] == (str(tmp_path / "runs" / "2-s1"), 3.9)
    (tmp_path / "bad.csv").write_text("run,score\na,1\nb,oops\nc,2\n")
    with pytest.raises(PreselectError, match=r"bad\.csv:3: score 'oops'"):
        read_family(tmp_path / "bad.csv")
    (tmp_path / "two.csv").write_text("run,score\na,1\nb,2\n")
    with pytest.raises(PreselectError, match="at least 3"):
        read_family(tmp_path / "two.csv")


def test_preselect_finds_the_source_the_target_depends_on(tmp_path: Path, three_sources: Path) -> None:
    # A family of 6 proxies on mixtures of the three sources; the target is the held-out loss
    # on the python documentation, so a proxy is better the more python it saw.
    spec = tmp_path / "family.yaml"
    spec.write_text(f"""
name: family
output: "{tmp_path / 'family'}"
domains:
  fortunes: {{path: "{three_sources}", select: [fortunes]}}
  python: {{path: "{three_sources}", select: [python3.11-doc]}}
  udhr: {{path: "{three_sources}", select: ["udhr2 (nltk_data)"]}}
tokenizer: {{train: {{vocab_size: 512}}}}
heldout: {{fraction: 0.1, max_documents: 4}}
target: {{domains: [python]}}
proxy: {{model: 2x32, tokens: 8192, context: 32, batch_tokens: 256, lr: 0.01}}
mixtures: 6
max_epochs: 16
""")
    runs = run_search(load_mix_spec(spec))
    model = tmp_path / "preselect"
    parquet = str(three_sources / "data" / "part-00000-00000.parquet")
    done = CliRunner().invoke(app, ["select", "preselect", parquet, "--family", str(runs),
                                    "--out", str(model), "--share", "0.2"])
    assert done.exit_code == 0, done.output
    table = pq.read_table(three_sources / "data")
    texts, sources = table.column("text").to_pylist(), table.column("source").to_pylist()
    assert f"predictive strength of {len(texts)} documents under 6 proxies" in done.output
    scores = QualityClassifier.load(str(model)).score(texts)
    top = np.argsort(-scores, kind="stable")[: len(texts) // 5]
    python = np.array([s == "python3.11-doc" for s in sources])
    # Random selection keeps python's share; the classifier's top fifth holds far more of it.
    assert python[top].mean() > 2 * python.mean()
    record = read_manifest(str(model))
    assert record["kind"] == "quality_classifier" and record["preselect"]["models"] == 6
