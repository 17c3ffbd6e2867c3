"""What a run is: its settings, its result, what it tells a progress display, and the error
that stops it. Shared by the driver, the workers and every executor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from assay.engine.ids import IdPolicy
from assay.engine.layout import Layout
from assay.errors import AssayError
from assay.io.chunks import FieldMap
from assay.io.files import InputFile

Notice = Callable[[str], None]


class RunError(AssayError, RuntimeError):
    """A run that cannot start or cannot finish; the message says what to do."""


class Progress(Protocol):
    """What the driver tells a progress display."""

    def stage_started(self, stage: int, description: str, total: int | None) -> None: ...
    def stage_total(self, stage: int, total: int) -> None: ...
    def shard_done(self, stage: int, docs: int) -> None: ...
    def stage_finished(self, stage: int) -> None: ...


class SilentProgress:
    """A progress display that shows nothing."""

    def stage_started(self, stage: int, description: str, total: int | None) -> None:
        pass

    def stage_total(self, stage: int, total: int) -> None:
        pass

    def shard_done(self, stage: int, docs: int) -> None:
        pass

    def stage_finished(self, stage: int) -> None:
        pass


@dataclass(frozen=True)
class RaySettings:
    """Where and how the Ray executor (:mod:`assay.engine.ray`) runs tasks."""

    address: str = "auto"  # "auto" | "local" | HOST:PORT | ray://HOST:PORT
    max_retries: int = 3  # per task, when its worker or node dies (or it times out)
    task_timeout_s: float | None = None  # a task running longer is stopped and retried
    connect_timeout_s: float = 15.0


@dataclass
class RunSettings:
    """Everything a run needs besides the steps."""

    name: str
    inputs: list[InputFile]
    fields: FieldMap
    layout: Layout
    workers: int
    shard_bytes: int
    seed: int = 0
    strict: bool = False
    keep_work: bool = False
    overwrite: bool = False
    resume: bool = False  # require an earlier run of the same recipe to finish
    id_policy: IdPolicy = "keep"
    ray: RaySettings | None = None  # None: the local executor
    resolved_recipe: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """The outcome of a run: where the output is and the manifest written there."""

    output: str
    manifest: dict[str, Any]

    @property
    def totals(self) -> dict[str, int]:
        return self.manifest["totals"]
