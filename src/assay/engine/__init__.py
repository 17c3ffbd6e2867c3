"""Running a pipeline: planning stages (:mod:`.plan`), the driver (:mod:`.driver`), the work
of one task (:mod:`.worker`), executors (:mod:`.executor`; :mod:`.local` is the default),
the books (:mod:`.books`), the fingerprint and the manifest."""

from assay.engine.driver import run_pipeline
from assay.engine.plan import Stage, plan_stages
from assay.engine.settings import RunError, RunResult, RunSettings
from assay.engine.stats import AccountingError

__all__ = ["AccountingError", "RunError", "RunResult", "RunSettings", "Stage", "plan_stages", "run_pipeline"]
