"""The laws' predictions against their closed forms, and their analytic gradients."""

from __future__ import annotations

import numpy as np
import pytest

from assay.scaling.laws import (
    LAWS,
    ChinchillaLaw,
    DataConstrainedLaw,
    DownstreamLogLaw,
    KaplanLaw,
    Law,
    PowerLaw,
    make_law,
)

N = np.geomspace(1e7, 1e10, 7)
D = np.geomspace(1e9, 1e12, 7)


def test_chinchilla_closed_form() -> None:
    theta = ChinchillaLaw.from_report(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
    expected = 1.69 + 406.4 / N ** 0.34 + 410.7 / D ** 0.28
    np.testing.assert_allclose(ChinchillaLaw().predict(theta, N=N, D=D), expected, rtol=1e-12)


def test_kaplan_closed_form() -> None:
    theta = KaplanLaw.from_report(N_c=6.4e13, D_c=1.8e13, alpha_N=0.076, alpha_D=0.103)
    expected = ((6.4e13 / N) ** (0.076 / 0.103) + 1.8e13 / D) ** 0.103
    np.testing.assert_allclose(KaplanLaw().predict(theta, N=N, D=D), expected, rtol=1e-12)


def test_power_closed_form() -> None:
    theta = np.array([np.log(300.0), np.log(1.5), 0.3])
    np.testing.assert_allclose(PowerLaw(x="N").predict(theta, N=N), 1.5 + 300.0 / N ** 0.3,
                               rtol=1e-12)


def test_downstream_closed_form() -> None:
    theta = np.array([-10.0, 0.6, 2.0])
    expected = np.log(np.exp(-10.0) * D ** 0.6) ** 2.0
    np.testing.assert_allclose(DownstreamLogLaw().predict(theta, D=D), expected, rtol=1e-12)


def test_data_constrained_without_repetition_is_chinchilla() -> None:
    theta = np.array([6.2, 7.3, 0.6, 0.35, 0.35, np.log(15.0), np.log(5.0)])
    n = np.array([1e8, 5e8])
    d = np.array([1e11, 2e11])  # N well below N_opt(D): no excess parameters either
    got = DataConstrainedLaw().predict(theta, N=n, D=d, U=d)
    np.testing.assert_allclose(got, ChinchillaLaw().predict(theta[:5], N=n, D=d), rtol=1e-12)
    # repeating the same number of tokens costs loss
    assert np.all(DataConstrainedLaw().predict(theta, N=n, D=d, U=d / 10) > got)


CASES: list[tuple[Law, np.ndarray]] = [
    (ChinchillaLaw(), np.array([6.0, 7.0, 0.5, 0.34, 0.36])),
    (KaplanLaw(), np.array([31.0, 30.0, 0.08, 0.1])),
    (PowerLaw(x="D"), np.array([7.0, 0.6, 0.37])),
    (DownstreamLogLaw(), np.array([-10.0, 0.6, 2.0])),
]


@pytest.mark.parametrize(("law", "theta"), CASES, ids=lambda c: getattr(c, "name", ""))
def test_analytic_gradient_matches_finite_differences(law: Law, theta: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    thetas = theta * (1 + 0.05 * rng.standard_normal((4, len(theta))))
    logx = {"N": np.log(N)[None, :], "D": np.log(D)[None, :]}
    v = rng.standard_normal((4, len(N)))
    pred, vjp = law.log_predict_vjp(thetas, logx)
    ref_pred, ref_vjp = Law.log_predict_vjp(law, thetas, logx)
    np.testing.assert_allclose(pred, ref_pred, rtol=1e-12)
    np.testing.assert_allclose(vjp(v), ref_vjp(v), rtol=1e-5, atol=1e-8)


def test_registry_and_unknown_law() -> None:
    assert set(LAWS) == {"chinchilla", "kaplan", "power", "data-constrained", "downstream"}
    assert make_law("power", x="N").inputs == ("N",)
    with pytest.raises(ValueError, match="unknown law"):
        make_law("nope")
    with pytest.raises(ValueError, match="N or D"):
        PowerLaw(x="U")


def test_default_chinchilla_grid_is_epochs() -> None:
    grid = ChinchillaLaw().grid()
    assert grid.shape == (4500, 5)
    assert set(np.unique(grid[:, 0])) == {0.0, 5.0, 10.0, 15.0, 20.0, 25.0}
    assert set(np.unique(grid[:, 2])) == {-1.0, -0.5, 0.0, 0.5, 1.0}
    assert set(np.unique(grid[:, 3])) == {0.0, 0.5, 1.0, 1.5, 2.0}


def test_data_constrained_gradient_matches_finite_differences() -> None:
    law = DataConstrainedLaw()
    rng = np.random.default_rng(1)
    base = np.array([6.255, 7.305, 0.625, 0.353, 0.36, np.log(15.4), np.log(5.3)])
    thetas = base * (1 + 0.05 * rng.standard_normal((4, 7)))
    # fresh and repeated data; models below and above N_opt(U)
    n = np.array([1e8, 1e8, 3e9, 3e9, 2e10, 5e7])
    d = np.array([1e10, 1e11, 1e10, 2e11, 4e11, 1e9])
    u = np.array([1e10, 1e10, 5e9, 1e10, 4e11, 2e9])
    logx = {"N": np.log(n)[None, :], "D": np.log(d)[None, :], "U": np.log(u)[None, :]}
    v = rng.standard_normal((4, len(n)))
    pred, vjp = law.log_predict_vjp(thetas, logx)
    ref_pred, ref_vjp = Law.log_predict_vjp(law, thetas, logx)
    np.testing.assert_allclose(pred, ref_pred, rtol=1e-12)
    np.testing.assert_allclose(vjp(v), ref_vjp(v), rtol=1e-5, atol=1e-8)
