"""Near-duplicate benchmark: assay's ``minhash_dedup`` against datatrove's MinHash pipeline.

Both use word 5-gram shingles and 14 bands x 8 rows (datatrove's default ``MinhashConfig``,
the harness's ``peers/datatrove_minhash.py``; assay's ``bench/assay_dedup.py``), the same
8 JSONL shards of ``neardup.jsonl`` and the same number of workers. The jobs are
interleaved ``--reps`` times, each wrapped by the harness's ``measure.py``; the removed ids
of each are scored against the injected ground truth by ``eval_dedup.py``. Prints median
docs/s, CPU s and peak PSS of each, their ratios, and precision/recall.

usage: python bench/dedup.py [--reps 3] [--workers 2] [--assay-params JSON]
env:   BENCH_HOME (default ~/.cache/assay-bench), SHARED (default ../shared)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from harness import BENCH, CORPUS, ROOT, SHARED, measure, peer_python, prepare, print_record


def _score(removed_ids: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(SHARED / "bench" / "eval_dedup.py"), removed_ids,
         str(CORPUS / "dup_clusters.jsonl"), str(CORPUS / "meta.tsv")],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.splitlines()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--assay-params", default="{}", help="minhash_dedup parameters (JSON)")
    parser.add_argument("--only", choices=["assay", "datatrove"], help="run one side only")
    args = parser.parse_args()
    shards = prepare("neardup.jsonl")
    tag = time.strftime("dedup-%Y%m%d-%H%M%S")
    results_dir = BENCH / "results" / tag
    results_dir.mkdir(parents=True, exist_ok=True)
    results = results_dir / "runs.jsonl"
    work = BENCH / "work" / tag
    jobs = {
        "datatrove": lambda out: [peer_python("datatrove"),
                                  str(SHARED / "bench" / "peers" / "datatrove_minhash.py"),
                                  str(shards), str(out), str(args.workers)],
        "assay": lambda out: [sys.executable, str(ROOT / "bench" / "assay_dedup.py"),
                              str(shards), str(out), str(args.workers), args.assay_params],
    }
    if args.only:
        jobs = {args.only: jobs[args.only]}
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    scores: dict[str, dict] = {}
    for rep in range(1, args.reps + 1):
        for name, command in jobs.items():
            out = work / name / f"r{rep}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            record = measure(name, results, CORPUS / "neardup.jsonl", command(out))
            runs[name].append(record)
            print_record(rep, name, record)
            scores[name] = _score(str(out / "removed_ids.txt"))

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    summary = {
        "docs": next(iter(runs.values()))[0]["docs"], "reps": args.reps, "workers": args.workers,
        "assay_params": json.loads(args.assay_params),
        "median_docs_per_s": {n: median(n, "docs_per_s") for n in jobs},
        "median_cpu_s": {n: median(n, "cpu_s") for n in jobs},
        "median_peak_pss_mb": {n: median(n, "peak_tree_pss_mb") for n in jobs},
        "median_peak_rss_mb": {n: median(n, "peak_tree_rss_mb") for n in jobs},
        "quality": scores,
    }
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    names = list(jobs)
    print("\n| | " + " | ".join(names) + (" | ratio |" if len(names) == 2 else " |"))
    print("|---" * (len(names) + 1 + (len(names) == 2)) + "|")
    for key, label in (("median_docs_per_s", "docs/s (median)"), ("median_cpu_s", "CPU s"),
                       ("median_peak_pss_mb", "peak PSS MB"), ("median_peak_rss_mb", "peak RSS MB")):
        values = [summary[key][n] for n in names]
        ratio = f" {values[1] / values[0]:.2f}x |" if len(values) == 2 else ""
        print(f"| {label} | " + " | ".join(f"{v:,.1f}" for v in values) + " |" + ratio)
    for key in ("precision", "recall", "removed"):
        print(f"| {key} | " + " | ".join(str(scores[n][key]) for n in names) + " |"
              + (" |" if len(names) == 2 else ""))
    for name in names:
        print(f"{name} recall by edit rate: {scores[name]['recall_by_edit_rate_2member']}")
    print(f"\nResults: {results_dir}")


if __name__ == "__main__":
    main()
