"""Fixtures of the prepare tests: the bundled sample as a curated output, and a byte-level
BPE trained on part of it (nothing is downloaded)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from assay.documents import CORE_SCHEMA
from assay.prepare import PrepareResult, parse_prepare_recipe, prepare, train_encoder

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"


def write_curated(folder: Path, docs: list[dict[str, Any]], parts: int = 3) -> Path:
    """A curated output (OUTPUT/data/part-*.parquet in the core schema) holding ``docs``."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for k, chunk in enumerate(np.array_split(np.arange(len(docs)), parts)):
        rows = [docs[i] for i in chunk]
        table = pa.table({
            "id": [d["id"] for d in rows], "text": [d["text"] for d in rows],
            "source": [d["source"] for d in rows], "url": [d.get("url") for d in rows],
            "metadata": [None] * len(rows),
        }, schema=CORE_SCHEMA)
        pq.write_table(table, folder / "data" / f"part-00000-{k:05d}.parquet")
    return folder


@pytest.fixture(scope="session")
def sample_docs() -> list[dict[str, Any]]:
    """The 1,219 documents of the bundled sample corpus."""
    with gzip.open(SAMPLE) as f:
        return [orjson.loads(line) for line in f]


@pytest.fixture(scope="session")
def curated(tmp_path_factory: pytest.TempPathFactory, sample_docs: list[dict[str, Any]]) -> Path:
    """The whole bundled sample as a curated output."""
    return write_curated(tmp_path_factory.mktemp("curated"), sample_docs)


@pytest.fixture(scope="session")
def tokenizer_file(tmp_path_factory: pytest.TempPathFactory, sample_docs: list[dict[str, Any]]) -> Path:
    """A 1,024-id byte-level BPE trained on every 8th sample document, as tokenizer.json."""
    encoder = train_encoder([d["text"] for d in sample_docs[::8]], 1024)
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    path.write_bytes(encoder.spec_bytes)
    return path


def run(tmp_path: Path, recipe_yaml: str, **kwargs: Any) -> PrepareResult:
    """Run a prepare recipe written inline; ``{out}`` is replaced by a fresh output folder."""
    recipe = parse_prepare_recipe(recipe_yaml.replace("{out}", str(tmp_path / "shards")))
    return prepare(recipe, **kwargs)


@pytest.fixture(scope="session")
def prepared_sample(tmp_path_factory: pytest.TempPathFactory, curated: Path, tokenizer_file: Path) -> Path:
    """Every document of the bundled sample once, in both packings, concat split into parts."""
    result = run(tmp_path_factory.mktemp("prepared"), f"""
name: sample-all
output: "{{out}}"
tokenizer: {{path: "{tokenizer_file}"}}
input: "{curated}"
packing: {{method: both, context: 512, shard_tokens: 1000000}}
""")
    return result.output
