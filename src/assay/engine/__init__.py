"""Turning a list of steps into stages, running them, and keeping the books."""

from assay.engine.local import RunError, RunResult, run_pipeline
from assay.engine.plan import Stage, plan_stages
from assay.engine.stats import AccountingError

__all__ = ["AccountingError", "RunError", "RunResult", "Stage", "plan_stages", "run_pipeline"]
