"""Every pipeline step, one family per module, registered by name."""

from assay.steps import (  # noqa: F401
    c4,
    decontaminate,
    dedup,
    extract,
    fineweb,
    gopher,
    language,
    line_dedup,
    minhash,
    pii,
    select,
)
from assay.steps.base import (
    DocumentStep,
    FitContext,
    GlobalState,
    GlobalStep,
    Step,
    StepOutput,
    StepParams,
    first_failing_rule,
    register,
    step_class,
    step_names,
)

__all__ = [
    "DocumentStep",
    "FitContext",
    "GlobalState",
    "GlobalStep",
    "Step",
    "StepOutput",
    "StepParams",
    "first_failing_rule",
    "register",
    "step_class",
    "step_names",
]
