"""``assay mix anneal`` (Blakeney et al. 2024): arms continued from one base checkpoint, each
with a domain upsampled in the final anneal; gains paired by seed against the natural arm."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from assay.cli import app
from assay.mix.anneal import ANNEAL_SCHEDULE, CONTROL, anneal_weights, gains, read_anneal
from assay.mix.runs import MixError
from assay.train.schedule import lr_multiplier, warmup_steps


def test_an_arm_upsamples_one_domain_and_keeps_the_others_natural() -> None:
    natural = np.array([0.5, 0.3, 0.2])
    weights = anneal_weights(natural, 2, 0.5, np.ones(3))
    assert weights == pytest.approx([0.3125, 0.1875, 0.5])
    # A domain capped below the upsample is held at its cap; the rest keep natural proportions.
    capped = anneal_weights(natural, 2, 0.5, np.array([1.0, 1.0, 0.3]))
    assert capped == pytest.approx([0.4375, 0.2625, 0.3]) and capped.sum() == pytest.approx(1.0)
    with pytest.raises(MixError, match="cannot supply"):
        anneal_weights(natural, 2, 0.5, np.array([0.2, 0.2, 0.3]))


def test_gains_are_paired_by_seed() -> None:
    rows = [{"arm": CONTROL, "seed": "0", "target": "3.0"}, {"arm": CONTROL, "seed": "1", "target": "3.2"},
            {"arm": "code", "seed": "0", "target": "2.9"}, {"arm": "code", "seed": "1", "target": "3.0"}]
    result = gains(rows)
    assert result["code"]["gain"] == pytest.approx(0.15) and result["code"]["seeds"] == 2
    assert result["code"]["gain_std"] == pytest.approx(math.sqrt(0.005))
    assert result[CONTROL]["gain"] == 0.0 and result[CONTROL]["target"] == pytest.approx(3.1)


def test_the_anneal_decays_from_the_peak_to_zero() -> None:
    total = 40
    a = ANNEAL_SCHEDULE
    steps = [lr_multiplier(s, total, a["schedule"], warmup_steps(total, a["warmup"]), a["decay"],
                           a["min_lr_ratio"], a["decay_shape"]) for s in range(total)]
    assert steps[0] == 1.0 and all(x > y for x, y in itertools.pairwise(steps)) and steps[-1] < 0.05


def test_anneal_arms_continue_the_base_proxy(tmp_path: Path, curated: Path) -> None:
    out = tmp_path / "mix"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""
name: tiny-anneal
output: "{out}"
domains:
  fortunes: {{path: "{curated}", select: [fortunes]}}
  python: {{path: "{curated}", select: [python3.11-doc]}}
  udhr: {{path: "{curated}", select: ["udhr2 (nltk_data)"]}}
tokenizer: {{train: {{vocab_size: 512}}}}
heldout: {{fraction: 0.1, max_documents: 4}}
target: {{domains: [python]}}
proxy: {{model: 2x32, tokens: 32768, context: 32, batch_tokens: 256, lr: 0.01, seeds: [0, 1]}}
anneal: {{fraction: 0.25, upsample: 0.6}}
mixtures: 5
max_epochs: 16
""")
    result = CliRunner().invoke(app, ["mix", "anneal", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout[result.stdout.index("{"):])
    rows = read_anneal(Path(report["anneal"]))
    assert sorted({r["arm"] for r in rows}) == sorted([CONTROL, "fortunes", "python", "udhr"])
    assert len(rows) == 8  # four arms, two seeds
    for r in rows:
        assert int(r["tokens"]) == 8192  # the last quarter of 32,768
        if r["arm"] != CONTROL:
            assert float(r[f"weight:{r['arm']}"]) == pytest.approx(0.6, abs=1e-5)
    # Each arm started from its seed's base proxy: the arm's config names it, and the base
    # checkpoint is the natural mixture's, trained on the first three quarters at a constant rate.
    runs = out / "anneal" / "runs"
    for arm in (CONTROL, "python"):
        config = orjson.loads((runs / f"{arm}-s1" / "config.json").read_bytes())
        assert config["config"]["init"] == str(runs / "base-s1")
        assert config["config"]["schedule"] == "wsd" and config["config"]["decay"] == 1.0
        assert config["config"]["init_optimizer"] is True  # the base's AdamW state goes on
    base = orjson.loads((runs / "base-s1" / "config.json").read_bytes())
    assert base["config"]["schedule"] == "constant" and base["config"]["tokens"] == 24576
    # The arms continue the base (its weights and optimizer state): their first logged
    # training loss is where the base ended, far below where a new model starts.
    def train_losses(run: str) -> list[float]:
        log = [orjson.loads(line) for line in (runs / run / "log.jsonl").read_bytes().splitlines()]
        return [r["loss"] for r in log if r["kind"] == "train"]

    base_losses = train_losses("base-s0")
    for arm in (CONTROL, "python"):
        first = train_losses(f"{arm}-s0")[0]
        assert first < base_losses[-1] + 0.3 and first < base_losses[0] - 0.8
    arms = report["arms"]
    assert arms[CONTROL]["gain"] == 0.0 and all(math.isfinite(g["gain"]) for g in arms.values())
    # Run again: nothing is trained again.
    stamps = {p: p.stat().st_mtime_ns for p in runs.glob("*/checkpoint.safetensors")}
    assert len(stamps) == 10
    again = CliRunner().invoke(app, ["mix", "anneal", str(spec)])
    assert again.exit_code == 0, again.output
    assert "python" in again.output and "gain" in again.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    before = load_file(str(runs / "base-s0" / "checkpoint.safetensors"))
    after = load_file(str(runs / "python-s0" / "checkpoint.safetensors"))
    assert any(not torch.equal(v, before[k]) for k, v in after.items() if k.startswith("model."))
