"""The run report's sections on a real run of the FineWeb chain with both dedups: the
thresholds it draws are the ones the steps decide by, the borderline documents are the
nearest on each side, and the dedup, composition and artefact figures are the output's."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.documents import DUPLICATE_OF, ID, REASON, REJECTED_BY
from assay.report.dedup import jaccard
from assay.report.signals import recipe_thresholds, signals_section

SAMPLE = Path(__file__).parents[2] / "data" / "sample" / "sample_text.jsonl.gz"
RECIPE = """\
name: report-sections
input: {{path: {corpus}}}
output: {output}
executor: {{workers: 2, shard_mb: 0.5}}
steps:
  - language: {{keep: [en, de], min_score: 0.5}}
  - gopher_repetition: {{}}
  - gopher_quality: {{}}
  - c4_quality: {{filter_no_terminal_punct: false}}
  - exact_dedup: {{}}
  - minhash_dedup: {{}}
"""


def _table(folder: Path) -> pa.Table:
    shards = [pq.read_table(p) for p in sorted(folder.glob("*.parquet"))]
    return pa.concat_tables(shards, promote_options="default")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every third sample document, plus exact copies and one-word edits of some long ones,
    run with `assay run` (which writes the report)."""
    root = tmp_path_factory.mktemp("sections")
    with gzip.open(SAMPLE, "rt") as lines:
        every = [json.loads(line) for line in lines]
    docs = every[::3]
    long = [d for d in every[1::3] if d["lang"] == "en" and len(d["text"].split()) > 100][:16]
    assert len(long) == 16
    copies = [{**d, "id": f"copy-{d['id']}"} for d in long[:4]]
    edits = [{**d, "id": f"edit-{d['id']}", "text": d["text"].replace(" the ", " a ", 1)} for d in long[4:]]
    docs += long
    corpus = root / "docs.jsonl"
    corpus.write_text("".join(json.dumps({k: d[k] for k in ("id", "text", "source")}) + "\n"
                              for d in docs + copies + edits))
    recipe = root / "recipe.yaml"
    recipe.write_text(RECIPE.format(corpus=corpus, output=root / "out"))
    result = CliRunner().invoke(app, ["run", str(recipe)])
    assert result.exit_code == 0, result.output
    assert "report → " in result.output
    return root / "out"


def test_the_drawn_thresholds_are_those_the_steps_decide_by(run: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    thresholds = recipe_thresholds(manifest["recipe"]["steps"])
    reasons = {t.reason for t in thresholds["gopher_quality"]}
    assert reasons >= {"gopher_short_doc", "gopher_enough_stop_words"}
    kept, rejected = _table(run / "data"), _table(run / "rejected")
    checked = 0
    for step, rules in thresholds.items():
        for t in rules:
            column = f"{step}.{t.signal}"
            # Every kept document passes every threshold ...
            values = kept.column(column).to_numpy(zero_copy_only=False).astype(float)
            assert not t.fails(values[np.isfinite(values)]).any(), (step, t)
            # ... and every document rejected for a threshold's reason fails it.
            mine = np.array([b == step and r == t.reason for b, r in zip(
                rejected.column(REJECTED_BY).to_pylist(), rejected.column(REASON).to_pylist(), strict=True)])
            values = rejected.column(column).to_numpy(zero_copy_only=False).astype(float)[mine]
            assert t.fails(values).all(), (step, t)
            checked += int(mine.sum())
    assert checked > 50


def test_the_borderline_documents_are_the_nearest_on_each_side(run: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    thresholds = recipe_thresholds(manifest["recipe"]["steps"])
    html, borders = signals_section(run, [s["name"] for s in manifest["steps"]], thresholds, per_side=2)
    assert borders and 'stroke-dasharray="4 3"><title>threshold 50</title>' in html
    tables = {"data": _table(run / "data"), "rejected": _table(run / "rejected")}
    for border in borders:
        t = border.threshold
        column = f"{border.step}.{t.signal}"
        values = {f: tables[f].column(column).to_numpy(zero_copy_only=False).astype(float) for f in tables}
        for fails, side in ((False, border.passing), (True, border.failing)):
            candidates = np.concatenate([v[np.isfinite(v) & (t.fails(v) == fails)] for v in values.values()])
            assert len(side) == min(2, len(candidates))
            for folder, row, value in side:
                assert values[folder][row] == value and bool(t.fails(np.array([value]))[0]) == fails
            if side:  # none on this side is nearer than the ones shown
                assert abs(side[0][2] - t.value) == np.abs(candidates - t.value).min()


def test_the_dedup_section_counts_the_clusters_the_output_holds(run: Path) -> None:
    page = (run / "report.html").read_text()
    rejected = _table(run / "rejected")
    for step in ("exact_dedup", "minhash_dedup"):
        columns = [rejected.column(c).to_pylist() for c in (ID, REJECTED_BY, DUPLICATE_OF)]
        rows = [(i, o) for i, b, o in zip(*columns, strict=True) if b == step]
        assert rows, step
        assert f"<h3>{step}: {len(rows):,} removed in {len({o for _, o in rows}):,} clusters</h3>" in page
    # The one-word edits are found, and their similarity to the kept document is shown.
    similarities = [float(x) for x in re.findall(r"Jaccard (\d\.\d+)", page)]
    assert similarities and all(0.5 < s <= 1 for s in similarities)


def test_jaccard_is_that_of_the_word_ngram_sets() -> None:
    assert jaccard("one two three four", "One, two: three four!", n=2) == 1.0  # normalised words
    assert jaccard("a b c", "b c d", n=1) == 0.5
    assert jaccard("a b c", "x y z", n=2) == 0.0
    assert jaccard("a b", "a b c d e f", n=5) == 0.0  # a short text is one shingle of all its words


def test_composition_and_artefacts_are_the_outputs(run: Path) -> None:
    page = (run / "report.html").read_text()
    manifest = json.loads((run / "manifest.json").read_text())
    kept, rejected = _table(run / "data"), _table(run / "rejected")
    languages = [*rejected.column("language.language").to_pylist(),
                 *kept.column("language.language").to_pylist()]
    before = sum(1 for lang in languages if lang == "en")
    after = sum(1 for lang in kept.column("language.language").to_pylist() if lang == "en")
    assert re.search(rf'<td class="l">en</td><td>{before:,}</td><td>[0-9.]+%</td><td>{after:,}</td>', page)
    exact = next(s for s in manifest["steps"] if s["name"] == "exact_dedup")["fit"]["summary"]
    section = page[page.index('id="artefacts"'):]
    block = section[section.index("<h3>exact_dedup</h3>"):]
    assert f'<td class="l">duplicates</td><td>{exact["duplicates"]:,}</td>' in block[:block.index("</table>")]
    for anchor in ("header", "funnel", "signals", "borderline", "rejected", "dedup", "composition",
                   "artefacts", "timings"):
        assert f'id="{anchor}"' in page


def test_run_writes_no_report_when_told_not_to(tmp_path: Path) -> None:
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(json.dumps({"id": "a", "text": "a few words", "source": "s"}) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"name: quiet\ninput: {{path: {corpus}}}\noutput: {tmp_path / 'out'}\n"
                      "steps:\n  - gopher_quality: {}\n")
    result = CliRunner().invoke(app, ["run", str(recipe), "--no-report"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "manifest.json").is_file() and not (tmp_path / "out" / "report.html").exists()
