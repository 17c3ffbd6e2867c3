"""``backend: transformers``: a chat model run in this process, for small jobs with no server.

The model (a folder, or a ``.gguf`` file that transformers dequantises) is loaded once per
worker process. Requests are answered in batches of ``max_concurrency``, sorted by prompt
length so a batch pads little, left-padded, with the model's chat template; temperature 0
decodes greedily, a higher one samples with torch seeded by ``seed`` per batch. Padding can
move a logit in its last bits, so an answer may depend on its batch; once given, the request
cache keeps it for every later run. A GPU is used when torch sees one. For throughput, serve
the model (vLLM, SGLang, ``transformers serve``) and use ``backend: openai``: docs/llm.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from assay.errors import AssayError
from assay.llm.spec import LLMSpec


class LocalModelError(AssayError):
    """The local model cannot be loaded (missing extra, missing files)."""


@dataclass(frozen=True)
class Generated:
    text: str
    tokens_in: int
    tokens_out: int
    seconds: float  # how long its batch took: the request's latency


@cache
def _load(model: str) -> tuple[Any, Any, Any]:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise LocalModelError("backend transformers needs torch and transformers: "
                              "pip install 'assay[llm-local]'") from None
    path = Path(model)
    if not path.exists():
        raise LocalModelError(f"llm.model {model}: no such model folder or .gguf file")
    where, options = (str(path.parent), {"gguf_file": path.name}) if path.is_file() else (str(path), {})
    options["local_files_only"] = True  # a local folder or file: never the hub
    tokenizer = AutoTokenizer.from_pretrained(where, **options)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    network = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **options).to(device).eval()
    return tokenizer, network, torch


def generate(spec: LLMSpec, prompts: Sequence[list[dict[str, str]]]) -> list[Generated]:
    """An answer to each chat in ``prompts``, in order."""
    tokenizer, network, torch = _load(spec.model)
    encoded = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=True) for m in prompts]
    encoded = [e["input_ids"] if isinstance(e, dict) or hasattr(e, "keys") else e for e in encoded]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    out: list[Generated | None] = [None] * len(prompts)
    for start in range(0, len(order), spec.max_concurrency):
        batch = order[start:start + spec.max_concurrency]
        padded = tokenizer.pad({"input_ids": [encoded[i] for i in batch]}, return_tensors="pt")
        padded = padded.to(network.device)
        if spec.temperature == 0:
            options: dict[str, Any] = {"do_sample": False}
        else:
            torch.manual_seed((spec.seed or 0) + start)
            options = {"do_sample": True, "temperature": spec.temperature}
        started = time.monotonic()
        with torch.no_grad():
            result = network.generate(**padded, max_new_tokens=spec.max_tokens,
                                      pad_token_id=tokenizer.pad_token_id, **options)
        seconds = time.monotonic() - started
        width = padded["input_ids"].shape[1]
        for row, i in enumerate(batch):
            new = result[row, width:]
            tokens_out = int((new != tokenizer.pad_token_id).sum())
            text = tokenizer.decode(new, skip_special_tokens=True)
            out[i] = Generated(text, len(encoded[i]), tokens_out, seconds)
    return [g for g in out if g is not None]
