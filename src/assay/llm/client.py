"""Chat requests to an OpenAI-compatible server, many at once, each answered exactly once.

Built on the ``openai`` package's async client (its own retries off: which errors are worth
a retry is decided here). A batch of requests is answered from the cache where it can be;
the rest are sent with at most ``max_concurrency`` in flight. Rate limits (429, honouring
``Retry-After``), server errors (5xx), timeouts and lost connections are retried with a
doubling backoff, up to ``max_retries``; any other failure (a refused request, a body that
is not the API's JSON) is final. Each request first reserves its place under the spending
caps, so a capped run skips the rest instead of overspending. Every request ends in an
:class:`Answer`: its text, or the reason it has none, which the steps record per document.
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
        lat = np.asarray(self.latencies_s) if self.latencies_s else np.zeros(1)
        return {
            "requests": self.requests, "cache_hits": self.cache_hits, "retries": self.retries,
            "tokens_in": self.tokens_in, "tokens_out": self.tokens_out,
            "cost_usd": round(self.cost_usd, 6), "errors": dict(sorted(self.errors.items())),
            "latency_p50_s": round(float(np.percentile(lat, 50)), 4),
            "latency_p95_s": round(float(np.percentile(lat, 95)), 4),
        }


class LLMClient:
    """Answers batches of chat requests for one recipe's ``llm:`` block."""

    def __init__(self, spec: LLMSpec, cache: RequestCache | None = None) -> None:
        self.spec = spec
        self.cache = cache
        self.stats = ClientStats()
        self._sent = 0  # without a cache, the caps count this process's requests only
        self._spent = 0.0

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
        sent = asyncio.run(self._send_all(todo)) if todo else []
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

    async def _send_all(self, todo: Sequence[Request]) -> list[Answer]:
        import openai

        api_key = os.environ.get(self.spec.api_key_env, "") if self.spec.api_key_env else "none"
        client = openai.AsyncOpenAI(base_url=self.spec.base_url, api_key=api_key or "none",
                                    max_retries=0, timeout=self.spec.timeout_s)
        gate = asyncio.Semaphore(self.spec.max_concurrency)
        async with client:
            return list(await asyncio.gather(*(self._send(client, gate, r) for r in todo)))

    async def _send(self, client: Any, gate: asyncio.Semaphore, request: Request) -> Answer:
        import openai

        retryable = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError,
                     openai.APIConnectionError)
        s = self.spec
        async with gate:
            if not self._reserve():
                self.stats.errors[LLM_BUDGET_SKIPPED] += 1
                return Answer(None, LLM_BUDGET_SKIPPED, "max_requests or max_cost_usd reached")
            for attempt in range(s.max_retries + 1):
                started = time.monotonic()
                try:
                    response = await client.chat.completions.create(
                        model=s.model, messages=request.messages, temperature=s.temperature,
                        seed=s.seed, max_tokens=s.max_tokens,
                    )
                except retryable as exc:
                    if attempt == s.max_retries:
                        return self._failed(f"no answer after {attempt + 1} tries: {_describe(exc)}")
                    self.stats.retries += 1
                    await asyncio.sleep(_wait_s(exc, s.backoff_s * 2**attempt))
                    continue
                except Exception as exc:  # a refused request, a body that is not the API's JSON
                    return self._failed(_describe(exc))
                return self._answered(request, response, time.monotonic() - started)
        raise AssertionError("unreachable")

    def _answered(self, request: Request, response: Any, latency: float) -> Answer:
        choices = getattr(response, "choices", None) or []
        text = choices[0].message.content if choices and choices[0].message else None
        if not isinstance(text, str):
            return self._failed("the answer holds no text")
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
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


def _wait_s(exc: Exception, backoff: float) -> float:
    """The server's Retry-After where it gives one (capped), else the backoff."""
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    try:
        return min(MAX_WAIT_S, max(0.0, float(header))) if header else backoff
    except ValueError:  # an HTTP date: not worth parsing for a retry
        return backoff


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    text = " ".join(str(exc).split())[:300]
    return f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "") + (f": {text}" if text else "")
