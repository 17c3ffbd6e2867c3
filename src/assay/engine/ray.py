"""The Ray executor: the local executor's tasks, as plain Ray tasks on a cluster.

One Ray task runs one stage on one shard through :func:`assay.engine.worker.run_task`,
exactly as a local worker does: it reads its shard (a first-stage task reads its slice of
the input itself, see :mod:`assay.io.slices`), writes its files to the output under
temporary names, renames them, writes its ``_progress`` report and returns only that
report. Documents never pass through Ray's object store, and the output does not depend on
which node ran what or in which order tasks finished: the driver keeps the books by shard.
A global step's map work (``FitContext.map``) runs as Ray tasks too.

Plain tasks rather than Ray Data: Ray Data neither keeps the order of its output by default
nor keeps its batch sizes stable, and either would break byte-identity with a local run.

Failures: a task whose worker process or node dies is retried by Ray (``max_retries``); a
task running past ``task_timeout_s`` is stopped and submitted again, counting as a retry;
a task that raises fails the run at once, naming the shard and the step. Finished shards
stay finished, so the same command (or ``--resume``) on either executor finishes the run.
"""

from __future__ import annotations

import itertools
import logging
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from assay.engine.executor import Report
from assay.engine.settings import RaySettings, RunError
from assay.engine.worker import Task, TaskFailed, WorkerContext, init_worker, run_task
from assay.errors import AssayError
from assay.io.chunks import RawChunk
from assay.io.files import InputFile
from assay.io.slices import ChunkSlice, read_slices, slice_of

INSTALL_HINT = "pip install 'assay[ray]'"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RunError(f"the ray executor needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def connect(settings: RaySettings, workers: int | None = None) -> bool:
    """Connect this process to the cluster at ``settings.address`` (``local``: start a Ray
    instance on this machine with ``workers`` CPUs). Return whether this call connected
    (and so should disconnect); an unreachable address or another Ray version fails in
    seconds with a :class:`RunError`."""
    ray = import_ray()
    if ray.is_initialized():  # a script that connected itself
        return False
    address = settings.address
    options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address == "local":
        options.update(num_cpus=workers, include_dashboard=False)
        target = None
    else:
        _check_reachable(address, settings.connect_timeout_s)
        target = address
    try:
        ray.init(address=target, **options)
    except ConnectionError as exc:
        raise RunError(f"cannot connect to a Ray cluster at {address}: {exc}") from None
    except RuntimeError as exc:
        if "version mismatch" in str(exc).lower():
            raise RunError(_describe_mismatch(str(exc), address)) from None
        raise
    return True


def _describe_mismatch(message: str, address: str) -> str:
    """Ray's multi-line version mismatch report, in one line that says what to do."""
    rays = re.findall(r"Ray: (\S+)", message)
    pythons = re.findall(r"Python: (\S+)", message)
    if len(rays) == 2 and len(pythons) == 2:
        return (f"Ray version mismatch: the cluster at {address} runs Ray {rays[0]} on Python "
                f"{pythons[0]}, this machine Ray {rays[1]} on Python {pythons[1]}; install the "
                "cluster's versions here (or run from a node of the cluster)")
    return f"Ray version mismatch with the cluster at {address}: {' '.join(message.split())}"


def _check_reachable(address: str, timeout_s: float) -> None:
    """Fail fast where ``ray.init`` would wait: nothing listens at HOST:PORT."""
    if address == "auto":
        return  # Ray looks the address up on this machine and fails fast itself
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RunError(f"executor.address {address!r} is not auto, local, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RunError(f"cannot reach the Ray cluster at {address}: {reason} (after at most "
                       f"{timeout_s:g} s); is `ray start --head` running there?") from None


# -- in the Ray workers --------------------------------------------------------------------

_CONTEXTS: dict[str, WorkerContext] = {}


def _run_tasks_in_ray(run_key: str, context: list[Any], tasks: list[Task]) -> list[Report]:
    """Tasks in a Ray worker, in order; first-stage tasks of one file that must be read from
    its start come together and read it once. The run's context travels by reference (in a
    list, so Ray does not fetch it for every task) and is set up once per worker process."""
    ctx = _CONTEXTS.get(run_key)
    if ctx is None:
        import ray

        ctx = ray.get(context[0])
        init_worker(ctx)
        _CONTEXTS.clear()  # a worker process serves one run at a time
        _CONTEXTS[run_key] = ctx
    if len(tasks) > 1 and all(isinstance(t.chunk, ChunkSlice) for t in tasks):
        chunks = read_slices([t.chunk for t in tasks])  # type: ignore[misc]  (read as needed)
        return [run_task(ctx, replace(t, chunk=c)) for t, c in zip(tasks, chunks, strict=True)]
    return [run_task(ctx, task) for task in tasks]


def _call_in_ray(fn: Callable[[Any], Any], item: Any) -> Any:
    return fn(item)


# -- in the driver -------------------------------------------------------------------------


@dataclass
class _Job:
    label: str  # names the work in errors
    submit: Callable[[], Any]  # submits one attempt; returns its ObjectRef
    size: int = 1  # tasks in it (the timeout is per task)
    index: int = 0
    tries: int = 0
    running_since: float | None = None


@dataclass
class RayExecutor:
    """Runs tasks as Ray tasks, one CPU each, at most two per CPU in flight."""

    ctx: WorkerContext | None  # None: map work only (no pipeline tasks)
    settings: RaySettings
    inputs: Sequence[InputFile] = ()  # to describe first-stage chunks as slices of these files
    shard_bytes: int = 0
    workers: int = 0  # 0: every CPU of the cluster
    _ray: Any = None
    _connected: bool = False
    _pending: dict[Any, _Job] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._connected = connect(self.settings, self.workers or None)
        ray = self._ray = import_ray()
        if not self.workers:
            self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        options = {"num_cpus": 1, "max_retries": self.settings.max_retries, "retry_exceptions": False}
        self._task_fn = ray.remote(**options)(_run_tasks_in_ray)
        self._map_fn = ray.remote(**options)(_call_in_ray)
        self._run_key = uuid.uuid4().hex
        self._context = [ray.put(self.ctx)] if self.ctx is not None else []

    @property
    def runs_here(self) -> bool:
        return self.settings.address == "local"

    def describe(self) -> dict[str, Any]:
        return {"kind": "ray", "address": self.settings.address, "workers": self.workers,
                "max_retries": self.settings.max_retries, "task_timeout_s": self.settings.task_timeout_s}

    def run(self, tasks: Iterable[Task], on_done: Callable[[Report], None]) -> None:
        def job(group: list[Task]) -> _Job:
            first = group[0]
            label = f"shard {first.shard}" + (f" (and {len(group) - 1} more)" if len(group) > 1 else "")
            return _Job(f"{label} (stage {first.stage})", size=len(group),
                        submit=lambda: self._task_fn.remote(self._run_key, self._context, group))

        def jobs() -> Iterator[_Job]:
            one_file: list[Task] = []  # first-stage tasks of a file read from its start
            for task in tasks:
                if isinstance(task.chunk, RawChunk):
                    task = replace(task, chunk=slice_of(task.chunk, self.shard_bytes, self.inputs))
                where = task.chunk
                if one_file and not (isinstance(where, ChunkSlice) and where.sequential
                                     and where.file_index == one_file[0].chunk.file_index):  # type: ignore[union-attr]
                    yield from map(job, self._groups(one_file))
                    one_file = []
                if isinstance(where, ChunkSlice) and where.sequential:
                    one_file.append(task)
                else:
                    yield job([task])
            yield from map(job, self._groups(one_file))

        def done(job: _Job, reports: list[Report]) -> None:
            for report in reports:
                on_done(report)

        self._drive(jobs(), done)

    def _groups(self, tasks: list[Task]) -> list[list[Task]]:
        """A file's tasks in runs of consecutive shards, one Ray task each: each run reads
        the file from its start up to its last shard, so fewer runs read less again, and
        two per worker keep the cluster busy on one big file."""
        if not tasks:
            return []
        parts = min(len(tasks), 2 * self.workers)
        bounds = [round(i * len(tasks) / parts) for i in range(parts + 1)]
        return [tasks[a:b] for a, b in itertools.pairwise(bounds)]

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        results: list[Any] = [None] * len(items)
        name = getattr(fn, "__qualname__", "map")
        jobs = (_Job(f"{name} part {i + 1} of {len(items)}",
                     lambda item=item: self._map_fn.remote(fn, item), index=i)
                for i, item in enumerate(items))
        self._drive(jobs, lambda job, value: results.__setitem__(job.index, value))
        return results

    def close(self) -> None:
        for ref in list(self._pending):
            self._ray.cancel(ref, force=True)
        self._pending.clear()
        if self._connected:
            self._ray.shutdown()
            self._connected = False

    # -- the loop ----------------------------------------------------------------------

    def _drive(self, jobs: Iterable[_Job], on_result: Callable[[_Job, Any], None]) -> None:
        """Submit ``jobs`` keeping at most two per worker in flight; hand each result to
        ``on_result`` as it arrives; retry stragglers; raise on the first failure."""
        pending = self._pending
        for job in jobs:
            pending[job.submit()] = job
            while len(pending) >= 2 * self.workers:
                self._collect(on_result)
        while pending:
            self._collect(on_result)

    def _collect(self, on_result: Callable[[_Job, Any], None]) -> None:
        ray, pending, limit = self._ray, self._pending, self.settings.task_timeout_s
        now = time.monotonic()
        # Ray starts tasks in about the order they came: the oldest hold the CPUs, so their
        # clocks run from now (queued time does not count against the timeout).
        running = list(pending.items())[: self.workers]
        for _, job in running:
            job.running_since = job.running_since or now
        deadlines = {ref: job.running_since + limit * job.size  # type: ignore[operator]
                     for ref, job in running} if limit is not None else {}
        wait_s = max(0.05, min(deadlines.values()) - now) if deadlines else None
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=wait_s)
        if not ready:
            for ref, deadline in deadlines.items():
                if time.monotonic() > deadline:
                    ray.cancel(ref, force=True)
                    self._retry(pending.pop(ref), f"ran past task_timeout_s ({limit:g} s a shard)")
            return
        ref = ready[0]
        job = pending.pop(ref)
        try:
            value = ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            raise _task_error(exc, job) from None
        except ray.exceptions.RayError as exc:  # a worker or node lost, after Ray's own retries
            raise RunError(
                f"{job.label} was lost {self.settings.max_retries + 1} times "
                f"({type(exc).__name__}: {_first_line(exc)}); finished shards are kept: run the "
                "same command again (or with --resume) to finish the rest"
            ) from None
        on_result(job, value)

    def _retry(self, job: _Job, why: str) -> None:
        job.tries += 1
        if job.tries > self.settings.max_retries:
            raise RunError(f"{job.label} {why} {job.tries} times; finished shards are kept: raise "
                           "executor.task_timeout_s, or run again with --resume")
        job.running_since = None
        self._pending[job.submit()] = job


def _task_error(exc: Any, job: _Job) -> BaseException:
    """The error a task raised, as the local executor would raise it."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, AssayError | OSError | MemoryError):  # TaskFailed is an AssayError
        return cause
    if cause is None:
        return RunError(f"{job.label} failed: {_first_line(exc)}")
    return TaskFailed(job.label, f"{type(cause).__name__}: {cause}", str(exc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
