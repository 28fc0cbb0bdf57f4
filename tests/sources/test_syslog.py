"""The text syslog fallback: levels inferred from words, both line formats, following a file."""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from operators.events import MAX_LINE_BYTES
from operators.sources.syslog import FileFollower, first_readable, infer_level, syslog_event
from tests.sources.conftest import wait_for


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("kernel panic - not syncing", "fault"),
        ("CRITICAL: disk failing", "fault"),
        ("Failed to start nginx.service", "error"),
        ("error: connection refused", "error"),
        ("WARNING: low memory", "warning"),
        ("notice: config reloaded", "notice"),
        ("debug: tick", "debug"),
        ("Started Session 42 of user root.", "info"),
        ("terrorist-free zone; errands done", "info"),  # whole words only
    ],
)
def test_the_level_is_inferred_from_whole_words(text: str, level: str) -> None:
    assert infer_level(text) == level


def test_an_iso_line_gives_its_time_process_and_pid() -> None:
    line = "2026-12-03T10:00:01.250000+01:00 web-1 nginx[811]: upstream error"
    event = syslog_event(line, "me", now=0.0)
    assert event.ts == datetime(2026, 12, 3, 9, 0, 1, 250000, tzinfo=timezone.utc).timestamp()
    assert (event.host, event.process, event.pid, event.message, event.level) == (
        "me",
        "nginx",
        811,
        "upstream error",
        "error",
    )


def test_a_traditional_line_is_local_time_of_this_year() -> None:
    now = datetime(2026, 12, 3, 12, 0, 0).timestamp()
    event = syslog_event("Dec  3 10:00:01 web-1 kernel: segfault at 0", "me", now)
    assert event.ts == datetime(2026, 12, 3, 10, 0, 1).timestamp()
    assert (event.process, event.pid, event.message) == ("kernel", None, "segfault at 0")


def test_a_traditional_line_from_december_read_in_january_is_last_year() -> None:
    now = datetime(2027, 1, 1, 0, 0, 5).timestamp()
    event = syslog_event("Dec 31 23:59:59 web-1 cron[1]: tick", "me", now)
    assert event.ts == datetime(2026, 12, 31, 23, 59, 59).timestamp()


def test_a_line_in_no_known_format_keeps_its_text_and_the_read_time() -> None:
    event = syslog_event("just some words", "me", now=123.0)
    assert (event.ts, event.message, event.process, event.level) == (
        123.0,
        "just some words",
        None,
        "info",
    )


def test_first_readable_skips_missing_files(tmp_path: Path) -> None:
    present = tmp_path / "messages"
    present.write_text("")
    assert first_readable([tmp_path / "syslog", present]) == present
    assert first_readable([tmp_path / "syslog"]) is None


class _Lines:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, line: bytes) -> None:
        with self.lock:
            self.lines.append(line)


def test_the_follower_reads_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "syslog"
    path.write_bytes(b"old line\n")
    lines = _Lines()
    follower = FileFollower("logs", path, lines, poll_seconds=0.01)
    follower.start()
    try:
        with open(path, "ab") as handle:
            handle.write(b"new 1\nhalf")
            handle.flush()
            wait_for(lambda: lines.lines == [b"new 1"], what="the first new line")
            handle.write(b" done\n")
            handle.flush()
            wait_for(lambda: lines.lines == [b"new 1", b"half done"], what="the finished line")
    finally:
        follower.close()


def test_the_follower_follows_rotation_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "syslog"
    path.write_bytes(b"")
    lines = _Lines()
    follower = FileFollower("logs", path, lines, poll_seconds=0.01)
    follower.start()
    try:
        with open(path, "ab") as handle:
            handle.write(b"before rotation\n")
        wait_for(lambda: lines.lines == [b"before rotation"], what="the first line")
        os.rename(path, tmp_path / "syslog.1")
        path.write_bytes(b"after rotation\n")
        wait_for(lambda: follower.rotations == 1 and len(lines.lines) == 2, what="rotation")
        path.write_bytes(b"cut\n")  # copytruncate: same inode, shorter than the position
        wait_for(lambda: len(lines.lines) == 3, what="truncation")
        assert lines.lines[1:] == [b"after rotation", b"cut"]
    finally:
        follower.close()


def test_the_follower_cuts_lines_over_one_mib(tmp_path: Path) -> None:
    path = tmp_path / "syslog"
    path.write_bytes(b"x" * (MAX_LINE_BYTES + 10) + b"\nnext\n")
    lines = _Lines()
    follower = FileFollower("logs", path, lines, poll_seconds=0.01, from_start=True)
    follower.start()
    try:
        wait_for(lambda: len(lines.lines) == 2, what="both lines")
    finally:
        follower.close()
    assert [len(line) for line in lines.lines] == [MAX_LINE_BYTES, 4]
    assert follower.cut == 1


def test_only_the_first_cut_line_of_a_file_is_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "syslog"
    path.write_bytes((b"x" * (MAX_LINE_BYTES + 1) + b"\n") * 2 + b"next\n")
    lines = _Lines()
    follower = FileFollower("logs", path, lines, poll_seconds=0.01, from_start=True)
    with caplog.at_level(logging.WARNING):
        follower.start()
        try:
            wait_for(lambda: len(lines.lines) == 3, what="the three lines")
        finally:
            follower.close()
    assert follower.cut == 2
    assert [r.getMessage() for r in caplog.records] == [
        f"logs: a line of {path} longer than 1 MiB was cut to its first 1 MiB "
        "(the rest is skipped); later cuts are only counted"
    ]


def test_the_follower_waits_for_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "syslog"
    lines = _Lines()
    follower = FileFollower("logs", path, lines, poll_seconds=0.01)
    follower.start()
    try:
        path.write_bytes(b"hello\n")
        wait_for(lambda: lines.lines == [b"hello"], what="the line of the new file")
    finally:
        follower.close()
