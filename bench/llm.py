"""The LLM client against datatrove's InferenceRunner, on the same server, prompts and concurrency.

(a) ``instant``: an OpenAI-style chat server that answers at once (uvicorn + a bare ASGI
app, in its own process) measures what each client costs per request. Three sides, each
in a subprocess of its own, interleaved ``--reps`` times (order rotating each rep):
``assay-client`` (``LLMClient.complete`` on all requests, no cache), ``assay-run`` (``assay
run`` of an ``llm_rate`` recipe on the same documents, one worker: reading, the step, the
request cache, writing Parquet and the manifest included), and ``datatrove``
(``InferenceRunner`` with an ``endpoint`` server, the same messages from a rollout
function, its JSONL writer). Per side: requests per second of wall time, and the client
process's CPU seconds per 1,000 requests (user + system of the subprocess and its
children: the server's CPU is not counted).

(b) ``model``: the same with SmolLM2-135M-Instruct behind ``transformers serve`` (the test
suite's server, ``tests/llm/smollm2.py``), fewer documents, plus ``server-alone``: a bare
asyncio load generator (httpx, no parsing beyond the JSON) at the same concurrency, which
is the server's own limit the clients are held to.

usage: python bench/llm.py instant [--requests 4000] [--concurrency 64] [--reps 3]
       python bench/llm.py model [--requests 48] [--concurrency 16] [--max-tokens 48] [--reps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "Rate this page from 0 to 5, then write 'Educational score: N'.\n\n"


# ----------------------------------------------------------------- the instant server

_ANSWER = json.dumps({
    "id": "x", "object": "chat.completion", "created": 0, "model": "instant",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant", "content": "Fine.\nEducational score: 3"}}],
    "usage": {"prompt_tokens": 40, "completion_tokens": 6, "total_tokens": 46},
}).encode()
_MODELS = json.dumps({"object": "list", "data": [{"id": "instant", "object": "model"}]}).encode()


async def instant_app(scope, receive, send):  # a bare ASGI app: every request answered at once
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    body = _MODELS if scope["path"].endswith("/models") else _ANSWER
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_instant(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c",
         f"import sys; sys.path.insert(0, {str(ROOT / 'bench')!r}); import uvicorn, llm; "
         f"uvicorn.run(llm.instant_app, host='127.0.0.1', port={port}, log_level='error', access_log=False)"],
        start_new_session=True)
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the instant server did not start")


# ----------------------------------------------------------------- the sides

def documents(n: int) -> list[dict]:
    import gzip

    texts = [json.loads(line)["text"] for line in gzip.open(ROOT / "data/sample/sample_text.jsonl.gz", "rt")]
    return [{"id": f"d{i:06d}", "text": texts[i % len(texts)][:1500] + f" #{i}"} for i in range(n)]


def side_assay_client(docs: list[dict], base_url: str, model: str, concurrency: int, max_tokens: int) -> None:
    from assay.llm.client import LLMClient, Request
    from assay.llm.spec import LLMSpec

    client = LLMClient(LLMSpec(base_url=base_url, model=model, max_concurrency=concurrency,
                               max_tokens=max_tokens, timeout_s=600))
    requests = []
    for d in docs:
        messages = [{"role": "user", "content": PROMPT + d["text"]}]
        requests.append(Request(client.key(messages, d["id"]), messages))
    answers = client.complete(requests)
    assert all(a.text for a in answers), [a.error for a in answers if not a.text][:3]


def side_assay_run(docs: list[dict], base_url: str, model: str, concurrency: int, max_tokens: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-llm-"))
    try:
        (work / "docs.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        rubric = work / "rubric.yaml"
        rubric.write_text(json.dumps({"name": "bench", "prompt": PROMPT + "{text}", "max_chars": 100_000,
                                      "scores": {"score": {"min": 0, "max": 5,
                                                           "pattern": r"Educational score:\s*(\d)"}}}))
        (work / "r.yaml").write_text(json.dumps({
            "name": "bench", "input": {"path": str(work / "docs.jsonl")}, "output": str(work / "out"),
            "executor": {"workers": 1, "shard_mb": 1024},
            "llm": {"base_url": base_url, "model": model, "max_concurrency": concurrency,
                    "max_tokens": max_tokens, "timeout_s": 600},
            "steps": [{"llm_rate": {"rubric": str(rubric)}}]}))
        subprocess.run([sys.executable, "-m", "assay", "run", str(work / "r.yaml")], check=True,
                       stdout=subprocess.DEVNULL)
        llm = json.loads((work / "out/manifest.json").read_text())["steps"][0]["llm"]
        assert llm["requests"] == len(docs) and not llm["errors"], llm
    finally:
        shutil.rmtree(work, ignore_errors=True)


def side_datatrove(docs: list[dict], base_url: str, model: str, concurrency: int, max_tokens: int) -> None:
    import logging

    from datatrove.data import Document
    from datatrove.pipeline.inference.run_inference import InferenceConfig, InferenceRunner
    from datatrove.pipeline.writers import JsonlWriter
    from loguru import logger

    logger.remove()
    logging.disable(logging.WARNING)

    async def rollout(document, generate):
        result = await generate({"messages": [{"role": "user", "content": PROMPT + document.text}],
                                 "max_tokens": max_tokens, "temperature": 0})
        return result.text

    work = tempfile.mkdtemp(prefix="bench-dt-")
    try:
        config = InferenceConfig(server_type="endpoint", model_name_or_path=model,
                                 endpoint_url=base_url.removesuffix("/v1"), use_chat=True,
                                 max_concurrent_generations=concurrency, metric_interval=10**6)
        runner = InferenceRunner(rollout, config, JsonlWriter(work))
        runner.run((Document(text=d["text"], id=d["id"]) for d in docs), rank=0, world_size=1)
        written = sum(1 for f in Path(work).rglob("*.jsonl*") for _ in _lines(f))
        assert written == len(docs), written
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _lines(path: Path):
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        yield from f


def side_server_alone(docs: list[dict], base_url: str, model: str, concurrency: int, max_tokens: int) -> None:
    import asyncio

    import httpx

    async def main() -> None:
        gate = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
            async def one(d: dict) -> None:
                async with gate:
                    r = await client.post(f"{base_url}/chat/completions", json={
                        "model": model, "max_tokens": max_tokens, "temperature": 0,
                        "messages": [{"role": "user", "content": PROMPT + d["text"]}]})
                    r.raise_for_status()
                    json.loads(r.content)

            await asyncio.gather(*(one(d) for d in docs))

    asyncio.run(main())


SIDES = {"assay-client": side_assay_client, "assay-run": side_assay_run, "datatrove": side_datatrove,
         "server-alone": side_server_alone}


def run_side(name: str, args: argparse.Namespace, base_url: str, model: str) -> tuple[float, float]:
    """Wall seconds and client CPU seconds of one side, in a fresh subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "_side", name, base_url, model, str(args.requests),
                    str(args.concurrency), str(args.max_tokens)], check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def bench(args: argparse.Namespace, base_url: str, model: str, sides: list[str]) -> None:
    print(f"{args.requests} requests, concurrency {args.concurrency}, max_tokens {args.max_tokens}, "
          f"{args.reps} interleaved reps; load {os.getloadavg()[0]:.2f}", flush=True)
    results: dict[str, list[tuple[float, float]]] = {s: [] for s in sides}
    for rep in range(args.reps):
        order = sides[rep % len(sides):] + sides[:rep % len(sides)]
        for name in order:
            wall, cpu = run_side(name, args, base_url, model)
            results[name].append((wall, cpu))
            print(f"rep {rep} {name:13s} {args.requests / wall:8.1f} req/s  wall {wall:7.2f}s  "
                  f"client CPU {cpu:7.2f}s ({1000 * cpu / args.requests:.2f} s/1k req)  "
                  f"load {os.getloadavg()[0]:.2f}", flush=True)
    print("\nmedians:")
    med = {s: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
           for s, r in results.items()}
    for name, (wall, cpu) in med.items():
        print(f"  {name:13s} {args.requests / wall:8.1f} req/s  "
              f"client CPU {1000 * cpu / args.requests:.2f} s/1k req")
    reference = "datatrove" if "datatrove" in med else None
    if reference:
        for name in med:
            if name.startswith("assay"):
                print(f"  {name} vs datatrove: {med[reference][0] / med[name][0]:.2f}x faster (wall), "
                      f"{med[reference][1] / med[name][1]:.2f}x less client CPU")
    if "server-alone" in med:
        for name in med:
            if name != "server-alone":
                share = 100 * med["server-alone"][0] / med[name][0]
                print(f"  {name}: {share:.1f}% of the server's own limit")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_side":
        name, base_url, model, n, concurrency, max_tokens = sys.argv[2:8]
        SIDES[name](documents(int(n)), base_url, model, int(concurrency), int(max_tokens))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", choices=["instant", "model"])
    parser.add_argument("--requests", type=int)
    parser.add_argument("--concurrency", type=int)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    sides = ["assay-client", "assay-run", "datatrove"]
    if args.mode == "instant":
        args.requests = args.requests or 4000
        args.concurrency = args.concurrency or 64
        port = free_port()
        server = start_instant(port)
        try:
            bench(args, f"http://127.0.0.1:{port}/v1", "instant", sides)
        finally:
            server.terminate()
            server.wait()
        return
    args.requests = args.requests or 48
    args.concurrency = args.concurrency or 16
    sys.path.insert(0, str(ROOT / "tests" / "llm"))
    from smollm2 import ModelServer, model_folder

    server = ModelServer(model_folder(), Path(tempfile.mkdtemp()) / "serve.log").start()
    try:
        bench(args, server.base_url, server.model, ["server-alone", *sides])
    finally:
        server.stop()


if __name__ == "__main__":
    main()
