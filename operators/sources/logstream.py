"""The macOS unified log: the `log stream` command line and its ndjson records as `LogEvent`s.

In: one decoded `log stream --style ndjson` record. Out: a `LogEvent` (TRACE_FORMAT.md
section 1): `eventMessage` -> message; `messageType` Default -> notice, Info -> info, Debug ->
debug, Error -> error, Fault -> fault; the base name of `processImagePath` -> process;
`processID` -> pid; `subsystem`, `category` as they are (empty means absent); `timestamp`
(`2026-12-03 10:00:01.250000+0100`) -> ts. Records other than log events (activities,
signposts, loss reports) are not log lines and give None.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from operators.events import EventError, LogEvent

__all__ = ["log_stream_argv", "logstream_event", "looks_like_logstream"]

_LEVEL_OF_TYPE = {
    "Default": "notice",
    "Info": "info",
    "Debug": "debug",
    "Error": "error",
    "Fault": "fault",
}
# `log stream --level` shows that level and the ones above: default covers Default, Error, Fault.
_STREAM_LEVEL = {"debug": "debug", "info": "info"}
_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f%z"


def log_stream_argv(min_level: str, program: str = "log") -> list[str]:
    """Return the `log stream` command that prints every record at `min_level` and above.

    `log stream` knows three levels (default, info, debug); levels above notice are filtered
    again after mapping.
    """
    return [
        program,
        "stream",
        "--style",
        "ndjson",
        "--level",
        _STREAM_LEVEL.get(min_level, "default"),
    ]


def looks_like_logstream(record: Mapping[str, Any]) -> bool:
    """Return True when a decoded JSON object has the shape of a `log stream` record."""
    return "eventMessage" in record or "messageType" in record


def _parse_timestamp(raw: Any) -> float:
    if not isinstance(raw, str):
        raise EventError(f"log stream record has no timestamp, got {raw!r}", "missing_field")
    try:
        return datetime.strptime(raw, _TS_FORMAT).timestamp()
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise EventError(f"log stream timestamp is not a time: {raw!r}") from None
    if moment.tzinfo is None:
        raise EventError(f"log stream timestamp has no UTC offset: {raw!r}")
    return moment.timestamp()


def _name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def logstream_event(record: Mapping[str, Any], host: str) -> LogEvent | None:
    """Return the log event of one decoded `log stream --style ndjson` record.

    Args:
        record: the decoded JSON object.
        host: the host the event belongs to.

    Returns:
        The event, or None for a record that is not a log event (`eventType` other than
        `logEvent`).

    Raises:
        EventError: the record has no message, an unknown `messageType` or a bad timestamp.
    """
    event_type = record.get("eventType", "logEvent")
    if event_type != "logEvent":
        return None
    message = record.get("eventMessage")
    if not isinstance(message, str):
        raise EventError(f"log stream record has no eventMessage, got {message!r}", "no_message")
    message_type = record.get("messageType")
    level = _LEVEL_OF_TYPE.get(message_type)  # type: ignore[arg-type]
    if level is None:
        raise EventError(f"unknown log stream messageType {message_type!r}")
    ts = _parse_timestamp(record.get("timestamp"))
    image = _name(record.get("processImagePath"))
    process = image.rsplit("/", 1)[-1] if image else None
    pid = record.get("processID")
    if not isinstance(pid, int) or isinstance(pid, bool):
        pid = None
    return LogEvent(
        ts,
        host,
        level,
        message,
        process or None,
        pid,
        _name(record.get("subsystem")),
        _name(record.get("category")),
    )
