from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from backends.errors import PermanentBackendError
from backends.mock import MockBackend
from backends.none import NoneBackend
from backends.ollama import OllamaBackend
from backends.openai import OpenAIBackend
from backends.process import ProcessBackend
from backends.recorded import RecordedBackend
from backends.select import build_backend, has_model, recordings_path
from flows.config import AiConfig
from operators.errors import ConfigError
from tests.contexts import make_context
from tests.llm_server import LlmServer

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "llm" / "llm_demo.jsonl"


def _nothing_listening() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_none_mock_and_recorded_are_built_without_io() -> None:
    assert isinstance(build_backend(AiConfig(backend="none")), NoneBackend)
    mock = build_backend(AiConfig(backend="mock", model="demo"))
    assert isinstance(mock, MockBackend) and mock.model == "demo"
    recorded = build_backend(AiConfig(backend="recorded", recordings=str(FIXTURE)))
    assert isinstance(recorded, RecordedBackend)


def test_the_default_recordings_are_found_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    recorded = build_backend(AiConfig(backend="recorded"))
    assert isinstance(recorded, RecordedBackend)
    assert recorded.source == str(FIXTURE)


def test_relative_recordings_in_the_current_directory_win_over_the_shipped_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mine = Path("fixtures/llm/llm_demo.jsonl")
    mine.parent.mkdir(parents=True)
    mine.write_bytes(FIXTURE.read_bytes())
    assert recordings_path(str(mine)) == mine
    assert recordings_path("elsewhere.jsonl") == Path("elsewhere.jsonl")


def test_recorded_without_its_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[ai\] recordings: cannot read"):
        build_backend(AiConfig(backend="recorded", recordings=str(tmp_path / "none.jsonl")))


def test_openai_reads_the_key_from_the_named_variable(server: LlmServer) -> None:
    ai = AiConfig(backend="openai", endpoint=server.url, api_key_env="MY_LLM_KEY")
    backend = build_backend(ai, environ={"MY_LLM_KEY": "sk-from-env-0123456789"})
    assert isinstance(backend, ProcessBackend)
    assert isinstance(backend.inner, OpenAIBackend)

    async def go() -> None:
        await backend.analyze(make_context())
        await backend.aclose()

    asyncio.run(go())
    assert server.chats()[0].headers["authorization"] == "Bearer sk-from-env-0123456789"


def test_ollama_is_built_from_the_config() -> None:
    backend = build_backend(AiConfig(backend="ollama", endpoint="http://h:1", model="qwen2.5"))
    assert isinstance(backend, ProcessBackend)
    assert isinstance(backend.inner, OllamaBackend)
    assert (backend.inner.url, backend.name, backend.model) == (
        "http://h:1/api/chat",
        "ollama",
        "qwen2.5",
    )


def test_auto_uses_ollama_when_it_answers_with_the_model(
    server: LlmServer, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="backends.select"):
        backend = build_backend(AiConfig(backend="auto", endpoint=server.url, model="llama3"))
    assert isinstance(backend, ProcessBackend)
    assert isinstance(backend.inner, OllamaBackend)
    assert f"using Ollama at {server.url} with model llama3" in caplog.text
    assert [s.path for s in server.requests] == ["/api/tags"]


def test_auto_with_nothing_answering_is_none_said_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = _nothing_listening()
    with caplog.at_level(logging.INFO):
        backend = build_backend(AiConfig(backend="auto", endpoint=endpoint))
    assert isinstance(backend, NoneBackend)
    assert backend.offline_reason is not None
    assert backend.offline_reason.startswith(
        f"[ai] backend = auto: no Ollama answers at {endpoint}"
    )
    (record,) = [r for r in caplog.records if r.name.startswith("backends")]
    assert record.levelno == logging.WARNING
    assert "using rule-based insights. Start Ollama, or set [ai] backend = none" in record.message


def test_auto_with_ollama_lacking_the_model_is_none_with_the_fix(
    server: LlmServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.models = ["qwen2.5:7b"]
    backend = build_backend(AiConfig(backend="auto", endpoint=server.url, model="llama3"))
    assert isinstance(backend, NoneBackend)
    assert "has no model 'llama3'" in (backend.offline_reason or "")
    assert "(it has qwen2.5:7b); using rule-based insights. Pull it with `ollama pull llama3`" in (
        caplog.text
    )


@pytest.mark.parametrize(
    ("names", "model", "expected"),
    [
        (["llama3:latest"], "llama3", True),
        (["llama3:8b"], "llama3", False),
        (["llama3:8b"], "llama3:8b", True),
        ([], "llama3", False),
    ],
)
def test_has_model_matches_the_latest_tag(names: list[str], model: str, expected: bool) -> None:
    assert has_model(names, model) is expected


def test_the_none_backend_gives_the_rule_based_insight() -> None:
    context = make_context()
    insight = asyncio.run(NoneBackend().analyze(context))
    assert insight.root_cause.startswith("Not analysed by a model")
    assert NoneBackend().offline_reason == "[ai] backend = none"


def test_the_none_backend_has_no_raw_answer() -> None:
    with pytest.raises(PermanentBackendError, match=r"backend none asks no model"):
        asyncio.run(NoneBackend().answer(make_context()))
