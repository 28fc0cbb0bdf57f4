"""Hand-built events and configurations for the rules' tests; times are seconds after `T0`."""

from __future__ import annotations

import dataclasses
from typing import Any

from flows.config import Config
from operators.events import DiskEvent, LogEvent, MetricsEvent

__all__ = ["T0", "config_with", "disk", "log", "metrics"]

T0 = 1_796_292_000.0  # 2026-12-03T10:00:00Z


def log(
    at: float,
    message: str,
    *,
    level: str = "error",
    process: str | None = "app",
    subsystem: str | None = "app.service",
    host: str = "web-1",
    id: str | int | None = None,
    pid: int | None = None,
) -> LogEvent:
    """Return a log line `at` seconds after `T0`."""
    return LogEvent(
        ts=T0 + at,
        host=host,
        level=level,
        message=message,
        process=process,
        pid=pid,
        subsystem=subsystem,
        id=id,
    )


def metrics(
    at: float,
    *,
    host: str = "web-1",
    id: str | int | None = None,
    pressure: str | None = None,
    quality: dict[str, str] | None = None,
    **values: float,
) -> MetricsEvent:
    """Return a metrics sample `at` seconds after `T0` with the numeric `values` given."""
    return MetricsEvent(
        ts=T0 + at,
        host=host,
        values=values,
        mem_pressure=pressure,
        quality=quality or {},
        id=id,
    )


def disk(
    at: float,
    device: str = "nvme0n1",
    *,
    read: float | None = None,
    write: float | None = None,
    host: str = "web-1",
    id: str | int | None = None,
) -> DiskEvent:
    """Return a disk sample `at` seconds after `T0`."""
    values = {}
    if read is not None:
        values["read_bytes_per_s"] = read
    if write is not None:
        values["write_bytes_per_s"] = write
    return DiskEvent(ts=T0 + at, host=host, device=device, values=values, id=id)


def config_with(config: Config | None = None, **sections: dict[str, Any]) -> Config:
    """Return `config` (default: the built-in defaults) with some keys replaced.

    `config_with(state={"reorder_seconds": 0}, rules={"cooldown_seconds": 10},
    error_frequency={"threshold": 2})`: `state` and `rules` name those tables, any other
    name a table under `[rules]`.
    """
    config = config or Config()
    state = dataclasses.replace(config.state, **sections.pop("state", {}))
    rules = dataclasses.replace(config.rules, **sections.pop("rules", {}))
    for name, values in sections.items():
        rules = dataclasses.replace(
            rules, **{name: dataclasses.replace(getattr(rules, name), **values)}
        )
    return dataclasses.replace(config, state=state, rules=rules)
