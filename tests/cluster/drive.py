"""The test drivers' entry point: ``python drive.py ARGS`` is ``assay ARGS`` with the
cluster tests' steps registered. ``ASSAY_TEST_RAY_VERSION`` makes this process claim
another Ray version (to meet a version mismatch)."""

import os

import cluster_steps  # noqa: F401  (registers the steps)
import steps_for_tests  # noqa: F401  (the engine tests' steps)

if os.environ.get("ASSAY_TEST_RAY_VERSION"):
    import ray

    ray.__version__ = os.environ["ASSAY_TEST_RAY_VERSION"]

from assay.cli import app

if __name__ == "__main__":
    app(prog_name="assay")
