"""Which assay output a path holds, from the files in it, so ``assay report`` picks its page.

- ``run``: a folder with ``manifest.json`` holding ``steps`` (``assay run``);
- ``prepare``: a folder with ``manifest.json`` of format ``assay-shards`` (``assay prepare``);
- ``compare``: a folder with ``compare.json``, or that file itself (``assay compare``);
- ``fit``: the JSON file ``assay fit --out`` writes (``fits``, written by assay).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import orjson

from assay.errors import AssayError

Kind = Literal["run", "prepare", "fit", "compare"]
MANIFEST = "manifest.json"
COMPARE = "compare.json"
CURVES = "curves.json"
MAX_JSON_BYTES = 1 << 28  # a file larger than this is no fit or compare file
SHARDS_FORMAT = "assay-shards"  # the "format" of a prepare manifest (assay.prepare.run)


class ReportError(AssayError, ValueError):
    """A path that holds no output assay can report on, or one that cannot be read."""


def read_json(path: Path) -> Any:
    """A JSON file's data; :class:`ReportError` naming the file when it cannot be read."""
    try:
        return orjson.loads(path.read_bytes())
    except OSError as exc:
        raise ReportError(f"cannot read: {exc.strerror or exc}", file=str(path)) from None
    except orjson.JSONDecodeError as exc:
        raise ReportError(f"not valid JSON ({exc})", file=str(path)) from None


def is_fit(data: Any) -> bool:
    return isinstance(data, dict) and data.get("written_by") == "assay" and isinstance(data.get("fits"), list)


def is_compare(data: Any) -> bool:
    keys = ("recipes", "metrics", "summaries", "differences")
    return isinstance(data, dict) and all(k in data for k in keys)


def _maybe_json(path: Path) -> Any:
    """The data of a file that may be JSON (any name: ``assay fit --out`` takes one), or None."""
    if path.stat().st_size > MAX_JSON_BYTES:
        return None
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError:
        return None


def report_kind(folder: Path) -> Kind:
    """``run``, ``prepare``, ``fit`` or ``compare``; :class:`ReportError` for anything else."""
    folder = Path(folder)
    if folder.is_file():
        data = _maybe_json(folder)
        if is_fit(data):
            return "fit"
        if is_compare(data):
            return "compare"
    elif (folder / MANIFEST).is_file():
        manifest = read_json(folder / MANIFEST)
        if isinstance(manifest, dict) and manifest.get("format") == SHARDS_FORMAT:
            return "prepare"
        if isinstance(manifest, dict) and isinstance(manifest.get("steps"), list):
            return "run"
    elif (folder / COMPARE).is_file() and is_compare(read_json(folder / COMPARE)):
        return "compare"
    what = "the file" if folder.is_file() else "the folder" if folder.is_dir() else "nothing"
    raise ReportError(
        f"{what} here is no output assay reports on: expected the folder of `assay run` "
        f"({MANIFEST} with steps), of `assay prepare` ({MANIFEST} of format {SHARDS_FORMAT}) or of "
        f"`assay compare` ({COMPARE}), or the JSON file of `assay fit --out`",
        file=str(folder),
    )
