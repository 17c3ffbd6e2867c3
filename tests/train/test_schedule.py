"""Learning-rate schedules: warmup, cosine, WSD (Hu et al. 2024), Power (Shen et al. 2024)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from assay.train.schedule import POWER_EXPONENT, decay_curve, lr_multiplier, warmup_steps


def curve(total: int, **kw: object) -> np.ndarray:
    return np.array([lr_multiplier(s, total, **kw) for s in range(total)])  # type: ignore[arg-type]


def test_warmup_is_linear_to_the_peak() -> None:
    for schedule in ("cosine", "wsd", "power", "constant"):
        c = curve(100, schedule=schedule, warmup=10)
        assert np.allclose(c[:10], np.arange(1, 11) / 10)
    assert warmup_steps(1000, 0.05) == 50 and warmup_steps(1000, 30) == 30 and warmup_steps(10, 0.001) == 1


def test_cosine_ends_at_the_minimum_ratio_and_never_rises() -> None:
    c = curve(200, schedule="cosine", warmup=20, min_ratio=0.1)
    assert c[19] == 1.0 and c[-1] == pytest.approx(0.1)
    assert np.all(np.diff(c[19:]) <= 1e-12)
    mid = 20 + (200 - 20) // 2 - 1  # half-way through the decay: (1 + 0.1) / 2
    assert c[mid] == pytest.approx(0.55, abs=1e-9)


def test_wsd_is_stable_then_decays_over_the_last_fraction() -> None:
    c = curve(100, schedule="wsd", warmup=5, decay=0.2, shape="linear")
    assert np.all(c[5:80] == 1.0)
    assert np.all(np.diff(c[79:]) < 0) and c[-1] == 0.0
    assert c[89] == pytest.approx(0.5)
    sq = curve(100, schedule="wsd", warmup=5, decay=0.2, shape="sqrt")
    assert sq[89] == pytest.approx(1 - math.sqrt(0.5)) and sq[-1] == 0.0


def test_power_follows_the_power_law_then_decays() -> None:
    c = curve(1000, schedule="power", warmup=10, decay=0.1, shape="linear")
    for s in (10, 100, 899):
        assert c[s] == pytest.approx((s / 10) ** POWER_EXPONENT)
    assert np.all(np.diff(c[9:]) <= 0) and c[-1] == 0.0
    assert c[950] == pytest.approx(90 ** POWER_EXPONENT * (1 - 51 / 100), rel=1e-9)


def test_decay_curves_and_errors() -> None:
    for shape in ("linear", "cosine", "sqrt"):
        assert decay_curve(0.0, shape) == 1.0 and decay_curve(1.0, shape) == pytest.approx(0.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        lr_multiplier(10, 10)
    with pytest.raises(ValueError, match="unknown schedule"):
        lr_multiplier(5, 10, schedule="step", warmup=1)  # type: ignore[arg-type]
