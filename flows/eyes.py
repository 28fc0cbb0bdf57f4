"""The Eyes dataflow, top to bottom as DESIGN.md draws it.

`python -m bytewax.run flows.eyes` runs it live with the configuration named by `EYES_CONFIG`
(or the built-in defaults); `eyes replay` builds the same flow over a `ReplaySource`.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.inputs import Source
from bytewax.outputs import Sink

from flows.config import Config, database_path, load_config
from operators.alerts.history import HistorySink
from operators.alerts.stage import alert_stage
from operators.analysis import analyze_triggers
from operators.detect import detect_triggers
from operators.errors import ConfigError
from operators.events import Event
from operators.records import AlertRecord

__all__ = ["build_flow", "get_flow"]


def _host_of(event: Event) -> str:
    return event.host


def build_flow(
    config: Config,
    sources: Mapping[str, Source[Event]],
    *,
    live: bool,
    records_sink: Sink[AlertRecord] | None = None,
) -> Dataflow:
    """Build the dataflow over `sources` (step id -> source of events).

    Args:
        config: the effective configuration.
        sources: the inputs, merged; at least one.
        live: True for the live run (the alert stage's clock is wall time), False for a replay
            (event time only, so the result does not depend on the machine's speed).
        records_sink: also write every final alert record here (the replay's `--out` file).
    """
    flow = Dataflow("eyes")
    inputs = [op.input(name, flow, source) for name, source in sources.items()]
    events = op.merge("merge_sources", *inputs)  # Event
    by_host = op.key_on("key_by_host", events, _host_of)  # (host, Event)
    triggers = detect_triggers("rules", by_host, config)  # TriggerContext | Watermark
    analysed = analyze_triggers(  # AnalysedTrigger | Watermark
        "analysis",
        triggers,
        config.ai,
        ordered=not live,
        skip_below=config.alerts.min_severity,  # suppressed alerts need no model
    )
    records = alert_stage(  # AlertRecord
        "alert_policy", analysed, config.alerts, live=live, database=database_path(config)
    )
    op.output("history", records, HistorySink(database_path(config)))  # SQLite history
    if records_sink is not None:
        op.output("alert_records", records, records_sink)  # --out JSON Lines
    return flow


def get_flow(config_path: str | None = None) -> Dataflow:
    """Build the live flow from `config_path`, else `EYES_CONFIG`, else the built-in defaults.

    SIGINT and SIGTERM end the live sources, so the flow drains and exits (`flows.live`).
    """
    from flows.live import live_flow  # flows.live builds on this module

    return live_flow(load_config(config_path))


def __getattr__(name: str) -> Dataflow:
    # `python -m bytewax.run flows.eyes` looks up the module attribute `flow`.
    if name != "flow":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import logging

    if not logging.getLogger().handlers:  # say what the sources use, as `eyes run` does
        logging.basicConfig(
            level=logging.INFO,
            format="eyes: %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
    try:
        return get_flow()
    except ConfigError as exc:
        print(f"eyes: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
