"""assay's side of the filter benchmark: the same chain datatrove runs, JSONL in and out.

Gopher repetition -> Gopher quality -> C4 quality -> FineWeb quality, every threshold at its
default, uncompressed JSONL output (as the datatrove job writes). Prints one JSON line of
job stats last, as the shared harness expects.

usage: assay_filters.py SHARD_DIR OUT_DIR [WORKERS]
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    # Imported here, not at the top: each spawned worker runs this script's top level again
    # (see docs/python-api.md), and needs none of it.
    from assay import Pipeline
    from assay.recipe import OutputSpec
    from assay.steps.filters.c4 import C4Quality
    from assay.steps.filters.fineweb import FineWebQuality
    from assay.steps.filters.gopher_quality import GopherQuality
    from assay.steps.filters.gopher_repetition import GopherRepetition

    shards, out = sys.argv[1], sys.argv[2]
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    pipeline = Pipeline(
        [GopherRepetition(), GopherQuality(), C4Quality(), FineWebQuality()], name="filters"
    )
    result = pipeline.run(
        f"{shards}/*.jsonl", OutputSpec(path=out, format="jsonl"), workers=workers,
        overwrite=True,
    )
    per_step = {
        s["name"]: {"in": s["docs_in"], "dropped": s["docs_rejected"], "seconds": s["seconds"],
                    "drop_reasons": s["reasons"]}
        for s in result.manifest["steps"]
    }
    print(json.dumps({"kept_docs": result.totals["kept"], "per_step": per_step}))


if __name__ == "__main__":
    main()
