"""Tokenize benchmark: ``assay prepare`` against the direct encoders and datatrove, one run.

On the benchmark corpus (``../shared/bench/make_corpus.sh``, the JSONL shards datatrove
reads), with one byte-level BPE that assay trains once on a 16 MB seeded sample (cached):

- ``tiktoken``: tiktoken's ``encode_ordinary_batch`` (2 threads) running the same merges,
  called directly on the texts in memory; only the encode call is timed.
- ``hf``: ``tokenizers``' ``encode_batch`` on the same texts, only the call timed.
- ``assay``: ``assay prepare`` of a tokenize-only recipe (every document once, concat
  shards) from a curated output holding the same documents; the whole process is timed
  (start-up, reading, tokenizing, shuffling, writing), and its tokenize stage alone.
- ``datatrove``: ``DocumentTokenizer`` (its own venv, ``workers`` processes over the
  shards, EOS appended, documents shuffled), the whole process timed.

With ``--baseline-src DIR``, ``assay-base`` is the same ``assay prepare`` job run with the
code in ``DIR`` (e.g. the main branch's ``src``), for a before/after comparison.

Each job runs under the harness's ``measure.py`` (wall, CPU, peak PSS), interleaved,
``--reps`` times. Prints median MB/s of text, the ratios, the load average, and whether the
ids agree (tiktoken vs tokenizers: a hash of every document's ids; token totals of all).

usage: python bench/tokenize_throughput.py [--reps 3] [--workers 2] [--vocab 32768] [--limit-mb 0]
                                          [--assay-hf] [--baseline-src ../main/src]
env:   BENCH_HOME (default ~/.cache/assay-bench), SHARED (default ../shared)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from harness import BENCH, ROOT, measure, peer_python, prepare, print_record

WORK = BENCH / "work" / "tokenize"
EOS = "<|endoftext|>"


def _read_texts(shards: Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    for path in sorted(glob.glob(str(shards / "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                ids.append(str(record["id"]))
                texts.append(record["text"])
    return ids, texts


def _limited_shards(shards: Path, limit_mb: float) -> Path:
    """The first ``limit_mb`` MB of every shard (same proportions), or the shards themselves."""
    if not limit_mb:
        return shards
    out = WORK / f"input-{limit_mb:g}mb"
    if out.exists():
        return out
    out.mkdir(parents=True)
    files = sorted(glob.glob(str(shards / "*.jsonl")))
    per_file = limit_mb * 1e6 / len(files)
    for path in files:
        size = 0
        with open(path, encoding="utf-8") as f, open(out / Path(path).name, "w", encoding="utf-8") as g:
            for line in f:
                if size >= per_file:
                    break
                g.write(line)
                size += len(line.encode())
    return out


def build_inputs(shards: Path, vocab: int) -> tuple[Path, Path]:
    """The curated output (core schema Parquet) of the shards, and the benchmark tokenizer."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from assay.documents import CORE_SCHEMA
    from assay.prepare import train_encoder

    curated = WORK / f"curated-{shards.name}"
    if not (curated / "data").exists():
        ids, texts = _read_texts(shards)
        (curated / "data").mkdir(parents=True)
        for k, part in enumerate(np.array_split(np.arange(len(texts)), 8)):
            table = pa.table({"id": [ids[i] for i in part], "text": [texts[i] for i in part],
                              "source": ["bench"] * len(part), "url": [None] * len(part),
                              "metadata": [None] * len(part)}, schema=CORE_SCHEMA)
            pq.write_table(table, curated / "data" / f"part-00000-{k:05d}.parquet", compression="zstd")
    tokenizer = WORK / f"tokenizer-{vocab}.json"
    if not tokenizer.exists():
        _, texts = _read_texts(prepare("base.jsonl"))
        order = np.random.default_rng(0).permutation(len(texts))
        sample, size = [], 0
        for i in order:
            if size > 16e6:
                break
            sample.append(texts[i])
            size += len(texts[i].encode())
        tokenizer.write_bytes(train_encoder(sample, vocab, eos=EOS).spec_bytes)
    return curated, tokenizer


def job_direct(engine: str, shards: Path, tokenizer: Path, threads: int) -> dict:
    """Encode every text once with one engine; time the encode call alone."""
    import numpy as np
    import xxhash

    from assay.prepare import load_encoder

    _, texts = _read_texts(shards)
    encoder = load_encoder(tokenizer, eos=EOS)
    if engine == "hf":
        start = time.perf_counter()
        ids = [e.ids for e in encoder.hf.encode_batch(texts, add_special_tokens=False)]
        seconds = time.perf_counter() - start
    else:
        fast = encoder._tiktoken  # tiktoken.Encoding with the file's merges (assay.prepare.tokenizer)
        start = time.perf_counter()
        ids = fast.encode_ordinary_batch(texts, num_threads=threads)
        seconds = time.perf_counter() - start
    digest = xxhash.xxh64()
    for doc in ids:
        digest.update(np.asarray(doc, dtype=np.uint32).tobytes())
        digest.update(b"\xff\xff\xff\xff")
    return {"encode_s": seconds, "bytes": sum(len(t.encode()) for t in texts),
            "tokens": sum(len(d) for d in ids) + len(ids), "ids_xxh64": digest.hexdigest()}


def job_assay(engine: str, curated: Path, tokenizer: Path, out: Path) -> dict:
    from assay.prepare import parse_prepare_recipe, prepare

    recipe = parse_prepare_recipe(json.dumps({
        "name": "bench-tokenize", "output": str(out), "input": str(curated),
        "tokenizer": {"path": str(tokenizer), "eos": EOS, "engine": engine},
        "packing": {"method": "concat"}}))
    result = prepare(recipe, overwrite=True)
    m = result.manifest
    (source,) = m["sources"].values()
    return {"tokenize_s": m["timings"]["tokenize"], "timings": m["timings"], "bytes": source["bytes"],
            "tokens": m["totals"]["tokens"], "engine": m["tokenizer"]["engine"]}


def job_datatrove(shards: Path, tokenizer: Path, out: Path, workers: int) -> dict:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens import DocumentTokenizer

    tasks = len(glob.glob(str(shards / "*.jsonl")))
    LocalPipelineExecutor(
        pipeline=[JsonlReader(str(shards), glob_pattern="*.jsonl", text_key="text", id_key="id"),
                  DocumentTokenizer(str(out / "tokens"), tokenizer_name_or_path=str(tokenizer), eos_token=EOS,
                                    seed=0)],
        tasks=tasks, workers=workers, logging_dir=str(out / "logs"), skip_completed=False).run()
    stats = json.loads((out / "logs" / "stats.json").read_text())
    tokens = 0
    for step in stats:
        value = (step.get("stats") or {}).get("tokens")
        if value is not None:
            tokens += value.get("total") if isinstance(value, dict) else value
    return {"tokens": tokens}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--limit-mb", type=float, default=0.0, help="the first MB of the corpus (0: all)")
    parser.add_argument("--assay-hf", action="store_true", help="also run assay with the tokenizers engine")
    parser.add_argument("--baseline-src", help="also run assay prepare with the code in this src folder")
    parser.add_argument("--assay-only", action="store_true",
                        help="with --baseline-src: run only assay and assay-base (before/after, more reps)")
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.job:  # one measured job, in this or the peer's venv
        a = args.args
        jobs = {"tiktoken": lambda: job_direct("tiktoken", Path(a[0]), Path(a[1]), args.workers),
                "hf": lambda: job_direct("hf", Path(a[0]), Path(a[1]), args.workers),
                "assay": lambda: job_assay("auto", Path(a[0]), Path(a[1]), Path(a[2])),
                "assay-hf": lambda: job_assay("hf", Path(a[0]), Path(a[1]), Path(a[2])),
                "datatrove": lambda: job_datatrove(Path(a[0]), Path(a[1]), Path(a[2]), args.workers)}
        print(json.dumps(jobs[args.job]()))
        return
    shards = _limited_shards(prepare("base.jsonl"), args.limit_mb)
    curated, tokenizer = build_inputs(shards, args.vocab)
    counted = WORK / f"counted-{shards.name}.jsonl"
    if not counted.exists():
        with open(counted, "w", encoding="utf-8") as out:
            for path in sorted(glob.glob(str(shards / "*.jsonl"))):
                out.write(Path(path).read_text(encoding="utf-8"))
    tag = time.strftime("tokenize-%Y%m%d-%H%M%S")
    results_dir = BENCH / "results" / tag
    results_dir.mkdir(parents=True, exist_ok=True)
    results = results_dir / "runs.jsonl"
    me = str(ROOT / "bench" / "tokenize_throughput.py")
    common = ["--workers", str(args.workers), "--job"]
    names = ["tiktoken", "hf", "assay", *(["assay-base"] if args.baseline_src else []),
             *(["assay-hf"] if args.assay_hf else []), "datatrove"]
    if args.assay_only:
        if not args.baseline_src:
            parser.error("--assay-only compares with --baseline-src")
        names = ["assay", "assay-base"]

    def command(name: str, out: Path) -> list[str]:
        python = peer_python("datatrove") if name == "datatrove" else sys.executable
        source = curated if name.startswith("assay") else shards
        job = "assay" if name == "assay-base" else name
        return [python, me, *common, job, "--args", str(source), str(tokenizer), str(out)]

    os.environ["RAYON_NUM_THREADS"] = str(args.workers)  # tokenizers' thread pool, as many as the others
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for rep in range(1, args.reps + 1):
        for name in names:
            out = BENCH / "work" / tag / name / f"r{rep}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            env = os.environ.copy()
            if name == "assay-base":
                os.environ["PYTHONPATH"] = str(Path(args.baseline_src).resolve())
            try:
                record = measure(name, results, counted, command(name, out))
            finally:
                os.environ.clear()
                os.environ.update(env)
            runs[name].append(record)
            print_record(rep, name, record)
    text_bytes = runs["assay"][0]["job"]["bytes"]
    if args.assay_only:
        _before_after(runs, text_bytes, results_dir)
        return

    def mb_s(name: str, key: str | None = None) -> float:
        return statistics.median(text_bytes / 1e6 / (r["job"][key] if key else r["wall_s"])
                                 for r in runs[name])

    speed = {"tiktoken (encode call)": mb_s("tiktoken", "encode_s"),
             "hf (encode call)": mb_s("hf", "encode_s"),
             "assay (whole process)": mb_s("assay"), "assay (tokenize stage)": mb_s("assay", "tokenize_s"),
             "datatrove (whole process)": mb_s("datatrove")}
    if args.baseline_src:
        speed["assay-base (whole process)"] = mb_s("assay-base")
        speed["assay-base (tokenize stage)"] = mb_s("assay-base", "tokenize_s")
    if args.assay_hf:
        speed["assay-hf (whole process)"] = mb_s("assay-hf")
        speed["assay-hf (tokenize stage)"] = mb_s("assay-hf", "tokenize_s")
    direct = max(speed["tiktoken (encode call)"], speed["hf (encode call)"])
    tokens = {n: runs[n][0]["job"]["tokens"] for n in names}
    same_ids = runs["tiktoken"][0]["job"]["ids_xxh64"] == runs["hf"][0]["job"]["ids_xxh64"]
    loads = [r["load_start"] for rs in runs.values() for r in rs]
    summary = {"text_mb": text_bytes / 1e6, "reps": args.reps, "workers": args.workers, "vocab": args.vocab,
               "median_mb_per_s": speed, "fastest_direct_mb_per_s": direct,
               "assay_over_direct": speed["assay (whole process)"] / direct,
               "assay_stage_over_direct": speed["assay (tokenize stage)"] / direct,
               "assay_over_datatrove": speed["assay (whole process)"] / speed["datatrove (whole process)"],
               "assay_over_baseline": (speed["assay (whole process)"] / speed["assay-base (whole process)"]
                                       if args.baseline_src else None),
               "tiktoken_ids_equal_tokenizers_ids": same_ids, "tokens_incl_eos": tokens,
               "median_cpu_s": {n: statistics.median(r["cpu_s"] for r in runs[n]) for n in names},
               "median_peak_pss_mb": {n: statistics.median(r["peak_tree_pss_mb"] for r in runs[n])
                                      for n in names},
               "load_average": [min(loads), max(loads)]}
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n| job | MB/s (median) |\n|---|---|")
    for label, value in speed.items():
        print(f"| {label} | {value:,.2f} |")
    print(f"\nassay whole process / fastest direct encoder: {summary['assay_over_direct']:.1%} "
          f"(tokenize stage: {summary['assay_stage_over_direct']:.1%}); assay / datatrove: "
          f"{summary['assay_over_datatrove']:.1f}x; "
          + (f"assay / assay-base (before): {summary['assay_over_baseline']:.3f}; "
             if args.baseline_src else "")
          + f"tiktoken ids == tokenizers ids on every document: "
          f"{same_ids}; "
          f"tokens incl. EOS {tokens}; {args.workers} workers, median of {args.reps}, load average "
          f"{min(loads):.1f}-{max(loads):.1f}. Results: {results_dir}")


def _before_after(runs: dict[str, list[dict]], text_bytes: int, results_dir: Path) -> None:
    """Medians of assay and assay-base (the baseline code) and their ratios."""
    summary = {name: {"mb_per_s": statistics.median(text_bytes / 1e6 / r["wall_s"] for r in rs),
                      "cpu_s": statistics.median(r["cpu_s"] for r in rs),
                      "peak_pss_mb": statistics.median(r["peak_tree_pss_mb"] for r in rs),
                      "tokens": rs[0]["job"]["tokens"]} for name, rs in runs.items()}
    loads = [r["load_start"] for rs in runs.values() for r in rs]
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n| job | MB/s (median) | CPU s | peak PSS MB |\n|---|---|---|---|")
    for name, row in summary.items():
        print(f"| {name} | {row['mb_per_s']:,.2f} | {row['cpu_s']:.1f} | {row['peak_pss_mb']:,.0f} |")
    new, old = summary["assay"], summary["assay-base"]
    print(f"\nassay / assay-base: throughput {new['mb_per_s'] / old['mb_per_s']:.3f}, CPU "
          f"{new['cpu_s'] / old['cpu_s']:.3f}, peak PSS {new['peak_pss_mb'] / old['peak_pss_mb']:.3f}; "
          f"same tokens: {new['tokens'] == old['tokens']}; median of {len(runs['assay'])}, load average "
          f"{min(loads):.1f}-{max(loads):.1f}. Results: {results_dir}")


if __name__ == "__main__":
    main()
