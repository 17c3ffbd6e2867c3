"""Published constants reproduce the papers' worked values (REFERENCE_VALUES.md)."""

from __future__ import annotations

import numpy as np
import pytest

from assay.scaling.laws import ChinchillaLaw, DataConstrainedLaw
from assay.scaling.plan import (
    chinchilla_allocation,
    deepseek,
    iso_flop_optimum,
    step_law,
    typical_hidden_size,
    vocabulary_parameters,
)
from assay.scaling.published import PUBLISHED


def loss(key: str, **inputs: float) -> float:
    return float(PUBLISHED[key].fitted().predict(**inputs).value[0])


def test_chinchilla_worked_losses() -> None:
    assert loss("hoffmann", N=70e9, D=1.4e12) == pytest.approx(1.936645, abs=1e-6)
    assert loss("hoffmann", N=280e9, D=300e9) == pytest.approx(1.993258, abs=1e-6)
    assert loss("besiroglu", N=70e9, D=1.4e12) == pytest.approx(1.973882, abs=1e-6)


@pytest.mark.parametrize(("key", "flops", "n", "d"), [
    ("besiroglu", 1e21, 2.7785e9, 5.9985e10),
    ("besiroglu", 5.76e23, 7.2249e10, 1.3287e12),
    ("hoffmann", 5.76e23, 3.2190e10, 2.9823e12),
])
def test_chinchilla_allocation(key: str, flops: float, n: float, d: float) -> None:
    got_n, got_d = chinchilla_allocation(PUBLISHED[key].theta, flops)
    assert got_n[0] == pytest.approx(n, rel=1e-4)
    assert got_d[0] == pytest.approx(d, rel=1e-4)
    # the numerical iso-FLOP search agrees with the closed form
    num_n, num_d = iso_flop_optimum(ChinchillaLaw(), PUBLISHED[key].theta, flops)
    assert num_n[0] == pytest.approx(got_n[0], rel=1e-5)
    assert num_d[0] == pytest.approx(got_d[0], rel=1e-5)


def test_datablations_readme_losses() -> None:
    assert loss("muennighoff", N=6.34e9, D=242e9, U=25e9) == pytest.approx(2.2256440889984477,
                                                                           rel=1e-9)
    assert loss("muennighoff", N=8.67e9, D=178e9, U=25e9) == pytest.approx(2.2269634075087867,
                                                                           rel=1e-9)


@pytest.mark.parametrize(("repeats", "ratio"), [(1, 1.9682), (3, 3.7257), (40, 15.2442)])
def test_effective_data_per_unique_token(repeats: int, ratio: float) -> None:
    u = 1e9
    logx = {"N": np.log([[1e6]]), "D": np.log([[u * (1 + repeats)]]), "U": np.log([[u]])}
    _, log_d_eff = DataConstrainedLaw().effective(PUBLISHED["muennighoff"].theta[None, :], logx)
    assert np.exp(log_d_eff[0, 0]) / u == pytest.approx(ratio, abs=1e-4)


def test_data_constrained_optimal_allocation() -> None:
    # The README's grid search (500 ratios, step ~0.4%) gives 2.3734e11 tokens, 9.4935 epochs
    # and 7.0224e9 parameters; the exact optimum lies within that grid's resolution.
    n, d = iso_flop_optimum(DataConstrainedLaw(), PUBLISHED["muennighoff"].theta, 1e22, 25e9)
    assert d[0] == pytest.approx(2.3734e11, rel=2e-3)
    assert d[0] / 25e9 == pytest.approx(9.4935, rel=2e-3)
    assert n[0] == pytest.approx(7.0224e9, rel=2e-3)


def test_kaplan_worked_loss() -> None:
    assert loss("kaplan", N=1.5e9, D=2.3e10) == pytest.approx(2.3101, abs=1e-4)


@pytest.mark.parametrize(("n", "d", "lr", "batch"), [
    (1e9, 1e11, 1.6325e-3, 1.1077e6),
    (7e9, 2e12, 1.0226e-3, 6.1280e6),
    (4e8, 4e10, 2.3682e-3, 6.5645e5),
])
def test_step_law(n: float, d: float, lr: float, batch: float) -> None:
    got_lr, got_batch = step_law(n, d)
    assert got_lr == pytest.approx(lr, rel=1e-4)
    assert got_batch == pytest.approx(batch, rel=1e-4)


def test_deepseek_llm_laws() -> None:
    got = deepseek(1e20)
    assert got["lr"] == pytest.approx(9.8600e-4, rel=1e-4)
    assert got["batch_tokens"] == pytest.approx(1.0171e6, rel=1e-4)
    assert got["flops_per_token"] == pytest.approx(5.2513e9, rel=1e-4)
    assert got["tokens"] == pytest.approx(1.9045e10, rel=1e-4)


def test_vocabulary_law() -> None:
    assert vocabulary_parameters(33e6) == pytest.approx(3_145_728)
    # Llama2-70B: 68.98e9 parameters of which 2 x 32,000 x 8,192 are vocabulary
    n_nv = 68.98e9 - 2 * 32_000 * 8_192
    assert typical_hidden_size(n_nv) == 8192
    for approach in (1, 2):
        vocab = vocabulary_parameters(n_nv, approach) / 8192
        assert 199_000 <= vocab <= 231_000, (approach, vocab)
