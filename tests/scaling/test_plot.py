"""The PNG plot of fitted laws."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assay.scaling.fit import fit_groups
from assay.scaling.laws import DataConstrainedLaw, DownstreamLogLaw
from assay.scaling.plot import PlotUnavailable, plot_fits
from assay.scaling.published import PUBLISHED
from assay.scaling.runs import Runs

from .helpers import COARSE_CHINCHILLA, synthetic_runs

pytest.importorskip("matplotlib")


def is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_plot_chinchilla_fit(epoch_runs: Runs, tmp_path: Path) -> None:
    small = epoch_runs.subset(np.arange(len(epoch_runs)) % 6 == 0)
    from assay.scaling.laws import ChinchillaLaw

    fits = fit_groups(ChinchillaLaw(start_grid=COARSE_CHINCHILLA), small, bootstrap=20)
    assert is_png(plot_fits(fits, small, tmp_path / "chinchilla.png"))


def test_plot_single_input_and_data_constrained(tmp_path: Path) -> None:
    down = synthetic_runs(DownstreamLogLaw(), np.array([-10.0, 0.6, 2.0]),
                          {"D": np.geomspace(1e9, 1e12, 8)}, 0.01, seed=0)
    fits = fit_groups(DownstreamLogLaw(), down, bootstrap=20)
    assert is_png(plot_fits(fits, down, tmp_path / "downstream.png"))
    law = DataConstrainedLaw(base_grid=COARSE_CHINCHILLA[::4])
    design = {"N": np.repeat([1e8, 4e8, 1.6e9], 6), "U": np.full(18, 4e9),
              "D": np.tile([2e9, 4e9, 8e9, 3.2e10, 1.28e11, 2.56e11], 3)}
    dc = synthetic_runs(law, PUBLISHED["muennighoff"].theta, design, 0.003, seed=0)
    fits = fit_groups(law, dc, bootstrap=0)
    assert is_png(plot_fits(fits, dc, tmp_path / "dc.png"))


def test_missing_matplotlib_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    down = synthetic_runs(DownstreamLogLaw(), np.array([-10.0, 0.6, 2.0]),
                          {"D": np.geomspace(1e9, 1e12, 8)}, 0.01, seed=0)
    with pytest.raises(PlotUnavailable, match=r"assay\[plot\]"):
        plot_fits(fit_groups(DownstreamLogLaw(), down, bootstrap=0), down, tmp_path / "x.png")
