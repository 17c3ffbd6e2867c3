"""The report opened in a real headless Chromium (the Debian package, driven by Playwright):
the page makes no request but its own, logs no error, runs none of a hostile corpus's
payloads, and shows the manifest's numbers and the documents' text as text."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from PIL import Image
from test_run_report import HOSTILE, hostile_run
from typer.testing import CliRunner

from assay.cli import app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    if os.environ.get("CI"):
        raise RuntimeError("chromium is not installed: .ci/run installs the Debian package")
    pytest.skip("no chromium on this machine (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def test_the_report_in_a_browser(tmp_path: Path) -> None:
    out = hostile_run(tmp_path)
    assert CliRunner().invoke(app, ["report", str(out)]).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            requests: list[str] = []
            errors: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((out / "report.html").as_uri())
            assert requests == [(out / "report.html").as_uri()] and errors == []
            assert page.evaluate("typeof window.pwned") == "undefined"
            rows = page.locator("#funnel tbody tr").all_inner_texts()
            for step in manifest["steps"]:
                cells = next(r for r in rows if r.split("\t")[0] == step["name"]).split("\t")
                assert cells[1:4] == [f'{step["docs_in"]:,}', f'{step["docs_kept"]:,}',
                                      f'{step["docs_rejected"]:,}']
            shown = page.locator(".doc").all_text_contents()
            assert HOSTILE[0] in shown  # the script tag is text, exactly as written
            assert any(text.startswith("x" * 800) and text.endswith("(200,000 characters)") for text in shown)
        finally:
            browser.close()


SECTIONS = ("header", "funnel", "signals", "borderline", "rejected", "dedup", "composition", "artefacts",
            "timings")
DOCS_SCREENSHOT = Path(__file__).parents[2] / "docs" / "assets" / "report-web-quality.png"


def test_the_demo_report_in_a_browser_and_its_screenshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's run (examples/web-quality.yaml) and its report: every section shows, no
    request, no error; the screenshot of its top is the one the manual shows (written there
    with ASSAY_UPDATE_DOCS=1)."""
    root = Path(__file__).parents[2]
    monkeypatch.chdir(root)  # the recipe names its input relative to the repository, as make demo runs it
    recipe = yaml.safe_load((root / "examples" / "web-quality.yaml").read_text())
    recipe["output"] = str(tmp_path / "out")
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    ran = CliRunner().invoke(app, ["run", str(tmp_path / "recipe.yaml")])
    assert ran.exit_code == 0, ran.output
    report = tmp_path / "out" / "report.html"
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            requests: list[str] = []
            errors: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(report.as_uri())
            assert requests == [report.as_uri()] and errors == []
            for section in SECTIONS:
                assert page.locator(f"#{section}").is_visible(), section
            assert page.locator("#signals ~ .grid svg line").count() > 10  # thresholds drawn
            shot = page.screenshot(full_page=False)
        finally:
            browser.close()
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    colours = {colour for _, colour in image.getcolors(maxcolors=1 << 24)}
    # The badge, and kept and rejected bars: the page rendered, not a blank or an error page.
    assert {(0xD9, 0xF2, 0xE3), (0x3C, 0x9A, 0x5F), (0xD9, 0x53, 0x4F)} <= colours
    if os.environ.get("ASSAY_UPDATE_DOCS"):
        DOCS_SCREENSHOT.write_bytes(shot)
    assert DOCS_SCREENSHOT.is_file()
