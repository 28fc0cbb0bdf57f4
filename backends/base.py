"""The one interface every backend implements: an async `analyze(context) -> Insight`.

In: a `TriggerContext`. Out: a validated `Insight` (severity capped at the rule's, destructive
advice removed), or one of the errors of `backends.errors`. A backend that asks a model
implements `answer` (the protocol: prompt out, raw answer text back); `analyze` parses and
validates that text. Keeping the two apart lets `backends.recorded` store raw answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from backends.insight import parse_insight
from operators.records import Insight
from operators.triggers import TriggerContext

__all__ = ["Answer", "Backend"]


@dataclass(frozen=True, slots=True)
class Answer:
    """A model's raw answer: its text, the model that says it wrote it, and whether the server
    stopped it at `max_tokens` (`finish_reason` / `done_reason` "length")."""

    text: str
    model: str
    truncated: bool = False


class Backend(ABC):
    """Turns a trigger context into an insight by asking a model (or not).

    `name` and `model` say who answers; they are copied into every insight. A backend is built
    in any thread, but `answer`, `analyze` and `aclose` run on one asyncio loop (the process-wide
    loop of `operators.async_runner`): HTTP clients are created lazily inside that loop.

    `offline_reason` is not None for a backend that never asks a model: the caller then uses the
    rule-based insight directly, with no event-loop round trip, and records the reason.

    Never: `analyze` raises nothing but a `BackendError` (or `asyncio.CancelledError` when the
    caller cancels it). Not guaranteed: any bound on its duration; the caller applies
    `timeout_seconds`. Delivery: one request per call; retrying is the caller's decision.
    """

    name: str = "none"
    model: str = ""
    offline_reason: str | None = None

    @abstractmethod
    async def answer(self, context: TriggerContext) -> Answer:
        """Ask the model about `context` and return its raw answer.

        Raises:
            TransientBackendError: worth retrying later.
            PermanentBackendError: will fail again until the configuration changes.
            InvalidInsight: the server's reply has no answer in it.
        """

    async def analyze(self, context: TriggerContext) -> Insight:
        """Return the validated insight for `context` (`answer`, then parse and validate).

        Raises:
            TransientBackendError: worth retrying later.
            PermanentBackendError: will fail again until the configuration changes.
            InvalidInsight: the answer cannot be used as an insight.
        """
        reply = await self.answer(context)
        return parse_insight(
            reply.text,
            context.trigger,
            backend=self.name,
            model=reply.model or self.model,
            truncated=reply.truncated,
        )

    async def start(self) -> None:  # noqa: B027 - optional hook, nothing to start by default
        """Get ready to answer (e.g. start a helper process); the caller's request timeout
        does not run meanwhile. `analyze` works without it."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to close by default
        """Release the backend's connections; a later call opens new ones."""
