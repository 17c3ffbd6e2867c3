"""An OpenAI-style chat server on 127.0.0.1 that misbehaves on request, for fault injection.

The last message's text says what to do: ``ok``, ``429-once`` (a rate limit with
Retry-After, then an answer), ``500`` (always a server error), ``hang-once`` (longer than
the client's timeout, then an answer), ``malformed`` (a body that is not JSON),
``truncated`` (the connection closes inside the body), ``no-choices`` (JSON without an
answer), ``slow`` (answers after 0.2 s). Every request is counted by its text, and the
most requests ever in flight at once is kept.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedServer:
    def __init__(self, hang_s: float = 2.0) -> None:
        self.seen: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0
        self.hang_s = hang_s
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
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
                try:
                    self._answer(text.split()[0], text, count, body)
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
                return self._send(200, {
                    "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": f"echo: {text}"}}],
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
