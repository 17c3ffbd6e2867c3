"""assay's side of the dedup benchmark: ``minhash_dedup`` with its defaults (word 5-grams,
14 bands x 8 rows, as datatrove's ``MinhashConfig()``), JSONL shards in, JSONL out.
Writes ``OUT/removed_ids.txt`` (one removed id a line) for the harness's ``eval_dedup.py``
and prints one JSON line of job stats last.

usage: assay_dedup.py SHARD_DIR OUT_DIR [WORKERS] [STEP_PARAMS_JSON]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

from assay import Pipeline
from assay.steps.dedup.minhash import MinHashDedup


def main() -> None:
    shards, out = sys.argv[1], Path(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    params = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {}
    result = Pipeline([MinHashDedup(**params)], name="dedup").run(
        f"{shards}/*.jsonl", str(out), workers=workers, overwrite=True
    )
    removed = []
    for path in sorted((out / "rejected").glob("*.parquet")):
        removed += pq.read_table(path, columns=["id"]).column("id").to_pylist()
    (out / "removed_ids.txt").write_text("".join(f"{i}\n" for i in removed))
    step = result.manifest["steps"][-1]
    print(json.dumps({"kept_docs": result.totals["kept"], "removed": len(removed),
                      "seconds": step["seconds"], "fit": step.get("fit", {})}))


if __name__ == "__main__":
    main()
