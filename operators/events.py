"""The event records of a trace: parse, validate and serialise them (TRACE_FORMAT.md section 1).

One JSON object per line goes in; a typed, immutable event comes out, or an `EventError` that
says why the line is not an event. Unknown fields are kept in `extra` and written back unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from operators.errors import EyesError

__all__ = [
    "LEVELS",
    "MAX_LINE_BYTES",
    "MAX_LINE_TEXT",
    "DiskEvent",
    "Event",
    "EventError",
    "LogEvent",
    "MetricsEvent",
    "event_to_dict",
    "event_to_json",
    "format_ts",
    "level_rank",
    "parse_event",
    "parse_line",
    "parse_ts",
]

LEVELS: tuple[str, ...] = ("debug", "info", "notice", "warning", "error", "fault")
_LEVEL_RANK = {name: rank for rank, name in enumerate(LEVELS)}
MAX_LINE_BYTES = 1 << 20
MAX_LINE_TEXT = "1 MiB"  # MAX_LINE_BYTES, as messages say it
# Event times are Unix seconds from 1970 to the end of year 9999: what a datetime can hold, and
# what tells seconds from milliseconds (1796292000000 is a year beyond 50,000).
_MAX_TS = 253_402_300_800.0
_BOMS: dict[type, Any] = {bytes: "\ufeff".encode(), str: "\ufeff"}
_NEWLINES: dict[type, Any] = {bytes: b"\r\n", str: "\r\n"}
_PRESSURES = frozenset({"normal", "warning", "critical"})
_QUALITIES = frozenset({"measured", "derived", "estimated"})
_COMMON = frozenset({"kind", "ts", "host", "id"})
_LOG_FIELDS = _COMMON | {"level", "message", "process", "pid", "subsystem", "category"}
_METRICS_RESERVED = _COMMON | {"mem_pressure", "quality"}
_DISK_RESERVED = _COMMON | {"device"}
# Named numeric fields: a value of another type is an error, not an unknown extra field.
_METRIC_FIELDS = frozenset(
    {
        "cpu_percent",
        "mem_used_percent",
        "psi_mem_some_avg10",
        "psi_mem_full_avg10",
        "swap_used_percent",
        "load1",
        "cpu_power_mw",
        "gpu_power_mw",
    }
)
_DISK_FIELDS = frozenset(
    {"read_bytes_per_s", "write_bytes_per_s", "read_ops_per_s", "write_ops_per_s", "util_percent"}
)


class EventError(EyesError, ValueError):
    """A line or object that is not a valid event; the message says why, `reason` is its class.

    Reasons: `too_long`, `not_utf8`, `invalid_json`, `not_an_object`, `unknown_kind`,
    `missing_field`, `invalid_field`.
    """

    def __init__(self, message: str, reason: str = "invalid_field") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LogEvent:
    """One log line. `level` is one of `LEVELS`; `ts` is Unix seconds (event time)."""

    ts: float
    host: str
    level: str
    message: str
    process: str | None = None
    pid: int | None = None
    subsystem: str | None = None
    category: str | None = None
    id: str | int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    kind = "log"

    @property
    def source(self) -> str:
        """The `process/subsystem` key that log rules group by."""
        return f"{self.process or '-'}/{self.subsystem or '-'}"


@dataclass(frozen=True, slots=True)
class MetricsEvent:
    """One sample of the whole machine: every numeric field in `values`, by name."""

    ts: float
    host: str
    values: Mapping[str, float]
    mem_pressure: str | None = None
    quality: Mapping[str, str] = field(default_factory=dict)
    id: str | int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    kind = "metrics"


@dataclass(frozen=True, slots=True)
class DiskEvent:
    """One sample of one device: throughput, ops and busy percent in `values`, by name."""

    ts: float
    host: str
    device: str
    values: Mapping[str, float]
    id: str | int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    kind = "disk"


Event = LogEvent | MetricsEvent | DiskEvent


def level_rank(level: str) -> int:
    """Return the position of `level` in `LEVELS` (debug = 0 ... fault = 5)."""
    return _LEVEL_RANK[level]


def parse_ts(raw: object) -> float:
    """Return Unix seconds from an RFC 3339 string with offset or a number.

    Raises:
        EventError: `raw` is neither, or the string has no offset.
    """
    if type(raw) is float and 0.0 <= raw < _MAX_TS:  # the common case
        return raw
    if isinstance(raw, bool):
        raise EventError(f"'ts' must be an RFC 3339 string or Unix seconds, got {raw!r}")
    if isinstance(raw, (int, float)):
        return _in_range(float(raw), raw)
    if not isinstance(raw, str):
        raise EventError(f"'ts' must be an RFC 3339 string or Unix seconds, got {raw!r}")
    text = raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise EventError(f"'ts' is not an RFC 3339 time: {raw!r}") from None
    if moment.tzinfo is None:
        raise EventError(f"'ts' has no UTC offset: {raw!r}")
    return _in_range(moment.timestamp(), raw)


def _in_range(ts: float, raw: object) -> float:
    if 0.0 <= ts < _MAX_TS:
        return ts
    if ts != ts or ts in (float("inf"), float("-inf")):
        raise EventError(f"'ts' must be finite, got {raw!r}")
    msg = f"'ts' must be Unix seconds between 1970 and 9999, got {raw!r}"
    if ts >= _MAX_TS:
        msg += " (milliseconds or microseconds?)"
    raise EventError(msg)


def format_ts(ts: float) -> str:
    """Return `ts` (Unix seconds) as RFC 3339 UTC with milliseconds, e.g. `...T10:00:01.250Z`."""
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _optional_str(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is None or isinstance(value, str):
        return value
    raise EventError(f"{name!r} must be a string, got {value!r}")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# The parsers build events through the slot descriptors: the same object as `LogEvent(...)`
# (the classes have no `__post_init__`), without the frozen `__init__`'s `object.__setattr__`
# per field, which was the largest cost of parsing a line.
_new = object.__new__


def _setters(cls: type, names: str) -> tuple[Callable[[Any, Any], None], ...]:
    fields = tuple(f.name for f in dataclasses.fields(cls))
    if fields != tuple(names.split()):
        msg = f"{cls.__name__} has the fields {fields}; update its builder below"
        raise TypeError(msg)
    return tuple(getattr(cls, name).__set__ for name in fields)


_LOG_SET = _setters(LogEvent, "ts host level message process pid subsystem category id extra")
_METRICS_SET = _setters(MetricsEvent, "ts host values mem_pressure quality id extra")
_DISK_SET = _setters(DiskEvent, "ts host device values id extra")


def _new_log(
    ts: float,
    host: str,
    level: str,
    message: str,
    process: str | None,
    pid: int | None,
    subsystem: str | None,
    category: str | None,
    event_id: Any,
    extra: dict[str, Any],
    s: tuple[Callable[[Any, Any], None], ...] = _LOG_SET,
) -> LogEvent:
    obj = _new(LogEvent)
    s[0](obj, ts)
    s[1](obj, host)
    s[2](obj, level)
    s[3](obj, message)
    s[4](obj, process)
    s[5](obj, pid)
    s[6](obj, subsystem)
    s[7](obj, category)
    s[8](obj, event_id)
    s[9](obj, extra)
    return obj


def _new_metrics(
    ts: float,
    host: str,
    values: dict[str, float],
    pressure: str | None,
    quality: Mapping[str, str],
    event_id: Any,
    extra: dict[str, Any],
    s: tuple[Callable[[Any, Any], None], ...] = _METRICS_SET,
) -> MetricsEvent:
    obj = _new(MetricsEvent)
    s[0](obj, ts)
    s[1](obj, host)
    s[2](obj, values)
    s[3](obj, pressure)
    s[4](obj, quality)
    s[5](obj, event_id)
    s[6](obj, extra)
    return obj


def _new_disk(
    ts: float,
    host: str,
    device: str,
    values: dict[str, float],
    event_id: Any,
    extra: dict[str, Any],
    s: tuple[Callable[[Any, Any], None], ...] = _DISK_SET,
) -> DiskEvent:
    obj = _new(DiskEvent)
    s[0](obj, ts)
    s[1](obj, host)
    s[2](obj, device)
    s[3](obj, values)
    s[4](obj, event_id)
    s[5](obj, extra)
    return obj


def _split_numbers(
    obj: Mapping[str, Any], reserved: frozenset[str], named: frozenset[str]
) -> tuple[dict[str, float], dict[str, Any]]:
    """Split the fields of a sample into numeric series and unknown extra fields."""
    values: dict[str, float] = {}
    extra: dict[str, Any] = {}
    for name, value in obj.items():
        if name in reserved:
            continue
        kind = type(value)
        if kind is float or kind is int or _number(value):
            values[name] = value
        elif name in named and value is not None:
            raise EventError(f"{name!r} must be a number, got {value!r}")
        else:
            extra[name] = value
    return values, extra


def _parse_log(obj: Mapping[str, Any], ts: float, host: str, event_id: Any) -> LogEvent:
    get = obj.get
    level = get("level")
    if level is None:
        raise EventError("log event has no 'level'", "missing_field")
    if type(level) is not str or level not in _LEVEL_RANK:
        raise EventError(f"unknown 'level' {level!r}, expected one of {', '.join(LEVELS)}")
    message = get("message")
    if type(message) is not str:
        if message is None:
            raise EventError("log event has no 'message'", "missing_field")
        if not isinstance(message, str):
            raise EventError(f"'message' must be a string, got {message!r}")
    pid = get("pid")
    if (
        pid is not None
        and type(pid) is not int
        and (not isinstance(pid, int) or isinstance(pid, bool))
    ):
        raise EventError(f"'pid' must be an integer, got {pid!r}")
    if _LOG_FIELDS.issuperset(obj):
        extra: dict[str, Any] = {}
    else:
        extra = {k: v for k, v in obj.items() if k not in _LOG_FIELDS}
    process = get("process")
    if process is not None and type(process) is not str:
        process = _optional_str(obj, "process")
    subsystem = get("subsystem")
    if subsystem is not None and type(subsystem) is not str:
        subsystem = _optional_str(obj, "subsystem")
    category = get("category")
    if category is not None and type(category) is not str:
        category = _optional_str(obj, "category")
    return _new_log(ts, host, level, message, process, pid, subsystem, category, event_id, extra)


def _parse_metrics(obj: Mapping[str, Any], ts: float, host: str, event_id: Any) -> MetricsEvent:
    pressure = obj.get("mem_pressure")
    if pressure is not None and (type(pressure) is not str or pressure not in _PRESSURES):
        raise EventError(
            f"'mem_pressure' must be one of normal, warning, critical, got {pressure!r}"
        )
    quality = obj.get("quality") or {}
    if not isinstance(quality, dict) or any(
        not isinstance(q, str) or q not in _QUALITIES for q in quality.values()
    ):
        raise EventError(
            f"'quality' must map field names to measured, derived or estimated, got {quality!r}"
        )
    values, extra = _split_numbers(obj, _METRICS_RESERVED, _METRIC_FIELDS)
    return _new_metrics(ts, host, values, pressure, quality, event_id, extra)


def _parse_disk(obj: Mapping[str, Any], ts: float, host: str, event_id: Any) -> DiskEvent:
    device = obj.get("device")
    if device is None:
        raise EventError("disk event has no 'device'", "missing_field")
    if not isinstance(device, str) or not device:
        raise EventError(f"'device' must be a non-empty string, got {device!r}")
    values, extra = _split_numbers(obj, _DISK_RESERVED, _DISK_FIELDS)
    return _new_disk(ts, host, device, values, event_id, extra)


_PARSERS = {"log": _parse_log, "metrics": _parse_metrics, "disk": _parse_disk}


def parse_event(obj: object, default_host: str) -> Event:
    """Return the event that the decoded JSON value `obj` describes.

    Args:
        obj: a decoded JSON value, expected to be an object.
        default_host: the host of events that carry none.

    Raises:
        EventError: `obj` is not a valid event; the message names the field and the value.
    """
    if not isinstance(obj, dict):
        raise EventError(f"expected a JSON object, got {type(obj).__name__}", "not_an_object")
    kind = obj.get("kind")
    parser = _PARSERS.get(kind) if type(kind) is str else None
    if parser is None:
        if kind is None:
            raise EventError("missing 'kind'", "missing_field")
        raise EventError(f"unknown 'kind' {kind!r}, expected log, metrics or disk", "unknown_kind")
    if "ts" not in obj:
        raise EventError("missing 'ts'", "missing_field")
    ts = obj["ts"]
    if type(ts) is not float or not 0.0 <= ts < _MAX_TS:
        ts = parse_ts(ts)
    host = obj.get("host", default_host)
    if (type(host) is not str and not isinstance(host, str)) or not host:
        raise EventError(f"'host' must be a non-empty string, got {host!r}")
    event_id = obj.get("id")
    id_type = type(event_id)
    if (
        event_id is not None
        and id_type is not int
        and id_type is not str
        and (isinstance(event_id, bool) or not isinstance(event_id, (str, int)))
    ):
        raise EventError(f"'id' must be a string or an integer, got {event_id!r}")
    return parser(obj, ts, host, event_id)


def parse_line(line: bytes | str, default_host: str) -> Event | None:
    """Return the event on one trace line, or None for a blank line or a `#` comment.

    Raises:
        EventError: the line is too long, not UTF-8, not JSON, or not a valid event.
    """
    if len(line) > MAX_LINE_BYTES and len(line.rstrip(_NEWLINES[type(line)])) > MAX_LINE_BYTES:
        raise EventError(f"line is longer than {MAX_LINE_BYTES} bytes ({len(line)})", "too_long")
    if line[:1] == b"{":
        # The common case: no copy without the newline (JSON allows white space after the
        # value); a line that does not decode takes the path below, for the same message.
        try:
            return parse_event(orjson.loads(line), default_host)
        except orjson.JSONDecodeError:
            pass
    stripped = line.strip()
    if stripped.startswith(_BOMS[type(stripped)]):  # a UTF-8 byte order mark opens the file
        stripped = stripped[len(_BOMS[type(stripped)]) :]
    if not stripped or stripped[:1] in (b"#", "#"):
        return None
    try:
        obj = orjson.loads(stripped)
    except orjson.JSONDecodeError as exc:
        if isinstance(stripped, bytes):
            try:
                stripped.decode("utf-8")
            except UnicodeDecodeError as uexc:
                raise EventError(f"not UTF-8 (byte {uexc.start})", "not_utf8") from None
        raise EventError(f"invalid JSON: {exc}", "invalid_json") from None
    return parse_event(obj, default_host)


def event_to_dict(event: Event) -> dict[str, Any]:
    """Return `event` as the JSON object a trace file holds (unknown fields included)."""
    out: dict[str, Any] = {"kind": event.kind, "ts": event.ts, "host": event.host}
    if event.id is not None:
        out["id"] = event.id
    if isinstance(event, LogEvent):
        out["level"] = event.level
        for name in ("process", "pid", "subsystem", "category"):
            value = getattr(event, name)
            if value is not None:
                out[name] = value
        out["message"] = event.message
    elif isinstance(event, MetricsEvent):
        out.update(event.values)
        if event.mem_pressure is not None:
            out["mem_pressure"] = event.mem_pressure
        if event.quality:
            out["quality"] = dict(event.quality)
    else:
        out["device"] = event.device
        out.update(event.values)
    out.update(event.extra)
    return out


def event_to_json(event: Event) -> bytes:
    """Return `event` as one JSON Lines record, without the newline."""
    return orjson.dumps(event_to_dict(event))
