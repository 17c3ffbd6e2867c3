"""S2L (Yang et al. 2024, "SmallToLarge (S2L): Scalable Data Selection for Fine-tuning Large
Language Models by Summarizing Training Trajectories of Small Models"): documents whose loss
moved alike over a small proxy's training are alike to a model; cluster the loss
trajectories and sample evenly across the clusters, so the selection covers every kind of
document instead of the most common ones.

The trajectories are each document's loss under the weights a proxy kept during its training
(``assay train --save-every N``, :mod:`assay.train.score`); the clusters are k-means
(scikit-learn, seeded); the sampling is the paper's: clusters from the smallest up, each
giving an equal share of what is left of the budget, or all of its documents when it has
fewer, drawn at random (seeded) within a cluster.
"""

from __future__ import annotations

import numpy as np

from assay.errors import AssayError


class S2LError(AssayError):
    """A selection S2L cannot make."""


def cluster_trajectories(trajectories: np.ndarray, clusters: int, seed: int = 0) -> np.ndarray:
    """A cluster label per document (row of ``trajectories``: its loss at each kept point)."""
    from sklearn.cluster import KMeans

    if trajectories.shape[0] < clusters:
        raise S2LError(f"{trajectories.shape[0]} documents cannot form {clusters} clusters")
    finite = np.nan_to_num(trajectories, nan=float(np.nanmax(trajectories)))  # no tokens: the worst
    return KMeans(n_clusters=clusters, n_init=10, random_state=seed).fit_predict(finite).astype(np.int64)


def balanced_sample(labels: np.ndarray, budget: int, seed: int = 0) -> np.ndarray:
    """Sorted indexes of ``budget`` documents drawn evenly across the clusters in ``labels``."""
    if budget < 1:
        raise S2LError("the budget must be at least one document")
    if budget >= labels.size:
        return np.arange(labels.size)
    rng = np.random.default_rng(seed)
    groups = sorted((np.flatnonzero(labels == c) for c in np.unique(labels)), key=lambda g: (g.size, g[0]))
    taken, left = [], budget
    for i, group in enumerate(groups):
        share = left // (len(groups) - i)
        take = min(group.size, share)
        taken.append(np.sort(rng.choice(group, size=take, replace=False)))
        left -= take
    return np.sort(np.concatenate(taken))
