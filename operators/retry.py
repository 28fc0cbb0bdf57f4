"""When to try a failed analysis again, and the bounded queue of those waiting to.

`RetryPolicy` decides: transient errors are retried up to `max_attempts` in all, the n-th
retry waiting `base * 2^(n-1)` seconds, less up to `jitter` of it at random, capped at `cap`,
and never less than the server's `Retry-After` (itself capped at `cap`); anything else is
given up at once. `RetryQueue` holds the contexts waiting for their time, at most `size`; when
it is full the oldest entry of the lowest severity is given up. Both are plain Python with
injected time and randomness; the LLM step does the I/O.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from backends.errors import TransientBackendError

__all__ = ["RetryPolicy", "RetryQueue"]

T = TypeVar("T")

# The largest exponent of 2 a float holds: `2.0 ** 1024` raises OverflowError. Any delay that
# has doubled this many times is past every cap, so later attempts reuse this exponent.
_MAX_EXPONENT = 1023


class RetryPolicy:
    """In: the attempt just made (1 = the first), its error, the time. Out: when to try again.

    Args:
        max_attempts: attempts in all, the first included (1 = never retry).
        base: the first retry's delay in seconds.
        cap: the longest delay in seconds.
        jitter: the fraction (0-1) of each delay that may be taken off at random, so that a
            burst of failures does not come back all at once.
        random: returns a number in [0, 1) (tests pass a constant).
    """

    def __init__(
        self,
        *,
        max_attempts: int,
        base: float,
        cap: float,
        jitter: float = 0.2,
        random: Callable[[], float] = random.random,
    ) -> None:
        self.max_attempts = max_attempts
        self.base = base
        self.cap = cap
        self.jitter = jitter
        self._random = random

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Return the wait after failed attempt number `attempt` (1-based), at most `cap`.

        A very late attempt (past ~1,000) waits `cap` rather than overflowing.
        """
        exponent = min(attempt - 1, _MAX_EXPONENT)
        wait = min(self.cap, self.base * 2.0**exponent)  # an overflow here is inf, then cap
        wait *= 1.0 - self.jitter * self._random()
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.cap))
        return wait

    def next_attempt(self, attempt: int, error: BaseException, now: float) -> float | None:
        """Return the time of the next attempt after `error`, or None to give up.

        Args:
            attempt: the number of the attempt that failed (1 = the first).
            error: why it failed; only a `TransientBackendError` is retried.
            now: the current time, on the clock the caller schedules with.
        """
        if not isinstance(error, TransientBackendError) or attempt >= self.max_attempts:
            return None
        return now + self.delay(attempt, error.retry_after)


@dataclass(order=True, slots=True)
class _Entry(Generic[T]):
    due: float
    seq: int
    rank: int = field(compare=False)
    item: T = field(compare=False)


class RetryQueue(Generic[T]):
    """Items waiting for their next attempt, each with a due time, an input sequence number
    and a severity rank. At most `size` are held.

    `offer` never evicts: it returns False when the queue is full, and the caller either gives
    the item up or calls `displace`, which gives up the oldest (lowest sequence number) of the
    lowest-severity entries, counting the new item among the candidates. Not thread-safe.

    Args:
        size: the most entries held (at least 1).
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            msg = f"RetryQueue size must be at least 1, got {size!r}"
            raise ValueError(msg)
        self.size = size
        self._entries: dict[int, _Entry[T]] = {}
        self._heap: list[_Entry[T]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def offer(self, item: T, *, due: float, seq: int, rank: int) -> bool:
        """Queue `item` for `due`; return False (and queue nothing) when the queue is full."""
        if len(self._entries) >= self.size:
            return False
        entry = _Entry(due, seq, rank, item)
        self._entries[seq] = entry
        heapq.heappush(self._heap, entry)
        return True

    def displace(self, item: T, *, due: float, seq: int, rank: int) -> T:
        """Queue `item` in a full queue by giving up another; return the item given up.

        The one given up is the oldest entry of the lowest severity, the new item included:
        a new item of a lower severity than everything queued is itself returned.
        """
        victim = min(self._entries.values(), key=lambda e: (e.rank, e.seq), default=None)
        if victim is None or (rank, seq) < (victim.rank, victim.seq):
            return item
        del self._entries[victim.seq]
        self._compact()
        self.offer(item, due=due, seq=seq, rank=rank)
        return victim.item

    def next_due(self) -> float | None:
        """Return the earliest due time, or None when empty."""
        self._drop_stale()
        return self._heap[0].due if self._heap else None

    def pop_due(self, now: float, limit: int) -> list[T]:
        """Remove and return up to `limit` items due at `now`, earliest first."""
        out: list[T] = []
        while len(out) < limit:
            self._drop_stale()
            if not self._heap or self._heap[0].due > now:
                break
            entry = heapq.heappop(self._heap)
            del self._entries[entry.seq]
            out.append(entry.item)
        return out

    def items(self) -> list[tuple[int, T]]:
        """Return (sequence number, item) of every entry, in sequence order."""
        return [(seq, self._entries[seq].item) for seq in sorted(self._entries)]

    def clear(self) -> list[T]:
        """Remove and return every item, in sequence order."""
        out = [item for _, item in self.items()]
        self._entries.clear()
        self._heap.clear()
        return out

    def _drop_stale(self) -> None:
        while self._heap and self._entries.get(self._heap[0].seq) is not self._heap[0]:
            heapq.heappop(self._heap)

    def _compact(self) -> None:
        if len(self._heap) > 2 * len(self._entries) + 16:
            self._heap = [e for e in self._heap if self._entries.get(e.seq) is e]
            heapq.heapify(self._heap)
