"""The LLM client against a scripted OpenAI-style server on 127.0.0.1: answers, the cache,
retries only where a retry can help, timeouts, spending caps, bounded concurrency."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted_server import ScriptedServer

from assay.llm.cache import RequestCache
from assay.llm.client import LLM_BUDGET_SKIPPED, LLM_ERROR, LLMClient, Request
from assay.llm.spec import LLMSpec

pytest.importorskip("aiohttp")


@pytest.fixture
def server():
    with ScriptedServer(hang_s=1.5) as running:
        yield running


def client_for(server: ScriptedServer, cache: RequestCache | None = None, **spec) -> LLMClient:
    settings = {"base_url": server.base_url, "model": "scripted", "timeout_s": 0.5,
                "max_retries": 2, "backoff_s": 0.01, **spec}
    return LLMClient(LLMSpec(**settings), cache)


def ask(client: LLMClient, *texts: str) -> list:
    requests = []
    for i, text in enumerate(texts):
        messages = [{"role": "user", "content": text}]
        requests.append(Request(client.key(messages, f"doc{i}"), messages))
    return client.complete(requests)


def test_answers_in_order_with_usage_and_cost(server: ScriptedServer) -> None:
    client = client_for(server, price_in_per_m=2.0, price_out_per_m=10.0)
    answers = ask(client, "ok one", "ok two words", "ok three")
    assert [a.text for a in answers] == ["echo: ok one", "echo: ok two words", "echo: ok three"]
    assert [a.reason for a in answers] == [None] * 3
    stats = client.stats.to_json()
    assert stats["requests"] == 3 and stats["tokens_in"] == 2 + 3 + 2 and stats["tokens_out"] == 9
    assert stats["cost_usd"] == pytest.approx((7 * 2.0 + 9 * 10.0) / 1e6)


def test_a_cached_answer_is_never_sent_again(server: ScriptedServer, tmp_path: Path) -> None:
    cache = RequestCache(tmp_path / "llm.sqlite")
    first = ask(client_for(server, cache), "ok a", "500 b", "ok c")
    again = client_for(server, RequestCache(tmp_path / "llm.sqlite"))  # a resumed run
    second = ask(again, "ok a", "500 b", "ok c")
    assert [a.text for a in second] == [a.text for a in first]
    assert server.seen["ok a"] == server.seen["ok c"] == 1  # answered once, never re-sent
    assert server.seen["500 b"] == 2 * 3  # a failure is not cached: the resumed run asks again
    assert again.stats.cache_hits == 2 and second[0].cached and not second[1].cached


def test_rate_limits_and_hangs_are_retried(server: ScriptedServer) -> None:
    client = client_for(server)
    answers = ask(client, "429-once please", "hang-once please")
    assert [a.text for a in answers] == ["echo: 429-once please", "echo: hang-once please"]
    assert server.seen["429-once please"] == 2 and server.seen["hang-once please"] == 2
    assert client.stats.retries == 2


@pytest.mark.parametrize("mode, tries", [("500", 3), ("truncated", 3), ("malformed", 1), ("no-choices", 1)])
def test_failures_end_in_llm_error_retried_only_when_a_retry_can_help(
    server: ScriptedServer, mode: str, tries: int
) -> None:
    client = client_for(server)
    [answer] = ask(client, f"{mode} x")
    assert answer.text is None and answer.reason == LLM_ERROR and answer.error
    assert server.seen[f"{mode} x"] == tries
    assert client.stats.errors == {LLM_ERROR: 1}


def test_spending_caps_skip_the_rest_across_clients(server: ScriptedServer, tmp_path: Path) -> None:
    cache_path = tmp_path / "llm.sqlite"
    first = ask(client_for(server, RequestCache(cache_path), max_requests=3), "ok 1", "ok 2")
    second = ask(client_for(server, RequestCache(cache_path), max_requests=3), "ok 3", "ok 4", "ok 5")
    assert [a.reason for a in first] == [None, None]
    reasons = [a.reason for a in second]
    assert reasons.count(None) == 1 and reasons.count(LLM_BUDGET_SKIPPED) == 2
    assert sum(server.seen.values()) == 3
    priced = client_for(server, price_in_per_m=1e6, max_cost_usd=3.0, max_concurrency=1)
    answers = ask(priced, "ok a b", "ok c d", "ok e f")  # $3 each: the second is over the cap
    assert [a.reason for a in answers] == [None, LLM_BUDGET_SKIPPED, LLM_BUDGET_SKIPPED]


def test_concurrency_is_bounded(server: ScriptedServer) -> None:
    client = client_for(server, max_concurrency=3)
    answers = ask(client, *[f"slow {i}" for i in range(12)])
    assert all(a.reason is None for a in answers)
    assert 1 < server.most_in_flight <= 3


def test_the_same_request_twice_in_a_batch_is_sent_once(server: ScriptedServer) -> None:
    client = client_for(server)
    messages = [{"role": "user", "content": "ok twice"}]
    request = Request(client.key(messages, "doc"), messages)
    answers = client.complete([request, request])
    assert [a.text for a in answers] == ["echo: ok twice"] * 2 and server.seen["ok twice"] == 1
    other = Request(client.key(messages, "another doc"), messages)  # the id is part of the key
    assert other.key != request.key


def test_each_run_has_its_own_budget_in_one_cache(server: ScriptedServer, tmp_path: Path) -> None:
    """A resumed run (same run id) continues its budget; a changed recipe run into the same
    output (another id, the cache kept) starts a new one and still reuses every answer."""
    cache_path = tmp_path / "llm.sqlite"

    def run(run_id: str) -> list:
        client = client_for(server, RequestCache(cache_path, run_id), max_requests=2)
        return ask(client, "ok 1", "ok 2", "ok 3")

    assert [a.reason for a in run("run-a")] == [None, None, LLM_BUDGET_SKIPPED]
    assert [a.reason for a in run("run-a")] == [None, None, LLM_BUDGET_SKIPPED]  # 1 and 2 from the cache
    changed = run("run-b")
    assert [a.reason for a in changed] == [None, None, None]
    assert [a.cached for a in changed] == [True, True, False]
    assert RequestCache(cache_path, "run-b").spending()[0] == 1


def test_counters_add_across_tasks_and_give_percentiles() -> None:
    from assay.engine.stats import add_counters
    from assay.llm.client import ClientStats, summarize_counters

    a = ClientStats(requests=2, tokens_in=10, latencies_s=[0.1, 0.2])
    b = ClientStats(requests=1, latencies_s=[2.0])
    a.errors["llm_error"] += 1
    merged = add_counters(add_counters({}, a.counters()), b.counters())
    summary = summarize_counters(merged)
    assert summary["requests"] == 3 and summary["tokens_in"] == 10 and summary["errors"] == {"llm_error": 1}
    assert summary["latency_p50_s"] == pytest.approx(0.2, rel=0.1)  # within the histogram's resolution
    assert summary["latency_p95_s"] == pytest.approx(2.0, rel=0.1)


def test_the_llm_block_is_checked() -> None:
    with pytest.raises(ValueError, match="backend openai needs base_url"):
        LLMSpec(model="m")
    assert LLMSpec(backend="transformers", model="/models/x").decisive() == {
        "model": "/models/x", "temperature": 0.0, "seed": 0, "max_tokens": 512}


def test_a_cache_file_assay_did_not_write_is_never_written(tmp_path: Path) -> None:
    import sqlite3

    from assay.llm.cache import CacheError

    theirs = tmp_path / "theirs.sqlite"
    with sqlite3.connect(theirs) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    before = theirs.read_bytes()
    with pytest.raises(CacheError, match="a database assay did not write"):
        RequestCache(theirs)
    text = tmp_path / "notes.txt"
    text.write_text("my notes, not a database " * 100)
    with pytest.raises(CacheError, match="not a request cache"):
        RequestCache(text)
    assert theirs.read_bytes() == before and text.read_text() == "my notes, not a database " * 100
