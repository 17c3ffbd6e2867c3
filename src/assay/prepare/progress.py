"""What an unfinished ``assay prepare`` keeps in its output so that ``--resume`` finishes it
with the same bytes, as ``assay run`` does (:mod:`assay.engine.driver`):

    OUT/_progress/fingerprint.json         what decides the output (recipe, inputs, versions)
    OUT/_progress/tokenizer.json           the trained tokenizer (a resume does not retrain)
    OUT/_progress/tokenize/SSS-KKKKK.json  batch KKKKK of source SSS is tokenized into _work/
    OUT/_progress/write/<file>.json        an output file (or bucket's files) is complete

Every file is written under a temporary name and renamed when complete, then its report is
written; a resume skips what has a report and writes the rest again. Both folders are
removed when the prepare finishes; the fingerprint stays in ``manifest.json``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec
import xxhash

from assay.io.files import InputFile
from assay.io.writers import read_json, write_json
from assay.prepare.recipe import PrepareRecipe

FORMAT = 1  # of the progress reports and work files; part of the fingerprint


class Progress:
    """The reports of finished work under ``root``; with ``root`` None (a dry run) nothing is
    recorded and nothing counts as done."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.skipped = 0  # pieces of work an earlier run had finished

    def done(self, key: str) -> dict[str, Any] | None:
        if self.root is None:
            return None
        report = read_json(str(self.root / f"{key}.json"))
        if report is not None:
            self.skipped += 1
        return report if isinstance(report, dict) else None

    def record(self, key: str, report: dict[str, Any]) -> None:
        if self.root is not None:
            write_json(str(self.root / f"{key}.json"), report)


def fingerprint(recipe: PrepareRecipe, inputs: Sequence[InputFile], tokenizer: str | None,
                versions: dict[str, str]) -> str:
    """SHA-256 of everything that decides the shards' bytes: the recipe (not its name or its
    output, so a stopped output may be moved before it is resumed), every
    input file's URL, size and content hash (xxh3-128, read in 4 MB blocks), the tokenizer
    file's, and the versions of assay and the libraries that write or tokenize."""
    data = recipe.model_dump(mode="json")
    for place in ("name", "output"):
        data.pop(place, None)
    files = [(f.url, f.size, _content_hash(f.url)) for f in inputs]
    if tokenizer is not None:
        files.append((tokenizer, Path(tokenizer).stat().st_size, _content_hash(tokenizer)))
    payload = repr((FORMAT, sorted(data.items()), files, sorted(versions.items())))
    return hashlib.sha256(payload.encode()).hexdigest()


def _content_hash(url: str) -> str:
    digest = xxhash.xxh3_128()
    with fsspec.open(url, "rb") as stream:
        while block := stream.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()

