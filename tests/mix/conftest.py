"""The mixture tests' curated output: three sources of the bundled sample."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assay.documents import CORE_SCHEMA

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"
LIMITS = {"fortunes": 60, "python3.11-doc": 40, "udhr2 (nltk_data)": 24}


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A curated output of three sources of the bundled sample."""
    docs, seen = [], dict.fromkeys(LIMITS, 0)
    with gzip.open(SAMPLE) as f:
        for line in f:
            d = orjson.loads(line)
            if d["source"] in LIMITS and seen[d["source"]] < LIMITS[d["source"]]:
                seen[d["source"]] += 1
                docs.append(d)
    folder = tmp_path_factory.mktemp("curated")
    (folder / "data").mkdir()
    table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs],
                      "source": [d["source"] for d in docs], "url": [d.get("url") for d in docs],
                      "metadata": [None] * len(docs)}, schema=CORE_SCHEMA)
    pq.write_table(table, folder / "data" / "part-00000-00000.parquet")
    return folder
