"""PNG plot of fitted laws: runs, fitted slices, bootstrap band into the extrapolation.

matplotlib is an optional dependency (``pip install 'assay[plot]'``); everything else in
assay.scaling works without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from assay.errors import AssayError
from assay.io.ownership import WRITTEN_BY
from assay.scaling.fit import FittedLaw, LawFit
from assay.scaling.runs import Runs

EXTRAPOLATE = 10.0  # slices run to this multiple of the largest x observed
SLICES = 5  # at most this many N slices per panel


class PlotUnavailable(AssayError, RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable("the PNG plot needs matplotlib: pip install 'assay[plot]'") from None
    return plt


def plot_fits(fits: Mapping[str | None, LawFit], runs: Runs, path: str | Path) -> Path:
    """One column per group: runs and fitted slices (top), log residuals (bottom)."""
    plt = _pyplot()
    groups = runs.by_group()
    fig, axes = plt.subplots(2, len(fits), figsize=(5.5 * len(fits), 7.5), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1]})
    for col, (name, fit) in enumerate(fits.items()):
        top, bottom = axes[0, col], axes[1, col]
        _panel(top, fit, groups[name], plt)
        x_name = "D" if "D" in fit.model.law.inputs else fit.model.law.inputs[0]
        x = groups[name].columns.get(x_name, np.full(len(fit.observed), np.nan))
        bottom.scatter(x, fit.residuals, s=10, color="black")
        bottom.axhline(0.0, color="grey", lw=0.8)
        bottom.set_xscale("log")
        bottom.set_xlabel("tokens D" if x_name == "D" else "parameters N")
        bottom.set_ylabel("log pred - log obs")
        title = fit.model.law.title + ("" if name is None else f" - {name}")
        status = "" if fit.converged else " (NOT CONVERGED)"
        top.set_title(f"{title}{status}\n{fit.model.law.formula}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120, metadata={"Software": WRITTEN_BY})
    plt.close(fig)
    return path


def _panel(ax: Any, fit: LawFit, runs: Runs, plt: Any) -> None:
    law = fit.model.law
    model = fit.model
    target = runs.target
    if "N" in law.inputs and "D" in law.inputs:
        n, d = runs.columns["N"], runs.columns["D"]
        cmap = plt.get_cmap("viridis")
        log_n = np.log(n)
        span = (log_n.max() - log_n.min()) or 1.0
        ax.scatter(d, fit.observed, c=cmap((log_n - log_n.min()) / span), s=14, zorder=3)
        levels = np.unique(np.quantile(n, np.linspace(0, 1, SLICES)))
        grid = np.geomspace(d.min(), d.max() * EXTRAPOLATE, 200)
        u = float(np.median(runs.columns["U"])) if "U" in law.inputs else None
        for level in levels:
            inputs = {"N": np.full_like(grid, level), "D": grid}
            if u is not None:
                inputs["U"] = np.full_like(grid, u)
            colour = cmap((np.log(level) - log_n.min()) / span)
            _curve(ax, model, inputs, grid, d.max(), colour, f"N={level:.3g}")
        if u is not None:
            ax.text(0.02, 0.02, f"slices at U={u:.3g}", transform=ax.transAxes, fontsize=8)
        ax.set_xlabel("tokens D")
    else:
        x_name = law.inputs[0]
        x = runs.columns[x_name]
        ax.scatter(x, fit.observed, color="black", s=14, zorder=3)
        grid = np.geomspace(x.min(), x.max() * EXTRAPOLATE, 200)
        _curve(ax, model, {x_name: grid}, grid, x.max(), "tab:blue", "fit")
        ax.set_xlabel("tokens D" if x_name == "D" else "parameters N")
    ax.set_xscale("log")
    ax.set_ylabel(target)
    ax.legend(fontsize=7, loc="upper right")


def _curve(ax: Any, model: FittedLaw, inputs: dict[str, np.ndarray], grid: np.ndarray,
           x_max: float, colour: object, label: str) -> None:
    pred = model.predict(**inputs)
    inside = grid <= x_max
    ax.plot(grid[inside], pred.value[inside], color=colour, lw=1.4, label=label)
    ax.plot(grid[~inside], pred.value[~inside], color=colour, lw=1.4, ls="--")
    if np.isfinite(pred.low).any():
        ax.fill_between(grid, pred.low, pred.high, color=colour, alpha=0.18, lw=0)
