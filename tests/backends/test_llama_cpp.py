"""The `openai` backend and the LLM step against a real OpenAI-compatible server: llama.cpp.

The server and its 135M-parameter model come from ../shared/llm/README.md; without them this
module is skipped and says what to install. The model's diagnoses are nonsense and it often
stops inside its JSON object, which makes it a good test of the protocol, timeouts, extraction
and the fallback path, not of diagnosis quality.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from backends.base import Answer
from backends.openai import OpenAIBackend
from flows.config import AiConfig
from operators.analysis import analyze_triggers
from operators.records import AnalysedTrigger
from tests.contexts import demo_contexts
from tests.llama_cpp import llama_server, missing

MODEL = "SmolLM2-135M-Instruct"

if (_why := missing()) is not None:
    pytest.skip(f"llama.cpp server not available: {_why}", allow_module_level=True)


@pytest.fixture(scope="module")
def llama() -> Iterator[str]:
    with llama_server() as url:
        yield url


def _analyse(url: str, **ai: object) -> AnalysedTrigger:
    settings = {"backend": "openai", "endpoint": url, "model": MODEL, "max_attempts": 1, **ai}
    flow = Dataflow("llama_test")
    source = op.input("in", flow, TestingSource(demo_contexts()[1:]))
    out: list[AnalysedTrigger] = []
    analysed = analyze_triggers("analysis", source, AiConfig(**settings), ordered=True)  # type: ignore[arg-type]
    op.output("out", analysed, TestingSink(out))
    run_main(flow)
    (result,) = out
    return result


def test_the_server_refuses_json_schema_and_answers_json_object_with_the_schema(llama: str) -> None:
    backend = OpenAIBackend(llama, MODEL, max_tokens=24, timeout=60)

    async def ask() -> Answer:
        try:
            return await backend.answer(demo_contexts()[1])
        finally:
            await backend.aclose()

    reply = asyncio.run(ask())
    assert backend.format_index == 1  # json_schema refused with a 500; json_object + schema taken
    assert reply.model == MODEL
    assert reply.text.lstrip().startswith("{")  # the schema's grammar makes it start an object
    assert reply.truncated  # 24 tokens cannot hold the six fields


def test_an_answer_cut_at_max_tokens_gets_the_rule_based_insight(llama: str) -> None:
    result = _analyse(llama, max_tokens=16, timeout_seconds=60)
    assert result.analysis == "failed"
    assert result.analysis_reason.startswith(
        "unusable answer: the answer was cut at max_tokens before its JSON object closed"
    )
    assert result.insight is not None and result.insight.backend == "none"


def test_a_full_answer_is_validated_or_rejected_never_passed_raw(llama: str) -> None:
    result = _analyse(llama, max_tokens=300, timeout_seconds=120)
    assert result.insight is not None
    if result.analysis == "analyzed":
        assert (result.insight.backend, result.insight.model) == ("openai", MODEL)
        assert result.insight.summary
        assert 0.0 <= result.insight.confidence <= 1.0
    else:
        assert result.analysis == "failed"
        assert result.analysis_reason.startswith("unusable answer:")


def test_a_timeout_is_retried_then_given_up(llama: str) -> None:
    result = _analyse(
        llama, max_tokens=64, timeout_seconds=0.3, max_attempts=2, retry_base_seconds=0.1
    )
    assert result.analysis == "failed"
    assert result.analysis_reason.startswith("gave up after 2 attempt(s): openai ")
    assert "no answer within 0.3s" in result.analysis_reason
