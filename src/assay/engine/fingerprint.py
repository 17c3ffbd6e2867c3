"""What makes two runs the same run: the resolved recipe, the inputs' and referenced files'
hashes, and the shard size. A run into an output holding another run's fingerprint is
refused; one with the same fingerprint resumes it."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import fsspec

from assay.engine.settings import RunSettings
from assay.io.files import InputFile
from assay.steps import Step


def fingerprint(settings: RunSettings, steps: Sequence[Step], input_hashes: list[dict[str, Any]],
                references: dict[str, str]) -> str:
    """SHA-256 of everything that decides the output: not the name, of the executor only
    the shard size (a run started on one executor can be finished on another), and of each
    step its :meth:`~assay.steps.Step.identity` (an LLM step's concurrency or spending cap
    can change between a run and its resume)."""
    recipe = dict(settings.resolved_recipe)
    for operational in ("executor", "name", "llm"):
        recipe.pop(operational, None)
    recipe["steps"] = [step.identity() for step in steps]
    payload = repr((recipe, [(h["url"], h["sha256"]) for h in input_hashes], settings.shard_bytes,
                    sorted(references.items())))
    return hashlib.sha256(payload.encode()).hexdigest()


def hash_references(steps: Sequence[Step]) -> dict[str, str]:
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


def hash_inputs(files: Sequence[InputFile]) -> list[dict[str, Any]]:
    """The manifest's ``inputs``: each file's URL, format, size and SHA-256 (None for a file
    that cannot be read, with its problem)."""
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
