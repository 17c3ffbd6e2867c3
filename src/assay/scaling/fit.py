"""Fitting a law to runs: Huber loss in log space, multi-start L-BFGS, bootstrap intervals.

The procedure is Hoffmann et al. (2022) approach 3 as Besiroglu et al. (2024) reproduced
it: minimise the SUM over runs of Huber_delta(log prediction - log observation), delta =
1e-3, with L-BFGS from every point of a grid of initialisations, and keep the best. The
best distinct minima are refined with relative tolerances and the best of them checked by
scipy's L-BFGS-B; a fit whose best start did not converge says so. Confidence intervals
come from a nonparametric bootstrap over runs (resampling rows with replacement), each
resample refitted from the best few distinct minima of the full fit and kept only if it
converged; the interval is the percentile interval of the refits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from assay.scaling.laws import ChinchillaLaw, DataConstrainedLaw, Law, make_law
from assay.scaling.optimize import STATUS_MESSAGES, BatchObjective, minimize_batch
from assay.scaling.runs import Runs, RunsError, law_inputs

HUBER_DELTA = 1e-3
CHUNK_ELEMENTS = 1 << 16  # rows per objective chunk ~ this / runs: keeps temporaries in cache
TOLERANCES = {"gtol": 1e-8, "fscale": 0.0}  # relative decrease test for the refinement
REFINED = 20  # distinct grid minima refined with TOLERANCES
BOOTSTRAP_SEEDS = 3  # distinct refined minima each bootstrap resample starts from
# A fit is not identified with fewer runs than this per free parameter, or with a
# parameter interval spanning more than this many orders of magnitude.
RUNS_PER_PARAMETER = 2
MAX_DECADES = 2.0


def huber_objective(law: Law, logx: Mapping[str, np.ndarray], logy: np.ndarray,
                    delta: float = HUBER_DELTA, weights: np.ndarray | None = None) -> BatchObjective:
    """Sum over runs of Huber_delta(log pred - log y), and its gradient, for rows of theta.

    ``weights`` (W, n) gives each start row's multiplicity of every run (a bootstrap
    resample); start ``i`` uses ``weights[i]``. Non-finite values become +inf.
    """
    n = logy.shape[1]
    step = max(1, CHUNK_ELEMENTS // max(n, 1))

    def objective(theta: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = np.empty(theta.shape[0])
        g = np.empty_like(theta)
        for lo in range(0, theta.shape[0], step):
            hi = min(lo + step, theta.shape[0])
            with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
                pred, vjp = law.log_predict_vjp(theta[lo:hi], logx)
                r = pred - logy
                dr = np.clip(r, -delta, delta)
                dw = dr if weights is None else dr * weights[rows[lo:hi]]
                f[lo:hi] = np.einsum("kn,kn->k", dw, r - 0.5 * dr)
                g[lo:hi] = vjp(dw)
        bad = ~np.isfinite(f)
        f[bad] = np.inf
        g[bad] = 0.0
        return f, g

    return objective


@dataclass(frozen=True)
class GridFit:
    """The best of a multi-start fit, and whether it converged."""

    theta: np.ndarray
    objective: float
    converged: bool
    message: str
    starts: int
    starts_converged: int
    candidates: np.ndarray  # distinct good minima, best first, to seed the bootstrap


def grid_fit(law: Law, logx: Mapping[str, np.ndarray], logy: np.ndarray, *,
             starts: np.ndarray | None = None, delta: float = HUBER_DELTA,
             max_iter: int = 15_000) -> GridFit:
    """L-BFGS from every start (the law's grid by default), then the best refined.

    The grid stage stops each start on scipy's L-BFGS-B default tests, as Besiroglu et al.
    ran it; the best distinct minima are then refined with relative tolerances (the
    objective is ~1e-3, so scipy's absolute decrease test stops early), and the refined
    best's own stopping reason is the fit's verdict.
    """
    if starts is None:
        starts = (_data_constrained_starts(law, logx, logy, delta, max_iter)
                  if isinstance(law, DataConstrainedLaw) else law.grid())
    objective = huber_objective(law, logx, logy, delta)
    result = minimize_batch(objective, starts, max_iter=max_iter)
    p = len(law.params)
    finite = np.isfinite(result.fun)
    if not finite.any():
        return GridFit(np.full(p, np.nan), np.inf, False, "no start gave a finite objective",
                       len(starts), 0, np.empty((0, p)))
    order = [i for i in np.argsort(np.where(finite, result.fun, np.inf), kind="stable")
             if finite[i]]
    seeds = _distinct([result.x[i] for i in order], limit=REFINED)
    refined = minimize_batch(objective, seeds, max_iter=max_iter, **TOLERANCES)
    rank = np.argsort(np.where(np.isfinite(refined.fun), refined.fun, np.inf), kind="stable")
    best = rank[0]
    theta, value = refined.x[best], float(refined.fun[best])
    converged = bool(refined.converged[best])
    message = STATUS_MESSAGES[int(refined.status[best])]
    # Second opinion from scipy's L-BFGS-B on the objective scaled to ~1, so that its
    # decrease test is relative; it may also finish a start the batch left unconverged.
    # (Imported here: scipy.optimize adds ~0.3 s to the start of every assay command.)
    from scipy.optimize import minimize

    scale = value if np.isfinite(value) and value > 0 else 1.0
    polished = minimize(lambda t: _single(objective, t, scale), theta, jac=True,
                        method="L-BFGS-B", options={"maxiter": max_iter})
    if np.isfinite(polished.fun) and polished.fun * scale <= value:
        theta, value = np.asarray(polished.x, dtype=float), float(polished.fun * scale)
    if not converged:
        converged = bool(polished.success)
        message = f"L-BFGS-B: {polished.message}"
    return GridFit(theta, value, converged, message, len(starts), int(result.converged.sum()),
                   _distinct([theta, *(refined.x[i] for i in rank if np.isfinite(refined.fun[i]))],
                             limit=BOOTSTRAP_SEEDS))


def _single(objective: BatchObjective, theta: np.ndarray, scale: float) -> tuple[float, np.ndarray]:
    f, g = objective(theta[None, :], np.zeros(1, dtype=int))
    return float(f[0]) / scale, g[0] / scale


def _distinct(thetas: list[np.ndarray], limit: int, tol: float = 1e-2) -> np.ndarray:
    chosen: list[np.ndarray] = []
    for t in thetas:
        if all(np.abs(t - c).max() > tol for c in chosen):
            chosen.append(t)
        if len(chosen) == limit:
            break
    return np.array(chosen)


def _data_constrained_starts(law: DataConstrainedLaw, logx: Mapping[str, np.ndarray],
                             logy: np.ndarray, delta: float, max_iter: int) -> np.ndarray:
    """Best Chinchilla fits of the single-epoch runs x a grid of repetition constants."""
    base = ChinchillaLaw(start_grid=law.base_grid)
    single = (logx["D"] <= logx["U"] + 1e-12)[0]
    keep = single if single.sum() > len(base.params) else np.ones_like(single)
    sub = {k: logx[k][:, keep] for k in base.inputs}
    fitted = grid_fit(base, sub, logy[:, keep], delta=delta, max_iter=max_iter)
    if not len(fitted.candidates):
        return law.grid()
    rep = law.repetition_grid()
    return np.array([np.concatenate([c, r]) for c in fitted.candidates for r in rep])


def bootstrap_fit(law: Law, logx: Mapping[str, np.ndarray], logy: np.ndarray,
                  seeds: np.ndarray, samples: int, *, seed: int = 0,
                  delta: float = HUBER_DELTA) -> tuple[np.ndarray, np.ndarray]:
    """Refit ``samples`` resamples of the runs (rows drawn with replacement).

    Each resample is fitted from every row of ``seeds`` (distinct minima of the full fit)
    and keeps its best. Returns the parameters (samples, P) and whether each converged.
    """
    n = logy.shape[1]
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=samples).astype(float)
    k = len(seeds)
    weights = np.repeat(counts, k, axis=0)
    result = minimize_batch(huber_objective(law, logx, logy, delta, weights),
                            np.tile(seeds, (samples, 1)), **TOLERANCES)
    fun = np.where(np.isfinite(result.fun), result.fun, np.inf).reshape(samples, k)
    pick = np.argmin(fun, axis=1)
    rows = np.arange(samples) * k + pick
    return result.x[rows], result.converged[rows] & np.isfinite(fun[np.arange(samples), pick])


@dataclass(frozen=True)
class Prediction:
    """A prediction with its bootstrap interval (NaN bounds without bootstrap samples)."""

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(frozen=True)
class FittedLaw:
    """A law with parameter values: a fit (with bootstrap samples) or published constants."""

    law: Law
    theta: np.ndarray
    samples: np.ndarray  # bootstrap parameter rows (B, P); (0, P) when there are none
    confidence: float = 0.95
    group: str | None = None
    source: str = ""

    def params(self) -> dict[str, float]:
        """The law's reported parameters (E, A, B, alpha, ...)."""
        return {k: float(v[0]) for k, v in self.law.report(self.theta).items()}

    def intervals(self) -> dict[str, tuple[float, float]]:
        """Percentile bootstrap interval of each reported parameter."""
        if not len(self.samples):
            return {k: (np.nan, np.nan) for k in self.law.report(self.theta)}
        tail = 50.0 * (1.0 - self.confidence)
        return {k: (float(np.percentile(v, tail)), float(np.percentile(v, 100.0 - tail)))
                for k, v in self.law.report(self.samples).items()}

    def predict(self, **inputs: float | np.ndarray) -> Prediction:
        """The law at the inputs (``N=7e9, D=2e12``), with the bootstrap interval."""
        missing = [k for k in self.law.inputs if k not in inputs]
        if missing:
            raise ValueError(f"the {self.law.name} law needs {', '.join(missing)} to predict")
        value = self.law.predict(self.theta, **inputs)
        if not len(self.samples):
            nan = np.full_like(value, np.nan)
            return Prediction(value, nan, nan)
        logx = {k: np.log(np.atleast_1d(np.asarray(inputs[k], dtype=float)))[None, :]
                for k in self.law.inputs}
        with np.errstate(invalid="ignore", over="ignore"):
            draws = np.exp(self.law.log_predict(self.samples, logx))
        tail = 50.0 * (1.0 - self.confidence)
        return Prediction(value, np.nanpercentile(draws, tail, axis=0),
                          np.nanpercentile(draws, 100.0 - tail, axis=0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: law, parameters with intervals, and the raw fitted vectors."""
        intervals = self.intervals()
        return {
            "law": self.law.spec(), "title": self.law.title, "formula": self.law.formula,
            "citation": self.law.citation, "group": self.group, "source": self.source,
            "params": {k: {"value": v, "low": _json_float(intervals[k][0]),
                           "high": _json_float(intervals[k][1])}
                       for k, v in self.params().items()},
            "theta": self.theta.tolist(), "confidence": self.confidence,
            "bootstrap_theta": self.samples.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FittedLaw:
        """Inverse of ``to_dict`` (fit files written by ``assay fit --out``)."""
        spec = dict(data["law"])
        law = make_law(spec.pop("name"), **spec)
        theta = np.asarray(data["theta"], dtype=float)
        samples = np.asarray(data.get("bootstrap_theta") or [], dtype=float).reshape(-1, len(theta))
        return cls(law, theta, samples, float(data.get("confidence", 0.95)), data.get("group"),
                   str(data.get("source", "")))


def _json_float(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


@dataclass(frozen=True)
class LawFit:
    """A fitted law with its diagnostics: convergence, goodness of fit, residuals."""

    model: FittedLaw
    objective: float
    converged: bool
    message: str
    starts: int
    starts_converged: int
    bootstrap_requested: int
    bootstrap_converged: int
    lines: np.ndarray
    observed: np.ndarray
    predicted: np.ndarray
    delta: float = HUBER_DELTA

    @property
    def residuals(self) -> np.ndarray:
        """log predicted - log observed, per run."""
        return np.log(self.predicted) - np.log(self.observed)

    def goodness(self) -> dict[str, float]:
        """Huber objective, RMSE of log residuals, mean and max absolute % error, R^2."""
        rel = np.abs(self.predicted / self.observed - 1.0)
        ss_res = float(np.sum((self.observed - self.predicted) ** 2))
        ss_tot = float(np.sum((self.observed - self.observed.mean()) ** 2))
        return {"huber": self.objective, "rmse_log": float(np.sqrt(np.mean(self.residuals ** 2))),
                "mean_abs_pct": 100.0 * float(rel.mean()), "max_abs_pct": 100.0 * float(rel.max()),
                "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")}

    def problems(self) -> list[str]:
        """What the runs leave undetermined, in words (empty when the fit is identified):
        too few runs per free parameter, an additive constant at zero (its bound), a
        parameter whose bootstrap interval spans orders of magnitude or has no end. A law
        fitted to such runs fits them, but its parameters, and any extrapolation, are not
        measured: a smaller law (a power law in one input) may be."""
        problems: list[str] = []
        n, p = len(self.observed), len(self.model.law.params)
        if n < RUNS_PER_PARAMETER * p:
            problems.append(f"only {n} runs for {p} free parameters (fewer than {RUNS_PER_PARAMETER} per "
                            "parameter)")
        params = self.model.params()
        at_zero = "E" in params and params["E"] < 1e-6 * float(self.observed.min())
        if at_zero:
            problems.append(f"E (the irreducible loss) is {params['E']:.3g}: it sits at 0, its bound")
        for name, (low, high) in self.model.intervals().items():
            value = params[name]
            if not len(self.model.samples) or not np.isfinite(value) or value <= 0:
                continue
            if name == "E" and at_zero:
                continue  # said above
            if not (np.isfinite(low) and np.isfinite(high)) or low <= 0:
                problems.append(f"{name}'s interval has no finite positive end")
            elif np.log10(high / low) > MAX_DECADES:
                problems.append(f"{name}'s interval [{low:.3g}, {high:.3g}] spans "
                                f"{np.log10(high / low):.0f} orders of magnitude")
        if problems and {"N", "D"} <= set(self.model.law.inputs):
            problems.append("the runs can identify a smaller law: a power law in D at one model size "
                            "(`--law power --x D` on those runs) or in N at one token budget (`--x N`)")
        return problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report of the fit (what ``assay fit --out`` writes per group)."""
        out = self.model.to_dict()
        problems = self.problems()
        out["identified"] = not problems
        out["problems"] = problems
        out["fit"] = {"objective": self.objective, "converged": self.converged,
                      "message": self.message, "starts": self.starts,
                      "starts_converged": self.starts_converged, "huber_delta": self.delta,
                      "runs": len(self.observed),
                      "bootstrap_samples": self.bootstrap_requested,
                      "bootstrap_converged": self.bootstrap_converged}
        out["goodness"] = self.goodness()
        out["residuals"] = [{"line": int(line), "observed": float(o), "predicted": float(p),
                             "log_residual": float(r)}
                            for line, o, p, r in zip(self.lines, self.observed, self.predicted,
                                                     self.residuals, strict=True)]
        return out


def fit_law(law: Law, runs: Runs, *, bootstrap: int = 1000, confidence: float = 0.95,
            seed: int = 0, starts: np.ndarray | None = None, delta: float = HUBER_DELTA,
            max_iter: int = 15_000, group: str | None = None) -> LawFit:
    """Fit ``law`` to ``runs`` (one group) with ``bootstrap`` resamples for intervals.

    ``starts`` replaces the law's grid of initialisations; ``max_iter`` bounds the
    iterations of each L-BFGS run (scipy's default).
    """
    logx, logy = law_inputs(law, runs)
    best = grid_fit(law, logx, logy, starts=starts, delta=delta, max_iter=max_iter)
    samples = np.empty((0, len(law.params)))
    boot_ok = 0
    if bootstrap > 0 and len(best.candidates):
        samples, ok = bootstrap_fit(law, logx, logy, best.candidates, bootstrap, seed=seed,
                                    delta=delta)
        boot_ok = int(ok.sum())
        samples = samples[ok]
    model = FittedLaw(law, best.theta, samples, confidence, group, runs.source)
    with np.errstate(invalid="ignore", over="ignore"):
        predicted = np.exp(law.log_predict(best.theta[None, :], logx)[0])
    return LawFit(model, best.objective, best.converged, best.message, best.starts,
                  best.starts_converged, bootstrap, boot_ok, runs.lines, np.exp(logy[0]),
                  predicted, delta)


def fit_groups(law: Law, runs: Runs, **options: Any) -> dict[str | None, LawFit]:
    """``fit_law`` for each group of runs (a single entry keyed None without groups)."""
    groups = runs.by_group()
    for name, sub in groups.items():  # every group's input checked before any fit runs
        try:
            law_inputs(law, sub)
        except RunsError as exc:
            raise RunsError(str(exc) if name is None else f"group {name!r}: {exc}") from None
    return {name: fit_law(law, sub, group=name, **options) for name, sub in groups.items()}
