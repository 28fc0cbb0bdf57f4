from __future__ import annotations

import asyncio

import orjson
import pytest

from backends.errors import InvalidInsight, PermanentBackendError
from backends.insight import INSIGHT_SCHEMA
from backends.openai import RESPONSE_FORMATS, TEMPERATURE, OpenAIBackend
from operators.records import Insight
from tests.contexts import make_context
from tests.llm_server import LlmServer, Reply


def _analyze(backend: OpenAIBackend, times: int = 1) -> list[Insight]:
    async def go() -> list[Insight]:
        try:
            return [await backend.analyze(make_context(i)) for i in range(times)]
        finally:
            await backend.aclose()

    return asyncio.run(go())


def test_the_request_asks_for_the_json_schema(server: LlmServer) -> None:
    (insight,) = _analyze(OpenAIBackend(server.url, "gpt-4o-mini", max_tokens=200))
    (seen,) = server.chats()
    assert seen.path == "/v1/chat/completions"
    assert seen.body["model"] == "gpt-4o-mini"
    assert seen.body["temperature"] == TEMPERATURE
    assert seen.body["max_tokens"] == 200
    assert seen.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "insight", "schema": INSIGHT_SCHEMA, "strict": True},
    }
    assert insight.severity == "critical"
    assert (insight.backend, insight.model) == ("openai", "gpt-4o-mini")


def test_an_endpoint_ending_in_v1_is_not_doubled(server: LlmServer) -> None:
    _analyze(OpenAIBackend(server.url + "/v1/", "m"))
    assert server.chats()[0].path == "/v1/chat/completions"


def test_the_key_goes_in_a_bearer_header_and_nowhere_else(server: LlmServer) -> None:
    _analyze(OpenAIBackend(server.url, "m", api_key="sk-test-0123456789abcdef"))
    (seen,) = server.chats()
    assert seen.headers["authorization"] == "Bearer sk-test-0123456789abcdef"
    assert b"sk-test" not in orjson.dumps(seen.body)


def test_without_a_key_no_authorization_header_is_sent(server: LlmServer) -> None:
    _analyze(OpenAIBackend(server.url, "m"))
    assert "authorization" not in {name.lower() for name in server.chats()[0].headers}


def test_a_server_refusing_json_schema_is_asked_with_json_object_from_then_on() -> None:
    with LlmServer(refuse_json_schema=True) as server:
        backend = OpenAIBackend(server.url, "m")
        insights = _analyze(backend, times=2)
    assert [i.summary for i in insights] == ["nginx crashed with a segfault in libc."] * 2
    kinds = [s.body["response_format"] for s in server.chats()]
    assert [k["type"] for k in kinds] == ["json_schema", "json_object", "json_object"]
    assert kinds[1] == {"type": "json_object", "schema": INSIGHT_SCHEMA}
    assert backend.format_index == 1


def test_a_400_naming_the_schema_falls_back_to_plain_json_object(server: LlmServer) -> None:
    server.then(
        Reply(status=400, error="Invalid parameter: 'response_format' of type 'json_schema'"),
        Reply(status=400, error="Unknown parameter: 'response_format.schema'"),
    )
    backend = OpenAIBackend(server.url, "m")
    _analyze(backend)
    assert [s.body["response_format"] for s in server.chats()] == list(RESPONSE_FORMATS)
    assert backend.format_index == 2


def test_a_400_for_another_reason_is_permanent(server: LlmServer) -> None:
    server.then(Reply(status=400, error="This model's maximum context length is 4096 tokens"))
    with pytest.raises(PermanentBackendError, match="HTTP 400: This model's maximum context"):
        _analyze(OpenAIBackend(server.url, "m"))
    assert len(server.chats()) == 1


def test_an_unknown_model_is_permanent_with_the_fix(server: LlmServer) -> None:
    server.then(Reply(status=404, error="The model `gpt-9` does not exist"))
    with pytest.raises(PermanentBackendError, match=r"check \[ai\] endpoint .* and \[ai\] model"):
        _analyze(OpenAIBackend(server.url, "gpt-9"))


def test_a_refusal_is_invalid(server: LlmServer) -> None:
    body = {"model": "m", "choices": [{"message": {"content": None, "refusal": "I can't"}}]}
    server.then(Reply(raw=orjson.dumps(body)))
    with pytest.raises(InvalidInsight, match='the model refused: "I can\'t"'):
        _analyze(OpenAIBackend(server.url, "m"))


def test_a_reply_without_choices_is_invalid(server: LlmServer) -> None:
    server.then(Reply(raw=b'{"object": "error"}'))
    with pytest.raises(InvalidInsight, match="the reply has no message content"):
        _analyze(OpenAIBackend(server.url, "m"))


def test_an_answer_stopped_at_max_tokens_is_invalid(server: LlmServer) -> None:
    server.then(Reply(text='{"summary": "disk', finish_reason="length"))
    with pytest.raises(InvalidInsight, match="cut at max_tokens"):
        _analyze(OpenAIBackend(server.url, "m"))
