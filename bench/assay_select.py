"""assay's side of the selection benchmark: ``dsir`` with its defaults (unigrams+bigrams in
10,000 buckets, Gumbel top-k, min 100 tokens, as the harness's ``peers/dsir_select.py``
runs the ``data-selection`` package), 10% of RAW.jsonl toward TARGET.jsonl.
Writes ``OUT/selected_ids.txt`` (one selected id a line) for the harness's ``eval_dsir.py``
and prints one JSON line of job stats last.

usage: assay_select.py RAW.jsonl TARGET.jsonl OUT_DIR [WORKERS] [FRACTION] [STEP_PARAMS_JSON]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

from assay import Pipeline
from assay.steps.select.dsir import Dsir


def main() -> None:
    raw, target, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 2
    fraction = float(sys.argv[5]) if len(sys.argv) > 5 else 0.10
    params = json.loads(sys.argv[6]) if len(sys.argv) > 6 else {}
    step = Dsir(targets=[target], fraction=fraction, **params)
    result = Pipeline([step], name="select").run(raw, str(out), workers=workers, overwrite=True)
    selected = []
    for path in sorted((out / "data").glob("*.parquet")):
        selected += pq.read_table(path, columns=["id"]).column("id").to_pylist()
    (out / "selected_ids.txt").write_text("".join(f"{i}\n" for i in selected))
    entry = result.manifest["steps"][-1]
    print(json.dumps({"raw_docs": result.totals["in"], "selected": len(selected),
                      "seconds": entry["seconds"], "fit": entry.get("fit", {})}))


if __name__ == "__main__":
    main()
