"""The alert stage. PLACEHOLDER until the alert policy lands: every alert is `delivered`."""

from __future__ import annotations

from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Stream

from flows.config import AlertsConfig
from operators.records import AlertRecord, AnalysedTrigger
from operators.triggers import Watermark

__all__ = ["alert_stage"]


def _deliver(item: AnalysedTrigger | Watermark) -> list[AlertRecord]:
    return [] if isinstance(item, Watermark) else [AlertRecord(item, "delivered")]


def alert_stage(
    step_id: str,
    analysed: Stream[AnalysedTrigger | Watermark],
    alerts: AlertsConfig,
    *,
    live: bool,
    database: Path,
) -> Stream[AlertRecord]:
    """Return one final record per analysed trigger."""
    return op.flat_map(step_id, analysed, _deliver)
