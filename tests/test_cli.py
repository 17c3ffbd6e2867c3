"""The `assay` command end to end, on the bundled sample corpus."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assay.cli import app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_steps_lists_every_registered_step() -> None:
    result = runner.invoke(app, ["steps"])
    assert result.exit_code == 0, result.output
    for name in ("language", "gopher_repetition", "gopher_quality", "c4_quality",
                 "fineweb_quality", "exact_dedup"):
        assert name in result.output


def test_steps_name_shows_parameters_and_defaults() -> None:
    result = runner.invoke(app, ["steps", "language"])
    assert result.exit_code == 0, result.output
    assert "min_score" in result.output and "0.65" in result.output


def test_unknown_step_lists_choices() -> None:
    result = runner.invoke(app, ["steps", "nope"])
    assert result.exit_code == 2
    assert "valid steps" in result.output


def test_bad_recipe_exits_with_located_message(tmp_path: Path) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("name: x\ninput: {path: /no/such.jsonl}\noutput: o\nsteps: []\n")
    result = runner.invoke(app, ["run", str(recipe)])
    assert result.exit_code == 2
    assert "bad.yaml:2" in result.output and "matches no file" in result.output


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    work = tmp_path_factory.mktemp("demo")
    shutil.copytree(ROOT / "data", work / "data")
    text = (ROOT / "examples" / "web-quality.yaml").read_text()
    recipe = work / "web-quality.yaml"
    recipe.write_text(text.replace("output: out/web-quality", f"output: {work / 'out'}")
                      .replace("data/sample/", f"{work / 'data' / 'sample'}/"))
    result = runner.invoke(app, ["run", str(recipe), "--workers", "2"])
    assert result.exit_code == 0, result.output
    return work / "out", result.output


def test_demo_recipe_runs_and_prints_the_funnel(demo_run: tuple[Path, str]) -> None:
    out, printed = demo_run
    for name in ("language", "gopher_repetition", "gopher_quality", "c4_quality",
                 "fineweb_quality", "exact_dedup", "total"):
        assert name in printed
    assert "balanced" in printed and "NOT balanced" not in printed
    manifest = json.loads((out / "manifest.json").read_text())
    totals = manifest["totals"]
    assert totals["in"] == 1219
    assert totals["in"] == totals["kept"] + totals["rejected"] + totals["quarantined"]
    assert 0 < totals["kept"] < totals["in"]
    assert all(isinstance(totals[k], int) for k in ("in", "kept", "rejected", "quarantined"))
    assert [s["name"] for s in manifest["steps"]] == [
        "language", "gopher_repetition", "gopher_quality", "c4_quality", "fineweb_quality",
        "exact_dedup",
    ]
    assert manifest["inputs"][0]["sha256"]
    assert manifest["versions"]["pyarrow"]


def test_inspect_prints_the_same_funnel(demo_run: tuple[Path, str]) -> None:
    out, _ = demo_run
    result = runner.invoke(app, ["inspect", str(out)])
    assert result.exit_code == 0, result.output
    assert "exact_dedup" in result.output and "balanced" in result.output
    as_json = runner.invoke(app, ["inspect", str(out), "--json"])
    assert json.loads(as_json.output)["totals"]["in"] == 1219


def test_inspect_of_a_non_output_folder_fails_clearly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["inspect", str(tmp_path)])
    assert result.exit_code == 2
    assert "manifest.json not found" in result.output
