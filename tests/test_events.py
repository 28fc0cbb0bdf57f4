from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.events import (
    LEVELS,
    MAX_LINE_BYTES,
    MAX_LINE_TEXT,
    DiskEvent,
    EventError,
    LogEvent,
    MetricsEvent,
    event_to_json,
    format_ts,
    level_rank,
    parse_event,
    parse_line,
    parse_ts,
)


def test_rfc3339_and_unix_seconds_give_the_same_time() -> None:
    assert parse_ts("2026-12-03T10:00:01.250Z") == 1796292001.25
    assert parse_ts("2026-12-03T11:00:01.250+01:00") == 1796292001.25
    assert parse_ts(1796292001.25) == 1796292001.25
    assert parse_ts(1796292001) == 1796292001.0


def test_a_time_without_offset_is_rejected() -> None:
    with pytest.raises(EventError, match="has no UTC offset"):
        parse_ts("2026-12-03T10:00:01")


@pytest.mark.parametrize("raw", [True, None, [1], "yesterday", float("nan")])
def test_a_time_that_is_not_a_time_is_rejected(raw: object) -> None:
    with pytest.raises(EventError, match="'ts'"):
        parse_ts(raw)


def test_format_ts_writes_rfc3339_utc_with_milliseconds() -> None:
    assert format_ts(1796292001.25) == "2026-12-03T10:00:01.250Z"


def test_a_log_line_parses_every_field() -> None:
    line = (
        b'{"kind":"log","ts":"2026-12-03T10:00:01.250Z","host":"web-1","level":"error",'
        b'"process":"nginx","pid":811,"subsystem":"nginx.service","category":"http",'
        b'"message":"upstream timed out","id":"e1"}'
    )
    event = parse_line(line, "replay")
    assert event == LogEvent(
        ts=1796292001.25,
        host="web-1",
        level="error",
        message="upstream timed out",
        process="nginx",
        pid=811,
        subsystem="nginx.service",
        category="http",
        id="e1",
    )
    assert event.source == "nginx/nginx.service"


def test_host_defaults_to_the_given_name() -> None:
    event = parse_line('{"kind":"log","ts":1,"level":"info","message":"m"}', "replay")
    assert event is not None and event.host == "replay"


def test_metrics_keep_every_number_as_a_series_and_unknown_fields_as_extra() -> None:
    event = parse_event(
        {
            "kind": "metrics",
            "ts": 5,
            "cpu_percent": 97.5,
            "custom_temp_c": 71,
            "mem_pressure": "warning",
            "quality": {"cpu_percent": "measured"},
            "note": "hot",
        },
        "h",
    )
    assert isinstance(event, MetricsEvent)
    assert event.values == {"cpu_percent": 97.5, "custom_temp_c": 71}
    assert event.mem_pressure == "warning"
    assert event.quality == {"cpu_percent": "measured"}
    assert event.extra == {"note": "hot"}


def test_a_disk_sample_needs_a_device() -> None:
    with pytest.raises(EventError, match="disk event has no 'device'"):
        parse_event({"kind": "disk", "ts": 1, "read_bytes_per_s": 5}, "h")


def test_a_named_metric_of_the_wrong_type_is_rejected() -> None:
    with pytest.raises(EventError, match="'read_bytes_per_s' must be a number, got 'fast'"):
        parse_event({"kind": "disk", "ts": 1, "device": "sda", "read_bytes_per_s": "fast"}, "h")


@pytest.mark.parametrize(
    ("line", "reason", "match"),
    [
        (b'{"kind":"log"', "invalid_json", "invalid JSON"),
        (b'{"kind":"log","ts":1,"level":"error","message":"\xff"}', "not_utf8", "not UTF-8"),
        (b"[1,2]", "not_an_object", "expected a JSON object, got list"),
        (b'{"ts":1}', "missing_field", "missing 'kind'"),
        (b'{"kind":"trace","ts":1}', "unknown_kind", "unknown 'kind' 'trace'"),
        (b'{"kind":"log","level":"info","message":"m"}', "missing_field", "missing 'ts'"),
        (b'{"kind":"log","ts":1,"message":"m"}', "missing_field", "no 'level'"),
        (b'{"kind":"log","ts":1,"level":"loud","message":"m"}', "invalid_field", "'loud'"),
        (b'{"kind":"log","ts":1,"level":"info"}', "missing_field", "no 'message'"),
        (b'{"kind":"log","ts":1,"level":"info","message":3}', "invalid_field", "'message' must"),
        (b'{"kind":"log","ts":1,"level":"info","message":"m","pid":"x"}', "invalid_field", "pid"),
        (b'{"kind":"log","ts":1,"level":"info","message":"m","host":""}', "invalid_field", "host"),
        (b'{"kind":"log","ts":1,"level":"info","message":"m","id":1.5}', "invalid_field", "'id'"),
        (b'{"kind":"metrics","ts":1,"mem_pressure":"high"}', "invalid_field", "mem_pressure"),
        (b'{"kind":"metrics","ts":1,"quality":{"a":"guess"}}', "invalid_field", "quality"),
        (b'{"kind":["log"],"ts":1}', "unknown_kind", "unknown 'kind' \\['log'\\]"),
        (b'{"kind":"log","ts":1,"level":["error"],"message":"m"}', "invalid_field", "'level'"),
        (b'{"kind":"log","ts":1,"level":{},"message":"m"}', "invalid_field", "'level'"),
        (b'{"kind":"metrics","ts":1,"mem_pressure":["warning"]}', "invalid_field", "mem_pressure"),
        (b'{"kind":"log","ts":1796292000000,"level":"info","message":"m"}', "invalid_field",
         "between 1970 and 9999, got 1796292000000 \\(milliseconds"),
        (b'{"kind":"log","ts":1e20,"level":"info","message":"m"}', "invalid_field", "9999"),
        (b'{"kind":"log","ts":-1.5,"level":"info","message":"m"}', "invalid_field", "1970"),
        (b'{"kind":"log","ts":"0001-01-01T00:00:00Z","level":"info","message":"m"}',
         "invalid_field", "between 1970 and 9999"),
    ],
)  # fmt: skip
def test_a_bad_line_says_why(line: bytes, reason: str, match: str) -> None:
    with pytest.raises(EventError, match=match) as caught:
        parse_line(line, "h")
    assert caught.value.reason == reason


def test_a_line_over_one_mebibyte_is_rejected() -> None:
    line = b'{"kind":"log","ts":1,"level":"info","message":"' + b"x" * MAX_LINE_BYTES + b'"}'
    with pytest.raises(EventError, match="longer than 1048576 bytes") as caught:
        parse_line(line, "h")
    assert caught.value.reason == "too_long"


def test_messages_name_the_line_limit_as_it_is() -> None:
    assert f"{MAX_LINE_BYTES >> 20} MiB" == MAX_LINE_TEXT


def test_a_line_of_exactly_one_mebibyte_and_its_newline_is_an_event() -> None:
    head = b'{"kind":"log","ts":1,"level":"info","message":"'
    line = head + b"x" * (MAX_LINE_BYTES - len(head) - 2) + b'"}'
    assert len(line) == MAX_LINE_BYTES
    event = parse_line(line + b"\n", "h")
    assert isinstance(event, LogEvent) and len(event.message) == MAX_LINE_BYTES - len(head) - 2


def test_a_byte_order_mark_before_the_first_event_is_ignored() -> None:
    line = "\ufeff".encode() + b'{"kind":"log","ts":1,"level":"info","message":"m"}\n'
    event = parse_line(line, "h")
    assert isinstance(event, LogEvent) and event.message == "m"


@pytest.mark.parametrize("line", [b"", b"   \n", b"# a comment", "  # indented comment"])
def test_blank_lines_and_comments_are_not_events(line: bytes | str) -> None:
    assert parse_line(line, "h") is None


def test_levels_are_ordered_by_severity() -> None:
    assert [level_rank(name) for name in LEVELS] == list(range(6))
    assert level_rank("fault") > level_rank("error") > level_rank("warning")


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_ts = st.floats(min_value=0, max_value=4e9, allow_nan=False)
_number = st.one_of(st.integers(-(10**9), 10**9), st.floats(allow_nan=False, allow_infinity=False))
_events = st.one_of(
    st.builds(
        LogEvent,
        ts=_ts,
        host=_text.filter(bool),
        level=st.sampled_from(LEVELS),
        message=_text,
        process=st.none() | _text,
        pid=st.none() | st.integers(0, 2**22),
        subsystem=st.none() | _text,
        category=st.none() | _text,
        id=st.none() | _text | st.integers(0, 10**6),
        extra=st.dictionaries(st.sampled_from(["x_note", "x_tag"]), _text),
    ),
    st.builds(
        MetricsEvent,
        ts=_ts,
        host=_text.filter(bool),
        values=st.dictionaries(st.sampled_from(["cpu_percent", "load1", "x_temp"]), _number),
        mem_pressure=st.none() | st.sampled_from(["normal", "warning", "critical"]),
        quality=st.dictionaries(
            st.sampled_from(["cpu_percent"]), st.sampled_from(["measured", "estimated"])
        ),
    ),
    st.builds(
        DiskEvent,
        ts=_ts,
        host=_text.filter(bool),
        device=_text.filter(bool),
        values=st.dictionaries(st.sampled_from(["read_bytes_per_s", "util_percent"]), _number),
    ),
)


@given(_events)
def test_every_event_survives_a_round_trip_through_json(event: LogEvent) -> None:
    assert parse_line(event_to_json(event), "other") == event
    assert orjson.loads(event_to_json(event))["kind"] == event.kind
