"""line_dedup (a global transform) and url_dedup, through whole runs."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from assay import Pipeline
from assay.steps.dedup.lines import ALL_UNITS_DUPLICATED, LineDedup, split_units
from assay.steps.dedup.url import DUPLICATE_URL, UrlDedup, normalize_url


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def read_folder(folder: Path) -> pa.Table | None:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


def run(tmp_path: Path, records: list[dict], step: object, workers: int = 2) -> tuple[dict, dict, dict]:
    path = write_jsonl(tmp_path / "in.jsonl", records)
    result = Pipeline([step]).run(str(path), str(tmp_path / "out"), workers=workers, shard_mb=0.0002,
                                  overwrite=True)
    kept = read_folder(tmp_path / "out" / "data")
    rejected = read_folder(tmp_path / "out" / "rejected")
    kept_rows = {r["id"]: r for r in kept.to_pylist()} if kept is not None else {}
    rejected_rows = {r["id"]: r for r in rejected.to_pylist()} if rejected is not None else {}
    return kept_rows, rejected_rows, result.manifest


DOCS = [
    {"id": "a", "text": "Welcome to the site\nFirst story about cats.\nCookie notice"},
    {"id": "b", "text": "Welcome to the site\nA second story, about dogs.\nCookie notice"},
    {"id": "c", "text": "Cookie notice\n\nWelcome to the site"},
    {"id": "d", "text": "Unique text only.\nWelcome to the site"},
]


def test_line_dedup_keeps_first_occurrence(tmp_path: Path) -> None:
    kept, rejected, manifest = run(tmp_path, DOCS, LineDedup())
    assert kept["a"]["text"] == DOCS[0]["text"]
    assert kept["b"]["text"] == "A second story, about dogs.\n"
    assert kept["d"]["text"] == "Unique text only.\n"
    assert rejected["c"]["reason"] == ALL_UNITS_DUPLICATED
    assert rejected["c"]["text"] == DOCS[2]["text"]  # a rejected row keeps its text
    assert kept["b"]["line_dedup.units_removed"] == 2
    assert kept["b"]["line_dedup.chars_removed"] == len("Welcome to the site\n") + len("Cookie notice")
    assert "line_dedup.hashes" not in kept["a"]
    fit = manifest["steps"][0]["fit"]["summary"]
    assert fit["frequent_units"] == 2 and fit["documents_edited"] == 3
    assert manifest["accounting"]["balanced"]


def test_line_dedup_boilerplate_mode_and_thresholds(tmp_path: Path) -> None:
    kept, rejected, _ = run(tmp_path, DOCS, LineDedup(keep="none", max_docs=2))
    # "Welcome to the site" is in 4 documents and "Cookie notice" in 3: both above 2.
    assert kept["a"]["text"] == "First story about cats.\n"
    assert kept["d"]["text"] == "Unique text only.\n"
    assert "c" in rejected
    kept, _, _ = run(tmp_path, DOCS, LineDedup(keep="none", max_docs=3))
    assert kept["a"]["text"] == "First story about cats.\nCookie notice"
    kept, _, _ = run(tmp_path, DOCS, LineDedup(min_chars=15))  # "Cookie notice" is 13 chars
    assert kept["b"]["text"] == "A second story, about dogs.\nCookie notice"


def test_shards_without_removals(tmp_path: Path) -> None:
    docs = [{"id": f"u{i}", "text": f"line {i}\nother {i}"} for i in range(30)] + DOCS
    kept, rejected, _ = run(tmp_path, docs, LineDedup())
    assert len(kept) == 33 and set(rejected) == {"c"}


def test_paragraph_units(tmp_path: Path) -> None:
    docs = [{"id": "x", "text": "Intro para.\n\nShared footer\nline two"},
            {"id": "y", "text": "Other intro.\n\n\nShared footer\nline two\n\nEnd."}]
    kept, _, _ = run(tmp_path, docs, LineDedup(unit="paragraph"), workers=1)
    assert kept["x"]["text"] == docs[0]["text"]
    assert kept["y"]["text"] == "Other intro.\n\n\nEnd."


@given(st.text(alphabet="ab \n\t", max_size=40))
def test_units_and_separators_rebuild_the_text(text: str) -> None:
    for unit in ("line", "paragraph"):
        pieces = split_units(text, unit)
        assert "".join(pieces) == text and len(pieces) % 2 == 0


@pytest.mark.parametrize(("url", "normal"), [
    ("HTTP://WWW.Example.com:80/a/b/#frag", "http://example.com/a/b"),
    ("https://example.com", "https://example.com/"),
    ("https://example.com:8443/x?q=1", "https://example.com:8443/x?q=1"),
])
def test_normalize_url(url: str, normal: str) -> None:
    assert normalize_url(url) == normal


def test_url_dedup(tmp_path: Path) -> None:
    docs = [
        {"id": "1", "text": "one", "url": "https://www.example.com/page/"},
        {"id": "2", "text": "two", "url": "https://example.com/page"},
        {"id": "3", "text": "three"},
        {"id": "4", "text": "four"},
        {"id": "5", "text": "five", "url": "https://example.com/page?x=1"},
    ]
    kept, rejected, _ = run(tmp_path, docs, UrlDedup())
    assert set(kept) == {"1", "3", "4", "5"}
    assert rejected["2"]["reason"] == DUPLICATE_URL and rejected["2"]["duplicate_of"] == "1"
    kept, rejected, _ = run(tmp_path, docs, UrlDedup(normalize=False))
    assert set(kept) == {"1", "2", "3", "4", "5"}
