"""extract_html: main text, options, failures as reasons, and the wrapper losing nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import trafilatura
from pydantic import ValidationError

from assay import parse_recipe, run_recipe
from assay.io.chunks import FieldMap
from assay.io.files import resolve_inputs
from assay.io.readers import decode_chunk, plan_chunks
from assay.steps.base import step_class
from assay.steps.transforms.extract_html import ExtractHtml

ROOT = Path(__file__).resolve().parents[3]
SAMPLE_WARC = ROOT / "data" / "sample" / "sample_html.warc.gz"

ARTICLE = (
    "The committee met on Tuesday to discuss the new budget for the public library, which has "
    "been short of funds for several years. Members agreed that opening hours must be extended."
)
PAGE = f"""<!doctype html><html><head><title>News</title></head><body>
<nav><a href="/">Home</a> | <a href="/about">About us</a> | <a href="/contact">Contact</a></nav>
<article><h1>Library budget</h1><p>{ARTICLE}</p>
<p>A second paragraph explains the decision in more detail, with <a href="https://example.org/x">a link</a>
to the minutes, and says what happens next for the readers and the staff of the library.</p>
<p>The growth rate is <math><semantics><mi>r</mi>
<annotation encoding="application/x-tex">r = \\frac{{a}}{{b}}</annotation></semantics></math>
according to the report, which the committee accepted without changes in its final vote.</p>
<pre><code>budget = income - costs</code></pre>
<table><tr><td>Books</td><td>12000</td></tr><tr><td>Staff</td><td>48000</td></tr></table>
</article>
<footer>Copyright 2026 Example Town. All rights reserved. Privacy policy. Cookie settings.</footer>
</body></html>"""


def _run(texts: list[str], **params: object) -> pa.Table:
    return ExtractHtml(**params)(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}))


def test_registered_as_transform() -> None:
    assert step_class("extract_html") is ExtractHtml and ExtractHtml.kind == "transform"


def test_main_text_kept_boilerplate_dropped_and_signals() -> None:
    out = _run([PAGE])
    text = out.column("text")[0].as_py()
    assert ARTICLE in text and "second paragraph" in text
    assert "About us" not in text and "Cookie settings" not in text
    assert "12000" in text  # tables on by default
    assert "budget = income - costs" in text  # code on by default
    assert "\\(r = \\frac{a}{b}\\)" in text  # MathML kept as LaTeX
    assert out.column("reason")[0].as_py() is None
    assert out.column("extract_html.html_chars")[0].as_py() == len(PAGE)
    assert out.column("extract_html.text_chars")[0].as_py() == len(text)


def test_options_change_what_is_kept() -> None:
    assert "12000" not in _run([PAGE], tables=False).column("text")[0].as_py()
    assert "budget = income" not in _run([PAGE], code=False).column("text")[0].as_py()
    no_math = _run([PAGE], math=False).column("text")[0].as_py()
    assert "\\frac" not in no_math and "according to the report" in no_math
    markdown = _run([PAGE], output_format="markdown", links=True).column("text")[0].as_py()
    assert "[a link](https://example.org/x)" in markdown and markdown.startswith("# Library budget")


def test_mathjax_scripts_become_latex() -> None:
    page = PAGE.replace("<pre>", '<p>Inline <script type="math/tex">\\alpha < 1</script> and display '
                        '<script type="math/tex; mode=display">x^2</script> forms appear in this '
                        "sentence.</p><pre>")
    text = _run([page]).column("text")[0].as_py()
    assert "\\(\\alpha < 1\\)" in text and "\\[x^2\\]" in text


def test_resiliparse_extractor() -> None:
    out = _run([PAGE], extractor="resiliparse")
    text = out.column("text")[0].as_py()
    assert ARTICLE in text and "Cookie settings" not in text and out.column("reason")[0].as_py() is None


def test_failures_are_reasons_and_keep_the_original() -> None:
    pages = ["just plain text, no markup at all", "<html><body><div></div></body></html>", PAGE]
    out = _run(pages)
    assert out.column("reason").to_pylist() == ["not_html", "no_main_text", None]
    assert out.column("extract_html.failure").to_pylist() == ["not_html", "no_main_text", None]
    assert out.column("text").to_pylist()[:2] == pages[:2]  # rejected rows keep their input


def test_extractor_errors_and_timeouts_are_reasons(monkeypatch: pytest.MonkeyPatch) -> None:
    step = ExtractHtml(timeout_s=0.2)
    step.ensure_setup()

    def slow_or_broken(page: str) -> str:
        if "slow" in page:
            time.sleep(5)
        raise RuntimeError("parser exploded")

    monkeypatch.setattr(step, "_extract", slow_or_broken)
    started = time.perf_counter()
    out = step(pa.table({"id": ["a", "b"], "text": ["<p>slow</p>", "<p>broken</p>"]}))
    assert out.column("reason").to_pylist() == ["extraction_timeout", "extraction_error"]
    assert time.perf_counter() - started < 3


def test_invalid_combinations_are_refused() -> None:
    with pytest.raises(ValidationError, match="markdown"):
        ExtractHtml(links=True)
    with pytest.raises(ValidationError, match="plain text only"):
        ExtractHtml(extractor="resiliparse", output_format="markdown")
    with pytest.raises(ValidationError, match="trafilatura settings"):
        ExtractHtml(extractor="resiliparse", favor="precision")


def test_wrapper_equals_trafilatura_called_directly() -> None:
    """On real pages the step returns exactly what trafilatura returns with the same settings."""
    chunk = next(plan_chunks(resolve_inputs(str(SAMPLE_WARC)), 1 << 20))
    pages = decode_chunk(chunk, FieldMap())[0].column("text").to_pylist()[:40]
    ours = _run(pages).column("text").to_pylist()
    direct = [trafilatura.extract(p, include_comments=False, include_tables=True) for p in pages]
    assert ours == [d.strip() for d in direct]


def test_warc_to_text_example_end_to_end(tmp_path: Path) -> None:
    recipe_text = (ROOT / "examples" / "warc-to-text.yaml").read_text()
    recipe_text = recipe_text.replace("data/sample/", f"{ROOT}/data/sample/")
    recipe_text = recipe_text.replace("out/warc-to-text", str(tmp_path / "out"))
    result = run_recipe(parse_recipe(recipe_text), workers=2)
    manifest = result.manifest
    assert manifest["accounting"]["balanced"]
    assert manifest["totals"]["in"] == 274
    assert manifest["totals"]["kept"] + manifest["totals"]["rejected"] == 274
    assert "trafilatura" in manifest["versions"] and "fastwarc" in manifest["versions"]
    recipe_steps = [next(iter(s)) for s in manifest["recipe"]["steps"]]
    assert recipe_steps[0] == "extract_html"
    assert manifest["recipe"]["steps"][0]["extract_html"]["extractor"] == "trafilatura"
    kept = pq.read_table(tmp_path / "out" / "data").to_pylist()
    assert kept and all("<html" not in row["text"].lower() for row in kept)
    assert all(json.loads(row["metadata"])["content_type"] == "text/html" for row in kept)
    # PII ran on the extracted text: the Debian pages name their translators' addresses.
    assert sum(row["pii.email"] for row in kept) > 0
    assert not any("@debian.org" in row["text"] for row in kept)


def test_jsonl_with_an_html_field(tmp_path: Path) -> None:
    rows = [{"id": "a", "html": PAGE, "url": "https://example.org/a"},
            {"id": "b", "html": "no markup here"}]
    (tmp_path / "pages.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = parse_recipe(
        f"name: html-field\ninput: {{path: {tmp_path / 'pages.jsonl'}, text_field: html}}\n"
        f"output: {tmp_path / 'out'}\nsteps:\n  - extract_html: {{}}\n"
    )
    totals = run_recipe(recipe, workers=1).manifest["totals"]
    assert (totals["in"], totals["kept"], totals["rejected"]) == (2, 1, 1)
    kept = pq.read_table(tmp_path / "out" / "data").to_pylist()
    assert ARTICLE in kept[0]["text"] and kept[0]["url"] == "https://example.org/a"
    rejected = pq.read_table(tmp_path / "out" / "rejected").to_pylist()
    assert [(r["id"], r["reason"], r["text"]) for r in rejected] == [("b", "not_html", "no markup here")]


def test_timeout_is_not_swallowed_by_the_extractor(monkeypatch: pytest.MonkeyPatch) -> None:
    step = ExtractHtml(timeout_s=0.2)
    step.ensure_setup()

    def falls_back_on_any_error(page: str) -> str:
        try:
            time.sleep(5)
        except Exception:  # as extractors' fallbacks do
            return "a partial text"
        return "done"

    monkeypatch.setattr(step, "_extract", falls_back_on_any_error)
    out = step(pa.table({"id": ["a"], "text": ["<p>slow</p>"]}))
    assert out.column("reason").to_pylist() == ["extraction_timeout"]


def test_upper_case_tags_are_options_too() -> None:
    page = PAGE.replace("<pre><code>budget = income - costs</code></pre>",
                        "<PRE>budget = income - costs</PRE>")
    assert "budget = income" not in _run([page], code=False).column("text")[0].as_py()
    assert "budget = income" in _run([page]).column("text")[0].as_py()
