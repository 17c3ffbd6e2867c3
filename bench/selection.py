"""Selection benchmark: assay's ``dsir`` step against the ``data-selection`` package.

Both select 10% of ``base.jsonl`` (19,467 documents) toward ``dsir_target.jsonl`` with the
same settings (lower-cased WordPunct unigrams+bigrams hashed into 10,000 buckets, Gumbel
top-k without replacement, documents under 100 tokens never drawn), the same input file
and the same number of workers: the harness's ``peers/dsir_select.py`` (its own venv) and
``bench/assay_select.py``, interleaved ``--reps`` times, each wrapped by the harness's
``measure.py``. Every selection is scored twice:

* the share of the target's language in it against the base rate (``eval_dsir.py``);
* the KL divergence from the target's hashed-feature distribution to the selection's,
  with the same 10,000 buckets for both tools: under assay's hashing, and (``--package-kl``)
  under the package's own SHA-256 hashing, computed in its venv.

The package's job always seeds NumPy with 0, so its reps draw the same selection; assay's
rep r uses ``seed: r - 1``, so its KL figures show the spread of the draw itself.

Prints median docs/s, CPU s and peak PSS of each, the ratio, the KL numbers and the mix.

(Named selection.py, not select.py: a select.py in bench/ would shadow the standard
library's ``select`` module for every script run from this folder.)

usage: python bench/selection.py [--reps 3] [--workers 2] [--package-kl] [--assay-params JSON]
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

import numpy as np
from harness import BENCH, CORPUS, ROOT, SHARED, measure, peer_python, prepare, print_record

from assay.steps.select.dsir import kl_divergence
from assay.text.wordpunct import hashed_ngram_counts

NUM_BUCKETS = 10_000

# Runs in the package's venv: the KL under its own featurizer (sha256 buckets).
_PACKAGE_KL = """
import json, sys
import numpy as np
from data_selection.hashed_ngram_dsir import get_ngram_counts
texts = json.load(open(sys.argv[1]))
def counts(docs):
    c = np.zeros(10000, dtype=np.int64)
    for d in docs:
        get_ngram_counts(d, n=2, num_buckets=10000, counts=c)
    return c
def kl(p, q):
    p = p / p.sum(); q = q / q.sum(); s = p > 0
    return float(np.sum(p[s] * (np.log(p[s] + 1e-8) - np.log(q[s] + 1e-8))))
target = counts(texts["target"])
print(json.dumps({name: kl(target, counts(docs)) for name, docs in texts.items() if name != "target"}))
"""


def _read_jsonl(path: Path) -> dict[str, str]:
    with path.open() as f:
        return {r["id"]: r["text"] for r in map(json.loads, f)}


def _counts(texts: list[str]) -> np.ndarray:
    total = np.zeros(NUM_BUCKETS)
    for start in range(0, len(texts), 500):
        sparse, _ = hashed_ngram_counts(texts[start:start + 500], 2, NUM_BUCKETS)
        total += sparse.total(NUM_BUCKETS)
    return total


def _mix(selected_ids: Path) -> dict:
    out = subprocess.run([sys.executable, str(SHARED / "bench" / "eval_dsir.py"), str(selected_ids),
                          str(CORPUS / "meta.tsv")], check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=0.10)
    parser.add_argument("--package-kl", action="store_true", help="also KL under the package's hashing")
    parser.add_argument("--assay-params", default="{}", help="extra dsir parameters (JSON)")
    args = parser.parse_args()
    prepare("base.jsonl")
    raw, target = CORPUS / "base.jsonl", CORPUS / "dsir_target.jsonl"
    tag = time.strftime("select-%Y%m%d-%H%M%S")
    results_dir = BENCH / "results" / tag
    results_dir.mkdir(parents=True, exist_ok=True)
    results = results_dir / "runs.jsonl"
    work = BENCH / "work" / tag
    jobs = {
        "package": lambda out, rep: [peer_python("dsir"), str(SHARED / "bench" / "peers" / "dsir_select.py"),
                                     str(raw), str(target), str(out), str(args.workers),
                                     str(args.fraction)],
        "assay": lambda out, rep: [sys.executable, str(ROOT / "bench" / "assay_select.py"), str(raw),
                                   str(target), str(out), str(args.workers), str(args.fraction),
                                   json.dumps({"seed": rep - 1, **json.loads(args.assay_params)})],
    }
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    selections: dict[str, list[Path]] = {name: [] for name in jobs}
    for rep in range(1, args.reps + 1):
        for name, command in jobs.items():
            out = work / name / f"r{rep}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            record = measure(name, results, raw, command(out, rep))
            runs[name].append(record)
            selections[name].append(out / "selected_ids.txt")
            print_record(rep, name, record)

    texts = _read_jsonl(raw)
    target_texts = list(_read_jsonl(target).values())
    target_counts = _counts(target_texts)
    quality: dict[str, dict] = {}
    for name, paths in selections.items():
        kls, shares = [], []
        for path in paths:
            ids = path.read_text().split()
            kls.append(kl_divergence(target_counts, _counts([texts[i] for i in ids])))
            shares.append(_mix(path))
        quality[name] = {"kl_to_target": [round(k, 4) for k in kls],
                         "target_share": [s["target_share_selected"] for s in shares],
                         "last_mix": shares[-1]}
    raw_kl = kl_divergence(target_counts, _counts(list(texts.values())))
    if args.package_kl:
        payload = work / "package_kl.json"
        last = {name: [texts[i] for i in paths[-1].read_text().split()] for name, paths in selections.items()}
        payload.write_text(json.dumps({"target": target_texts, **last}))
        out = subprocess.run([peer_python("dsir"), "-c", _PACKAGE_KL, str(payload)], check=True,
                             capture_output=True, text=True).stdout
        quality["package_hashing_kl_last_rep"] = json.loads(out.splitlines()[-1])
        os.remove(payload)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    names = list(jobs)
    summary = {
        "docs": runs[names[0]][0]["docs"], "reps": args.reps, "workers": args.workers,
        "fraction": args.fraction, "assay_params": json.loads(args.assay_params),
        "median_docs_per_s": {n: median(n, "docs_per_s") for n in names},
        "median_cpu_s": {n: median(n, "cpu_s") for n in names},
        "median_peak_pss_mb": {n: median(n, "peak_tree_pss_mb") for n in names},
        "load_start": {n: [r["load_start"] for r in runs[n]] for n in names},
        "kl_target_to_raw": round(raw_kl, 4),
        "quality": quality,
    }
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n| | package | assay | assay / package |\n|---|---|---|---|")
    for key, label in (("median_docs_per_s", "docs/s (median)"), ("median_cpu_s", "CPU s"),
                       ("median_peak_pss_mb", "peak PSS MB")):
        a, b = summary[key]["package"], summary[key]["assay"]
        print(f"| {label} | {a:,.1f} | {b:,.1f} | {b / a:.2f}x |")
    for name in names:
        q = quality[name]
        print(f"{name}: KL(target || selection) per rep {q['kl_to_target']} (raw corpus: {raw_kl:.4f}); "
              f"target-language share {q['target_share']} (base rate {q['last_mix']['target_share_base']})")
        print(f"  languages {q['last_mix']['top_langs']}  sources {q['last_mix']['top_sources']}")
    if "package_hashing_kl_last_rep" in quality:
        print(f"KL under the package's hashing (last rep): {quality['package_hashing_kl_last_rep']}")
    print(f"load average at job starts: {summary['load_start']}")
    print(f"\nResults: {results_dir}")


if __name__ == "__main__":
    main()
