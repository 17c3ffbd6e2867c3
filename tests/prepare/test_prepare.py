"""``assay prepare`` end to end on the bundled sample: exact round trip in every format,
the mixture realised per source and phase, and clear errors before any work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.prepare import BudgetError, PrepareError, TokenizerError, effective_data, load_encoder
from assay.prepare import run as run_module
from assay.prepare.reader import Shards
from assay.recipe import RecipeError

from .conftest import run, write_curated
from .test_shards import read_megatron


def test_round_trip_every_document_every_format(prepared_sample: Path, sample_docs: list[dict[str, Any]],
                                                tokenizer_file: Path) -> None:
    shards = Shards(prepared_sample)
    m = shards.manifest
    docs = shards.documents()
    # Every document once (the sample has one id twice, so compare (id, text) multisets below).
    assert sorted(docs.column("id").to_pylist()) == sorted(d["id"] for d in sample_docs)
    assert set(docs.column("epoch").to_pylist()) == {0}
    lengths = np.array(docs.column("tokens").to_pylist())
    (source,) = m["sources"].values()
    assert source["epochs"] == 1.0 and source["tokens"] == source["unique_tokens"] == lengths.sum()
    by_curated = source["by_curated_source"]
    assert sum(v["tokens"] for v in by_curated.values()) == lengths.sum()
    assert by_curated["udhr2 (nltk_data)"]["documents"] == 60
    encoder = load_encoder(tokenizer_file)
    assert m["tokenizer"]["sha256"] == encoder.sha256
    assert (prepared_sample / "tokenizer.json").read_bytes() == tokenizer_file.read_bytes()

    # nanoGPT: np.memmap of the .bin files, documents split by the documents table.
    files = m["phases"][0]["concat"]["files"]
    assert len(files) > 1
    flat = np.concatenate([np.memmap(prepared_sample / f"{f['file']}.bin", dtype=np.uint16, mode="r")
                           for f in files])
    per_doc = np.split(flat, np.cumsum(lengths)[:-1])
    # Megatron: the independent reader gives one sequence per document, same tokens.
    megatron = [seq for f in files for seq in read_megatron(prepared_sample / f["file"])]
    assert len(megatron) == len(per_doc)
    # Dataset Decomposition: all pieces, sorted by (document, offset), rebuild each document.
    pieces = []
    for file, where in shards.buckets().values():
        pieces += [(int(p), int(o), np.asarray(file[i])) for i, (p, o) in enumerate(where)]
    pieces.sort(key=lambda x: (x[0], x[1]))
    rebuilt = np.split(np.concatenate([t for *_, t in pieces]), np.cumsum(lengths)[:-1])
    decoded = []
    ids = docs.column("id").to_pylist()
    for doc_id, tokens, seq, dd in zip(ids, per_doc, megatron, rebuilt, strict=True):
        assert tokens[-1] == encoder.eos_id and encoder.eos_id not in tokens[:-1]
        decoded.append((doc_id, encoder.decode(tokens[:-1])))
        assert seq == tokens.tolist()
        assert np.array_equal(dd, tokens)
    assert sorted(decoded) == sorted((d["id"], d["text"]) for d in sample_docs)
    position = 100
    assert shards.document_text(None, position, "decompose") == decoded[position][1]


@pytest.fixture(scope="module")
def mixture(tmp_path_factory: pytest.TempPathFactory, curated: Path, tokenizer_file: Path) -> Path:
    return run(tmp_path_factory.mktemp("mixture"), f"""
name: mix
output: "{{out}}"
seed: 3
tokenizer: {{path: "{tokenizer_file}"}}
mixture:
  total_tokens: 3000000
  sources:
    guide: {{path: "{curated}", select: [debian-installation-guide], weight: 0.6}}
    udhr: {{path: "{curated}", select: ["udhr2 (nltk_data)"], epochs: 4.5}}
    short: {{path: "{curated}", select: [fortunes, python3.11-doc], weight: 0.4}}
  phases:
    - {{name: main, fraction: 0.8}}
    - {{name: anneal, fraction: 0.2, weights: {{udhr: 0.6, guide: 0.4}}}}
packing: {{method: concat, context: 256}}
""").output


def test_mixture_is_realised_within_half_a_percent(mixture: Path) -> None:
    shards = Shards(mixture)
    m = shards.manifest
    for p, phase in enumerate(m["phases"]):
        docs = shards.documents(p)
        realised = {r["source"]: r["tokens_sum"] for r in docs.group_by("source").aggregate(
            [("tokens", "sum")]).to_pylist()}
        for name, s in phase["sources"].items():
            got = int(realised.get(name, 0))
            assert got == s["tokens"]
            if s["requested_tokens"]:
                miss = abs(got - s["requested_tokens"])
                assert miss <= 0.005 * s["requested_tokens"], (phase["name"], name)
            else:
                assert got == 0
        flat = np.concatenate([shards.concat_files(p)[i].tokens for i in range(len(shards.concat_files(p)))])
        assert flat.size == phase["tokens"] == pc.sum(docs.column("tokens")).as_py()
    anneal = m["phases"][1]["sources"]
    assert anneal["short"]["tokens"] == 0
    assert anneal["udhr"]["requested_tokens"] == pytest.approx(0.2 * 0.6 * 3_000_000)


def test_epochs_and_effective_data_are_reported(mixture: Path) -> None:
    shards = Shards(mixture)
    m = shards.manifest
    udhr = m["sources"]["udhr"]
    copies = np.concatenate([shards.documents(p).filter(pc.field("source") == "udhr")
                             .column("epoch").to_numpy() for p in range(2)])
    total = sum(p["sources"]["udhr"]["tokens"] for p in m["phases"])
    assert udhr["tokens"] == total
    assert udhr["epochs"] == pytest.approx(total / udhr["unique_tokens"])
    assert udhr["epochs"] == pytest.approx(4.5, rel=0.005)
    assert copies.max() in (4, 5)  # passes 0..4 of the 4.5 epochs (5: one filling a target's tail)
    assert np.bincount(copies)[:4].tolist() == [60, 60, 60, 60]
    assert udhr["effective_tokens"] == pytest.approx(effective_data(udhr["unique_tokens"], total))
    assert 0.85 < udhr["effective_fraction"] < 0.95
    assert any("'udhr' is repeated 4.5" in w for w in m["warnings"])
    assert m["sources"]["guide"]["epochs"] < 1 and m["sources"]["guide"]["effective_fraction"] == 1.0


def _no_tokenizing(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("tokenized before refusing")

    monkeypatch.setattr(run_module, "tokenize_sources", fail)


BASE = """
name: bad
output: "{{out}}"
tokenizer: {{path: "{tok}"}}
"""


def test_budgets_above_the_cap_are_refused_before_tokenizing(
        tmp_path: Path, curated: Path, tokenizer_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    head = BASE.format(tok=tokenizer_file)
    _no_tokenizing(monkeypatch)
    with pytest.raises(BudgetError, match=r"'udhr'.*above its cap of 16"):
        run(tmp_path, head + f"""
mixture:
  total_tokens: 20000000
  sources:
    udhr: {{path: "{curated}", select: ["udhr2 (nltk_data)"], weight: 1}}
""")
    with pytest.raises(BudgetError, match="exceed total_tokens"):
        run(tmp_path, head + f"""
mixture:
  total_tokens: 1000
  sources:
    a: {{path: "{curated}", select: [fortunes], tokens: 2000}}
    b: {{path: "{curated}", select: ["udhr2 (nltk_data)"], weight: 1}}
""")
    assert not (tmp_path / "shards" / "concat").exists()


def test_exact_cap_check_writes_nothing_and_force_overrides(
        tmp_path: Path, curated: Path, tokenizer_file: Path) -> None:
    recipe = BASE.format(tok=tokenizer_file) + f"""
mixture:
  max_epochs: 3
  sources:
    f: {{path: "{curated}", select: [python3.11-doc], epochs: 3.4}}
"""
    with pytest.raises(BudgetError, match=r"3\.4\d epochs, above its cap of 3"):
        run(tmp_path, recipe)
    assert not (tmp_path / "shards").exists()  # nothing written, the work files removed
    planned = run(tmp_path, recipe, force=True, dry_run=True)
    assert planned.manifest["sources"]["f"]["epochs"] == pytest.approx(3.4, rel=0.01)
    assert not (tmp_path / "shards").exists()
    result = run(tmp_path, recipe, force=True)
    assert result.manifest["sources"]["f"]["epochs"] == pytest.approx(3.4, rel=0.01)
    assert sorted(p.name for p in result.output.iterdir()) == [".assay-output", "concat", "documents",
                                                               "manifest.json", "tokenizer.json"]


def test_empty_documents_are_refused_or_skipped(
        tmp_path: Path, sample_docs: list[dict[str, Any]], tokenizer_file: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    docs = [*sample_docs[:20], {"id": "blank-1", "text": "", "source": "fortunes"}]
    folder = write_curated(tmp_path / "curated", docs, parts=1)
    recipe = BASE.format(tok=tokenizer_file) + f'input: "{folder}"\n'
    with monkeypatch.context() as patched:
        _no_tokenizing(patched)
        with pytest.raises(PrepareError, match=r"1 empty document\(s\).*blank-1.*skip_empty"):
            run(tmp_path, recipe)
    result = run(tmp_path, recipe + "skip_empty: true\n", overwrite=True)
    assert result.manifest["totals"]["documents"] == 20
    assert any("skipped 1 empty" in w for w in result.warnings)


def test_a_held_out_split_too_small_to_score_is_warned_about(
        tmp_path: Path, sample_docs: list[dict[str, Any]], tokenizer_file: Path) -> None:
    folder = write_curated(tmp_path / "curated", sample_docs[:40], parts=1)
    recipe = BASE.format(tok=tokenizer_file) + f'input: "{folder}"\n'
    small = run(tmp_path, recipe + "heldout: {fraction: 0.1, max_documents: 2}\n")
    assert small.manifest["heldout"]["documents"] == 2
    assert any("too few to score" in w for w in small.warnings), small.warnings
    assert small.manifest["warnings"] == small.warnings


def test_bad_inputs_fail_with_clear_messages(tmp_path: Path, curated: Path, tokenizer_file: Path) -> None:
    with pytest.raises(TokenizerError, match="tokenizer file not found"):
        run(tmp_path, BASE.format(tok=tmp_path / "missing.json") + f'input: "{curated}"\n')
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(TokenizerError, match=r"not a valid tokenizer\.json"):
        run(tmp_path, BASE.format(tok=broken) + f'input: "{curated}"\n')
    with pytest.raises(PrepareError, match=r"select names 'fortune'.*its sources: .*fortunes"):
        run(tmp_path, BASE.format(tok=tokenizer_file) + f"""
mixture:
  sources: {{a: {{path: "{curated}", select: [fortune], epochs: 1}}}}
""")
    with pytest.raises(PrepareError, match="is in sources 'a' and 'b'"):
        run(tmp_path, BASE.format(tok=tokenizer_file) + f"""
mixture:
  sources:
    a: {{path: "{curated}", select: [fortunes], epochs: 1}}
    b: {{path: "{curated}", select: [fortunes, python3.11-doc], epochs: 1}}
""")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PrepareError, match=r"no \*\.parquet"):
        run(tmp_path, BASE.format(tok=tokenizer_file) + f'input: "{empty}"\n')


def test_recipe_errors_are_located(tmp_path: Path, tokenizer_file: Path) -> None:
    with pytest.raises(RecipeError, match=r":3: unknown parameter 'tokenzier'"):
        run(tmp_path, "name: x\noutput: o\ntokenzier: {}\ninput: a\n")
    with pytest.raises(RecipeError, match=r"exactly one of tokenizer\.path and tokenizer\.train"):
        run(tmp_path, "name: x\noutput: o\ntokenizer: {path: a, train: {vocab_size: 300}}\ninput: a\n")
    with pytest.raises(RecipeError, match=r":13: phase 'end' weights unknown source 'c'"):
        run(tmp_path, BASE.format(tok=tokenizer_file) + """mixture:
  total_tokens: 10
  sources: {a: {path: x, weight: 1}}
  phases:
    - {name: main, fraction: 0.5}
    - name: end
      fraction: 0.5
      weights: {a: 1,
                c: 2}
""")


def test_same_recipe_same_bytes_and_existing_output_is_kept(tmp_path: Path, curated: Path) -> None:
    recipe = f"""
name: det
output: "{{out}}"
seed: 11
tokenizer: {{train: {{vocab_size: 400, max_mb: 0.3}}}}
mixture:
  total_tokens: 60000
  sources:
    a: {{path: "{curated}", select: [fortunes], weight: 1}}
    b: {{path: "{curated}", select: [python3.11-doc], weight: 1}}
packing: {{method: both, min_log2: 4, max_log2: 9}}
"""
    first = run(tmp_path / "1", recipe).output
    second = run(tmp_path / "2", recipe).output
    def listing(root: Path) -> list[Path]:
        return sorted(p.relative_to(root) for p in root.rglob("*")
                      if p.is_file() and p.name != "manifest.json")

    files = listing(first)
    assert any(str(f).endswith("bucket-09.bin") for f in files)
    assert files == listing(second)
    for f in files:
        assert (first / f).read_bytes() == (second / f).read_bytes(), f
    with pytest.raises(PrepareError, match=r"already holds shards.*--overwrite"):
        run(tmp_path / "1", recipe)


def test_hf_and_tiktoken_engines_write_identical_shards(tmp_path: Path, curated: Path,
                                                        tokenizer_file: Path) -> None:
    outs = {}
    for engine in ("hf", "tiktoken"):
        result = run(tmp_path / engine, f"""
name: eng
output: "{{out}}"
tokenizer: {{path: "{tokenizer_file}", engine: {engine}}}
mixture:
  sources: {{a: {{path: "{curated}", select: [python3.11-doc], epochs: 1}}}}
""")
        assert result.manifest["tokenizer"]["engine"] == engine
        outs[engine] = (result.output / "concat" / "phase-00-main" / "part-00000.bin").read_bytes()
    assert len(outs["hf"]) > 100_000 and outs["hf"] == outs["tiktoken"]


def test_cli_prepare_and_inspect(tmp_path: Path, curated: Path, tokenizer_file: Path,
                                 prepared_sample: Path) -> None:
    recipe = tmp_path / "prep.yaml"
    recipe.write_text(BASE.format(tok=tokenizer_file).replace("{out}", str(tmp_path / "out"))
                      + f'mixture:\n  sources: {{a: {{path: "{curated}", select: [fortunes], epochs: 2}}}}\n')
    runner = CliRunner()
    done = runner.invoke(app, ["prepare", str(recipe)])
    assert done.exit_code == 0, done.output
    assert "a: " in done.output and "2.00 epochs" in done.output
    again = runner.invoke(app, ["prepare", str(recipe)])
    assert again.exit_code == 2 and "--overwrite" in again.output
    shown = runner.invoke(app, ["prepare", "--inspect", str(prepared_sample), "--samples", "3"])
    assert shown.exit_code == 0, shown.output
    assert "Dataset Decomposition" in shown.output and shown.output.count("sample phase main") == 3
    missing = runner.invoke(app, ["prepare", "--inspect", str(tmp_path)])
    assert missing.exit_code == 2 and "manifest.json not found" in missing.output
