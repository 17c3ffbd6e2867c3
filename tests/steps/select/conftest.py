"""Fixtures of the selector tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from select_helpers import make_docs, write_jsonl


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
