"""WRAP rephrasing of sample documents on a GPU: throughput and cost per million tokens.

Runs ``assay run`` with one ``llm_rephrase`` step (one style, ``medium``) over the first
``--docs`` documents of the bundled sample with ``llm: {backend: transformers}`` (the model
in the worker process, on CUDA when torch sees it), in one shard so the batches are cut
from every chunk sorted by length. Prints requests, output tokens, the step's seconds,
output tokens/s, and USD per million output tokens per USD of GPU-hour price
(``1e6 / (3600 x tokens/s)``: multiply by your GPU's hourly price). With ``--out`` the
manifest is copied there.

usage: python bench/wrap_gpu.py --model MODEL [--docs 1000] [--batch 256] [--max-tokens 256]
       [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="a model folder or a .gguf file")
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--out")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wrap-gpu-"))
    with gzip.open(ROOT / "data/sample/sample_text.jsonl.gz", "rt", encoding="utf-8") as lines:
        docs = [json.loads(line) for _, line in zip(range(args.docs), lines, strict=False)]
    (work / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (work / "wrap.yaml").write_text(json.dumps({
        "name": "wrap-gpu", "input": {"path": str(work / "docs.jsonl"), "id_policy": "prefix_source"},
        "output": str(work / "out"), "executor": {"workers": 1, "shard_mb": 256},
        "llm": {"backend": "transformers", "model": args.model, "max_concurrency": args.batch,
                "max_tokens": args.max_tokens},
        "steps": [{"llm_rephrase": {"styles": ["medium"]}}]}))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "assay", "run", str(work / "wrap.yaml")], check=True)
    wall = time.perf_counter() - started
    manifest = json.loads((work / "out/manifest.json").read_text())
    step = manifest["steps"][0]
    llm = step["llm"]
    rate = llm["tokens_out"] / step["seconds"]
    device = "cpu"
    try:
        import torch

        device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    except ImportError:
        pass
    print(json.dumps({
        "device": device, "documents": step["docs_in"], "generated": step.get("generated", 0),
        "requests": llm["requests"], "errors": llm["errors"], "tokens_in": llm["tokens_in"],
        "tokens_out": llm["tokens_out"], "step_seconds": step["seconds"], "wall_seconds": round(wall, 1),
        "output_tokens_per_s": round(rate, 1),
        "usd_per_million_output_tokens_per_usd_gpu_hour": round(1e6 / (3600 * rate), 4),
    }, indent=1))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        shutil.copy(work / "out/manifest.json", Path(args.out) / "wrap-manifest.json")
        generated = sorted((work / "out/generated").glob("*.parquet"))
        if generated:
            shutil.copy(generated[0], Path(args.out) / "generated-sample.parquet")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
