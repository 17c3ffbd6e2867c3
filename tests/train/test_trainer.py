"""The trainer: it learns (loss below the unigram entropy of the data), resumes bit for bit,
takes its defaults from the Step Law, and refuses what it cannot do."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pytest
import torch
from safetensors.torch import load_file

from assay.prepare.reader import Shards
from assay.prepare.tokenizer import train_encoder
from assay.scaling.plan import step_law
from assay.train.checkpoint import read_meta
from assay.train.model import count_parameters, shape_for
from assay.train.trainer import TrainConfig, Trainer, TrainError, plan_run, resolve_precision

from .conftest import prepare_shards

TINY = dict(model="2x32", context=32, batch_tokens=256, lr=1e-2, precision="fp32", log_every=25)


def unigram_entropy(tokens: np.ndarray) -> float:
    """Entropy in nats of the token frequencies: the loss of the best model without context."""
    counts = np.bincount(tokens)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_loss_falls_below_the_unigram_entropy_of_the_data(shards: Path, tmp_path: Path) -> None:
    s = Shards(shards)
    h = unigram_entropy(np.concatenate([np.asarray(f.tokens) for f in s.concat_files("main")]))
    config = TrainConfig(str(shards), out=str(tmp_path / "run"), tokens=256 * 300, **TINY)
    result = Trainer(config).train()
    log = [orjson.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_bytes().splitlines()]
    train = [r for r in log if r["kind"] == "train"]
    assert train[0]["loss"] > h > train[-1]["loss"] + 0.3
    assert result["heldout"]["loss"] < h  # on documents it never saw
    assert result["finished"] and result["tokens"] == 256 * 300 == train[-1]["tokens"]
    assert [r["kind"] for r in log][:1] == ["start"] and log[-1]["kind"] == "eval"
    assert all(r["tokens_per_s"] > 0 and r["eta_s"] >= 0 for r in train)
    assert (tmp_path / "run" / "checkpoint.safetensors").is_file()
    saved = orjson.loads((tmp_path / "run" / "result.json").read_bytes())
    assert saved["heldout"]["bpb"] == pytest.approx(result["heldout"]["bpb"])


@pytest.mark.parametrize("options", [
    {"precision": "fp32"},
    {"precision": "bf16", "mlp": "swiglu", "positions": "learned", "schedule": "wsd",
     "micro_batch_tokens": 128},
])
def test_resume_gives_the_parameters_of_an_uninterrupted_run(shards: Path, tmp_path: Path,
                                                             options: dict[str, object]) -> None:
    config = replace(TrainConfig(str(shards), tokens=256 * 12, eval_documents=3, **TINY),
                     **options)  # type: ignore[arg-type]
    whole = Trainer(replace(config, out=str(tmp_path / "whole")))
    whole.train()
    first = Trainer(replace(config, out=str(tmp_path / "split")))
    first.train(until=5)
    assert read_meta(tmp_path / "split" / "checkpoint.safetensors")["step"] == 5
    second = Trainer(replace(config, out=str(tmp_path / "split")))
    second.resume()
    assert second.step == 5 and second.tokens == 5 * 256
    second.train()
    resumed = dict(second.model.named_parameters())
    for name, a in whole.model.named_parameters():
        assert torch.equal(a, resumed[name]), name
    sa, sb = whole.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    # Any safetensors reader loads the weights (the tied output layer is stored once).
    tensors = load_file(str(tmp_path / "split" / "checkpoint.safetensors"))
    assert torch.equal(tensors["model.wte.weight"], whole.model.wte.weight.detach())
    assert not any(k.startswith("model.lm_head") for k in tensors)


def test_resume_refuses_a_checkpoint_of_another_run(shards: Path, tmp_path: Path) -> None:
    config = TrainConfig(str(shards), out=str(tmp_path / "r"), tokens=256 * 3, **TINY)
    Trainer(config).train(until=1)
    other = Trainer(replace(config, lr=2e-2))
    with pytest.raises(TrainError, match="lr differ"):
        other.resume()
    with pytest.raises(TrainError, match="cannot resume"):
        Trainer(replace(config, out=str(tmp_path / "empty"))).resume()


def test_defaults_come_from_the_step_law() -> None:
    config = TrainConfig("unused", model="1m", context=256)
    plan = plan_run(config, vocab_size=8192, shard_context=2048, available_tokens=50_000_000)
    n = count_parameters(shape_for("1m", 8192, 256))["non_embedding"]
    lr, batch = step_law(n, 50_000_000)
    assert plan.lr == pytest.approx(lr) and plan.sources == {"lr": "Step Law, Li et al. 2025",
                                                               "batch": "Step Law, Li et al. 2025"}
    assert plan.batch_size == round(batch / 256) and plan.batch_tokens == plan.batch_size * 256
    assert plan.steps == round(50_000_000 / plan.batch_tokens)
    assert plan.tokens == plan.steps * plan.batch_tokens
    assert plan.min_lr_ratio == 0.1 and plan.warmup_steps == round(0.05 * plan.steps)
    given = plan_run(replace(config, lr=1e-3, batch_tokens=4096, tokens=1_000_000, context=None), 8192, 128,
                     50_000_000)
    assert (given.lr, given.batch_size, given.context, given.steps) == (1e-3, 32, 128, 244)
    assert given.sources == {"lr": "given", "batch": "given"}
    with pytest.raises(TrainError, match="preset"):
        plan_run(replace(config, model="enormous"), 8192, 128, 10_000)


def test_precision_and_bucket_training(shards: Path) -> None:
    assert resolve_precision("fp32", torch.device("cpu")) is None
    assert resolve_precision("bf16", torch.device("cpu")) is torch.bfloat16
    trainer = Trainer(TrainConfig(str(shards), packing="buckets", tokens=256 * 4, eval_documents=5, **TINY))
    result = trainer.train()
    batches = [trainer.batches.batch(i) for i in range(4)]
    assert all(x.numel() == 256 for x in batches)  # Dataset Decomposition: constant tokens per batch
    assert result["tokens"] == sum(x.shape[0] * (x.shape[1] - 1) for x in batches)  # predicted tokens
    assert result["heldout"]["loss"] < math.log(512)


def test_refusals(shards: Path, tmp_path: Path, curated_small: Path, tokenizer_512: Path) -> None:
    with pytest.raises(TrainError, match="no phase"):
        Trainer(TrainConfig(str(shards), phases=["anneal"], **TINY))
    with pytest.raises(TrainError, match=r"manifest\.json not found"):
        Trainer(TrainConfig(str(tmp_path), **TINY))
    concat_only = prepare_shards(tmp_path / "c", curated_small, tokenizer_512, method="concat", heldout=0.0)
    with pytest.raises(TrainError, match="no decompose files"):
        Trainer(TrainConfig(str(concat_only), packing="buckets", **TINY))
    no_heldout = Trainer(TrainConfig(str(concat_only), tokens=256 * 2, **TINY))
    assert any("no held-out split" in w for w in no_heldout.warnings)
    assert no_heldout.train()["heldout"] is None


def test_init_continues_from_another_runs_weights_with_a_new_schedule(
        shards: Path, tmp_path: Path, curated_small: Path, small_docs: list[dict]) -> None:
    first = TrainConfig(str(shards), out=str(tmp_path / "first"), tokens=256 * 120, **TINY)
    Trainer(first).train()
    later = TrainConfig(str(shards), out=str(tmp_path / "later"), tokens=256 * 20,
                        init=str(tmp_path / "first"), **TINY)
    started = Trainer(later)
    weights = load_file(str(tmp_path / "first" / "checkpoint.safetensors"))
    for name, value in started.model.state_dict().items():
        assert torch.equal(value, weights[f"model.{name}"]), name
    assert started.step == 0 and not started.optimizer.state  # its own optimizer, from step 0
    # With init_optimizer, AdamW's moments come from the checkpoint too (a continuation).
    continuing = Trainer(replace(later, init_optimizer=True, out=None))
    moments = [state["exp_avg"] for state in continuing.optimizer.state.values()]
    assert len(moments) == len(list(continuing.model.parameters()))
    assert torch.equal(moments[0], weights["optim.0.exp_avg"]) and moments[0].abs().sum() > 0
    continued = started.train()
    scratch = Trainer(replace(later, init=None, out=None)).train()
    # Twenty steps from the first run's weights beat twenty steps from a random start.
    assert continued["heldout"]["loss"] < scratch["heldout"]["loss"] - 0.05
    assert orjson.loads((tmp_path / "later" / "config.json").read_bytes())["config"]["init"] == str(
        tmp_path / "first")
    # With --eval-every, the held-out loss is logged at step 0 too: where the weights it
    # starts from stand (the first run's final held-out loss), before the stability gap.
    first_result = orjson.loads((tmp_path / "first" / "result.json").read_bytes())
    Trainer(replace(later, out=str(tmp_path / "watched"), eval_every=5)).train()
    log = [orjson.loads(line) for line in (tmp_path / "watched" / "log.jsonl").read_bytes().splitlines()]
    evals = [r for r in log if r["kind"] == "eval"]
    assert evals[0]["step"] == 0
    assert evals[0]["heldout"]["loss"] == pytest.approx(first_result["heldout"]["loss"])
    assert [r["step"] for r in evals] == [0, 5, 10, 15, 20]  # every 5 steps though logging every 25
    # A checkpoint of another model, of another tokenizer, or none: refused before training.
    with pytest.raises(TrainError, match="holds another model"):
        Trainer(replace(later, model="2x64", out=None))
    fortunes = [d["text"] for d in small_docs if d["source"] == "fortunes"]
    other_tokenizer = tmp_path / "other.json"
    other_tokenizer.write_bytes(train_encoder(fortunes, 512).spec_bytes)
    other = prepare_shards(tmp_path / "other", curated_small, other_tokenizer)
    with pytest.raises(TrainError, match="another tokenizer"):
        Trainer(replace(later, shards=str(other), out=None))
    with pytest.raises(TrainError, match="no checkpoint to start from"):
        Trainer(replace(later, init=str(tmp_path / "missing"), out=None))
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(TrainError, match="not an assay checkpoint"):
        Trainer(replace(later, init=str(tmp_path / "junk.safetensors"), out=None))
