"""Which member of a cluster of duplicates survives: the keep rules that ``minhash_dedup``
and ``semantic_dedup`` share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Survivor = Literal["first", "lowest_id", "longest", "signal"]


def check_keep(keep: Survivor, keep_signal: str | None) -> None:
    """A recipe's keep rule: ``keep_signal`` names the column exactly when ``keep`` is signal."""
    if (keep == "signal") != (keep_signal is not None):
        raise ValueError("keep_signal is required with keep: signal, and only then")


def survivor_priority(keep: Survivor, ids: Sequence[str], n_chars: np.ndarray,
                      signal: np.ndarray | None) -> np.ndarray:
    """Each member's rank under ``keep`` (smaller survives; the caller breaks ties by input
    order): all equal for ``first``, the id's rank, the negated length, or the negated
    signal (a missing value last)."""
    if keep == "first":
        return np.zeros(len(ids))
    if keep == "lowest_id":
        return np.argsort(np.argsort(np.array(ids, dtype=object), kind="stable"))
    if keep == "longest":
        return -np.asarray(n_chars, dtype=np.float64)
    assert signal is not None
    return np.where(np.isnan(signal), np.inf, -signal)
