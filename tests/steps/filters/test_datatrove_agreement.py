"""The four rule sets decide as datatrove 0.10.1 does, on 200 documents of the bundled sample.

The fixture holds varied documents (sources, languages, every rejection reason the sample
produces, and documents whose signals sit near a threshold). bench/agreement.py runs the
same comparison on the whole sample and on the benchmark corpus.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest

from assay.documents import CORE_SCHEMA, REASON, TEXT
from assay.steps import step_class

datatrove = pytest.importorskip("datatrove")
pytest.importorskip("spacy")

from datatrove.data import Document  # noqa: E402
from datatrove.pipeline.filters import (  # noqa: E402
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "agreement_docs.jsonl"
REFERENCE = {
    "gopher_repetition": GopherRepetitionFilter,
    "gopher_quality": GopherQualityFilter,
    "c4_quality": C4QualityFilter,
    "fineweb_quality": FineWebQualityFilter,
}


@pytest.fixture(scope="module")
def docs() -> list[dict[str, str]]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", list(REFERENCE))
def test_decisions_agree_with_datatrove(name: str, docs: list[dict[str, str]]) -> None:
    reference = REFERENCE[name]()
    expected: list[str | None] = []
    expected_text: list[str] = []
    for d in docs:
        doc = Document(text=d["text"], id=d["id"])
        result = reference.filter(doc)
        expected.append(None if result is True else result[1])
        expected_text.append(doc.text)  # C4 rewrites the text of documents it keeps

    n = len(docs)
    table = pa.table(
        {
            "id": [d["id"] for d in docs],
            "text": [d["text"] for d in docs],
            "source": [d["source"] for d in docs],
            "url": [None] * n,
            "metadata": [None] * n,
        },
        schema=CORE_SCHEMA,
    )
    out = step_class(name)()(table)
    got = out.column(REASON).to_pylist()
    agree = sum(g == e for g, e in zip(got, expected, strict=True)) / n
    differing = [(d["id"], g, e) for d, g, e in zip(docs, got, expected, strict=True) if g != e]
    assert agree >= 0.99, differing
    if name == "c4_quality":
        texts = out.column(TEXT).to_pylist()
        kept = [i for i in range(n) if got[i] is None and expected[i] is None]
        assert kept and all(texts[i] == expected_text[i] for i in kept)
