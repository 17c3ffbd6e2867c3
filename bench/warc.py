"""WARC ingestion end to end: ``assay run`` (FastWARC reader -> ``extract_html``) against
datatrove's ``WarcReader`` (warcio) -> ``Trafilatura`` -> ``JsonlWriter``.

The 1,260 real pages of ``../shared/data/web_gold`` are written once as HTTP response
records into 8 ``.warc.gz`` files under ``$BENCH_HOME/corpus/web_gold_warc`` (never into the
repository). Both jobs read the same files with the same number of workers and run
trafilatura (the version installed here) with the same settings: tables on, comments off,
balanced precision/recall, no deduplication cache (datatrove: a 600 s timeout, which never
fires). The jobs are interleaved ``--reps`` times under the harness's ``measure.py``; the
script prints median pages/s, CPU s and peak PSS, the ratio, and how many pages the two
outputs have with identical text.

Needs datatrove's reader dependencies in the environment (``pip install warcio faust-cchardet
python-magic``).

usage: python bench/warc.py [--reps 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

from harness import BENCH, CORPUS, SHARED, measure, print_record

GOLD = SHARED / "data" / "web_gold" / "web_html_gold.jsonl.gz"
WARCS = CORPUS / "web_gold_warc"
N_FILES = 8

DATATROVE_JOB = """
import sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.extractors import Trafilatura
from datatrove.pipeline.readers import WarcReader
from datatrove.pipeline.writers import JsonlWriter

if __name__ == "__main__":  # datatrove's workers start by spawning
    warcs, out, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    LocalPipelineExecutor(
        pipeline=[
            WarcReader(warcs, glob_pattern="*.warc.gz"),
            Trafilatura(favour_precision=False, deduplicate=False, timeout=600, include_tables=True),
            JsonlWriter(out + "/data", compression=None),
        ],
        tasks=N_FILES, workers=workers, logging_dir=out + "/logs",
    ).run()
""".replace("N_FILES", str(N_FILES))

RECIPE = """name: warc-bench
input: {{path: "{warcs}/*.warc.gz"}}
output: {{path: {out}, format: jsonl, compression: none}}
steps:
  - extract_html: {{}}
"""


def _record(url: str, html: str) -> bytes:
    body = html.encode("utf-8")
    http = (b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    record_id = uuid.uuid5(uuid.NAMESPACE_URL, url)
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{record_id}>\r\n"
            f"WARC-Date: 2026-01-01T00:00:00Z\r\nWARC-Target-URI: {url}\r\n"
            "WARC-Identified-Payload-Type: text/html\r\n"
            f"Content-Type: application/http; msgtype=response\r\nContent-Length: {len(http)}\r\n\r\n")
    return gzip.compress(head.encode() + http + b"\r\n\r\n")


def build_warcs() -> Path:
    """The gold pages as 8 WARC files, and a JSONL with one line per page (what
    ``measure.py`` counts documents in)."""
    counted = WARCS / "pages.jsonl"
    if counted.exists():
        return counted
    WARCS.mkdir(parents=True, exist_ok=True)
    with gzip.open(GOLD, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    files = [open(WARCS / f"part-{i}.warc.gz", "wb") for i in range(N_FILES)]
    with open(counted, "w") as index:
        for i, row in enumerate(rows):
            url = row.get("url") or f"https://example.org/{row['id']}"
            files[i % N_FILES].write(_record(f"{url}#{i}", row["html"]))
            index.write(json.dumps({"url": f"{url}#{i}", "text": ""}) + "\n")
    for f in files:
        f.close()
    return counted


def _texts(folder: Path) -> dict[str, str]:
    """Output text by WARC-Record-ID (URLs differ: warcio percent-encodes spaces in them)."""
    texts = {}
    for path in folder.rglob("*.jsonl*"):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                texts[row["id"].strip("<>")] = row["text"]
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    counted = build_warcs()
    tag = time.strftime("warc-%Y%m%d-%H%M%S")
    results_dir = BENCH / "results" / tag
    results_dir.mkdir(parents=True, exist_ok=True)
    results = results_dir / "runs.jsonl"
    work = BENCH / "work" / tag
    work.mkdir(parents=True, exist_ok=True)
    (work / "datatrove_job.py").write_text(DATATROVE_JOB)
    assay = str(Path(sys.executable).with_name("assay"))

    def datatrove(out: Path) -> list[str]:
        return [sys.executable, str(work / "datatrove_job.py"), str(WARCS), str(out), str(args.workers)]

    def assay_run(out: Path) -> list[str]:
        recipe = work / f"recipe-{out.name}.yaml"
        recipe.write_text(RECIPE.format(warcs=WARCS, out=out))
        return [assay, "run", str(recipe), "--workers", str(args.workers)]

    jobs = {"datatrove": datatrove, "assay": assay_run}
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    outs: dict[str, Path] = {}
    for rep in range(1, args.reps + 1):
        order = list(jobs) if rep % 2 else list(jobs)[::-1]
        for name in order:
            out = work / f"{name}-{rep}"
            record = measure(name, results, counted, jobs[name](out))
            runs[name].append(record)
            outs[name] = out
            print_record(rep, name, record)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    print(f"\nmedians of {args.reps} ({args.workers} workers, {N_FILES} WARC files, 1,260 pages):")
    for key, label in (("docs_per_s", "pages/s"), ("cpu_s", "CPU s"), ("peak_tree_pss_mb", "peak PSS MB")):
        d, a = med("datatrove", key), med("assay", key)
        print(f"  {label:12s} datatrove {d:9.1f}   assay {a:9.1f}   assay/datatrove {a / d:.2f}x")
    paired = [a["docs_per_s"] / d["docs_per_s"]
              for a, d in zip(runs["assay"], runs["datatrove"], strict=True)]
    print("  paired pages/s ratios: " + ", ".join(f"{r:.2f}x" for r in paired))
    ours = _texts(outs["assay"] / "data")
    theirs = _texts(outs["datatrove"] / "data")
    same = sum(ours.get(record_id) == text for record_id, text in theirs.items())
    print(f"  pages out: datatrove {len(theirs)}, assay {len(ours)}; identical text on {same}")


if __name__ == "__main__":
    main()
