"""Main-text extraction quality and speed: assay's ``extract_html`` against trafilatura
called directly, on the real pages with gold text in ``../shared/data/web_gold``.

Scores, per configuration, in one run:

* **token P/R/F1** on the pages with full gold text (Scrapinghub's article-extraction
  benchmark and Mozilla Readability's test pages): bags of whitespace tokens, precision
  and recall per page, averaged over pages, F1 of the averages (as the article-extraction
  benchmark reports them);
* **snippet P/R/F1** on trafilatura's evaluation pages, scored as trafilatura's own
  evaluation does: a ``with`` snippet found in the output is a true positive, one missing a
  false negative; a ``without`` (boilerplate) snippet found is a false positive; totals
  over all pages;
* **pages/s** with ``--workers`` processes (pages dealt out in batches of 32), median of
  ``--reps`` interleaved reps.

The row ``trafilatura direct`` calls ``trafilatura.extract`` with the settings assay's
default configuration uses; the acceptance check is that the wrapper loses nothing (token
F1 within 0.02 of it). The page content stays in the shared folder.

    .venv/bin/python bench/extract.py --reps 3 --workers 2
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import orjson
import pyarrow as pa
from harness import SHARED

GOLD = SHARED / "data" / "web_gold" / "web_html_gold.jsonl.gz"
BATCH = 32

# (label, extract_html parameters) — None means trafilatura called directly with the
# settings of assay's default configuration.
CONFIGS: list[tuple[str, dict[str, Any] | None]] = [
    ("trafilatura direct", None),
    ("assay default", {}),
    ("assay favor=precision", {"favor": "precision"}),
    ("assay favor=recall", {"favor": "recall"}),
    ("assay comments=true", {"comments": True}),
    ("assay tables=false", {"tables": False}),
    ("assay markdown", {"output_format": "markdown"}),
    ("assay resiliparse", {"extractor": "resiliparse"}),
]


def direct_batch(pages: list[str]) -> list[str]:
    import trafilatura

    # trafilatura's defaults, except comments (assay's default drops them), no dedup cache.
    return [trafilatura.extract(p, include_tables=True, include_comments=False, deduplicate=False) or ""
            for p in pages]


def assay_batch(params: dict[str, Any], pages: list[str]) -> list[str]:
    from assay.steps.transforms.extract_html import ExtractHtml

    out = ExtractHtml(**params)(pa.table({"id": [str(i) for i in range(len(pages))], "text": pages}))
    kept = [r is None for r in out.column("reason").to_pylist()]
    return [t if k else "" for t, k in zip(out.column("text").to_pylist(), kept, strict=True)]


def _run_batch(job: tuple[dict[str, Any] | None, list[str]]) -> list[str]:
    params, pages = job
    return direct_batch(pages) if params is None else assay_batch(params, pages)


def _warm() -> None:
    import trafilatura  # noqa: F401

    import assay.steps.transforms.extract_html  # noqa: F401


def extract_all(
    params: dict[str, Any] | None, pages: list[str], pool: ProcessPoolExecutor
) -> tuple[list[str], float]:
    jobs = [(params, pages[i : i + BATCH]) for i in range(0, len(pages), BATCH)]
    started = time.perf_counter()
    results = list(pool.map(_run_batch, jobs))
    seconds = time.perf_counter() - started
    return [t for batch in results for t in batch], seconds


def token_prf(gold: str, predicted: str) -> tuple[float, float]:
    g, p = Counter(gold.split()), Counter(predicted.split())
    tp = sum((g & p).values())
    precision = tp / sum(p.values()) if p else 0.0
    recall = tp / sum(g.values()) if g else 0.0
    return precision, recall


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def score(rows: list[dict[str, Any]], outputs: list[str]) -> dict[str, tuple[float, float, float]]:
    scores: dict[str, tuple[float, float, float]] = {}
    for source in ("scrapinghub-aeb", "mozilla-readability"):
        pairs = [token_prf(r["gold_text"], o)
                 for r, o in zip(rows, outputs, strict=True) if r["source"] == source]
        if not pairs:
            scores[source] = (float("nan"),) * 3
            continue
        p = statistics.fmean(x[0] for x in pairs)
        r = statistics.fmean(x[1] for x in pairs)
        scores[source] = (p, r, f1(p, r))
    tp = fn = fp = 0
    for row, out in zip(rows, outputs, strict=True):
        if row["source"] != "trafilatura-eval":
            continue
        for snippet in row.get("with_snippets") or ():
            tp, fn = (tp + 1, fn) if snippet in out else (tp, fn + 1)
        fp += sum(snippet in out for snippet in row.get("without_snippets") or ())
    p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
    scores["trafilatura-eval"] = (p, r, f1(p, r))
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--only", nargs="*", help="labels of the configurations to run")
    parser.add_argument("--limit", type=int, default=0, help="N pages spread over the file (a quick look)")
    args = parser.parse_args()
    if not GOLD.exists():
        raise SystemExit(f"{GOLD} is missing: the shared folder is needed for this benchmark")
    with gzip.open(GOLD, "rb") as f:
        rows = [orjson.loads(line) for line in f]
    if args.limit:
        rows = rows[:: max(1, len(rows) // args.limit)][: args.limit]  # every source represented
    pages = [r["html"] for r in rows]
    configs = [c for c in CONFIGS if not args.only or c[0] in args.only]
    print(f"{len(pages)} pages ({Counter(r['source'] for r in rows)}), {args.workers} workers, "
          f"{args.reps} interleaved reps; load {os.getloadavg()[0]:.1f}", flush=True)

    outputs: dict[str, list[str]] = {}
    seconds: dict[str, list[float]] = {label: [] for label, _ in configs}
    # One pool for every configuration, its workers warmed up (imports done) before timing.
    pool = ProcessPoolExecutor(args.workers, initializer=_warm)
    list(pool.map(_run_batch, [(None, pages[:1])] * args.workers * 2))
    for rep in range(args.reps):
        # Rotate the order each rep, so no configuration always runs first or after another.
        shift = rep % len(configs)
        for label, params in configs[shift:] + configs[:shift]:
            out, secs = extract_all(params, pages, pool)
            outputs.setdefault(label, out)
            seconds[label].append(secs)
            print(f"rep {rep} {label:24s} {len(pages) / secs:6.1f} pages/s  load {os.getloadavg()[0]:.1f}",
                  flush=True)

    pool.shutdown()
    direct = "trafilatura direct"
    print("\n| configuration | AEB P / R / F1 | Readability P / R / F1 | snippets P / R / F1 | pages/s "
          "(median) | vs direct |")
    print("|---|---|---|---|---|---|")
    base_speed = len(pages) / statistics.median(seconds[direct]) if direct in seconds else None
    table: dict[str, dict[str, tuple[float, float, float]]] = {}
    for label, _ in configs:
        table[label] = s = score(rows, outputs[label])
        speed = len(pages) / statistics.median(seconds[label])
        cells = [" / ".join(f"{v:.3f}" for v in s[k]) for k in ("scrapinghub-aeb", "mozilla-readability",
                                                                  "trafilatura-eval")]
        ratio = f"{speed / base_speed:.2f}x" if base_speed else "-"
        print(f"| {label} | {' | '.join(cells)} | {speed:.1f} | {ratio} |")
    if direct in table and "assay default" in table:
        print()
        for source in ("scrapinghub-aeb", "mozilla-readability", "trafilatura-eval"):
            gap = table["assay default"][source][2] - table[direct][source][2]
            print(f"{source}: F1 assay default - trafilatura direct = {gap:+.4f} "
                  f"({'within' if abs(gap) <= 0.02 else 'OUTSIDE'} 0.02)")
        paired = [d / a for d, a in zip(seconds[direct], seconds["assay default"], strict=True)]
        print("assay default / trafilatura direct pages/s, per rep: "
              + ", ".join(f"{r:.2f}x" for r in paired) + f" (median {statistics.median(paired):.2f}x)")
        same = sum(a == b for a, b in zip(outputs[direct], outputs["assay default"], strict=True))
        print(f"identical output on {same}/{len(pages)} pages")


if __name__ == "__main__":
    main()
