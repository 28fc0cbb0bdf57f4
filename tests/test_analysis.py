from __future__ import annotations

import itertools
import logging
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main

from backends.mock import MockBackend, MockReply
from flows.config import AiConfig
from operators import async_runner
from operators.analysis import AnalysisStats, analyze_triggers
from operators.events import LogEvent
from operators.records import AnalysedTrigger
from operators.triggers import TriggerContext, Watermark
from tests.contexts import T0, make_context
from tests.llm_server import VALID_ANSWER, LlmServer, Reply

Out = AnalysedTrigger | Watermark


@pytest.fixture
def server() -> Iterator[LlmServer]:
    with LlmServer() as running:
        yield running


def _ai(server: LlmServer | None = None, **kw: Any) -> AiConfig:
    base: dict[str, Any] = {
        "backend": "ollama",
        "endpoint": server.url if server else "http://127.0.0.1:9",
        "timeout_seconds": 5.0,
        "max_concurrency": 4,
        "max_attempts": 3,
        "retry_base_seconds": 0.05,
        "retry_max_seconds": 1.0,
        "drain_seconds": 20.0,
    }
    return AiConfig(**{**base, **kw})


def _run(
    items: list[Any],
    ai: AiConfig,
    *,
    ordered: bool = True,
    stats: AnalysisStats | None = None,
    batch_size: int = 1,
    stamp: list[float] | None = None,
    **kw: Any,
) -> list[Out]:
    flow = Dataflow("analysis_test")
    source = op.input("in", flow, TestingSource(items, batch_size=batch_size))
    analysed = analyze_triggers("analysis", source, ai, ordered=ordered, stats=stats, **kw)
    if stamp is not None:
        analysed = op.inspect(
            "stamp", analysed, lambda _step, _item: stamp.append(time.monotonic())
        )
    out: list[Out] = []
    op.output("out", analysed, TestingSink(out))
    run_main(flow)
    return out


def _number(body: Any) -> int:
    """The context number `make_context` put in the prompt's reason ("(#N)")."""
    found = re.search(r"\(#(\d+)\)", body["messages"][1]["content"])
    assert found is not None
    return int(found.group(1))


def _analysed(out: list[Out]) -> list[AnalysedTrigger]:
    return [item for item in out if isinstance(item, AnalysedTrigger)]


# -- order and flow ----------------------------------------------------------------------------


def test_ordered_results_and_watermarks_leave_in_input_order() -> None:
    def answer(body: Any) -> Reply:
        return Reply(text=VALID_ANSWER, delay=0.4 if _number(body) == 0 else 0.0)

    items = [
        make_context(0),
        make_context(1),
        Watermark(T0 + 1),
        make_context(2),
        Watermark(T0 + 2),
    ]
    with LlmServer(answer=answer) as server:
        out = _run(items, _ai(server), ordered=True)
    assert [o.ts if isinstance(o, Watermark) else o.context.trigger.ts for o in out] == [
        T0,
        T0 + 1,
        T0 + 1,
        T0 + 2,
        T0 + 2,
    ]
    assert [type(o).__name__ for o in out] == [
        "AnalysedTrigger",
        "AnalysedTrigger",
        "Watermark",
        "AnalysedTrigger",
        "Watermark",
    ]
    assert {o.analysis for o in _analysed(out)} == {"analyzed"}


def test_live_results_leave_when_ready_and_watermarks_at_once() -> None:
    def answer(body: Any) -> Reply:
        return Reply(text=VALID_ANSWER, delay=0.6 if _number(body) == 0 else 0.0)

    items = [
        make_context(0),
        make_context(1),
        Watermark(T0 + 1),
        make_context(2),
        Watermark(T0 + 2),
    ]
    with LlmServer(answer=answer) as server:
        out = _run(items, _ai(server), ordered=False)
    assert len(out) == 5
    assert isinstance(out[-1], AnalysedTrigger) and out[-1].context.trigger.ts == T0
    watermarks = [i for i, o in enumerate(out) if isinstance(o, Watermark)]
    assert [out[i].ts for i in watermarks] == [T0 + 1, T0 + 2]  # type: ignore[union-attr]


def test_the_flow_keeps_flowing_while_a_request_is_pending() -> None:
    stamps: list[float] = []
    items = [make_context(0), *(Watermark(T0 + i) for i in range(1, 21))]
    started = time.monotonic()
    with LlmServer(latency=1.0) as server:
        out = _run(items, _ai(server), ordered=False, stamp=stamps)
    assert [type(o).__name__ for o in out] == ["Watermark"] * 20 + ["AnalysedTrigger"]
    assert stamps[19] - started < 0.5  # every watermark left while the request was pending
    assert stamps[20] - started >= 1.0


# -- concurrency -------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["ollama", "openai"])
def test_in_flight_requests_never_exceed_max_concurrency_at_the_server(protocol: str) -> None:
    stats = AnalysisStats()
    with LlmServer(latency=0.2) as server:
        ai = _ai(server, backend=protocol, max_concurrency=4)
        out = _run([make_context(i) for i in range(16)], ai, stats=stats, batch_size=16)
        paths = {s.path for s in server.chats()}
        assert server.max_in_flight == 4
    assert stats.max_in_flight == 4
    assert paths == {"/api/chat" if protocol == "ollama" else "/v1/chat/completions"}
    assert [o.context.trigger.ts for o in _analysed(out)] == [T0 + i for i in range(16)]
    assert stats.outcomes == {"analyzed": 16}


def test_one_request_at_a_time_with_max_concurrency_one() -> None:
    with LlmServer(latency=0.05) as server:
        _run([make_context(i) for i in range(5)], _ai(server, max_concurrency=1), batch_size=5)
        assert server.max_in_flight == 1
        chats = server.chats()
    assert all(b.started >= (a.finished or 0.0) for a, b in itertools.pairwise(chats))


# -- retries -----------------------------------------------------------------------------------


def _gaps(server: LlmServer) -> list[float]:
    """Seconds between one reply and the next request, as the server saw them."""
    chats = server.chats()
    return [b.started - (a.finished or a.started) for a, b in itertools.pairwise(chats)]


def test_503_is_retried_with_exponential_backoff(server: LlmServer) -> None:
    server.then(Reply(status=503, error="busy"), Reply(status=503, error="busy"))
    stats = AnalysisStats()
    ai = _ai(server, retry_base_seconds=0.2, retry_max_seconds=5.0)
    items = [make_context(0), TestingSource.PAUSE(timedelta(seconds=1.2))]
    (result,) = _run(items, ai, stats=stats, rand=lambda: 0.0)
    assert result.analysis == "analyzed"  # type: ignore[union-attr]
    assert len(server.chats()) == 3
    first, second = _gaps(server)
    assert 0.2 <= first < 0.2 + 0.25
    assert 0.4 <= second < 0.4 + 0.25
    assert stats.retries == 2


def test_retry_after_is_honoured(server: LlmServer) -> None:
    server.then(Reply(status=429, error="slow down", headers={"Retry-After": "0.5"}))
    (result,) = _run([make_context(0)], _ai(server, retry_base_seconds=0.01), rand=lambda: 0.0)
    assert result.analysis == "analyzed"  # type: ignore[union-attr]
    (gap,) = _gaps(server)
    assert 0.5 <= gap < 0.5 + 0.25


def test_timeouts_are_retried_with_the_backoff(server: LlmServer) -> None:
    server.then(Reply(delay=3.0), Reply(delay=3.0))
    ai = _ai(server, timeout_seconds=0.2, retry_base_seconds=0.1)
    (result,) = _run([make_context(0)], ai, rand=lambda: 0.0)
    assert result.analysis == "analyzed"  # type: ignore[union-attr]
    first, second, third = (seen.started for seen in server.chats())
    # Between arrivals: the 0.2 s timeout, then 0.1 s and 0.2 s of backoff. The first attempt
    # also builds the HTTP client (tens of ms) before its timer's request reaches the server.
    assert 0.2 + 0.1 - 0.1 <= second - first < 0.2 + 0.1 + 0.3
    assert 0.2 + 0.2 <= third - second < 0.2 + 0.2 + 0.3


def test_retries_run_out_and_the_alert_still_goes_out(server: LlmServer) -> None:
    server.then(*[Reply(status=503, error="down")] * 3)
    (result,) = _run([make_context(0)], _ai(server, max_attempts=3), rand=lambda: 0.0)
    assert isinstance(result, AnalysedTrigger)
    assert result.analysis == "failed"
    assert re.fullmatch(
        r"gave up after 3 attempt\(s\): ollama at http://127\.0\.0\.1:\d+: HTTP 503: down",
        result.analysis_reason,
    )
    assert result.insight is not None and result.insight.backend == "none"
    assert len(server.chats()) == 3


def test_404_is_not_retried_and_said_once_with_the_fix(
    server: LlmServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.then(*[Reply(status=404, error='model "llama3" not found')] * 3)
    stats = AnalysisStats()
    with caplog.at_level(logging.WARNING, logger="operators.analysis"):
        out = _run([make_context(i) for i in range(3)], _ai(server), stats=stats)
    assert len(server.chats()) == 3
    assert [o.analysis for o in _analysed(out)] == ["failed"] * 3
    assert _analysed(out)[0].analysis_reason.startswith("permanent error: ollama at")
    said = [r.getMessage() for r in caplog.records if "not found" in r.getMessage()]
    assert len(said) == 1
    assert "pull it with `ollama pull llama3` or set [ai] model (not retried)" in said[0]
    assert stats.failures == {"permanent": 3}


def test_on_overflow_the_oldest_lowest_severity_retry_is_given_up(server: LlmServer) -> None:
    server.then(*[Reply(status=503, error="busy")] * 3)
    contexts = [
        make_context(0, severity="info"),
        make_context(1, severity="critical"),
        make_context(2, severity="warning"),
    ]
    stats = AnalysisStats()
    ai = _ai(server, retry_queue_size=1, max_concurrency=3, retry_base_seconds=0.3)
    out = _analysed(_run(contexts, ai, stats=stats, batch_size=3, rand=lambda: 0.0))
    assert [(o.context.trigger.severity, o.analysis) for o in out] == [
        ("info", "failed"),
        ("critical", "analyzed"),
        ("warning", "failed"),
    ]
    for given_up in (out[0], out[2]):
        assert given_up.analysis_reason.startswith(
            "retry queue full (1 waiting): given up after 1 attempt(s); last error: ollama at"
        )
        assert given_up.insight is not None
        assert given_up.insight.severity == given_up.context.trigger.severity
    assert stats.failures == {"retry_queue_full": 2}
    assert len(server.chats()) == 4


def test_the_backlog_is_bounded_too() -> None:
    backend = MockBackend()
    contexts = [make_context(i, severity="critical" if i == 0 else "info") for i in range(5)]
    stats = AnalysisStats()
    out = _analysed(
        _run(contexts, _ai(), backend=backend, stats=stats, batch_size=5, max_backlog=2)
    )
    assert [o.analysis for o in out] == ["analyzed", "failed", "failed", "failed", "analyzed"]
    assert out[1].analysis_reason == "2 contexts already waiting for a request slot"
    assert stats.failures == {"backlog_full": 3}


# -- answers -----------------------------------------------------------------------------------


ANSWERS = {
    0: Reply(text='Sure. Here is the analysis: {"summary": "prose", "root_cause": "x"} Done.'),
    1: Reply(text='```json\n{"summary": "fenced", "root_cause": "y"}\n```'),
    2: Reply(text='{"summary": "cut here', finish_reason="length"),
    3: Reply(
        text=orjson.dumps(
            {
                "summary": "typed",
                "root_cause": 7,
                "severity": "EMERGENCY",
                "confidence": "90%",
                "evidence": "a line",
                "recommendations": "check dmesg",
            }
        ).decode()
    ),
    4: Reply(text="I cannot help with that."),
}


@pytest.mark.parametrize("protocol", ["ollama", "openai"])
def test_prose_fenced_truncated_and_wrongly_typed_answers(protocol: str) -> None:
    contexts = [make_context(i, severity="warning") for i in range(5)]
    with LlmServer(answer=lambda body: ANSWERS[_number(body)]) as server:
        out = _analysed(_run(contexts, _ai(server, backend=protocol)))
    assert [o.analysis for o in out] == ["analyzed", "analyzed", "failed", "analyzed", "failed"]
    assert [o.insight.summary for o in out if o.analysis == "analyzed"] == [  # type: ignore[union-attr]
        "prose",
        "fenced",
        "typed",
    ]
    typed = out[3].insight
    assert typed is not None
    assert (typed.root_cause, typed.severity, typed.confidence) == ("7", "warning", 0.9)
    assert (typed.evidence, typed.recommendations) == (("a line",), ("check dmesg",))
    assert typed.backend == protocol
    assert out[2].analysis_reason.startswith(
        "unusable answer: the answer was cut at max_tokens before its JSON object closed"
    )
    assert out[4].analysis_reason.startswith("unusable answer: the answer holds no JSON object")


def test_destructive_advice_is_removed_before_the_alert(server: LlmServer) -> None:
    server.answer = orjson.dumps(
        {
            "summary": "Disk full.",
            "root_cause": "Logs.",
            "recommendations": [
                "Find the biggest directories: du -xh / | sort -h | tail",
                "rm -rf /var/lib/mysql",
                "Disable SELinux to rule it out",
                "Reboot the host",
                "dd if=/dev/zero of=/dev/sda",
            ],
        }
    ).decode()
    (result,) = _run([make_context(0)], _ai(server))
    assert result.insight.recommendations == (  # type: ignore[union-attr]
        "Find the biggest directories: du -xh / | sort -h | tail",
    )


SECRETS = (
    "hunter2",
    "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlMTIz",
    "MIIEowIBAAKCAQEAx4",
    "ops@example.com",
)


def _leaky_context() -> TriggerContext:
    lines = (
        "login failed for ops@example.com password=hunter2",
        "retrying with api_key=sk-proj-ABCDEFGHIJKLMNOPQRSTUVWX",
        "upstream said Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9."
        "c2lnbmF0dXJlMTIz",
        "loaded -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx4\n-----END RSA PRIVATE KEY-----",
    )
    logs = tuple(
        LogEvent(T0 + i, "web-1", "error", line, process="app") for i, line in enumerate(lines)
    )
    return make_context(0, message=lines[0], logs=logs)


@pytest.mark.parametrize("protocol", ["ollama", "openai"])
def test_with_redact_the_server_never_sees_a_secret(server: LlmServer, protocol: str) -> None:
    _run([_leaky_context()], _ai(server, backend=protocol, redact=True))
    sent = b"".join(orjson.dumps(s.body) for s in server.chats())
    assert [secret for secret in SECRETS if secret.encode() in sent] == []
    assert b"[REDACTED]" in sent


def test_without_redact_the_text_goes_as_it_is(server: LlmServer) -> None:
    _run([_leaky_context()], _ai(server, redact=False))
    sent = orjson.dumps(server.chats()[0].body)
    assert b"password=hunter2" in sent


# -- no model ----------------------------------------------------------------------------------


def test_backend_none_gives_the_fallback_without_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_loop() -> None:
        raise AssertionError("the none backend must not use the event loop")

    monkeypatch.setattr(async_runner.AsyncRunner, "get", staticmethod(no_loop))
    contexts = [make_context(i) for i in range(200)]
    out = _run([*contexts, Watermark(T0 + 300)], _ai(backend="none"), batch_size=50)
    analysed = _analysed(out)
    assert len(analysed) == 200 and isinstance(out[-1], Watermark)
    assert {(o.analysis, o.analysis_reason) for o in analysed} == {
        ("fallback", "[ai] backend = none")
    }
    assert analysed[0].insight is not None and analysed[0].insight.backend == "none"


def test_auto_with_nothing_answering_falls_back_for_every_trigger() -> None:
    out = _run([make_context(0)], _ai(backend="auto", endpoint="http://127.0.0.1:9"))
    (result,) = _analysed(out)
    assert result.analysis == "fallback"
    assert result.analysis_reason.startswith("[ai] backend = auto: no Ollama answers at")


def test_triggers_below_min_severity_are_not_sent_to_the_model(server: LlmServer) -> None:
    items = [
        make_context(0, severity="info"),
        make_context(1, severity="warning"),
        make_context(2, severity="critical"),
    ]
    out = _run(items, _ai(server), skip_below="warning")
    analysed = _analysed(out)
    assert [(o.context.trigger.severity, o.analysis) for o in analysed] == [
        ("info", "skipped"),
        ("warning", "analyzed"),
        ("critical", "analyzed"),
    ]
    assert len(server.chats()) == 2
    skipped = analysed[0]
    assert skipped.analysis_reason == (
        "below [alerts] min_severity = warning: not sent to the model"
    )
    assert skipped.insight is not None and skipped.insight.backend == "none"


def test_an_unexpected_error_in_a_backend_fails_the_analysis_not_the_flow(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(context: TriggerContext, number: int) -> MockReply:
        raise KeyError("bug")

    out = _run([make_context(0), make_context(1)], _ai(), backend=MockBackend(broken))
    assert [o.analysis for o in _analysed(out)] == ["failed", "failed"]
    assert _analysed(out)[0].analysis_reason == "unexpected error: KeyError: 'bug'"
    assert "unexpected error (not retried)" in caplog.text


# -- the end of a replay, and resuming ------------------------------------------------------------


def test_the_end_of_a_replay_waits_for_pending_requests() -> None:
    with LlmServer(latency=0.5) as server:
        out = _run([make_context(i) for i in range(3)], _ai(server))
    assert [o.analysis for o in _analysed(out)] == ["analyzed"] * 3


def test_the_end_of_a_replay_gives_up_at_the_drain_deadline() -> None:
    stats = AnalysisStats()
    started = time.monotonic()
    with LlmServer(latency=3.0) as server:
        out = _run([make_context(0)], _ai(server, drain_seconds=0.3), stats=stats)
    assert time.monotonic() - started < 2.5
    (result,) = _analysed(out)
    assert result.analysis == "failed"
    assert result.analysis_reason == (
        "no answer before the end of the run ([ai] drain_seconds = 0.3) after 1 attempt(s)"
    )
    assert stats.failures == {"drain_deadline": 1}


def test_a_resumed_flow_asks_again_for_what_was_pending(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 1)
    recovery = RecoveryConfig(str(tmp_path))
    items = [make_context(0), make_context(1), Watermark(T0 + 1), TestingSource.ABORT()]
    with LlmServer(latency=0.5) as server:
        ai = _ai(server)
        flow = Dataflow("resume_test")
        source = op.input("in", flow, TestingSource(items))
        out: list[Out] = []
        op.output("out", analyze_triggers("analysis", source, ai, ordered=True), TestingSink(out))
        run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
        assert out == []  # aborted while both requests were pending
        run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
        asked = sorted(_number(s.body) for s in server.chats())
    assert [type(o).__name__ for o in out] == ["AnalysedTrigger", "AnalysedTrigger", "Watermark"]
    assert [o.analysis for o in _analysed(out)] == ["analyzed", "analyzed"]
    assert asked == [0, 0, 1, 1]  # asked before the crash, and again after the resume
