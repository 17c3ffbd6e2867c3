"""Fitted selector models on disk: a folder with ``manifest.json`` and ``arrays.npz``.

The manifest says what the model is (``kind``, format version), how it was fitted
(parameters, training sets, metrics) and the SHA-256 of the arrays file, which loading
checks, so a model is never silently swapped or truncated.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import fsspec
import numpy as np
import orjson

from assay.io.ownership import claim_folder
from assay.io.writers import write_json
from assay.steps.base import StepError
from assay.versions import assay_version

FORMAT = 1
MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"



def save_model(folder: str, kind: str, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> str:
    """Write a model folder (any fsspec URL); return its URL."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    manifest = {
        "kind": kind,
        "format": FORMAT,
        "assay_version": assay_version(),
        **info,
        "arrays": {"file": ARRAYS, "sha256": hashlib.sha256(payload).hexdigest(),
                   "names": sorted(arrays)},
    }
    fs, path = fsspec.core.url_to_fs(folder)
    with claim_folder(folder, "model"):  # a new or empty folder, or a model folder assay wrote
        with fs.open(f"{path}/{ARRAYS}", "wb") as f:
            f.write(payload)
        write_json(f"{folder.rstrip('/')}/{MANIFEST}", manifest)
    return folder


def read_manifest(folder: str) -> dict[str, Any]:
    fs, path = fsspec.core.url_to_fs(folder)
    try:
        with fs.open(f"{path}/{MANIFEST}", "rb") as f:
            return orjson.loads(f.read())
    except FileNotFoundError:
        raise StepError(f"{folder} is not a selector model (no {MANIFEST})") from None


def check_model(folder: str, kind: str) -> dict[str, Any]:
    """The manifest of a model of ``kind``; StepError if it is missing or of another kind."""
    manifest = read_manifest(folder)
    if manifest.get("kind") != kind or manifest.get("format") != FORMAT:
        raise StepError(f"{folder} holds a {manifest.get('kind')!r} model (format "
                         f"{manifest.get('format')}), not a {kind!r} model (format {FORMAT})")
    return manifest


def load_model(folder: str, kind: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """``(arrays, manifest)`` of a saved model of ``kind``."""
    manifest = check_model(folder, kind)
    fs, path = fsspec.core.url_to_fs(folder)
    with fs.open(f"{path}/{ARRAYS}", "rb") as f:
        payload = f.read()
    if hashlib.sha256(payload).hexdigest() != manifest["arrays"]["sha256"]:
        raise StepError(f"{folder}/{ARRAYS} does not match the SHA-256 in its manifest")
    with np.load(io.BytesIO(payload)) as data:
        arrays = {name: data[name] for name in data.files}
    return arrays, manifest
