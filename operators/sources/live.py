"""The live sources of one machine, by step id: `logs`, `metrics` and `disk` (when enabled).

Each runs on worker 0 only (other workers get an empty partition), so `-w N` still reads the
machine once. See `LogsSource`, `MetricsSource` and `DiskSource` for their contracts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bytewax.inputs import Source

from flows.config import Config, data_dir
from operators.events import Event
from operators.sources.disk import DiskSource
from operators.sources.logs import LogsSource
from operators.sources.metrics import MetricsSource

__all__ = ["CURSOR_FILE", "live_sources"]

log = logging.getLogger(__name__)

# The journald cursor, in the user's data directory.
CURSOR_FILE = "journald.cursor"


def live_sources(
    config: Config, host: str, *, stop: Callable[[], bool] | None = None
) -> dict[str, Source[Event]]:
    """Return the enabled live sources by step id (`logs`, `metrics`, `disk`).

    Args:
        config: the effective configuration (`[sources.*]`).
        host: the host name every event carries (trace events of a custom log command may
            name their own).
        stop: when given and it returns True, every source ends (a bounded recording).
    """
    sources: dict[str, Source[Event]] = {}
    logs = config.sources.logs
    if logs.enabled:
        sources["logs"] = LogsSource(
            host,
            command=logs.command,
            min_level=logs.min_level,
            cursor_path=data_dir() / CURSOR_FILE if logs.command == "auto" else None,
            stop=stop,
        )
    metrics = config.sources.metrics
    if metrics.enabled:
        sources["metrics"] = MetricsSource(
            host,
            metrics.interval_seconds,
            warning_psi=metrics.pressure_warning_psi,
            critical_psi=metrics.pressure_critical_psi,
            stop=stop,
        )
    disk = config.sources.disk
    if disk.enabled:
        sources["disk"] = DiskSource(host, disk.interval_seconds, devices=disk.devices, stop=stop)
    disabled = [name for name in ("logs", "metrics", "disk") if name not in sources]
    if disabled:
        log.info("live sources turned off in [sources]: %s", ", ".join(disabled))
    return sources
