"""Split a step list into stages at global steps.

``[a, b, G, c, H]`` becomes three stages::

    stage 0: a, b, then G's keys          -> intermediate shards
    (G.fit over the keys of every shard)
    stage 1: G.apply, c, then H's keys    -> intermediate shards
    (H.fit)
    stage 2: H.apply                      -> output

Every stage keeps the shard layout of the input, so a shard is the unit of work, of
output and of resume in every stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from assay.errors import AssayError
from assay.steps import DocumentStep, GlobalStep, Step


class PipelineError(AssayError, ValueError):
    """A step list that cannot be planned; ``step`` is the index of the offending step."""

    def __init__(self, message: str, step: int) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class Stage:
    index: int
    # Global step whose decisions this stage applies first (fitted after the previous stage).
    apply: GlobalStep | None = None
    steps: list[DocumentStep] = field(default_factory=list)
    # Global step whose keys this stage computes last (fitted after this stage).
    keys_for: GlobalStep | None = None


def plan_stages(steps: Sequence[Step]) -> list[Stage]:
    names = [s.name for s in steps]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        second = next(i for i, n in enumerate(names) if n in repeated and names.index(n) < i)
        raise PipelineError(
            f"step(s) {', '.join(repeated)} appear more than once; a step's signals are "
            "namespaced by its name, so each step may appear once in a pipeline", second
        )
    stages = [Stage(0)]
    produced: set[str] = set()
    for index, step in enumerate(steps):
        if isinstance(step, GlobalStep):
            missing = [c for c in step.requires() if c not in produced]
            if missing:
                raise PipelineError(
                    f"step {step.name} needs column(s) {', '.join(missing)} from an earlier step; "
                    f"earlier steps produce: {', '.join(sorted(produced)) or 'nothing'}", index
                )
            stages[-1].keys_for = step
            stages.append(Stage(len(stages), apply=step))
        elif isinstance(step, DocumentStep):
            stages[-1].steps.append(step)
        else:
            raise TypeError(f"{type(step).__name__} is neither a DocumentStep nor a GlobalStep")
        produced.update(step.signal_columns())
    return stages
