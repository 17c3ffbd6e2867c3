"""The local executor: worker processes on this machine (the embedded default).

Workers are spawned (not forked: steps hold models and threads) and initialised once with
the run's :class:`~assay.engine.worker.WorkerContext`; at most two tasks per worker are in
flight, so the driver reads ahead while every worker stays busy. With one worker, tasks run
in the driver's own process. Workers die with the driver (see
:func:`assay.engine.worker.init_worker`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from assay.engine.executor import Report
from assay.engine.settings import RunError
from assay.engine.worker import Task, WorkerContext, init_worker, run_task, run_task_in_worker


class LocalExecutor:
    """Runs tasks in a pool of ``workers`` processes (or in-process for one worker)."""

    runs_here = True

    def __init__(self, ctx: WorkerContext, workers: int) -> None:
        self.ctx = ctx
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1:
            self.pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_worker, initargs=(ctx, os.getpid()),
            )
        else:
            init_worker(ctx)

    def run(self, tasks: Iterable[Task], on_done: Callable[[Report], None]) -> None:
        if self.pool is None:
            for task in tasks:
                on_done(run_task(self.ctx, task))
            return
        in_flight: set[Future[Report]] = set()
        try:
            for task in tasks:
                in_flight.add(self.pool.submit(run_task_in_worker, task))
                if len(in_flight) >= 2 * self.workers:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        on_done(future.result())
            for future in _as_completed(in_flight):
                on_done(future.result())
        except BrokenProcessPool as exc:
            raise RunError(
                f"a worker process died ({exc}); finished shards are kept: re-run the same "
                "command (or with --resume) to finish the rest (from a Python script, run assay "
                "under `if __name__ == \"__main__\":`, or every worker runs the script again)"
            ) from None

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        if self.pool is None:
            return [fn(item) for item in items]
        try:
            return list(self.pool.map(fn, items))
        except BrokenProcessPool as exc:
            raise RunError(
                f"a worker process died while fitting ({exc}); finished shards are kept: re-run "
                "the same command (or with --resume) to finish the rest"
            ) from None

    def describe(self) -> dict[str, Any]:
        return {"kind": "local", "workers": self.workers}

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _as_completed(futures: set[Future[Report]]) -> Iterator[Future[Report]]:
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from done
