"""Acceptance: refit Besiroglu et al.'s (Epoch AI) extraction of the Chinchilla runs.

Targets are their grid L-BFGS fit and their bootstrap 95% intervals (REFERENCE_VALUES.md):
E, alpha, beta within 0.003, log A and log B within 0.05, interval widths within 1.5x.
"""

from __future__ import annotations

import numpy as np
import pytest

from assay.scaling.fit import LawFit, fit_law
from assay.scaling.laws import ChinchillaLaw
from assay.scaling.runs import Runs

EPOCH_FIT = {"E": 1.8172, "A": 477.8, "B": 2143.4, "alpha": 0.3473, "beta": 0.3672}
EPOCH_CI = {"E": (1.769, 1.871), "A": (285.2, 743.6), "B": (1042.4, 5810.3),
            "alpha": (0.317, 0.373), "beta": (0.331, 0.415)}
EPOCH_OBJECTIVE = 1.01827e-3


@pytest.fixture(scope="module")
def refit(epoch_runs: Runs) -> LawFit:
    # the full 4,500-start grid; 300 resamples keep the test quick (the CLI default is 1000)
    return fit_law(ChinchillaLaw(), epoch_runs, bootstrap=300, seed=0)


def test_uses_240_runs_and_4500_starts(refit: LawFit) -> None:
    assert len(refit.observed) == 240
    assert refit.starts == 4500
    assert refit.converged, refit.message


def test_parameters_match_epoch_grid_fit(refit: LawFit) -> None:
    got = refit.model.params()
    for key in ("E", "alpha", "beta"):
        assert abs(got[key] - EPOCH_FIT[key]) < 0.003, (key, got[key])
    for key in ("A", "B"):
        assert abs(np.log(got[key]) - np.log(EPOCH_FIT[key])) < 0.05, (key, got[key])


def test_objective_matches_epoch_best(refit: LawFit) -> None:
    assert refit.objective == pytest.approx(EPOCH_OBJECTIVE, rel=1e-4)


def test_bootstrap_widths_within_factor_1_5_of_published(refit: LawFit) -> None:
    intervals = refit.model.intervals()
    assert refit.bootstrap_converged >= 0.95 * refit.bootstrap_requested
    for key, (low, high) in EPOCH_CI.items():
        ratio = (intervals[key][1] - intervals[key][0]) / (high - low)
        assert 1 / 1.5 < ratio < 1.5, (key, intervals[key], (low, high))
