"""The books of a run: its shards, every finished task's report, and the manifest they add
up to.

A task's report (written by :func:`assay.engine.worker.run_task` to ``_progress/``) is the
only record that a shard of a stage is finished; the :class:`Ledger` reads those back on a
re-run, so the driver skips finished work, and sums every report into the manifest, whose
accounting (documents in = kept + rejected + quarantined, per step) is checked against the
rows actually on disk.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import fsspec
import pyarrow.parquet as pq

from assay.engine.ids import describe_duplicates
from assay.engine.layout import Layout
from assay.engine.manifest import build_manifest
from assay.engine.plan import Stage
from assay.engine.settings import RunSettings
from assay.engine.stats import ReadStats, StepStats, check_accounting
from assay.io.writers import read_json
from assay.steps import GlobalStep, Step

Report = dict[str, Any]


class Ledger:
    """The shards of a run (in input order) and the report of every finished task."""

    def __init__(self, layout: Layout, stages: int) -> None:
        self.layout = layout
        self.last = stages - 1
        self.shards: list[str] = []
        self.reports: dict[tuple[int, str], Report] = {}
        self.resumed = 0  # tasks a re-run found finished

    def finished(self, stage: int, shard: str) -> Report | None:
        """The stored report of a finished task, or None (a stage before the last also needs
        its intermediate shard on disk)."""
        report = read_json(self.layout.progress(stage, shard))
        if report is None:
            return None
        if stage != self.last:
            fs, work = fsspec.core.url_to_fs(self.layout.work(stage, shard))
            if not fs.exists(work):
                return None
        return report  # type: ignore[return-value]

    def record(self, report: Report) -> None:
        self.reports[(report["stage"], report["shard"])] = report

    def skip(self, stage: int, shard: str, report: Report) -> None:
        """Count a task a re-run found finished."""
        self.reports[(stage, shard)] = report
        self.resumed += 1

    def load_finished_run(self) -> bool:
        """Load every report of a run that already finished; False if it did not."""
        saved = read_json(self.layout.progress_file("shards.json"))
        if not isinstance(saved, list) or not saved:
            return False
        final = {shard: read_json(self.layout.progress(self.last, shard)) for shard in saved}
        if any(report is None for report in final.values()):
            return False
        self.shards = list(saved)
        for stage in range(self.last):
            for shard in self.shards:
                self.reports[(stage, shard)] = read_json(self.layout.progress(stage, shard))  # type: ignore[assignment]
        for shard, report in final.items():
            self.reports[(self.last, shard)] = report  # type: ignore[assignment]
        self.resumed = len(self.shards)
        return True

    def rows_out(self, stage: int) -> list[int]:
        """Rows each shard holds after ``stage``, in shard order."""
        return [int(self.reports[(stage, shard)]["rows_out"]) for shard in self.shards]

    def add_fit_seconds(self, stage: int, step: str, seconds: float) -> None:
        """Account a fit's time to its global step, in the report of the stage's first shard."""
        if self.shards:
            self.reports[(stage, self.shards[0])].setdefault("fit_seconds", {})[step] = seconds

    def manifest(self, steps: Sequence[Step], settings: RunSettings, inputs: list[dict[str, Any]],
                 stages: list[Stage], started: float, executor: dict[str, Any]) -> dict[str, Any]:
        """Every report summed into the manifest, checked against the rows on disk;
        ``executor`` describes what ran the tasks."""
        read = ReadStats()
        per_step = {s.name: StepStats(s.name, s.kind) for s in steps}
        for (stage, _shard), report in sorted(self.reports.items()):
            if stage == 0:
                read.add(ReadStats.from_json(report["read"]))
            for s in report["steps"]:
                per_step[s["name"]].add(StepStats.from_json(s))
            for name, seconds in report.get("fit_seconds", {}).items():
                per_step[name].seconds += seconds
        counted = count_output(self.layout)
        step_list = [per_step[s.name] for s in steps]
        problems = check_accounting(read, step_list, counted["kept"], counted["rejected"],
                                    counted["quarantined"], counted["generated"])
        manifest = build_manifest(
            settings=settings, inputs=inputs, read=read, steps=step_list, counted=counted,
            problems=problems, n_shards=len(self.shards), n_stages=len(stages),
            started=started, resumed=self.resumed, executor=executor,
        )
        warnings = [f"{i['url']}: quarantined whole: {i['problem']}" for i in inputs if i.get("problem")]
        ids = read_json(self.layout.progress_file("ids.json"))
        if isinstance(ids, dict):
            manifest["ids"] = ids
            warnings += [w for w in [describe_duplicates(ids)] if w]
        manifest["warnings"] = warnings
        for entry, step, stats in zip(manifest["steps"], steps, step_list, strict=True):
            if stats.counters:
                entry.pop("counters")
                entry.update(step.summarize(stats.counters))
            if isinstance(step, GlobalStep):
                # What the fit found (clusters, duplicates, ...), kept from the run that fitted.
                fit = read_json(self.layout.progress_file(f"fit-{step.name}.json"))
                if isinstance(fit, dict):
                    entry["fit"] = fit
        return manifest


def count_output(layout: Layout) -> dict[str, int]:
    """Rows actually on disk in data/, rejected/, quarantine/ and generated/."""
    fs = layout.fs
    counts = {}
    for key, folder in (("kept", "data"), ("rejected", "rejected"), ("quarantined", "quarantine"),
                        ("generated", "generated")):
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
