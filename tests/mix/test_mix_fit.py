"""``assay mix fit``: the runs table's errors, the report, and the mixture it writes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from assay.cli import app
from assay.mix.law import MixingLaw
from assay.mix.runs import MixError, read_runs

DOMAINS = ("web", "code", "books", "wiki")
LAW = MixingLaw(2.0, 0.8, np.array([0.6, -0.9, 0.5, -0.2]))


def _write(path: Path, n: int = 24, seed: int = 1) -> Path:
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(len(DOMAINS)), n)
    losses = LAW.predict(weights) * (1 + rng.normal(0, 0.002, n))
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow([f"weight:{d}" for d in DOMAINS] + ["target", "seed"])
        for w, loss in zip(weights, losses, strict=True):
            out.writerow([f"{x:.6f}" for x in w] + [f"{loss:.5f}", 0])
    return path


def test_the_runs_table_names_the_file_and_line_of_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "runs.csv"
    path.write_text("weight:a,weight:b,target\n0.5,0.5,3.1\n0.7,0.2,3.0\n")
    with pytest.raises(MixError, match=r"runs.csv:3: the weights must be non-negative and sum to 1"):
        read_runs(path)
    path.write_text("weight:a,weight:b,target\n0.5,0.5,x\n")
    with pytest.raises(MixError, match=r"runs.csv:2: target: 'x' is not a number"):
        read_runs(path)
    path.write_text("weight:a,weight:b,loss\n0.5,0.5,3\n")
    with pytest.raises(MixError, match=r"runs.csv:1: no `target` column"):
        read_runs(path)
    path.write_text("a,b,target\n0.5,0.5,3\n")
    with pytest.raises(MixError, match=r"no `weight:<domain>` column"):
        read_runs(path)
    path.write_text("weight:a,weight:b,target\n0.25,0.75,3.5\n")
    runs = read_runs(path)
    assert runs.domains == ("a", "b") and runs.weights.tolist() == [[0.25, 0.75]] and runs.lines == (2,)


def test_fit_reports_the_law_and_writes_a_mixture_prepare_reads(tmp_path: Path) -> None:
    runs = _write(tmp_path / "runs.csv")
    out = tmp_path / "mix.yaml"
    args = ["mix", "fit", str(runs), "--optimize", "--tokens", "1B", "--unique",
            "web=300M,code=20M,books=500M,wiki=50M", "--max-epochs", "4", "--bootstrap", "40"]
    result = CliRunner().invoke(app, [*args, "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[: result.stdout.rindex("}") + 1])
    assert report["law"]["identified"] and report["cross_validation"]["law"]["spearman"] > 0.9
    caps = report["optimum"]["caps"]
    assert caps == pytest.approx({"web": 1.0, "code": 0.08, "books": 1.0, "wiki": 0.2})
    weights = report["optimum"]["law"]["weights"]
    # code (lowest exponent) and wiki fill their caps, books takes the rest, web nothing.
    assert weights == pytest.approx({"web": 0.0, "code": 0.08, "books": 0.72, "wiki": 0.2}, abs=0.02)
    lo, hi = report["optimum"]["law"]["interval"]
    assert lo <= report["optimum"]["law"]["predicted"] <= hi
    block = yaml.safe_load(out.read_text())
    assert block["mixture"]["sources"]["books"]["weight"] == pytest.approx(weights["books"], abs=1e-4)
    # assay overwrites its own file, and never one it did not write.
    assert CliRunner().invoke(app, [*args, "--out", str(out)]).exit_code == 0
    mine = tmp_path / "mine.yaml"
    mine.write_text("mixture: {}\n")
    result = CliRunner().invoke(app, [*args, "--out", str(mine)])
    assert result.exit_code != 0 and "was not written by assay" in result.output
    assert mine.read_text() == "mixture: {}\n"


def test_bad_caps_and_too_few_runs_fail_before_fitting(tmp_path: Path) -> None:
    runs = _write(tmp_path / "runs.csv")
    result = CliRunner().invoke(app, ["mix", "fit", str(runs), "--optimize", "--tokens", "10B", "--unique",
                                      "web=300M,code=20M,books=500M,wiki=50M", "--max-epochs", "4"])
    assert result.exit_code != 0 and "cannot supply 1e+10 tokens within 4 epochs" in result.output
    few = _write(tmp_path / "few.csv", n=4)
    result = CliRunner().invoke(app, ["mix", "fit", str(few)])
    assert result.exit_code != 0 and "4 runs cannot fit the mixing law over 4 domains" in result.output
    assert "Traceback" not in result.output
