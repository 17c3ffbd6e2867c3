"""One writer per output, and no process left behind when the driver is killed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safety_helpers import assay, write_jsonl, write_recipe

# Global steps in every stage, so the runs write the MinHash index a second writer corrupted.
STEPS = """  - exact_dedup: {}
  - minhash_dedup: {write_index: true}
  - line_dedup: {keep: first}
"""
EXECUTOR = "executor: {workers: 2, shard_mb: 1}\n"


def digest(folder: Path) -> dict[str, str]:
    """Every file of a finished output but the manifest and the report (which hold times)."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()
            and p.name not in ("manifest.json", "report.html") and "_progress" not in p.parts}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, sample_docs: list[dict]) -> tuple[Path, Path, dict]:
    """A corpus of 3 copies of the sample (so a run lasts seconds), its recipe, and the
    digest of an uninterrupted run."""
    root = tmp_path_factory.mktemp("lock")
    docs = [{**d, "id": f"{k}-{d['id']}"} for k in range(3) for d in sample_docs]
    corpus = write_jsonl(root / "corpus.jsonl", docs)
    reference = root / "reference"
    recipe = write_recipe(root / "reference.yaml", corpus, reference, steps=STEPS, extra=EXECUTOR)
    done = assay("run", recipe)
    assert done.code == 0, done.output
    return corpus, root, digest(reference)


def start(recipe: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "assay", "run", str(recipe)], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("offset", [0.0, 0.3, 1.0, 2.0])
def test_two_runs_into_one_output_one_runs_one_refuses(setup: tuple[Path, Path, dict], tmp_path: Path,
                                                       offset: float) -> None:
    corpus, _, expected = setup
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", corpus, out, steps=STEPS, extra=EXECUTOR)
    first = start(recipe)
    time.sleep(offset)
    assert first.poll() is None, "the first run ended before the second started: use a longer run"
    began = time.monotonic()
    second = start(recipe)
    _, second_err = second.communicate(timeout=300)
    second_seconds = time.monotonic() - began
    _, first_err = first.communicate(timeout=300)
    codes = sorted([first.returncode, second.returncode])
    assert codes == [0, 2], (first_err, second_err)
    loser_err = second_err if second.returncode else first_err
    assert "Traceback" not in first_err + second_err
    assert "another assay run is writing this output (PID" in loser_err, loser_err
    assert socket.gethostname() in loser_err
    if second.returncode:
        assert second_seconds < 15, f"the refused run took {second_seconds:.1f} s"
    assert digest(out) == expected


def test_a_lock_left_by_a_killed_run_is_taken_over(setup: tuple[Path, Path, dict], tmp_path: Path) -> None:
    corpus, _, expected = setup
    out = tmp_path / "out"
    out.mkdir()  # a killed run's first act left its lock file
    (out / ".assay-lock").write_text(json.dumps({"pid": 999999, "host": socket.gethostname(),
                                                 "since": "2026-01-01T00:00:00Z"}))
    recipe = write_recipe(tmp_path / "r.yaml", corpus, out, steps=STEPS, extra=EXECUTOR)
    done = assay("run", recipe)
    assert done.code == 0, done.output
    assert "took over the lock left by PID 999999" in done.stderr
    assert digest(out) == expected


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status is left


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see the processes")
def test_killing_the_driver_leaves_no_worker(setup: tuple[Path, Path, dict], tmp_path: Path) -> None:
    corpus, _, expected = setup
    out = tmp_path / "out"
    recipe = write_recipe(tmp_path / "r.yaml", corpus, out, steps=STEPS, extra=EXECUTOR)
    log = (tmp_path / "driver.log").open("w")  # not a pipe: an orphan holding it must not hang the test
    driver = subprocess.Popen([sys.executable, "-m", "assay", "run", str(recipe)], stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while len(workers := _descendants(driver.pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)  # two workers and the resource tracker
    assert len(workers) >= 3, "the run did not start its workers"
    time.sleep(1.0)  # mid-stage
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    log.close()
    deadline = time.monotonic() + 5.0  # the workers have 5 s to notice and end
    while (left := [pid for pid in workers if _alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:  # do not leave them to the rest of the test session
        os.kill(pid, signal.SIGKILL)
    assert left == []
    again = assay("run", recipe)  # the killed run finishes, as before
    assert again.code == 0, again.output
    assert digest(out) == expected
