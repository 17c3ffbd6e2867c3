"""``assay fit`` and ``assay plan`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from assay.cli import app
from assay.cli import scaling as scaling_cli
from assay.scaling.fit import fit_groups
from assay.scaling.laws import ChinchillaLaw, PowerLaw

from .helpers import mesh

runner = CliRunner()


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two recipes' runs of a power law in tokens (quick to fit)."""
    rng = np.random.default_rng(0)
    lines = ["tokens,loss,group"]
    for group, floor in (("base", 1.9), ("filtered", 1.8)):
        for d in np.geomspace(1e8, 1e12, 12):
            loss = (floor + 2000 / d ** 0.35) * np.exp(rng.normal(0, 0.002))
            lines.append(f"{d:.6g},{loss:.6f},{group}")
    path = tmp_path_factory.mktemp("cli") / "runs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_fit_json_with_predictions_and_comparison(runs_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "fit.json"
    result = runner.invoke(app, ["fit", str(runs_csv), "--law", "power", "--x", "D",
                                 "--bootstrap", "50", "--predict", "D=1T", "--compare-at",
                                 "N=1e9,D=2e10", "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [f["group"] for f in report["fits"]] == ["base", "filtered"]
    assert all(f["fit"]["converged"] for f in report["fits"])
    assert report["fits"][1]["params"]["E"]["value"] == pytest.approx(1.8, abs=0.02)
    assert [p["inputs"] for p in report["predictions"]] == [{"D": 1e12}] * 2
    assert all(p["low"] < p["value"] < p["high"] for p in report["predictions"])
    (saving,) = report["comparisons"]
    assert saving["reference"] == "base" and saving["other"] == "filtered"
    assert saving["saving"] > 0
    assert json.loads(out.read_text()) == report


def test_fit_tables(runs_csv: Path) -> None:
    result = runner.invoke(app, ["fit", str(runs_csv), "--law", "power", "--bootstrap", "20",
                                 "--predict", "D=1e12"])
    assert result.exit_code == 0, result.output
    assert "Hestness et al. 2017" in result.output
    assert "converged" in result.output and "predictions" in result.output
    assert "recipe filtered reaches recipe base's" in result.output


def test_fit_bad_input_exit_2_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("params,tokens,loss\n1e8,1e9,3\n1e8,-1e9,3\n")
    result = runner.invoke(app, ["fit", str(path)])
    assert result.exit_code == 2
    assert "bad.csv:3: tokens is -1e+09" in result.output


@pytest.mark.parametrize(("args", "message"), [
    (["--law", "nope"], "unknown law"),
    (["--predict", "N=7e9"], "--predict needs D"),
    (["--predict", "X=1"], "expected N=..."),
    (["--confidence", "2"], "between 0 and 1"),
])
def test_fit_bad_options(runs_csv: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["fit", str(runs_csv), *args])
    assert result.exit_code == 2
    assert message in result.output


def test_fit_not_converged_exits_4(runs_csv: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def stalled(law: object, runs: object, **options: object) -> object:
        return fit_groups(PowerLaw(x="D"), runs, bootstrap=0, max_iter=1)  # type: ignore[arg-type]

    monkeypatch.setattr(scaling_cli, "fit_groups", stalled)
    result = runner.invoke(app, ["fit", str(runs_csv), "--law", "power"])
    assert result.exit_code == 4
    assert "NOT CONVERGED" in result.output and "did not converge" in result.output


def test_fit_plot_needs_matplotlib(runs_csv: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    result = runner.invoke(app, ["fit", str(runs_csv), "--law", "power", "--bootstrap", "0",
                                 "--plot", str(tmp_path / "x.png")])
    assert result.exit_code == 2
    assert "pip install 'assay[plot]'" in result.output


def test_plan_json_from_published_law() -> None:
    result = runner.invoke(app, ["plan", "--flops", "1e22", "--unique-tokens", "25B",
                                 "--law", "muennighoff", "--json"])
    assert result.exit_code == 0, result.output
    items = {i["quantity"]: i for i in json.loads(result.stdout)["items"]}
    assert items["constrained_epochs"]["value"] == pytest.approx(9.4935, rel=2e-3)
    assert "Muennighoff" in items["repetition_penalty"]["source"]
    assert "Li et al. 2025" in items["lr_step_law"]["source"]
    assert "Tao et al. 2024" in items["vocab_size"]["source"]


def test_plan_from_gpu_hours_table() -> None:
    result = runner.invoke(app, ["plan", "--gpu-hours", "1e5", "--gpu", "h100", "--mfu", "0.4"])
    assert result.exit_code == 0, result.output
    assert "compute-optimal plan" in result.output and "H100" in result.output


def test_plan_from_fit_file(runs_csv: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    design = mesh(N=np.geomspace(5e7, 5e9, 5), D=np.geomspace(1e9, 2e11, 5))
    theta = ChinchillaLaw.from_report(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
    loss = ChinchillaLaw().predict(theta, **design) * np.exp(rng.normal(0, 0.003, 25))
    csv = tmp_path / "chin.csv"
    csv.write_text("params,tokens,loss\n" + "".join(
        f"{n:.6g},{d:.6g},{v:.6f}\n" for n, d, v in zip(design["N"], design["D"], loss, strict=True)))
    fit_file = tmp_path / "fit.json"
    fitted = runner.invoke(app, ["fit", str(csv), "--bootstrap", "30", "--out", str(fit_file)])
    assert fitted.exit_code == 0, fitted.output
    result = runner.invoke(app, ["plan", "--flops", "1e21", "--law", str(fit_file), "--json"])
    assert result.exit_code == 0, result.output
    items = {i["quantity"]: i for i in json.loads(result.stdout)["items"]}
    assert items["params"]["low"] < items["params"]["value"] < items["params"]["high"]
    assert "fit fit.json" in items["params"]["source"]


@pytest.mark.parametrize(("args", "message"), [
    (["--flops", "1e21", "--gpu-hours", "10"], "exactly one of"),
    ([], "exactly one of"),
    (["--flops", "-3"], "positive"),
    (["--flops", "1e21", "--law", "nowhere.json"], "neither published"),
    (["--gpu-hours", "10", "--gpu", "abacus"], "unknown GPU"),
])
def test_plan_bad_options(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["plan", *args])
    assert result.exit_code == 2
    assert message in result.output


def test_plan_fit_file_with_groups_needs_group(runs_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "fit.json"
    assert runner.invoke(app, ["fit", str(runs_csv), "--law", "power", "--bootstrap", "0",
                               "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["plan", "--flops", "1e21", "--law", str(out)])
    assert result.exit_code == 2 and "--group" in result.output
    result = runner.invoke(app, ["plan", "--flops", "1e21", "--law", str(out), "--group",
                                 "filtered", "--json"])
    assert result.exit_code == 0, result.output
