"""Report benchmark: what `assay report` costs beside the run it describes.

Runs the FineWeb chain (Gopher repetition, Gopher quality, C4, FineWeb) and MinHash dedup
over the benchmark corpus with `assay run --no-report`, then `assay report` on its output,
``--reps`` times, interleaved, each under the harness's ``measure.py`` (wall, CPU seconds
of the process tree, peak PSS). Prints the report's wall and CPU time as a share of the
run's, its peak memory, the page's size, and the cost per million documents (the report
reads a fixed number of columns per row; its samples and charts have a fixed size), and the
time `assay report` says it spent building the page (what `assay run` adds to a run, whose
process has its imports done).

usage: python bench/report.py [--reps 2] [--workers 2]
env:   BENCH_HOME (default ~/.cache/assay-bench), SHARED (default ../shared)
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

from harness import BENCH, CORPUS, measure, print_record

RECIPE = """\
name: bench-report
input: {{path: {corpus}}}
output: {output}
executor: {{workers: {workers}}}
steps:
  - gopher_repetition: {{}}
  - gopher_quality: {{}}
  - c4_quality: {{}}
  - fineweb_quality: {{}}
  - minhash_dedup: {{}}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    corpus = CORPUS / "base.jsonl"
    work = BENCH / "report" / time.strftime("%Y%m%d-%H%M%S")
    work.mkdir(parents=True)
    assay = str(Path(sys.executable).with_name("assay"))
    records: dict[str, list[dict]] = {"run": [], "report": []}
    size = documents = 0
    for rep in range(args.reps):
        output = work / f"out-{rep}"
        recipe = work / f"recipe-{rep}.yaml"
        recipe.write_text(RECIPE.format(corpus=corpus, output=output, workers=args.workers))
        for name, command in (("run", [assay, "run", str(recipe), "--no-report"]),
                              ("report", [assay, "report", str(output)])):
            record = measure(name, work / f"{name}.jsonl", corpus, command)
            records[name].append(record)
            print_record(rep, name, record)
        built = re.findall(r"report → .* bytes, ([0-9.]+) s\)", (work / "report.log").read_text())
        records["report"][-1]["built_s"] = float(built[-1])
        size = (output / "report.html").stat().st_size
        documents = json.loads((output / "manifest.json").read_text())["totals"]["in"]

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in records[name])

    run_wall, report_wall = median("run", "wall_s"), median("report", "wall_s")
    run_cpu, report_cpu = median("run", "cpu_s"), median("report", "cpu_s")
    built = median("report", "built_s")
    per_million = 1e6 / documents
    print(f"documents {documents:,}  page {size / 1e6:.2f} MB")
    print(f"report / run: wall {report_wall:.2f} s / {run_wall:.1f} s = {100 * report_wall / run_wall:.1f}%  "
          f"CPU {report_cpu:.2f} s / {run_cpu:.1f} s = {100 * report_cpu / run_cpu:.1f}%  "
          f"report peak PSS {median('report', 'peak_tree_pss_mb'):.0f} MB")
    print(f"building the page (what `assay run` adds, its process already started): {built:.2f} s = "
          f"{100 * built / run_wall:.1f}% of the run's wall time")
    print(f"per million documents (linear in rows): ~{built * per_million:.0f} s to build the page; "
          f"the page stays ~{size / 1e6:.1f} MB (samples and charts have a fixed size)")


if __name__ == "__main__":
    main()
