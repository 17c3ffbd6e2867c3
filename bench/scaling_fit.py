"""Benchmark: the Chinchilla grid fit of Besiroglu et al. (2024) on their 240 runs.

assay's fit (4,500 L-BFGS starts advanced together as arrays, then refinement) against the
procedure as published: scipy's L-BFGS-B run once per start, on a lean numpy objective
(the same Huber loss of the log-sum-exp law, with its analytic gradient). The peer runs
every ``--peer-stride``-th start
and its time is scaled to 4,500 starts (``--peer-stride 1`` runs them all). Prints the
median times, the ratio, the best objective each found, and whether assay's fit meets the
30 s budget. Also times the 1,000-resample bootstrap.

usage: .venv/bin/python bench/scaling_fit.py [--reps 3] [--peer-stride 10]
data:  tests/fixtures/chinchilla_runs_epoch.csv (Besiroglu et al.'s extraction; see tests/fixtures/README.md)
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from assay.scaling.fit import fit_law
from assay.scaling.laws import ChinchillaLaw
from assay.scaling.runs import Runs, runs_from_arrays

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "chinchilla_runs_epoch.csv"
BUDGET_S = 30.0


def epoch_runs() -> Runs:
    with DATA.open() as f:
        rows = list(csv.DictReader(f))
    n = np.array([float(r["Model Size"]) for r in rows])
    flops = np.array([float(r["Training FLOP"]) for r in rows])
    loss = np.array([float(r["loss"]) for r in rows])
    keep = np.sort(np.argsort(loss, kind="stable")[:-5])  # drop the 5 largest losses
    return runs_from_arrays(N=n[keep], D=flops[keep] / (6 * n[keep]), loss=loss[keep])


def peer(runs: Runs, stride: int) -> tuple[float, float, int]:
    """scipy L-BFGS-B from every stride-th start; (seconds, best objective, starts run)."""
    law = ChinchillaLaw()
    log_n, log_d = np.log(runs.columns["N"]), np.log(runs.columns["D"])
    log_loss = np.log(runs.columns["loss"])
    delta = 1e-3

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b, e, alpha, beta = theta
        t1, t2 = a - alpha * log_n, b - beta * log_d
        pred = np.logaddexp(np.logaddexp(t1, t2), e)
        r = pred - log_loss
        dr = np.clip(r, -delta, delta)
        w1, w2, w3 = dr * np.exp(t1 - pred), dr * np.exp(t2 - pred), dr * np.exp(e - pred)
        return float(dr @ (r - 0.5 * dr)), np.array(
            [w1.sum(), w2.sum(), w3.sum(), -(w1 @ log_n), -(w2 @ log_d)])

    starts = law.grid()[::stride]
    with np.errstate(over="ignore", invalid="ignore"):
        begin = time.perf_counter()
        best = min(minimize(fun, x0, jac=True, method="L-BFGS-B").fun for x0 in starts)
        return time.perf_counter() - begin, float(best), len(starts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--peer-stride", type=int, default=10)
    args = parser.parse_args()
    runs = epoch_runs()
    print(f"runs: {len(runs)}  starts: {len(ChinchillaLaw().grid())}  "
          f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}  cpus: {os.cpu_count()}")
    times = []
    for _ in range(args.reps):
        begin = time.perf_counter()
        fit = fit_law(ChinchillaLaw(), runs, bootstrap=0)
        times.append(time.perf_counter() - begin)
    ours = statistics.median(times)
    params = ", ".join(f"{k}={v:.5g}" for k, v in fit.model.params().items())
    print(f"assay grid fit:   median {ours:6.2f} s over {args.reps} "
          f"({', '.join(f'{t:.2f}' for t in times)}); objective {fit.objective:.6e}; "
          f"{fit.starts_converged}/{fit.starts} starts converged; {params}")
    peer_s, peer_best, peer_starts = peer(runs, args.peer_stride)
    scaled = peer_s * len(ChinchillaLaw().grid()) / peer_starts
    print(f"scipy per start:  {peer_s:6.2f} s for {peer_starts} starts -> {scaled:6.2f} s for 4500; "
          f"best objective {peer_best:.6e}")
    print(f"ratio (scipy per start / assay): {scaled / ours:.1f}x")
    begin = time.perf_counter()
    boot = fit_law(ChinchillaLaw(), runs, bootstrap=1000)
    print(f"fit + 1000 bootstrap refits: {time.perf_counter() - begin:6.2f} s "
          f"({boot.bootstrap_converged}/1000 converged)")
    verdict = "PASS" if ours < BUDGET_S else "FAIL"
    print(f"{verdict}: 240-run, 4,500-start fit in {ours:.2f} s (budget {BUDGET_S:.0f} s)")


if __name__ == "__main__":
    main()
