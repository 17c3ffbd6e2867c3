"""Chat requests to an OpenAI-compatible server, many at once, each answered exactly once.

Requests go out over aiohttp in the OpenAI chat-completions wire format (a JSON body, the
answer's JSON read with orjson). The ``openai`` package was measured first, over its own
aiohttp transport: its request building costs ~1 ms of CPU per request, five times
aiohttp's, and held the client under 1,000 requests/s on two cores (``bench/llm.py``). A
batch of requests is answered from the cache where it can be; the rest are sent with at most
``max_concurrency`` in flight. Rate limits (429, honouring ``Retry-After``), server errors
(5xx), timeouts and lost connections are retried with a doubling backoff, up to
``max_retries``; any other failure (a refused request, a body that is not the API's JSON) is
final. Each request first reserves its place under the spending caps, so a capped run skips
the rest instead of overspending. Every request ends in an :class:`Answer`: its text, or the
reason it has none, which the steps record per document.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from assay.llm.cache import Cached, RequestCache, request_key
from assay.llm.spec import LLMSpec

LLM_ERROR = "llm_error"  # no answer after the retries, or a failure not worth retrying
LLM_BUDGET_SKIPPED = "llm_budget_skipped"  # a spending cap was reached before it was sent
MAX_WAIT_S = 60.0  # the longest wait a Retry-After header may ask for


@dataclass(frozen=True)
class Request:
    key: str  # see :meth:`LLMClient.key`
    messages: list[dict[str, str]]


@dataclass(frozen=True)
class Answer:
    text: str | None
    reason: str | None = None  # None: answered; else LLM_ERROR or LLM_BUDGET_SKIPPED
    error: str | None = None  # what went wrong, for the record
    tokens_in: int = 0
    tokens_out: int = 0
    cached: bool = False


@dataclass
class ClientStats:
    """What a client did, for the manifest."""

    requests: int = 0  # answered by the server
    cache_hits: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)
    latencies_s: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return summarize_counters(self.counters())

    def counters(self) -> dict[str, Any]:
        """These stats as counters that add across tasks (see :func:`summarize_counters`):
        latencies as a histogram of 1/8-octave buckets of milliseconds."""
        buckets = Counter(str(latency_bucket(s)) for s in self.latencies_s)
        return {
            "llm_requests": self.requests, "llm_cache_hits": self.cache_hits,
            "llm_retries": self.retries, "llm_tokens_in": self.tokens_in,
            "llm_tokens_out": self.tokens_out, "llm_cost_usd": self.cost_usd,
            "llm_errors": dict(self.errors), "llm_latency_ms": dict(buckets),
        }


BUCKETS_PER_OCTAVE = 8


def latency_bucket(seconds: float) -> int:
    return int(np.floor(BUCKETS_PER_OCTAVE * np.log2(1.0 + seconds * 1000.0)))


def summarize_counters(counters: dict[str, Any]) -> dict[str, Any]:
    """The manifest's ``llm`` entry of a step from its summed counters: requests, cache hits,
    tokens, cost, errors, and latency p50/p95 (to within a twelfth of their value, the
    histogram's resolution)."""
    histogram = {int(k): int(v) for k, v in counters.get("llm_latency_ms", {}).items()}

    def percentile(q: float) -> float:
        total, seen = sum(histogram.values()), 0
        for bucket in sorted(histogram):
            seen += histogram[bucket]
            if seen >= q * total:  # the bucket's middle, in seconds
                return (2.0 ** ((bucket + 0.5) / BUCKETS_PER_OCTAVE) - 1.0) / 1000.0
        return 0.0

    return {
        "requests": int(counters.get("llm_requests", 0)),
        "cache_hits": int(counters.get("llm_cache_hits", 0)),
        "retries": int(counters.get("llm_retries", 0)),
        "tokens_in": int(counters.get("llm_tokens_in", 0)),
        "tokens_out": int(counters.get("llm_tokens_out", 0)),
        "cost_usd": round(float(counters.get("llm_cost_usd", 0.0)), 6),
        "errors": dict(sorted(counters.get("llm_errors", {}).items())),
        "latency_p50_s": round(percentile(0.5), 4),
        "latency_p95_s": round(percentile(0.95), 4),
    }


class LLMClient:
    """Answers batches of chat requests for one recipe's ``llm:`` block."""

    def __init__(self, spec: LLMSpec, cache: RequestCache | None = None) -> None:
        self.spec = spec
        self.cache = cache
        self.stats = ClientStats()
        self._sent = 0  # without a cache, the caps count this process's requests only
        self._spent = 0.0

    def take_stats(self) -> ClientStats:
        """The stats since the last call, and a fresh start."""
        stats, self.stats = self.stats, ClientStats()
        return stats

    @property
    def params(self) -> dict[str, Any]:
        """The sampling parameters sent with every request (part of each request's key)."""
        s = self.spec
        return {"temperature": s.temperature, "seed": s.seed, "max_tokens": s.max_tokens}

    def key(self, messages: list[dict[str, str]], doc_id: str, sample: int = 0) -> str:
        return request_key(self.spec.model, messages, self.params, doc_id, sample)

    def complete(self, requests: Sequence[Request]) -> list[Answer]:
        """An answer for every request, in order."""
        cached = self.cache.get_many(r.key for r in requests) if self.cache else {}
        todo = list({r.key: r for r in requests if r.key not in cached}.values())  # each key once
        if not todo:
            sent = []
        elif self.spec.backend == "transformers":
            sent = self._generate_here(todo)
        else:
            sent = asyncio.run(self._send_all(todo))
        by_key = dict(zip((r.key for r in todo), sent, strict=True))
        answers = []
        for r in requests:
            hit = cached.get(r.key)
            if hit is not None:
                self.stats.cache_hits += 1
                answers.append(Answer(hit.text, tokens_in=hit.tokens_in, tokens_out=hit.tokens_out,
                                      cached=True))
            else:
                answers.append(by_key[r.key])
        return answers

    def _generate_here(self, todo: Sequence[Request]) -> list[Answer]:
        """Answer with the model in this process (``backend: transformers``)."""
        from assay.llm.local import generate

        allowed = [self._reserve() for _ in todo]
        asked = [r for r, ok in zip(todo, allowed, strict=True) if ok]
        try:
            made = generate(self.spec, [r.messages for r in asked]) if asked else []
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory, a prompt past the context
            made = None
            failure = _describe(exc)
        answers: dict[str, Answer] = {}
        for i, request in enumerate(asked):
            if made is None:
                answers[request.key] = self._failed(failure)
            else:
                answers[request.key] = self._answered(request, made[i].text, made[i].tokens_in,
                                                      made[i].tokens_out, made[i].seconds)
        skipped = Answer(None, LLM_BUDGET_SKIPPED, "max_requests or max_cost_usd reached")
        if len(asked) < len(todo):
            self.stats.errors[LLM_BUDGET_SKIPPED] += len(todo) - len(asked)
        return [answers.get(r.key, skipped) for r in todo]

    async def _send_all(self, todo: Sequence[Request]) -> list[Answer]:
        import aiohttp

        spec = self.spec
        assert spec.base_url is not None
        headers = {"Content-Type": "application/json"}
        api_key = os.environ.get(spec.api_key_env, "") if spec.api_key_env else ""
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        url = spec.base_url.rstrip("/") + "/chat/completions"
        gate = asyncio.Semaphore(spec.max_concurrency)
        connector = aiohttp.TCPConnector(limit=spec.max_concurrency)
        timeout = aiohttp.ClientTimeout(total=spec.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, headers=headers) as session:
            return list(await asyncio.gather(*(self._send(session, url, gate, r) for r in todo)))

    async def _send(self, session: Any, url: str, gate: asyncio.Semaphore, request: Request) -> Answer:
        import aiohttp

        s = self.spec
        body = orjson.dumps({"model": s.model, "messages": request.messages, "temperature": s.temperature,
                             "seed": s.seed, "max_tokens": s.max_tokens})
        async with gate:
            if not self._reserve():
                self.stats.errors[LLM_BUDGET_SKIPPED] += 1
                return Answer(None, LLM_BUDGET_SKIPPED, "max_requests or max_cost_usd reached")
            for attempt in range(s.max_retries + 1):
                started = time.monotonic()
                wait = s.backoff_s * 2**attempt
                try:
                    async with session.post(url, data=body) as response:
                        status, raw = response.status, await response.read()
                        wait = _retry_after(response.headers.get("Retry-After"), wait)
                except (TimeoutError, aiohttp.ClientError) as exc:  # timeouts, lost connections, cut bodies
                    problem = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}".rstrip(": ")
                else:
                    if status == 200:
                        try:
                            return self._read(request, orjson.loads(raw), time.monotonic() - started)
                        except orjson.JSONDecodeError:
                            return self._failed(f"the answer is not JSON: {_excerpt(raw)}")
                    problem = f"HTTP {status}: {_excerpt(raw)}"
                    if status != 429 and status < 500:  # refused: asking again will not help
                        return self._failed(problem)
                if attempt == s.max_retries:
                    return self._failed(f"no answer after {attempt + 1} tries: {problem}")
                self.stats.retries += 1
                await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    def _read(self, request: Request, answer: Any, latency: float) -> Answer:
        """The text and token counts of a chat completion's JSON, or the failure."""
        try:
            text = answer["choices"][0]["message"]["content"]
        except (TypeError, KeyError, IndexError):
            text = None
        if not isinstance(text, str):
            return self._failed("the answer holds no text")
        usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
        tokens_in, tokens_out = _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))
        return self._answered(request, text, tokens_in, tokens_out, latency)

    def _answered(self, request: Request, text: str, tokens_in: int, tokens_out: int,
                  latency: float) -> Answer:
        cost = self.spec.cost(tokens_in, tokens_out)
        stats = self.stats
        stats.requests += 1
        stats.tokens_in += tokens_in
        stats.tokens_out += tokens_out
        stats.cost_usd += cost
        stats.latencies_s.append(latency)
        self._spent += cost
        if self.cache is not None:
            self.cache.put(request.key, Cached(text, tokens_in, tokens_out))
            self.cache.spend(cost)
        return Answer(text, tokens_in=tokens_in, tokens_out=tokens_out)

    def _failed(self, error: str) -> Answer:
        self.stats.errors[LLM_ERROR] += 1
        return Answer(None, LLM_ERROR, error)

    def _reserve(self) -> bool:
        s = self.spec
        if s.max_requests is None and s.max_cost_usd is None:
            return True
        if self.cache is not None:
            return self.cache.reserve(s.max_requests, s.max_cost_usd)
        if (s.max_requests is not None and self._sent >= s.max_requests) or (
                s.max_cost_usd is not None and self._spent >= s.max_cost_usd):
            return False
        self._sent += 1
        return True


def _count(value: Any) -> int:
    """A token count from a server's usage block (0 where it gives none, or not a number)."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0 else 0


def _retry_after(header: str | None, backoff: float) -> float:
    """The server's Retry-After in seconds where it gives one (capped), else the backoff."""
    try:
        return min(MAX_WAIT_S, max(0.0, float(header))) if header else backoff
    except ValueError:  # an HTTP date: not worth parsing for a retry
        return backoff


def _excerpt(raw: bytes) -> str:
    """The start of a body, for an error message: the API's error message where it has one."""
    try:
        message = orjson.loads(raw)["error"]["message"]
    except (orjson.JSONDecodeError, TypeError, KeyError):
        message = raw[:300].decode("utf-8", "replace")
    return " ".join(str(message).split())[:300]


def _describe(exc: Exception) -> str:
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}" + (f": {text}" if text else "")
