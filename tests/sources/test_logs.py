"""The live log source against fake `journalctl` and `log` programs on PATH."""

from __future__ import annotations

import json
import logging
import os
import resource
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from operators.events import MAX_LINE_BYTES, EventError, LogEvent
from operators.sources.base import BoundedQueue, DropLog, EofPartition
from operators.sources.journald import CursorFile
from operators.sources.logs import LogsSource, _Decoder
from operators.sources.supervise import SupervisedCommand
from tests.sources.conftest import collect, pid_alive, pids_in, wait_for
from tests.sources.test_journald import ENTRY
from tests.sources.test_logstream import RECORD


@contextmanager
def _partition(source: LogsSource) -> Iterator[Any]:
    part = source.build("eyes.logs", 0, 1)
    try:
        yield part
    finally:
        part.close()


def _entries(path: Path, *entries: dict[str, Any]) -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def _argvs(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _messages(events: list[LogEvent]) -> list[str]:
    return [e.message for e in events]


@pytest.fixture
def journal(fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The fake journalctl on PATH, writing its pids and argv into `tmp_path`."""
    monkeypatch.setenv("FAKE_PID_FILE", str(tmp_path / "pids"))
    monkeypatch.setenv("FAKE_ARGV_FILE", str(tmp_path / "argv"))
    return tmp_path


def _source(tmp_path: Path, **kwargs: Any) -> LogsSource:
    kwargs.setdefault("platform", "linux")
    kwargs.setdefault("cursor_path", tmp_path / "journald.cursor")
    kwargs.setdefault("syslog_paths", [tmp_path / "no-syslog"])
    kwargs.setdefault("sleep", lambda delay: None)
    kwargs.setdefault("poll_seconds", 0.01)
    return LogsSource("web-1", **kwargs)


def test_journal_entries_become_log_events(journal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entries = _entries(
        journal / "entries.jsonl",
        {
            "PRIORITY": "3",
            "SYSLOG_IDENTIFIER": "nginx",
            "_PID": "811",
            "_SYSTEMD_UNIT": "nginx.service",
            "MESSAGE": "upstream timed out",
        },
        {"PRIORITY": "0", "SYSLOG_IDENTIFIER": None, "_COMM": "kernel", "_SYSTEMD_UNIT": None},
    )
    monkeypatch.setenv("FAKE_JOURNALCTL_ENTRIES", str(entries))
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "2")
    monkeypatch.setenv("FAKE_JOURNALCTL_START_US", "1796292001250000")
    with _partition(_source(journal)) as part:
        events, eof = collect(part, lambda items: len(items) >= 2)
    assert not eof
    assert events == [
        LogEvent(
            1796292001.25, "web-1", "error", "upstream timed out", "nginx", 811, "nginx.service"
        ),
        LogEvent(1796292001.251, "web-1", "fault", "fake journal line 2", "kernel", 4242),
    ]
    assert _argvs(journal / "argv") == [
        ["journalctl", "--follow", "--output=json", "--all", "--priority=0..6", "--lines=0"]
    ]


def test_a_byte_array_message_arrives_decoded(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "1")
    monkeypatch.setenv("FAKE_JOURNALCTL_BYTES", "1")
    with _partition(_source(journal)) as part:
        events, _ = collect(part, lambda items: len(items) >= 1)
    assert _messages(events) == ["fake journal line 1"]


def test_journalctl_is_asked_for_the_minimum_level_and_lower_ones_are_dropped(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = _entries(
        journal / "entries.jsonl",
        {"PRIORITY": "6", "MESSAGE": "info {n}"},
        {"PRIORITY": "4", "MESSAGE": "warning {n}"},
    )
    monkeypatch.setenv("FAKE_JOURNALCTL_ENTRIES", str(entries))
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "4")
    with _partition(_source(journal, min_level="warning")) as part:
        events, _ = collect(part, lambda items: len(items) >= 2)
    assert _messages(events) == ["warning 2", "warning 4"]
    assert "--priority=0..4" in _argvs(journal / "argv")[0]


def test_a_journalctl_that_dies_is_restarted_after_the_last_cursor(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "2")
    monkeypatch.setenv("FAKE_JOURNALCTL_DIE_AFTER", "2")
    delays: list[float] = []
    with _partition(_source(journal, sleep=delays.append)) as part:
        events, _ = collect(part, lambda items: len(items) >= 6)
        feed = part.feed
    assert _messages(events[:6]) == [f"fake journal line {n}" for n in range(1, 7)]
    argvs = _argvs(journal / "argv")
    assert argvs[0][-1] == "--lines=0"
    assert all(argv[-1].startswith("--after-cursor=s=") for argv in argvs[1:])
    assert isinstance(feed, SupervisedCommand) and feed.delays[:2] == [1, 2]
    assert len(set(pids_in(journal / "pids"))) >= 3


def test_the_cursor_is_saved_at_close_and_resumed_from_at_the_next_start(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "3")
    with _partition(_source(journal)) as part:
        events, _ = collect(part, lambda items: len(items) >= 3)
    saved = (journal / "journald.cursor").read_text().strip()
    assert ";i=3;" in saved
    with _partition(_source(journal)) as part:
        events, _ = collect(part, lambda items: len(items) >= 1)
    assert events[0].message == "fake journal line 4"
    assert _argvs(journal / "argv")[1][-1] == f"--after-cursor={saved}"


def test_a_saved_cursor_older_than_an_hour_is_not_resumed_from(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = int((time.time() - 7200) * 1_000_000)
    CursorFile(journal / "journald.cursor").update(f"s=1;i=9;t={old:x}")
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "1")
    with _partition(_source(journal)) as part:
        collect(part, lambda items: len(items) >= 1)
    assert _argvs(journal / "argv")[0][-1] == "--lines=0"


def test_a_cursor_journalctl_cannot_seek_to_is_given_up(
    journal: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    CursorFile(journal / "journald.cursor").update(f"s=1;i=9;t={int(time.time() * 1e6):x}")
    monkeypatch.setenv("FAKE_JOURNALCTL_BAD_CURSOR", "1")
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "1")
    with caplog.at_level(logging.WARNING), _partition(_source(journal)) as part:
        events, _ = collect(part, lambda items: len(items) >= 1)
    argvs = _argvs(journal / "argv")
    assert argvs[0][-1].startswith("--after-cursor=s=1;i=9;t=")
    assert argvs[1][-1] == "--lines=0"
    assert _messages(events) == ["fake journal line 1"]
    assert "journalctl exited before printing anything after the saved cursor" in caplog.text


def test_without_a_journal_the_syslog_file_is_followed(
    journal: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_JOURNALCTL_NO_JOURNAL", "hold")
    messages = journal / "messages"
    messages.write_text("Dec  3 10:00:00 web-1 old[1]: before Eyes started\n")
    source = _source(journal, syslog_paths=[journal / "syslog", messages], syslog_poll_seconds=0.01)
    with caplog.at_level(logging.WARNING), _partition(source) as part:
        wait_for(lambda: part.feed is not None and part.feed.name == "logs", what="fallback")
        with open(messages, "a") as handle:
            handle.write("2026-12-03T10:00:01+00:00 web-1 nginx[811]: connect() failed\n")
        events, _ = collect(part, lambda items: len(items) >= 1)
    assert events == [LogEvent(1796292001.0, "web-1", "error", "connect() failed", "nginx", 811)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "logs: the systemd journal is unavailable (journalctl: No journal files were found.); "
        f"following {messages} instead"
    ]
    assert not (journal / "pids").exists()  # the follower never started


def test_the_journal_is_said_to_be_followed_only_once_the_probe_found_it(
    journal: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_JOURNALCTL_NO_JOURNAL", "exit")
    with caplog.at_level(logging.INFO), _partition(_source(journal)) as part:
        _, eof = collect(part)
    assert eof
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "following the systemd journal" in m], said
    assert "logs: the systemd journal is unavailable" in said[0]
    monkeypatch.delenv("FAKE_JOURNALCTL_NO_JOURNAL")
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "1")
    caplog.clear()
    with caplog.at_level(logging.INFO), _partition(_source(journal)) as part:
        collect(part, lambda items: len(items) >= 1)
    assert "logs: following the systemd journal (journalctl --follow)" in [
        r.getMessage() for r in caplog.records
    ]


def test_a_journal_line_over_one_mib_is_cut_said_once_and_counted_at_close(
    journal: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    entries = _entries(
        journal / "entries.jsonl",
        {"MESSAGE": "x" * (MAX_LINE_BYTES + 10)},  # cut, so no longer JSON: dropped too
        {"MESSAGE": "short {n}"},
    )
    monkeypatch.setenv("FAKE_JOURNALCTL_ENTRIES", str(entries))
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "4")
    with caplog.at_level(logging.WARNING), _partition(_source(journal)) as part:
        events, _ = collect(part, lambda items: len(items) >= 2)
        drops = dict(part.drops.dropped)
    assert _messages(events) == ["short 2", "short 4"]
    assert drops == {"unparseable": 2}
    said = [r.getMessage() for r in caplog.records if "unparseable" not in r.getMessage()]
    assert said == [
        "logs (journalctl): a stdout line longer than 1 MiB was cut to its first 1 MiB "
        "(the rest is skipped); later cuts are only counted",
        "logs: 2 lines cut at 1 MiB, 0 lines with invalid UTF-8 replaced, 0 lost at close",
    ]


def test_lines_the_close_kept_out_of_the_queue_are_counted_at_close(
    journal: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "5")  # written at once; the queue holds one
    with caplog.at_level(logging.WARNING), _partition(_source(journal, queue_items=1)) as part:
        wait_for(lambda: len(part._queue) == 1, what="the queue to fill")
    assert [r.getMessage() for r in caplog.records] == [
        "logs: 0 lines cut at 1 MiB, 0 lines with invalid UTF-8 replaced, 4 lost at close"
    ]


def test_a_syslog_file_s_cut_and_invalid_utf8_lines_are_said_once_and_counted_at_close(
    journal: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_JOURNALCTL_NO_JOURNAL", "hold")
    syslog = journal / "syslog"
    syslog.write_bytes(b"")
    source = _source(journal, syslog_paths=[syslog], syslog_poll_seconds=0.01)
    with caplog.at_level(logging.WARNING), _partition(source) as part:
        wait_for(lambda: part.feed is not None and part.feed.name == "logs", what="fallback")
        with open(syslog, "ab") as handle:
            handle.write(b"x" * (MAX_LINE_BYTES + 1) + b"\n")
            handle.write(b"web-1 app: bad \xff byte\n")
            handle.write(b"y" * (MAX_LINE_BYTES + 5) + b"\n")
            handle.write(b"web-1 app: worse \xfe\xff\n")
            handle.write(b"web-1 app: fine\n")
        events, _ = collect(part, lambda items: len(items) >= 5)
    assert [e.message[:12] for e in events] == [
        "x" * 12,
        "web-1 app: b",
        "y" * 12,
        "web-1 app: w",
        "web-1 app: f",
    ]
    said = [r.getMessage() for r in caplog.records]
    assert said[1:] == [
        f"logs: a line of {syslog} longer than 1 MiB was cut to its first 1 MiB "
        "(the rest is skipped); later cuts are only counted",
        "logs: a line with invalid UTF-8 was read with U+FFFD in place of the bad bytes: "
        "b'web-1 app: bad \\xff byte'; later ones are only counted",
        "logs: 2 lines cut at 1 MiB, 2 lines with invalid UTF-8 replaced, 0 lost at close",
    ]
    assert "the systemd journal is unavailable" in said[0]


def test_a_journalctl_that_exits_saying_no_journal_falls_back_too(
    journal: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The probe finds a journal, then the follower itself says there is none and exits 1.
    script = journal / "bin" / "journalctl"
    script.parent.mkdir()
    script.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import sys
            if "--follow" in sys.argv:
                sys.stderr.write("No journal files were found.\\n")
                sys.exit(1)
            """
        )
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    with caplog.at_level(logging.WARNING), _partition(_source(journal)) as part:
        events, eof = collect(part)
    assert eof and events == []
    assert caplog.text.count("No journal files were found.") == 1
    assert "log watching is off (metrics and disk go on)" in caplog.text


def test_without_journal_or_syslog_the_source_ends_saying_why(
    journal: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FAKE_JOURNALCTL_NO_JOURNAL", "exit")
    with caplog.at_level(logging.WARNING), _partition(_source(journal)) as part:
        events, eof = collect(part)
    assert eof and events == []
    assert [r.getMessage() for r in caplog.records] == [
        "logs: the systemd journal is unavailable (journalctl: No journal files were found.), "
        f"and neither {journal / 'no-syslog'} is readable; "
        "log watching is off (metrics and disk go on)"
    ]


def test_a_missing_journalctl_falls_back_like_a_missing_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with caplog.at_level(logging.WARNING), _partition(_source(tmp_path)) as part:
        _, eof = collect(part)
    assert eof
    assert "cannot run 'journalctl': No such file or directory" in caplog.text


def test_a_missing_custom_program_is_reported_once_and_the_source_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = _source(tmp_path, command="eyes-no-such-tool --follow")
    with caplog.at_level(logging.WARNING), _partition(source) as part:
        events, eof = collect(part)
    assert eof and events == []
    assert [r.getMessage() for r in caplog.records] == [
        "logs: cannot run 'eyes-no-such-tool': No such file or directory; "
        "log watching is off (metrics and disk go on)"
    ]


def test_a_custom_command_may_print_trace_journald_or_log_stream_lines(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = [
        orjson.dumps({"kind": "log", "ts": 5.0, "host": "db-1", "level": "error", "message": "a"}),
        orjson.dumps({"kind": "log", "ts": 6.0, "level": "error", "message": "b"}),
        orjson.dumps(ENTRY),
        orjson.dumps(RECORD),
        orjson.dumps({**ENTRY, "PRIORITY": "7", "MESSAGE": "too detailed"}),
        orjson.dumps({**RECORD, "eventType": "activityCreateEvent"}),
        b"not json at all",
        b'{"MESSAGE": "bad \xff byte", "__REALTIME_TIMESTAMP": "1000000"}',
        b"[1, 2]",
        b'{"something": "else"}',
        b"",
    ]
    trace = tmp_path / "lines"
    trace.write_bytes(b"\n".join(lines) + b"\n")
    printer = (
        f"import sys, time; sys.stdout.buffer.write(open({str(trace)!r}, 'rb').read()); "
        "sys.stdout.flush(); time.sleep(300)"
    )
    command = [sys.executable, "-c", printer]
    with caplog.at_level(logging.WARNING), _partition(_source(tmp_path, command=command)) as part:
        events, _ = collect(part, lambda items: len(items) >= 5)
        wait_for(lambda: part.drops.total >= 3, what="the drops to be counted")
        drops = dict(part.drops.dropped)
    assert [(e.host, e.message, e.level) for e in events] == [
        ("db-1", "a", "error"),  # a trace event keeps its own host
        ("web-1", "b", "error"),
        ("web-1", ENTRY["MESSAGE"], "error"),
        ("web-1", RECORD["eventMessage"], "error"),
        ("web-1", "bad \ufffd byte", "info"),
    ]
    assert drops == {"unparseable": 2, "unknown_shape": 1}


def test_log_stream_is_followed_on_macos(
    fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = _entries(
        tmp_path / "entries.jsonl",
        {"messageType": "Debug", "eventMessage": "debug {n}"},
        {"messageType": "Fault", "eventMessage": "fault {n}"},
        {"messageType": "Info", "eventMessage": "info {n}"},
    )
    monkeypatch.setenv("FAKE_LOG_ENTRIES", str(entries))
    monkeypatch.setenv("FAKE_LOG_LINES", "6")
    monkeypatch.setenv("FAKE_LOG_START", "1796292001.25")
    monkeypatch.setenv("FAKE_LOG_TZ", "+0100")
    monkeypatch.setenv("FAKE_ARGV_FILE", str(tmp_path / "argv"))
    with _partition(_source(tmp_path, platform="darwin")) as part:
        events, _ = collect(part, lambda items: len(items) >= 4)
    assert [(e.level, e.message, e.process, e.pid) for e in events] == [
        ("fault", "fault 1", "faked", 321),
        ("info", "info 2", "faked", 321),
        ("fault", "fault 4", "faked", 321),
        ("info", "info 5", "faked", 321),
    ]
    assert events[0].ts == pytest.approx(1796292001.251)
    assert _argvs(tmp_path / "argv") == [["log", "stream", "--style", "ndjson", "--level", "info"]]


def test_a_flood_never_blocks_next_batch_and_stays_bounded(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    total = 100_000
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", str(total))
    source = _source(journal, queue_items=2000, batch_size=500)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    slowest = 0.0
    longest = 0
    count = 0
    last = ""
    with _partition(source) as part:
        deadline = time.monotonic() + 120
        while count < total and time.monotonic() < deadline:
            started = time.perf_counter()
            batch = part.next_batch()
            slowest = max(slowest, time.perf_counter() - started)
            longest = max(longest, len(batch))
            count += len(batch)
            if batch:
                last = batch[-1].message
            else:
                time.sleep(0.001)
    rss_growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert count == total and last == f"fake journal line {total}"  # nothing dropped
    assert longest <= 500
    assert slowest < 0.5, f"next_batch took {slowest:.3f} s"
    assert rss_growth_mb < 100, f"RSS grew {rss_growth_mb:.0f} MB"


def test_close_stops_the_child(journal: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with _partition(_source(journal)):
        pid = wait_for(lambda: pids_in(journal / "pids"), what="journalctl to start")[0]
        assert pid_alive(pid)
    wait_for(lambda: not pid_alive(pid), what="journalctl to exit")


def test_only_worker_0_reads_the_log(tmp_path: Path) -> None:
    assert isinstance(_source(tmp_path).build("eyes.logs", 1, 2), EofPartition)


def test_the_source_runs_in_a_dataflow_until_stopped(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "5")
    out: list[LogEvent] = []
    source = _source(journal, stop=lambda: len(out) >= 5)
    flow = Dataflow("test")
    op.output("out", op.input("logs", flow, source), TestingSink(out))
    run_main(flow)
    assert _messages(out) == [f"fake journal line {n}" for n in range(1, 6)]
    pid = pids_in(journal / "pids")[0]
    wait_for(lambda: not pid_alive(pid), what="journalctl to exit after the flow")


def test_on_a_platform_without_a_system_log_the_source_ends_saying_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING), _partition(_source(tmp_path, platform="win32")) as part:
        events, eof = collect(part)
    assert eof and events == []
    assert "logs: no system log follower for platform 'win32'; log watching is off" in caplog.text


@pytest.mark.parametrize(
    ("line", "message", "reason"),
    [
        ("not json", "not JSON", "unparseable"),
        ("[1, 2]", "not a JSON object", "unparseable"),
        ('{"x": 1}', "neither journald, log stream nor trace JSON", "unknown_shape"),
    ],
)
def test_lines_of_a_custom_command_that_are_no_event_say_why(
    line: str, message: str, reason: str
) -> None:
    decoder = _Decoder("any", "h", "info", BoundedQueue(10), DropLog("logs"), None)
    with pytest.raises(EventError, match=message) as info:
        decoder._event(line)
    assert info.value.reason == reason


def test_a_line_refused_after_the_stop_is_counted_and_kept_out_of_the_cursor(
    tmp_path: Path,
) -> None:
    queue: BoundedQueue[LogEvent] = BoundedQueue(10)
    cursor = CursorFile(tmp_path / "journald.cursor", min_interval=0)
    decoder = _Decoder("journald", "h", "info", queue, DropLog("logs"), cursor)
    first = {**ENTRY, "__CURSOR": "s=1;i=1"}
    later = {**ENTRY, "__CURSOR": "s=1;i=2"}
    decoder(orjson.dumps(first))
    queue.close()
    decoder(orjson.dumps(later))
    assert [e.message for e in queue.drain(10)] == [ENTRY["MESSAGE"]]
    assert decoder.lost_at_close == 1
    assert cursor.cursor == "s=1;i=1"


def test_a_stop_passes_on_what_was_queued_before_it_and_then_ends(
    journal: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", "20")
    stopped = [False]
    with _partition(_source(journal, stop=lambda: stopped[0])) as part:
        wait_for(lambda: part._decoder is not None and part._decoder.lines == 20, what="20 lines")
        stopped[0] = True
        events = list(part.next_batch())
        with pytest.raises(StopIteration):
            part.next_batch()
    assert _messages(events) == [f"fake journal line {n}" for n in range(1, 21)]
