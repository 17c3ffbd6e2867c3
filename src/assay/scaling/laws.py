"""The scaling laws assay fits, each as a pure function of parameters and inputs.

Every law predicts the *logarithm* of its target (loss, or a downstream metric) from the
logarithms of its inputs, for a batch of parameter vectors at once: ``theta`` is (K, P),
each input is an array that broadcasts to (K, n), the result is (K, n). Working in log
space is how Hoffmann et al. (2022) and Besiroglu et al. (2024) fit: the objective is a
Huber loss on ``log prediction - log observation``, and sums of power laws become
log-sum-exp expressions that stay finite for any parameter values.

Inputs are named ``N`` (parameters), ``D`` (training tokens) and ``U`` (unique tokens).
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

Vjp = Callable[[np.ndarray], np.ndarray]


def _col(theta: np.ndarray, j: int) -> np.ndarray:
    return theta[:, j : j + 1]


def _row_dot(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Row sums of ``a * x`` where x broadcasts to a's (K, n) shape."""
    if x.shape[0] == 1 and a.shape[0] != 1:
        return a @ x[0]
    return (a * x).sum(axis=1)


def _lse3(t1: np.ndarray, t2: np.ndarray, t3: np.ndarray) -> tuple[np.ndarray, ...]:
    """log(e^t1 + e^t2 + e^t3) with the shifted terms and their sum, for the gradient."""
    m = np.maximum(np.maximum(t1, t2), t3)
    w1, w2, w3 = np.exp(t1 - m), np.exp(t2 - m), np.exp(t3 - m)
    s = w1 + w2 + w3
    return m + np.log(s), w1, w2, w3, s


def _grid(*axes: np.ndarray) -> np.ndarray:
    return np.array(list(itertools.product(*axes)), dtype=float)


class Law(ABC):
    """A parametric law: fitted parameters, inputs, and its log-space prediction."""

    name: ClassVar[str]
    title: ClassVar[str]
    citation: ClassVar[str]
    formula: ClassVar[str]
    params: ClassVar[tuple[str, ...]]
    target: ClassVar[str] = "loss"

    @property
    @abstractmethod
    def inputs(self) -> tuple[str, ...]:
        """Input columns the law needs, from ``N``, ``D``, ``U``."""

    @abstractmethod
    def log_predict(self, theta: np.ndarray, logx: Mapping[str, np.ndarray]) -> np.ndarray:
        """log of the prediction, (K, n), for parameter rows theta (K, P)."""

    @abstractmethod
    def grid(self) -> np.ndarray:
        """Default starting points for the grid fit, (S, P)."""

    @abstractmethod
    def report(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """The published parameterisation (E, A, B, ...) of parameter rows theta (K, P)."""

    def spec(self) -> dict[str, Any]:
        """What ``make_law`` needs to rebuild this law (stored in fit files)."""
        return {"name": self.name}

    def log_predict_vjp(self, theta: np.ndarray,
                        logx: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Vjp]:
        """Prediction and a function v -> sum_n v * d pred / d theta (central differences)."""
        pred = self.log_predict(theta, logx)
        steps = 1e-6 * np.maximum(1.0, np.abs(theta))
        jac = np.empty((*pred.shape, theta.shape[1]))
        for j in range(theta.shape[1]):
            up, down = theta.copy(), theta.copy()
            up[:, j] += steps[:, j]
            down[:, j] -= steps[:, j]
            jac[..., j] = (self.log_predict(up, logx) - self.log_predict(down, logx)) / (
                2.0 * steps[:, j : j + 1])
        return pred, lambda v: np.einsum("kn,knp->kp", v, jac)

    def predict(self, theta: np.ndarray, **inputs: float | np.ndarray) -> np.ndarray:
        """The law in natural units at the given inputs, for one parameter vector."""
        logx = {k: np.log(np.atleast_1d(np.asarray(inputs[k], dtype=float)))[None, :]
                for k in self.inputs}
        return np.exp(self.log_predict(np.atleast_2d(theta), logx)[0])


@dataclass(frozen=True)
class ChinchillaLaw(Law):
    """L(N, D) = E + A / N^alpha + B / D^beta.

    Hoffmann et al. 2022, "Training Compute-Optimal Large Language Models", approach 3;
    fitted as Besiroglu et al. 2024, "Chinchilla Scaling: A replication attempt", do: in
    log space, log L = LSE(a - alpha log N, b - beta log D, e) with A = e^a, B = e^b,
    E = e^e, a Huber loss (delta 1e-3) summed over points, L-BFGS from a grid of 4,500
    starts (alpha, beta in 0..2 by 0.5; e in -1..1 by 0.5; a, b in 0..25 by 5).
    """

    name: ClassVar[str] = "chinchilla"
    title: ClassVar[str] = "Chinchilla loss law"
    citation: ClassVar[str] = ("Hoffmann et al. 2022 (approach 3), fitted as Besiroglu et al. 2024")
    formula: ClassVar[str] = "L = E + A/N^alpha + B/D^beta"
    params: ClassVar[tuple[str, ...]] = ("a", "b", "e", "alpha", "beta")
    start_grid: np.ndarray | None = field(default=None, compare=False)

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    def grid(self) -> np.ndarray:
        if self.start_grid is not None:
            return np.asarray(self.start_grid, dtype=float)
        ab = np.arange(0.0, 30.0, 5.0)
        exponents = np.arange(0.0, 2.5, 0.5)
        return _grid(ab, ab, np.arange(-1.0, 1.5, 0.5), exponents, exponents)

    def _terms(self, theta: np.ndarray, logx: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        a, b, e, alpha, beta = (_col(theta, j) for j in range(5))
        return _lse3(a - alpha * logx["N"], b - beta * logx["D"], np.broadcast_to(
            e, np.broadcast_shapes(e.shape, logx["N"].shape, logx["D"].shape)))

    def log_predict(self, theta: np.ndarray, logx: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._terms(theta, logx)[0]

    def log_predict_vjp(self, theta: np.ndarray,
                        logx: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Vjp]:
        pred, w1, w2, w3, s = self._terms(theta, logx)

        def vjp(v: np.ndarray) -> np.ndarray:
            q = v / s
            g1, g2, g3 = w1 * q, w2 * q, w3 * q
            return np.stack([g1.sum(1), g2.sum(1), g3.sum(1), -_row_dot(g1, logx["N"]),
                             -_row_dot(g2, logx["D"])], axis=1)

        return pred, vjp

    def report(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        theta = np.atleast_2d(theta)
        # A bootstrap refit that ran away can hold log A or log B past float range: its A or B
        # is reported as inf (which the intervals' percentiles tolerate), not warned about.
        with np.errstate(over="ignore"):
            return {"E": np.exp(theta[:, 2]), "A": np.exp(theta[:, 0]), "B": np.exp(theta[:, 1]),
                    "alpha": theta[:, 3], "beta": theta[:, 4]}

    @staticmethod
    def from_report(E: float, A: float, B: float, alpha: float, beta: float) -> np.ndarray:
        """Fitted-parameter vector from published constants."""
        return np.array([np.log(A), np.log(B), np.log(E), alpha, beta])


@dataclass(frozen=True)
class KaplanLaw(Law):
    """L(N, D) = ((N_c / N)^(alpha_N / alpha_D) + D_c / D)^alpha_D.

    Kaplan et al. 2020, "Scaling Laws for Neural Language Models", eq. 1.5 (N counts
    non-embedding parameters). Fitted here like the Chinchilla law: Huber loss on log L,
    L-BFGS from a grid over log N_c, log D_c, alpha_N, alpha_D.
    """

    name: ClassVar[str] = "kaplan"
    title: ClassVar[str] = "Kaplan loss law"
    citation: ClassVar[str] = "Kaplan et al. 2020, eq. 1.5"
    formula: ClassVar[str] = "L = ((N_c/N)^(alpha_N/alpha_D) + D_c/D)^alpha_D"
    params: ClassVar[tuple[str, ...]] = ("log_Nc", "log_Dc", "alpha_N", "alpha_D")

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D")

    def grid(self) -> np.ndarray:
        logs = np.array([10.0, 20.0, 30.0, 40.0])
        exponents = np.array([0.05, 0.1, 0.2, 0.5])
        return _grid(logs, logs, exponents, exponents)

    def _parts(self, theta: np.ndarray, logx: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        log_nc, log_dc, alpha_n, alpha_d = (_col(theta, j) for j in range(4))
        u = (alpha_n / alpha_d) * (log_nc - logx["N"])
        v = log_dc - logx["D"]
        s = np.logaddexp(u, v)
        return alpha_d * s, u, v, s

    def log_predict(self, theta: np.ndarray, logx: Mapping[str, np.ndarray]) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return self._parts(theta, logx)[0]

    def log_predict_vjp(self, theta: np.ndarray,
                        logx: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Vjp]:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            pred, u, v, s = self._parts(theta, logx)
            p, q = np.exp(u - s), np.exp(v - s)
        log_nc, alpha_n, alpha_d = _col(theta, 0), _col(theta, 2), _col(theta, 3)

        def vjp(w: np.ndarray) -> np.ndarray:
            wp = w * p
            return np.stack([(wp * alpha_n).sum(1), (w * q * alpha_d).sum(1),
                             log_nc[:, 0] * wp.sum(1) - _row_dot(wp, logx["N"]),
                             (w * (s - p * u)).sum(1)], axis=1)

        return pred, vjp

    def report(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        theta = np.atleast_2d(theta)
        return {"N_c": np.exp(theta[:, 0]), "D_c": np.exp(theta[:, 1]),
                "alpha_N": theta[:, 2], "alpha_D": theta[:, 3]}

    @staticmethod
    def from_report(N_c: float, D_c: float, alpha_N: float, alpha_D: float) -> np.ndarray:
        """Fitted-parameter vector from published constants."""
        return np.array([np.log(N_c), np.log(D_c), alpha_N, alpha_D])


@dataclass(frozen=True)
class PowerLaw(Law):
    """L(x) = E + A / x^alpha, one input x (parameters N or tokens D).

    The power law with an irreducible term of Hestness et al. 2017, "Deep Learning Scaling
    is Predictable, Empirically". Fitted as log L = LSE(a - alpha log x, e), Huber loss on
    log L, L-BFGS from a grid (a in 0..25 by 5, e in -1..1 by 0.5, alpha in 0..2 by 0.5).
    """

    name: ClassVar[str] = "power"
    title: ClassVar[str] = "power law with irreducible term"
    citation: ClassVar[str] = "Hestness et al. 2017"
    formula: ClassVar[str] = "L = E + A/x^alpha"
    params: ClassVar[tuple[str, ...]] = ("a", "e", "alpha")
    x: str = "D"

    def __post_init__(self) -> None:
        if self.x not in ("N", "D"):
            raise ValueError(f"power law input must be N or D, not {self.x!r}")

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.x,)

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "x": self.x}

    def grid(self) -> np.ndarray:
        return _grid(np.arange(0.0, 30.0, 5.0), np.arange(-1.0, 1.5, 0.5), np.arange(0.0, 2.5, 0.5))

    def _terms(self, theta: np.ndarray, logx: Mapping[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        a, e, alpha = (_col(theta, j) for j in range(3))
        t1 = a - alpha * logx[self.x]
        return _lse3(t1, np.broadcast_to(e, t1.shape), np.full(t1.shape, -np.inf))

    def log_predict(self, theta: np.ndarray, logx: Mapping[str, np.ndarray]) -> np.ndarray:
        return self._terms(theta, logx)[0]

    def log_predict_vjp(self, theta: np.ndarray,
                        logx: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Vjp]:
        pred, w1, w2, _, s = self._terms(theta, logx)

        def vjp(v: np.ndarray) -> np.ndarray:
            q = v / s
            g1 = w1 * q
            return np.stack([g1.sum(1), (w2 * q).sum(1), -_row_dot(g1, logx[self.x])], axis=1)

        return pred, vjp

    def report(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        theta = np.atleast_2d(theta)
        return {"E": np.exp(theta[:, 1]), "A": np.exp(theta[:, 0]), "alpha": theta[:, 2]}


@dataclass(frozen=True)
class DataConstrainedLaw(Law):
    """Chinchilla's law with effective data D' and effective parameters N' for repetition.

    Muennighoff et al. 2023, "Scaling Data-Constrained Language Models":
    U_D = min(U, D) unique tokens seen, R_D = D/U_D - 1 repetitions,
    D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*));
    U_N = min(N, N_opt(U_D)), N_opt(U) = G (U G)^(beta/alpha), G = (alpha A / (beta B))^(1/(alpha+beta)),
    R_N = N/U_N - 1, N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*));
    L = E + A / N'^alpha + B / D'^beta.
    Fitted like the Chinchilla law (Huber loss on log L, L-BFGS); the starts are the best
    Chinchilla fits of the single-epoch runs crossed with a grid over log R_D*, log R_N*
    (the paper fits the base law first and the repetition constants on top of it).
    """

    name: ClassVar[str] = "data-constrained"
    title: ClassVar[str] = "data-constrained loss law"
    citation: ClassVar[str] = "Muennighoff et al. 2023"
    formula: ClassVar[str] = "L = E + A/N'^alpha + B/D'^beta"
    params: ClassVar[tuple[str, ...]] = ("a", "b", "e", "alpha", "beta", "log_RD", "log_RN")
    base_grid: np.ndarray | None = field(default=None, compare=False)

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("N", "D", "U")

    def repetition_grid(self) -> np.ndarray:
        """Starting values of (log R_D*, log R_N*) crossed with the base fits."""
        logs = np.log([1.0, 4.0, 16.0, 64.0])
        return _grid(logs, logs)

    def grid(self) -> np.ndarray:
        base = ChinchillaLaw(start_grid=self.base_grid).grid()
        rep = self.repetition_grid()
        return np.array([np.concatenate([b_, r]) for b_ in base for r in rep])

    def _effective_parts(self, theta: np.ndarray,
                         logx: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """log N', log D' and the intermediate terms their derivatives need."""
        a, b, _, alpha, beta, log_rd, log_rn = (_col(theta, j) for j in range(7))
        log_n, log_d, log_u = logx["N"], logx["D"], logx["U"]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_ud = np.minimum(log_u, log_d)
            rd_star, rn_star = np.exp(log_rd), np.exp(log_rn)
            x_d = np.expm1(log_d - log_ud) / rd_star
            h_d = -rd_star * np.expm1(-x_d)
            log_g = (np.log(alpha) + a - np.log(beta) - b) / (alpha + beta)
            log_n_opt = (beta / alpha) * (log_ud + log_g) + log_g
            excess = log_n > log_n_opt
            log_un = np.where(excess, log_n_opt, log_n)
            r_n = np.expm1(log_n - log_un)
            x_n = r_n / rn_star
            h_n = -rn_star * np.expm1(-x_n)
            return {"log_n_eff": log_un + np.log1p(h_n), "log_d_eff": log_ud + np.log1p(h_d),
                    "x_d": x_d, "h_d": h_d, "x_n": x_n, "h_n": h_n, "r_n": r_n,
                    "rd_star": rd_star, "rn_star": rn_star, "log_g": log_g, "log_ud": log_ud,
                    "excess": excess}

    def effective(self, theta: np.ndarray,
                  logx: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """log N' and log D' (effective parameters and data) for parameter rows theta."""
        parts = self._effective_parts(theta, logx)
        return parts["log_n_eff"], parts["log_d_eff"]

    def log_predict(self, theta: np.ndarray, logx: Mapping[str, np.ndarray]) -> np.ndarray:
        log_n_eff, log_d_eff = self.effective(theta, logx)
        return ChinchillaLaw().log_predict(theta[:, :5], {"N": log_n_eff, "D": log_d_eff})

    def log_predict_vjp(self, theta: np.ndarray,
                        logx: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Vjp]:
        """Analytic gradient: the chain rule through N'(a, b, alpha, beta, R_N*), D'(R_D*)."""
        q = self._effective_parts(theta, logx)
        a, b, e, alpha, beta = (_col(theta, j) for j in range(5))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            pred, w1, w2, w3, s = _lse3(a - alpha * q["log_n_eff"], b - beta * q["log_d_eff"],
                                        np.broadcast_to(e, q["log_n_eff"].shape))
            # d log D' / d log R_D*, d log N' / d log R_N*
            dd_rd = q["rd_star"] * (-np.expm1(-q["x_d"]) - q["x_d"] * np.exp(-q["x_d"])) / (
                1.0 + q["h_d"])
            dn_rn = q["rn_star"] * (-np.expm1(-q["x_n"]) - q["x_n"] * np.exp(-q["x_n"])) / (
                1.0 + q["h_n"])
            # d log N' / d log N_opt where N > N_opt(U), else 0
            dn_opt = np.where(q["excess"], 1.0 - np.exp(-q["x_n"]) * (q["r_n"] + 1.0) / (
                1.0 + q["h_n"]), 0.0)
            ab = alpha + beta
            dg_alpha = 1.0 / (alpha * ab) - q["log_g"] / ab
            dg_beta = -1.0 / (beta * ab) - q["log_g"] / ab
            opt_alpha = -(beta / alpha ** 2) * (q["log_ud"] + q["log_g"]) + (ab / alpha) * dg_alpha
            opt_beta = (q["log_ud"] + q["log_g"]) / alpha + (ab / alpha) * dg_beta

        def vjp(v: np.ndarray) -> np.ndarray:
            g1, g2 = v * w1 / s, v * w2 / s  # v times the softmax weights of the two terms
            n_term = -alpha * g1 * dn_opt  # d pred / d log N_opt, through N'
            cols = [g1 + n_term / alpha, g2 - n_term / alpha, v * w3 / s,
                    -g1 * q["log_n_eff"] + n_term * opt_alpha,
                    -g2 * q["log_d_eff"] + n_term * opt_beta,
                    -beta * g2 * dd_rd, -alpha * g1 * dn_rn]
            return np.stack([np.nan_to_num(c).sum(axis=1) for c in cols], axis=1)

        return pred, vjp

    def report(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        theta = np.atleast_2d(theta)
        out = ChinchillaLaw().report(theta[:, :5])
        out["R_D*"] = np.exp(theta[:, 5])
        out["R_N*"] = np.exp(theta[:, 6])
        return out

    @staticmethod
    def from_report(E: float, A: float, B: float, alpha: float, beta: float, R_D: float,
                    R_N: float) -> np.ndarray:
        """Fitted-parameter vector from published constants."""
        return np.array([np.log(A), np.log(B), np.log(E), alpha, beta, np.log(R_D), np.log(R_N)])


@dataclass(frozen=True)
class DownstreamLogLaw(Law):
    """f(D) = (log(A D^alpha))^beta for a downstream metric (BLEU, accuracy) vs tokens D.

    The log-law of Isik et al. 2024, "Scaling Laws for Downstream Task Performance of Large
    Language Models", for translation quality against pretraining tokens. Fitted with a
    Huber loss on log f (so relative errors count), L-BFGS from a grid over
    (log A, alpha, beta); starts where log(A D^alpha) <= 0 for some run are skipped.
    """

    name: ClassVar[str] = "downstream"
    title: ClassVar[str] = "downstream log-law"
    citation: ClassVar[str] = "Isik et al. 2024"
    formula: ClassVar[str] = "f = (log(A D^alpha))^beta"
    params: ClassVar[tuple[str, ...]] = ("log_A", "alpha", "beta")
    target: ClassVar[str] = "metric"

    @property
    def inputs(self) -> tuple[str, ...]:
        return ("D",)

    def grid(self) -> np.ndarray:
        return _grid(np.array([-20.0, -10.0, -5.0, 0.0, 5.0, 10.0]),
                     np.array([0.05, 0.1, 0.25, 0.5, 1.0, 2.0]), np.array([0.5, 1.0, 2.0, 4.0]))

    def _inner(self, theta: np.ndarray, logx: Mapping[str, np.ndarray]) -> np.ndarray:
        return _col(theta, 0) + _col(theta, 1) * logx["D"]

    def log_predict(self, theta: np.ndarray, logx: Mapping[str, np.ndarray]) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return _col(theta, 2) * np.log(self._inner(theta, logx))

    def log_predict_vjp(self, theta: np.ndarray,
                        logx: Mapping[str, np.ndarray]) -> tuple[np.ndarray, Vjp]:
        c = self._inner(theta, logx)
        with np.errstate(invalid="ignore", divide="ignore"):
            log_c = np.log(c)
        beta = _col(theta, 2)

        def vjp(v: np.ndarray) -> np.ndarray:
            q = v * beta / c
            return np.stack([q.sum(1), _row_dot(q, logx["D"]), (v * log_c).sum(1)], axis=1)

        return beta * log_c, vjp

    def report(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        theta = np.atleast_2d(theta)
        return {"A": np.exp(theta[:, 0]), "alpha": theta[:, 1], "beta": theta[:, 2]}


LAWS: dict[str, type[Law]] = {
    law.name: law
    for law in (ChinchillaLaw, KaplanLaw, PowerLaw, DataConstrainedLaw, DownstreamLogLaw)
}


def make_law(name: str, **options: Any) -> Law:
    """The law registered as ``name`` (see ``LAWS``), with options such as ``x`` for power."""
    try:
        cls = LAWS[name]
    except KeyError:
        raise ValueError(f"unknown law {name!r}; choose from {', '.join(LAWS)}") from None
    return cls(**options)
