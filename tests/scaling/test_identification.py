"""A fit its runs cannot pin down says so, and `assay plan` will not extrapolate it unless told."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from assay.cli import app
from assay.scaling.fit import fit_groups, fit_law
from assay.scaling.laws import ChinchillaLaw, make_law
from assay.scaling.runs import read_runs

from .helpers import COARSE_CHINCHILLA, mesh, synthetic_runs

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ROOT / "examples" / "sweep-runs.csv"  # nine tiny proxies of examples/sweep.sh


def test_the_example_sweep_does_not_identify_chinchilla() -> None:
    (fit,) = fit_groups(make_law("chinchilla"), read_runs(SWEEP), bootstrap=100).values()
    assert fit.converged  # it converges, and still says nothing about E, A or alpha
    problems = fit.problems()
    assert any("only 9 runs for 5 free parameters" in p for p in problems)
    assert any(p.startswith("E (the irreducible loss)") and "sits at 0" in p for p in problems)
    assert any("orders of magnitude" in p for p in problems)
    assert "a power law in D at one model size" in problems[-1]
    assert fit.to_dict()["identified"] is False


def test_enough_runs_on_a_known_law_are_identified() -> None:
    true = ChinchillaLaw.from_report(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
    design = mesh(N=np.geomspace(5e7, 5e9, 6), D=np.geomspace(1e9, 2e11, 6))
    runs = synthetic_runs(ChinchillaLaw(), true, design, 0.005, seed=3)
    fit = fit_law(ChinchillaLaw(start_grid=COARSE_CHINCHILLA), runs, bootstrap=100, seed=1)
    assert fit.problems() == [] and fit.to_dict()["identified"] is True


def test_fit_warns_in_words_and_plan_refuses_the_fit_unless_forced(tmp_path: Path) -> None:
    out = tmp_path / "fit.json"
    result = CliRunner().invoke(app, ["fit", str(SWEEP), "--bootstrap", "100", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "NOT IDENTIFIED" in result.output and "fit not identified: only 9 runs" in result.output
    assert "RuntimeWarning" not in result.output and "encountered in" not in result.output
    assert json.loads(out.read_text())["fits"][0]["identified"] is False
    refused = CliRunner().invoke(app, ["plan", "--flops", "1e21", "--law", str(out)])
    assert refused.exit_code != 0 and "its runs do not identify that fit" in refused.output
    forced = CliRunner().invoke(app, ["plan", "--flops", "1e21", "--law", str(out), "--force", "--json"])
    assert forced.exit_code == 0, forced.output
