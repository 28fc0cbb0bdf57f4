"""Parts shared by the live sources: the bounded hand-off queue, drop accounting, awake times.

A live source's reader or sampler thread puts items into a `BoundedQueue`; the partition's
`next_batch` drains it without waiting. What a source cannot pass on is counted in a `DropLog`
by reason: the first occurrence of each reason is logged, then a periodic summary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Generic, TypeVar

from bytewax.inputs import StatelessSourcePartition
from typing_extensions import override

__all__ = ["BoundedQueue", "DropLog", "EofPartition", "awake_in"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def awake_in(seconds: float) -> datetime:
    """Return the aware UTC time `seconds` from now, for `next_awake`."""
    return datetime.now(timezone.utc) + timedelta(seconds=max(seconds, 0.0))


class BoundedQueue(Generic[T]):
    """A thread-safe FIFO bounded by item count and by total size.

    Producers call `offer` (never waits: False when full, the caller counts the drop) or `put`
    (waits for room, which holds a reader back instead of dropping). The consumer calls `drain`,
    which never waits for items. `close` wakes every waiting producer and refuses new items.

    Args:
        max_items: at most this many items are held.
        max_bytes: at most this total of the sizes given to `offer`/`put`; one item larger than
            the whole budget is still admitted into an empty queue.
    """

    def __init__(self, max_items: int, max_bytes: int = 1 << 62) -> None:
        if max_items < 1 or max_bytes < 1:
            msg = (
                "queue limits must be 1 or more, "
                f"got max_items={max_items!r}, max_bytes={max_bytes!r}"
            )
            raise ValueError(msg)
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: deque[tuple[T, int]] = deque()
        self._bytes = 0
        self._closed = False
        self._lock = threading.Lock()
        self._not_full = threading.Condition(self._lock)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        """True once `close` was called."""
        return self._closed

    def _has_room(self, size: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self.max_items and self._bytes + size <= self.max_bytes

    def offer(self, item: T, size: int = 0) -> bool:
        """Add `item` if there is room; return False (and keep nothing) when full or closed."""
        with self._lock:
            if self._closed or not self._has_room(size):
                return False
            self._items.append((item, size))
            self._bytes += size
            return True

    def put(self, item: T, size: int = 0, timeout: float | None = None) -> bool:
        """Add `item`, waiting up to `timeout` seconds (None: until room or close) for room.

        Returns:
            True when added; False when the queue was closed or the wait timed out.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._not_full:
            while not self._closed and not self._has_room(size):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._not_full.wait(remaining)
            if self._closed:
                return False
            self._items.append((item, size))
            self._bytes += size
            return True

    def drain(self, max_items: int) -> list[T]:
        """Remove and return up to `max_items` items, oldest first; never waits for items."""
        if not self._items:
            return []
        with self._lock:
            count = min(max_items, len(self._items))
            popleft = self._items.popleft
            out: list[T] = []
            freed = 0
            for _ in range(count):
                item, size = popleft()
                out.append(item)
                freed += size
            self._bytes -= freed
            self._not_full.notify_all()
            return out

    def close(self) -> None:
        """Refuse new items and wake every producer waiting in `put`; items held stay drainable."""
        with self._lock:
            self._closed = True
            self._not_full.notify_all()


class DropLog:
    """Counts what a source could not pass on, by reason, and says so without flooding the log.

    The first occurrence of each reason is logged at WARNING with its detail; after that, at
    most one summary of all counts every `summary_seconds`. Safe to call from several threads.

    Args:
        name: who drops (a step id or program), the prefix of every message.
        summary_seconds: the least time between two summaries.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        name: str,
        summary_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.dropped: Counter[str] = Counter()
        self._summary_seconds = summary_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last_summary = clock()
        self._since_summary = 0

    def count(self, reason: str, detail: object = "", n: int = 1) -> None:
        """Count `n` drops for `reason`; log the first, then a periodic summary."""
        with self._lock:
            first = reason not in self.dropped
            self.dropped[reason] += n
            self._since_summary += n
            now = self._clock()
            due = now - self._last_summary >= self._summary_seconds
            if due and not first:
                self._last_summary = now
                self._since_summary = 0
                summary = ", ".join(f"{k}={v}" for k, v in sorted(self.dropped.items()))
        if first:
            log.warning("%s: dropped a line (%s): %s", self.name, reason, detail)
        elif due:
            log.warning("%s: dropped so far: %s", self.name, summary)

    @property
    def total(self) -> int:
        """Drops over all reasons."""
        return sum(self.dropped.values())


class EofPartition(StatelessSourcePartition[T]):
    """A partition with nothing in it: the live sources' part on every worker but worker 0."""

    @override
    def next_batch(self) -> list[T]:
        raise StopIteration
