"""Proxy scoring throughput: assay's per-document scores (loss, Min-K%, Min-K%++) against a
bare PyTorch forward loop over the same batches, on the CPU.

The first ``--documents`` documents of the benchmark corpus are tokenized once with a
byte-level BPE trained on them (``--vocab`` ids). For each model shape (``--models``, e.g.
``2x64``), a GPT of that shape (random weights: speed does not depend on them) scores them,
``--reps`` times, interleaved, with PyTorch on ``--threads`` threads:

- ``bare``: the windows and length batches assay cuts (``document_windows``,
  ``length_batches``), built before the clock starts, then ``model(x)`` and a per-token
  cross-entropy per batch: the least any scorer must do;
- ``assay``: :func:`assay.train.score.token_scores` on the same token ids (windows,
  batches, the forward, log-softmax, the next-token distribution's mean and deviation for
  Min-K%++, and per-document arrays);
- ``assay+tokenize``: :func:`assay.train.score.document_scores` on the texts (tokenizing
  included; the ``proxy_score`` step's work per batch).

Prints docs/s and tokens/s (medians), CPU seconds, and the ratios to ``bare`` with the load
average. usage: python bench/proxy_score.py [--documents 150] [--reps 3] [--threads 1]
[--models 2x64 4x128] [--vocab 2048] [--context 256]
env: BENCH_HOME (default ~/.cache/assay-bench)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from harness import CORPUS

from assay.prepare.tokenizer import Encoder, train_encoder
from assay.train.evaluate import document_windows, length_batches
from assay.train.model import GPT, shape_for
from assay.train.score import MAX_LOGIT_VALUES, ProxyRun, document_scores, token_scores


def bare_batches(documents: list[np.ndarray], eos: int, context: int, vocab: int) -> list[tuple]:
    windows = [w for d in documents for w in document_windows(d, eos, context)]
    lengths = np.array([y.size for _, y in windows], dtype=np.int64)
    out = []
    for rows in length_batches(lengths, max(context, MAX_LOGIT_VALUES // vocab)):
        width = int(lengths[rows].max())
        x = np.zeros((rows.size, width), dtype=np.int64)
        y = np.full((rows.size, width), -100, dtype=np.int64)
        for r, i in enumerate(rows.tolist()):
            x[r, : lengths[i]], y[r, : lengths[i]] = windows[i]
        out.append((torch.from_numpy(x), torch.from_numpy(y)))
    return out


def bare(model: GPT, batches: list[tuple]) -> float:
    total = 0.0
    with torch.no_grad():
        for x, y in batches:
            logits = model(x)
            total += float(F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), ignore_index=-100,
                                           reduction="sum"))
    return total


def bench_model(shape: str, args: argparse.Namespace, texts: list[str], documents: list[np.ndarray],
                encoder: Encoder) -> dict:
    """The three scorers on one model shape, interleaved; medians and ratios, printed."""
    torch.manual_seed(0)
    model = GPT(shape_for(shape, args.vocab, args.context)).eval()
    run = ProxyRun(Path("bench"), model, encoder, encoder.eos_id)
    batches = bare_batches(documents, encoder.eos_id, args.context, args.vocab)
    jobs = {"bare": lambda: bare(model, batches),
            "assay": lambda: token_scores(run, documents),
            "assay+tokenize": lambda: document_scores(run, texts, 0.2)}
    times: dict[str, list[tuple[float, float, float]]] = {name: [] for name in jobs}
    for rep in range(args.reps):
        for name, job in (jobs.items() if rep % 2 == 0 else reversed(jobs.items())):
            load = os.getloadavg()[0]
            wall, cpu = time.perf_counter(), time.process_time()
            job()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu, load))
    print(f"\nmodel {shape}")
    n_tokens = sum(d.size for d in documents)
    base_wall = statistics.median(t[0] for t in times["bare"])
    base_cpu = statistics.median(t[1] for t in times["bare"])
    entry = {}
    for name, runs in times.items():
        wall = statistics.median(t[0] for t in runs)
        cpu = statistics.median(t[1] for t in runs)
        loads = [t[2] for t in runs]
        entry[name] = {"wall_s": wall, "cpu_s": cpu, "docs_per_s": len(texts) / wall,
                       "tokens_per_s": n_tokens / wall, "of_bare_wall": base_wall / wall,
                       "of_bare_cpu": base_cpu / cpu, "load": [min(loads), max(loads)]}
        print(f"  {name:15} {len(texts) / wall:9,.0f} docs/s {n_tokens / wall:11,.0f} tokens/s  "
              f"CPU {cpu:6.2f} s  {base_wall / wall:5.1%} of bare's throughput (CPU {base_cpu / cpu:5.1%})  "
              f"load {min(loads):.2f}-{max(loads):.2f}")
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=150)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=["2x64", "4x128"])
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--context", type=int, default=256)
    args = parser.parse_args()
    with (CORPUS / "base.jsonl").open() as lines:
        texts = [json.loads(line)["text"] for _, line in zip(range(args.documents), lines, strict=False)]
    torch.set_num_threads(args.threads)
    encoder = train_encoder(texts, args.vocab)
    documents = [np.append(t.astype(np.int64), encoder.eos_id) for t in encoder.encode(texts)]
    n_tokens = sum(d.size for d in documents)
    print(f"{len(texts):,} documents, {n_tokens:,} tokens (vocabulary {args.vocab:,}, "
          f"context {args.context}), {args.threads} thread(s)")
    results: dict = {"documents": len(texts), "tokens": n_tokens, "threads": args.threads, "models": {}}
    for shape in args.models:
        results["models"][shape] = bench_model(shape, args, texts, documents, encoder)
    out = Path(os.environ.get("BENCH_HOME", Path.home() / ".cache" / "assay-bench")) / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"proxy-score-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"\nResults: {path}")


if __name__ == "__main__":
    main()
