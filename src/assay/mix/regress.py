"""RegMix's regression from mixture weights to loss, and how well each model predicts
mixtures it has not seen.

Liu et al. 2024, "RegMix: Data Mixture as Regression for Language Model Pre-training":
train many small proxies on mixtures drawn around the domains' token shares, fit a
gradient-boosted tree model (LightGBM in the paper; scikit-learn's
``GradientBoostingRegressor`` here, the ``mix`` extra) from weights to the target loss, and
rank candidate mixtures by its prediction. :func:`cross_validate` scores that model and the
mixing law (:mod:`.law`) on held-out runs: Spearman's rank correlation (what choosing a
mixture needs) and R^2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from assay.mix.law import fit_law, n_parameters
from assay.mix.runs import MixError

FOLDS = 5


def gbm(seed: int = 0) -> Any:
    """The tree model: shallow trees and shrinkage, for the tens of runs a search has."""
    try:
        from sklearn.ensemble import GradientBoostingRegressor
    except ImportError:
        raise MixError("the gradient-boosted regressor needs scikit-learn: "
                       "pip install 'assay[mix]'") from None
    return GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=2, subsample=0.8,
                                     min_samples_leaf=2, random_state=seed)


@dataclass(frozen=True)
class Score:
    """A model's predictions of runs it was not fitted to."""

    spearman: float
    r2: float
    predicted: np.ndarray


def _score(y: np.ndarray, predicted: np.ndarray) -> Score:
    if not np.isfinite(predicted).all():
        return Score(float("nan"), float("nan"), predicted)
    varies = np.ptp(y) > 0 and np.ptp(predicted) > 0
    rho = float(spearmanr(y, predicted).statistic) if varies else float("nan")
    ss = float(np.sum((y - y.mean()) ** 2))
    r2 = 1 - float(np.sum((y - predicted) ** 2)) / ss if ss > 0 else float("nan")
    return Score(rho, r2, predicted)


def cross_validate(weights: np.ndarray, y: np.ndarray, *, constant: bool = True, seed: int = 0,
                   folds: int = FOLDS) -> dict[str, Score]:
    """Out-of-fold predictions of the mixing law and the tree model (``folds``-fold, the
    runs shuffled with ``seed``), scored against the observed losses."""
    n = len(y)
    folds = min(folds, n)
    if folds < 2:
        raise MixError(f"{n} runs cannot be cross-validated")
    order = np.random.default_rng(seed).permutation(n)
    law_pred = np.full(n, np.nan)
    gbm_pred = np.empty(n)
    parts = np.array_split(order, folds)
    # The law is scored only when every fold leaves it enough runs to be fitted at all.
    law_fits = n - max(len(p) for p in parts) > n_parameters(weights.shape[1], constant)
    for part in parts:
        train = np.setdiff1d(order, part)
        if law_fits:
            law = fit_law(weights[train], y[train], constant=constant, bootstrap=0).law
            law_pred[part] = law.predict(weights[part])
        model = gbm(seed).fit(weights[train], y[train])
        gbm_pred[part] = model.predict(weights[part])
    return {"law": _score(y, law_pred), "gbm": _score(y, gbm_pred)}
