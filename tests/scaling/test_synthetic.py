"""Synthetic recovery: runs drawn from known laws with noise are fitted back.

Each case states its design, its noise (multiplicative log-normal) and the tolerance on
every fitted parameter; the tolerances are about twice the largest error seen over ten
noise seeds, so they bound what the fit achieves, not what one seed happened to give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from assay.scaling.fit import fit_law
from assay.scaling.laws import (
    ChinchillaLaw,
    DataConstrainedLaw,
    DownstreamLogLaw,
    KaplanLaw,
    Law,
    PowerLaw,
)
from assay.scaling.published import PUBLISHED

from .helpers import COARSE_CHINCHILLA, mesh, synthetic_runs


@dataclass(frozen=True)
class Case:
    law: Law
    theta: np.ndarray
    inputs: dict[str, np.ndarray]
    noise: float
    tolerance: dict[str, float]  # per fitted parameter (laws.py names)


def _data_constrained_design() -> dict[str, np.ndarray]:
    # single-epoch runs (U = D) for the base law, repeated runs (2-64 epochs) for R_D*, R_N*
    fresh = mesh(N=np.geomspace(1e8, 3e9, 5), D=np.geomspace(5e9, 3e11, 5))
    fresh["U"] = fresh["D"].copy()
    repeated = mesh(N=np.array([1e8, 4e8, 1.6e9]), U=np.array([1e9, 4e9]),
                    R=np.array([2.0, 4.0, 8.0, 16.0, 32.0, 64.0]))
    repeated["D"] = repeated["U"] * repeated.pop("R")
    return {k: np.concatenate([fresh[k], repeated[k]]) for k in "NDU"}


CASES = {
    "chinchilla": Case(
        ChinchillaLaw(), ChinchillaLaw.from_report(E=1.8172, A=477.8, B=2143.4, alpha=0.3473,
                                                   beta=0.3672),
        mesh(N=np.geomspace(5e7, 5e9, 8), D=np.geomspace(1e9, 2e11, 8)), 0.005,
        {"a": 0.8, "b": 0.5, "e": 0.04, "alpha": 0.05, "beta": 0.03}),
    "kaplan": Case(
        KaplanLaw(), PUBLISHED["kaplan"].theta,
        mesh(N=np.geomspace(1e6, 1e9, 8), D=np.geomspace(1e8, 1e11, 8)), 0.005,
        {"log_Nc": 0.3, "log_Dc": 0.55, "alpha_N": 0.002, "alpha_D": 0.005}),
    "power-D": Case(
        PowerLaw(x="D"), np.array([np.log(2100.0), np.log(1.8), 0.37]),
        {"D": np.geomspace(1e8, 1e12, 20)}, 0.005, {"a": 0.5, "e": 0.015, "alpha": 0.025}),
    "power-N": Case(
        PowerLaw(x="N"), np.array([np.log(480.0), np.log(1.7), 0.34]),
        {"N": np.geomspace(1e7, 1e10, 20)}, 0.005, {"a": 0.6, "e": 0.03, "alpha": 0.04}),
    "data-constrained": Case(
        DataConstrainedLaw(base_grid=COARSE_CHINCHILLA), PUBLISHED["muennighoff"].theta,
        _data_constrained_design(), 0.005,
        {"a": 1.1, "b": 1.2, "e": 0.08, "alpha": 0.07, "beta": 0.06, "log_RD": 0.25,
         "log_RN": 0.7}),
    "downstream": Case(
        DownstreamLogLaw(), np.array([-10.0, 0.6, 2.0]), {"D": np.geomspace(1e9, 1e12, 20)},
        0.003, {"log_A": 1.1, "alpha": 0.06, "beta": 0.07}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_recovers_parameters(name: str) -> None:
    case = CASES[name]
    runs = synthetic_runs(case.law, case.theta, case.inputs, case.noise, seed=0)
    fit = fit_law(case.law, runs, bootstrap=0)
    assert fit.converged, fit.message
    errors = dict(zip(case.law.params, np.abs(fit.model.theta - case.theta), strict=True))
    for param, tol in case.tolerance.items():
        assert errors[param] < tol, (param, errors[param], tol)
    # the fit explains the data to about the noise level
    assert fit.goodness()["rmse_log"] < 2 * case.noise


@pytest.mark.parametrize("name", ["chinchilla", "power-D"])
def test_noise_free_runs_are_fitted_exactly(name: str) -> None:
    case = CASES[name]
    runs = synthetic_runs(case.law, case.theta, case.inputs, 0.0, seed=0)
    starts = COARSE_CHINCHILLA if name == "chinchilla" else None
    fit = fit_law(case.law, runs, bootstrap=0, starts=starts)
    assert fit.converged, fit.message
    np.testing.assert_allclose(fit.model.theta, case.theta, atol=1e-3)
