"""The interface an executor implements: where tasks run.

The driver (:mod:`assay.engine.driver`) plans stages, cuts shards, keeps the books and
writes the manifest; an executor only runs what it is given. Two things need running:
tasks (one stage on one shard, through :func:`assay.engine.worker.run_task`), whose reports
come back to the driver, and a global step's map work during its fit
(``FitContext.map``). The local executor (:mod:`assay.engine.local`) runs both in worker
processes on this machine; another executor implements the same four members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from assay.engine.worker import Task

Report = dict[str, Any]


class Executor(Protocol):
    workers: int  # how many tasks run at once (global steps size their map work by it)

    def run(self, tasks: Iterable[Task], on_done: Callable[[Report], None]) -> None:
        """Run every task (in any order) and call ``on_done`` with each task's report, in the
        driver, as tasks finish; raise :class:`~assay.engine.settings.RunError` if a worker is
        lost, after which finished tasks stay finished."""
        ...

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, in order, run where the tasks run."""
        ...

    def close(self) -> None:
        """Stop the workers."""
        ...
