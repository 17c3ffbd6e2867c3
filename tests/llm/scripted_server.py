"""An OpenAI-style chat server on 127.0.0.1 that misbehaves on request, for fault injection.

The last message's text says what to do, by its first word or a ``mode=NAME`` anywhere in
it (a document inside a prompt): ``ok``, ``429-once`` (a rate limit with
Retry-After, then an answer), ``500`` (always a server error), ``hang-once`` (longer than
the client's timeout, then an answer), ``malformed`` (a body that is not JSON),
``truncated`` (the connection closes inside the body), ``no-choices`` (JSON without an
answer), ``slow`` (answers after 0.2 s). Every request is counted by its text, and the
most requests ever in flight at once is kept. ``reply(text)`` writes the answer's content
(default: ``echo: TEXT``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Listener(ThreadingHTTPServer):
    # The standard library queues 5 connections: a step's concurrent requests beyond the
    # fifth would be dropped and retried by the client's kernel a second later.
    request_queue_size = 128


class ScriptedServer:
    def __init__(self, hang_s: float = 2.0, reply: Callable[[str], str] | None = None,
                 hold_after: int | None = None) -> None:
        self.reply = reply or (lambda text: f"echo: {text}")
        # After this many answers, hold every further request until release(), then drop it
        # unanswered: a run can be killed at a moment when no answer is on its way.
        self.hold_after = hold_after
        self.answered: Counter[str] = Counter()
        self._released = threading.Event()
        self.seen: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0
        self.hang_s = hang_s
        self._lock = threading.Lock()
        self._http = _Listener(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def release(self) -> None:
        self._released.set()

    @property
    def held(self) -> int:
        return sum(self.seen.values()) - sum(self.answered.values())

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._released.set()
        self._http.shutdown()
        self._http.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body["messages"][-1]["content"]
                with server._lock:
                    server.seen[text] += 1
                    count = server.seen[text]
                    server.in_flight += 1
                    server.most_in_flight = max(server.most_in_flight, server.in_flight)
                if (server.hold_after is not None and not server._released.is_set()
                        and sum(server.answered.values()) >= server.hold_after):
                    server._released.wait()  # then dropped unanswered: its client is gone
                    self.close_connection = True
                    return
                try:
                    mode = re.search(r"mode=([\w-]+)", text)
                    self._answer(mode.group(1) if mode else text.split()[0], text, count, body)
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _answer(self, mode: str, text: str, count: int, body: dict) -> None:
                if mode == "429-once" and count == 1:
                    return self._send(429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                if mode == "500":
                    return self._send(500, {"error": {"message": "boom"}})
                if mode == "hang-once" and count == 1:
                    time.sleep(server.hang_s)
                if mode == "slow":
                    time.sleep(0.2)
                if mode == "malformed":
                    return self._raw(200, b"{not json")
                if mode == "truncated":
                    payload = b'{"id": "x", "choices": [{"index": 0, "mess'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload) + 100))
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                    self.close_connection = True
                    return None
                if mode == "no-choices":
                    return self._send(200, {"id": "x", "object": "chat.completion", "created": 0,
                                            "model": body["model"], "choices": []})
                with server._lock:
                    server.answered[text] += 1
                return self._send(200, {
                    "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": server.reply(text)}}],
                    "usage": {"prompt_tokens": len(text.split()), "completion_tokens": 3,
                              "total_tokens": len(text.split()) + 3},
                })

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                self._raw(status, json.dumps(payload).encode(), headers)

            def _raw(self, status: int, data: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler


def cooperative_reply(text: str) -> str:
    """What a model that keeps every format answers to assay's shipped prompts (the score
    a document asks for with ``score=N``; none where it says it ``will not rate``)."""
    if "Educational score" in text:
        if "will not rate" in text:
            return "I would rather not say."
        found = re.search(r"score=(\d)", text)
        return f"A fine page.\nEducational score:  {found.group(1) if found else len(text) % 6}"
    if "paraphrase" in text or "conversational format" in text:
        chunk = text.rsplit("\n", 1)[-1]
        return f"REWRITE[{len(chunk.split())} words]"
    if "### Entities:" in text:
        return "### Discussion of the relation\n" + " and ".join(re.findall(r"^\s*- (.+)$", text, re.M))
    if "### Document Content:" in text:
        names = sorted(set(re.findall(r"\b[A-Z][a-z]+\b", text.split("### Document Content:")[1])))
        return '```json\n{"summary": "s", "entities": ' + json.dumps(names) + "}\n```"
    if "keep_doc()" in text and "drop_doc()" in text:
        return "drop_doc()" if "SPAM" in text else "keep_doc()"
    if "remove_lines(line_start, line_end)" in text:
        lines = [line for line in text.split("\n") if re.match(r"\[\d{3}\] ", line)]
        calls = [f"remove_lines({int(line[1:4])}, {int(line[1:4])})" for line in lines if "NAV" in line]
        calls += ['normalize("teh", "the")'] if "teh" in text else []
        if "HOSTILE" in text:
            calls += ["__import__('os').system('touch /tmp/pwned')", "open('x').read()"]
        return "\n".join(calls) or "keep_chunk()"
    return "?"
