"""The work of one task: one stage of the pipeline on one shard, in a worker process (or in
the driver, with one worker).

A task reads its shard (the raw input chunk in the first stage, the previous stage's
intermediate shard after that), runs the stage's steps, splits rejected rows off after every
step, and writes its kept, rejected and quarantined rows under temporary names that are
renamed when complete. Its last act is a small JSON report of counts; a shard with a report
is finished, so a re-run skips it and the output is byte-identical to an uninterrupted run.
Any executor runs tasks through :func:`run_task`.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assay.documents import CLUSTER_ID, DUPLICATE_OF, REASON, REJECTED_BY, text_bytes
from assay.engine.changes import REWRITING_KINDS, changed_rows, sample_changes
from assay.engine.ids import shard_ids
from assay.engine.layout import Layout
from assay.engine.plan import Stage
from assay.engine.settings import RunError
from assay.engine.stats import ReadStats, StepStats, add_counters
from assay.errors import AssayError
from assay.io.chunks import FieldMap, RawChunk
from assay.io.readers import decode_chunk, quarantine_table
from assay.io.slices import ChunkSlice, read_slice
from assay.io.writers import write_json, write_table
from assay.steps import Step
from assay.steps.base import RunContext


@dataclass
class WorkerContext:
    """What every task of a run shares, sent to each worker once."""

    stages: list[Stage]
    fields: FieldMap
    layout: Layout
    strict: bool
    run_id: str = ""  # kept by a resume, new for a fresh run (steps keeping state in the output use it)


@dataclass
class Task:
    """One stage on one shard."""

    stage: int
    shard: str
    chunk: RawChunk | ChunkSlice | None = None  # stage 0: the records, or where they lie
    state: Any = None  # stages after a global step: that step's decision for this shard


class StrictInputError(RunError):
    """Raised in --strict mode at the first malformed record."""


class TaskFailed(RunError):
    """Code inside a task raised: ``what`` names the step and shard (or the fit's part),
    ``trace`` is the traceback from the worker."""

    def __init__(self, what: str, error: str, trace: str) -> None:
        super().__init__(f"{what} failed: {error}")
        self.what, self.error, self.trace = what, error, trace

    def __reduce__(self) -> tuple[Any, ...]:  # crosses process boundaries whole
        return (TaskFailed, (self.what, self.error, self.trace))


_CONTEXT: WorkerContext | None = None


def init_worker(context: WorkerContext, driver: int | None = None) -> None:
    """Set up a worker: bind it to the ``driver`` process (it ends when the driver ends),
    keep the context, and load the steps' models once."""
    global _CONTEXT
    if driver is not None:
        die_with(driver)
    _CONTEXT = context
    run = RunContext(context.layout.root, context.run_id)
    for stage in context.stages:
        for step in (*stage.steps, stage.keys_for):
            if step is not None:
                step.bind(run)
                step.ensure_setup()
    if driver is not None:
        # A worker process of its own: what is alive now (modules, models) lives as long as
        # the worker; out of the cyclic collector's generations, its full passes do not walk
        # it again and again.
        gc.freeze()


_PR_SET_PDEATHSIG = 1


def die_with(driver: int) -> None:
    """End this worker process when the driver process ``driver`` ends, however it ends."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    else:  # no parent-death signal: look for the driver once a second
        threading.Thread(target=_watch, args=(driver,), daemon=True).start()
    if os.getppid() != driver:  # the driver died before the signal was asked for
        os._exit(1)


def _watch(driver: int) -> None:
    while os.getppid() == driver:
        time.sleep(1.0)
    os._exit(1)


def run_task_in_worker(task: Task) -> dict[str, Any]:
    assert _CONTEXT is not None, "worker was not initialised"
    try:
        return run_task(_CONTEXT, task)
    finally:
        release_memory()


def call_in_worker(fn: Callable[[Any], Any], item: Any) -> Any:
    """``fn(item)`` in a worker process (a global step's map work), then
    :func:`release_memory`."""
    try:
        return fn(item)
    finally:
        release_memory()


def release_memory() -> None:
    """Hand what a task freed back to the system, so an idle worker holds its imports and
    models only: ``malloc_trim`` under the system allocator the local executor's workers
    use (:mod:`assay.engine.local`), mimalloc's collection under pyarrow's default."""
    pa.default_memory_pool().release_unused()


def _split(table: pa.Table, step_name: str) -> tuple[pa.Table, pa.Table | None]:
    """Separate rows a step marked (non-null ``reason``) from those it kept."""
    if REASON not in table.column_names:
        return table, None
    keep_mask = pc.is_null(table.column(REASON))
    marks = [c for c in (REASON, DUPLICATE_OF, CLUSTER_ID) if c in table.column_names]
    kept = table.filter(keep_mask).drop_columns(marks)
    rejected = table.filter(pc.invert(keep_mask))
    if rejected.num_rows == 0:
        return kept, None
    rejected = rejected.append_column(
        REJECTED_BY, pa.array([step_name] * rejected.num_rows, pa.string())
    )
    return kept, rejected


def _run_step(
    stats: StepStats, table: pa.Table, call: Any, rejected_parts: list[pa.Table], shard: str,
    step: Step | None = None, generated_parts: list[pa.Table] | None = None,
) -> pa.Table:
    started = time.perf_counter()
    stats.docs_in += table.num_rows
    stats.bytes_in += text_bytes(table)
    marked = _call_step(stats.name, shard, call, table)
    if stats.kind in REWRITING_KINDS:
        rows = changed_rows(table, marked)
        if len(rows):
            stats.changed += len(rows)
            stats.changes = sample_changes(table, marked, rows, stats.changes)
    kept, rejected = _split(marked, stats.name)
    stats.docs_kept += kept.num_rows
    stats.bytes_kept += text_bytes(kept)
    if rejected is not None:
        stats.docs_rejected += rejected.num_rows
        stats.bytes_rejected += text_bytes(rejected)
        stats.reasons.update(rejected.column(REASON).to_pylist())
        rejected_parts.append(rejected)
    if step is not None:
        extras = step.take_extras()
        add_counters(stats.counters, extras.counters)
        if extras.generated is not None and extras.generated.num_rows and generated_parts is not None:
            stats.generated += extras.generated.num_rows
            generated_parts.append(extras.generated)
    stats.seconds += time.perf_counter() - started
    return kept


def _call_step(name: str, shard: str, call: Any, table: pa.Table) -> pa.Table:
    """``call(table)``; a step's own failure is raised as :class:`TaskFailed`, naming the
    step and the shard. Errors the user can act on as they are (a full disk, a denied
    permission, assay's own errors, memory) pass unchanged."""
    try:
        return call(table)
    except (AssayError, OSError, MemoryError):
        raise
    except Exception as exc:
        raise TaskFailed(f"step {name} on shard {shard}", f"{type(exc).__name__}: {exc}",
                         traceback.format_exc()) from exc


def run_task(ctx: WorkerContext, task: Task) -> dict[str, Any]:
    """Run one stage on one shard, write its files, and return (and store) its report."""
    stage = ctx.stages[task.stage]
    layout = ctx.layout
    read = ReadStats()
    step_stats: dict[str, StepStats] = {}
    rejected_parts: list[pa.Table] = []
    generated_parts: list[pa.Table] = []

    def stats_for(step: Step) -> StepStats:
        return step_stats.setdefault(step.name, StepStats(step.name, step.kind))

    if task.stage == 0:
        assert task.chunk is not None
        chunk = read_slice(task.chunk) if isinstance(task.chunk, ChunkSlice) else task.chunk
        table, bad = decode_chunk(chunk, ctx.fields)
        if bad and ctx.strict:
            first = bad[0]
            where = f"line {first.line}" if first.line is not None else "end of stream"
            raise StrictInputError(f"{first.file}:{where}: {first.error}")
        read = ReadStats(
            records=table.num_rows + len(bad), docs=table.num_rows, quarantined=len(bad),
            bytes=text_bytes(table), errors=Counter(b.error.split(":", 1)[0] for b in bad),
        )
        if bad:
            write_table(quarantine_table(bad), layout.quarantine(task.shard), layout.format,
                        layout.compression)
        write_table(shard_ids(table), layout.ids(task.shard))
    else:
        table = pq.read_table(layout.work(task.stage - 1, task.shard))

    if stage.apply is not None:
        global_step, state = stage.apply, task.state
        table = _run_step(stats_for(global_step), table,
                          lambda t: global_step.apply(t, state), rejected_parts, task.shard)
    for step in stage.steps:
        table = _run_step(stats_for(step), table, step, rejected_parts, task.shard, step,
                          generated_parts)
    if stage.keys_for is not None:
        started = time.perf_counter()
        table = _call_step(stage.keys_for.name, task.shard, stage.keys_for, table)
        stats_for(stage.keys_for).seconds += time.perf_counter() - started
        write_table(table, layout.work(task.stage, task.shard), "parquet", "zstd")
    else:
        write_table(table, layout.data(task.shard), layout.format, layout.compression)
    if rejected_parts:
        rejected = pa.concat_tables(rejected_parts, promote_options="default")
        write_table(rejected, layout.rejected(task.shard, task.stage), layout.format,
                    layout.compression)
    if generated_parts:
        generated = pa.concat_tables(generated_parts, promote_options="default")
        write_table(generated, layout.generated(task.shard, task.stage), layout.format,
                    layout.compression)
    report = {
        "stage": task.stage,
        "shard": task.shard,
        "rows_out": table.num_rows,
        "read": read.to_json(),
        "steps": [s.to_json() for s in step_stats.values()],
    }
    write_json(layout.progress(task.stage, task.shard), report)
    return report
