"""``assay sweep``: train a grid of model sizes x token budgets and write ``runs.csv`` for
``assay fit``.

Each (N, D) point is one run of :class:`assay.train.trainer.Trainer` on the same shards,
with its own Step Law learning rate and batch (Li et al. 2025), as the Chinchilla-style
studies train every point near its own optimum (Hoffmann et al. 2022, approach 3). The
target is the final held-out loss.

``runs.csv`` has the columns ``assay fit`` reads (:mod:`assay.scaling.runs`): ``params``
(non-embedding N, Kaplan et al. 2020), ``tokens`` (D, the tokens the run trained on),
``loss`` (held-out, nats per token), ``unique_tokens`` (U, the unique training tokens of
the shards, for ``--law data-constrained``) and ``group``, then columns ``assay fit``
ignores: ``model``, ``embedding_params``, ``bpb``, ``lr``, ``batch_tokens``, ``seconds``,
``seed`` and ``planned_tokens`` (the budget asked for; ``tokens`` is whole steps of it). A
row is appended when its run finishes, and a sweep run again skips the points already in
the file, so an interrupted sweep is finished by running it again (an unfinished point
starts over).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from assay.io.ownership import claim_folder
from assay.io.writers import append_csv_row
from assay.prepare.reader import Shards
from assay.quantities import parse_count
from assay.train.trainer import TrainConfig, Trainer, TrainError

COLUMNS = ("params", "tokens", "loss", "unique_tokens", "group", "model", "embedding_params", "bpb",
           "lr", "batch_tokens", "seconds", "seed", "planned_tokens")
Callback = Callable[[str, int, dict[str, Any]], None]


def parse_list(text: str | Sequence[str]) -> list[str]:
    """``"a,b c"`` or ``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    parts = [text] if isinstance(text, str) else list(text)
    return [x for part in parts for x in part.replace(",", " ").split()]


def grid(sizes: Sequence[str], tokens: Sequence[str]) -> list[tuple[str, int]]:
    """Every (model, tokens) pair, smallest first."""
    budgets = sorted({parse_count(t) for t in tokens})
    return [(s, d) for s in sizes for d in budgets]


def unique_training_tokens(shards: Shards) -> int:
    """Unique tokens of the shards' training sources (the held-out split is not among them)."""
    return int(sum(s["unique_tokens"] for s in shards.manifest["sources"].values()))


def _done(path: Path) -> set[tuple[str, int, int]]:
    if not path.exists():
        return set()
    with open(path, newline="", encoding="utf-8") as f:
        return {(row["model"], int(row["seed"]), round(float(row["planned_tokens"])))
                for row in csv.DictReader(f) if row.get("planned_tokens")}


def run_sweep(base: TrainConfig, sizes: Sequence[str], tokens: Sequence[str], out: str | Path,
              group: str | None = None, callback: Callback | None = None) -> Path:
    """Train the grid on ``base.shards`` into ``OUT/runs/MODEL-TOKENS``; append each finished
    point to ``OUT/runs.csv``; return the CSV's path."""
    out = Path(out)
    with claim_folder(str(out), "sweep", inputs=[base.shards]):
        return _sweep(base, sizes, tokens, out, group, callback)


def _sweep(base: TrainConfig, sizes: Sequence[str], tokens: Sequence[str], out: Path, group: str | None,
           callback: Callback | None) -> Path:
    csv_path = out / "runs.csv"
    shards = Shards(base.shards)
    if not shards.has_heldout:
        raise TrainError(f"{shards.path} has no held-out split: the sweep's target is held-out loss; add "
                         "`heldout: {fraction: 0.01}` to the prepare recipe")
    group = group or str(shards.manifest.get("name") or shards.path.name)
    unique = unique_training_tokens(shards)
    done = _done(csv_path)
    for model, d in grid(sizes, tokens):
        if (model, base.seed, d) in done:
            continue
        config = replace(base, model=model, tokens=d, out=str(out / "runs" / f"{model}-{d}"))

        def hook(record: dict[str, Any], model: str = model, d: int = d) -> None:
            if callback is not None:
                callback(model, d, record)

        trainer = Trainer(config, shards=shards, callback=hook)
        result = trainer.train()
        heldout = result["heldout"]
        row = {"params": trainer.plan.params["non_embedding"], "tokens": result["tokens"],
               "loss": f"{heldout['loss']:.6f}", "unique_tokens": unique, "group": group, "model": model,
               "embedding_params": trainer.plan.params["embedding"], "bpb": f"{heldout['bpb']:.6f}",
               "lr": f"{trainer.plan.lr:.6g}", "batch_tokens": trainer.plan.batch_tokens,
               "seconds": f"{result['train_seconds']:.1f}", "seed": base.seed, "planned_tokens": d}
        append_csv_row(csv_path, COLUMNS, row)
    return csv_path
