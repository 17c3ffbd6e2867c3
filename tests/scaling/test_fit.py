"""Fit results: convergence verdicts, intervals, predictions, files, groups."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assay.scaling.fit import FittedLaw, LawFit, fit_groups, fit_law
from assay.scaling.laws import ChinchillaLaw, PowerLaw
from assay.scaling.runs import Runs, runs_from_arrays

from .helpers import COARSE_CHINCHILLA, mesh, synthetic_runs

TRUE = ChinchillaLaw.from_report(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
DESIGN = mesh(N=np.geomspace(5e7, 5e9, 6), D=np.geomspace(1e9, 2e11, 6))


@pytest.fixture(scope="module")
def fitted() -> LawFit:
    runs = synthetic_runs(ChinchillaLaw(), TRUE, DESIGN, 0.005, seed=3)
    return fit_law(ChinchillaLaw(start_grid=COARSE_CHINCHILLA), runs, bootstrap=200, seed=1)


def test_intervals_bracket_the_estimate(fitted: LawFit) -> None:
    assert fitted.converged and fitted.bootstrap_converged >= 190
    for key, value in fitted.model.params().items():
        low, high = fitted.model.intervals()[key]
        assert low < value < high, key


def test_prediction_interval_widens_with_extrapolation(fitted: LawFit) -> None:
    near = fitted.model.predict(N=1e9, D=2e10)
    far = fitted.model.predict(N=7e10, D=1.4e12)
    for p in (near, far):
        assert p.low[0] < p.value[0] < p.high[0]
    assert far.high[0] - far.low[0] > near.high[0] - near.low[0]
    truth = ChinchillaLaw().predict(TRUE, N=1e9, D=2e10)[0]
    assert near.value[0] == pytest.approx(truth, rel=0.01)


def test_predict_needs_every_input(fitted: LawFit) -> None:
    with pytest.raises(ValueError, match="needs D"):
        fitted.model.predict(N=1e9)


def test_fit_file_round_trip(fitted: LawFit) -> None:
    data = json.loads(json.dumps(fitted.to_dict()))
    assert data["fit"]["converged"] and data["fit"]["starts"] == len(COARSE_CHINCHILLA)
    assert [r["line"] for r in data["residuals"]] == list(range(2, 38))
    assert set(data["goodness"]) == {"huber", "rmse_log", "mean_abs_pct", "max_abs_pct", "r2"}
    again = FittedLaw.from_dict(data)
    np.testing.assert_array_equal(again.theta, fitted.model.theta)
    assert again.samples.shape == fitted.model.samples.shape
    assert again.predict(N=1e9, D=1e10).high[0] == pytest.approx(
        fitted.model.predict(N=1e9, D=1e10).high[0])


def test_non_convergence_is_reported() -> None:
    runs = synthetic_runs(ChinchillaLaw(), TRUE, DESIGN, 0.005, seed=3)
    fit = fit_law(ChinchillaLaw(start_grid=COARSE_CHINCHILLA[:5]), runs, bootstrap=0, max_iter=2)
    assert not fit.converged
    assert "ITERATIONS" in fit.message.upper()
    assert fit.to_dict()["fit"]["converged"] is False


def test_groups_are_fitted_separately() -> None:
    a = synthetic_runs(PowerLaw(x="D"), np.array([np.log(2000.0), np.log(1.8), 0.35]),
                       {"D": np.geomspace(1e8, 1e12, 10)}, 0.002, seed=0)
    b = synthetic_runs(PowerLaw(x="D"), np.array([np.log(2000.0), np.log(1.6), 0.35]),
                       {"D": np.geomspace(1e8, 1e12, 10)}, 0.002, seed=1)
    runs = runs_from_arrays(D=np.concatenate([a.columns["D"], b.columns["D"]]),
                            loss=np.concatenate([a.columns["loss"], b.columns["loss"]]),
                            groups=["a"] * 10 + ["b"] * 10)
    fits = fit_groups(PowerLaw(x="D"), runs, bootstrap=0)
    assert list(fits) == ["a", "b"]
    assert fits["a"].model.params()["E"] == pytest.approx(1.8, abs=0.03)
    assert fits["b"].model.params()["E"] == pytest.approx(1.6, abs=0.03)
    assert fits["b"].model.group == "b"
    np.testing.assert_array_equal(fits["b"].lines, np.arange(12, 22))


def test_single_group_is_keyed_none(epoch_runs: Runs) -> None:
    small = epoch_runs.subset(np.arange(len(epoch_runs)) % 10 == 0)
    fits = fit_groups(ChinchillaLaw(start_grid=COARSE_CHINCHILLA), small, bootstrap=0)
    assert list(fits) == [None] and fits[None].converged
