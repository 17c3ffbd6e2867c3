"""Plots of training runs (PNG, needs ``pip install 'assay[plot]'``): a comparison's loss
curves, and a run's held-out loss per source over training, where continual pre-training's
stability gap and forgetting show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from assay.io.ownership import WRITTEN_BY


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, ax: Any, path: str | Path) -> Path:
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120, metadata={"Software": WRITTEN_BY})
    _pyplot().close(fig)
    return path


def plot_curves(curves: dict[str, dict[int, list[dict[str, Any]]]], path: str | Path) -> Path:
    """Training loss against tokens, mean over seeds, one line per recipe; held-out losses
    as markers (needs ``pip install 'assay[plot]'``)."""
    fig, ax = _pyplot().subplots(figsize=(7, 4.5))
    for name, per_seed in curves.items():
        train = [[(x["tokens"], x["loss"]) for x in recs if x["kind"] == "train"]
                 for recs in per_seed.values()]
        length = min(len(t) for t in train)
        tokens = np.array([t[0] for t in train[0][:length]], dtype=np.float64)
        loss = np.mean([[v for _, v in t[:length]] for t in train], axis=0)
        (line,) = ax.plot(tokens, loss, label=f"{name} (train, mean of {len(train)} seeds)")
        evals = [(x["tokens"], x["heldout"]["loss"]) for recs in per_seed.values() for x in recs
                 if x["kind"] == "eval"]
        if evals:
            ax.scatter(*zip(*evals, strict=True), color=line.get_color(), marker="o", s=18,
                       label=f"{name} (held-out)")
    ax.set_xlabel("tokens")
    ax.set_ylabel("loss (nats/token)")
    return _save(fig, ax, path)


def plot_heldout_sources(records: list[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """Held-out loss of every source against the tokens trained, from a run's ``eval``
    records (``--eval-every N``; the first at step 0 when the run starts from another's
    weights): a line per source, the overall loss dashed."""
    evals = [r for r in records if r.get("kind") == "eval"]
    fig, ax = _pyplot().subplots(figsize=(7, 4.5))
    tokens = [r["tokens"] for r in evals]
    for source in sorted({s for r in evals for s in r["heldout"]["sources"]}):
        ax.plot(tokens, [r["heldout"]["sources"].get(source, {}).get("loss", np.nan) for r in evals],
                marker="o", markersize=3, label=source)
    ax.plot(tokens, [r["heldout"]["loss"] for r in evals], linestyle="--", color="black", label="all")
    ax.set_xlabel("tokens trained in this run")
    ax.set_ylabel("held-out loss (nats/token)")
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, ax, path)
