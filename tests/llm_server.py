"""A real HTTP server on loopback that speaks Ollama's and OpenAI's chat protocols, for tests.

Routes: `POST /api/chat`, `GET /api/tags` (Ollama), `POST /v1/chat/completions`, `GET /v1/models`
(OpenAI-compatible). Knobs: a latency for every chat request, a script of replies (status,
body, headers, delay, answer text) consumed in order, the answer for unscripted requests, the
models listed, and whether `response_format: json_schema` is refused (as llama-cpp-python
does, with a 500). It records every request (path, JSON body, headers, start and end times on
`time.monotonic`) and the most chat requests it was serving at once.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

__all__ = ["VALID_ANSWER", "LlmServer", "Reply", "Seen"]

VALID_ANSWER = orjson.dumps(
    {
        "summary": "nginx crashed with a segfault in libc.",
        "root_cause": "A null pointer dereference in an nginx worker.",
        "severity": "critical",
        "confidence": 0.8,
        "evidence": ["segfault at 0 ip 00007f error 4 in libc.so.6"],
        "recommendations": ["Inspect the core dump with coredumpctl info nginx."],
    }
).decode()


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted reply to a chat request: a status with a body, or an answer text."""

    status: int = 200
    text: str | None = None  # the model's answer (200 only); None = VALID_ANSWER
    error: str = "scripted failure"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    finish_reason: str = "stop"
    raw: bytes | None = None  # sent as the body as it is, with `status`


@dataclass(slots=True)
class Seen:
    """One request the server received, recorded on arrival; `finished` is set on reply."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    started: float
    finished: float | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    owner: LlmServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test); nothing to tell it

    def do_GET(self) -> None:
        owner = self.server.owner
        now = time.monotonic()
        owner.record(Seen("GET", self.path, None, dict(self.headers), now, now))
        if self.path == "/api/tags":
            tags = {"models": [{"name": name} for name in owner.models]}
            self._send(200, owner.tags_body if owner.tags_body is not None else tags)
        elif self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": n} for n in owner.models]})
        else:
            self._send(404, {"error": f"no route {self.path}"})

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            body = raw.decode("utf-8", "replace")
        seen = Seen("POST", self.path, body, dict(self.headers), time.monotonic())
        owner.record(seen)
        owner.enter()
        try:
            status, payload, headers = owner.respond(self.path, body)
        finally:
            owner.leave()
            seen.finished = time.monotonic()
        self._send(status, payload, headers)


class LlmServer:
    """Start with `with LlmServer() as server:`; `server.url` is `http://127.0.0.1:PORT`.

    Unscripted chat requests get `answer`: a text, or a function of the request body that
    returns a text or a whole `Reply` (so a test can choose latency or status per prompt).
    Never: answers a scripted request out of turn. Not guaranteed: the order of requests that
    arrive at once.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        answer: Callable[[Any], str | Reply] | str = VALID_ANSWER,
        models: list[str] | None = None,
        refuse_json_schema: bool = False,
    ) -> None:
        self.latency = latency
        self.answer = answer
        self.models = models if models is not None else ["llama3:latest"]
        self.refuse_json_schema = refuse_json_schema
        self.tags_body: Any = None  # replaces the /api/tags reply when set
        self.script: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> LlmServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def then(self, *replies: Reply) -> LlmServer:
        """Script the next chat replies, in order; later requests get the default answer."""
        self.script.extend(replies)
        return self

    def chats(self) -> list[Seen]:
        """The chat requests received (both protocols), in the order they arrived."""
        with self._lock:
            return [s for s in self.requests if s.method == "POST"]

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.requests.append(seen)

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def respond(self, path: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            reply = self.script.popleft() if self.script else None
        if reply is None:
            chosen = self.answer if isinstance(self.answer, str) else self.answer(body)
            reply = chosen if isinstance(chosen, Reply) else Reply(text=chosen)
        self._stop.wait(self.latency + reply.delay)
        openai = path == "/v1/chat/completions"
        if path not in ("/api/chat", "/v1/chat/completions"):
            return 404, {"error": f"no route {path}"}, {}
        asked = (body.get("response_format") or {}) if isinstance(body, dict) else {}
        if openai and self.refuse_json_schema and asked.get("type") == "json_schema":
            detail = "response_format.type: Input should be 'text' or 'json_object'"
            return 500, {"error": {"message": detail, "type": "internal_server_error"}}, {}
        if reply.raw is not None:
            return reply.status, reply.raw, reply.headers
        if reply.status != 200:
            error = {"message": reply.error} if openai else reply.error
            return reply.status, {"error": error}, reply.headers
        text = reply.text if reply.text is not None else VALID_ANSWER
        model = body.get("model", "") if isinstance(body, dict) else ""
        if openai:
            return (
                200,
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": reply.finish_reason,
                        }
                    ],
                },
                reply.headers,
            )
        return (
            200,
            {
                "model": model,
                "message": {"role": "assistant", "content": text},
                "done": True,
                "done_reason": reply.finish_reason,
            },
            reply.headers,
        )
