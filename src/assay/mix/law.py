"""The data mixing law: loss as an exponential of the mixture's weights.

Ye et al. 2024, "Data Mixing Laws: Optimizing Data Mixtures by Predicting Language Modeling
Performance", eq. 1: after training on the mixture ``r`` (weights over M domains, summing to
one), a domain's held-out loss, or a target's, is ``L(r) = c + k exp(sum_j t_j r_j)``.

Because the weights sum to one, adding a constant to every ``t_j`` only rescales ``k``; the
fit keeps ``t`` summing to zero (``t_M = -(t_1 + ... + t_{M-1})``), so that each parameter
is identifiable in principle. Least squares (scipy's trust-region reflective method, ``c``
bounded to ``[0, smallest observed loss)``) from starts given by log-linear regressions;
intervals by a bootstrap over runs. A fit the runs cannot pin down says so in words
(:attr:`LawFit.problems`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from assay.mix.runs import MixError
from assay.scaling.fit import MAX_DECADES, RUNS_PER_PARAMETER

# The thresholds of an identified fit are the scaling fits' (runs per free parameter, orders
# of magnitude a positive parameter's interval may span); an exponent's interval wider than
# MAX_T_WIDTH over the whole simplex is not identified either.
MAX_T_WIDTH = 10.0


@dataclass(frozen=True)
class MixingLaw:
    """``L(r) = c + k exp(r . t)``, with ``t`` summing to zero."""

    c: float
    k: float
    t: np.ndarray

    def predict(self, weights: np.ndarray) -> np.ndarray:
        """The law's loss for each row of ``weights`` (or one mixture); inf where it overflows."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self.c + self.k * np.exp(np.asarray(weights, dtype=np.float64) @ self.t)

    def to_json(self, domains: tuple[str, ...]) -> dict:
        return {"c": self.c, "k": self.k, "t": dict(zip(domains, self.t.tolist(), strict=True))}


@dataclass(frozen=True)
class LawFit:
    """A fitted law, its bootstrap refits (for intervals) and what the runs leave open."""

    law: MixingLaw
    rmse: float
    boot: list[MixingLaw] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def identified(self) -> bool:
        return not self.problems

    def interval(self, weights: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
        """The bootstrap interval of the predicted loss at one mixture."""
        if not self.boot:
            value = float(self.law.predict(weights))
            return value, value
        values = np.array([float(b.predict(weights)) for b in self.boot])
        tail = 100 * (1 - confidence) / 2
        return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))

    def parameter_intervals(self, confidence: float = 0.95) -> dict[str, tuple[float, float]]:
        """``c``, ``k`` and each ``t_j`` (by index): bootstrap percentile intervals."""
        if not self.boot:
            return {}
        tail = 100 * (1 - confidence) / 2
        table = {"c": [b.c for b in self.boot], "k": [b.k for b in self.boot]}
        for j in range(len(self.law.t)):
            table[f"t{j}"] = [b.t[j] for b in self.boot]
        return {name: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
                for name, v in table.items()}


def n_parameters(n_domains: int, constant: bool = True) -> int:
    """Free parameters of the law over ``n_domains``: c (if fitted), k and M-1 exponents."""
    return int(constant) + 1 + n_domains - 1


def _t(u: np.ndarray) -> np.ndarray:
    return np.append(u, -u.sum())


def _unpack(theta: np.ndarray, constant: bool) -> MixingLaw:
    c = float(theta[0]) if constant else 0.0
    rest = theta[1:] if constant else theta
    with np.errstate(over="ignore"):  # a wild start's k is inf: its residuals are then inf
        return MixingLaw(c, float(np.exp(rest[0])), _t(rest[1:]))


def _fit_once(weights: np.ndarray, y: np.ndarray, starts: list[np.ndarray], constant: bool) -> np.ndarray:
    """The best least-squares solution from ``starts`` (each ``[c,] log k, u...``)."""
    low = y.min()

    def residuals(theta: np.ndarray) -> np.ndarray:
        law = _unpack(theta, constant)
        with np.errstate(over="ignore"):
            return law.predict(weights) - y

    n_free = len(starts[0])
    lower = np.full(n_free, -np.inf)
    upper = np.full(n_free, np.inf)
    if constant:
        lower[0], upper[0] = 0.0, low * (1 - 1e-9)
    best, best_cost = starts[0], np.inf
    for x0 in starts:
        if constant:  # strictly inside c's bounds
            x0 = x0.copy()
            x0[0] = min(max(x0[0], 1e-9 * low), upper[0] * (1 - 1e-9))
        result = least_squares(residuals, x0, bounds=(lower, upper), method="trf",
                               x_scale="jac", max_nfev=400)
        if np.isfinite(result.cost) and result.cost < best_cost:
            best, best_cost = result.x, result.cost
    return best


def _starts(weights: np.ndarray, y: np.ndarray, constant: bool) -> list[np.ndarray]:
    """Log-linear regressions of ``log(y - c)`` on the weights, for a few values of ``c``:
    with ``t`` summing to zero, ``r . t = sum_{j<M} u_j (r_j - r_M)``, so the regression's
    coefficients are ``log k`` and the ``u_j`` themselves."""
    design = np.column_stack([np.ones(len(y)), weights[:, :-1] - weights[:, -1:]])
    starts = []
    for share in ((0.0, 0.5, 0.9) if constant else (0.0,)):
        c = share * y.min()
        coef, *_ = np.linalg.lstsq(design, np.log(y - c), rcond=None)
        starts.append(np.concatenate([[c], coef]) if constant else coef)
    return starts


def fit_law(weights: np.ndarray, y: np.ndarray, *, constant: bool = True, bootstrap: int = 200,
            seed: int = 0, domains: tuple[str, ...] | None = None) -> LawFit:
    """Fit the mixing law to runs (rows of ``weights`` and their losses ``y``)."""
    weights = np.asarray(weights, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n, m = weights.shape
    p = n_parameters(m, constant)
    names = domains or tuple(f"domain {j}" for j in range(m))
    if m < 2:
        raise MixError("a mixture needs at least two domains")
    if n < p + 1:
        raise MixError(f"{n} runs cannot fit the mixing law over {m} domains: it has {p} free "
                       f"parameters, so it needs at least {p + 1} runs (better {RUNS_PER_PARAMETER * p}+)")
    best = _fit_once(weights, y, _starts(weights, y, constant), constant)
    law = _unpack(best, constant)
    rmse = float(np.sqrt(np.mean((law.predict(weights) - y) ** 2)))
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(bootstrap):
        rows = rng.integers(0, n, n)
        if len(np.unique(rows)) < p:
            continue
        # Every start again, not only the full fit's optimum: a refit that stays where the
        # full fit ended would make the intervals too narrow where the runs leave a valley.
        theta = _fit_once(weights[rows], y[rows], [best, *_starts(weights[rows], y[rows], constant)],
                          constant)
        boot.append(_unpack(theta, constant))
    fit = LawFit(law, rmse, boot)
    fit.problems.extend(_problems(fit, y, n, p, constant, names))
    return fit


def _problems(fit: LawFit, y: np.ndarray, n: int, p: int, constant: bool,
              names: tuple[str, ...]) -> list[str]:
    """What the runs leave open, in words."""
    problems = []
    if n < RUNS_PER_PARAMETER * p:
        problems.append(f"only {n} runs for {p} free parameters (fewer than {RUNS_PER_PARAMETER} per "
                        "parameter): train more proxies or merge domains")
    law = fit.law
    if constant and law.c <= 1e-6 * y.min():
        problems.append("c (the loss no mixture removes) sits at 0, its lower bound: the runs do not pin "
                        "it down; the law without c (--no-constant) may be identified")
    if constant and law.c >= (1 - 1e-6) * y.min():
        problems.append("c sits at the smallest observed loss, its upper bound: the runs do not pin it down")
    intervals = fit.parameter_intervals()
    if intervals:
        k_lo, k_hi = intervals["k"]
        if k_lo <= 0 or np.log10(k_hi / k_lo) > MAX_DECADES:
            problems.append(f"k's interval [{k_lo:.3g}, {k_hi:.3g}] spans more than {MAX_DECADES:g} "
                            "orders of magnitude")
        wide = [names[j] for j in range(len(law.t))
                if intervals[f"t{j}"][1] - intervals[f"t{j}"][0] > MAX_T_WIDTH]
        if wide:
            problems.append(f"not identified: the effect of {', '.join(wide)} (an exponent interval wider "
                            f"than {MAX_T_WIDTH:g}): give proxies more varied weights of these domains, "
                            "or merge each with a similar one")
    return problems


def law_optimum(t: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """The mixture that minimises ``c + k exp(r . t)`` (k > 0) on the simplex with each weight
    at most its cap: minimising ``r . t`` is a linear programme whose solution fills the
    domains in order of increasing exponent, each up to its cap."""
    caps = np.asarray(caps, dtype=np.float64)
    if caps.sum() < 1 - 1e-12:
        raise MixError(f"the caps sum to {caps.sum():.4g}: no mixture fits under them (each domain's cap "
                       "is its unique tokens times max_epochs over the planned tokens)")
    out = np.zeros(len(t))
    left = 1.0
    for j in np.argsort(t, kind="stable"):
        out[j] = min(caps[j], left)
        left -= out[j]
    return out
