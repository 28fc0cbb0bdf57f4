"""The live sources. PLACEHOLDER until the live sources land: none."""

from __future__ import annotations

from bytewax.inputs import Source

from flows.config import Config
from operators.events import Event

__all__ = ["live_sources"]


def live_sources(config: Config, host: str) -> dict[str, Source[Event]]:
    """Return the enabled live sources by step id (`logs`, `metrics`, `disk`)."""
    return {}
