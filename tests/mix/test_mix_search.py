"""``assay mix search``: proxies trained on drawn mixtures, rows for ``assay mix fit``, resumable,
and every refusal before any proxy trains."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.mix.runs import MixError, read_runs
from assay.mix.search import load_mix_spec, run_search


def _spec(path: Path, curated: Path, out: Path, **changes: str) -> Path:
    fields = {"mixtures": "5", "tokens": "4096", "max_epochs": "16", "target": "[python]",
              "fraction": "0.1", "workers": "1"} | changes
    path.write_text(f"""
name: tiny-search
output: "{out}"
seed: 0
domains:
  fortunes: {{path: "{curated}", select: [fortunes]}}
  python: {{path: "{curated}", select: [python3.11-doc]}}
  udhr: {{path: "{curated}", select: ["udhr2 (nltk_data)"]}}
tokenizer: {{train: {{vocab_size: 512}}}}
heldout: {{fraction: {fields['fraction']}, max_documents: 4}}
target: {{domains: {fields['target']}}}
proxy: {{model: 2x32, tokens: {fields['tokens']}, context: 32, batch_tokens: 256, lr: 0.01, seeds: [0]}}
mixtures: {fields['mixtures']}
max_epochs: {fields['max_epochs']}
workers: {fields['workers']}
""")
    return path


def test_search_trains_a_proxy_per_mixture_and_resumes(tmp_path: Path, curated: Path) -> None:
    out = tmp_path / "mix"
    spec = load_mix_spec(_spec(tmp_path / "spec.yaml", curated, out))
    path = run_search(spec)
    runs = read_runs(path)
    assert runs.domains == ("fortunes", "python", "udhr") and len(runs.target) == 5
    assert abs(runs.weights.sum(axis=1) - 1).max() < 1e-5
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["mixture"]) for r in rows] == [0, 1, 2, 3, 4]
    # The target is the held-out loss on the python documents.
    assert all(r["target"] == r["loss:python"] for r in rows)
    assert len({r["weight:python"] for r in rows}) == 5  # five different mixtures
    # Mixture 0 is the natural one: each domain's share of the unique tokens.
    base = orjson.loads((out / "base" / "manifest.json").read_bytes())["sources"]
    unique = {d: base[d]["unique_tokens"] for d in runs.domains}
    assert runs.weights[0].tolist() == pytest.approx([unique[d] / sum(unique.values()) for d in runs.domains],
                                                     abs=1e-5)
    # Killed after three proxies: the next run (two worker processes) trains the other two
    # only, to the same rows.
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:4]))
    again = run_search(load_mix_spec(_spec(tmp_path / "spec.yaml", curated, out, workers="2")))
    with open(again, newline="") as f:
        redone = list(csv.DictReader(f))
    same = ["mixture", "weight:python", "loss:fortunes", "loss:python", "loss:udhr", "target", "tokens"]
    assert [[r[c] for c in same] for r in redone] == [[r[c] for c in same] for r in rows]
    # Killed after the proxies trained but before their rows were written (a search on Ray
    # writes them together): the finished run folders are taken as they are, not retrained.
    checkpoints = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/checkpoint.safetensors")}
    assert len(checkpoints) == 5
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    taken = run_search(load_mix_spec(_spec(tmp_path / "spec.yaml", curated, out)))
    with open(taken, newline="") as f:
        assert [[r[c] for c in same] for r in csv.DictReader(f)] == [[r[c] for c in same] for r in rows]
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == checkpoints
    other = load_mix_spec(_spec(tmp_path / "other.yaml", curated, out, mixtures="6"))
    with pytest.raises(MixError, match="holds a search of a different spec"):
        run_search(other)
    result = CliRunner().invoke(app, ["mix", "fit", str(path), "--bootstrap", "20"])
    assert result.exit_code == 0, result.output
    assert "held-out runs (5-fold)" in result.output


def _text_target_spec(path: Path, curated: Path, out: Path, target: str) -> Path:
    path.write_text(f"""
name: text-target
output: "{out}"
domains:
  fortunes: {{path: "{curated}", select: [fortunes]}}
  udhr: {{path: "{curated}", select: ["udhr2 (nltk_data)"]}}
tokenizer: {{train: {{vocab_size: 512}}}}
heldout: {{fraction: 0.1, max_documents: 4}}
target: {target}
proxy: {{model: 2x32, tokens: 4096, context: 32, batch_tokens: 256, lr: 0.01}}
mixtures: 5
max_epochs: 16
""")
    return path


def test_a_target_text_no_proxy_trains_on(tmp_path: Path, curated: Path) -> None:
    out = tmp_path / "mix"
    target = f'{{text: {{path: "{curated}", select: [python3.11-doc]}}}}'
    path = run_search(load_mix_spec(_text_target_spec(tmp_path / "spec.yaml", curated, out, target)))
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and all(float(r["target"]) > 0 for r in rows)
    # The target is the python documentation, tokenized once with the base's tokenizer; no
    # mixture trains on it, and its loss is neither domain's.
    shards = orjson.loads((out / "target" / "manifest.json").read_bytes())
    python = pq.read_table(curated / "data").column("source").to_pylist().count("python3.11-doc")
    assert list(shards["sources"]) == ["target"] and shards["sources"]["target"]["documents"] == python
    assert shards["tokenizer"]["sha256"] == orjson.loads((out / "base" / "manifest.json").read_bytes())[
        "tokenizer"]["sha256"]
    assert all(r["target"] not in (r["loss:fortunes"], r["loss:udhr"]) for r in rows)
    # Run again: every proxy is in the table, nothing is trained or tokenized again.
    stamp = (out / "target" / "manifest.json").stat().st_mtime_ns
    assert run_search(load_mix_spec(_text_target_spec(tmp_path / "spec.yaml", curated, out, target))) == path
    assert (out / "target" / "manifest.json").stat().st_mtime_ns == stamp


def test_a_search_that_cannot_work_is_refused_before_any_proxy(tmp_path: Path, curated: Path) -> None:
    with pytest.raises(MixError, match="4 mixtures are fewer than the regressors need"):
        load_mix_spec(_spec(tmp_path / "a.yaml", curated, tmp_path / "a", mixtures="4"))
    with pytest.raises(MixError, match=r"target\.domains must name domains of the spec"):
        load_mix_spec(_spec(tmp_path / "b.yaml", curated, tmp_path / "b", target="[books]"))
    spec = load_mix_spec(_spec(tmp_path / "c.yaml", curated, tmp_path / "c", tokens="50M", max_epochs="1"))
    with pytest.raises(MixError, match="cannot supply 5e\\+07 tokens within 1 epochs"):
        run_search(spec)
    assert not (tmp_path / "c" / "runs.csv").exists() and not (tmp_path / "c" / "runs").exists()
    result = CliRunner().invoke(app, ["mix", "search", str(_spec(tmp_path / "d.yaml", curated, tmp_path / "d",
                                                                  fraction="0"))])
    assert result.exit_code != 0 and "heldout.fraction must be above 0" in result.output
    for target, words in [(f'{{text: {{path: "{curated}", select: [fortunes]}}}}', "shares documents with "
                           "domain 'fortunes'"), (f'{{text: {{path: "{curated}"}}}}', "shares documents"),
                          (f'{{domains: [udhr], text: {{path: "{curated}"}}}}', "give one of them"),
                          ("{}", "give one of them")]:
        with pytest.raises(MixError, match=words):
            load_mix_spec(_text_target_spec(tmp_path / "e.yaml", curated, tmp_path / "e", target))
