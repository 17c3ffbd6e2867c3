"""Fixtures of the scaling tests."""

from __future__ import annotations

import pytest

from assay.scaling.runs import Runs

from .helpers import load_epoch_runs


@pytest.fixture(scope="session")
def epoch_runs() -> Runs:
    """Besiroglu et al.'s 245 extracted Chinchilla runs less the 5 largest losses (240)."""
    return load_epoch_runs()
