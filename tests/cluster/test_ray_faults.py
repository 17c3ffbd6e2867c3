"""Faults on a real two-node Ray cluster: a node lost mid-run, a driver killed and the run
finished on either executor, a step that raises, a straggler, an unreachable cluster and a
Ray version mismatch. Nothing is lost or doubled, and the output is what a quiet local run
writes."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cluster_helpers import RayCluster, assert_same_output, output_files
from test_ray_parity import SAMPLE, run_local, write_recipe


def slow_dedup(folder: Path, *extra: dict, timeout_s: float | None = None, max_sleep_s: float = 0.8) -> Path:
    """Exact + MinHash dedup of the sample in 14 shards that take 0-0.8 s each (0-``max_sleep_s``
    s), into ``folder/out``."""
    recipe = {
        "name": "slow-dedup",
        "input": {"path": str(SAMPLE)},
        "output": str(folder / "out"),
        "executor": {"shard_mb": 1.0, **({"task_timeout_s": timeout_s} if timeout_s else {})},
        "steps": [{"shuffle_for_test": {"max_sleep_s": max_sleep_s}}, *extra,
                  {"exact_dedup": {}}, {"minhash_dedup": {}}],
    }
    return write_recipe(folder, recipe)


def reference(recipe: Path, folder: Path) -> Path:
    """The recipe run quietly by the local executor, moved aside to ``folder/local``."""
    run_local(recipe, "--executor", "local", "--workers", "2")
    (folder / "out").rename(folder / "local")
    return folder / "local"


@pytest.fixture(scope="module")
def quiet_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The slow recipe and its output from a quiet local run, which every fault's output
    must equal; each test writes to the same ``out`` (removed first) so the paths agree."""
    folder = tmp_path_factory.mktemp("faults")
    recipe = slow_dedup(folder)
    return recipe, reference(recipe, folder)


def fresh_output(recipe: Path) -> Path:
    """The recipe's output folder, emptied of an earlier test's run (which assay wrote)."""
    out = recipe.parent / "out"
    shutil.rmtree(out, ignore_errors=True)
    return out


def wait_for_reports(output: Path, count: int, proc: subprocess.Popen[str], timeout_s: float = 120) -> None:
    """Wait until ``count`` first-stage shards are finished (the run still going)."""
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        done = output / "_progress" / "stage-0"
        if done.is_dir() and len(list(done.glob("*.json"))) >= count:
            return
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    raise AssertionError("the run made no progress")


def ray_args(cluster: RayCluster) -> list[str]:
    return ["--executor", "ray", "--address", cluster.address]


def balanced(output: Path) -> dict:
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["accounting"] == {"balanced": True, "problems": []}
    totals = manifest["totals"]
    assert totals["in"] == totals["kept"] + totals["rejected"] + totals["quarantined"] == 1219
    for step in manifest["steps"]:
        assert step["docs_in"] == step["docs_kept"] + step["docs_rejected"]
    return manifest


@pytest.mark.parametrize("first, then", [("ray", "ray"), ("local", "ray"), ("ray", "local")])
def test_a_killed_driver_is_finished_by_resume_on_either_executor(
    cluster: RayCluster, quiet_run: tuple[Path, Path], first: str, then: str
) -> None:
    recipe, local = quiet_run
    out = fresh_output(recipe)
    start = ray_args(cluster) if first == "ray" else ["--executor", "local", "--workers", "2"]
    driver = cluster.start_assay("run", recipe, *start)
    wait_for_reports(out, 3, driver)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    finish = ray_args(cluster) if then == "ray" else ["--executor", "local", "--workers", "2"]
    outcome = cluster.assay("run", recipe, "--resume", *finish)
    assert outcome.code == 0, outcome.output
    manifest = balanced(out)
    assert manifest["executor"]["kind"] == then and manifest["executor"]["shards_resumed"] >= 3
    assert_same_output(local, out)


def test_a_node_lost_mid_run_is_replaced_by_the_head(
    cluster: RayCluster, quiet_run: tuple[Path, Path]
) -> None:
    recipe, local = quiet_run
    out = fresh_output(recipe)
    driver = cluster.start_assay("run", recipe, *ray_args(cluster))
    try:
        wait_for_reports(out, 2, driver)
        subprocess.run(["kill", "-9", str(cluster.raylet_pid(1))], check=True)
        output, _ = driver.communicate(timeout=300)
        assert driver.returncode == 0, output
    finally:
        cluster.add_worker()  # the next tests want two nodes again
    balanced(out)
    assert_same_output(local, out)


def test_a_straggler_is_stopped_and_run_again(
    cluster: RayCluster, quiet_run: tuple[Path, Path], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    # Shards that take 0-0.2 s: the stalls, not the sleeps, are what this run is about.
    recipe = slow_dedup(tmp_path, {"stall_for_test": {"folder": str(marks)}}, timeout_s=2, max_sleep_s=0.2)
    started = time.time()
    outcome = cluster.assay("run", recipe, *ray_args(cluster))
    assert outcome.code == 0, outcome.output
    assert time.time() - started < 45  # a stalled attempt hangs for 60 s
    assert len(list(marks.iterdir())) == 2  # two shards stalled once, then ran
    balanced(tmp_path / "out")
    # The stalling step adds no column: the files are the quiet run's (the manifests differ
    # by that step).
    assert output_files(quiet_run[1]) == output_files(tmp_path / "out")


def test_a_step_that_raises_fails_the_run_naming_step_and_shard(cluster: RayCluster, tmp_path: Path) -> None:
    recipe = slow_dedup(tmp_path, {"fail_on_for_test": {"needle": "Universal Declaration of Human Rights"}},
                        max_sleep_s=0.2)
    outcome = cluster.assay("run", recipe, *ray_args(cluster))
    assert outcome.code != 0
    errors = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, outcome.output
    assert "step fail_on_for_test on shard 00000-" in errors[0]
    assert "ZeroDivisionError: planted failure" in errors[0]
    trace = tmp_path / "out" / "_progress" / "failure.txt"
    assert str(trace) in errors[0] and "raise ZeroDivisionError" in trace.read_text()
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_an_unreachable_cluster_fails_in_seconds(cluster: RayCluster, tmp_path: Path) -> None:
    recipe = slow_dedup(tmp_path)
    started = time.time()
    outcome = cluster.assay("run", recipe, "--executor", "ray", "--address", "127.0.0.1:6999")
    assert time.time() - started < 30
    assert outcome.code == 2, outcome.output
    assert "error: cannot reach the Ray cluster at 127.0.0.1:6999: Connection refused" in outcome.stderr


def test_a_ray_version_mismatch_is_reported_as_such(cluster: RayCluster, tmp_path: Path) -> None:
    recipe = slow_dedup(tmp_path)
    outcome = cluster.assay("run", recipe, *ray_args(cluster), env={"ASSAY_TEST_RAY_VERSION": "2.0.0"})
    assert outcome.code == 2, outcome.output
    error = next(line for line in outcome.stderr.splitlines() if line.startswith("error:"))
    assert "Ray version mismatch" in error and "2.0.0" in error, outcome.output
