"""The local executor: worker processes over shards, stage by stage.

The driver cuts the input into shards (see :mod:`assay.io.readers`), hands each shard to
a worker, and waits for a stage to finish before fitting the global step that ends it.
A worker runs the stage's steps on its shard, splits rejected rows off after every
step, and writes its kept, rejected and quarantined rows under temporary names that
are renamed when complete. Its last act is a small JSON report of counts; a shard with
a report is finished, so a re-run into the same output skips it and the final output is
byte-identical to an uninterrupted run.

The driver owns its output (:mod:`assay.io.ownership`): it refuses an output that is not
assay's, locks it for the whole run, and deletes only the names a run writes there. Its
workers die with it: each asks the kernel for a signal when the driver goes (Linux), or
watches for it (elsewhere), so killing the driver never leaves workers behind.
"""

from __future__ import annotations

import ctypes
import hashlib
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, Protocol

import fsspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assay.documents import CLUSTER_ID, DUPLICATE_OF, REASON, REJECTED_BY, text_bytes
from assay.engine.ids import IdPolicy, count_duplicates, describe_duplicates, shard_ids
from assay.engine.layout import RUN_NAMES, Layout, read_json, write_json
from assay.engine.plan import Stage, plan_stages
from assay.engine.stats import AccountingError, ReadStats, StepStats, check_accounting
from assay.errors import AssayError
from assay.io.ownership import OwnedFolder, claim_folder
from assay.io.readers import (
    FieldMap,
    InputFile,
    RawChunk,
    decode_chunk,
    plan_chunks,
    quarantine_table,
)
from assay.io.writers import write_table
from assay.steps import FitContext, GlobalState, GlobalStep, Step

Notice = Callable[[str], None]


class RunError(AssayError, RuntimeError):
    """A run that cannot start or cannot finish; the message says what to do."""


class Progress(Protocol):
    """What the executor tells a progress display."""

    def stage_started(self, stage: int, description: str, total: int | None) -> None: ...
    def stage_total(self, stage: int, total: int) -> None: ...
    def shard_done(self, stage: int, docs: int) -> None: ...
    def stage_finished(self, stage: int) -> None: ...


class _Silent:
    def stage_started(self, stage: int, description: str, total: int | None) -> None:
        pass

    def stage_total(self, stage: int, total: int) -> None:
        pass

    def shard_done(self, stage: int, docs: int) -> None:
        pass

    def stage_finished(self, stage: int) -> None:
        pass


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
    resolved_recipe: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunResult:
    """The outcome of a run: where the output is and the manifest written there."""

    output: str
    manifest: dict[str, Any]

    @property
    def totals(self) -> dict[str, int]:
        return self.manifest["totals"]


# ----------------------------------------------------------------------------- workers


@dataclass
class _WorkerContext:
    stages: list[Stage]
    fields: FieldMap
    layout: Layout
    strict: bool


@dataclass
class _Task:
    stage: int
    shard: str
    chunk: RawChunk | None = None  # stage 0
    state: Any = None  # stages after a global step: that step's decision for this shard


class StrictInputError(RunError):
    """Raised in --strict mode at the first malformed record."""


_CONTEXT: _WorkerContext | None = None


def _init_worker(context: _WorkerContext, driver: int | None = None) -> None:
    global _CONTEXT
    if driver is not None:
        _die_with(driver)
    _CONTEXT = context
    for stage in context.stages:
        for step in (*stage.steps, stage.keys_for):
            if step is not None:
                step.ensure_setup()


_PR_SET_PDEATHSIG = 1


def _die_with(driver: int) -> None:
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


def _run_task_in_worker(task: _Task) -> dict[str, Any]:
    assert _CONTEXT is not None, "worker was not initialised"
    return run_task(_CONTEXT, task)


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
    stats: StepStats, table: pa.Table, call: Any, rejected_parts: list[pa.Table]
) -> pa.Table:
    started = time.perf_counter()
    stats.docs_in += table.num_rows
    stats.bytes_in += text_bytes(table)
    marked = call(table)
    kept, rejected = _split(marked, stats.name)
    stats.docs_kept += kept.num_rows
    stats.bytes_kept += text_bytes(kept)
    if rejected is not None:
        stats.docs_rejected += rejected.num_rows
        stats.bytes_rejected += text_bytes(rejected)
        stats.reasons.update(rejected.column(REASON).to_pylist())
        rejected_parts.append(rejected)
    stats.seconds += time.perf_counter() - started
    return kept


def run_task(ctx: _WorkerContext, task: _Task) -> dict[str, Any]:
    """Run one stage on one shard, write its files, and return (and store) its report."""
    stage = ctx.stages[task.stage]
    layout = ctx.layout
    read = ReadStats()
    step_stats: dict[str, StepStats] = {}
    rejected_parts: list[pa.Table] = []

    def stats_for(step: Step) -> StepStats:
        return step_stats.setdefault(step.name, StepStats(step.name, step.kind))

    if task.stage == 0:
        assert task.chunk is not None
        table, bad = decode_chunk(task.chunk, ctx.fields)
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
                          lambda t: global_step.apply(t, state), rejected_parts)
    for step in stage.steps:
        table = _run_step(stats_for(step), table, step, rejected_parts)
    if stage.keys_for is not None:
        started = time.perf_counter()
        table = stage.keys_for(table)
        stats_for(stage.keys_for).seconds += time.perf_counter() - started
        write_table(table, layout.work(task.stage, task.shard), "parquet", "zstd")
    else:
        write_table(table, layout.data(task.shard), layout.format, layout.compression)
    if rejected_parts:
        rejected = pa.concat_tables(rejected_parts, promote_options="default")
        write_table(rejected, layout.rejected(task.shard, task.stage), layout.format,
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


# ------------------------------------------------------------------------------ driver


def _fingerprint(settings: RunSettings, input_hashes: list[dict[str, Any]],
                 references: dict[str, str]) -> str:
    recipe = dict(settings.resolved_recipe)
    executor = dict(recipe.get("executor", {}))
    executor.pop("workers", None)  # the worker count does not change the output
    recipe["executor"] = executor
    recipe.pop("name", None)
    payload = repr((recipe, [(h["url"], h["sha256"]) for h in input_hashes], settings.shard_bytes,
                    sorted(references.items())))
    return hashlib.sha256(payload.encode()).hexdigest()


def _hash_references(steps: Sequence[Step]) -> dict[str, str]:
    """SHA-256 of every file the steps reference (a folder: of its files, in name order)."""
    out: dict[str, str] = {}
    for step in steps:
        for url in step.referenced_files():
            fs, path = fsspec.core.url_to_fs(url)
            files = sorted(fs.find(path)) if fs.isdir(path) else [path]
            digest = hashlib.sha256()
            for name in files:
                digest.update(name.removeprefix(path).encode())
                _hash_file(fs, name, digest)
            out[url] = digest.hexdigest()
    return out


def _hash_inputs(files: Sequence[InputFile]) -> list[dict[str, Any]]:
    out = []
    for f in files:
        entry = {"url": f.url, "format": f.format, "compression": f.compression, "size": f.size}
        if f.problem is not None:  # quarantined whole, never read
            out.append({**entry, "sha256": None, "problem": f.problem})
            continue
        fs, path = fsspec.core.url_to_fs(f.url)
        out.append({**entry, "sha256": _hash_file(fs, path, hashlib.sha256()).hexdigest()})
    return out


def _hash_file(fs: fsspec.AbstractFileSystem, path: str, digest: Any) -> Any:
    """Feed one file's bytes to ``digest`` in 4 MB blocks; return it."""
    with fs.open(path, "rb") as stream:
        while block := stream.read(1 << 22):
            digest.update(block)
    return digest


class _Runner:
    """Submits tasks to a pool (or runs them in-process) and collects reports."""

    def __init__(self, ctx: _WorkerContext, workers: int) -> None:
        self.ctx = ctx
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        if workers > 1:
            self.pool = ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(ctx, os.getpid()),
            )
        else:
            _init_worker(ctx)

    def run(self, tasks: Iterable[_Task], on_done: Any) -> None:
        """Run tasks, at most 2 per worker in flight, calling ``on_done(report)`` for each."""
        if self.pool is None:
            for task in tasks:
                on_done(run_task(self.ctx, task))
            return
        in_flight: set[Future[dict[str, Any]]] = set()
        try:
            for task in tasks:
                in_flight.add(self.pool.submit(_run_task_in_worker, task))
                if len(in_flight) >= 2 * self.workers:
                    done, in_flight = wait(in_flight, return_when=FIRST_COMPLETED)
                    for future in done:
                        on_done(future.result())
            for future in _as_completed(in_flight):
                on_done(future.result())
        except BrokenProcessPool as exc:
            raise RunError(
                f"a worker process died ({exc}); finished shards are kept: re-run the same "
                "command (or with --resume) to finish the rest"
            ) from None

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``[fn(item) for item in items]``, run in the workers (for a global step's fit)."""
        if self.pool is None:
            return [fn(item) for item in items]
        try:
            return list(self.pool.map(fn, items))
        except BrokenProcessPool as exc:
            raise RunError(
                f"a worker process died while fitting ({exc}); finished shards are kept: re-run "
                "the same command (or with --resume) to finish the rest"
            ) from None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _as_completed(futures: set[Future[dict[str, Any]]]) -> Iterator[Future[dict[str, Any]]]:
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from done


def run_pipeline(
    steps: Sequence[Step], settings: RunSettings, progress: Progress | None = None,
    notice: Notice | None = None,
) -> RunResult:
    """Run ``steps`` over the settings' inputs into its output folder; return the result.

    Before any work the output is claimed (:func:`assay.io.ownership.claim_folder`): it
    must be new, empty or an assay run output, must not hold or be held by an input, and
    is locked until the run ends. ``notice`` hears what the user should know early (a
    stale lock taken over).
    """
    stages = plan_stages(steps)
    sources = [f.url for f in settings.inputs]
    sources += [url for step in steps for url in step.referenced_files()]
    with claim_folder(settings.layout.root, "run", inputs=sources, notice=notice) as owned:
        return _run_owned(steps, stages, settings, owned, progress or _Silent())


def _run_owned(
    steps: Sequence[Step], stages: list[Stage], settings: RunSettings, owned: OwnedFolder,
    progress: Progress,
) -> RunResult:
    started = time.time()
    layout = settings.layout
    fs = layout.fs
    if settings.overwrite:
        owned.clear(RUN_NAMES)
    inputs = _hash_inputs(settings.inputs)
    fingerprint = _fingerprint(settings, inputs, _hash_references(steps))
    previous = read_json(layout.progress_file("fingerprint.json"))
    if settings.resume and previous is None:
        raise RunError(f"nothing to resume: {layout.root} holds no earlier run")
    if previous is not None and previous != {"fingerprint": fingerprint}:
        raise RunError(
            f"{layout.root} holds a run of a different recipe or input; "
            "choose another output, or pass --overwrite to replace it"
        )
    owned.remove_partial(RUN_NAMES)
    owned.clear(["manifest.json"])  # the manifest describes a finished run; this one is not yet
    write_json(layout.progress_file("fingerprint.json"), {"fingerprint": fingerprint})

    ctx = _WorkerContext(stages, settings.fields, layout, settings.strict)
    reports: dict[tuple[int, str], dict[str, Any]] = {}
    shards: list[str] = []
    last = len(stages) - 1
    resumed = 0

    def finished(stage: int, shard: str) -> dict[str, Any] | None:
        report = read_json(layout.progress(stage, shard))
        if report is None:
            return None
        if stage != last and not fs.exists(fsspec.core.url_to_fs(layout.work(stage, shard))[1]):
            return None
        return report  # type: ignore[return-value]

    runner = _Runner(ctx, settings.workers)
    try:
        saved_shards = read_json(layout.progress_file("shards.json"))
        final_reports = (
            {s: read_json(layout.progress(last, s)) for s in saved_shards}
            if isinstance(saved_shards, list) else {}
        )
        if final_reports and all(r is not None for r in final_reports.values()):
            # A finished run of the same recipe: every report is on disk already.
            shards = list(final_reports)
            for k in range(last):
                for shard in shards:
                    reports[(k, shard)] = read_json(layout.progress(k, shard))  # type: ignore[assignment]
            for shard, report in final_reports.items():
                reports[(last, shard)] = report  # type: ignore[assignment]
            resumed = len(shards)
        else:
            for stage in stages:
                progress.stage_started(stage.index, _describe(stage), len(shards) or None)

                def on_done(report: dict[str, Any], k: int = stage.index) -> None:
                    reports[(k, report["shard"])] = report
                    progress.shard_done(k, _docs_of(report))

                if stage.index == 0:
                    tasks: Iterable[_Task] = _stage0_tasks(
                        settings, shards, finished, reports, progress
                    )
                else:
                    assert stage.apply is not None
                    state = _fit(stage.apply, layout, stage.index - 1, shards, reports, runner)
                    tasks = _later_tasks(stage.index, shards, state.per_shard, finished, reports,
                                         progress)
                runner.run(tasks, on_done)
                if stage.index == 0:
                    write_json(layout.progress_file("shards.json"), shards)
                    _check_ids(settings, shards)
                progress.stage_finished(stage.index)
            resumed = sum(1 for r in reports.values() if r.get("_resumed"))
    finally:
        runner.close()

    manifest = _build_manifest(steps, settings, inputs, stages, shards, reports, started, resumed)
    write_json(layout.manifest, manifest)
    problems = manifest["accounting"]["problems"]
    if problems:
        raise AccountingError("the books do not balance:\n  " + "\n  ".join(problems))
    if not settings.keep_work:
        owned.clear(["_work"])
    return RunResult(layout.root, manifest)


def _check_ids(settings: RunSettings, shards: list[str]) -> None:
    """Count repeated ids over the first stage's shards, store the count, and stop the run
    if the recipe says repeats are fatal."""
    layout = settings.layout
    counted = count_duplicates(
        [layout.ids(shard) for shard in shards],
        lambda i: settings.inputs[int(shards[i].split("-", 1)[0])].label, settings.id_policy,
    )
    write_json(layout.progress_file("ids.json"), counted)
    problem = describe_duplicates(counted)
    if problem and settings.id_policy == "fail":
        raise RunError(f"input.id_policy is fail and {problem}")


def _describe(stage: Stage) -> str:
    names = ([stage.apply.name] if stage.apply else []) + [s.name for s in stage.steps]
    if stage.keys_for is not None:
        names.append(f"{stage.keys_for.name} keys")
    if len(names) > 3:
        names = [names[0], f"…{len(names) - 2} more…", names[-1]]
    return f"stage {stage.index}: " + (" → ".join(names) or "write")


def _docs_of(report: dict[str, Any]) -> int:
    if report["stage"] == 0:
        return int(report["read"]["records"])
    steps = report["steps"]
    return int(steps[0]["docs_in"]) if steps else int(report["rows_out"])


def _stage0_tasks(
    settings: RunSettings,
    shards: list[str],
    finished: Any,
    reports: dict[tuple[int, str], dict[str, Any]],
    progress: Progress,
) -> Iterator[_Task]:
    for chunk in plan_chunks(settings.inputs, settings.shard_bytes):
        shards.append(chunk.shard_id)
        done = finished(0, chunk.shard_id)
        if done is not None:
            reports[(0, chunk.shard_id)] = {**done, "_resumed": True}
            progress.shard_done(0, _docs_of(done))
            continue
        yield _Task(0, chunk.shard_id, chunk=chunk)
    progress.stage_total(0, len(shards))


def _later_tasks(
    stage: int,
    shards: list[str],
    states: list[Any],
    finished: Any,
    reports: dict[tuple[int, str], dict[str, Any]],
    progress: Progress,
) -> Iterator[_Task]:
    progress.stage_total(stage, len(shards))
    for shard, state in zip(shards, states, strict=True):
        done = finished(stage, shard)
        if done is not None:
            reports[(stage, shard)] = {**done, "_resumed": True}
            progress.shard_done(stage, _docs_of(done))
            continue
        yield _Task(stage, shard, state=state)


def _fit(
    step: GlobalStep, layout: Layout, stage: int, shards: list[str],
    reports: dict[tuple[int, str], Any], runner: _Runner,
) -> GlobalState:
    started = time.perf_counter()
    scratch = _scratch_folder(layout, stage, step.name)
    ctx = FitContext(
        shards=[layout.work(stage, shard) for shard in shards],
        shard_sizes=[int(reports[(stage, shard)]["rows_out"]) for shard in shards],
        scratch=scratch, output=layout.root, map=runner.map, workers=runner.workers,
    )
    try:
        state = step.fit_all(ctx)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.perf_counter() - started
    # Account the fit's time to the global step, in the report of the first shard.
    if shards:
        report = reports[(stage, shards[0])]
        report.setdefault("fit_seconds", {})[step.name] = seconds
    write_json(layout.progress_file(f"fit-{step.name}.json"),
               {"seconds": round(seconds, 3), "summary": state.summary})
    return state


def _scratch_folder(layout: Layout, stage: int, name: str) -> str:
    """An empty local folder for a fit's intermediate files: under the run's work folder
    when the output is local, else a temporary folder."""
    fs, root = fsspec.core.url_to_fs(layout.root)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols:
        folder = os.path.join(root, "_work", f"stage-{stage}", f"fit-{name}")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        return folder
    return tempfile.mkdtemp(prefix=f"assay-fit-{name}-")


def _build_manifest(
    steps: Sequence[Step],
    settings: RunSettings,
    inputs: list[dict[str, Any]],
    stages: list[Stage],
    shards: list[str],
    reports: dict[tuple[int, str], dict[str, Any]],
    started: float,
    resumed: int,
) -> dict[str, Any]:
    from assay.engine.manifest import build_manifest

    read = ReadStats()
    per_step = {s.name: StepStats(s.name, s.kind) for s in steps}
    for (stage, _shard), report in sorted(reports.items()):
        if stage == 0:
            read.add(ReadStats.from_json(report["read"]))
        for s in report["steps"]:
            per_step[s["name"]].add(StepStats.from_json(s))
        for name, seconds in report.get("fit_seconds", {}).items():
            per_step[name].seconds += seconds
    counted = _count_output(settings.layout)
    step_list = [per_step[s.name] for s in steps]
    problems = check_accounting(read, step_list, counted["kept"], counted["rejected"],
                                counted["quarantined"])
    manifest = build_manifest(
        settings=settings, inputs=inputs, read=read, steps=step_list, counted=counted,
        problems=problems, n_shards=len(shards), n_stages=len(stages), started=started,
        resumed=resumed, workers=settings.workers,
    )
    warnings = [f"{i['url']}: quarantined whole: {i['problem']}" for i in inputs if i.get("problem")]
    ids = read_json(settings.layout.progress_file("ids.json"))
    if isinstance(ids, dict):
        manifest["ids"] = ids
        warnings += [w for w in [describe_duplicates(ids)] if w]
    manifest["warnings"] = warnings
    for entry, step in zip(manifest["steps"], steps, strict=True):
        if isinstance(step, GlobalStep):
            # What the fit found (clusters, duplicates, ...), kept from the run that fitted.
            fit = read_json(settings.layout.progress_file(f"fit-{step.name}.json"))
            if isinstance(fit, dict):
                entry["fit"] = fit
    return manifest


def _count_output(layout: Layout) -> dict[str, int]:
    """Rows actually on disk in data/, rejected/ and quarantine/."""
    fs = layout.fs
    counts = {}
    for key, folder in (("kept", "data"), ("rejected", "rejected"), ("quarantined", "quarantine")):
        _, path = fsspec.core.url_to_fs(layout.folder(folder))
        total = 0
        if fs.exists(path):
            for name in sorted(fs.ls(path, detail=False)):
                if os.path.basename(name).startswith("."):
                    continue
                total += _rows_in(fs, name, layout)
        counts[key] = total
    return counts


def _rows_in(fs: fsspec.AbstractFileSystem, path: str, layout: Layout) -> int:
    if path.endswith(".parquet"):
        with fs.open(path, "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows
    compression = {"gzip": "gzip", "zstd": "zstd"}.get(layout.compression)
    with fs.open(path, "rb", compression=compression) as f:
        return sum(1 for _ in f)
