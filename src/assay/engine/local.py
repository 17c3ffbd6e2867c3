"""The local executor: worker processes on this machine (the embedded default).

Workers are spawned (not forked: steps hold models and threads) and initialised once with
the run's :class:`~assay.engine.worker.WorkerContext`; at most two tasks per worker are in
flight, so the driver reads ahead while every worker stays busy. With one worker, tasks run
in the driver's own process. Workers die with the driver (see
:func:`assay.engine.worker.init_worker`).

Workers allocate Arrow memory with malloc (``ARROW_DEFAULT_MEMORY_POOL=system``, unless the
environment names a pool: pyarrow reads it once, as it loads, so a worker starts with it)
and hand freed memory back after each task and each piece of a fit's map work
(:func:`~assay.engine.worker.release_memory`). A task allocates a shard's tables, arrays
and Parquet buffers, a few MB each, and frees them: pyarrow's default, mimalloc, keeps
such blocks in caches per thread (the Parquet reader's and writer's threads too), and
malloc keeps what it does not trim. On the DSIR benchmark (2 MB shards, 2 workers) the
process tree's peak is ~560 MB without either, ~410 MB with malloc, ~340 MB with the
trim too, which costs ~10% more CPU in the tasks (the next task faults the pages in again).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.context import SpawnContext, SpawnProcess
from typing import Any

from assay.engine.executor import Report
from assay.engine.settings import RunError
from assay.engine.worker import (
    Task,
    WorkerContext,
    call_in_worker,
    init_worker,
    run_task,
    run_task_in_worker,
)

# Set in a worker process's environment when it starts, unless already set. The workers are
# the parallelism, so numpy's BLAS gets one thread in each: its own pool of a thread per core
# would compete with the other workers (and its idle threads spin; Ray's workers set
# OMP_NUM_THREADS=1 for the same reason).
WORKER_ENVIRONMENT = {"ARROW_DEFAULT_MEMORY_POOL": "system", "OPENBLAS_NUM_THREADS": "1"}


class _WorkerProcess(SpawnProcess):
    """A spawned worker that starts with :data:`WORKER_ENVIRONMENT`."""

    def start(self) -> None:
        added = {k: v for k, v in WORKER_ENVIRONMENT.items() if k not in os.environ}
        os.environ.update(added)
        try:
            super().start()
        finally:
            for key in added:
                del os.environ[key]


class _WorkerSpawn(SpawnContext):
    Process = _WorkerProcess


class LocalExecutor:
    """Runs tasks in a pool of ``workers`` processes (or in-process for one worker)."""

    runs_here = True

    def __init__(self, ctx: WorkerContext, workers: int) -> None:
        self.ctx = ctx
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1:
            self.pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=_WorkerSpawn(),
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
            return list(self.pool.map(functools.partial(call_in_worker, fn), items))
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
