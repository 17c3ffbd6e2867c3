"""The report pages of ``assay prepare``, ``assay fit`` and ``assay compare`` outputs, made by
the real commands: their numbers are the outputs' (and the data's), nothing a source name, a
group or a document holds becomes markup, and ``report_kind`` tells the outputs apart."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_run_report import hostile_run
from typer.testing import CliRunner

from assay.cli import app
from assay.documents import CORE_SCHEMA
from assay.errors import EXIT_ERROR
from assay.report import html
from assay.report.kinds import ReportError, report_kind
from assay.report.prepare_report import SAMPLE_CHARS, prepare_report
from assay.report.scaling_report import compare_report, fit_report

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"
SCRIPT = "<script>window.pwned=1</script>"
PAYLOAD = "</div><img src=x onerror=alert(1)>"
runner = CliRunner()


def assert_inert(page: str) -> None:
    """One script-free page under the CSP; the hostile strings only as text."""
    assert f'<meta http-equiv="Content-Security-Policy" content="{html.CSP}">' in page
    assert "<script" not in page.lower() and "<img" not in page and "window.pwned=1</" not in page
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;" in page


def cells(table: str) -> list[list[str]]:
    """The text of each body row's cells."""
    body = table[table.index("<tbody>") :]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", body)]


def number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("%"))


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    """40 fortunes, one of them hostile, and 10 UDHR translations of the bundled sample."""
    picked: list[dict[str, Any]] = []
    wanted = {"fortunes": 40, "udhr2 (nltk_data)": 10}
    with gzip.open(SAMPLE) as f:
        for line in f:
            d = orjson.loads(line)
            if wanted.get(d["source"], 0) > 0:
                wanted[d["source"]] -= 1
                picked.append(d)
    picked[3] = {**picked[3], "text": f"a fortune with {PAYLOAD} inside it and {SCRIPT} too"}
    return picked


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory, docs: list[dict[str, Any]]) -> Path:
    """A real `assay prepare`: two sources (one with a hostile name), two phases, both packings,
    a trained tokenizer and a held-out split."""
    root = tmp_path_factory.mktemp("prepare")
    (root / "curated" / "data").mkdir(parents=True)
    table = pa.table(
        {
            "id": [d["id"] for d in docs],
            "text": [d["text"] for d in docs],
            "source": [d["source"] for d in docs],
            "url": [None] * len(docs),
            "metadata": [None] * len(docs),
        },
        schema=CORE_SCHEMA,
    )
    pq.write_table(table, root / "curated" / "data" / "part-00000-00000.parquet")
    recipe = root / "prepare.yaml"
    recipe.write_text(f"""
name: "<b>mix</b>"
output: "{root / "shards"}"
tokenizer: {{train: {{vocab_size: 320}}}}
mixture:
  sources:
    "{SCRIPT}": {{path: "{root / "curated"}", select: [fortunes], epochs: 2}}
    udhr: {{path: "{root / "curated"}", select: ["udhr2 (nltk_data)"], epochs: 1}}
  phases:
    - {{name: main, fraction: 0.75}}
    - {{name: anneal, fraction: 0.25}}
packing: {{method: both, context: 64, min_log2: 4, max_log2: 9}}
heldout: 0.1
""")
    result = runner.invoke(app, ["prepare", str(recipe)])
    assert result.exit_code == 0, result.output
    return root / "shards"


def test_prepare_report_holds_the_shards_numbers_and_their_text(
    shards: Path, docs: list[dict[str, Any]]
) -> None:
    manifest = orjson.loads((shards / "manifest.json").read_bytes())
    page = prepare_report(shards, seed=0, samples_shown=10_000)  # every document, decoded
    assert_inert(page)
    assert "&lt;b&gt;mix&lt;/b&gt;" in page and "the books balance" in page
    # Tokens per source: the manifest's, and what the documents files hold.
    drawn: Counter[str] = Counter()
    for phase in manifest["phases"]:
        t = pq.read_table(shards / phase["documents_file"], columns=["source", "tokens"]).to_pydict()
        for source, tokens in zip(t["source"], t["tokens"], strict=True):
            drawn[source] += tokens
    start = page.index('id="sources"')
    rows = {row[0]: row for row in cells(page[start : page.index("</table>", start)])}
    for name, s in manifest["sources"].items():
        row = rows[html.text(name)]
        assert [number(c) for c in row[1:4]] == [s["documents"], s["bytes"], s["unique_tokens"]]
        assert number(row[5]) == s["tokens"] == drawn[name]
        assert number(row[6]) == pytest.approx(s["epochs"], abs=5e-4)
        assert number(row[8]) == pytest.approx(s["effective_tokens"], abs=0.5)
    assert number(rows[html.text(SCRIPT)][6]) == pytest.approx(2.0, abs=0.01)  # the recipe's epochs
    for phase in manifest["phases"]:
        title = f"<h3>{phase['name']}: {phase['fraction']:.0%} of the run, {phase['tokens']:,} tokens, "
        assert title in page
    held = page[page.index('id="heldout"') :]
    for name, s in manifest["heldout"]["sources"].items():
        row = f'<td class="l">{html.text(name)}</td><td>{s["documents"]:,}</td><td>{s["bytes"]:,}</td>'
        assert row in held
    # The length histogram counts every drawn document.
    assert f"{manifest['totals']['documents']:,} documents over all phases" in page
    assert page.count("<svg") == 1
    # Decoded documents are the curated texts, cut, shown as text in their own box.
    texts = {d["id"]: d["text"] for d in docs}
    shown = re.findall(r'<p><b>(.*?)</b>.*?</p><div class="doc">(.*?)</div>', page, flags=re.S)
    assert len(shown) == manifest["totals"]["documents"]
    for doc_id, body in shown:
        text = texts[doc_id.replace("&quot;", '"')]
        assert body == html.text(text[:SAMPLE_CHARS]) + (" …" if len(text) > SAMPLE_CHARS else "")
    assert "&lt;/div&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert prepare_report(shards, seed=3) == prepare_report(shards, seed=3)
    assert report_kind(shards) == "prepare"


def write_runs(path: Path, groups: dict[str, float]) -> Path:
    """Runs of a Chinchilla law per group (floor E), with 0.3% noise."""
    rng = np.random.default_rng(0)
    lines = ["params,tokens,loss,group"]
    for group, floor in groups.items():
        for n in (1e7, 3e7, 1e8, 3e8):
            for d in (2e8, 1e9, 5e9):
                loss = (floor + 400 / n**0.34 + 410 / d**0.28) * np.exp(rng.normal(0, 0.003))
                lines.append(f"{n:.6g},{d:.6g},{loss:.6f},{group}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A real `assay fit --out` of two groups, one named like a script."""
    root = tmp_path_factory.mktemp("fit")
    runs = write_runs(root / "runs.csv", {"base": 1.7, SCRIPT: 1.6})
    out = root / "fit.json"
    options = "--bootstrap 40 --predict N=1e9,D=2e10 --compare-at N=1e9".split()
    result = runner.invoke(app, ["fit", str(runs), "--out", str(out), *options])
    assert result.exit_code == 0, result.output
    return out, runs


def test_fit_report_holds_the_parameters_and_the_runs(fitted: tuple[Path, Path]) -> None:
    out, runs = fitted
    data = orjson.loads(out.read_bytes())
    page = fit_report(out)
    assert_inert(page)
    tables = re.findall(r'<table class="params">.*?</table>', page, flags=re.S)
    assert len(tables) == len(data["fits"]) == 2
    for fit, table in zip(data["fits"], tables, strict=True):
        rows = {row[0]: [number(c) for c in row[1:]] for row in cells(table)}
        assert set(rows) == set(fit["params"]) == {"E", "A", "B", "alpha", "beta"}
        for name, p in fit["params"].items():
            assert rows[name] == pytest.approx([p["value"], p["low"], p["high"]], rel=1e-3)
            assert p["low"] < p["value"] < p["high"]
    # Every run is a point at its own tokens D and observed loss, read back from the CSV.
    csv_rows = [line.split(",") for line in runs.read_text().splitlines()[1:]]
    for fit in data["fits"]:
        for r in fit["residuals"]:
            d = float(csv_rows[r["line"] - 2][1])
            assert f"{d:.4g}, {r['observed']:.4g}</title></circle>" in page
    assert page.count("<polygon") >= 2 * 4 and "tokens D" in page  # a band per model size
    assert "predicted loss" not in page
    for c in data["comparisons"]:
        assert html.text(c["sentence"]) in page
    assert report_kind(out) == "fit"


def test_fit_report_without_its_runs_shows_observed_against_predicted(
    fitted: tuple[Path, Path], tmp_path: Path
) -> None:
    out, runs = fitted
    changed = runs.read_text().replace(runs.read_text().splitlines()[1].split(",")[2], "9.999999", 1)
    other = write_runs(tmp_path / "runs.csv", {})
    other.write_text(changed)
    data = orjson.loads(out.read_bytes())
    page = fit_report(out, runs_csv=other)  # one loss differs: not the runs of this fit
    assert "predicted loss" in page and "no longer holds these runs" in page and "tokens D" not in page
    for fit in data["fits"]:
        for r in fit["residuals"]:
            assert f"{r['observed']:.4g}, {r['predicted']:.4g}</title></circle>" in page


def test_compare_report_holds_the_comparison(shards: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    out = tmp_path / "cmp"
    tiny = (
        "--seeds 2 --tokens 512 --eval-documents 4 --log-every 1 --model 2x32 --context 32 --lr 0.01 "
        "--batch-tokens 256 --precision fp32 --threads 1 --device cpu"
    ).split()
    result = runner.invoke(app, ["compare", str(shards), str(shards), "--out", str(out), *tiny])
    assert result.exit_code == 0, result.output
    data = orjson.loads((out / "compare.json").read_bytes())
    page = compare_report(out)
    assert_inert(page)
    assert page == compare_report(out / "compare.json")
    start = page.index('id="comparison"')
    rows = {row[0]: row[1:] for row in cells(page[start : page.index("</table>", start)])}
    names = [r["name"] for r in data["recipes"]]
    assert names == ["<b>mix</b>", "<b>mix</b>#2"] and "&lt;b&gt;mix&lt;/b&gt;#2" in page
    assert list(rows) == [html.text(m) for m in data["metrics"]] and html.text(f"bpb:{SCRIPT}") in rows
    for metric in data["metrics"]:
        means = [float(c.split(" ± ")[0]) for c in rows[html.text(metric)][: len(names)]]
        assert means == pytest.approx([data["summaries"][n][metric]["mean"] for n in names], abs=5e-5)
        assert rows[html.text(metric)][-1] == "+0.0000 [+0.0000, +0.0000]"  # the same shards twice
    assert "<h2>Loss curves</h2>" in page and "<path" in page
    assert report_kind(out) == "compare" and report_kind(out / "compare.json") == "compare"


def test_report_kind_knows_a_run_and_refuses_what_is_no_output(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    assert report_kind(hostile_run(tmp_path / "run")) == "run"
    stray = tmp_path / "notes.json"
    stray.write_text('{"fits": "no"}')
    (tmp_path / "empty").mkdir()
    for path in (tmp_path / "empty", stray, tmp_path / "missing"):
        with pytest.raises(ReportError) as caught:
            report_kind(path)
        assert str(caught.value).startswith(f"{path}: ") and "assay fit --out" in str(caught.value)
        assert caught.value.exit_code == EXIT_ERROR
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        report_kind(tmp_path / "bad")


def test_assay_report_picks_the_page_for_each_kind_of_output(fitted: tuple[Path, Path], shards: Path) -> None:
    fit, _ = fitted
    result = runner.invoke(app, ["report", str(fit)])
    assert result.exit_code == 0, result.output
    assert fit_report(fit) == fit.with_suffix(".html").read_text()  # beside the fit file
    result = runner.invoke(app, ["report", str(shards)])
    assert result.exit_code == 0, result.output
    assert "<h2>Sources</h2>" in (shards / "report.html").read_text()
    notes = fit.parent / "notes.html"
    notes.write_text("<p>mine</p>")
    refused = runner.invoke(app, ["report", str(fit), "--out", str(notes)])
    assert refused.exit_code != 0 and notes.read_text() == "<p>mine</p>"
