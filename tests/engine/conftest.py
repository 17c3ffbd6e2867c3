from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from engine_helpers import write_jsonl_gz

HERE = Path(__file__).resolve().parent
# Spawned workers import the test steps by module name.
sys.path.insert(0, str(HERE))
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
)


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    docs = [
        {"id": f"d{i:03d}", "text": f"Document {i} has some words. " * (i % 7), "source": "s"}
        for i in range(120)
    ]
    docs += [{"id": f"dup{i}", "text": docs[i]["text"]} for i in range(1, 30, 3)]
    return write_jsonl_gz(tmp_path / "corpus.jsonl.gz", docs)
