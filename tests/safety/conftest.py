"""Fixtures of the fault-injection suite (helpers in :mod:`safety_helpers`)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from safety_helpers import SAMPLE, assay, write_jsonl, write_recipe


def forty_docs() -> list[dict]:
    return [{"id": f"d{i}", "text": f"document number {i} " * (1 + i % 5), "source": "s"}
            for i in range(40)]


@pytest.fixture
def docs() -> list[dict]:
    return forty_docs()


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output of a finished ``assay run`` of the forty documents, for the tests that need
    an output assay wrote and are not about the run that wrote it: each changes a copy."""
    root = tmp_path_factory.mktemp("finished")
    corpus = write_jsonl(root / "in" / "docs.jsonl", forty_docs())
    done = assay("run", write_recipe(root / "r.yaml", corpus, root / "out"))
    assert done.code == 0, done.output
    return root / "out"


@pytest.fixture(scope="session")
def sample_docs() -> list[dict]:
    with gzip.open(SAMPLE) as f:
        return [json.loads(line) for line in f]
