"""JSON over HTTP for the backends, with every httpx error translated into `backends.errors`.

In: a URL and a JSON payload. Out: the decoded JSON reply, or a `BackendError`:

| what happened | error |
|---|---|
| timeout, connection refused or reset, any other httpx error | `TransientBackendError` |
| 408, 425, 429 (with `Retry-After`), 5xx | `TransientBackendError` |
| 400, 401, 403, 404, 413, 422 and other 4xx | `PermanentBackendError` with the fix |
| 2xx whose body is not JSON | `InvalidInsight` |

This is the only module of Eyes that catches httpx exceptions. Messages quote
the server's own error text, masked by `redact` (a 401 often echoes part of the key), and never
a request header.
"""

from __future__ import annotations

import asyncio
import email.utils
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from backends.errors import (
    BackendError,
    InvalidInsight,
    PermanentBackendError,
    TransientBackendError,
)
from backends.redact import redact

__all__ = ["JsonClient", "error_text", "get_json", "parse_retry_after", "translate_status"]

_TRANSIENT_4XX = frozenset({408, 425, 429})
_GENERIC_FIXES = {
    400: "the server rejected the request; check [ai] model and max_tokens",
    401: "the server wants a valid key: set the variable named by [ai] api_key_env",
    403: "the key is not allowed to use this model: check the key and [ai] model",
    404: "check [ai] endpoint and [ai] model",
    413: "the prompt is too large for the server",
    422: "the server rejected the request's format",
}


_TLS_LOCK = threading.Lock()
_TLS_CONTEXTS: dict[bool, ssl.SSLContext] = {}


def _tls_context(url: str) -> ssl.SSLContext:
    """Return the TLS context for `url`, made once per process (loading CAs costs ~30 ms).

    An `https://` URL gets the verifying default (certifi's CAs). A plain `http://` URL never
    negotiates TLS (redirects are not followed), so it gets a context that trusts no one: it
    costs nothing to make and could not complete a handshake if one were ever attempted.
    """
    secure = url.startswith("https://")
    with _TLS_LOCK:
        found = _TLS_CONTEXTS.get(secure)
        if found is None:
            found = (
                httpx.create_ssl_context() if secure else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            )
            _TLS_CONTEXTS[secure] = found
        return found


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Return the seconds a `Retry-After` header asks for (delta or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def error_text(body: bytes, limit: int = 200) -> str:
    """Return the error message in a server's reply body (Ollama or OpenAI shape), masked."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error is not None:
            text = error if isinstance(error, str) else orjson.dumps(error).decode()
    text = " ".join(redact(text).split())
    return text[:limit] + ("..." if len(text) > limit else "")


def translate_status(
    who: str,
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    fixes: Mapping[int, str] | None = None,
) -> BackendError:
    """Return the error for a non-2xx reply.

    Args:
        who: the backend and URL, e.g. "ollama at http://localhost:11434".
        status: the HTTP status code.
        body: the reply body (its error message is quoted, masked).
        headers: the reply headers (`Retry-After` is read for 429 and 503).
        fixes: what to do, by status, where the backend knows better than the generic advice.
    """
    detail = error_text(body)
    said = f": {detail}" if detail else ""
    if status in _TRANSIENT_4XX or status >= 500:
        retry_after = parse_retry_after(headers.get("retry-after"))
        msg = f"{who}: HTTP {status}{said}"
        return TransientBackendError(msg, retry_after=retry_after, status=status)
    fix = {**_GENERIC_FIXES, **(fixes or {})}.get(status, "check [ai] endpoint and model")
    return PermanentBackendError(f"{who}: HTTP {status}{said}; {fix}", status=status)


def _transport_error(who: str, timeout: float, exc: httpx.HTTPError) -> BackendError:
    if isinstance(exc, httpx.TimeoutException):
        return TransientBackendError(f"{who}: no reply within {timeout:g}s ({type(exc).__name__})")
    detail = redact(str(exc)) or "connection failed"
    return TransientBackendError(f"{who}: {type(exc).__name__}: {detail}")


def _decode(who: str, response: httpx.Response, fixes: Mapping[int, str] | None) -> Any:
    if not response.is_success:
        raise translate_status(who, response.status_code, response.content, response.headers, fixes)
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError as exc:
        msg = f"{who}: the reply is not JSON: {response.content[:80]!r}"
        raise InvalidInsight(msg) from exc


def get_json(url: str, *, who: str, timeout: float) -> Any:
    """GET `url` and return its JSON reply, blocking (the `auto` probe at start).

    Raises:
        TransientBackendError: nothing answers, a timeout, 408/425/429 or 5xx.
        PermanentBackendError: any other non-2xx status.
        InvalidInsight: a 2xx reply whose body is not JSON.
    """
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), verify=_tls_context(url)) as client:
            response = client.get(url)
    except httpx.HTTPError as exc:
        raise _transport_error(who, timeout, exc) from exc
    return _decode(who, response, None)


class JsonClient:
    """Posts JSON to one server and returns its JSON reply; see the module table for errors.

    The underlying `httpx.AsyncClient` is created on first use inside the running event loop
    (and again after `aclose`, or when called from another loop). Not thread-safe: use it from
    one event loop. Never logs or returns request headers (they may hold a key).

    Args:
        who: names the backend and server in every error message.
        base_url: the server; only its scheme is used here (whether TLS may be needed).
        timeout: seconds for connecting, each read and each write.
        headers: sent with every request (e.g. the authorization header).
        max_connections: the connection pool's bound.
    """

    def __init__(
        self,
        who: str,
        *,
        base_url: str,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 8,
    ) -> None:
        self.who = who
        self._base_url = base_url
        self._timeout = timeout
        self._headers = dict(headers or {})
        self._max_connections = max_connections
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _get_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client.is_closed or self._loop is not loop:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                verify=_tls_context(self._base_url),
                headers=self._headers,
                limits=httpx.Limits(
                    max_connections=self._max_connections,
                    max_keepalive_connections=self._max_connections,
                ),
            )
            self._loop = loop
        return self._client

    async def request(
        self,
        method: str,
        url: str,
        payload: Any = None,
        fixes: Mapping[int, str] | None = None,
    ) -> Any:
        """Send one request and return the decoded JSON reply.

        Raises:
            TransientBackendError: timeout, connection error, 408/425/429 or 5xx.
            PermanentBackendError: any other non-2xx status; the message has the fix.
            InvalidInsight: a 2xx reply whose body is not JSON.
        """
        client = self._get_client()
        content = None if payload is None else orjson.dumps(payload)
        headers = None if payload is None else {"content-type": "application/json"}
        try:
            response = await client.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise _transport_error(self.who, self._timeout, exc) from exc
        return _decode(self.who, response, fixes)

    async def aclose(self) -> None:
        """Close the connections; the next request opens new ones.

        A client made on another (finished) event loop is dropped, not closed: its loop is gone.
        """
        client, self._client = self._client, None
        if client is None or client.is_closed or self._loop is not asyncio.get_running_loop():
            return
        await client.aclose()
