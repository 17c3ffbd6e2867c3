"""Shared plumbing of the benchmark scripts: where the shared harness and its state live,
building the corpus and the peers' venvs when missing, and measuring one job."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED", ROOT.parent / "shared")).resolve()
BENCH = Path(os.environ.get("BENCH_HOME", Path.home() / ".cache" / "assay-bench"))
CORPUS = BENCH / "corpus"


def prepare(corpus_file: str, n_shards: int = 8) -> Path:
    """Build the corpus and the peers' venvs if missing; return the folder of
    ``corpus_file`` split into ``n_shards`` JSONL shards (peers parallelise over files)."""
    if not (CORPUS / corpus_file).exists():
        subprocess.run([str(SHARED / "bench" / "make_corpus.sh")], check=True)
    if not (BENCH / "venvs" / "datatrove" / "bin" / "python").exists():
        subprocess.run([str(SHARED / "bench" / "setup_venvs.sh")], check=True)
    shards = CORPUS / "shards" / corpus_file.removesuffix(".jsonl")
    if not shards.exists():
        subprocess.run([sys.executable, str(SHARED / "bench" / "prep_shards.py"),
                        str(CORPUS / corpus_file), str(shards), str(n_shards)], check=True)
    return shards


def measure(name: str, results: Path, counted_input: Path, command: list[str]) -> dict:
    """Run ``command`` under the harness's ``measure.py`` (wall, CPU of the process tree,
    peak PSS, docs/s over ``counted_input``) and return its record. The job's own output
    goes to ``NAME.log`` beside ``results``."""
    with open(results.parent / f"{name}.log", "ab") as log:
        subprocess.run(
            [sys.executable, str(SHARED / "bench" / "measure.py"), "--name", name,
             "--input", str(counted_input), "--results", str(results), "--", *command],
            check=True, stdout=log, stderr=log,
        )
    return json.loads(results.read_text().splitlines()[-1])


def peer_python(venv: str) -> str:
    return str(BENCH / "venvs" / venv / "bin" / "python")


def print_record(rep: int, name: str, record: dict) -> None:
    print(f"rep {rep} {name:9s} wall {record['wall_s']:7.1f}s  docs/s {record['docs_per_s']:8.1f}  "
          f"cpu {record['cpu_s']:7.1f}s  peak PSS {record['peak_tree_pss_mb']:6.0f} MB  "
          f"load {record['load_start']:.1f}", flush=True)
