"""Every pipeline step, registered by name: one folder per kind (``filters/``, ``dedup/``, ``llm/``,
``transforms/``, ``select/``, ``decontaminate/``), the interface and the table of step names
(each imported when a recipe names it) in :mod:`.base`."""

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
