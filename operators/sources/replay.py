"""Replay recorded traces: read JSON Lines files (plain or .gz), merge them by `ts`, emit batches.

In: trace file paths. Out: `Event`s in event-time order, in batches of up to `batch_size`.
Bad lines are skipped, counted in `ReplayStats` and reported with file, line and reason.
"""

from __future__ import annotations

import gzip
import heapq
import logging
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from typing_extensions import override

from operators.errors import InputFileError
from operators.events import MAX_LINE_BYTES, Event, EventError, parse_line

__all__ = ["ReplaySource", "ReplayStats", "check_readable", "read_trace"]

log = logging.getLogger(__name__)

_REPORTED_PER_FILE = 20
_READ_CHUNK = 1 << 16


@dataclass
class ReplayStats:
    """What the replay read: events emitted, bad lines by file and by reason, empty files."""

    events: int = 0
    bad_lines: Counter[str] = field(default_factory=Counter)
    bad_reasons: Counter[str] = field(default_factory=Counter)
    empty_files: list[str] = field(default_factory=list)

    @property
    def bad_total(self) -> int:
        """Bad lines over all files."""
        return sum(self.bad_lines.values())


def check_readable(paths: Sequence[str | Path]) -> None:
    """Fail early when a trace file is missing or unreadable.

    Raises:
        InputFileError: naming the first file that cannot be opened, and why.
    """
    for path in paths:
        try:
            with _open(Path(path)) as handle:
                handle.read(1)  # for a .gz file, its header too
        except (OSError, EOFError, zlib.error) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise InputFileError(f"{path}: cannot read trace: {reason}") from None


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _bounded_lines(handle: IO[bytes]) -> Iterator[bytes]:
    """Yield lines of at most `MAX_LINE_BYTES + 1` bytes; a longer line yields its first part.

    A line cut this way is still one line: the rest of it, up to the newline, is skipped.
    """
    while True:
        line = handle.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while True:
                rest = handle.readline(_READ_CHUNK)
                if not rest or rest.endswith(b"\n"):
                    break
        yield line


def _sort_key(event: Event) -> float:
    return event.ts


def read_trace(path: Path, default_host: str, stats: ReplayStats) -> Iterator[Event]:
    """Yield the valid events of one trace file in file order, counting and reporting bad lines."""
    name = str(path)
    bad_numbers: list[int] = []
    lines = 0
    try:
        with _open(path) as handle:
            for number, line in enumerate(_bounded_lines(handle), start=1):
                lines = number
                try:
                    event = parse_line(line, default_host)
                except EventError as exc:
                    stats.bad_lines[name] += 1
                    stats.bad_reasons[exc.reason] += 1
                    bad_numbers.append(number)
                    if len(bad_numbers) <= _REPORTED_PER_FILE:
                        log.warning("%s:%d: skipped: %s", name, number, exc)
                    continue
                if event is not None:
                    yield event
    except (OSError, EOFError, zlib.error) as exc:
        stats.bad_lines[name] += 1
        stats.bad_reasons["unreadable"] += 1
        log.error("%s: stopped reading after line %d: %s", name, lines, exc)
    if lines == 0:
        stats.empty_files.append(name)
        log.warning("%s: the trace is empty", name)
    if bad_numbers:
        shown = ", ".join(map(str, bad_numbers[:_REPORTED_PER_FILE]))
        more = (
            f" and {len(bad_numbers) - _REPORTED_PER_FILE} more"
            if len(bad_numbers) > _REPORTED_PER_FILE
            else ""
        )
        log.warning("%s: %d bad lines skipped (lines %s%s)", name, len(bad_numbers), shown, more)


class _ReplayPartition(StatefulSourcePartition[Event, int]):
    """Emits the merged events in batches; its snapshot is how many it has emitted.

    `next_batch` never blocks: at a paced speed it returns what is due and sleeps until the next
    event is. Delivery is exactly the trace's events after `resume_state`; on resume the files are
    read again from the start and the first `resume_state` events skipped.
    """

    def __init__(
        self,
        events: Iterator[Event],
        batch_size: int,
        speed: float,
        stats: ReplayStats,
        resume_state: int | None,
        clock: Callable[[], float],
    ) -> None:
        self._events = events
        self._batch_size = batch_size
        self._speed = speed
        self._stats = stats
        self._clock = clock
        self._emitted = 0
        self._pending: Event | None = None
        self._origin: tuple[float, float] | None = None  # (first event ts, wall time then)
        self._awake: datetime | None = None
        for _ in range(resume_state or 0):
            if next(self._events, None) is None:
                break
            self._emitted += 1

    def _due(self, event: Event) -> float:
        """Seconds until `event` is due at the configured speed (<= 0: now)."""
        if self._speed <= 0:
            return 0.0
        now = self._clock()
        if self._origin is None:
            self._origin = (event.ts, now)
        first_ts, started = self._origin
        return started + (event.ts - first_ts) / self._speed - now

    @override
    def next_batch(self) -> list[Event]:
        batch: list[Event] = []
        self._awake = None
        while len(batch) < self._batch_size:
            event = self._pending if self._pending is not None else next(self._events, None)
            self._pending = None
            if event is None:
                break
            wait = self._due(event)
            if wait > 0:
                self._pending = event
                self._awake = datetime.now(timezone.utc) + timedelta(seconds=wait)
                break
            batch.append(event)
        if not batch and self._pending is None:
            raise StopIteration
        self._emitted += len(batch)
        self._stats.events += len(batch)
        return batch

    @override
    def next_awake(self) -> datetime | None:
        return self._awake

    @override
    def snapshot(self) -> int:
        return self._emitted


class ReplaySource(FixedPartitionedSource[Event, int]):
    """Replays trace files as one partition, merged by `ts`.

    Args:
        paths: trace files (JSON Lines, `.gz` for gzip); each should be in `ts` order.
        default_host: the host of events that name none ("replay" by the trace format).
        speed: 0 for as fast as possible, X for X times the recorded pace.
        batch_size: events per batch; throughput depends on it.
        stats: filled in as the replay goes (events, bad lines).
        clock: wall-clock seconds, for pacing.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        default_host: str = "replay",
        speed: float = 0.0,
        batch_size: int = 1000,
        stats: ReplayStats | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.default_host = default_host
        self.speed = speed
        self.batch_size = batch_size
        self.stats = stats if stats is not None else ReplayStats()
        self.clock = clock

    @override
    def list_parts(self) -> list[str]:
        return ["replay"]

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ReplayPartition:
        streams = [read_trace(p, self.default_host, self.stats) for p in self.paths]
        merged = heapq.merge(*streams, key=_sort_key) if len(streams) > 1 else streams[0]
        return _ReplayPartition(
            iter(merged), self.batch_size, self.speed, self.stats, resume_state, self.clock
        )
