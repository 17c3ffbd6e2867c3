"""Fixtures of the train tests: small shards of the bundled sample with a held-out split, and
deterministic single-thread settings (nothing is downloaded)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from assay.documents import CORE_SCHEMA
from assay.prepare import parse_prepare_recipe, prepare, train_encoder

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"
# Three small sources of the sample: short fortunes, long Python docs, UDHR translations.
KEEP = {"fortunes": None, "python3.11-doc": None, "udhr2 (nltk_data)": 24}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    """One thread: the machine is shared, and results must not depend on its load."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def small_docs() -> list[dict[str, Any]]:
    """Documents of three sources of the bundled sample (the first 24 UDHR translations)."""
    docs, seen = [], dict.fromkeys(KEEP, 0)
    with gzip.open(SAMPLE) as f:
        for line in f:
            d = orjson.loads(line)
            limit = KEEP.get(d["source"], 0)
            if d["source"] in KEEP and (limit is None or seen[d["source"]] < limit):
                seen[d["source"]] += 1
                docs.append(d)
    return docs


def write_curated(folder: Path, docs: list[dict[str, Any]]) -> Path:
    """A curated output (OUTPUT/data/part-*.parquet in the core schema) holding ``docs``."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    table = pa.table({"id": [d["id"] for d in docs], "text": [d["text"] for d in docs],
                      "source": [d["source"] for d in docs], "url": [d.get("url") for d in docs],
                      "metadata": [None] * len(docs)}, schema=CORE_SCHEMA)
    pq.write_table(table, folder / "data" / "part-00000-00000.parquet")
    return folder


@pytest.fixture(scope="session")
def curated_small(tmp_path_factory: pytest.TempPathFactory, small_docs: list[dict[str, Any]]) -> Path:
    return write_curated(tmp_path_factory.mktemp("curated"), small_docs)


@pytest.fixture(scope="session")
def tokenizer_512(tmp_path_factory: pytest.TempPathFactory, small_docs: list[dict[str, Any]]) -> Path:
    """A 512-id byte-level BPE trained on the small sources."""
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    path.write_bytes(train_encoder([d["text"] for d in small_docs], 512).spec_bytes)
    return path


def prepare_shards(out: Path, curated: Path, tokenizer: Path, *, heldout: float | str = 0.1, seed: int = 0,
                   method: str = "both", context: int = 64, phases: str | None = None) -> Path:
    """Prepare shards of ``curated`` (three mixture sources, one per curated source)."""
    recipe = parse_prepare_recipe(f"""
name: small
output: "{out}"
seed: {seed}
tokenizer: {{path: "{tokenizer}"}}
mixture:
  sources:
    fortunes: {{path: "{curated}", select: [fortunes], epochs: 1}}
    python: {{path: "{curated}", select: [python3.11-doc], epochs: 1}}
    udhr: {{path: "{curated}", select: ["udhr2 (nltk_data)"], epochs: 1}}
  phases: {phases or "[{name: main, fraction: 1.0}]"}
packing: {{method: {method}, context: {context}, min_log2: 4, max_log2: 6}}
heldout: {heldout}
""")
    return prepare(recipe).output


@pytest.fixture(scope="session")
def shards(tmp_path_factory: pytest.TempPathFactory, curated_small: Path, tokenizer_512: Path) -> Path:
    """Small shards with both packings and a 10% held-out split per source."""
    return prepare_shards(tmp_path_factory.mktemp("shards") / "out", curated_small, tokenizer_512)
