"""Scaling laws: fitting them to training runs and planning compute-optimal runs with them.

``fit_law`` / ``fit_groups`` fit a law from ``laws`` (Chinchilla, Kaplan, power law,
data-constrained, downstream log-law) to ``Runs``; ``make_plan`` turns a budget into N, D,
epochs, learning rate, batch size and vocabulary; ``PUBLISHED`` holds the papers' constants.
"""

from assay.scaling.compare import compare_tokens
from assay.scaling.fit import FittedLaw, LawFit, Prediction, fit_groups, fit_law
from assay.scaling.laws import (
    LAWS,
    ChinchillaLaw,
    DataConstrainedLaw,
    DownstreamLogLaw,
    KaplanLaw,
    Law,
    PowerLaw,
    make_law,
)
from assay.scaling.plan import Plan, PlanError, flops_from_gpu_hours, make_plan
from assay.scaling.published import PUBLISHED
from assay.scaling.runs import Runs, RunsError, read_runs, runs_from_arrays

__all__ = [
    "LAWS", "PUBLISHED", "ChinchillaLaw", "DataConstrainedLaw", "DownstreamLogLaw", "FittedLaw",
    "KaplanLaw", "Law", "LawFit", "Plan", "PlanError", "PowerLaw", "Prediction", "Runs",
    "RunsError", "compare_tokens", "fit_groups", "fit_law", "flops_from_gpu_hours", "make_law",
    "make_plan", "read_runs", "runs_from_arrays",
]
