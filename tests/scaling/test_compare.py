"""Recipe comparison: tokens for recipe B to reach recipe A's loss."""

from __future__ import annotations

import numpy as np
import pytest

from assay.scaling.compare import compare_tokens, tokens_to_reach
from assay.scaling.fit import FittedLaw
from assay.scaling.laws import ChinchillaLaw, DownstreamLogLaw

LAW = ChinchillaLaw()
A = ChinchillaLaw.from_report(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
B = ChinchillaLaw.from_report(E=1.8, A=480.0, B=1500.0, alpha=0.35, beta=0.37)


def model(theta: np.ndarray, group: str, samples: np.ndarray | None = None) -> FittedLaw:
    return FittedLaw(LAW, theta, np.empty((0, 5)) if samples is None else samples, group=group)


def test_saving_matches_closed_form() -> None:
    n, d = 1e9, 2e10
    target = 1.8 + 480.0 / n ** 0.35 + 2100.0 / d ** 0.37
    expected = (1500.0 / (target - 1.8 - 480.0 / n ** 0.35)) ** (1 / 0.37)
    saving = compare_tokens(model(A, "A"), model(B, "B"), n, d)
    assert saving.target == pytest.approx(target, rel=1e-12)
    assert saving.d_other == pytest.approx(expected, rel=1e-9)
    assert saving.saving == pytest.approx(1 - expected / d, rel=1e-9)
    assert "recipe B reaches recipe A's" in saving.sentence() and "fewer tokens" in saving.sentence()


def test_unreachable_target_is_nan() -> None:
    worse = ChinchillaLaw.from_report(E=2.5, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
    saving = compare_tokens(model(A, "A"), model(worse, "W"), 1e9, 2e10)
    assert np.isnan(saving.d_other)
    assert "does not reach" in saving.sentence()
    assert saving.to_dict()["saving"] is None


def test_interval_from_paired_bootstrap_samples() -> None:
    rng = np.random.default_rng(0)
    jitter = np.zeros((100, 5))
    jitter[:, 1] = rng.normal(0, 0.05, 100)  # uncertainty in log B only
    saving = compare_tokens(model(A, "A", A + jitter), model(B, "B", B + jitter[::-1]), 1e9, 2e10)
    assert saving.low < saving.saving < saving.high


def test_increasing_metric() -> None:
    law = DownstreamLogLaw()
    theta = np.array([-10.0, 0.6, 2.0])
    target = np.log(law.predict(theta, D=np.array([3e10])))
    d = tokens_to_reach(law, theta, target, n=1.0, d_guess=1e9)
    assert d[0] == pytest.approx(3e10, rel=1e-9)
