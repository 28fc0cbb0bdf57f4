"""The LLM step. PLACEHOLDER until the AI stage lands: every trigger is `skipped`."""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Stream

from flows.config import AiConfig
from operators.records import AnalysedTrigger
from operators.triggers import TriggerContext, Watermark

__all__ = ["analyze_triggers"]


def _skip(item: TriggerContext | Watermark) -> AnalysedTrigger | Watermark:
    if isinstance(item, Watermark):
        return item
    return AnalysedTrigger(item, "skipped", None)


def analyze_triggers(
    step_id: str, triggers: Stream[TriggerContext | Watermark], ai: AiConfig, *, ordered: bool
) -> Stream[AnalysedTrigger | Watermark]:
    """Return each trigger with its analysis; watermarks pass in order when `ordered`."""
    return op.map(step_id, triggers, _skip)
