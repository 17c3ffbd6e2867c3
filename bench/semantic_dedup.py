"""Semantic deduplication benchmark: ``semantic_dedup`` against ``minhash_dedup`` (defaults)
on planted paraphrases, and both on the near-duplicate corpus.

Paraphrase set (built here, deterministic): the bundled sample's English documents
(``lang: en``) in file order, less the sample's own duplicates (a document whose exact_dedup-
normalised text or whose ``dup_group`` came earlier), so that the truth holds only the planted
pairs. Every second of those with at least 12 words gets a paraphrase, id ``<id>#para``, made
with ``random.Random(position)``: the text is cut into sentences (at line breaks and after
``.!?`` and a space); with 4 or more sentences each is dropped with probability 0.2 (one
is always kept); neighbouring sentences are swapped with probability 0.5 (non-overlapping
pairs); each word of SYNONYMS (a synonym, a spelling variant or a contraction written out)
is replaced with probability 0.8; the sentences are joined by spaces and lower-cased. Case,
punctuation and line breaks are folded away by MinHash's shingles; dropped sentences,
swaps and synonyms are what it misses (word 5-gram Jaccard of the pairs: median ~0.29).
Originals and paraphrases are shuffled with ``random.Random(0)``.

Each job runs under the harness's ``measure.py`` (wall, CPU s of the process tree, peak
PSS, docs/s). Paraphrase set: precision and recall of the removed documents (a pair is found
when one of its two documents is removed; precision = found pairs / removed), recall by the
pair's Jaccard, and how often ``duplicate_of`` names the partner. Near-duplicate corpus:
``eval_dedup.py`` against the injected truth (``--neardup-lang L``, ``--neardup-docs N``: the
first N documents in language L, by meta.tsv, less the members of clusters the limit cuts,
scored with ``eval_dedup.py --input``; the encoder is English-only). ``--sweep`` adds
precision/recall for other ``eps`` and ``n_clusters`` from one embedding of each corpus,
through the step's own functions (k-means, nearest centroid, greedy pass, ``keep: first``),
and the share of the true pairs above the threshold that k-means put in different
clusters; its row at the defaults is checked against the measured run.

usage: python bench/semantic_dedup.py [--workers 2] [--neardup-lang en] [--neardup-docs N] [--sweep]
       python bench/semantic_dedup.py job STEP INPUT OUT WORKERS PARAMS_JSON   (one measured job)
env:   BENCH_HOME (default ~/.cache/assay-bench), SHARED (default ../shared)
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from harness import BENCH, CORPUS, ROOT, SHARED, measure

from assay.report.dedup import jaccard
from assay.steps.dedup.exact import normalize_for_dedup

SAMPLE = ROOT / "data" / "sample" / "sample_text.jsonl.gz"
SWEEP_EPS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25)
SWEEP_K = (0.25, 1.0, 4.0)  # n_clusters as multiples of the default, sqrt(documents)
JACCARD_BINS = ((0.0, 0.2), (0.2, 0.4), (0.4, 0.6), (0.6, 1.01))

SYNONYMS = {
    "use": "utilize", "uses": "utilizes", "used": "utilized", "using": "utilizing",
    "get": "obtain", "gets": "obtains", "got": "obtained", "make": "create", "makes": "creates",
    "made": "created", "big": "large", "large": "big", "small": "little", "little": "small",
    "many": "numerous", "often": "frequently", "also": "additionally", "but": "however",
    "because": "since", "about": "regarding", "help": "assist", "start": "begin", "begin": "start",
    "show": "display", "shows": "displays", "need": "require", "needs": "requires", "want": "wish",
    "buy": "purchase", "quick": "fast", "quickly": "rapidly", "important": "significant",
    "problem": "issue", "problems": "issues", "answer": "reply", "ask": "inquire", "maybe": "perhaps",
    "people": "folks", "person": "individual", "job": "occupation", "modify": "change",
    "copy": "duplicate", "copies": "duplicates", "permission": "authorization", "provided": "supplied",
    "distribute": "disseminate", "program": "application", "programs": "applications",
    "license": "licence", "color": "colour", "written": "authored", "write": "compose",
    "see": "view", "said": "stated", "says": "states", "think": "believe", "know": "understand",
    "always": "invariably", "very": "extremely", "good": "fine", "bad": "poor", "example": "instance",
    "following": "subsequent", "each": "every", "must": "has to", "should": "ought to",
    "cannot": "can not", "don't": "do not", "doesn't": "does not", "isn't": "is not", "it's": "it is",
    "i'm": "I am", "you're": "you are", "won't": "will not", "can't": "cannot", "warranty": "guarantee",
    "file": "document", "files": "documents", "information": "details", "system": "setup",
    "computer": "machine", "allow": "permit", "allows": "permits", "however": "but",
    "before": "prior to", "after": "following", "around": "about", "enough": "sufficient",
    "find": "locate", "found": "located", "try": "attempt", "tried": "attempted", "keep": "retain",
    "give": "provide", "gives": "provides", "change": "alter", "changes": "alterations",
    "simple": "easy", "easy": "simple", "hard": "difficult", "difficult": "hard", "life": "existence",
    "man": "guy", "woman": "lady", "children": "kids", "house": "home", "car": "automobile",
    "money": "cash", "happy": "glad", "sad": "unhappy", "world": "globe", "true": "correct",
    "wrong": "incorrect", "fast": "quick", "slow": "sluggish", "end": "finish", "first": "initial",
    "last": "final", "next": "subsequent", "now": "currently", "thing": "item", "things": "items",
    "way": "manner", "ways": "manners", "work": "function", "works": "functions", "run": "execute",
    "runs": "executes", "included": "contained", "include": "contain", "includes": "contains",
    "available": "obtainable", "different": "distinct",
}
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[A-Za-z']+")


# --------------------------------------------------------------------- the paraphrase set


def paraphrase(text: str, seed: int) -> str:
    """A paraphrase of ``text`` as the module docstring describes."""
    rng = random.Random(seed)
    sentences = [s.strip() for s in _SENTENCE.split(text) if s.strip()]
    if len(sentences) >= 4:
        sentences = [s for s in sentences if rng.random() >= 0.2] or sentences[:1]
    i = 0
    while i + 1 < len(sentences):
        if rng.random() < 0.5:
            sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
            i += 2
        else:
            i += 1

    def substitute(match: re.Match[str]) -> str:
        word = match.group(0)
        other = SYNONYMS.get(word.lower())
        if other is None or rng.random() >= 0.8:
            return word
        return other[0].upper() + other[1:] if word[0].isupper() else other

    return " ".join(_WORD.sub(substitute, s) for s in sentences).lower()


def paraphrase_set(folder: Path) -> tuple[Path, dict[str, str]]:
    """Write ``corpus.jsonl``; return it and ``{paraphrase id: original id}``."""
    with gzip.open(SAMPLE, "rt", encoding="utf-8") as f:
        english = [d for d in map(json.loads, f) if d["lang"] == "en"]
    seen: set[tuple[str, str]] = set()
    base = []
    for doc in english:
        keys = {("text", normalize_for_dedup(doc["text"]))}
        if doc.get("dup_group"):
            keys.add(("group", doc["dup_group"]))
        if not keys & seen:
            base.append(doc)
        seen |= keys
    records = [{"id": d["id"], "text": d["text"], "source": d["source"]} for d in base]
    eligible = [i for i, d in enumerate(base) if len(d["text"].split()) >= 12]
    truth = {}
    for i in eligible[::2]:
        copy = f"{base[i]['id']}#para"
        records.append({"id": copy, "text": paraphrase(base[i]["text"], i), "source": base[i]["source"]})
        truth[copy] = base[i]["id"]
    random.Random(0).shuffle(records)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path, truth


def score_pairs(removed: dict[str, str], truth: dict[str, str], texts: dict[str, str]) -> dict:
    """Precision/recall of ``removed`` ({id: duplicate_of}) against the planted pairs."""
    partner = {**truth, **{original: copy for copy, original in truth.items()}}
    found = {min(doc, partner[doc]) for doc in removed if doc in partner}
    of_partner = sum(1 for doc, of in removed.items() if partner.get(doc) == of)
    by_bin = {}
    for lo, hi in JACCARD_BINS:
        pairs = [(c, o) for c, o in truth.items() if lo <= jaccard(texts[c], texts[o]) < hi]
        hits = sum(1 for c, o in pairs if min(c, o) in found)
        by_bin[f"{lo:.1f}-{min(hi, 1.0):.1f}"] = f"{hits}/{len(pairs)}"
    return {"removed": len(removed), "found": len(found), "planted": len(truth),
            "precision": round(len(found) / len(removed), 4) if removed else 0.0,
            "recall": round(len(found) / len(truth), 4),
            "duplicate_of_is_partner": round(of_partner / len(removed), 4) if removed else 0.0,
            "recall_by_jaccard": by_bin}


def neardup_subset(lang: str | None, limit: int) -> tuple[Path, Path | None]:
    """The near-duplicate corpus, or its first ``limit`` documents in ``lang`` (file order)
    less the members of injected clusters that the limit cuts (so that every cluster is
    whole or absent), written once under BENCH/work/semantic-subsets; returns the input and
    the subset (or None)."""
    source = CORPUS / "neardup.jsonl"
    if not lang and not limit:
        return source, None
    subset = BENCH / "work" / "semantic-subsets" / f"neardup-{lang or 'all'}-{limit or 'all'}.jsonl"
    if not subset.exists():
        languages = {}
        with (CORPUS / "meta.tsv").open(encoding="utf-8") as f:
            next(f)
            for line in f:
                fields = line.rstrip("\n").split("\t")
                languages[fields[1]] = fields[3]
        subset.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        with source.open() as f:
            for line in f:
                if lang is None or languages.get(json.loads(line)["id"]) == lang:
                    kept.append(line)
                if limit and len(kept) == limit:
                    break
        ids = {json.loads(line)["id"] for line in kept}
        with (CORPUS / "dup_clusters.jsonl").open() as f:
            cut = {m for c in map(json.loads, f) if not ids.issuperset(c["members"]) for m in c["members"]}
        subset.write_text("".join(line for line in kept if json.loads(line)["id"] not in cut))
    return subset, subset


def score_neardup(removed_ids: Path, subset: Path | None) -> dict:
    command = [sys.executable, str(SHARED / "bench" / "eval_dedup.py"), str(removed_ids),
               str(CORPUS / "dup_clusters.jsonl"), str(CORPUS / "meta.tsv")]
    if subset is not None:
        command += ["--input", str(subset)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.splitlines()[0])


# --------------------------------------------------------------------- one measured job


def job(step: str, source: str, out: str, workers: int, params: dict) -> None:
    """Run one step on ``source``; write OUT/removed.jsonl ({id: duplicate_of}) and
    OUT/removed_ids.txt; print the job's stats as the last line."""
    import pyarrow.parquet as pq

    from assay import Pipeline
    from assay.steps import step_class

    result = Pipeline([step_class(step)(**params)], name=step).run(source, out, workers=workers,
                                                                    overwrite=True)
    removed: dict[str, str] = {}
    for path in sorted((Path(out) / "rejected").glob("*.parquet")):
        table = pq.read_table(path, columns=["id", "duplicate_of"])
        removed.update(zip(table.column("id").to_pylist(), table.column("duplicate_of").to_pylist(),
                           strict=True))
    (Path(out) / "removed.json").write_text(json.dumps(removed))
    (Path(out) / "removed_ids.txt").write_text("".join(f"{i}\n" for i in removed))
    entry = result.manifest["steps"][-1]
    print(json.dumps({"removed": len(removed), "seconds": entry["seconds"], "fit": entry.get("fit", {}),
                      "balanced": result.manifest["accounting"]["balanced"]}))


def run_job(name: str, results: Path, source: Path, out: Path, workers: int, step: str,
            params: dict) -> tuple[dict, dict[str, str]]:
    record = measure(name, results, source, [sys.executable, __file__, "job", step, str(source), str(out),
                                             str(workers), json.dumps(params)])
    print(f"{name:28s} wall {record['wall_s']:7.1f}s  docs/s {record['docs_per_s']:7.1f}  "
          f"cpu {record['cpu_s']:7.1f}s  peak PSS {record['peak_tree_pss_mb']:6.0f} MB  "
          f"load {record['load_start']:.1f}-{record['load_end']:.1f}", flush=True)
    return record, json.loads((out / "removed.json").read_text())


# --------------------------------------------------------------------- the sweep


def _embed_part(texts: list[str]) -> np.ndarray:
    from assay.steps.select.embedding import shared_encoder

    return shared_encoder().encode(texts, 1, threads=1)  # as the step embeds: exact


def embed_cached(texts: list[str], cache: Path, workers: int) -> np.ndarray:
    """The step's embeddings of ``texts`` (empty texts: zeros), computed once per corpus."""
    if cache.exists():
        return np.load(cache)
    rows = [i for i, t in enumerate(texts) if t.strip()]
    parts = np.array_split(np.array(rows), max(1, 8 * workers))
    with Pool(workers) as pool:
        done = pool.map(_embed_part, [[texts[i] for i in part] for part in parts])
    embeddings = np.zeros((len(texts), 384), dtype=np.float32)
    for part, values in zip(parts, done, strict=True):
        if len(part):
            embeddings[part] = values
    np.save(cache, embeddings)
    return embeddings


def sweep(ids: list[str], texts: list[str], embeddings: np.ndarray, score, pairs: list[tuple[int, int]],
          seed: int = 1) -> list[dict]:
    """Removed ids (scored by ``score``) for each n_clusters factor and eps, as the step
    decides with ``keep: first`` (clusters below max_cluster_size, all documents in k-means),
    and the share of the true ``pairs`` (rows) at or above the threshold that k-means split."""
    from assay.steps.dedup.semantic import greedy_duplicates, kmeans_centroids, nearest_centroid

    valid = np.flatnonzero([bool(t.strip()) for t in texts])
    first, second = np.array(pairs).T
    pair_cos = np.einsum("ij,ij->i", embeddings[first], embeddings[second])
    rows = []
    for factor in SWEEP_K:
        k = max(1, round(factor * math.sqrt(len(valid))))
        started = time.perf_counter()
        labels = np.full(len(ids), -1)
        labels[valid] = nearest_centroid(embeddings[valid], kmeans_centroids(embeddings[valid], k, seed))
        kmeans_s = time.perf_counter() - started
        clusters = [np.flatnonzero(labels == c) for c in np.unique(labels[valid])]  # ascending: keep first
        split = labels[first] != labels[second]
        for eps in SWEEP_EPS:
            started = time.perf_counter()
            removed: dict[str, str] = {}
            for members in clusters:
                duplicate_of, _ = greedy_duplicates(embeddings[members], 1 - eps)
                removed.update({ids[members[i]]: ids[members[of]] for i, of in enumerate(duplicate_of)
                                if of >= 0})
            above = pair_cos >= 1 - eps
            rows.append({"k": k, "eps": eps, "kmeans_s": round(kmeans_s, 2),
                         "pairs_split": round(float((split & above).sum() / max(1, above.sum())), 4),
                         "pairwise_s": round(time.perf_counter() - started, 2),
                         "largest_cluster": max(map(len, clusters)), "removed_ids": removed,
                         **score(removed)})
    return rows


def print_sweep(title: str, rows: list[dict]) -> None:
    print(f"\n{title}\n| n_clusters | eps | removed | precision | recall | true pairs split by k-means "
          "| k-means s | pairwise s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['k']} | {r['eps']} | {r['removed']} | {r['precision']} | {r['recall']} | "
              f"{r['pairs_split']:.1%} | {r['kmeans_s']} | {r['pairwise_s']} |")


# --------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--neardup-lang", help="only the documents in this language (meta.tsv)")
    parser.add_argument("--neardup-docs", type=int, default=0, help="only the first N documents (0: all)")
    parser.add_argument("--sweep", action="store_true", help="also precision/recall for other eps and k")
    parser.add_argument("--skip-neardup", action="store_true")
    args = parser.parse_args()
    from assay.steps.dedup.semantic import SemanticDedupParams

    default_eps = SemanticDedupParams().eps
    tag = time.strftime("semantic-%Y%m%d-%H%M%S")
    results_dir = BENCH / "results" / tag
    results_dir.mkdir(parents=True, exist_ok=True)
    results = results_dir / "runs.jsonl"
    work = BENCH / "work" / tag
    summary: dict = {"workers": args.workers, "eps": default_eps, "load_before": os.getloadavg()}

    corpus, truth = paraphrase_set(work / "paraphrases")
    records = [json.loads(line) for line in corpus.open()]
    texts = {r["id"]: r["text"] for r in records}
    pair_jaccard = [jaccard(texts[c], texts[o]) for c, o in truth.items()]
    print(f"paraphrase set: {len(records)} documents, {len(truth)} planted paraphrases; word 5-gram "
          f"Jaccard of the pairs: quartiles {np.percentile(pair_jaccard, [25, 50, 75]).round(3).tolist()}")
    scores: dict[str, dict] = {}
    for step in ("semantic_dedup", "minhash_dedup"):
        record, removed = run_job(f"{step} paraphrases", results, corpus, work / step, args.workers, step, {})
        scores[step] = {**score_pairs(removed, truth, texts), "docs_per_s": record["docs_per_s"],
                        "cpu_s": record["cpu_s"], "wall_s": record["wall_s"],
                        "load": [record["load_start"], record["load_end"]]}
    summary["paraphrases"] = scores
    print("\nparaphrase set (" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in scores.items()) + ")")

    if not args.skip_neardup:
        source, subset = neardup_subset(args.neardup_lang, args.neardup_docs)
        near: dict[str, dict] = {}
        for step in ("semantic_dedup", "minhash_dedup"):
            record, _ = run_job(f"{step} neardup", results, source, work / f"{step}-neardup", args.workers,
                                step, {})
            near[step] = {**score_neardup(work / f"{step}-neardup" / "removed_ids.txt", subset),
                          "docs_per_s": record["docs_per_s"], "cpu_s": record["cpu_s"],
                          "wall_s": record["wall_s"], "load": [record["load_start"], record["load_end"]]}
        summary["neardup"] = {"input": str(source), **near}
        ratio = near["semantic_dedup"]["docs_per_s"] / near["minhash_dedup"]["docs_per_s"]
        print(f"\nneardup: {json.dumps(near)}\nsemantic_dedup / minhash_dedup docs/s: {ratio:.3f}")

    if args.sweep:
        ids = [r["id"] for r in records]
        emb = embed_cached([texts[i] for i in ids], work / "paraphrases" / "embeddings.npy", args.workers)
        where = {doc: row for row, doc in enumerate(ids)}
        rows = sweep(ids, [texts[i] for i in ids], emb, lambda removed: score_pairs(removed, truth, texts),
                     [(where[o], where[c]) for c, o in truth.items()])
        print_sweep("sweep, paraphrase set", rows)
        check = next(r for r in rows if r["k"] == round(math.sqrt(len(ids))) and r["eps"] == default_eps)
        measured = json.loads((work / "semantic_dedup" / "removed.json").read_text())
        print(f"sweep at the defaults equals the measured run: {check['removed_ids'] == measured}")
        summary["sweep_paraphrases"] = [{k: v for k, v in r.items() if k != "removed_ids"} for r in rows]
        if not args.skip_neardup:
            near_records = [json.loads(line) for line in source.open()]
            near_ids = [r["id"] for r in near_records]
            near_texts = [r["text"] for r in near_records]
            cache = BENCH / "work" / f"semantic-embeddings-{source.stem}-{len(near_ids)}.npy"
            emb = embed_cached(near_texts, cache, args.workers)
            removed_file = work / "sweep_removed_ids.txt"

            def score(removed: dict[str, str]) -> dict:
                removed_file.write_text("".join(f"{i}\n" for i in removed))
                return score_neardup(removed_file, subset)

            where = {doc: row for row, doc in enumerate(near_ids)}
            with (CORPUS / "dup_clusters.jsonl").open() as f:
                clusters = [c["members"] for c in map(json.loads, f) if all(m in where for m in c["members"])]
            rows = sweep(near_ids, near_texts, emb, score,
                         [(where[c[0]], where[m]) for c in clusters for m in c[1:]])
            print_sweep("sweep, near-duplicate corpus", rows)
            summary["sweep_neardup"] = [{k: v for k, v in r.items() if k != "removed_ids"} for r in rows]
    summary["load_after"] = os.getloadavg()
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nResults: {results_dir}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "job":
        job(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), json.loads(sys.argv[6]))
    else:
        main()
