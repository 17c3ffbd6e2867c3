"""Bad input files are quarantined and the run goes on; a full, read-only or forbidden disk
ends the run with one clear error and nothing lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from safety_helpers import UNPRIVILEGED, Canaries, assay, needs_setpriv, refused, write_jsonl, write_recipe


def quarantined(out: Path) -> list[dict]:
    return pa.concat_tables([pq.read_table(p) for p in sorted((out / "quarantine").glob("*.parquet"))]
                            ).to_pylist()


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_corrupt_and_empty_parquet_files_are_quarantined(tmp_path: Path, docs: list[dict]) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    pq.write_table(pa.Table.from_pylist(docs), inputs / "a-good.parquet")
    (inputs / "b-empty.parquet").write_bytes(b"")
    (inputs / "c-garbage.parquet").write_bytes(b"PAR1" + os.urandom(300))
    good = (inputs / "a-good.parquet").read_bytes()
    (inputs / "d-cut.parquet").write_bytes(good[: len(good) // 2])
    out = tmp_path / "out"
    done = assay("run", write_recipe(tmp_path / "r.yaml", inputs / "*.parquet", out))
    assert done.code == 0, done.output
    bad = {Path(r["file"]).name: r["error"] for r in quarantined(out)}
    assert set(bad) == {"b-empty.parquet", "c-garbage.parquet", "d-cut.parquet"}
    assert all(e.startswith("not a readable Parquet file") for e in bad.values())
    totals = manifest(out)["totals"]
    assert totals["in"] == len(docs) + 3 and totals["quarantined"] == 3
    assert "+ quarantined 3: balanced" in done.stdout


def test_a_fifo_matched_by_the_glob_is_quarantined_not_waited_on(tmp_path: Path, docs: list[dict]) -> None:
    inputs = tmp_path / "in"
    write_jsonl(inputs / "a.jsonl", docs)
    os.mkfifo(inputs / "b.jsonl")
    out = tmp_path / "out"
    done = assay("run", write_recipe(tmp_path / "r.yaml", inputs / "*.jsonl", out), timeout=60)
    assert done.code == 0, done.output
    (record,) = quarantined(out)
    assert record["file"].endswith("b.jsonl") and record["error"] == "not a regular file: a FIFO"
    assert manifest(out)["totals"]["kept"] == len(docs)
    assert "b.jsonl: quarantined whole: not a regular file: a FIFO" in done.stderr


@needs_setpriv
def test_an_unreadable_input_is_quarantined(tmp_path: Path, docs: list[dict]) -> None:
    inputs = tmp_path / "in"
    write_jsonl(inputs / "a.jsonl", docs)
    secret = write_jsonl(inputs / "b.jsonl", docs[:3])
    secret.chmod(0)
    out = tmp_path / "out"
    done = assay("run", write_recipe(tmp_path / "r.yaml", inputs / "*.jsonl", out), prefix=UNPRIVILEGED)
    assert done.code == 0, done.output
    (record,) = quarantined(out)
    assert record["file"].endswith("b.jsonl") and record["error"] == "unreadable file: Permission denied"


@needs_setpriv
def test_an_unwritable_output_is_a_clear_error(tmp_path: Path, docs: list[dict], finished_run: Path) -> None:
    corpus = write_jsonl(tmp_path / "in" / "a.jsonl", docs)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    canaries = Canaries(tmp_path / "in")
    outcome = assay("run", write_recipe(tmp_path / "r.yaml", corpus, locked / "out"), prefix=UNPRIVILEGED)
    refused(outcome, str(locked / "out"), "permission denied")
    # An output folder that became read-only part way: the error names the file.
    out = shutil.copytree(finished_run, tmp_path / "out")  # a run's output
    (out / "data").chmod(0o555)
    again = assay("run", write_recipe(tmp_path / "r2.yaml", corpus, out), "--overwrite", prefix=UNPRIVILEGED)
    refused(again, "permission denied")
    canaries.intact()


def _can_mount() -> bool:
    """Whether this machine lets us mount a tmpfs in a private mount namespace (root)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def _run_on_tmpfs(mount_at: Path, size: str, recipe: Path, *, read_only: bool = False,
                  seed: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``assay run RECIPE`` with a ``size`` tmpfs on ``mount_at`` (optionally holding a copy
    of the folder ``seed`` and then remounted read-only), in a private mount namespace."""
    script = f'mount -t tmpfs -o size={size} tmpfs "$1" || exit 99\n'
    if seed is not None:
        script += f'cp -a "{seed}/." "$1/"\n'
    if read_only:
        script += 'mount -o remount,ro "$1" || exit 99\n'
    script += 'shift; exec "$@"\n'
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(mount_at), sys.executable, "-m",
                           "assay", "run", str(recipe)], capture_output=True, text=True, timeout=300)


needs_tmpfs = pytest.mark.skipif(not _can_mount(), reason="mounting a tmpfs needs root and a mount namespace")


@needs_tmpfs
def test_a_full_disk_ends_the_run_with_one_clear_error(tmp_path: Path,
                                                                     sample_docs: list[dict]) -> None:
    corpus = write_jsonl(tmp_path / "in" / "sample.jsonl", sample_docs)
    disk = tmp_path / "disk"
    disk.mkdir()
    recipe = write_recipe(tmp_path / "r.yaml", corpus, disk / "out", steps="  - exact_dedup: {}\n",
                          extra="executor: {workers: 2, shard_mb: 0.5}\n")
    canaries = Canaries(tmp_path / "in")
    full = _run_on_tmpfs(disk, "1m", recipe)
    assert full.returncode == 2, full.stdout + full.stderr
    assert "Traceback" not in full.stdout + full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the disk is full" in errors[0], full.stderr
    canaries.intact()


@needs_tmpfs
def test_a_read_only_output_is_a_clear_error(tmp_path: Path, docs: list[dict]) -> None:
    corpus = write_jsonl(tmp_path / "in" / "a.jsonl", docs)
    first = tmp_path / "first"
    recipe = write_recipe(tmp_path / "r.yaml", corpus, first / "out")
    assert assay("run", recipe).code == 0
    # The finished output, on a file system that is now read-only: running it again must
    # fail at its first write, cleanly.
    ro = _run_on_tmpfs(first, "4m", recipe, read_only=True, seed=first)
    assert ro.returncode == 2, ro.stdout + ro.stderr
    assert "Traceback" not in ro.stdout + ro.stderr
    assert "read-only" in ro.stderr, ro.stderr
