"""The rules step: per-host windowed state and the trigger rules, wired into the dataflow.

PLACEHOLDER until the rules land: emits only the event-time watermark of each batch.
"""

from __future__ import annotations

import bytewax.operators as op
from bytewax.dataflow import Stream

from flows.config import Config
from operators.events import Event
from operators.triggers import TriggerContext, Watermark

__all__ = ["detect_triggers"]


def detect_triggers(
    step_id: str, events: op.KeyedStream[Event], config: Config
) -> Stream[TriggerContext | Watermark]:
    """Return the trigger contexts fired by `events` (keyed by host), then a watermark."""
    return op.flat_map_batch(
        step_id, events, lambda batch: [Watermark(max(event.ts for _, event in batch))]
    )
