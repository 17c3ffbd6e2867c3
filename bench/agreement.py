"""Decision agreement and speed of assay's quality rule sets against datatrove 0.10.1.

Runs each rule set on its own (not chained) over every document of one or more JSONL
corpora (field ``text``; ``.gz`` allowed), in assay and in datatrove, and prints per rule
set: documents, % of documents with the same decision (kept, or rejected with the same
reason), the disagreements by (assay reason, datatrove reason), and single-process docs/s
of each side with their ratio. "four, separately" adds up the four runs; "four,
together" runs the four rule sets one after the other on each batch (assay) or document
(datatrove) in one process, as a pipeline does: both sides then split each text into
words once (assay's word memo, datatrove's ``split_into_parts`` cache). For C4 it also
compares the cleaned text of the documents both sides keep.

Remaining differences. On both corpora (the bundled sample, 1,219 documents, and the
benchmark corpus, 19,467 documents) every decision agrees and C4's cleaned text is
identical, so no systematic difference is left; these are the ones that could still show:

* Words. datatrove splits words with spaCy's ``blank("en")`` tokenizer; assay's
  ``WordSplitter`` re-implements its algorithm and rule tables and gives the same words on
  all 1.63 M distinct whitespace-separated chunks of the corpus. Its Unicode classes (Latin
  letters by case, "other symbol") come from the running Python's Unicode tables, while
  spaCy hard-codes ranges from an older release, so a symbol or letter added to Unicode
  since then may split differently.
* "IS_ALPHA". datatrove's spaCy wrapper fails on a text containing that string once a
  process has seen it before, and then splits the text with the string deleted; assay
  splits the text as it is (neither corpus contains it).
* Hashing. Repeated n-grams are found by comparing two 31-bit polynomial hashes of their
  text: a false match has a probability of about 2**-62 per pair of n-grams.
* Thresholds of 0. datatrove treats a threshold of 0 as "rule off", assay applies it (both
  sides run with the defaults here).

Usage::

    python bench/agreement.py [CORPUS ...] [--limit N] [--jobs J] [--cache DIR]

``--jobs`` runs datatrove in J worker processes to save wall time; its docs/s is still
the single-process rate (documents over the summed per-worker processing time).
``--cache`` keeps datatrove's decisions per corpus so that reruns only time assay.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import pyarrow as pa

from assay.documents import CORE_SCHEMA, REASON, TEXT
from assay.steps.base import Step
from assay.steps.filters.c4 import C4Quality
from assay.steps.filters.fineweb import FineWebQuality
from assay.steps.filters.gopher_quality import GopherQuality
from assay.steps.filters.gopher_repetition import GopherRepetition
from assay.text.spacy_words import WORDS

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "sample_text.jsonl.gz"
BENCH_CORPUS = Path("/root/.cache/assay-bench/corpus/base.jsonl")
ASSAY_STEPS: dict[str, type[Step]] = {
    "gopher_repetition": GopherRepetition,
    "gopher_quality": GopherQuality,
    "c4_quality": C4Quality,
    "fineweb_quality": FineWebQuality,
}
BATCH = 1000
TOGETHER = "all four"


def load(path: Path, limit: int | None) -> list[str]:
    opener = gzip.open if path.suffix == ".gz" else open
    texts = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])
            if limit is not None and len(texts) >= limit:
                break
    return texts


def digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


# -- datatrove ---------------------------------------------------------------------------


def _datatrove_filter(name: str) -> Any:
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    factories: dict[str, Callable[[], Any]] = {
        "gopher_repetition": GopherRepetitionFilter,
        "gopher_quality": GopherQualityFilter,
        "c4_quality": C4QualityFilter,
        "fineweb_quality": FineWebQualityFilter,
    }
    return factories[name]()


def _datatrove_chunk(args: tuple[str, int, list[str]]) -> tuple[list, list, float]:
    from datatrove.data import Document

    name, offset, texts = args
    f = _datatrove_filter(name)
    reasons: list[str | None] = []
    digests: list[str | None] = []
    start = time.process_time()
    for i, text in enumerate(texts):
        doc = Document(text=text, id=str(offset + i))
        result = f.filter(doc)
        kept = result is True or (isinstance(result, tuple) and result[0])
        reasons.append(None if kept else result[1])
        digests.append(digest(doc.text) if kept and name == "c4_quality" else None)
    return reasons, digests, time.process_time() - start


def _datatrove_together(args: tuple[str, int, list[str]]) -> tuple[list, list, float]:
    """The four filters on each document in turn (datatrove reuses the words it split for
    the first filter in the later ones through its small ``split_into_parts`` cache)."""
    from datatrove.data import Document

    _, offset, texts = args
    filters = [_datatrove_filter(name) for name in ASSAY_STEPS]
    start = time.process_time()
    for i, text in enumerate(texts):
        for f in filters:
            f.filter(Document(text=text, id=str(offset + i)))
    return [], [], time.process_time() - start


def run_datatrove(name: str, texts: list[str], jobs: int) -> tuple[list, list, float]:
    size = max(1, min(200, len(texts) // (4 * jobs) or 1))
    chunks = [(name, i, texts[i : i + size]) for i in range(0, len(texts), size)]
    work = _datatrove_together if name == TOGETHER else _datatrove_chunk
    if jobs > 1:
        with Pool(jobs) as pool:
            parts = pool.map(work, chunks, chunksize=1)
    else:
        parts = [work(c) for c in chunks]
    reasons = [r for p in parts for r in p[0]]
    digests = [d for p in parts for d in p[1]]
    return reasons, digests, sum(p[2] for p in parts)


def cached_datatrove(
    name: str, texts: list[str], corpus: Path, jobs: int, cache: Path | None
) -> tuple[list, list, float]:
    if cache is None:
        return run_datatrove(name, texts, jobs)
    import datatrove

    stat = corpus.stat()
    key = f"{corpus.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{len(texts)}|{name}"
    key += f"|{getattr(datatrove, '__version__', '?')}"
    path = cache / f"{name}-{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"
    if path.exists():
        data = json.loads(path.read_text())
        return data["reasons"], data["digests"], data["seconds"]
    reasons, digests, seconds = run_datatrove(name, texts, jobs)
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"reasons": reasons, "digests": digests, "seconds": seconds}))
    return reasons, digests, seconds


# -- assay -------------------------------------------------------------------------------


def _table(batch: list[str], offset: int) -> pa.Table:
    return pa.table(
        {
            "id": [str(offset + i) for i in range(len(batch))],
            "text": batch,
            "source": ["bench"] * len(batch),
            "url": [None] * len(batch),
            "metadata": [None] * len(batch),
        },
        schema=CORE_SCHEMA,
    )


def run_assay(name: str, texts: list[str]) -> tuple[list, list, float]:
    step = ASSAY_STEPS[name]()
    WORDS.clear()  # every rule set starts with a cold word memo
    reasons: list[str | None] = []
    digests: list[str | None] = []
    seconds = 0.0
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        table = _table(batch, start)
        t0 = time.process_time()
        out = step(table)
        seconds += time.process_time() - t0
        batch_reasons = out.column(REASON).to_pylist()
        reasons += batch_reasons
        if name == "c4_quality":
            new = out.column(TEXT).to_pylist()
            pairs = zip(new, batch_reasons, strict=True)
            digests += [digest(t) if r is None else None for t, r in pairs]
        else:
            digests += [None] * len(batch)
    return reasons, digests, seconds


def run_assay_together(texts: list[str]) -> float:
    """CPU seconds for the four steps on each batch in turn, sharing one word memo."""
    steps = [cls() for cls in ASSAY_STEPS.values()]
    WORDS.clear()
    seconds = 0.0
    for start in range(0, len(texts), BATCH):
        table = _table(texts[start : start + BATCH], start)
        t0 = time.process_time()
        for step in steps:
            step(table)
        seconds += time.process_time() - t0
    return seconds


# -- report ------------------------------------------------------------------------------


def compare(corpus: Path, limit: int | None, jobs: int, cache: Path | None, show: int) -> None:
    texts = load(corpus, limit)
    print(f"\n## {corpus} ({len(texts)} docs, {sum(map(len, texts)) / 1e6:.1f} M chars)\n")
    header = f"{'filter':<18} {'docs':>6} {'agree %':>8} {'assay d/s':>10} {'dtrove d/s':>10}"
    print(header + f" {'ratio':>6}")
    details = []
    total_assay = total_dt = 0.0
    for name in ASSAY_STEPS:
        dt_reasons, dt_digests, dt_seconds = cached_datatrove(name, texts, corpus, jobs, cache)
        a_reasons, a_digests, a_seconds = run_assay(name, texts)
        total_assay += a_seconds
        total_dt += dt_seconds
        same = sum(a == d for a, d in zip(a_reasons, dt_reasons, strict=True))
        diff = Counter(
            (a or "kept", d or "kept") for a, d in zip(a_reasons, dt_reasons, strict=True) if a != d
        )
        pairs = enumerate(zip(a_reasons, dt_reasons, strict=True))
        examples = [i for i, (a, d) in pairs if a != d][:show]
        n = len(texts)
        print(
            f"{name:<18} {n:>6} {100 * same / n:>8.2f} {n / a_seconds:>10.1f}"
            f" {n / dt_seconds:>10.1f} {dt_seconds / a_seconds:>6.1f}"
        )
        text_note = ""
        if name == "c4_quality":
            both = [i for i in range(n) if a_reasons[i] is None and dt_reasons[i] is None]
            same_text = sum(a_digests[i] == dt_digests[i] for i in both)
            text_note = f"; cleaned text identical on {same_text}/{len(both)} docs both keep"
        details.append((name, diff, examples, text_note))
    n = len(texts)
    print(
        f"{'four, separately':<18} {n:>6} {'':>8} {n / total_assay:>10.1f}"
        f" {n / total_dt:>10.1f} {total_dt / total_assay:>6.1f}"
    )
    dt_together = cached_datatrove(TOGETHER, texts, corpus, jobs, cache)[2]
    a_together = run_assay_together(texts)
    print(
        f"{'four, together':<18} {n:>6} {'':>8} {n / a_together:>10.1f}"
        f" {n / dt_together:>10.1f} {dt_together / a_together:>6.1f}"
    )
    for name, diff, examples, text_note in details:
        listed = ", ".join(f"{a} vs {d}: {c}" for (a, d), c in diff.most_common(10))
        print(f"\n{name}: disagreements (assay vs datatrove): {listed or 'none'}{text_note}")
        if examples:
            print(f"  first differing documents (0-based line): {examples}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpora", nargs="*", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="first N documents only")
    parser.add_argument("--jobs", type=int, default=1, help="datatrove worker processes")
    parser.add_argument("--cache", type=Path, default=None, help="datatrove decision cache")
    parser.add_argument("--show", type=int, default=5, help="differing documents to list")
    args = parser.parse_args(argv)
    corpora = args.corpora or [p for p in (SAMPLE, BENCH_CORPUS) if p.exists()]
    print(f"python {sys.version.split()[0]}, pid {os.getpid()}; times are process CPU time")
    for corpus in corpora:
        compare(corpus, args.limit, args.jobs, args.cache, args.show)


if __name__ == "__main__":
    main()
