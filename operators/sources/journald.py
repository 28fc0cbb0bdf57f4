"""The systemd journal: the `journalctl` command line, its JSON entries as `LogEvent`s, the cursor.

In: one decoded `journalctl --output=json` entry. Out: a `LogEvent` (TRACE_FORMAT.md section 1):
`MESSAGE` -> message (a byte array is decoded as UTF-8, bad bytes replaced), `PRIORITY` 0-2 ->
fault, 3 error, 4 warning, 5 notice, 6 info (also when absent), 7 debug; `SYSLOG_IDENTIFIER` or
`_COMM` -> process; `_PID` -> pid; `_SYSTEMD_UNIT` -> subsystem; `__REALTIME_TIMESTAMP`
(microseconds) -> ts. `_HOSTNAME` is not used: live events carry the configured host name, so
that a host's logs, metrics and disk samples share one state.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from operators.events import EventError, LogEvent

__all__ = [
    "JOURNAL_UNAVAILABLE",
    "CursorFile",
    "cursor_time",
    "journal_unavailable",
    "journalctl_argv",
    "journald_event",
    "looks_like_journald",
]

log = logging.getLogger(__name__)

# What journalctl says on stderr when there is no journal it can read: none kept on this
# machine (many containers), or none readable by this user.
JOURNAL_UNAVAILABLE = (
    "No journal files were found",
    "No journal files were opened due to insufficient permissions",
)

_LEVEL_OF_PRIORITY = {
    "0": "fault",
    "1": "fault",
    "2": "fault",
    "3": "error",
    "4": "warning",
    "5": "notice",
    "6": "info",
    "7": "debug",
}
_LOWEST_PRIORITY = {"fault": 2, "error": 3, "warning": 4, "notice": 5, "info": 6, "debug": 7}
_MAX_CURSOR_CHARS = 4096


def journalctl_argv(
    min_level: str, cursor: str | None = None, program: str = "journalctl"
) -> list[str]:
    """Return the `journalctl` command that follows the journal at `min_level` and above.

    Args:
        min_level: the lowest level wanted; journalctl filters with `--priority=0..N`.
        cursor: resume after this entry; without it, start with the next new entry.
        program: the journalctl program (a name looked up on PATH, or a path).
    """
    argv = [
        program,
        "--follow",
        "--output=json",
        "--all",  # long fields in full instead of null (lines are cut at 1 MiB later)
        f"--priority=0..{_LOWEST_PRIORITY[min_level]}",
    ]
    argv.append(f"--after-cursor={cursor}" if cursor else "--lines=0")
    return argv


def journal_unavailable(program: str = "journalctl", timeout: float = 10.0) -> str | None:
    """Return why the journal cannot be followed here, or None when it seems it can.

    `journalctl --follow` waits silently when there is no journal at all, so a one-shot
    `journalctl --lines=1` is asked first: it says so on stderr. A probe that times out is
    taken as "available" (the follower then runs and is supervised as usual).
    """
    argv = [program, "--lines=1", "--output=short", "--no-pager"]
    try:
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return None
    except OSError as exc:
        return f"cannot run {program!r}: {exc.strerror or exc}"
    errors = done.stderr.decode("utf-8", "replace")
    for line in errors.splitlines():
        if any(marker in line for marker in JOURNAL_UNAVAILABLE):
            return f"{program}: {line.strip()}"
    return None


def looks_like_journald(entry: Mapping[str, Any]) -> bool:
    """Return True when a decoded JSON object has the shape of a journald entry."""
    return "MESSAGE" in entry or "__CURSOR" in entry or "__REALTIME_TIMESTAMP" in entry


def _text(value: Any) -> str | None:
    """Return a journald field's value as text: strings as is, byte arrays decoded."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        if all(isinstance(b, int) and 0 <= b < 256 for b in value):
            return bytes(value).decode("utf-8", "replace")
        return _text(value[0])  # a field repeated in one entry: the first value
    return None


def journald_event(entry: Mapping[str, Any], host: str) -> LogEvent:
    """Return the log event of one decoded `journalctl --output=json` entry.

    Args:
        entry: the decoded JSON object.
        host: the host the event belongs to.

    Raises:
        EventError: the entry has no usable `MESSAGE` or `__REALTIME_TIMESTAMP`, or a
            `PRIORITY` outside 0-7.
    """
    message = _text(entry.get("MESSAGE"))
    if message is None:
        raise EventError("journald entry has no MESSAGE (or it was too long to show)", "no_message")
    raw_ts = _text(entry.get("__REALTIME_TIMESTAMP"))
    if raw_ts is None:
        raise EventError("journald entry has no __REALTIME_TIMESTAMP", "missing_field")
    try:
        ts = int(raw_ts) / 1_000_000
    except ValueError:
        raise EventError(f"__REALTIME_TIMESTAMP is not microseconds: {raw_ts!r}") from None
    priority = _text(entry.get("PRIORITY"))
    level = "info" if priority is None else _LEVEL_OF_PRIORITY.get(priority.strip())
    if level is None:
        raise EventError(f"PRIORITY must be 0 to 7, got {priority!r}")
    pid_text = _text(entry.get("_PID"))
    pid = int(pid_text) if pid_text is not None and pid_text.isdigit() else None
    process = _text(entry.get("SYSLOG_IDENTIFIER")) or _text(entry.get("_COMM"))
    unit = _text(entry.get("_SYSTEMD_UNIT"))
    return LogEvent(ts, host, level, message, process or None, pid, unit or None)


def cursor_time(cursor: str) -> float | None:
    """Return the Unix time in a journald cursor's `t=` field, or None when it has none."""
    for part in cursor.split(";"):
        if part.startswith("t="):
            try:
                return int(part[2:], 16) / 1_000_000
            except ValueError:
                return None
    return None


class CursorFile:
    """The last journald cursor seen, kept in one small file so that a restart resumes after it.

    `update` remembers a cursor and writes it at most every `min_interval` seconds; `flush`
    writes it now. Writes replace the file atomically. An unwritable file is reported once and
    the cursor is then only kept in memory.

    Args:
        path: the file (its folder is created on the first write).
        min_interval: the least time between two writes, in seconds.
        clock: monotonic seconds.
    """

    def __init__(
        self, path: Path, min_interval: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.path = path
        self._min_interval = min_interval
        self._clock = clock
        self._cursor: str | None = None
        self._written: str | None = None
        self._last_write = float("-inf")
        self._broken = False

    def read(self) -> str | None:
        """Return the saved cursor, or None when there is none (or it is not a cursor)."""
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("journald: cannot read the saved cursor %s: %s", self.path, exc)
            return None
        if not text or len(text) > _MAX_CURSOR_CHARS or "\n" in text or "=" not in text:
            log.warning("journald: %s does not hold a cursor; starting from now", self.path)
            return None
        self._cursor = self._written = text
        return text

    @property
    def cursor(self) -> str | None:
        """The latest cursor given to `update` (or read)."""
        return self._cursor

    def update(self, cursor: str) -> None:
        """Remember `cursor`; write it when the last write is `min_interval` old."""
        self._cursor = cursor
        if self._clock() - self._last_write >= self._min_interval:
            self.flush()

    def flush(self) -> None:
        """Write the latest cursor now, if it changed since the last write."""
        cursor = self._cursor
        if cursor is None or cursor == self._written or self._broken:
            return
        self._last_write = self._clock()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(cursor + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            self._broken = True
            log.warning("journald: cannot save the cursor to %s (%s); not resuming", self.path, exc)
            return
        self._written = cursor
