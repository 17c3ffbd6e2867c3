"""Fixtures of the selector tests."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from select_helpers import make_docs, write_jsonl

from assay.documents import CORE_SCHEMA

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"
LIMITS = {"fortunes": 80, "python3.11-doc": 40, "udhr2 (nltk_data)": 24}


@pytest.fixture(scope="session")
def select_corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """raw.jsonl: 300 documents (ka 60, mi 180, zo 60) plus 20 short ka ones; targets in
    ka (ka.jsonl) and zo (zo.jsonl)."""
    folder = tmp_path_factory.mktemp("select")
    raw = make_docs(1, {"ka": 60, "mi": 180, "zo": 60}, "r")
    raw += make_docs(2, {"ka": 20}, "s", n_words=(10, 40))
    return {
        "raw": write_jsonl(folder / "raw.jsonl", raw),
        "ka": write_jsonl(folder / "ka.jsonl", make_docs(3, {"ka": 40}, "t")),
        "zo": write_jsonl(folder / "zo.jsonl", make_docs(4, {"zo": 40}, "u")),
    }


@pytest.fixture(scope="session")
def three_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A curated output of three sources of the bundled sample: 80 fortunes, the python
    documentation (8 documents), 24 declarations of human rights."""
    docs, seen = [], dict.fromkeys(LIMITS, 0)
    with gzip.open(SAMPLE) as f:
        for line in f:
            d = orjson.loads(line)
            if d["source"] in LIMITS and seen[d["source"]] < LIMITS[d["source"]]:
                seen[d["source"]] += 1
                docs.append(d)
    folder = tmp_path_factory.mktemp("curated")
    (folder / "data").mkdir()
    pq.write_table(pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs],
                             "source": [d["source"] for d in docs], "url": [None] * len(docs),
                             "metadata": [None] * len(docs)}, schema=CORE_SCHEMA),
                   folder / "data" / "part-00000-00000.parquet")
    return folder
