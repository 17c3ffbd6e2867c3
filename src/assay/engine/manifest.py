"""The run manifest: what ran, on what, with which versions, and every count."""

from __future__ import annotations

import time
from typing import Any

from assay.engine.settings import RunSettings
from assay.engine.stats import ReadStats, StepStats
from assay.versions import assay_version, dependency_versions


def build_manifest(
    *,
    settings: RunSettings,
    inputs: list[dict[str, Any]],
    read: ReadStats,
    steps: list[StepStats],
    counted: dict[str, int],
    problems: list[str],
    n_shards: int,
    n_stages: int,
    started: float,
    resumed: int,
    executor: dict[str, Any],
) -> dict[str, Any]:
    layout = settings.layout
    return {
        "name": settings.name,
        "assay_version": assay_version(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_seconds": round(time.time() - started, 3),
        "recipe": settings.resolved_recipe,
        "versions": dependency_versions(),
        "inputs": inputs,
        "seed": settings.seed,
        "executor": {
            **executor,
            "shard_bytes": settings.shard_bytes,
            "shards": n_shards,
            "stages": n_stages,
            "shards_resumed": resumed,
        },
        "output": {
            "path": layout.root,
            "format": layout.format,
            "compression": layout.compression,
            "kept": "data/",
            "rejected": "rejected/",
            "quarantined": "quarantine/",
            **({"generated": "generated/"} if counted.get("generated") else {}),
        },
        "read": read.to_json(),
        "steps": [s.to_json() for s in steps],
        "totals": {
            "in": read.records,
            "kept": counted["kept"],
            "rejected": counted["rejected"],
            "quarantined": counted["quarantined"],
            "bytes_in": read.bytes,
            "bytes_kept": steps[-1].bytes_kept if steps else read.bytes,
            **({"generated": counted["generated"]} if counted.get("generated") else {}),
        },
        "accounting": {"balanced": not problems, "problems": problems},
    }
