"""Sources streamed in bounded batches: the reader never yields more than ``batch_rows``
documents, the tokenizer never sees more at once, shards do not depend on the batch size,
and a bad record is refused naming its file and line (or row)."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.prepare import PrepareError
from assay.prepare import writing as writing_module
from assay.prepare.sources import Batching, curated_files, index_curated, read_batches
from assay.prepare.tokenizer import Encoder

from .conftest import run, write_curated
from .test_resume import files_of


def _jsonl(folder: Path, docs: list[dict[str, Any]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "a.jsonl.gz", "wb") as f:
        f.writelines(orjson.dumps(d) + b"\n" for d in docs[:500])
    (folder / "b.jsonl").write_bytes(b"".join(orjson.dumps(d) + b"\n" for d in docs[500:]))
    return folder


@pytest.mark.parametrize("kind", ["parquet", "jsonl"])
def test_the_reader_holds_at_most_batch_rows_documents(tmp_path: Path, curated: Path, kind: str,
                                                      sample_docs: list[dict[str, Any]]) -> None:
    path = str(curated) if kind == "parquet" else str(_jsonl(tmp_path, sample_docs))
    files = curated_files(path)
    for rows in (1, 37, 300):
        batches = list(read_batches(files, Batching(rows, 1 << 30)))
        assert max(b.num_rows for b in batches) == rows
        assert len(batches) >= len(sample_docs) // rows
        assert [t for b in batches for t in b.column("text").to_pylist()] == [d["text"] for d in sample_docs]
    # About batch_mb of text at a time: the Parquet reader sizes its batches by the average row.
    by_bytes = list(read_batches(files, Batching(1 << 20, 200_000)))
    sizes = [sum(len(t.encode()) for t in b.column("text").to_pylist()) for b in by_bytes]
    assert len(by_bytes) > 10 and sorted(sizes)[len(sizes) // 2] < 400_000
    index = index_curated(path, Batching(37, 1 << 30))
    assert index.ends.tolist() == sorted(index.ends.tolist()) and int(index.ends[-1]) == len(sample_docs)
    assert index.ids.to_pylist() == [d["id"] for d in sample_docs]


def test_prepare_tokenizes_a_batch_at_a_time_with_the_same_shards(
        tmp_path: Path, curated: Path, tokenizer_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recipe = f"""
name: batches
output: "{{out}}"
tokenizer: {{path: "{tokenizer_file}"}}
heldout: 0.05
mixture:
  total_tokens: 2000000
  sources:
    guide: {{path: "{curated}", select: [debian-installation-guide], weight: 0.5}}
    rest: {{path: "{curated}", select: [fortunes, python3.11-doc, "udhr2 (nltk_data)"], weight: 0.5}}
packing: {{method: both, shard_tokens: 300000}}
"""
    whole = run(tmp_path / "whole", recipe)
    m = whole.manifest
    n_docs = sum(s["documents"] for s in m["sources"].values()) + m["heldout"]["documents"]
    seen: list[int] = []
    encode = Encoder.encode_documents
    monkeypatch.setattr(Encoder, "encode_documents", lambda self, texts: (seen.append(len(texts)),
                                                                        encode(self, texts))[1])
    monkeypatch.setattr(writing_module, "GATHER_TOKENS", 5000)  # many gather blocks, across work files
    small = run(tmp_path / "small", recipe.replace("heldout:", "batch_rows: 64\nheldout:")).output
    assert max(seen) <= 64 and sum(seen) == n_docs  # every document, never more than 64 at once
    assert files_of(small) == files_of(whole.output)


def test_bad_records_are_refused_with_file_and_line(tmp_path: Path, sample_docs: list[dict[str, Any]],
                                                     tokenizer_file: Path) -> None:
    head = f'name: bad\noutput: "{{out}}"\ntokenizer: {{path: "{tokenizer_file}"}}\n'
    folder = _jsonl(tmp_path / "js", sample_docs[:530])
    lines = (folder / "b.jsonl").read_bytes().splitlines(keepends=True)
    (folder / "b.jsonl").write_bytes(b"".join(lines[:2]) + b"{not json\n" + b"".join(lines[2:]))
    with pytest.raises(PrepareError, match=r"b\.jsonl:3: invalid JSON"):
        run(tmp_path, head + f'input: "{folder}/*.jsonl*"\n')

    parquet = write_curated(tmp_path / "nulls", sample_docs[:30], parts=1)
    part = next((parquet / "data").glob("*.parquet"))
    table = pq.read_table(part)
    texts = table.column("text").to_pylist()
    texts[17] = None
    pq.write_table(table.set_column(1, "text", pa.array(texts, pa.string())), part)
    with pytest.raises(PrepareError, match=rf"{part.name}:18: text is null"):
        run(tmp_path, head + f'input: "{parquet}"\n')
    pq.write_table(table.drop_columns(["source"]), part)
    with pytest.raises(PrepareError, match=rf"{part.name}: no column 'source'"):
        run(tmp_path, head + f'input: "{parquet}"\n')
    part.write_bytes(b"PAR1 this is not a parquet file")
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(head.replace("{out}", str(tmp_path / "out")) + f'input: "{parquet}"\n')
    refused = CliRunner().invoke(app, ["prepare", str(recipe)])
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert f"error: {part}: not a readable Parquet file" in " ".join(refused.output.split())
    assert not (tmp_path / "out").exists()
