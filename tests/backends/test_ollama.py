from __future__ import annotations

import asyncio

import pytest

from backends.errors import InvalidInsight, PermanentBackendError, TransientBackendError
from backends.insight import INSIGHT_SCHEMA
from backends.ollama import TEMPERATURE, OllamaBackend, list_models
from operators.records import Insight
from tests.contexts import make_context
from tests.llm_server import LlmServer, Reply


def _analyze(backend: OllamaBackend, severity: str = "warning") -> Insight:
    async def go() -> Insight:
        try:
            return await backend.analyze(make_context(severity=severity))  # type: ignore[arg-type]
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_the_request_is_a_non_streaming_chat_with_the_schema_as_format(server: LlmServer) -> None:
    insight = _analyze(OllamaBackend(server.url, "llama3", max_tokens=300))
    (seen,) = server.chats()
    assert seen.path == "/api/chat"
    assert seen.body["model"] == "llama3"
    assert seen.body["stream"] is False
    assert seen.body["format"] == INSIGHT_SCHEMA
    assert seen.body["options"] == {"temperature": TEMPERATURE, "num_predict": 300}
    assert [m["role"] for m in seen.body["messages"]] == ["system", "user"]
    assert insight.summary == "nginx crashed with a segfault in libc."
    assert insight.severity == "warning"  # the answer said critical; the rule says warning
    assert (insight.backend, insight.model) == ("ollama", "llama3")


def test_an_unknown_model_is_permanent_and_says_how_to_pull_it(server: LlmServer) -> None:
    server.then(Reply(status=404, error='model "llama3" not found, try pulling it first'))
    with pytest.raises(
        PermanentBackendError,
        match=r"HTTP 404: model \"llama3\" not found.*pull it with `ollama pull llama3` or set",
    ):
        _analyze(OllamaBackend(server.url, "llama3"))


def test_a_busy_server_is_transient(server: LlmServer) -> None:
    server.then(Reply(status=503, error="server busy"))
    with pytest.raises(TransientBackendError, match=r"ollama at http://127.0.0.1:\d+: HTTP 503"):
        _analyze(OllamaBackend(server.url, "llama3"))


def test_an_answer_cut_at_num_predict_is_invalid(server: LlmServer) -> None:
    server.then(Reply(text='{"summary": "nginx cr', finish_reason="length"))
    with pytest.raises(InvalidInsight, match="cut at max_tokens"):
        _analyze(OllamaBackend(server.url, "llama3"))


def test_a_reply_without_a_message_is_invalid(server: LlmServer) -> None:
    server.then(Reply(raw=b'{"done": true}'))
    with pytest.raises(InvalidInsight, match="the reply has no message content"):
        _analyze(OllamaBackend(server.url, "llama3"))


def test_list_models_reads_the_tags(server: LlmServer) -> None:
    server.models = ["llama3:latest", "qwen2.5:7b"]
    assert list_models(server.url, timeout=2) == ["llama3:latest", "qwen2.5:7b"]


def test_list_models_rejects_a_server_that_is_not_ollama(server: LlmServer) -> None:
    server.tags_body = {"object": "list", "data": []}
    with pytest.raises(InvalidInsight, match="GET /api/tags did not return a models list"):
        list_models(server.url, timeout=2)


def test_list_models_of_a_wrong_path_is_permanent(server: LlmServer) -> None:
    with pytest.raises(PermanentBackendError, match="HTTP 404: no route /v1/api/tags"):
        list_models(server.url + "/v1", timeout=2)
