"""Choosing a mixture: caps from repetition limits, and RegMix's search of the simplex.

A mixture may not ask more epochs of a domain than a real run can afford (Muennighoff et
al. 2023; ``max_epochs`` in ``assay prepare``): with ``T`` planned tokens, domain ``j``'s
weight is capped at ``max_epochs * unique_j / T`` (:func:`caps_from_tokens`). RegMix (Liu
et al. 2024) then scores many candidate mixtures with the fitted model and averages the
best ones (:func:`regmix_optimum`); the mixing law's own optimum is exact
(:func:`assay.mix.law.law_optimum`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from assay.mix.runs import MixError

CANDIDATES = 100_000
TOP = 100  # RegMix averages the best 100 of its simulated mixtures


def caps_from_tokens(domains: Sequence[str], unique: Mapping[str, float], total_tokens: float,
                     max_epochs: float) -> np.ndarray:
    """Each domain's largest weight: ``max_epochs`` passes over its unique tokens."""
    missing = [d for d in domains if d not in unique]
    if missing:
        raise MixError(f"no unique token count for {', '.join(missing)} (give every domain's, e.g. "
                       f"{missing[0]}=120M)")
    if total_tokens <= 0 or max_epochs <= 0:
        raise MixError("the planned tokens and max_epochs must be positive")
    caps = np.array([min(1.0, max_epochs * unique[d] / total_tokens) for d in domains])
    if caps.sum() < 1 - 1e-12:
        short = total_tokens - max_epochs * sum(unique[d] for d in domains)
        raise MixError(f"the domains cannot supply {total_tokens:.4g} tokens within {max_epochs:g} epochs "
                       f"({short:.4g} short): raise max_epochs, add data or plan fewer tokens")
    return caps


def candidates(prior: np.ndarray, caps: np.ndarray, n: int = CANDIDATES, seed: int = 0) -> np.ndarray:
    """Mixtures under the caps, drawn as RegMix draws its proxies' mixtures: half from a
    Dirichlet around the prior (the domains' token shares), half uniformly on the simplex."""
    rng = np.random.default_rng(seed)
    prior = np.asarray(prior, dtype=np.float64)
    m = len(prior)
    around = rng.dirichlet(np.maximum(prior * m, 1e-3), n // 2)
    uniform = rng.dirichlet(np.ones(m), n - n // 2)
    drawn = np.vstack([around, uniform])
    return drawn[(drawn <= caps + 1e-12).all(axis=1)]


def regmix_optimum(predict: Callable[[np.ndarray], np.ndarray], prior: np.ndarray, caps: np.ndarray,
                   n: int = CANDIDATES, top: int = TOP, seed: int = 0) -> np.ndarray:
    """The average of the ``top`` candidate mixtures with the lowest predicted loss (a
    convex combination of mixtures under the caps is under them too)."""
    pool = candidates(prior, caps, n, seed)
    if not len(pool):
        raise MixError("no candidate mixture fits under the caps: raise max_epochs or plan fewer tokens")
    scores = predict(pool)
    best = np.argsort(scores, kind="stable")[: min(top, len(pool))]
    return pool[best].mean(axis=0)
