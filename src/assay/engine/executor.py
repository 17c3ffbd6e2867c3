"""The interface an executor implements: where tasks run.

The driver (:mod:`assay.engine.driver`) plans stages, cuts shards, keeps the books and
writes the manifest; an executor only runs what it is given. Two things need running:
tasks (one stage on one shard, through :func:`assay.engine.worker.run_task`), whose reports
come back to the driver, and a global step's map work during its fit
(``FitContext.map``). The local executor (:mod:`assay.engine.local`) runs both in worker
processes on this machine; the Ray executor (:mod:`assay.engine.ray`) runs them as Ray tasks
on a cluster. :func:`open_executor` picks one from the run's settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from assay.engine.settings import RunSettings
from assay.engine.worker import Task, WorkerContext

Report = dict[str, Any]


class Executor(Protocol):
    workers: int  # how many tasks run at once (global steps size their map work by it)
    runs_here: bool  # whether every task runs on this machine (and sees its temporary folders)

    def run(self, tasks: Iterable[Task], on_done: Callable[[Report], None]) -> None:
        """Run every task (in any order) and call ``on_done`` with each task's report, in the
        driver, as tasks finish; raise :class:`~assay.engine.settings.RunError` if a worker is
        lost, after which finished tasks stay finished."""
        ...

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, in order, run where the tasks run."""
        ...

    def describe(self) -> dict[str, Any]:
        """The manifest's ``executor`` entries: kind, workers and settings."""
        ...

    def close(self) -> None:
        """Stop the workers."""
        ...


def open_executor(settings: RunSettings, ctx: WorkerContext) -> Executor:
    """The executor the settings ask for, started (Ray only imported when asked for)."""
    if settings.ray is None:
        from assay.engine.local import LocalExecutor

        return LocalExecutor(ctx, settings.workers)
    from assay.engine.ray import RayExecutor

    return RayExecutor(ctx, settings.ray, settings.inputs, settings.shard_bytes, settings.workers)
