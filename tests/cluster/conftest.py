from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster_helpers import RayCluster, namespace_problem, new_cluster


@pytest.fixture(scope="session")
def cluster() -> Iterator[RayCluster]:
    """A two-node Ray cluster on loopback for the whole session, stopped by its own PIDs."""
    problem = namespace_problem()
    if problem:
        pytest.skip(f"no test cluster: {problem}")
    started = new_cluster()
    try:
        yield started
    finally:
        started.stop()
