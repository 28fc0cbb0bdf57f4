"""The `none` backend: no model; every trigger gets the rule-based insight.

In: a `TriggerContext`. Out: `rule_based_insight(context)`. It costs one small object per
trigger: the LLM step sees `offline_reason` and never goes through the event loop.
"""

from __future__ import annotations

from typing_extensions import override

from backends.base import Answer, Backend
from backends.errors import PermanentBackendError
from backends.insight import rule_based_insight
from operators.records import Insight
from operators.triggers import TriggerContext

__all__ = ["NoneBackend"]


class NoneBackend(Backend):
    """Answers every context with the rule-based insight; never does I/O, never fails.

    Args:
        reason: why no model is asked, recorded as each alert's `analysis_reason`
            (e.g. "[ai] backend = none", or what the `auto` probe found).
    """

    name = "none"

    def __init__(self, reason: str = "[ai] backend = none") -> None:
        self.offline_reason = reason

    @override
    async def answer(self, context: TriggerContext) -> Answer:
        msg = f"backend none asks no model ({self.offline_reason}); use analyze()"
        raise PermanentBackendError(msg)

    @override
    async def analyze(self, context: TriggerContext) -> Insight:
        return rule_based_insight(context)
