"""Comparing two data recipes through their fitted laws.

"Recipe B reaches recipe A's loss with x% fewer tokens at N = 1B": take A's predicted loss
at (N, D), solve B's law for the tokens D_B that give the same loss at the same N, and
report 1 - D_B / D. The interval pairs bootstrap sample i of A with sample i of B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from assay.scaling.fit import FittedLaw
from assay.scaling.laws import Law


def tokens_to_reach(law: Law, theta: np.ndarray, log_target: np.ndarray, n: float,
                    d_guess: float, span: float = 25.0, steps: int = 60) -> np.ndarray:
    """Tokens at which the law (rows of theta) predicts exp(log_target) at N = n.

    The first crossing on a grid of log D within ``span`` nats of ``d_guess``, refined by
    bisection; NaN where the target is not reached in that range (for example a loss below
    the law's floor E + A/N^alpha). Unique tokens, if the law takes them, equal D.
    """
    theta = np.atleast_2d(theta)
    k = len(theta)
    log_target = np.asarray(log_target, dtype=float).reshape(-1)

    def gap(log_d: np.ndarray) -> np.ndarray:  # log_d (k, m) -> log pred - log target
        logx = {"N": np.full_like(log_d, np.log(n)), "D": log_d, "U": log_d}
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            pred = law.log_predict(theta, {name: logx[name] for name in law.inputs})
        return pred - log_target[:, None]

    grid = np.linspace(np.log(d_guess) - span, np.log(d_guess) + span, 201)
    g = gap(np.broadcast_to(grid, (k, len(grid))).copy())
    cross = (np.isfinite(g[:, :-1]) & np.isfinite(g[:, 1:])
             & (np.sign(g[:, :-1]) != np.sign(g[:, 1:])))
    found = cross.any(axis=1)
    j = np.argmax(cross, axis=1)
    lo, hi = grid[j], grid[j + 1]
    g_lo = g[np.arange(k), j]
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        g_mid = gap(mid[:, None])[:, 0]
        same = np.sign(g_mid) == np.sign(g_lo)
        lo, g_lo = np.where(same, mid, lo), np.where(same, g_mid, g_lo)
        hi = np.where(same, hi, mid)
    return np.where(found, np.exp(0.5 * (lo + hi)), np.nan)


@dataclass(frozen=True)
class TokenSaving:
    """How many fewer tokens ``other`` needs to match ``reference`` at (N, D)."""

    reference: str
    other: str
    n: float
    d: float
    target: float
    d_other: float
    saving: float
    low: float
    high: float
    confidence: float

    def sentence(self) -> str:
        """One line a person reads."""
        if not np.isfinite(self.saving):
            return (f"recipe {self.other} does not reach recipe {self.reference}'s "
                    f"{self.target:.4f} at N={self.n:.3g} within the tokens searched")
        word = "fewer" if self.saving >= 0 else "more"
        band = (f" ({100 * self.confidence:.0f}% interval {100 * self.low:+.1f}% to "
                f"{100 * self.high:+.1f}%)") if np.isfinite(self.low) else ""
        return (f"recipe {self.other} reaches recipe {self.reference}'s {self.target:.4f} "
                f"(at N={self.n:.3g}, D={self.d:.3g}) with {abs(100 * self.saving):.1f}% {word} "
                f"tokens: D={self.d_other:.3g}{band}")

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference, "other": self.other, "N": self.n, "D": self.d,
                "target": self.target, "D_other": _num(self.d_other),
                "saving": _num(self.saving), "low": _num(self.low), "high": _num(self.high),
                "confidence": self.confidence}


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def compare_tokens(reference: FittedLaw, other: FittedLaw, n: float, d: float) -> TokenSaving:
    """Token saving of ``other`` at reference's predicted target at (N=n, D=d)."""
    if "D" not in other.law.inputs or "D" not in reference.law.inputs:
        raise ValueError("comparing recipes needs laws of tokens D")
    inputs = {"N": n, "D": d, "U": d}
    target = float(reference.predict(**{k: inputs[k] for k in reference.law.inputs}).value[0])
    d_other = float(tokens_to_reach(other.law, other.theta, np.array([np.log(target)]), n, d)[0])
    low = high = np.nan
    pairs = min(len(reference.samples), len(other.samples))
    if pairs:
        logx = {"N": np.full((1, 1), np.log(n)), "D": np.full((1, 1), np.log(d)),
                "U": np.full((1, 1), np.log(d))}
        with np.errstate(invalid="ignore", over="ignore"):
            targets = reference.law.log_predict(reference.samples[:pairs], {
                k: logx[k] for k in reference.law.inputs})[:, 0]
        draws = 1.0 - tokens_to_reach(other.law, other.samples[:pairs], targets, n, d) / d
        draws = draws[np.isfinite(draws)]
        if len(draws):
            tail = 50.0 * (1.0 - reference.confidence)
            low, high = np.percentile(draws, [tail, 100.0 - tail])
    return TokenSaving(str(reference.group), str(other.group), n, d, target, d_other,
                       1.0 - d_other / d, float(low), float(high), reference.confidence)
