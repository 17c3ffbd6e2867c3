"""The batched L-BFGS on functions with known minima."""

from __future__ import annotations

import numpy as np

from assay.scaling.optimize import (
    CONVERGED_DECREASE,
    MAX_ITERATIONS,
    NOT_FINITE,
    minimize_batch,
)


def rosenbrock(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = x[:, 0], x[:, 1]
    f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    g = np.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], axis=1)
    return f, g


def test_rosenbrock_from_many_starts() -> None:
    starts = np.array([[-1.2, 1.0], [2.0, 2.0], [0.0, 0.0], [-3.0, 5.0], [1.5, -1.0]])
    result = minimize_batch(rosenbrock, starts, gtol=1e-8)
    assert result.converged.all()
    np.testing.assert_allclose(result.x, np.ones_like(starts), atol=1e-5)


def test_each_start_sees_its_own_rows() -> None:
    targets = np.array([[1.0, -2.0, 3.0], [10.0, 0.5, -4.0], [0.0, 0.0, 7.0]])
    scales = np.array([1.0, 100.0, 0.01])

    def quadratic(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        diff = x - targets[rows]
        w = scales[rows, None]
        return (w * diff ** 2).sum(axis=1), 2 * w * diff

    result = minimize_batch(quadratic, np.zeros((3, 3)), gtol=1e-10)
    np.testing.assert_allclose(result.x, targets, atol=1e-6)


def test_non_finite_start_is_reported() -> None:
    def log_barrier(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (x[:, 0] - np.log(x[:, 0])), (1 - 1 / x[:, :1])

    result = minimize_batch(log_barrier, np.array([[-1.0], [3.0]]))
    assert result.status[0] == NOT_FINITE and not result.converged[0]
    assert result.converged[1]
    assert abs(result.x[1, 0] - 1.0) < 1e-4


def test_iteration_limit_is_reported() -> None:
    result = minimize_batch(rosenbrock, np.array([[-1.2, 1.0]]), max_iter=3)
    assert result.status[0] == MAX_ITERATIONS
    assert not result.converged[0]
    assert result.nit[0] == 3


def test_relative_decrease_test_with_fscale() -> None:
    # a tiny objective: scipy's absolute test (fscale=1) stops far from the minimum, a
    # relative one (fscale=0) does not
    def tiny(x: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f, g = rosenbrock(x, rows)
        return 1e-9 * f, 1e-9 * g

    start = np.array([[-1.2, 1.0]])
    absolute = minimize_batch(tiny, start, gtol=0.0)
    relative = minimize_batch(tiny, start, gtol=0.0, fscale=0.0)
    assert absolute.status[0] == CONVERGED_DECREASE
    assert np.abs(absolute.x[0] - 1).max() > 1e-2
    np.testing.assert_allclose(relative.x[0], [1.0, 1.0], atol=1e-4)
