"""The `mock` backend: scripted answers, delays and failures, for tests and demos.

In: a `TriggerContext`. Out: the scripted reply's text, parsed like a real model's answer, or
its scripted error, after its delay. Without a script (`[ai] backend = "mock"`), every context
gets a plausible answer built from the rule's own reason, at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import orjson
from typing_extensions import override

from backends.base import Answer, Backend
from backends.errors import BackendError
from operators.triggers import TriggerContext

__all__ = ["MockBackend", "MockReply", "demo_answer"]


@dataclass(frozen=True, slots=True)
class MockReply:
    """One scripted reply: after `delay` seconds, raise `error` if set, else answer `text`."""

    text: str = ""
    error: BackendError | None = None
    delay: float = 0.0
    truncated: bool = False


def demo_answer(context: TriggerContext) -> str:
    """Return a plausible answer (JSON text) for `context`, built from the rule's reason."""
    trigger = context.trigger
    return orjson.dumps(
        {
            "summary": f"{trigger.rule} on {trigger.host} ({trigger.key}): {trigger.reason}",
            "root_cause": f"Mock analysis: the {trigger.rule} rule's evidence points at "
            f"{trigger.key}.",
            "severity": trigger.severity,
            "confidence": 0.5,
            "evidence": [item.text for item in trigger.evidence[:3]],
            "recommendations": [f"Check {trigger.key} on {trigger.host}."],
        }
    ).decode()


Script = Sequence[MockReply] | Callable[[TriggerContext, int], MockReply]


class MockBackend(Backend):
    """Plays a script: the n-th call gets `replies[n]` (or `replies(context, n)`).

    After a sequence runs out, calls get `demo_answer`. `calls` lists the trigger ids asked,
    in call order. Never does I/O; its only waiting is the scripted delay.

    Args:
        replies: the script, a sequence or a function of (context, call number from 0).
        model: the model name copied into the insights.
        sleep: how delays are waited (tests may pass a fake).
    """

    name = "mock"

    def __init__(
        self,
        replies: Script | None = None,
        *,
        model: str = "mock",
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.model = model
        self.calls: list[str] = []
        self._replies = replies if replies is not None else ()
        self._sleep = sleep

    def _reply(self, context: TriggerContext, number: int) -> MockReply:
        if callable(self._replies):
            return self._replies(context, number)
        if number < len(self._replies):
            return self._replies[number]
        return MockReply(demo_answer(context))

    @override
    async def answer(self, context: TriggerContext) -> Answer:
        number = len(self.calls)
        self.calls.append(context.id)
        reply = self._reply(context, number)
        if reply.delay > 0:
            await self._sleep(reply.delay)
        if reply.error is not None:
            raise reply.error
        return Answer(reply.text, self.model, truncated=reply.truncated)
