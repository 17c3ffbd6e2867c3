"""``assay compare``: the same proxy model trained on each data recipe, with seeds.

The way DCLM (Li et al. 2024), "A Pretrainer's Guide to Training Data" (Longpre et al.
2024) and the data-selection papers judge data: fix the model, the token budget and the
tokenizer, train once per recipe and seed, and compare held-out metrics.

- **Common random numbers**: seed k initialises every recipe's model identically and draws
  its batches with the same seed, so the difference between two recipes at seed k is due to
  their data alone. The comparison is therefore *paired* by seed: the interval of the
  difference B - A is the t interval of the mean of the per-seed differences (n - 1 degrees
  of freedom; Student 1908). Two identical recipes give identical runs and an interval of
  exactly [0, 0].
- **One evaluation set** for all recipes: the held-out split of the first recipe (or of
  ``--eval SHARDS``), less every document that any recipe trains on (matched by curated
  source and id), so no model is scored on its training data. All recipes must share one
  tokenizer (their token counts and losses are then comparable; bits per byte would also
  compare across tokenizers, but the budget in tokens would not).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from assay.io.ownership import claim_folder
from assay.io.writers import write_json
from assay.prepare.layout import HELDOUT, MANIFEST, safe_name
from assay.prepare.reader import Shards
from assay.train.evaluate import EvalSet, document_keys, heldout_set
from assay.train.trainer import TrainConfig, Trainer, TrainError, phase_tokens

Callback = Callable[[str, int, dict[str, Any]], None]


def summary(values: Sequence[float], confidence: float = 0.95) -> dict[str, float | None]:
    """Mean, sample standard deviation and the t interval of the mean (None with one value)."""
    x = np.asarray(values, dtype=np.float64)
    n = x.size
    mean = float(x.mean())
    if n < 2:
        return {"mean": mean, "std": None, "low": None, "high": None, "n": n}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return {"mean": mean, "std": std, "low": mean - half, "high": mean + half, "n": n}


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> dict[str, Any]:
    """B - A paired by seed: mean, std of the differences, t interval, and whether the
    interval excludes zero (None when there is a single seed)."""
    if len(a) != len(b):
        raise ValueError("a paired comparison needs the same seeds for both recipes")
    d = summary(np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64), confidence)
    low, high = d["low"], d["high"]
    d["significant"] = None if low is None or high is None else bool(low > 0 or high < 0)
    return d


@dataclass(frozen=True)
class Recipe:
    """A data recipe to compare: a display name and its prepared shards."""

    name: str
    shards: Path


def resolve_recipes(paths: Sequence[str | Path],
                    log: Callable[[str], None] = lambda _m: None) -> list[Recipe]:
    """Shards folders as they are; a prepare recipe YAML becomes its output folder, prepared
    first when it holds no shards yet. Names are the shards' names, made unique."""
    from assay.prepare import load_prepare_recipe, prepare

    out: list[Recipe] = []
    seen: dict[str, int] = {}
    for path in paths:
        p = Path(path)
        if p.suffix in (".yaml", ".yml") and p.is_file():
            recipe = load_prepare_recipe(p)
            folder = Path(recipe.output)
            if not (folder / MANIFEST).exists():
                log(f"preparing {p} -> {folder}")
                prepare(recipe, log=log)
        else:
            folder = p
        name = str(Shards(folder).manifest.get("name") or folder.name)
        seen[name] = seen.get(name, 0) + 1
        out.append(Recipe(name if seen[name] == 1 else f"{name}#{seen[name]}", folder))
    return out


def training_documents(shards: Shards) -> set[tuple[str, str]]:
    """(curated source, id) of every document any phase of ``shards`` trains on."""
    keys: set[tuple[str, str]] = set()
    for phase in shards.phases:
        docs = shards.documents(phase)
        keys.update(document_keys(docs))
    return keys


def shared_eval_set(recipes: Sequence[Recipe], context: int, eval_shards: str | Path | None = None,
                    max_documents: int | None = None) -> tuple[EvalSet, dict[str, Any]]:
    """The held-out set every recipe is scored on, and a note of what was left out."""
    all_shards = [Shards(r.shards) for r in recipes]
    source = Shards(eval_shards) if eval_shards else all_shards[0]
    sha = source.manifest["tokenizer"]["sha256"]
    other = [r.name for r, s in zip(recipes, all_shards, strict=True)
             if s.manifest["tokenizer"]["sha256"] != sha]
    if other:
        raise TrainError(f"recipes {', '.join(other)} use another tokenizer than {source.path}: compare "
                         "needs one tokenizer (give every prepare recipe the same tokenizer.path)")
    if not source.has_heldout:
        raise TrainError(f"{source.path} has no held-out split: add `heldout: {{fraction: 0.01}}` to its "
                         "prepare recipe, or pass --eval SHARDS")
    trained: set[tuple[str, str]] = set()
    for s in all_shards:
        trained |= training_documents(s)
    docs = source.documents(HELDOUT)
    overlap = set(document_keys(docs)) & trained
    try:
        data = heldout_set(source, context, max_documents, exclude=overlap)
    except ValueError:
        raise TrainError(f"every held-out document of {source.path} is trained on by some recipe; pass "
                         "--eval SHARDS with a held-out split none of them uses") from None
    note = {"shards": str(source.path), "documents": int(sum(data.documents.values())),
            "left_out": len(overlap), "tokens": data.n_tokens, "bytes": int(sum(data.bytes.values()))}
    return data, note


def run_compare(recipes: Sequence[Recipe], base: TrainConfig, seeds: int, out: str | Path,
                eval_shards: str | Path | None = None, confidence: float = 0.95,
                callback: Callback | None = None, metric: str = "loss") -> dict[str, Any]:
    """Train ``base`` on every recipe for seeds ``base.seed .. base.seed + seeds - 1``; return
    (and write to ``OUT/compare.json``) per-run metrics, per-recipe summaries and the paired
    differences of every recipe against the first; ``curves`` (also ``OUT/curves.json``)
    holds each run's logged training and held-out losses. The verdicts judge by ``metric``:
    ``loss``, ``bpb`` or ``bpb:SOURCE``."""
    if len(recipes) < 2 or seeds < 1:
        raise TrainError("compare needs at least two recipes and one seed")
    out = Path(out)
    sources = [str(r.shards) for r in recipes] + ([str(eval_shards)] if eval_shards else [])
    with claim_folder(str(out), "compare", inputs=sources):
        return _compare(recipes, base, seeds, out, eval_shards, confidence, callback, metric)


def _compare(recipes: Sequence[Recipe], base: TrainConfig, seeds: int, out: Path,
             eval_shards: str | Path | None, confidence: float, callback: Callback | None,
             metric: str) -> dict[str, Any]:
    context = base.context or int(Shards(recipes[0].shards).manifest["packing"]["context"])
    if base.tokens is None:  # the same budget for every recipe: what the smallest one holds
        base = replace(base, tokens=min(phase_tokens(Shards(r.shards), base.phases or Shards(r.shards).phases)
                                        for r in recipes))
    data, eval_note = shared_eval_set(recipes, context, eval_shards, base.eval_documents)
    metrics = ["loss", "bpb", *(f"bpb:{name}" for name in sorted(data.documents))]
    if metric not in metrics:  # found out before any training, not after it
        raise TrainError(f"no metric {metric!r} to judge by: the held-out set gives {', '.join(metrics)}")
    runs: list[dict[str, Any]] = []
    curves: dict[str, dict[int, list[dict[str, Any]]]] = {}
    for seed in range(base.seed, base.seed + seeds):
        for r in recipes:
            config = replace(base, shards=str(r.shards), seed=seed,
                             out=str(out / safe_name(r.name) / f"seed-{seed}"))
            records: list[dict[str, Any]] = []

            def hook(record: dict[str, Any], name: str = r.name, seed: int = seed,
                     records: list[dict[str, Any]] = records) -> None:
                records.append(record)
                if callback is not None:
                    callback(name, seed, record)

            result = Trainer(config, callback=hook, eval_set=data).train()
            heldout = result["heldout"]
            runs.append({"recipe": r.name, "seed": seed, "loss": heldout["loss"], "bpb": heldout["bpb"],
                         "sources": {k: v["bpb"] for k, v in heldout["sources"].items()},
                         "tokens": result["tokens"], "train_seconds": result["train_seconds"],
                         "final_train_loss": next((x["loss"] for x in reversed(records)
                                                   if x["kind"] == "train"), None)})
            curves.setdefault(r.name, {})[seed] = [x for x in records if x["kind"] in ("train", "eval")]
    result = {"recipes": [{"name": r.name, "shards": str(r.shards)} for r in recipes], "seeds": seeds,
              "confidence": confidence, "eval": eval_note, "config": base.to_dict(), "runs": runs,
              **compare_runs(runs, [r.name for r in recipes], confidence, metric)}
    write_json(str(out / "compare.json"), result)
    write_json(str(out / "curves.json"), curves)
    return {**result, "curves": curves}


def compare_runs(runs: Sequence[dict[str, Any]], names: Sequence[str],
                 confidence: float = 0.95, metric: str = "loss") -> dict[str, Any]:
    """Per-recipe summaries of ``loss``, ``bpb`` and each source's bpb, paired differences
    against the first recipe (runs matched by seed), and the verdicts on ``metric``."""
    by = {n: sorted((r for r in runs if r["recipe"] == n), key=lambda r: r["seed"]) for n in names}
    metrics = ["loss", "bpb", *[f"bpb:{s}" for s in sorted({s for r in runs for s in r["sources"]})]]

    def values(name: str, metric: str) -> list[float]:
        if metric.startswith("bpb:"):
            return [r["sources"][metric[4:]] for r in by[name]]
        return [r[metric] for r in by[name]]

    summaries = {n: {m: summary(values(n, m), confidence) for m in metrics} for n in names}
    base = names[0]
    differences = {n: {m: paired_difference(values(base, m), values(n, m), confidence) for m in metrics}
                   for n in names[1:]}
    if metric not in metrics:
        raise TrainError(f"no metric {metric!r} to judge by: the runs have {', '.join(metrics)}")
    verdicts = [verdict(n, base, differences[n][metric], confidence, metric) for n in names[1:]]
    return {"metrics": metrics, "summaries": summaries, "differences": differences, "baseline": base,
            "verdict_metric": metric, "verdicts": verdicts}


def seeds_needed(mean: float, std: float, confidence: float = 0.95) -> int:
    """Seeds for the paired t interval of the differences to exclude zero when the difference
    is ``mean`` and its seed-to-seed deviation ``std``: the least n with
    t(n - 1) std / sqrt(n) < |mean| (at most 100,000)."""
    n = 2
    while n < 100_000 and float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n) >= abs(mean):
        n = n + 1 if n < 64 else int(n * 1.05) + 1
    return n


def verdict(name: str, base: str, d: dict[str, Any], confidence: float = 0.95, metric: str = "loss") -> str:
    """The comparison of recipe ``name`` with ``base`` on ``metric`` (held-out loss, bits per
    byte, or one source's bits per byte: ``bpb:SOURCE``), in words: the difference, its
    interval, and whether the seeds suffice to tell the two apart."""
    what, unit = _metric_words(metric)
    mean, n, level = d["mean"], d["n"], f"{confidence:.0%}"
    if d["low"] is None or d["high"] is None:
        return (f"{name} - {base}: {what} {mean:+.4f} {unit} from one seed, with no interval: "
                "run at least 3 seeds to tell the recipes apart")
    interval = f"{level} interval {d['low']:+.4f} to {d['high']:+.4f}, {n} seeds"
    if d["significant"]:
        better = "lower (better)" if mean < 0 else "higher (worse)"
        return f"{name} has {better} {what} than {base}: {mean:+.4f} {unit} ({interval})"
    if mean == 0 or d["std"] == 0:
        return f"{name} and {base} give the same {what} ({interval})"
    need = seeds_needed(mean, d["std"], confidence)
    return (f"{name} and {base} cannot be told apart with {n} seeds: {what} {mean:+.4f} {unit} "
            f"({interval}, which includes zero); a difference this size needs about {need} seeds")


def _metric_words(metric: str) -> tuple[str, str]:
    """What a metric is called in a sentence, and its unit."""
    if metric == "loss":
        return "held-out loss", "nats/token"
    if metric == "bpb":
        return "held-out bits per byte", "bits/byte"
    return f"held-out bits per byte on {metric.removeprefix('bpb:')}", "bits/byte"
