"""The live log source: the system log (journald, `log stream`, a text syslog) or a custom command.

In: lines from a supervised child (`journalctl`, `log stream`, or the configured command) or
from a followed syslog file. Out: `LogEvent`s at `min_level` and above, in batches.

`command = "auto"` follows journald on Linux (resuming after the saved cursor) and falls back
to `/var/log/syslog` or `/var/log/messages` when the journal is unavailable; on macOS it runs
`log stream`. A custom command may print journald JSON, `log stream` ndjson or trace events,
one per line, told apart line by line. Events carry the configured host, except trace events
that name their own `host`.
"""

from __future__ import annotations

import functools
import logging
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from typing_extensions import override

from operators.events import (
    MAX_LINE_TEXT,
    Event,
    EventError,
    LogEvent,
    level_rank,
    parse_event,
)
from operators.sources.base import BoundedQueue, DropLog, EofPartition, awake_in
from operators.sources.journald import (
    JOURNAL_UNAVAILABLE,
    CursorFile,
    cursor_time,
    journal_unavailable,
    journalctl_argv,
    journald_event,
    looks_like_journald,
)
from operators.sources.logstream import log_stream_argv, logstream_event, looks_like_logstream
from operators.sources.sampling import MAX_SLEEP_SECONDS
from operators.sources.supervise import RestartPolicy, SupervisedCommand
from operators.sources.syslog import SYSLOG_PATHS, FileFollower, first_readable, syslog_event

__all__ = ["LogsSource"]

log = logging.getLogger(__name__)


def _lines(count: int) -> str:
    return f"{count} line" if count == 1 else f"{count} lines"


class _Feed(Protocol):
    def start(self) -> None: ...

    def close(self, timeout: float = 5.0) -> None: ...

    @property
    def cut(self) -> int: ...


class _Decoder:
    """Turns one raw line into an event for the queue, or counts why it cannot (reader thread).

    A line with invalid UTF-8 is kept, the bad bytes replaced by U+FFFD, and counted in
    `replaced` (the first is logged); a line read after the stop (or the close) is kept out of
    the queue, counted in `lost_at_close`, and not taken into the journald cursor, so that the
    next start reads it again. The partition reports both at close.
    """

    def __init__(
        self,
        shape: str,
        host: str,
        min_level: str,
        queue: BoundedQueue[Event],
        drops: DropLog,
        cursor: CursorFile | None,
    ) -> None:
        self.shape = shape
        self.host = host
        self.min_rank = level_rank(min_level)
        self.queue = queue
        self.drops = drops
        self.cursor = cursor
        self.lines = 0
        self.filtered = 0
        self.replaced = 0
        self.lost_at_close = 0
        self._line_cursor: str | None = None  # the journald cursor of the line being read

    def __call__(self, raw: bytes) -> None:
        self.lines += 1
        self._line_cursor = None
        if self._take(raw) and self._line_cursor is not None and self.cursor is not None:
            self.cursor.update(self._line_cursor)  # seen: queued, filtered out or bad, not lost

    def _take(self, raw: bytes) -> bool:
        """Queue the event on `raw`; return False only when the closed queue refused it."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("utf-8", "replace")
            self.replaced += 1
            if self.replaced == 1:
                log.warning(
                    "%s: a line with invalid UTF-8 was read with U+FFFD in place of the bad "
                    "bytes: %r; later ones are only counted",
                    self.drops.name,
                    raw[:200],
                )
        text = text.strip()
        if not text:
            return True
        try:
            event = self._event(text)
        except EventError as exc:
            self.drops.count(exc.reason, f"{exc}: {text[:200]!r}")
            return True
        if event is None:
            return True
        if isinstance(event, LogEvent) and level_rank(event.level) < self.min_rank:
            self.filtered += 1
            return True
        if not self.queue.put(event, len(raw)):
            self.lost_at_close += 1  # the partition stopped while this line waited for room
            return False
        return True

    def _event(self, text: str) -> Event | None:
        if self.shape == "syslog":
            return syslog_event(text, self.host, time.time())
        try:
            obj: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            if text.startswith("Filtering the log data"):  # `log stream`'s banner
                return None
            raise EventError("not JSON", "unparseable") from None
        if not isinstance(obj, dict):
            raise EventError("not a JSON object", "unparseable")
        if self.shape == "journald" or (self.shape == "any" and looks_like_journald(obj)):
            cursor = obj.get("__CURSOR")
            if isinstance(cursor, str):
                self._line_cursor = cursor  # saved once the line is taken, usable or not
            return journald_event(obj, self.host)
        if self.shape == "logstream" or (self.shape == "any" and looks_like_logstream(obj)):
            event = logstream_event(obj, self.host)
            if event is None:  # an activity, signpost or loss record: not a log line
                self.filtered += 1
            return event
        if "kind" in obj:
            return parse_event(obj, self.host)
        raise EventError("neither journald, log stream nor trace JSON", "unknown_shape")


class _JournaldArgs:
    """Builds journalctl's argv at each start: after the last cursor seen, else from now.

    A saved cursor older than `resume_within` seconds is not used (Eyes was stopped long ago);
    nor is one after which journalctl printed nothing before exiting (the journal was rotated
    away under it, so journalctl cannot seek to it).
    """

    def __init__(
        self,
        min_level: str,
        cursor: CursorFile | None,
        decoder: Callable[[], int],
        resume_within: float,
        program: str = "journalctl",
    ) -> None:
        self.min_level = min_level
        self.cursor = cursor
        self.lines_read = decoder
        self.program = program
        self._with_cursor: str | None = None
        self._lines_at_start = 0
        self._skip: str | None = None
        if cursor is not None:
            saved = cursor.read()
            saved_at = None if saved is None else cursor_time(saved)
            if (
                saved is not None
                and saved_at is not None
                and time.time() - saved_at > resume_within
            ):
                log.info(
                    "logs: the saved journal cursor is older than %.0f s; starting from now",
                    resume_within,
                )
                self._skip = saved

    def __call__(self) -> list[str]:
        current = None if self.cursor is None else self.cursor.cursor
        if self._with_cursor is not None and self.lines_read() == self._lines_at_start:
            self._skip = self._with_cursor
            log.warning(
                "logs: journalctl exited before printing anything after the saved cursor; "
                "starting from now"
            )
        if current is not None and current == self._skip:
            current = None
        self._with_cursor = current
        self._lines_at_start = self.lines_read()
        return journalctl_argv(self.min_level, current, self.program)


class _LogsPartition(StatelessSourcePartition[Event]):
    """Drains the decoded events of the current feed; falls back to the next feed when one fails."""

    def __init__(self, source: LogsSource, step_id: str) -> None:
        self._source = source
        self._name = step_id.rsplit(".", 1)[-1]
        self._queue: BoundedQueue[Event] = BoundedQueue(source.queue_items, source.queue_bytes)
        self.drops = DropLog(self._name)
        self._cursor = CursorFile(source.cursor_path) if source.cursor_path is not None else None
        self._lock = threading.Lock()
        self._feeds = list(source.feeds())
        self._feed: _Feed | None = None
        self._decoder: _Decoder | None = None
        self._used: list[tuple[_Feed, _Decoder]] = []  # every feed started, for the summary
        self._exhausted = threading.Event()
        self._closed = False
        self._awake: datetime | None = None
        self._max_sleep = min(source.poll_seconds, MAX_SLEEP_SECONDS)
        self._stopping = False
        self._next_feed(None)

    def _next_feed(self, reason: str | None) -> None:
        with self._lock:
            if self._closed:
                return
            while self._feeds:
                shape, target = self._feeds.pop(0)
                if shape == "syslog":
                    path = first_readable(target)
                    if path is None:
                        continue
                    feed: _Feed = self._follow(path)
                    self._announce(reason, f"following {path}")
                else:
                    feed = self._supervise(shape, target, reason)
                if self._decoder is not None:
                    self._used.append((feed, self._decoder))
                feed.start()
                self._feed = feed
                return
            self._feed = None
        if reason is None:
            reason = f"no system log follower for platform {self._source.platform!r}"
        elif self._source.command == "auto" and self._source.syslog_paths:
            paths = " nor ".join(str(p) for p in self._source.syslog_paths)
            reason = f"{reason}, and neither {paths} is readable"
        log.warning("%s: %s; log watching is off (metrics and disk go on)", self._name, reason)
        # Only now may `next_batch` end the source: whoever sees the end has seen why.
        self._exhausted.set()

    def _announce(self, reason: str | None, what: str) -> None:
        """Say which feed is followed now and, after a failed one, why."""
        if reason is None:
            log.info("%s: %s", self._name, what)
        else:
            log.warning("%s: %s; %s instead", self._name, reason, what)

    def _new_decoder(self, shape: str, cursor: CursorFile | None) -> _Decoder:
        src = self._source
        self._decoder = _Decoder(shape, src.host, src.min_level, self._queue, self.drops, cursor)
        return self._decoder

    def _follow(self, path: Path) -> FileFollower:
        decoder = self._new_decoder("syslog", None)
        return FileFollower(
            self._name, path, decoder, poll_seconds=self._source.syslog_poll_seconds
        )

    def _supervise(self, shape: str, target: Any, reason: str | None) -> SupervisedCommand:
        """Build the command of a feed; say it is followed (the journal: once the probe passed).

        Args:
            shape: the lines' shape (journald, logstream, any).
            target: "auto" (the journal) or a command string or argv.
            reason: why the previous feed was given up; None for the first feed.
        """
        src = self._source
        decoder = self._new_decoder(shape, self._cursor if shape == "journald" else None)
        argv: Callable[[], Sequence[str]]
        probe: Callable[[], str | None] | None = None
        if shape == "journald" and target == "auto":
            argv = _JournaldArgs(
                src.min_level, self._cursor, lambda: decoder.lines, src.resume_within_seconds
            )
            program = "journalctl"
            probe = functools.partial(self._probe_journal, reason)
        else:
            fixed = shlex.split(target) if isinstance(target, str) else list(target)
            argv = lambda: fixed  # noqa: E731 - the same argv at every start
            program = fixed[0]
            self._announce(reason, f"following `{shlex.join(fixed)}`")
        return SupervisedCommand(
            f"{self._name} ({program})",
            argv,
            decoder,
            policy=src.policy,
            unavailable_markers=JOURNAL_UNAVAILABLE if shape == "journald" else (),
            on_unavailable=self._on_unavailable,
            probe=probe,
            sleep=src.sleep,
            clock=src.clock,
        )

    def _probe_journal(self, reason: str | None) -> str | None:
        """Return why the journal cannot be followed; when it can, say it is followed now."""
        problem = journal_unavailable()
        if problem is not None:
            return f"the systemd journal is unavailable ({problem})"
        self._announce(reason, "following the systemd journal (journalctl --follow)")
        return None

    def _on_unavailable(self, reason: str) -> None:
        self._next_feed(reason)

    @property
    def feed(self) -> _Feed | None:
        """The feed in use (a `SupervisedCommand` or a `FileFollower`), None when off."""
        return self._feed

    @override
    def next_batch(self) -> list[Event]:
        stop = self._source.stop
        if not self._stopping and stop is not None and stop():
            # What was queued before the stop still goes through; the lines the child prints
            # after it are refused, so the journald cursor stays before them for the next start.
            self._stopping = True
            self._queue.close()
        if self._stopping:
            batch = self._queue.drain(self._source.batch_size)
            if not batch:
                raise StopIteration
            return batch
        batch = self._queue.drain(self._source.batch_size)
        if batch:
            self._awake = None
            return batch
        if self._exhausted.is_set() and not len(self._queue):
            raise StopIteration
        self._awake = awake_in(self._max_sleep)
        return batch

    @override
    def next_awake(self) -> datetime | None:
        return self._awake

    @override
    def close(self) -> None:
        with self._lock:
            self._closed = True
            feed = self._feed
        self._queue.close()
        if feed is not None:
            feed.close()  # its reader is done: the counts below are final
        if self._cursor is not None:
            self._cursor.flush()
        self._report_line_counts()

    def _report_line_counts(self) -> None:
        """Say at close how many lines were cut, had bytes replaced or were lost, if any."""
        with self._lock:
            used = list(self._used)
        cut = sum(feed.cut for feed, _ in used)
        replaced = sum(decoder.replaced for _, decoder in used)
        lost = sum(decoder.lost_at_close for _, decoder in used)
        if cut or replaced or lost:
            log.warning(
                "%s: %s cut at %s, %s with invalid UTF-8 replaced, %d lost at close",
                self._name,
                _lines(cut),
                MAX_LINE_TEXT,
                _lines(replaced),
                lost,
            )


class LogsSource(DynamicSource[Event]):
    """Follows this machine's log (or a custom command) on worker 0; other workers get nothing.

    `next_batch` never blocks: a reader thread (per child process, or per followed file)
    decodes lines into a bounded queue that `next_batch` drains, up to `batch_size` at a time;
    after an empty batch the worker is woken again in `poll_seconds`. A full queue holds the
    reader, and so the child, back: lines are not dropped between the child and the flow.
    A child that exits is restarted (see `RestartPolicy`); a program that is missing, or a
    journal that does not exist, is reported once and the next fallback is used. Lines cut at
    `MAX_LINE_BYTES`, read with invalid UTF-8 replaced, or lost at close are counted: the first
    cut and the first replacement are logged, and `close` logs the totals when any is non-zero.

    Not guaranteed: `close` (which stops the child and saves the journald cursor) is skipped
    on SIGKILL; the child then still dies with Eyes on Linux. Delivery is at-most-once: lines
    read but not yet emitted when Eyes stops are lost. At the next start journald resumes after
    the last entry read (cursor saved every few seconds and at `close`), so what was logged
    while Eyes was down is read, unless the cursor is older than `resume_within_seconds`.

    Args:
        host: the host name of the events.
        command: "auto", a shell-style command string, or an argv list.
        min_level: events below this level are dropped (journalctl and `log stream` filter too).
        platform: `sys.platform`, deciding what "auto" means.
        cursor_path: where journald's cursor is kept; None: no resume.
        syslog_paths: the text logs tried, in order, when the journal is unavailable.
        stop: when given and it returns True, the source ends (`eyes record --duration`).
        batch_size: the most events per batch.
        poll_seconds: the sleep after an empty batch (at most `MAX_SLEEP_SECONDS`).
        queue_items: the bound of the hand-off queue, in events.
        queue_bytes: the bound of the hand-off queue, in raw line bytes.
        policy: the restart delays of a child.
        resume_within_seconds: a saved journald cursor older than this is not resumed from.
        syslog_poll_seconds: how often a followed text file is read.
        clock: monotonic seconds (restart bookkeeping).
        sleep: the restart wait; default: an interruptible wait.
    """

    def __init__(
        self,
        host: str,
        *,
        command: str | Sequence[str] = "auto",
        min_level: str = "info",
        platform: str = sys.platform,
        cursor_path: Path | None = None,
        syslog_paths: Sequence[Path] = SYSLOG_PATHS,
        stop: Callable[[], bool] | None = None,
        batch_size: int = 1000,
        poll_seconds: float = 0.1,
        queue_items: int = 10_000,
        queue_bytes: int = 16 << 20,
        policy: RestartPolicy | None = None,
        resume_within_seconds: float = 3600.0,
        syslog_poll_seconds: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
    ) -> None:
        self.host = host
        self.command = command
        self.min_level = min_level
        self.platform = platform
        self.cursor_path = cursor_path
        self.syslog_paths = tuple(syslog_paths)
        self.stop = stop
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.queue_items = queue_items
        self.queue_bytes = queue_bytes
        self.policy = policy
        self.resume_within_seconds = resume_within_seconds
        self.syslog_poll_seconds = syslog_poll_seconds
        self.clock = clock
        self.sleep = sleep
        self.partitions: list[_LogsPartition] = []

    def feeds(self) -> list[tuple[str, Any]]:
        """Return the feeds to try, in order, as (shape, command or paths)."""
        if self.command != "auto":
            return [("any", self.command)]
        if self.platform.startswith("linux"):
            return [("journald", "auto"), ("syslog", self.syslog_paths)]
        if self.platform == "darwin":
            return [("logstream", log_stream_argv(self.min_level))]
        return []

    @override
    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSourcePartition[Event]:
        if worker_index != 0:
            return EofPartition()
        part = _LogsPartition(self, step_id)
        self.partitions.append(part)
        return part
