"""S2L (Yang et al. 2024): loss trajectories over a proxy's kept weights, clustered, and a
budget drawn evenly across the clusters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.steps.select.s2l import S2LError, balanced_sample, cluster_trajectories


def test_the_budget_is_shared_evenly_from_the_smallest_cluster_up() -> None:
    labels = np.array([0] * 50 + [1] * 2 + [2] * 5)
    chosen = balanced_sample(labels, 12, seed=0)
    assert chosen.size == 12 and np.all(np.diff(chosen) > 0)
    assert np.bincount(labels[chosen]).tolist() == [5, 2, 5]  # the two small ones whole, then the rest
    assert balanced_sample(labels, 12, seed=0).tolist() == chosen.tolist()  # seeded
    assert balanced_sample(labels, 100).tolist() == list(range(57))
    with pytest.raises(S2LError):
        balanced_sample(labels, 0)


def test_trajectories_that_move_alike_share_a_cluster() -> None:
    rng = np.random.default_rng(0)
    falling = np.array([5.0, 4.0, 3.0]) + rng.normal(0, 0.05, (20, 3))
    flat = np.array([5.0, 5.0, 5.0]) + rng.normal(0, 0.05, (10, 3))
    labels = cluster_trajectories(np.vstack([falling, flat]), 2, seed=0)
    assert len(set(labels[:20].tolist())) == 1 and len(set(labels[20:].tolist())) == 1
    assert labels[0] != labels[20]
    with pytest.raises(S2LError, match="cannot form"):
        cluster_trajectories(falling[:3], 5)


def test_s2l_selects_a_balanced_budget_from_kept_weights(tmp_path: Path, three_sources: Path) -> None:
    runner = CliRunner()
    recipe = tmp_path / "prepare.yaml"
    recipe.write_text(f"""
name: s2l
output: "{tmp_path / 'shards'}"
tokenizer: {{train: {{vocab_size: 512}}}}
input: "{three_sources}"
packing: {{method: concat, context: 32}}
heldout: 0.1
""")
    assert runner.invoke(app, ["prepare", str(recipe)]).exit_code == 0
    run = tmp_path / "proxy"
    trained = runner.invoke(app, ["train", str(tmp_path / "shards"), "--model", "2x32", "--context", "32",
                                  "--tokens", "10240", "--batch-tokens", "256", "--lr", "0.01", "--precision",
                                  "fp32", "--threads", "1", "--out", str(run), "--save-every", "10"])
    assert trained.exit_code == 0, trained.output
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        f"step-{s:08d}.safetensors" for s in (10, 20, 30, 40)]
    parquet = str(three_sources / "data" / "part-00000-00000.parquet")
    out = tmp_path / "selected"
    done = runner.invoke(app, ["select", "s2l", parquet, "--run", str(run), "--budget", "30",
                               "--clusters", "5", "--out", str(out)])
    assert done.exit_code == 0, done.output
    selected = pq.read_table(out / "data")
    report = orjson.loads((out / "s2l.json").read_bytes())
    assert selected.num_rows == 30 == report["selected"] and len(report["checkpoints"]) == 4
    taken = sorted((c["documents"], c["selected"]) for c in report["clusters"])
    # Smallest clusters first: each gives all it has or an equal share of what is left.
    left = 30
    for i, (size, got) in enumerate(taken):
        assert got == min(size, left // (len(taken) - i))
        left -= got
    ids = set(selected.column("id").to_pylist())
    assert ids <= set(pq.read_table(parquet).column("id").to_pylist()) and len(ids) == 30
    # A run without kept weights cannot give trajectories.
    bare = runner.invoke(app, ["select", "s2l", parquet, "--run", str(tmp_path / "shards"), "--budget", "5",
                               "--out", str(tmp_path / "x")])
    assert bare.exit_code == 2 and "needs at least 2" in bare.output
