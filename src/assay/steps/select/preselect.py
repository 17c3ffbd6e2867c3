"""PreSelect (Shum et al. 2025, "Predictive Data Selection: The Data That Predicts Is the Data
That Teaches"): a document is worth training on when how well a family of models compresses
it predicts how good the models are.

For models ``1..n`` with target scores ``s`` (a benchmark, or the held-out target loss of an
``assay mix search`` or ``assay sweep``), each document's **predictive strength** is the share
of the model pairs it ranks as the scores do: over the pairs ``(i, j)`` with ``i`` better
than ``j`` on the target, the fraction where ``i`` also has the lower bits per byte on the
document (bits per byte, so models with other tokenizers compare). The paper trains a
fastText classifier with the documents of highest strength as positives and those of lowest
as negatives, and selects with it at scale; here the classifier is the hashed n-gram model of
``assay select train-classifier``, which the ``quality_classifier`` step loads.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from assay.errors import AssayError


class PreselectError(AssayError):
    """A family or a set of documents PreSelect cannot work with."""


def predictive_strength(bpb: np.ndarray, scores: np.ndarray, higher_is_better: bool = False) -> np.ndarray:
    """Per document (row of ``bpb``, one column per model): the share of model pairs, ordered
    by ``scores``, that the document's bits per byte order the same way (ties count half;
    NaN where a model has no value)."""
    bpb = np.asarray(bpb, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    goodness = scores if higher_is_better else -scores
    better, worse = np.nonzero(goodness[:, None] > goodness[None, :])  # pairs: model i better than j
    if better.size == 0:
        raise PreselectError("every model of the family has the same score: nothing to predict")
    diff = bpb[:, worse] - bpb[:, better]  # positive: the better model compresses the document better
    agree = (diff > 0).sum(axis=1) + 0.5 * (diff == 0).sum(axis=1)
    strength = agree / better.size
    strength[np.isnan(diff).any(axis=1)] = np.nan
    return strength


def read_family(path: str | Path) -> list[tuple[str, float]]:
    """``(run folder, score)`` of each model: a CSV with ``run`` and ``score`` columns, or the
    ``runs.csv`` of an ``assay mix search`` (its proxies' run folders, ``target`` as score)."""
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise PreselectError(f"{path}: {exc.strerror}") from None
    family = []
    for line, row in enumerate(rows, 2):
        if "run" in row and "score" in row:
            run, value = row["run"], row["score"]
            run = run if Path(run).is_absolute() else str(path.parent / run)
        elif {"mixture", "seed", "target"} <= row.keys():
            run, value = str(path.parent / "runs" / f"{row['mixture']}-s{row['seed']}"), row["target"]
        else:
            raise PreselectError(f"{path}: a family is a CSV with run and score columns, or a mix search's "
                                 "runs.csv (mixture, seed, target)")
        try:
            score = float(value)
        except (TypeError, ValueError):
            raise PreselectError(f"{path}:{line}: score {value!r} is not a number") from None
        if not np.isfinite(score):
            raise PreselectError(f"{path}:{line}: score {value!r} is not finite")
        family.append((run, score))
    if len(family) < 3:
        raise PreselectError(f"{path}: {len(family)} model(s); PreSelect ranks a family of at least 3 "
                             "(the paper: 6 or more)")
    return family


def split_by_strength(strength: np.ndarray, share: float) -> tuple[np.ndarray, np.ndarray]:
    """Indexes of the documents of highest and of lowest predictive strength, ``share`` of
    those with a strength each (ties broken by position, so the split is deterministic)."""
    known = np.flatnonzero(~np.isnan(strength))
    take = max(1, round(share * known.size))
    if 2 * take > known.size:
        raise PreselectError(f"{known.size} documents cannot give {take} positives and {take} negatives")
    order = known[np.argsort(-strength[known], kind="stable")]
    return np.sort(order[:take]), np.sort(order[-take:])


def family_summary(family: Sequence[tuple[str, float]], strength: np.ndarray) -> dict[str, float]:
    """Counts and the spread of the strengths, for the model's record and the printout."""
    known = strength[~np.isnan(strength)]
    return {"models": len(family), "documents": int(strength.size), "scored": int(known.size),
            "strength_mean": float(known.mean()) if known.size else float("nan"),
            "strength_p10": float(np.percentile(known, 10)) if known.size else float("nan"),
            "strength_p90": float(np.percentile(known, 90)) if known.size else float("nan")}
