"""`assay report`: the HTML page of a real run holds the manifest's numbers, and nothing a
hostile document holds becomes markup in it."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.testing import CliRunner

from assay import Pipeline
from assay.cli import app
from assay.steps.filters.gopher_quality import GopherQuality
from assay.steps.filters.gopher_repetition import GopherRepetition

HOSTILE = [
    "<script>window.pwned = 1</script> and enough ordinary words to be a document here",
    '<img src=x onerror="window.pwned=1"> short',
    '</textarea></div><a href="javascript:window.pwned=1">click</a>',
    'a </script><script>window.pwned=1</script> inside "json" {"k": "</script>"}',
    "right-to-left \u202e override and a NUL \x00 byte",
    "x" * 200_000,
]


def hostile_run(tmp_path: Path) -> Path:
    docs = [{"id": f"h{i}", "text": t, "source": "hostile"} for i, t in enumerate(HOSTILE)]
    docs += [
        {"id": f"ok{i}", "text": " ".join(["the plain words of a calm document"] * 12), "source": "calm"}
        for i in range(6)
    ]
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    out = tmp_path / "out"
    Pipeline([GopherRepetition(), GopherQuality()], name="<b>hostile</b> name").run(
        str(corpus), str(out), workers=1
    )
    return out


def test_the_report_holds_the_funnel_and_no_markup_from_documents(tmp_path: Path) -> None:
    out = hostile_run(tmp_path)
    result = CliRunner().invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    # The funnel's numbers are the manifest's.
    funnel = page[page.index('id="funnel"') : page.index("</table>", page.index('id="funnel"'))]
    for step in manifest["steps"]:
        assert (
            f'<td class="l">{step["name"]}</td><td>{step["docs_in"]:,}</td><td>{step["docs_kept"]:,}</td>'
            in funnel
        )
    assert "nothing lost" in page and 'id="signals"' in page and 'id="rejected"' in page
    # Nothing from a document or a name is markup: one script-free page, the CSP forbidding scripts.
    assert "<script" not in page.lower() and "<img" not in page and "<a " not in page
    assert "onerror=&quot;window.pwned=1&quot;" in page  # shown as text
    assert "&lt;script&gt;window.pwned = 1&lt;/script&gt;" in page
    assert "<b>hostile</b>" not in page and "&lt;b&gt;hostile&lt;/b&gt; name" in page
    assert "\\u202e" in page and "\u202e" not in page and "\x00" not in page
    assert re.search(r"default-src 'none'", page)
    assert len(page) < 200_000  # a 200,000-character document is shown cut short


def test_the_report_never_replaces_a_file_assay_did_not_write(tmp_path: Path) -> None:
    out = hostile_run(tmp_path)
    notes = tmp_path / "notes.html"
    notes.write_text("<!doctype html><p>my notes</p>")
    refused = CliRunner().invoke(app, ["report", str(out), "--out", str(notes)])
    assert refused.exit_code != 0 and "not written by assay" in refused.output
    assert notes.read_text() == "<!doctype html><p>my notes</p>"
    elsewhere = tmp_path / "report.html"
    for _ in range(2):  # its own page is replaced
        assert CliRunner().invoke(app, ["report", str(out), "--out", str(elsewhere)]).exit_code == 0
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "manifest.json").write_text((out / "manifest.json").read_text())
    unmarked = CliRunner().invoke(app, ["report", str(tmp_path / "plain")])
    assert unmarked.exit_code != 0 and "not a folder assay marked" in unmarked.output


def test_inspect_rejected_shows_sampled_documents_inert(tmp_path: Path) -> None:
    out = hostile_run(tmp_path)
    shown = CliRunner().invoke(app, ["inspect", str(out), "--rejected", "--samples", "10"])
    assert shown.exit_code == 0, shown.output
    rejected = [line for line in shown.output.splitlines() if line.startswith("gopher_")]
    assert rejected and all("rejected)" in line for line in rejected)
    assert "\x1b" not in shown.output.replace("\x1b[", "") and "\u202e" not in shown.output
    assert "\\u202e" in shown.output  # the override shown as a visible escape
    one = CliRunner().invoke(app, ["inspect", str(out), "--rejected", "--step", "gopher_quality",
                                   "--reason", "no_such_reason"])
    assert one.exit_code == 0 and "no rejected documents of step gopher_quality" in one.output
