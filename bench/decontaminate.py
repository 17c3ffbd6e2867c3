"""Decontamination benchmark: assay's ``decontaminate`` step against datatrove's
``NGramsDecontFilter``, with the full benchmark sets of ``../shared/data/benchmarks``.

Three parts:

1. False positives on the bundled sample (``data/sample/sample_text.jsonl.gz``, 1,219 real
   documents that contain no benchmark item): the documents flagged, with the n-grams
   that matched, once with the full benchmark files and once with the subsets bundled in
   ``tests/fixtures/benchmarks``.
2. Planted recall at scale: ``--plant`` items of every benchmark are planted into random
   documents of ``base.jsonl`` (19,469 documents, 148 MB; skipped if the corpus is
   absent) three ways: verbatim, lightly edited (a word replaced every 20 words, some case
   and punctuation changed) and answer only (GSM8K's worked answer, HumanEval's canonical
   solution, where at least 13 words). Recall by kind and false positives among the other
   documents, for both tools.
3. Throughput on that planted corpus: assay (``mode: gpt3``, the default: cut, with the
   report) and datatrove (drop on the first collision; its index built from the same
   texts with its own normalisation, spaCy words, 13-grams, in the job), the same 8 JSONL
   shards and the same number of workers, interleaved ``--reps`` times under the
   harness's ``measure.py``: median docs/s, CPU s and peak PSS, and the ratio.

The two tools normalise differently: datatrove folds digits to 0, strips accents and
turns punctuation into spaces; assay removes punctuation (GPT-3's rule) and keeps digits.
datatrove never matches benchmark texts shorter than 13 words; assay matches those of 8
words or more whole.

usage: python bench/decontaminate.py [--reps 3] [--workers 2] [--plant 100] [--no-peer]
env:   BENCH_HOME (default ~/.cache/assay-bench), SHARED (default ../shared)
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import BENCH, CORPUS, ROOT, SHARED, measure, peer_python, print_record

BENCHMARKS = SHARED / "data" / "benchmarks"
FIXTURES = ROOT / "tests" / "fixtures" / "benchmarks"
SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"
TEMPLATE = [r"^Question:", r"Answer:\s*$"]

# What a user would index in each file (fields differ per file).
SPECS = [
    {"file": "HumanEval.jsonl.gz", "fields": ["prompt", "canonical_solution"], "id_field": "task_id"},
    {"file": "gsm8k_test.jsonl.gz", "fields": ["question", "answer"]},
    {"file": "arc_challenge.jsonl.gz", "fields": ["query", "choices"], "remove": TEMPLATE},
    {"file": "arc_easy.jsonl.gz", "fields": ["query", "choices"], "remove": TEMPLATE},
    {"file": "lambada_openai.jsonl.gz", "fields": ["context", "continuation"]},
    {"file": "triviaqa_sm_sub.jsonl.gz", "fields": ["context", "answer", "aliases"], "remove": TEMPLATE},
]
MAIN_FIELD = {"HumanEval": "prompt", "gsm8k_test": "question", "arc_challenge": "query",
              "arc_easy": "query", "lambada_openai": "context", "triviaqa_sm_sub": "context"}
ANSWER_FIELD = {"HumanEval": "canonical_solution", "gsm8k_test": "answer"}

# Runs in datatrove's venv: index the same texts as its indexer would (the indexer class
# itself insists on lighteval), then its filter over the shards.
_PEER = r"""
import glob, json, os, sys, time
import numpy as np
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.decont import NGramsDecontConfig, NGramsDecontFilter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import create_hash_func
from datatrove.utils.text import ngrams, simplify_text
from datatrove.utils.typeshelper import Languages
from datatrove.utils.word_tokenizers import load_word_tokenizer
shards, out, workers, texts = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
started = time.time()
cfg = NGramsDecontConfig(n_grams=13, find_query_ngrams=True, find_overlap_ngrams=False)
tokenizer, hash_func = load_word_tokenizer(Languages.english), create_hash_func(cfg.hash_config)
hashes = set()
for text in json.load(open(texts)):
    tokens = tokenizer.word_tokenize(simplify_text(text, cfg.norm_config))
    hashes.update(map(hash_func, map(" ".join, ngrams(tokens, cfg.n_grams))))
os.makedirs(f"{out}/index", exist_ok=True)
np.array(sorted(hashes), dtype=cfg.hash_config.np_descr).tofile(f"{out}/index/bench.index.hashes")
index_s = time.time() - started
LocalPipelineExecutor(pipeline=[
    JsonlReader(shards, glob_pattern="*.jsonl", text_key="text", id_key="id"),
    NGramsDecontFilter(index_folder=f"{out}/index", config=cfg,
                       exclusion_writer=JsonlWriter(f"{out}/removed", compression=None)),
    JsonlWriter(f"{out}/kept", compression=None)],
    tasks=len(glob.glob(f"{shards}/*.jsonl")), workers=workers, logging_dir=f"{out}/logs",
    skip_completed=False).run()
removed = [json.loads(line)["id"] for f in sorted(glob.glob(f"{out}/removed/*.jsonl")) for line in open(f)]
open(f"{out}/flagged_ids.txt", "w").write("".join(i + "\n" for i in removed))
print(json.dumps({"flagged": len(removed), "index_ngrams": len(hashes), "index_s": round(index_s, 1)}))
"""


def read_jsonl(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def step_specs(folder: Path) -> list[dict]:
    """The step's ``benchmarks``; the bundled subsets keep no TriviaQA aliases."""
    specs = [{"path": str(folder / s["file"]), **{k: v for k, v in s.items() if k != "file"}}
             for s in SPECS]
    if folder == FIXTURES:
        specs = [{**s, "fields": [f for f in s["fields"] if f != "aliases"]} for s in specs]
    return specs


def field_texts(spec: dict, record: dict) -> list[str]:
    texts = []
    for name in spec["fields"]:
        value = record[name]
        for text in value if isinstance(value, list) else [value]:
            for pattern in spec.get("remove", []):
                text = re.sub(pattern, " ", text, flags=re.MULTILINE)
            texts.append(text)
    return texts


# ------------------------------------------------------------------ the assay job


def assay_job(corpus: str, out: str, workers: int, mode: str, specs: list[dict]) -> dict:
    from assay import Pipeline
    from assay.steps.decontaminate.step import Decontaminate

    result = Pipeline([Decontaminate(benchmarks=specs, mode=mode)], name="decontaminate").run(
        corpus, out, workers=workers, overwrite=True)
    documents = read_jsonl(Path(out) / "reports" / "decontaminate" / "documents.jsonl")
    (Path(out) / "flagged_ids.txt").write_text("".join(d["id"] + "\n" for d in documents))
    entry = result.manifest["steps"][-1]
    return {"flagged": len(documents), "seconds": entry["seconds"],
            "summary": entry.get("fit", {}).get("summary", {})}


# ------------------------------------------------------------------ planting


def edit(text: str) -> str:
    """A word replaced every 20 words, some case and punctuation changed."""
    from assay.text.decon_words import normalized_words

    parts = re.split(r"(\s+)", text)
    words = [i for i in range(0, len(parts), 2) if normalized_words(parts[i])]
    for n, i in enumerate(words):
        if n % 20 == 10:
            parts[i] = "zzzq"
        elif n % 7 == 3:
            parts[i] = parts[i].upper()
        elif n % 9 == 5:
            parts[i] = parts[i].rstrip(",.;:?!") + ","
        elif n % 11 == 2:
            parts[i] = parts[i].strip(",.;:?!\"'")
    return "".join(parts)


def verbatim(name: str, r: dict) -> str:
    if name == "HumanEval":
        return r["prompt"] + r["canonical_solution"]
    if name == "gsm8k_test":
        return f"{r['question']}\n{r['answer']}"
    if name.startswith("arc"):
        return r["query"] + "\n" + "\n".join(f"{'ABCDE'[i]}. {c}" for i, c in enumerate(r["choices"]))
    if name == "lambada_openai":
        return f"{r['context']} {r['continuation']}"
    return f"{r['context']} {r['answer']}"


def plans(per_kind: int, seed: int) -> list[tuple[str, str, str, str]]:
    """(kind, benchmark, item, text) to plant: up to ``per_kind`` items per benchmark and
    kind, drawn at random among the items each kind applies to."""
    from assay.text.decon_words import normalized_words

    rng = random.Random(seed)
    out = []
    for spec in SPECS:
        name = spec["file"].removesuffix(".jsonl.gz")
        records = read_jsonl(BENCHMARKS / spec["file"])
        order = list(range(len(records)))
        rng.shuffle(order)
        counts = dict.fromkeys(("verbatim", "edited", "answer"), 0)
        for line in order:
            r = records[line]
            item = str(r.get(spec.get("id_field", ""), line + 1))
            candidates = []
            if any(len(normalized_words(t)) >= 8 for t in field_texts(spec, r)):
                candidates.append(("verbatim", verbatim(name, r)))
            main = r.get(MAIN_FIELD[name], "")
            if len(normalized_words(main)) >= 30:
                candidates.append(("edited", edit(main)))
            answer = r.get(ANSWER_FIELD.get(name, ""), "")
            if len(normalized_words(answer)) >= 13:
                candidates.append(("answer", answer))
            for kind, text in candidates:
                if counts[kind] < per_kind:
                    counts[kind] += 1
                    out.append((kind, name, item, text))
                    break  # one kind per item, so an item's kinds do not help each other
    return out


def write_planted(base: Path, folder: Path, per_kind: int, n_shards: int = 8) -> dict[str, tuple]:
    """``folder/planted.jsonl`` and ``folder/shards/*.jsonl``: ``base`` with items planted;
    returns the truth, per planted document id: (kind, benchmark, item)."""
    docs = read_jsonl(base)
    todo = plans(per_kind, seed=1)
    rng = random.Random(2)
    hosts = rng.sample(range(len(docs)), len(todo))
    truth = {}
    for host, (kind, name, item, text) in zip(hosts, todo, strict=True):
        body = docs[host]["text"]
        middle = body.find("\n", len(body) // 2)
        middle = middle if middle > 0 else len(body) // 2
        docs[host] = {**docs[host], "text": body[:middle] + "\n\n" + text + "\n\n" + body[middle:]}
        truth[docs[host]["id"]] = (kind, name, item)
    lines = [json.dumps(d, ensure_ascii=False) + "\n" for d in docs]
    (folder / "planted.jsonl").write_text("".join(lines))
    shards = folder / "shards"
    shards.mkdir(exist_ok=True)
    size = -(-len(lines) // n_shards)
    for k in range(n_shards):
        (shards / f"{k:02d}.jsonl").write_text("".join(lines[k * size : (k + 1) * size]))
    return truth


def score(flagged: set[str], truth: dict[str, tuple], n_docs: int) -> dict:
    by_kind: dict[str, list[int]] = {}
    by_benchmark: dict[str, list[int]] = {}
    for doc_id, (kind, name, _) in truth.items():
        hit = int(doc_id in flagged)
        by_kind.setdefault(kind, [0, 0])[0] += hit
        by_kind[kind][1] += 1
        by_benchmark.setdefault(f"{name}/{kind}", [0, 0])[0] += hit
        by_benchmark[f"{name}/{kind}"][1] += 1
    false_positives = sorted(flagged - set(truth))
    return {
        "recall": {k: f"{a}/{b} ({a / b:.1%})" for k, (a, b) in sorted(by_kind.items())},
        "recall_by_benchmark": {k: f"{a}/{b}" for k, (a, b) in sorted(by_benchmark.items())},
        "false_positives": len(false_positives),
        "false_positive_rate": round(len(false_positives) / (n_docs - len(truth)), 6),
        "false_positive_ids": false_positives[:20],
    }


# ------------------------------------------------------------------ parts


def sample_false_positives(work: Path) -> dict:
    out = {}
    n_docs = len(read_jsonl(SAMPLE))
    for label, folder in (("full benchmarks", BENCHMARKS), ("fixture subsets", FIXTURES)):
        target = work / f"sample-{label.split()[0]}"
        stats = assay_job(str(SAMPLE), str(target), 2, "gpt3", step_specs(folder))
        documents = read_jsonl(target / "reports" / "decontaminate" / "documents.jsonl")
        out[label] = {"flagged": len(documents), "rate": round(len(documents) / n_docs, 6),
                      "ngrams_colliding": stats["summary"].get("ngrams_colliding"),
                      "documents": [{"id": d["id"], "items": d["items"], "ngrams": d["ngrams"][:3]}
                                    for d in documents]}
        print(f"sample ({n_docs} docs), {label}: {len(documents)} flagged "
              f"({len(documents) / n_docs:.2%}); colliding n-grams before the frequency rule: "
              f"{stats['summary'].get('ngrams_colliding')}", flush=True)
        for d in documents:
            print(f"  {d['id']}: {d['items']} {d['ngrams'][:3]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--plant", type=int, default=100, help="items per benchmark and kind")
    parser.add_argument("--no-peer", action="store_true", help="skip datatrove")
    parser.add_argument("--job", nargs=4, metavar=("CORPUS", "OUT", "WORKERS", "MODE"),
                        help=argparse.SUPPRESS)  # the assay side, run under measure.py
    args = parser.parse_args()
    if args.job:
        corpus, out, workers, mode = args.job
        print(json.dumps(assay_job(corpus, out, int(workers), mode, step_specs(BENCHMARKS))))
        return

    tag = time.strftime("decontaminate-%Y%m%d-%H%M%S")
    results_dir = BENCH / "results" / tag
    results_dir.mkdir(parents=True, exist_ok=True)
    work = BENCH / "work" / tag
    work.mkdir(parents=True, exist_ok=True)
    summary: dict = {"sample": sample_false_positives(work)}

    base = CORPUS / "base.jsonl"
    if not base.exists():
        print(f"{base} is absent: no planted recall or throughput (build it with "
              f"{SHARED / 'bench' / 'make_corpus.sh'})")
        (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
        return
    truth = write_planted(base, work, args.plant)
    planted, shards = work / "planted.jsonl", work / "shards"
    n_docs = sum(1 for _ in planted.open())
    kinds = ", ".join(f"{k} {sum(t[0] == k for t in truth.values())}"
                      for k in ("verbatim", "edited", "answer"))
    print(f"\nplanted {len(truth)} items into {n_docs} documents of base.jsonl ({kinds})", flush=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, dir=work) as f:
        texts = [t for spec in SPECS for r in read_jsonl(BENCHMARKS / spec["file"])
                 for t in field_texts(spec, r)]
        json.dump(texts, f)
    jobs = {"assay": lambda out: [sys.executable, __file__, "--job", f"{shards}/*.jsonl", str(out),
                                  str(args.workers), "gpt3"]}
    if not args.no_peer:
        jobs["datatrove"] = lambda out: [peer_python("datatrove"), "-c", _PEER, str(shards), str(out),
                                         str(args.workers), f.name]
    results = results_dir / "runs.jsonl"
    runs: dict[str, list[dict]] = {name: [] for name in jobs}
    flagged: dict[str, set[str]] = {}
    for rep in range(1, args.reps + 1):
        for name, command in jobs.items():
            out = work / name / f"r{rep}"
            subprocess.run(["rm", "-rf", str(out)], check=True)
            record = measure(name, results, planted, command(out))
            runs[name].append(record)
            ids = set((out / "flagged_ids.txt").read_text().split())
            if name in flagged and flagged[name] != ids:
                print(f"warning: {name} flagged different documents in rep {rep}")
            flagged[name] = ids
            print_record(rep, name, record)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    names = list(jobs)
    summary.update({
        "docs": n_docs, "planted": len(truth), "reps": args.reps, "workers": args.workers,
        "median_docs_per_s": {n: median(n, "docs_per_s") for n in names},
        "median_cpu_s": {n: median(n, "cpu_s") for n in names},
        "median_peak_pss_mb": {n: median(n, "peak_tree_pss_mb") for n in names},
        "load_start": {n: [r["load_start"] for r in runs[n]] for n in names},
        "quality": {n: score(flagged[n], truth, n_docs) for n in names},
        "assay_fit": runs["assay"][-1]["job"]["summary"] if runs["assay"][-1].get("job") else None,
    })
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print()
    if "datatrove" in names:
        print("| | datatrove | assay | assay / datatrove |\n|---|---|---|---|")
        for key, label in (("median_docs_per_s", "docs/s (median)"), ("median_cpu_s", "CPU s"),
                           ("median_peak_pss_mb", "peak PSS MB")):
            a, b = summary[key]["datatrove"], summary[key]["assay"]
            print(f"| {label} | {a:,.1f} | {b:,.1f} | {b / a:.2f}x |")
    else:
        print(f"assay: {summary['median_docs_per_s']['assay']:,.1f} docs/s (median), "
              f"{summary['median_cpu_s']['assay']:,.1f} CPU s")
    for name in names:
        q = summary["quality"][name]
        print(f"{name}: planted recall {q['recall']}; false positives {q['false_positives']} "
              f"({q['false_positive_rate']:.3%}) {q['false_positive_ids'][:5]}")
        print(f"  by benchmark: {q['recall_by_benchmark']}")
    print(f"load average at job starts: {summary['load_start']}")
    print(f"\nResults: {results_dir}")


if __name__ == "__main__":
    main()
