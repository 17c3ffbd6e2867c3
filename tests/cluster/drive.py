"""The test drivers' entry point: ``python drive.py ARGS`` is ``assay ARGS`` with the
cluster tests' steps registered. ``ASSAY_TEST_RAY_VERSION`` makes this process claim
another Ray version (to meet a version mismatch)."""

import os
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "engine")]

import cluster_steps  # noqa: E402, F401  (registers the steps)
import steps_for_tests  # noqa: E402, F401  (the engine tests' steps)

if os.environ.get("ASSAY_TEST_RAY_VERSION"):
    import ray

    ray.__version__ = os.environ["ASSAY_TEST_RAY_VERSION"]

from assay.cli import app  # noqa: E402  (after the steps are registered)

if __name__ == "__main__":
    app(prog_name="assay")
