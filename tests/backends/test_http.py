from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from backends.errors import InvalidInsight, PermanentBackendError, TransientBackendError
from backends.http import JsonClient, error_text, get_json, parse_retry_after, translate_status
from tests.llm_server import LlmServer, Reply


def _post(url: str, timeout: float = 5.0, fixes: dict[int, str] | None = None) -> Any:
    async def go() -> Any:
        client = JsonClient(
            "test at server", base_url=url, timeout=timeout, headers={"authorization": "k"}
        )
        try:
            return await client.request("POST", url, {"a": 1}, fixes)
        finally:
            await client.aclose()

    return asyncio.run(go())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_json_reply_is_returned(server: LlmServer) -> None:
    reply = _post(f"{server.url}/api/chat")
    assert reply["message"]["role"] == "assistant"
    assert server.chats()[0].body == {"a": 1}
    assert server.chats()[0].headers["authorization"] == "k"


def test_a_refused_connection_is_transient() -> None:
    with pytest.raises(TransientBackendError, match=r"test at server: ConnectError"):
        _post(f"http://127.0.0.1:{_closed_port()}/api/chat")


def test_a_slow_server_is_a_transient_timeout(server: LlmServer) -> None:
    server.then(Reply(delay=1.0))
    with pytest.raises(TransientBackendError, match=r"no reply within 0.1s \(ReadTimeout\)"):
        _post(f"{server.url}/api/chat", timeout=0.1)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_these_statuses_are_transient(server: LlmServer, status: int) -> None:
    server.then(Reply(status=status, error="busy"))
    with pytest.raises(TransientBackendError, match=f"HTTP {status}: busy") as caught:
        _post(f"{server.url}/api/chat")
    assert caught.value.status == status


def test_429_carries_retry_after(server: LlmServer) -> None:
    server.then(Reply(status=429, error="slow down", headers={"Retry-After": "7"}))
    with pytest.raises(TransientBackendError, match="HTTP 429: slow down") as caught:
        _post(f"{server.url}/api/chat")
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("status", "fix"),
    [
        (400, "check \\[ai\\] model and max_tokens"),
        (401, "set the variable named by \\[ai\\] api_key_env"),
        (403, "the key is not allowed to use this model"),
        (404, "check \\[ai\\] endpoint and \\[ai\\] model"),
    ],
)
def test_these_statuses_are_permanent_and_say_the_fix(
    server: LlmServer, status: int, fix: str
) -> None:
    server.then(Reply(status=status, error="no"))
    with pytest.raises(PermanentBackendError, match=f"HTTP {status}: no; .*{fix}"):
        _post(f"{server.url}/v1/chat/completions")


def test_a_backend_can_give_its_own_fix(server: LlmServer) -> None:
    server.then(Reply(status=404, error='model "x" not found'))
    with pytest.raises(PermanentBackendError, match="not found; pull it"):
        _post(f"{server.url}/api/chat", fixes={404: "pull it"})


def test_a_reply_that_is_not_json_is_invalid(server: LlmServer) -> None:
    server.then(Reply(raw=b"<html>proxy</html>"))
    with pytest.raises(InvalidInsight, match=r"the reply is not JSON: b'<html>proxy</html>'"):
        _post(f"{server.url}/api/chat")


def test_get_json_probes_and_translates(server: LlmServer) -> None:
    assert get_json(f"{server.url}/api/tags", who="probe", timeout=2) == {
        "models": [{"name": "llama3:latest"}]
    }
    with pytest.raises(TransientBackendError, match="probe: ConnectError"):
        get_json(f"http://127.0.0.1:{_closed_port()}/api/tags", who="probe", timeout=2)
    with pytest.raises(PermanentBackendError, match="probe: HTTP 404: no route /nothing"):
        get_json(f"{server.url}/nothing", who="probe", timeout=2)


def test_error_text_reads_both_shapes_and_masks_keys() -> None:
    assert error_text(b'{"error": "model \\"llama3\\" not found"}') == 'model "llama3" not found'
    leaked = b'{"error": {"message": "Incorrect API key provided: sk-abcdefghijklmnopqrstuv"}}'
    assert error_text(leaked) == "Incorrect API key provided: [REDACTED]"
    assert error_text(b"plain   text\n error") == "plain text error"
    assert error_text(b"x" * 300).endswith("x...")


def test_translate_status_needs_no_server() -> None:
    error = translate_status("w", 503, b"", {"retry-after": "2"})
    assert isinstance(error, TransientBackendError)
    assert (str(error), error.retry_after, error.status) == ("w: HTTP 503", 2.0, 503)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Thu, 03 Dec 2026 10:00:10 GMT", 10.0),
        ("Thu, 03 Dec 2026 09:59:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_a_date(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now=1796292000.0) == expected
