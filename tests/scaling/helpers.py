"""Inputs of the scaling tests: the Epoch AI Chinchilla data and synthetic runs."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

from assay.scaling.laws import Law
from assay.scaling.runs import Runs, runs_from_arrays

ROOT = Path(__file__).resolve().parents[2]
# Besiroglu et al.'s extraction of the Chinchilla runs (see tests/fixtures/README.md).
EPOCH_CSV = ROOT / "tests" / "fixtures" / "chinchilla_runs_epoch.csv"

# A coarse grid of Chinchilla starts (192) for tests that do not test the 4,500-start grid.
COARSE_CHINCHILLA = np.array(list(itertools.product(
    [0.0, 5.0, 10.0, 20.0], [0.0, 5.0, 10.0, 20.0], [-1.0, 0.0, 1.0], [0.5, 1.0], [0.5, 1.0])))


def load_epoch_runs() -> Runs:
    """Besiroglu et al.'s 245 extracted Chinchilla runs less the 5 largest losses (240)."""
    with EPOCH_CSV.open() as f:
        rows = list(csv.DictReader(f))
    n = np.array([float(r["Model Size"]) for r in rows])
    flops = np.array([float(r["Training FLOP"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    keep = np.sort(np.argsort(loss, kind="stable")[:-5])
    return runs_from_arrays(N=n[keep], D=flops[keep] / (6.0 * n[keep]), loss=loss[keep],
                            source=str(EPOCH_CSV))


def mesh(**axes: np.ndarray) -> dict[str, np.ndarray]:
    """Every combination of the axes' values, as columns."""
    grid = np.array(list(itertools.product(*axes.values())))
    return {k: grid[:, i] for i, k in enumerate(axes)}


def synthetic_runs(law: Law, theta: np.ndarray, inputs: dict[str, np.ndarray], noise: float,
                   seed: int) -> Runs:
    """Runs drawn from a known law with multiplicative log-normal noise of sd ``noise``."""
    rng = np.random.default_rng(seed)
    clean = law.predict(theta, **inputs)
    return runs_from_arrays(target=law.target, **inputs,
                            **{law.target: clean * np.exp(rng.normal(0.0, noise, len(clean)))})
