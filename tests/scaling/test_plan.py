"""Planning: compute budgets, allocations, the repetition penalty, the plan table."""

from __future__ import annotations

import numpy as np
import pytest

from assay.scaling.fit import FittedLaw
from assay.scaling.plan import (
    PlanError,
    chinchilla_allocation,
    flops_from_gpu_hours,
    make_plan,
    step_law,
    with_repetition,
)
from assay.scaling.published import PUBLISHED


def test_gpu_hours_to_flops() -> None:
    assert flops_from_gpu_hours(1000, "H100", 0.4) == pytest.approx(1000 * 3600 * 989.5e12 * 0.4)
    with pytest.raises(PlanError, match="unknown GPU"):
        flops_from_gpu_hours(1000, "tpu9", 0.4)
    with pytest.raises(PlanError, match="mfu"):
        flops_from_gpu_hours(1000, "a100", 1.5)


def test_plan_without_unique_tokens() -> None:
    plan = make_plan(5.76e23, PUBLISHED["besiroglu"].fitted())
    assert plan.value("params") == pytest.approx(7.2249e10, rel=1e-4)
    assert plan.value("tokens") == pytest.approx(1.3287e12, rel=1e-4)
    assert plan.value("params") * plan.value("tokens") * 6 == pytest.approx(5.76e23)
    lr, batch = step_law(plan.value("params"), plan.value("tokens"))
    assert plan.value("lr_step_law") == lr and plan.value("batch_step_law") == batch
    assert "epochs" not in [i.quantity for i in plan.items]
    assert all(item.source for item in plan.items)


def test_enough_unique_tokens_means_no_penalty() -> None:
    plan = make_plan(1e21, PUBLISHED["besiroglu"].fitted(), unique_tokens=1e12)
    assert plan.value("epochs") == pytest.approx(5.9985e10 / 1e12, rel=1e-4)
    quantities = [i.quantity for i in plan.items]
    assert "repetition_penalty" not in quantities and "constrained_tokens" not in quantities


def test_short_unique_tokens_use_the_data_constrained_law() -> None:
    plan = make_plan(1e22, PUBLISHED["muennighoff"].fitted(), unique_tokens=25e9)
    assert plan.value("epochs") > 1
    assert plan.value("repetition_penalty") > 0
    assert plan.value("constrained_tokens") == pytest.approx(2.3734e11, rel=2e-3)
    assert plan.value("constrained_epochs") == pytest.approx(9.4935, rel=2e-3)
    assert plan.value("constrained_loss") < plan.value("loss") + plan.value("repetition_penalty")
    # Step Law is evaluated at the constrained run that the plan recommends
    lr, _ = step_law(plan.value("constrained_params"), plan.value("constrained_tokens"))
    assert plan.value("lr_step_law") == pytest.approx(lr)


def test_repetition_on_another_base_law_says_so() -> None:
    plan = make_plan(1e21, PUBLISHED["besiroglu"].fitted(), unique_tokens=1e10)
    sources = {i.quantity: i.source for i in plan.items}
    assert "R_D*=15.39" in sources["repetition_penalty"]
    assert "Besiroglu" in sources["repetition_penalty"]


def test_kaplan_has_no_repetition_form() -> None:
    plan = make_plan(1e21, PUBLISHED["kaplan"].fitted(), unique_tokens=1e9)
    assert plan.value("epochs") > 1
    assert any("no repetition penalty" in note for note in plan.notes)
    assert with_repetition(PUBLISHED["kaplan"].fitted()) is None


def test_intervals_from_bootstrap_samples() -> None:
    theta = PUBLISHED["besiroglu"].theta
    rng = np.random.default_rng(0)
    samples = theta + rng.normal(0, 0.01, (200, 5))
    plan = make_plan(1e21, FittedLaw(PUBLISHED["besiroglu"].law, theta, samples))
    item = next(i for i in plan.items if i.quantity == "params")
    n_draws, _ = chinchilla_allocation(samples, 1e21)
    assert item.low == pytest.approx(np.percentile(n_draws, 2.5))
    assert item.low < item.value < item.high


def test_bad_budget() -> None:
    with pytest.raises(PlanError, match="positive"):
        make_plan(-1.0, PUBLISHED["hoffmann"].fitted())
    with pytest.raises(PlanError, match="unique-tokens"):
        make_plan(1e21, PUBLISHED["hoffmann"].fitted(), unique_tokens=0.0)
