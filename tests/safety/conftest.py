"""Fixtures of the fault-injection suite (helpers in :mod:`safety_helpers`)."""

from __future__ import annotations

import gzip
import json

import pytest
from safety_helpers import SAMPLE


@pytest.fixture
def docs() -> list[dict]:
    return [{"id": f"d{i}", "text": f"document number {i} " * (1 + i % 5), "source": "s"}
            for i in range(40)]


@pytest.fixture(scope="session")
def sample_docs() -> list[dict]:
    with gzip.open(SAMPLE) as f:
        return [json.loads(line) for line in f]
