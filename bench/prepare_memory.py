"""Peak memory of ``assay prepare`` over 1x and 5x the benchmark corpus: bounded, not
growing with the corpus.

The corpus ``base.jsonl`` (19,467 documents, 148 MB of text) is written once as is (1x) and
once as five copies with distinct ids (5x, ``$BENCH_HOME/prepare-memory/base-x5.jsonl``),
each also as a curated output (core-schema Parquet, parts of ~2,400 documents). One recipe
tokenizes every document once with the 32,768-id BPE of ``tokenize_throughput.py``, writes
both packings and a 1% held-out split. Each run is a whole ``assay prepare`` process under
the harness's ``measure.py`` (wall, CPU, peak PSS of the process tree sampled every 0.5 s).
With ``--baseline-src DIR`` the same runs are made with the code in ``DIR`` (e.g. the main
branch's ``src``), interleaved.

usage: python bench/prepare_memory.py [--reps 1] [--baseline-src ../main/src] [--sizes 1 5]
env:   BENCH_HOME (default ~/.cache/assay-bench), SHARED (default ../shared)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import BENCH, CORPUS, ROOT, measure, prepare

HOME = BENCH / "prepare-memory"
PART_DOCS = 2_434  # documents per curated Parquet part (base.jsonl in 8 parts)


def build_corpus(copies: int) -> tuple[Path, Path]:
    """The JSONL of ``copies`` copies of base.jsonl (ids ``ID~K``) and its curated output."""
    import orjson
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assay.documents import CORE_SCHEMA

    jsonl = CORPUS / "base.jsonl" if copies == 1 else HOME / f"base-x{copies}.jsonl"
    curated = HOME / f"curated-x{copies}"
    if (curated / "data").exists():
        return jsonl, curated
    (curated / "data").mkdir(parents=True)
    out = open(jsonl, "wb") if copies > 1 else None
    part: list[dict] = []
    n_parts = 0

    def flush() -> None:
        nonlocal n_parts, part
        table = pa.table({"id": [d["id"] for d in part], "text": [d["text"] for d in part],
                          "source": ["base"] * len(part), "url": [None] * len(part),
                          "metadata": [None] * len(part)}, schema=CORE_SCHEMA)
        pq.write_table(table, curated / "data" / f"part-00000-{n_parts:05d}.parquet", compression="zstd")
        n_parts, part = n_parts + 1, []

    for k in range(copies):
        with open(CORPUS / "base.jsonl", "rb") as f:
            for line in f:
                record = orjson.loads(line)
                record["id"] = f"{record['id']}~{k}"
                if out is not None:
                    out.write(orjson.dumps(record) + b"\n")
                part.append(record)
                if len(part) == PART_DOCS:
                    flush()
    if part:
        flush()
    if out is not None:
        out.close()
    return jsonl, curated


def tokenizer_file() -> Path:
    """The benchmark BPE of ``tokenize_throughput.py`` (trained there once, cached)."""
    path = BENCH / "work" / "tokenize" / "tokenizer-32768.json"
    if not path.exists():
        subprocess.run([sys.executable, "-c", "from tokenize_throughput import build_inputs; "
                        "from harness import prepare; build_inputs(prepare('base.jsonl'), 32768)"],
                       cwd=ROOT / "bench", check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--baseline-src", help="also run the assay code in this src folder, interleaved")
    args = parser.parse_args()
    prepare("base.jsonl")
    HOME.mkdir(parents=True, exist_ok=True)
    tokenizer = tokenizer_file()
    corpora = {n: build_corpus(n) for n in args.sizes}
    tag = time.strftime("prepare-memory-%Y%m%d-%H%M%S")
    results_dir = BENCH / "results" / tag
    results_dir.mkdir(parents=True, exist_ok=True)
    results = results_dir / "runs.jsonl"
    codes = {"assay": str(ROOT / "src")}
    if args.baseline_src:
        codes["baseline"] = str(Path(args.baseline_src).resolve())
    runs: dict[tuple[str, int], list[dict]] = {}
    for rep in range(1, args.reps + 1):
        for code, src in codes.items():
            for n, (jsonl, curated) in corpora.items():
                out = BENCH / "work" / tag / f"{code}-x{n}"
                recipe = results_dir / f"x{n}.yaml"
                recipe.write_text(json.dumps({
                    "name": f"memory-x{n}", "output": str(out), "input": str(curated),
                    "tokenizer": {"path": str(tokenizer), "eos": "<|endoftext|>"},
                    "heldout": {"fraction": 0.01, "max_documents": 500},
                    "packing": {"method": "both"}}))
                os.environ["PYTHONPATH"] = src
                record = measure(f"{code}-x{n}", results, jsonl,
                                 [sys.executable, "-m", "assay", "prepare", str(recipe)])
                subprocess.run(["rm", "-rf", str(out)], check=True)
                runs.setdefault((code, n), []).append(record)
                print(f"rep {rep} {code:8s} x{n}: wall {record['wall_s']:6.1f}s  docs/s "
                      f"{record['docs_per_s']:7.1f}  cpu {record['cpu_s']:6.1f}s  peak PSS "
                      f"{record['peak_tree_pss_mb']:6.0f} MB  load {record['load_start']:.1f}", flush=True)
    print("\n| code | corpus | documents | text MB | docs/s | CPU s | peak PSS MB |")
    print("|---|---|---|---|---|---|---|")
    summary = {}
    for (code, n), rs in runs.items():
        row = {"docs": rs[0]["docs"], "mb": rs[0]["bytes"] / 1e6,
               "docs_per_s": statistics.median(r["docs_per_s"] for r in rs),
               "cpu_s": statistics.median(r["cpu_s"] for r in rs),
               "peak_pss_mb": statistics.median(r["peak_tree_pss_mb"] for r in rs),
               "load": [min(r["load_start"] for r in rs), max(r["load_end"] for r in rs)]}
        summary[f"{code}-x{n}"] = row
        print(f"| {code} | {n}x | {row['docs']:,} | {row['mb']:,.0f} | {row['docs_per_s']:,.0f} | "
              f"{row['cpu_s']:.1f} | {row['peak_pss_mb']:,.0f} |")
    for code in codes:
        if (code, 1) in runs and (code, 5) in runs:
            ratio = summary[f"{code}-x5"]["peak_pss_mb"] / summary[f"{code}-x1"]["peak_pss_mb"]
            print(f"{code}: peak PSS 5x / 1x = {ratio:.2f}")
    loads = [r["load_start"] for rs in runs.values() for r in rs]
    print(f"load average {min(loads):.1f}-{max(loads):.1f}; results: {results_dir}")
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
