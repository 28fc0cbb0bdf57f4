"""macOS `log stream --style ndjson` records as log events, and the command line."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from operators.events import EventError, LogEvent
from operators.sources.logstream import log_stream_argv, logstream_event, looks_like_logstream

# A record as `log stream --style ndjson` prints it (abridged: the fields Eyes does not read
# are kept to show they are ignored).
RECORD = {
    "traceID": 1234567890123,
    "eventMessage": "Failed to connect to server",
    "eventType": "logEvent",
    "source": None,
    "formatString": "%{public}s",
    "activityIdentifier": 0,
    "subsystem": "com.apple.network",
    "category": "connection",
    "threadID": 987654,
    "processImagePath": "/usr/libexec/nsurlsessiond",
    "senderImagePath": "/usr/lib/libnetwork.dylib",
    "timestamp": "2026-12-03 10:00:01.250000+0100",
    "machTimestamp": 81234567890,
    "messageType": "Error",
    "processID": 321,
    "parentActivityIdentifier": 0,
    "timezoneName": "",
}


def test_every_field_maps_to_the_trace_event() -> None:
    assert logstream_event(RECORD, "mac-1") == LogEvent(
        ts=datetime(2026, 12, 3, 9, 0, 1, 250000, tzinfo=timezone.utc).timestamp(),
        host="mac-1",
        level="error",
        message="Failed to connect to server",
        process="nsurlsessiond",
        pid=321,
        subsystem="com.apple.network",
        category="connection",
    )


@pytest.mark.parametrize(
    ("message_type", "level"),
    [
        ("Default", "notice"),
        ("Info", "info"),
        ("Debug", "debug"),
        ("Error", "error"),
        ("Fault", "fault"),
    ],
)
def test_message_types_map_to_levels(message_type: str, level: str) -> None:
    event = logstream_event({**RECORD, "messageType": message_type}, "h")
    assert event is not None and event.level == level


def test_empty_subsystem_and_category_are_absent() -> None:
    event = logstream_event({**RECORD, "subsystem": "", "category": ""}, "h")
    assert event is not None and (event.subsystem, event.category) == (None, None)


def test_records_that_are_not_log_events_give_none() -> None:
    assert logstream_event({**RECORD, "eventType": "activityCreateEvent"}, "h") is None


def test_an_iso_timestamp_is_read_too() -> None:
    event = logstream_event({**RECORD, "timestamp": "2026-12-03T09:00:01.25+00:00"}, "h")
    assert event is not None and event.ts == 1796288401.25


def test_a_record_without_message_is_an_error() -> None:
    with pytest.raises(EventError, match="log stream record has no eventMessage, got None"):
        logstream_event({**RECORD, "eventMessage": None}, "h")


def test_an_unknown_message_type_is_an_error() -> None:
    with pytest.raises(EventError, match="unknown log stream messageType 'Loud'"):
        logstream_event({**RECORD, "messageType": "Loud"}, "h")


def test_a_missing_timestamp_is_an_error() -> None:
    with pytest.raises(EventError, match="log stream record has no timestamp, got None"):
        logstream_event({**RECORD, "timestamp": None}, "h")


def test_a_bad_timestamp_is_an_error() -> None:
    with pytest.raises(EventError, match="log stream timestamp is not a time: 'yesterday'"):
        logstream_event({**RECORD, "timestamp": "yesterday"}, "h")


def test_a_timestamp_without_offset_is_an_error() -> None:
    with pytest.raises(EventError, match="log stream timestamp has no UTC offset"):
        logstream_event({**RECORD, "timestamp": "2026-12-03T10:00:01"}, "h")


def test_log_stream_records_are_told_from_other_json() -> None:
    assert looks_like_logstream(RECORD)
    assert not looks_like_logstream({"MESSAGE": "m"})


@pytest.mark.parametrize(
    ("min_level", "stream_level"),
    [("debug", "debug"), ("info", "info"), ("notice", "default"), ("fault", "default")],
)
def test_the_command_asks_for_the_matching_level(min_level: str, stream_level: str) -> None:
    assert log_stream_argv(min_level) == [
        "log",
        "stream",
        "--style",
        "ndjson",
        "--level",
        stream_level,
    ]
