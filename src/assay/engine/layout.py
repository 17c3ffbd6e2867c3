"""Where every file of a run lives inside its output folder.

    OUTPUT/
      data/part-FFFFF-CCCCC.parquet         kept documents (final stage)
      rejected/part-FFFFF-CCCCC-sK.parquet  rejected documents, with rejected_by and reason
      quarantine/part-FFFFF-CCCCC.parquet   malformed input records, with file, line, error
      generated/part-FFFFF-CCCCC-sK.parquet new documents steps wrote (rephrasings, syntheses),
                                            with their provenance; outside the input's books
      manifest.json                         the run's recipe, versions, inputs and counts
      report.html                           what the run did, written by `assay report`
      _progress/                            one report per finished task (for resume), the
                                            fingerprint and the run's id
      _work/stage-K/                        intermediate shards between stages
      _work/ids/                            each shard's ids, to count repeated ids
      index/, models/, reports/             what global steps publish (MinHash index, DSIR
                                            model, decontamination report), through
                                            FitContext.publish (:func:`publish_folder`)
      cache/llm.sqlite                      the LLM steps' request cache (kept by --overwrite:
                                            a repeated run pays for nothing twice)
      .assay-output, .assay-lock            the ownership marker and the one-writer lock
                                            (:mod:`assay.io.ownership`)

These names are all assay writes there: ``--overwrite`` deletes them (the cache aside) and
nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import fsspec

from assay.io.writers import Compression, OutputFormat, shard_suffix

# Where global steps publish artefacts: OUTPUT/index/NAME, OUTPUT/models/NAME, OUTPUT/reports/NAME.
ARTEFACT_FOLDERS = ("index", "models", "reports")
# Every entry a run writes at the top of its output (besides the marker and the lock).
RUN_NAMES = ("data", "rejected", "quarantine", "generated", "manifest.json", "report.html", "_progress",
             "_work", *ARTEFACT_FOLDERS)
# Kept across --overwrite: answers keyed by what decides them are never stale.
CACHE_FOLDER = "cache"


@dataclass(frozen=True)
class Layout:
    root: str
    format: OutputFormat = "parquet"
    compression: Compression = "zstd"

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return fsspec.core.url_to_fs(self.root)[0]

    def _join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    @property
    def suffix(self) -> str:
        return shard_suffix(self.format, self.compression)

    def data(self, shard: str) -> str:
        return self._join("data", f"part-{shard}{self.suffix}")

    def rejected(self, shard: str, stage: int) -> str:
        return self._join("rejected", f"part-{shard}-s{stage}{self.suffix}")

    def generated(self, shard: str, stage: int) -> str:
        return self._join("generated", f"part-{shard}-s{stage}{self.suffix}")

    def quarantine(self, shard: str) -> str:
        return self._join("quarantine", f"part-{shard}{self.suffix}")

    def work(self, stage: int, shard: str) -> str:
        return self._join("_work", f"stage-{stage}", f"part-{shard}.parquet")

    def ids(self, shard: str) -> str:
        return self._join("_work", "ids", f"part-{shard}.parquet")

    def work_root(self) -> str:
        return self._join("_work")

    def progress(self, stage: int, shard: str) -> str:
        return self._join("_progress", f"stage-{stage}", f"{shard}.json")

    def progress_file(self, name: str) -> str:
        return self._join("_progress", name)

    @property
    def manifest(self) -> str:
        return self._join("manifest.json")

    def folder(self, name: str) -> str:
        return self._join(name)


def publish_folder(layout: Layout, local: str, name: str) -> str:
    """Publish the local folder ``local`` as the artefact ``OUTPUT/NAME`` (``NAME`` under one
    of :data:`ARTEFACT_FOLDERS`, e.g. ``index/minhash_dedup``), as shards are published: it is
    copied under a temporary name, then renamed over any earlier one. Returns its URL."""
    top, _, leaf = name.partition("/")
    if top not in ARTEFACT_FOLDERS or not leaf or "/" in leaf or leaf.startswith("."):
        raise ValueError(f"an artefact is named FOLDER/NAME with FOLDER one of {ARTEFACT_FOLDERS}: {name!r}")
    fs, root = fsspec.core.url_to_fs(layout.root)
    parent = f"{root.rstrip('/')}/{top}"
    target, staged, old = f"{parent}/{leaf}", f"{parent}/.{leaf}.tmp", f"{parent}/.{leaf}.old"
    fs.makedirs(parent, exist_ok=True)
    for leftover in (staged, old):  # from a run killed while publishing
        if fs.exists(leftover):
            fs.rm(leftover, recursive=True)
    fs.put(local.rstrip("/") + "/", staged, recursive=True)
    if fs.exists(target):
        fs.mv(target, old, recursive=True)
    fs.mv(staged, target, recursive=True)
    if fs.exists(old):
        fs.rm(old, recursive=True)
    return layout.folder(name)
