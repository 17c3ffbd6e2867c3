"""``assay mix anneal``: what each domain is worth at the end of training, measured by
upsampling it in the final anneal (Blakeney et al. 2024, "Does your data spark joy?
Performance gains from domain upsampling at the end of training").

One proxy per seed trains on the natural (token-proportional) mixture for the first
``1 - fraction`` of the proxy's tokens at a constant learning rate after its warmup
(``OUT/anneal/runs/base-sSEED``). From its checkpoint, each arm continues for the last
``fraction`` of the tokens while the learning rate decays linearly to zero, the stable and
decay phases of a warmup-stable-decay schedule (Hu et al. 2024): the ``natural`` arm on the
natural mixture (the control), and one arm per domain with that domain at ``upsample`` of the
mixture and the others in their natural proportions (capped by ``max_epochs``). A domain's
gain is the control's target loss minus its arm's, paired by seed: positive when upsampling
it at the end helps the target. Rows go to ``OUT/anneal/anneal.csv``; a killed run resumes
like a search (finished arms are in the table, finished run folders are taken as they are).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from assay.io.ownership import claim_folder
from assay.io.writers import append_csv_row
from assay.mix.optimize import caps_from_tokens
from assay.mix.runs import LOSS, WEIGHT, MixError
from assay.mix.search import (
    MixSpec,
    base_tokenizer,
    check_identity,
    prepare_base,
    prepare_recipe,
    proxy_row,
    run_jobs,
    spec_identity,
    spec_inputs,
    train_proxy,
)
from assay.prepare import prepare

if TYPE_CHECKING:
    from assay.engine.settings import RaySettings

Log = Callable[[str], None]
CONTROL = "natural"
FOLDER = "anneal"
# The anneal: the decay phase of a warmup-stable-decay schedule, linear to zero from the
# stable phase's rate (one step at the peak: the "warmup" of a schedule that starts there).
ANNEAL_SCHEDULE = {"schedule": "wsd", "warmup": 1.0, "decay": 1.0, "decay_shape": "linear",
                   "min_lr_ratio": 0.0, "init_optimizer": True}


def anneal_weights(natural: np.ndarray, index: int, upsample: float, caps: np.ndarray) -> np.ndarray:
    """The mixture of an arm: domain ``index`` at ``upsample`` and the others in their
    natural proportions; a domain over its cap is held at it and the rest shared out in
    natural proportion among the domains below theirs."""
    others = natural.copy()
    others[index] = 0.0
    weights = upsample * np.eye(natural.size)[index] + (1 - upsample) * others / others.sum()
    for _ in range(natural.size):
        over = weights > caps + 1e-12
        if not over.any():
            break
        excess = float((weights[over] - caps[over]).sum())
        weights[over] = caps[over]
        room = (weights < caps - 1e-12) & ~over
        if not room.any():
            raise MixError("the domains cannot supply the anneal's tokens within max_epochs")
        weights[room] += excess * natural[room] / natural[room].sum()
    return weights


def gains(rows: list[dict[str, str]]) -> dict[str, dict[str, float]]:
    """Per arm: mean target loss over seeds, and the mean gain over the control paired by
    seed (control minus arm: positive when the arm's target loss is lower)."""
    control = {r["seed"]: float(r["target"]) for r in rows if r["arm"] == CONTROL}
    out: dict[str, dict[str, float]] = {}
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm and r["seed"] in control]
        if not mine:
            continue
        diffs = [control[r["seed"]] - float(r["target"]) for r in mine]
        out[arm] = {"target": float(np.mean([float(r["target"]) for r in mine])),
                    "gain": float(np.mean(diffs)), "seeds": len(mine),
                    "gain_std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else float("nan")}
    return out


def run_anneal(spec: MixSpec, log: Log | None = None, ray: RaySettings | None = None) -> Path:
    """Train the base proxies and every arm not in ``OUT/anneal/anneal.csv`` yet; its path."""
    say = log or (lambda _msg: None)
    out = Path(spec.output)
    with claim_folder(str(out), "mix", inputs=spec_inputs(spec)):
        return _anneal(spec, out, say, ray)


def _anneal(spec: MixSpec, out: Path, say: Log, ray: RaySettings | None) -> Path:
    folder = out / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    check_identity(folder / "spec.json", spec_identity(spec, exclude={"workers", "mixtures"}),
                   "an anneal experiment")
    unique = prepare_base(spec, out, say)
    domains = list(spec.domains)
    total = spec.proxy_tokens()
    late = max(1, round(spec.anneal.fraction * total))
    natural = np.array([unique[d] for d in domains], dtype=np.float64)
    natural /= natural.sum()
    caps = caps_from_tokens(domains, unique, late, spec.max_epochs)
    arms = {CONTROL: natural, **{d: anneal_weights(natural, i, spec.anneal.upsample, caps)
                                  for i, d in enumerate(domains)}}
    tokenizer = base_tokenizer(spec, out)
    say(f"base proxies: the natural mixture for {total - late:,} tokens at a constant learning rate")
    bases = {}
    run_jobs(partial(_base_job, spec, out, total - late, dict(zip(domains, natural.tolist(), strict=True))),
             list(spec.proxy.seeds), spec.workers, ray, lambda row: bases.update({row["seed"]: row}))
    csv_path = folder / "anneal.csv"
    done = _done(csv_path)
    columns = ["arm", "seed", *(WEIGHT + d for d in domains), *(LOSS + d for d in domains),
               "target", "tokens", "seconds"]
    todo = [(arm, seed, dict(zip(domains, weights.tolist(), strict=True)), bases[seed]["lr"],
             bases[seed]["batch_tokens"]) for arm, weights in arms.items() for seed in spec.proxy.seeds
            if (arm, seed) not in done]

    def record(row: dict[str, Any]) -> None:
        append_csv_row(csv_path, columns, row)
        say(f"anneal {row['arm']} seed {row['seed']}: target loss {row['target']}")

    say(f"anneals: the last {late:,} tokens, each domain at {spec.anneal.upsample:.0%} in turn")
    run_jobs(partial(_arm_job, spec, out, tokenizer, late), todo, spec.workers, ray, record)
    return csv_path


def _base_job(spec: MixSpec, out: Path, tokens: int, weights: dict[str, float], seed: int) -> dict[str, Any]:
    """The base proxy of ``seed``: the natural mixture, constant rate after the warmup."""
    shards = out / FOLDER / "shards" / "base"
    if not (shards / "manifest.json").exists():
        prepare(prepare_recipe(spec, shards, base_tokenizer(spec, out), weights, tokens),
                overwrite=shards.exists())
    result, _ = train_proxy(spec, out, shards, out / FOLDER / "runs" / f"base-s{seed}", seed, tokens=tokens,
                            schedule="constant")
    return {"seed": seed, "lr": result["lr"], "batch_tokens": result["batch_tokens"]}


def _arm_job(spec: MixSpec, out: Path, tokenizer: Any, tokens: int,
             job: tuple[str, int, dict[str, float], float, int]) -> dict[str, Any]:
    """One arm of one seed: its mixture prepared (once) and the base proxy of the seed
    continued on it (its weights and optimizer state), the rate decaying from the base's to
    zero."""
    arm, seed, weights, lr, batch_tokens = job
    shards = out / FOLDER / "shards" / arm
    if not (shards / "manifest.json").exists():
        prepare(prepare_recipe(spec, shards, tokenizer, weights, tokens), overwrite=shards.exists())
    result, target = train_proxy(spec, out, shards, out / FOLDER / "runs" / f"{arm}-s{seed}", seed,
                                 tokens=tokens, lr=lr, batch_tokens=batch_tokens,
                                 init=str(out / FOLDER / "runs" / f"base-s{seed}"), **ANNEAL_SCHEDULE)
    return {"arm": arm, "seed": seed, **proxy_row(weights, result, target)}


def read_anneal(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r.get("target")]


def _done(path: Path) -> set[tuple[str, int]]:
    return {(r["arm"], int(r["seed"])) for r in read_anneal(path)} if path.exists() else set()
