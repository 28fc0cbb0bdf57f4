"""journald entries as log events, the journalctl command line, the saved cursor, the probe."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from operators.events import EventError, LogEvent
from operators.sources.journald import (
    CursorFile,
    cursor_time,
    journal_unavailable,
    journalctl_argv,
    journald_event,
    looks_like_journald,
)

# An entry as `journalctl --output=json` prints it: every value a string.
ENTRY = {
    "__CURSOR": "s=0b4c;i=1a2b;b=8f2b;m=3e8f1a;t=661bfac3981db;x=9c3e",
    "__REALTIME_TIMESTAMP": "1796292001250000",
    "__MONOTONIC_TIMESTAMP": "4097231",
    "_BOOT_ID": "8f2b6c0e1d5a4c3b9e7f0a1b2c3d4e5f",
    "_HOSTNAME": "somewhere-else",
    "_TRANSPORT": "stdout",
    "PRIORITY": "3",
    "SYSLOG_FACILITY": "3",
    "SYSLOG_IDENTIFIER": "nginx",
    "_PID": "811",
    "_UID": "33",
    "_COMM": "nginx-worker",
    "_EXE": "/usr/sbin/nginx",
    "_SYSTEMD_UNIT": "nginx.service",
    "MESSAGE": "upstream timed out (110: Connection timed out)",
}


def test_every_field_maps_to_the_trace_event() -> None:
    event = journald_event(ENTRY, "web-1")
    assert event == LogEvent(
        ts=1796292001.25,
        host="web-1",  # the configured host, not _HOSTNAME
        level="error",
        message="upstream timed out (110: Connection timed out)",
        process="nginx",
        pid=811,
        subsystem="nginx.service",
    )


@pytest.mark.parametrize(
    ("priority", "level"),
    [
        ("0", "fault"),
        ("1", "fault"),
        ("2", "fault"),
        ("3", "error"),
        ("4", "warning"),
        ("5", "notice"),
        ("6", "info"),
        ("7", "debug"),
    ],
)
def test_priority_strings_map_to_levels(priority: str, level: str) -> None:
    assert journald_event({**ENTRY, "PRIORITY": priority}, "h").level == level


def test_an_entry_without_priority_is_info() -> None:
    entry = {k: v for k, v in ENTRY.items() if k != "PRIORITY"}
    assert journald_event(entry, "h").level == "info"


def test_a_byte_array_message_is_decoded_with_bad_bytes_replaced() -> None:
    raw = [*"café ".encode(), 0xFF, 0x41]
    assert journald_event({**ENTRY, "MESSAGE": raw}, "h").message == "café \ufffdA"


def test_a_repeated_field_uses_its_first_value() -> None:
    entry = {**ENTRY, "MESSAGE": ["first", "second"], "SYSLOG_IDENTIFIER": [[104, 105], "x"]}
    event = journald_event(entry, "h")
    assert (event.message, event.process) == ("first", "hi")


def test_process_falls_back_to_comm_and_optional_fields_may_be_absent() -> None:
    entry = {
        "__REALTIME_TIMESTAMP": "1000000",
        "PRIORITY": "6",
        "_COMM": "kworker",
        "MESSAGE": "m",
    }
    event = journald_event(entry, "h")
    assert (event.ts, event.process, event.pid, event.subsystem) == (1.0, "kworker", None, None)


def test_a_missing_message_is_an_error() -> None:
    with pytest.raises(EventError, match="journald entry has no MESSAGE") as info:
        journald_event({**ENTRY, "MESSAGE": None}, "h")
    assert info.value.reason == "no_message"


def test_a_missing_timestamp_is_an_error() -> None:
    entry = {k: v for k, v in ENTRY.items() if k != "__REALTIME_TIMESTAMP"}
    with pytest.raises(EventError, match="journald entry has no __REALTIME_TIMESTAMP"):
        journald_event(entry, "h")


def test_a_timestamp_that_is_not_microseconds_is_an_error() -> None:
    with pytest.raises(EventError, match="__REALTIME_TIMESTAMP is not microseconds: 'soon'"):
        journald_event({**ENTRY, "__REALTIME_TIMESTAMP": "soon"}, "h")


def test_a_priority_outside_0_to_7_is_an_error() -> None:
    with pytest.raises(EventError, match="PRIORITY must be 0 to 7, got '9'"):
        journald_event({**ENTRY, "PRIORITY": "9"}, "h")


def test_journald_entries_are_told_from_other_json() -> None:
    assert looks_like_journald(ENTRY)
    assert not looks_like_journald({"kind": "log", "message": "m"})


def test_the_command_follows_new_entries_at_the_minimum_level() -> None:
    assert journalctl_argv("warning") == [
        "journalctl",
        "--follow",
        "--output=json",
        "--all",
        "--priority=0..4",
        "--lines=0",
    ]
    assert journalctl_argv("debug", "s=1;i=2")[-2:] == ["--priority=0..7", "--after-cursor=s=1;i=2"]


def test_cursor_time_reads_the_t_field() -> None:
    assert cursor_time("s=1;i=2;t=f4240;x=3") == 1.0
    assert cursor_time("s=1;i=2") is None
    assert cursor_time("t=zz") is None


def test_the_cursor_file_is_written_at_most_every_interval_and_read_back(tmp_path: Path) -> None:
    now = [0.0]
    path = tmp_path / "eyes" / "journald.cursor"
    cursors = CursorFile(path, min_interval=5.0, clock=lambda: now[0])
    assert cursors.read() is None
    cursors.update("s=1;i=1")
    assert path.read_text() == "s=1;i=1\n"
    cursors.update("s=1;i=2")
    assert path.read_text() == "s=1;i=1\n"  # too soon
    now[0] = 5.0
    cursors.update("s=1;i=3")
    assert path.read_text() == "s=1;i=3\n"
    cursors.update("s=1;i=4")
    cursors.flush()
    assert CursorFile(path).read() == "s=1;i=4"
    assert [p.name for p in path.parent.iterdir()] == ["journald.cursor"]


def test_a_file_that_holds_no_cursor_is_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journald.cursor"
    path.write_text("\n\n")
    with caplog.at_level(logging.WARNING):
        assert CursorFile(path).read() is None
    assert "does not hold a cursor" in caplog.text


def test_an_unwritable_cursor_file_is_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    cursors = CursorFile(blocker / "journald.cursor")
    with caplog.at_level(logging.WARNING):
        cursors.update("s=1;i=1")
        cursors.update("s=1;i=2")
        cursors.flush()
    assert caplog.text.count("cannot save the cursor") == 1
    assert cursors.cursor == "s=1;i=2"


def test_the_probe_finds_a_machine_without_journal(
    fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert journal_unavailable() is None
    monkeypatch.setenv("FAKE_JOURNALCTL_NO_JOURNAL", "hold")
    assert journal_unavailable() == "journalctl: No journal files were found."


def test_the_probe_finds_a_missing_program() -> None:
    assert journal_unavailable("eyes-no-such-journalctl") == (
        "cannot run 'eyes-no-such-journalctl': No such file or directory"
    )
