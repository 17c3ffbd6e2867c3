"""Filter benchmark: assay's four rule sets against datatrove's, side by side.

Runs datatrove's ``GopherRepetitionFilter -> GopherQualityFilter -> C4QualityFilter ->
FineWebQualityFilter`` (the shared harness's job, its own venv) and assay's same chain
(``bench/assay_filters.py``), both with the same thresholds (the defaults) and the same
number of workers, on the benchmark corpus that ``../shared/bench/make_corpus.sh`` builds.
The two jobs are interleaved, ``--reps`` times each, each wrapped by the harness's
``measure.py`` (wall time, CPU time, peak PSS of the process tree). Prints the median
docs/s of each, their ratio, peak memory, and whether both chains keep the same documents.
Per-filter agreement (each filter run alone on every document) is ``bench/agreement.py``.

usage: python bench/filters.py [--reps 3] [--workers 2]
env:   BENCH_HOME (default ~/.cache/assay-bench), SHARED (default ../shared)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import BENCH, CORPUS, ROOT, SHARED, measure, peer_python, prepare, print_record


def _kept_ids(folder: Path) -> set[str]:
    ids = set()
    for path in folder.rglob("*.jsonl"):
        with path.open() as f:
            ids.update(json.loads(line)["id"] for line in f)
    return ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    shards = prepare("base.jsonl")
    tag = time.strftime("filters-%Y%m%d-%H%M%S")
    results_dir = BENCH / "results" / tag
    results_dir.mkdir(parents=True, exist_ok=True)
    results = results_dir / "runs.jsonl"
    work = BENCH / "work" / tag
    jobs = {
        "datatrove": lambda out: [peer_python("datatrove"),
                                  str(SHARED / "bench" / "peers" / "datatrove_filters.py"),
                                  str(shards), str(out), str(args.workers)],
        "assay": lambda out: [sys.executable, str(ROOT / "bench" / "assay_filters.py"),
                              str(shards), str(out), str(args.workers)],
    }
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    for rep in range(1, args.reps + 1):
        for name, command in jobs.items():
            out = work / name / f"r{rep}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            record = measure(name, results, CORPUS / "base.jsonl", command(out))
            runs[name].append(record)
            print_record(rep, name, record)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    kept_folder = {"datatrove": "kept", "assay": "data"}
    kept = {name: _kept_ids(work / name / f"r{args.reps}" / kept_folder[name]) for name in jobs}
    docs = runs["assay"][0]["docs"]
    same = docs - len(kept["assay"] ^ kept["datatrove"])
    summary = {
        "docs": docs,
        "reps": args.reps,
        "workers": args.workers,
        "median_docs_per_s": {n: median(n, "docs_per_s") for n in jobs},
        "median_cpu_s": {n: median(n, "cpu_s") for n in jobs},
        "median_peak_pss_mb": {n: median(n, "peak_tree_pss_mb") for n in jobs},
        "speed_ratio": median("assay", "docs_per_s") / median("datatrove", "docs_per_s"),
        "kept": {n: len(ids) for n, ids in kept.items()},
        "chain_decision_agreement": same / docs,
        "only_assay_keeps": sorted(kept["assay"] - kept["datatrove"])[:20],
        "only_datatrove_keeps": sorted(kept["datatrove"] - kept["assay"])[:20],
    }
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n| | datatrove | assay | ratio |\n|---|---|---|---|")
    for key, label in (("median_docs_per_s", "docs/s (median)"), ("median_cpu_s", "CPU s"),
                       ("median_peak_pss_mb", "peak PSS MB")):
        d, a = summary[key]["datatrove"], summary[key]["assay"]
        print(f"| {label} | {d:,.1f} | {a:,.1f} | {a / d:.2f}x |")
    print(f"| kept documents | {summary['kept']['datatrove']:,} | {summary['kept']['assay']:,} | |")
    print(f"\nassay is {summary['speed_ratio']:.1f}x datatrove's docs/s "
          f"({args.workers} workers, median of {args.reps}); chain decisions agree on "
          f"{summary['chain_decision_agreement']:.2%} of {docs:,} documents. "
          f"Results: {results_dir}")


if __name__ == "__main__":
    main()
