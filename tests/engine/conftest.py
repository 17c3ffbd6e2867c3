from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

HERE = Path(__file__).resolve().parent
# Spawned workers import the test steps by module name.
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
)


def read_folder(folder: Path) -> pa.Table | None:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def write_jsonl_gz(path: Path, records: list[dict]) -> Path:
    path.write_bytes(gzip.compress(b"".join(json.dumps(r).encode() + b"\n" for r in records)))
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    docs = [
        {"id": f"d{i:03d}", "text": f"Document {i} has some words. " * (i % 7), "source": "s"}
        for i in range(120)
    ]
    docs += [{"id": f"dup{i}", "text": docs[i]["text"]} for i in range(1, 30, 3)]
    return write_jsonl_gz(tmp_path / "corpus.jsonl.gz", docs)
