"""The mixing law, RegMix's regressor and the choice of a mixture, on runs generated from a
known law (as `assay fit`'s recovery tests do for scaling laws)."""

from __future__ import annotations

import numpy as np
import pytest

from assay.mix.law import MixingLaw, fit_law, law_optimum, n_parameters
from assay.mix.optimize import caps_from_tokens, regmix_optimum
from assay.mix.regress import cross_validate
from assay.mix.runs import MixError

TRUE = MixingLaw(2.0, 0.8, np.array([0.6, -0.9, 0.5, -0.2]))


def _runs(law: MixingLaw, n: int, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(len(law.t)), n)
    return weights, law.predict(weights) * (1 + rng.normal(0, noise, n))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fit_recovers_a_known_law_and_its_optimum(seed: int) -> None:
    weights, losses = _runs(TRUE, 32, 0.002, seed)
    fit = fit_law(weights, losses, bootstrap=60, seed=seed)
    assert fit.identified, fit.problems
    assert abs(fit.law.c - TRUE.c) < 0.15
    assert abs(fit.law.k / TRUE.k - 1) < 0.2
    assert np.abs(fit.law.t - TRUE.t).max() < 0.2  # c, k and the scale of t trade off a little
    assert abs(fit.law.t.sum()) < 1e-9  # the exponents are kept summing to zero
    intervals = fit.parameter_intervals()
    assert intervals["c"][0] <= fit.law.c <= intervals["c"][1] and intervals["k"][0] > 0
    optimum = law_optimum(fit.law.t, np.array([1.0, 0.25, 1.0, 0.5]))
    lo, hi = fit.interval(optimum)
    assert lo <= float(fit.law.predict(optimum)) <= hi
    assert abs(float(fit.law.predict(optimum)) - float(TRUE.predict(optimum))) < 0.02
    # The optimum under caps: the lowest exponents filled first, each up to its cap.
    caps = np.array([1.0, 0.25, 1.0, 0.5])
    expected = np.array([0.0, 0.25, 0.25, 0.5])  # code, then wiki, then books (t 0.5 < web's 0.6)
    assert np.abs(law_optimum(fit.law.t, caps) - expected).max() <= 0.02
    assert np.abs(law_optimum(TRUE.t, caps) - expected).max() < 1e-12


def test_held_out_runs_rank_as_predicted() -> None:
    weights, losses = _runs(TRUE, 32, 0.002)
    scores = cross_validate(weights, losses)
    assert scores["law"].spearman > 0.95 and scores["law"].r2 > 0.9
    assert scores["gbm"].spearman > 0.7
    assert np.isfinite(scores["gbm"].predicted).all() and len(scores["gbm"].predicted) == 32


def test_regmix_averages_the_best_candidates_under_the_caps() -> None:
    caps = np.array([1.0, 0.25, 1.0, 0.5])
    chosen = regmix_optimum(TRUE.predict, np.full(4, 0.25), caps, n=20_000, top=50)
    assert abs(chosen.sum() - 1) < 1e-9 and (chosen <= caps + 1e-9).all()
    assert TRUE.predict(chosen) < TRUE.predict(np.full(4, 0.25))
    # Near the exact optimum, not at it: an average of good random mixtures.
    assert TRUE.predict(chosen) - TRUE.predict(law_optimum(TRUE.t, caps)) < 0.1


@pytest.mark.parametrize("seed", [4, 5])
def test_a_fit_the_runs_cannot_pin_down_says_so(seed: int) -> None:
    # Losses that barely depend on the mixture (1% noise), from few runs.
    flat = MixingLaw(2.0, 0.5, np.array([0.01, -0.01, 0.0, 0.0]))
    weights, losses = _runs(flat, n_parameters(4) + 2, 0.01, seed=seed)
    fit = fit_law(weights, losses, bootstrap=30)
    assert not fit.identified
    assert any("runs for" in p for p in fit.problems)
    assert any("not identified" in p or "bound" in p or "orders of magnitude" in p for p in fit.problems)


def test_bad_input_fails_before_any_fit() -> None:
    weights, losses = _runs(TRUE, 5, 0.0)
    with pytest.raises(MixError, match="5 runs cannot fit the mixing law over 4 domains"):
        fit_law(weights, losses)
    with pytest.raises(MixError, match="at least two domains"):
        fit_law(np.ones((8, 1)), np.full(8, 3.0))
    with pytest.raises(MixError, match="cannot supply 1e\\+09 tokens within 4 epochs"):
        caps_from_tokens(["a", "b"], {"a": 1e8, "b": 1e8}, 1e9, 4)
    with pytest.raises(MixError, match="no unique token count for b"):
        caps_from_tokens(["a", "b"], {"a": 1e8}, 1e9, 4)
    with pytest.raises(MixError, match="no mixture fits under them"):
        law_optimum(TRUE.t, np.full(4, 0.2))
    assert caps_from_tokens(["a", "b"], {"a": 1e8, "b": 1e9}, 1e9, 4).tolist() == [0.4, 1.0]
