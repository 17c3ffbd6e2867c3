"""``assay compare`` (paired intervals; two identical recipes give intervals around zero),
``assay sweep`` (runs.csv for ``assay fit``) and ``assay train`` from the command line."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.scaling.runs import read_runs
from assay.train.compare import paired_difference, seeds_needed, summary, verdict

from .conftest import prepare_shards

runner = CliRunner()
TINY = ["--model", "2x32", "--context", "32", "--lr", "0.01", "--batch-tokens", "256", "--precision", "fp32",
        "--threads", "1"]


def test_paired_interval_covers_zero_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(4000):
        a = rng.normal(3.0, 0.1, size=3)
        b = a + rng.normal(0.0, 0.05, size=3)  # same recipe: only noise between them
        d = paired_difference(a, b)
        hits += d["low"] <= 0 <= d["high"]
    assert 0.94 < hits / 4000 < 0.96
    one = summary([2.5])
    assert one["std"] is None and one["low"] is None
    assert paired_difference([1.0], [1.5])["significant"] is None
    assert paired_difference([1.0, 1.1, 1.2], [1.5, 1.6, 1.7])["significant"] is True
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0])


def test_the_verdict_says_whether_the_seeds_tell_the_recipes_apart() -> None:
    better = verdict("B", "A", paired_difference([3.0, 3.1, 3.2], [2.9, 3.0, 3.1]))
    assert better.startswith("B has lower (better) held-out loss than A: -0.1000 nats/token (95% interval")
    unclear = verdict("B", "A", paired_difference([3.0, 3.1, 3.2], [3.05, 3.05, 3.3]))
    assert "cannot be told apart with 3 seeds" in unclear and "which includes zero" in unclear
    assert "needs about" in unclear
    assert "run at least 3 seeds" in verdict("B", "A", paired_difference([3.0], [2.9]))
    on_source = verdict("B", "A", paired_difference([3.0, 3.1, 3.2], [2.9, 3.0, 3.1]), metric="bpb:guide")
    assert on_source.startswith("B has lower (better) held-out bits per byte on guide than A: "
                                "-0.1000 bits/byte")
    # A difference of one deviation needs 7 seeds (t(6) 0.1 / sqrt(7) < 0.1); of a tenth of one, ~400.
    assert seeds_needed(0.1, 0.1) == 7 and 380 < seeds_needed(0.01, 0.1) < 420


def test_compare_two_identical_recipes(tmp_path: Path, shards: Path, curated_small: Path,
                                       tokenizer_512: Path) -> None:
    twin = prepare_shards(tmp_path / "twin", curated_small, tokenizer_512, method="concat")
    out, plot = tmp_path / "cmp", tmp_path / "curves.png"
    r = runner.invoke(app, ["compare", str(shards), str(twin), "--seeds", "3", "--tokens", "2560",
                            "--out", str(out), "--plot", str(plot), "--json", "--eval-documents", "20",
                            "--log-every", "5", *TINY])
    assert r.exit_code == 0, r.output
    result = orjson.loads(r.stdout[r.stdout.index("{"):])
    assert [x["name"] for x in result["recipes"]] == ["small", "small#2"]
    assert result["eval"]["documents"] == 20 and result["eval"]["left_out"] == 0
    assert len(result["runs"]) == 6 and result["metrics"][:2] == ["loss", "bpb"]
    assert "bpb:fortunes" in result["metrics"]
    for metric, d in result["differences"]["small#2"].items():
        assert d["low"] <= 0.0 <= d["high"], metric
        assert d["significant"] is False
    assert result["verdicts"] == ["small#2 and small give the same held-out loss (95% interval "
                                  "+0.0000 to +0.0000, 3 seeds)"]
    assert result["verdict_metric"] == "loss"
    s = result["summaries"]["small"]["loss"]
    assert s["n"] == 3 and s["std"] > 0 and s["low"] < s["mean"] < s["high"]  # seeds differ
    assert plot.stat().st_size > 1000 and (out / "compare.json").is_file()
    assert (out / "small_2" / "seed-2" / "result.json").is_file()


def test_compare_scores_no_model_on_its_training_data(tmp_path: Path, shards: Path, curated_small: Path,
                                                      tokenizer_512: Path) -> None:
    other = prepare_shards(tmp_path / "other", curated_small, tokenizer_512, method="concat", seed=1)
    r = runner.invoke(app, ["compare", str(shards), str(other), "--seeds", "1", "--tokens", "512",
                            "--out", str(tmp_path / "cmp"), "--json", *TINY])
    assert r.exit_code == 0, r.output
    ev = orjson.loads(r.stdout[r.stdout.index("{"):])["eval"]
    # The other recipe's seed drew another held-out split: it trains on most of this one's.
    assert ev["left_out"] > 0 and ev["documents"] == 78 - ev["left_out"]
    bare = prepare_shards(tmp_path / "bare", curated_small, tokenizer_512, method="concat", heldout=0.0)
    r = runner.invoke(app, ["compare", str(bare), str(shards), "--seeds", "1", "--out", str(tmp_path / "x"),
                            *TINY])
    assert r.exit_code == 2 and "no held-out split" in r.output
    # A verdict on a source the held-out set does not have is refused before any training.
    r = runner.invoke(app, ["compare", str(shards), str(other), "--seeds", "1", "--metric", "bpb:books",
                            "--out", str(tmp_path / "y"), *TINY])
    assert r.exit_code == 2 and "no metric 'bpb:books' to judge by" in r.output
    assert not (tmp_path / "y" / "compare.json").exists() and not list((tmp_path / "y").glob("*/seed-*"))


def test_sweep_writes_runs_for_assay_fit_and_skips_finished_points(tmp_path: Path, shards: Path) -> None:
    out = tmp_path / "sweep"
    args = ["sweep", str(shards), "--sizes", "2x16,2x32", "--tokens", "1k", "--tokens", "2k",
            "--out", str(out), "--context", "32", "--precision", "fp32", "--eval-documents", "10",
            "--threads", "1"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "assay fit" in r.output
    runs = read_runs(out / "runs.csv")
    assert len(runs) == 4 and set(runs.groups.tolist()) == {"small"}
    # Non-embedding N: 2 layers of 12 d^2 + two norms, and the final norm.
    assert sorted(set(runs.columns["N"].tolist())) == [2 * (12 * d * d + 2 * d) + d for d in (16, 32)]
    assert set(runs.columns["U"].tolist()) == {372_412.0}  # unique training tokens, held-out excluded
    assert np.all(runs.columns["loss"] > 0)
    with open(out / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["planned_tokens"] for row in rows} == {"1000", "2000"}
    stamp = (out / "runs.csv").stat().st_mtime_ns
    r = runner.invoke(app, args)
    assert r.exit_code == 0 and (out / "runs.csv").stat().st_mtime_ns == stamp  # nothing retrained


def test_train_command(tmp_path: Path, shards: Path) -> None:
    out = tmp_path / "run"
    r = runner.invoke(app, ["train", str(shards), "--out", str(out), "--tokens", "1280", "--json",
                            "--eval-documents", "5", *TINY])
    assert r.exit_code == 0, r.output
    result = orjson.loads(r.stdout[r.stdout.index("{"):])
    assert result["finished"] and result["tokens"] == 1280 and result["plan"]["lr"] == 0.01
    written = {p.name for p in out.iterdir()}
    assert {"config.json", "log.jsonl", "checkpoint.safetensors", "result.json"} <= written
    r = runner.invoke(app, ["train", str(shards), "--out", str(out), "--tokens", "1280", "--resume", *TINY])
    assert r.exit_code == 0, r.output  # already finished: nothing to do, the result again
    r = runner.invoke(app, ["train", str(shards), "--schedule", "step", *TINY])
    assert r.exit_code != 0 and "one of cosine" in r.output
    r = runner.invoke(app, ["train", str(tmp_path / "nothing"), *TINY])
    assert r.exit_code == 2 and "not found" in r.output


def test_train_plots_the_held_out_loss_per_source_of_a_continuation(tmp_path: Path, shards: Path) -> None:
    first, plot, tokens = tmp_path / "first", tmp_path / "sources.png", ["--tokens", "2560"]
    assert runner.invoke(app, ["train", str(shards), *tokens, "--out", str(first), *TINY]).exit_code == 0
    r = runner.invoke(app, ["train", str(shards), *tokens, "--init", str(first), "--eval-every", "4",
                            "--plot", str(plot), *TINY])
    assert r.exit_code == 0, r.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 5000
    r = runner.invoke(app, ["train", str(shards), *tokens, "--plot", str(tmp_path / "x.png"), *TINY])
    assert r.exit_code == 2 and "--plot needs --eval-every" in r.output
    r = runner.invoke(app, ["train", str(shards), "--init-optimizer", *TINY])
    assert r.exit_code == 2 and "--init-optimizer needs --init" in r.output
