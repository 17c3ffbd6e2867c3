"""Batched L-BFGS: many independent minimisations advanced together as arrays.

A grid fit of a scaling law runs thousands of small, independent L-BFGS minimisations
(Hoffmann et al. 2022; Besiroglu et al. 2024 use 4,500 starts). Run one at a time through
``scipy.optimize.minimize`` the Python overhead per iteration dominates; here every start
is a row of one array, so each iteration costs a few vectorised operations whatever the
number of starts, and rows leave the active set as they converge.

The algorithm is the textbook limited-memory BFGS (Nocedal & Wright, *Numerical
Optimization*, algorithm 7.4: two-loop recursion, history of 10 pairs, initial scaling
``s'y / y'y``) with a backtracking Armijo line search that interpolates quadratically.
Curvature pairs with ``s'y <= 0`` are skipped so the implicit Hessian stays positive
definite. The stopping rules are scipy's L-BFGS-B defaults: projected gradient below
``gtol`` or relative decrease below ``ftol`` (``factr * eps`` = 2.2e-9).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# (values (K,), gradients (K, P)) for the parameter rows x (K, P) of the starts ``rows``.
BatchObjective = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

CONVERGED_GRADIENT = 0
CONVERGED_DECREASE = 1
LINE_SEARCH_FAILED = 2
NOT_FINITE = 3
MAX_ITERATIONS = 4

STATUS_MESSAGES = {
    CONVERGED_GRADIENT: "gradient below tolerance",
    CONVERGED_DECREASE: "relative decrease below tolerance",
    LINE_SEARCH_FAILED: "line search found no decrease",
    NOT_FINITE: "objective not finite at the starting point",
    MAX_ITERATIONS: "iteration limit reached",
}


@dataclass(frozen=True)
class BatchResult:
    """Outcome of every start: final point, value, gradient, status code and iterations."""

    x: np.ndarray
    fun: np.ndarray
    grad: np.ndarray
    status: np.ndarray
    nit: np.ndarray

    @property
    def converged(self) -> np.ndarray:
        """True where the start stopped on a convergence test (not on a failure)."""
        return self.status <= CONVERGED_DECREASE


def minimize_batch(
    objective: BatchObjective,
    x0: np.ndarray,
    *,
    memory: int = 10,
    max_iter: int = 15_000,
    gtol: float = 1e-5,
    ftol: float = 2.220446049250313e-09,
    fscale: float = 1.0,
    armijo: float = 1e-4,
    max_backtracks: int = 40,
) -> BatchResult:
    """Minimise ``objective`` from every row of ``x0`` (K starts, P parameters) at once.

    ``objective(x, rows)`` returns values and gradients for the parameter rows ``x`` of the
    starts numbered ``rows`` (so an objective can weight each start's data differently, as
    a bootstrap does). Non-finite values count as +inf: the line search steps back from them.
    """
    x = np.array(x0, dtype=float, copy=True)
    k, p = x.shape
    f, g = objective(x, np.arange(k))
    f = np.where(np.isfinite(f), f, np.inf)
    s_hist = np.zeros((k, memory, p))
    y_hist = np.zeros((k, memory, p))
    rho = np.zeros((k, memory))
    scale = np.zeros(k)  # 0 until the first accepted curvature pair
    status = np.full(k, -1)
    nit = np.zeros(k, dtype=int)
    status[~np.isfinite(f) | ~np.all(np.isfinite(g), axis=1)] = NOT_FINITE
    active = np.flatnonzero(status < 0)
    for _ in range(max_iter):
        if active.size == 0:
            break
        xa, fa, ga = x[active], f[active], g[active]
        d = _two_loop(ga, s_hist[active], y_hist[active], rho[active], scale[active])
        slope = np.einsum("kp,kp->k", ga, d)
        uphill = ~(slope < 0)
        if uphill.any():  # a stale history: restart it from steepest descent
            reset = active[uphill]
            s_hist[reset], y_hist[reset], rho[reset], scale[reset] = 0.0, 0.0, 0.0, 0.0
            d[uphill] = -ga[uphill] * _first_step(ga[uphill])[:, None]
            slope[uphill] = np.einsum("kp,kp->k", ga[uphill], d[uphill])
        x_new, f_new, g_new, found = _line_search(objective, active, xa, fa, slope, d,
                                                  armijo, max_backtracks)
        status[active[~found]] = LINE_SEARCH_FAILED
        moved = np.flatnonzero(found)
        rows = active[moved]
        s = x_new[moved] - xa[moved]
        y = g_new[moved] - ga[moved]
        sy = np.einsum("kp,kp->k", s, y)
        yy = np.einsum("kp,kp->k", y, y)
        keep = sy > 1e-10 * yy
        upd = rows[keep]
        s_hist[upd] = np.concatenate([s_hist[upd, 1:], s[keep, None]], axis=1)
        y_hist[upd] = np.concatenate([y_hist[upd, 1:], y[keep, None]], axis=1)
        rho[upd] = np.concatenate([rho[upd, 1:], (1.0 / sy[keep])[:, None]], axis=1)
        scale[upd] = sy[keep] / yy[keep]
        f_old = f[rows]
        x[rows], f[rows], g[rows] = x_new[moved], f_new[moved], g_new[moved]
        nit[rows] += 1
        small_grad = np.abs(g_new[moved]).max(axis=1) <= gtol
        small_step = (f_old - f_new[moved]) <= ftol * np.maximum(
            np.maximum(np.abs(f_old), np.abs(f_new[moved])), fscale)
        status[rows[small_grad]] = CONVERGED_GRADIENT
        status[rows[small_step & ~small_grad]] = CONVERGED_DECREASE
        active = np.flatnonzero(status < 0)
    status[active] = MAX_ITERATIONS
    return BatchResult(x=x, fun=f, grad=g, status=status, nit=nit)


def _first_step(g: np.ndarray) -> np.ndarray:
    """Scale of a steepest-descent step: a unit step along -g (as L-BFGS-B starts)."""
    return 1.0 / np.maximum(np.linalg.norm(g, axis=1), 1e-300)


def _two_loop(g: np.ndarray, s_hist: np.ndarray, y_hist: np.ndarray, rho: np.ndarray,
              scale: np.ndarray) -> np.ndarray:
    """The L-BFGS direction -H g; unused history slots hold zeros and drop out."""
    q = g.copy()
    memory = s_hist.shape[1]
    alpha = np.zeros((g.shape[0], memory))
    for j in range(memory - 1, -1, -1):
        alpha[:, j] = rho[:, j] * np.einsum("kp,kp->k", s_hist[:, j], q)
        q -= alpha[:, j, None] * y_hist[:, j]
    h0 = np.where(scale > 0, scale, _first_step(g))
    r = q * h0[:, None]
    for j in range(memory):
        beta = rho[:, j] * np.einsum("kp,kp->k", y_hist[:, j], r)
        r += s_hist[:, j] * (alpha[:, j] - beta)[:, None]
    return -r


def _line_search(
    objective: BatchObjective, rows: np.ndarray, x: np.ndarray, f: np.ndarray,
    slope: np.ndarray, d: np.ndarray, armijo: float, max_backtracks: int,
    curvature: float = 0.9,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Weak Wolfe step by bisection and doubling, per row (Lewis & Overton 2013)."""
    n = len(rows)
    t = np.ones(n)
    lo, hi = np.zeros(n), np.full(n, np.inf)
    x_new, f_new, g_new = np.empty_like(x), np.empty_like(f), np.empty_like(x)
    found = np.zeros(n, dtype=bool)
    # best Armijo point so far, used if the curvature condition is never met
    have = np.zeros(n, dtype=bool)
    pending = np.arange(n)
    for _ in range(max_backtracks):
        trial = x[pending] + t[pending, None] * d[pending]
        ft, gt = objective(trial, rows[pending])
        finite = np.isfinite(ft) & np.all(np.isfinite(gt), axis=1)
        decrease = finite & (ft <= f[pending] + armijo * t[pending] * slope[pending])
        flat = np.einsum("kp,kp->k", gt, d[pending]) >= curvature * slope[pending]
        keep = pending[decrease]
        x_new[keep], f_new[keep], g_new[keep], have[keep] = (
            trial[decrease], ft[decrease], gt[decrease], True)
        ok = decrease & flat
        found[pending[ok]] = True
        too_far = ~decrease
        hi[pending[too_far]] = t[pending[too_far]]
        too_short = decrease & ~flat
        lo[pending[too_short]] = t[pending[too_short]]
        pending = pending[~ok]
        if pending.size == 0:
            break
        t[pending] = np.where(np.isfinite(hi[pending]), 0.5 * (lo[pending] + hi[pending]),
                              2.0 * lo[pending])
    found |= have
    return x_new, f_new, g_new, found
