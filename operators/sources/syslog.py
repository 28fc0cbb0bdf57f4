"""The text syslog fallback: follow `/var/log/syslog` or `/var/log/messages`, infer each level.

Where the journal is unavailable but rsyslog (or a similar daemon) writes a text file, Eyes
follows that file like `tail -F` (new lines only, across rotation). Text lines carry no level,
so it is inferred from words in the message: emerg/alert/crit/fatal/panic -> fault,
err/error/failed/failure -> error, warn/warning -> warning, notice -> notice, debug -> debug,
anything else info. Both the traditional (`Dec  3 10:00:01 web-1 nginx[811]: ...`, local time,
this year) and the ISO (`2026-12-03T10:00:01.123456+01:00 web-1 nginx[811]: ...`) formats
are read; a line in neither keeps its whole text as the message and the time it was read.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO

from operators.events import MAX_LINE_BYTES, MAX_LINE_TEXT, LogEvent

__all__ = ["SYSLOG_PATHS", "FileFollower", "first_readable", "infer_level", "syslog_event"]

log = logging.getLogger(__name__)

SYSLOG_PATHS: tuple[Path, ...] = (Path("/var/log/syslog"), Path("/var/log/messages"))

_LEVEL_WORDS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("fault", re.compile(r"\b(?:emerg(?:ency)?|alert|crit(?:ical)?|fatal|panic)\b", re.I)),
    ("error", re.compile(r"\b(?:err(?:or|ors)?|fail(?:ed|ure|s)?)\b", re.I)),
    ("warning", re.compile(r"\bwarn(?:ing|ings)?\b", re.I)),
    ("notice", re.compile(r"\bnotice\b", re.I)),
    ("debug", re.compile(r"\bdebug\b", re.I)),
)
_TRADITIONAL = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<time>\d{2}:\d{2}:\d{2})"
    r" (?P<host>\S+) (?P<rest>.*)$"
)
_ISO = re.compile(
    r"^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))"
    r" (?P<host>\S+) (?P<rest>.*)$"
)
_TAG = re.compile(r"^(?P<tag>[^\s:\[\]]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)$", re.S)
_MONTHS = {
    name: n
    for n, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
        start=1,
    )
}
_DAY = 86400.0


def infer_level(text: str) -> str:
    """Return the level a text log line most likely has, from the words in it."""
    for level, pattern in _LEVEL_WORDS:
        if pattern.search(text):
            return level
    return "info"


def _traditional_ts(mon: str, day: str, clock: str, now: float) -> float | None:
    month = _MONTHS.get(mon)
    if month is None:
        return None
    year = datetime.fromtimestamp(now).year
    try:
        hour, minute, second = (int(part) for part in clock.split(":"))
        ts = datetime(year, month, int(day), hour, minute, second).timestamp()  # local time
    except ValueError:
        return None
    if ts > now + _DAY:  # December's lines read in January
        ts = datetime(year - 1, month, int(day), hour, minute, second).timestamp()
    return ts


def _iso_ts(text: str) -> float | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def syslog_event(line: str, host: str, now: float) -> LogEvent:
    """Return the log event of one text syslog line.

    Args:
        line: the line, without its newline.
        host: the host the event belongs to (the line's own host field is not used).
        now: the time the line was read: its ts when the line has no readable time.
    """
    ts: float | None = None
    rest = line
    if (match := _ISO.match(line)) is not None:
        ts = _iso_ts(match["ts"])
        rest = match["rest"]
    elif (match := _TRADITIONAL.match(line)) is not None:
        ts = _traditional_ts(match["mon"], match["day"], match["time"], now)
        rest = match["rest"]
    process: str | None = None
    pid: int | None = None
    message = rest
    if (tag := _TAG.match(rest)) is not None:
        process = tag["tag"]
        pid = int(tag["pid"]) if tag["pid"] else None
        message = tag["msg"]
    return LogEvent(now if ts is None else ts, host, infer_level(message), message, process, pid)


def first_readable(paths: Sequence[Path]) -> Path | None:
    """Return the first of `paths` that can be opened for reading, or None."""
    for path in paths:
        try:
            with open(path, "rb"):
                return path
        except OSError:
            continue
    return None


class FileFollower:
    """Follows a growing text file on its own thread, like `tail -F`: new lines only.

    Every `poll_seconds` it reads what was appended and hands each complete line to `on_line`.
    When the file is replaced (rotation: another inode) or shrinks (truncation), the rest of
    the old file is read and the new one is followed from its start. Lines longer than
    `MAX_LINE_BYTES` are cut to that length and counted in `cut`: the first cut is logged, the
    total is the owner's to report (`LogsSource` says it at close).

    Never: `on_line` runs on the follower's thread only. Not guaranteed: lines written and
    rotated away within one poll interval, or while the file was missing, are not seen.

    Args:
        name: how messages name the follower (a step id).
        path: the file.
        on_line: receives each line (bytes, without its newline).
        poll_seconds: how often to look for new lines.
        from_start: read the lines already in the file first (tests); default: skip them.
    """

    def __init__(
        self,
        name: str,
        path: Path,
        on_line: Callable[[bytes], object],
        *,
        poll_seconds: float = 0.5,
        from_start: bool = False,
    ) -> None:
        self.name = name
        self.path = path
        self._on_line = on_line
        self._poll = poll_seconds
        self._from_start = from_start
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._partial = b""
        self.cut = 0
        self.rotations = 0

    def start(self) -> None:
        """Open the file (lines after this call are new) and follow it on a new thread; once."""
        if self._thread is None:
            handle = self._open(at_end=not self._from_start)
            self._thread = threading.Thread(
                target=self._follow, args=(handle,), name=f"eyes-{self.name}", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop following."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _open(self, at_end: bool) -> IO[bytes] | None:
        try:
            handle = open(self.path, "rb")  # noqa: SIM115 - kept open while following
        except OSError:
            return None
        if at_end:
            handle.seek(0, os.SEEK_END)
        return handle

    def _follow(self, handle: IO[bytes] | None) -> None:
        missing_reported = handle is None
        if handle is None:
            log.warning("%s: cannot open %s; waiting for it", self.name, self.path)
        try:
            while not self._stopping.is_set():
                if handle is not None:
                    self._read_new(handle)
                    if self._replaced(handle):
                        self._read_new(handle)
                        self._flush_partial()
                        handle.close()
                        handle = None
                        self.rotations += 1
                if handle is None:
                    handle = self._open(at_end=False)
                    if handle is None and not missing_reported:
                        missing_reported = True
                        log.warning("%s: %s is gone; waiting for it", self.name, self.path)
                    elif handle is not None:
                        missing_reported = False
                        continue
                self._stopping.wait(self._poll)
        finally:
            if handle is not None:
                handle.close()

    def _replaced(self, handle: IO[bytes]) -> bool:
        try:
            now = os.stat(self.path)
        except OSError:
            return True
        opened = os.fstat(handle.fileno())
        return (
            now.st_ino != opened.st_ino
            or now.st_dev != opened.st_dev
            or now.st_size < handle.tell()
        )

    def _read_new(self, handle: IO[bytes]) -> None:
        while not self._stopping.is_set():
            chunk = handle.readline(MAX_LINE_BYTES + 1 - len(self._partial))
            if not chunk:
                return
            line = self._partial + chunk
            if line.endswith(b"\n"):
                self._partial = b""
                self._on_line(line[:-1])
            elif len(line) > MAX_LINE_BYTES:
                self._partial = b""
                self.cut += 1
                if self.cut == 1:
                    log.warning(
                        "%s: a line of %s longer than %s was cut to its first %s "
                        "(the rest is skipped); later cuts are only counted",
                        self.name,
                        self.path,
                        MAX_LINE_TEXT,
                        MAX_LINE_TEXT,
                    )
                self._on_line(line[:MAX_LINE_BYTES])
                self._skip_rest(handle)
            else:
                self._partial = line  # the writer has not finished this line yet
                return

    def _skip_rest(self, handle: IO[bytes]) -> None:
        while True:
            rest = handle.readline(1 << 16)
            if not rest or rest.endswith(b"\n"):
                return

    def _flush_partial(self) -> None:
        if self._partial:
            line, self._partial = self._partial, b""
            self._on_line(line)
