"""Fixtures of the backend tests: a loopback LLM server per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.llm_server import LlmServer


@pytest.fixture
def server() -> Iterator[LlmServer]:
    """A loopback server speaking Ollama and OpenAI, answering `VALID_ANSWER` by default."""
    with LlmServer() as running:
        yield running
