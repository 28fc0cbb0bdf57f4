"""A real HTTP server on loopback for the webhook tests, with scripted answers per path.

Routes: `/flaky/N` answers 503 to the first N requests, then 200; `/status/CODE` always answers
CODE; `/retry-after` answers 429 with `Retry-After: 0.05` once, then 200; `/slow` answers only
when the test releases it (or after 10 s).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Loopback", "loopback_server"]


@dataclass
class Loopback:
    """The running server's address and what it received."""

    base: str
    bodies: list[bytes] = field(default_factory=list)
    hits: Counter[str] = field(default_factory=Counter)
    release: threading.Event = field(default_factory=threading.Event)


def _handler(state: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def _answer(self, code: int, headers: dict[str, str] | None = None) -> None:
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("content-length", "2")
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(b"ok")  # the client may have given up (the timeout tests)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            state.hits[self.path] += 1
            state.bodies.append(body)
            seen = state.hits[self.path]
            parts = self.path.strip("/").split("/")
            if parts[0] == "flaky":
                self._answer(503 if seen <= int(parts[1]) else 200)
            elif parts[0] == "status":
                self._answer(int(parts[1]))
            elif parts[0] == "retry-after":
                if seen == 1:
                    self._answer(429, {"retry-after": "0.05"})
                else:
                    self._answer(200)
            elif parts[0] == "slow":
                state.release.wait(10)
                self._answer(200)
            else:
                self._answer(404)

    return Handler


@contextmanager
def loopback_server() -> Iterator[Loopback]:
    """Run the server on 127.0.0.1 and an ephemeral port for the duration of the block."""
    state = Loopback(base="")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="loopback", daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
