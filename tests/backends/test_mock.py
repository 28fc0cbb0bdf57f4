from __future__ import annotations

import asyncio

import pytest

from backends.errors import PermanentBackendError
from backends.mock import MockBackend, MockReply, demo_answer
from operators.records import Insight
from tests.contexts import make_context


def _run(backend: MockBackend, count: int) -> list[Insight | Exception]:
    async def go() -> list[Insight | Exception]:
        out: list[Insight | Exception] = []
        for i in range(count):
            try:
                out.append(await backend.analyze(make_context(i)))
            except PermanentBackendError as exc:
                out.append(exc)
        return out

    return asyncio.run(go())


def test_a_script_is_played_in_order_then_the_demo_answer() -> None:
    backend = MockBackend(
        [MockReply('{"summary": "first"}'), MockReply(error=PermanentBackendError("mock: 401"))]
    )
    first, second, third = _run(backend, 3)
    assert isinstance(first, Insight) and first.summary == "first"
    assert isinstance(second, PermanentBackendError) and str(second) == "mock: 401"
    assert isinstance(third, Insight) and third.root_cause.startswith("Mock analysis")
    assert backend.calls == [make_context(i).id for i in range(3)]


def test_a_scripted_error_is_raised() -> None:
    backend = MockBackend([MockReply(error=PermanentBackendError("mock: scripted"))])
    with pytest.raises(PermanentBackendError, match="mock: scripted"):
        asyncio.run(backend.analyze(make_context()))


def test_a_function_script_sees_the_context_and_the_call_number() -> None:
    backend = MockBackend(lambda c, n: MockReply(f'{{"summary": "{c.trigger.ts:.0f} {n}"}}'))
    assert [i.summary for i in _run(backend, 2)] == ["1796292000 0", "1796292001 1"]  # type: ignore[union-attr]


def test_delays_are_waited_with_the_given_sleep() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    backend = MockBackend([MockReply('{"summary": "s"}', delay=2.5)], sleep=fake_sleep)
    _run(backend, 1)
    assert slept == [2.5]


def test_the_demo_answer_is_a_valid_insight_of_the_rules_severity() -> None:
    context = make_context(severity="warning")
    insight = asyncio.run(MockBackend(model="demo").analyze(context))
    assert insight.summary == "crash on web-1 (kernel/-): " + context.trigger.reason
    assert (insight.severity, insight.backend, insight.model) == ("warning", "mock", "demo")
    assert '"confidence":0.5' in demo_answer(context)
