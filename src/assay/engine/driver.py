"""The driver of a run: everything but running tasks, shared by every executor.

It claims the output (:mod:`assay.io.ownership`), checks the fingerprint of what is being
run against an earlier run in that output, plans the stages (:mod:`assay.engine.plan`),
cuts the input into shards, hands tasks to the executor stage by stage, fits each global
step between stages, keeps the books (:mod:`assay.engine.books`) and writes the manifest.
A stage's tasks that an earlier run finished are skipped, so a killed run is finished by
running it again, and the output is byte-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import fsspec

from assay.engine.books import Ledger, Report
from assay.engine.executor import Executor, open_executor
from assay.engine.fingerprint import fingerprint, hash_inputs, hash_references
from assay.engine.ids import count_duplicates, describe_duplicates
from assay.engine.layout import RUN_NAMES, Layout, publish_folder
from assay.engine.plan import Stage, plan_stages
from assay.engine.settings import Notice, Progress, RunError, RunResult, RunSettings, SilentProgress
from assay.engine.stats import AccountingError
from assay.engine.worker import Task, TaskFailed, WorkerContext
from assay.io.ownership import OwnedFolder, claim_folder
from assay.io.readers import plan_chunks
from assay.io.writers import read_json, write_json
from assay.steps import FitContext, GlobalState, GlobalStep, Step


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
        return _run_owned(steps, stages, settings, owned, progress or SilentProgress())


def _run_owned(
    steps: Sequence[Step], stages: list[Stage], settings: RunSettings, owned: OwnedFolder,
    progress: Progress,
) -> RunResult:
    started = time.time()
    layout = settings.layout
    if settings.overwrite:
        owned.clear(RUN_NAMES)
    inputs = hash_inputs(settings.inputs)
    marker = {"fingerprint": fingerprint(settings, steps, inputs, hash_references(steps))}
    previous = read_json(layout.progress_file("fingerprint.json"))
    if settings.resume and previous is None:
        raise RunError(f"nothing to resume: {layout.root} holds no earlier run")
    if previous is not None and previous != marker:
        raise RunError(
            f"{layout.root} holds a run of a different recipe or input; "
            "choose another output, or pass --overwrite to replace it"
        )
    owned.remove_partial(RUN_NAMES)
    owned.clear(["manifest.json"])  # the manifest describes a finished run; this one is not yet
    write_json(layout.progress_file("fingerprint.json"), marker)
    run_id = _run_id(layout, resuming=previous is not None)

    ledger = Ledger(layout, len(stages))
    executor = open_executor(settings, WorkerContext(stages, settings.fields, layout, settings.strict,
                                                     run_id))
    try:
        if not ledger.load_finished_run():
            for stage in stages:
                _run_stage(stage, settings, ledger, executor, progress)
    except TaskFailed as exc:
        raise _with_trace(exc, layout) from None
    finally:
        executor.close()

    manifest = ledger.manifest(steps, settings, inputs, stages, started, executor.describe())
    write_json(layout.manifest, manifest)
    problems = manifest["accounting"]["problems"]
    if problems:
        raise AccountingError("the books do not balance:\n  " + "\n  ".join(problems))
    if not settings.keep_work:
        owned.clear(["_work"])
    return RunResult(layout.root, manifest)


def _run_id(layout: Layout, resuming: bool) -> str:
    """This run's id: kept by a resume, new for a fresh run (``--overwrite`` included). Steps
    that keep state across the run in the output use it (the LLM steps' spending caps)."""
    stored = read_json(layout.progress_file("run.json")) if resuming else None
    run_id = stored["id"] if isinstance(stored, dict) and isinstance(stored.get("id"), str) else None
    if run_id is None:
        run_id = uuid.uuid4().hex
        write_json(layout.progress_file("run.json"), {"id": run_id})
    return run_id


def _with_trace(failure: TaskFailed, layout: Layout) -> RunError:
    """The failure, its traceback kept in the output's progress folder for the user."""
    path = layout.progress_file("failure.txt")
    try:
        with fsspec.open(path, "w", encoding="utf-8") as out:
            out.write(failure.trace)
    except OSError:
        return failure
    return RunError(f"{failure}; finished shards are kept (traceback: {path})")


def _run_stage(stage: Stage, settings: RunSettings, ledger: Ledger, executor: Executor,
               progress: Progress) -> None:
    """Fit the global step that opens ``stage`` (if any), then run its unfinished tasks."""
    progress.stage_started(stage.index, _describe(stage), len(ledger.shards) or None)

    def on_done(report: Report) -> None:
        ledger.record(report)
        progress.shard_done(stage.index, _docs_of(report))

    if stage.index == 0:
        executor.run(_first_tasks(settings, ledger, progress), on_done)
        write_json(settings.layout.progress_file("shards.json"), ledger.shards)
        _check_ids(settings, ledger.shards)
    else:
        assert stage.apply is not None
        state = _fit(stage.apply, settings.layout, stage.index - 1, ledger, executor)
        executor.run(_later_tasks(stage.index, state.per_shard, ledger, progress), on_done)
    progress.stage_finished(stage.index)


def _first_tasks(settings: RunSettings, ledger: Ledger, progress: Progress) -> Iterator[Task]:
    """The first stage's tasks, as the input is cut into shards (which also lists the shards
    in the ledger: their number is known once the last input is read)."""
    for chunk in plan_chunks(settings.inputs, settings.shard_bytes):
        ledger.shards.append(chunk.shard_id)
        done = ledger.finished(0, chunk.shard_id)
        if done is not None:
            ledger.skip(0, chunk.shard_id, done)
            progress.shard_done(0, _docs_of(done))
            continue
        yield Task(0, chunk.shard_id, chunk=chunk)
    progress.stage_total(0, len(ledger.shards))


def _later_tasks(stage: int, states: list[Any], ledger: Ledger, progress: Progress) -> Iterator[Task]:
    progress.stage_total(stage, len(ledger.shards))
    for shard, state in zip(ledger.shards, states, strict=True):
        done = ledger.finished(stage, shard)
        if done is not None:
            ledger.skip(stage, shard, done)
            progress.shard_done(stage, _docs_of(done))
            continue
        yield Task(stage, shard, state=state)


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


def _fit(step: GlobalStep, layout: Layout, stage: int, ledger: Ledger, executor: Executor) -> GlobalState:
    started = time.perf_counter()
    scratch, shared = _scratch_folder(layout, stage, step.name)
    ctx = FitContext(
        shards=[layout.work(stage, shard) for shard in ledger.shards], shard_sizes=ledger.rows_out(stage),
        scratch=scratch, workers=executor.workers,
        # The map work writes into the scratch folder: where that is a temporary folder of
        # this machine (the output is remote), only this machine can run it.
        map=executor.map if shared or executor.runs_here else _map_here,
        publish=lambda local, name: publish_folder(layout, local, name),
    )
    try:
        state = step.fit_all(ctx)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.perf_counter() - started
    ledger.add_fit_seconds(stage, step.name, seconds)
    write_json(layout.progress_file(f"fit-{step.name}.json"),
               {"seconds": round(seconds, 3), "summary": state.summary})
    return state


def _map_here(fn: Any, items: Sequence[Any]) -> list[Any]:
    return [fn(item) for item in items]


def _scratch_folder(layout: Layout, stage: int, name: str) -> tuple[str, bool]:
    """An empty local folder for a fit's intermediate files, and whether the workers share
    it: under the run's work folder when the output is local (on a cluster, on storage
    every node mounts), else a temporary folder of this machine."""
    fs, root = fsspec.core.url_to_fs(layout.root)
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if "file" in protocols:
        folder = os.path.join(root, "_work", f"stage-{stage}", f"fit-{name}")
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        return folder, True
    return tempfile.mkdtemp(prefix=f"assay-fit-{name}-"), False


def _describe(stage: Stage) -> str:
    names = ([stage.apply.name] if stage.apply else []) + [s.name for s in stage.steps]
    if stage.keys_for is not None:
        names.append(f"{stage.keys_for.name} keys")
    if len(names) > 3:
        names = [names[0], f"…{len(names) - 2} more…", names[-1]]
    return f"stage {stage.index}: " + (" → ".join(names) or "write")


def _docs_of(report: Report) -> int:
    if report["stage"] == 0:
        return int(report["read"]["records"])
    steps = report["steps"]
    return int(steps[0]["docs_in"]) if steps else int(report["rows_out"])
