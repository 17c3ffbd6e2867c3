"""Training throughput: assay's trainer against a minimal plain PyTorch loop, in one run.

Both train the same :class:`assay.train.model.GPT` with the same batch (sequences x
context), AdamW (fused, same parameter groups), gradient clipping at 1.0 and the same
autocast precision, on the same prepared shards. The plain loop is the practical limit on
this machine, the inner loop of nanoGPT's ``train.py``: random windows of the memory-mapped
token file, forward, backward, clip, step. assay's trainer adds what it needs (a learning
rate from the schedule each step, batches as a pure function of the step, loss and
gradient-norm accumulation, a JSONL log record, progress) and must stay within 5% of it.

Runs are interleaved (A B B A ...) so both see the same machine load; each measurement
times ``--steps`` steps after ``--warmup`` steps. The medians of tokens/s and their ratio
are printed with the load average before and after (the machine may be shared: quote the
ratio, measured side by side, not the absolute numbers).

    .venv/bin/python bench/train.py                      # 1M and 5M non-embedding parameters
    .venv/bin/python bench/train.py --sizes 1m --reps 3 --steps 10 --shards out/sample-shards

Without ``--shards``, small shards of the bundled sample are prepared once into
``out/bench-train-shards`` (a 4,096-id BPE trained on it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from assay.prepare import parse_prepare_recipe, prepare
from assay.prepare.reader import Shards
from assay.train.model import GPT
from assay.train.trainer import TrainConfig, Trainer, make_optimizer, resolve_precision

ROOT = Path(__file__).resolve().parents[1]


def bench_shards(path: Path) -> Path:
    """Shards of the bundled sample (built once)."""
    if (path / "manifest.json").exists():
        return path
    recipe = parse_prepare_recipe(f"""
name: bench-train
output: "{path}"
tokenizer: {{train: {{vocab_size: 4096, max_mb: 16}}}}
input: "{ROOT / 'data' / 'sample' / 'sample_text.jsonl.gz'}"
packing: {{method: concat, context: 256}}
""")
    return prepare(recipe, overwrite=True, log=lambda m: print(m, file=sys.stderr)).output


def plain_loop(config: TrainConfig, trainer: Trainer, steps: int, warmup: int) -> float:
    """Seconds for ``steps`` steps of a minimal loop (after ``warmup`` untimed ones) on the
    same model shape, batch and optimizer as ``trainer``."""
    torch.manual_seed(config.seed + 1)
    model = GPT(trainer.plan.model)
    optimizer = make_optimizer(model, config, trainer.plan.lr)
    data = trainer.shards.concat_files(trainer.shards.phases[0])[0].tokens  # np.memmap, as nanoGPT
    block, batch = trainer.plan.context, trainer.plan.batch_size
    dtype = trainer.autocast

    def get_batch() -> tuple[torch.Tensor, torch.Tensor]:  # nanoGPT's get_batch
        ix = torch.randint(len(data) - block - 1, (batch,))
        x = torch.stack([torch.from_numpy(data[i: i + block].astype(np.int64)) for i in ix.tolist()])
        y = torch.stack([torch.from_numpy(data[i + 1: i + 1 + block].astype(np.int64)) for i in ix.tolist()])
        return x, y

    start = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        x, y = get_batch()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return time.perf_counter() - start


def assay_loop(config: TrainConfig, steps: int, warmup: int) -> float:
    """Seconds for ``steps`` steps of assay's trainer (after ``warmup`` untimed ones)."""
    trainer = Trainer(config)
    trainer.train(until=warmup)
    start = time.perf_counter()
    trainer.train(until=warmup + steps)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=Path, default=None)
    parser.add_argument("--sizes", default="1m,5m", help="model presets or LAYERSxWIDTH, comma-separated")
    parser.add_argument("--context", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8, help="sequences per step")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads; on a shared machine two threads wait on each other")
    parser.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    shards = bench_shards(args.shards or ROOT / "out" / "bench-train-shards")
    vocab = Shards(shards).manifest["tokenizer"]["vocab_size"]
    load_before = os.getloadavg()
    print(f"torch {torch.__version__}, {args.threads} threads, vocab {vocab:,}, context {args.context}, "
          f"batch {args.batch} x {args.context} = {args.batch * args.context:,} tokens/step, "
          f"{args.steps} timed steps after {args.warmup}, {args.reps} reps; "
          f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}")
    rows = []
    for size in args.sizes.split(","):
        total = args.warmup + args.steps
        config = TrainConfig(str(shards), model=size, context=args.context,
                             tokens=total * args.batch * args.context, batch_tokens=args.batch * args.context,
                             lr=1e-3, precision=args.precision, log_every=10, threads=args.threads)
        probe = Trainer(config)
        precision = "bf16" if resolve_precision(args.precision, torch.device("cpu")) else "fp32"
        tokens = args.steps * args.batch * args.context
        speeds: dict[str, list[float]] = {"assay": [], "plain": []}
        for rep in range(args.reps):
            order = ["assay", "plain"] if rep % 2 == 0 else ["plain", "assay"]
            for which in order:
                seconds = (assay_loop(config, args.steps, args.warmup) if which == "assay"
                           else plain_loop(config, probe, args.steps, args.warmup))
                speeds[which].append(tokens / seconds)
        a, p = statistics.median(speeds["assay"]), statistics.median(speeds["plain"])
        paired = statistics.median(x / y for x, y in zip(speeds["assay"], speeds["plain"], strict=True))
        n = probe.plan.params["non_embedding"]
        rows.append((size, n, precision, a, p, a / p, paired))
        print(f"{size}: N = {n:,} non-embedding ({precision}); assay {a:,.0f} tokens/s, plain {p:,.0f} "
              f"tokens/s, ratio of medians {a / p:.3f}, median paired ratio {paired:.3f} "
              f"(assay {', '.join(f'{x:,.0f}' for x in speeds['assay'])}; "
              f"plain {', '.join(f'{x:,.0f}' for x in speeds['plain'])})", flush=True)
    load_after = os.getloadavg()
    print(f"load average after: {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}")
    print("| model | N (non-embedding) | precision | assay tokens/s | plain loop tokens/s | assay / plain |")
    print("|---|---|---|---|---|---|")
    for size, n, precision, a, p, ratio, _ in rows:
        print(f"| {size} | {n:,} | {precision} | {a:,.0f} | {p:,.0f} | {ratio:.1%} |")


if __name__ == "__main__":
    main()
