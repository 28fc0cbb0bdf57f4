"""The alert policy: severity floor, a sliding-window rate limit and a bounded priority queue.

In: alerts (any item, with its severity and event time) and the passing of time, read from an
injected clock. Out: `Decision`s, one per alert: `delivered` (notify it now), `suppressed`,
`dropped` or, when the run ends, `queued`. Plain Python: the alert stage wires it into Bytewax,
with event time as the clock in a replay and wall time in a live run.
"""

from __future__ import annotations

import heapq
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from operators.triggers import SEVERITIES, severity_rank

__all__ = [
    "AlertPolicy",
    "AlertQueue",
    "Decision",
    "EventTime",
    "Fate",
    "PolicyState",
    "QueuedAlert",
    "RateLimiter",
]

T = TypeVar("T")

Fate = Literal["delivered", "suppressed", "dropped", "queued"]


class EventTime:
    """A clock that reads event time: the largest timestamp observed so far.

    In: `observe(ts)` for every trigger and watermark. Out: `now()`, which never goes back.
    Before the first observation it reads minus infinity.
    """

    def __init__(self, start: float = -math.inf) -> None:
        self._now = start

    def observe(self, ts: float) -> float:
        """Move the clock to `ts` if that is later; return the clock."""
        if ts > self._now:
            self._now = ts
        return self._now

    def now(self) -> float:
        """Return the latest event time observed."""
        return self._now


class RateLimiter:
    """At most `limit` grants in any `period` seconds of the caller's clock (a sliding log).

    In: `grant(at)` for each delivery, at non-decreasing times. Out: `free_at()`, the earliest
    time at which the next grant keeps the limit. Two grants `period` seconds apart are in
    different windows: a window is half-open, `[t, t + period)`.

    Raises:
        ValueError: `limit` is below 1 or `period` is not positive.
    """

    def __init__(self, limit: int, period: float = 60.0, grants: Iterable[float] = ()) -> None:
        if limit < 1:
            msg = f"rate limiter: limit must be at least 1, got {limit!r}"
            raise ValueError(msg)
        if not period > 0:
            msg = f"rate limiter: period must be greater than 0 seconds, got {period!r}"
            raise ValueError(msg)
        self.limit = limit
        self.period = period
        self._grants: deque[float] = deque(grants, maxlen=limit)

    def free_at(self) -> float:
        """Return the earliest time of the next grant (minus infinity while below the limit)."""
        if len(self._grants) < self.limit:
            return -math.inf
        return self._grants[0] + self.period

    def allows(self, now: float) -> bool:
        """Return whether a grant at `now` keeps the limit."""
        return now >= self.free_at()

    def grant(self, at: float) -> None:
        """Record a delivery at `at`.

        Raises:
            ValueError: a grant at `at` would break the limit, or `at` is before the last grant.
        """
        if not self.allows(at):
            free = self.free_at()
            msg = f"rate limiter: a grant at {at!r} breaks the limit; next free at {free!r}"
            raise ValueError(msg)
        if self._grants and at < self._grants[-1]:
            msg = f"rate limiter: grant at {at!r} is before the last one at {self._grants[-1]!r}"
            raise ValueError(msg)
        self._grants.append(at)

    @property
    def last_grant(self) -> float:
        """The time of the latest grant, or minus infinity."""
        return self._grants[-1] if self._grants else -math.inf

    @property
    def grants(self) -> tuple[float, ...]:
        """The grants that still count, oldest first."""
        return tuple(self._grants)


@dataclass(frozen=True, slots=True)
class QueuedAlert(Generic[T]):
    """An alert waiting for the rate limit: its severity, event time, arrival order and time."""

    item: T
    severity: str
    ts: float
    seq: int
    enqueued_at: float

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical."""
        return severity_rank(self.severity)


class AlertQueue(Generic[T]):
    """A bounded queue of waiting alerts, served critical first and then oldest first.

    In: `offer(entry)`, False when the queue is full (nothing is added; the caller decides what
    to drop). Out: `pop()` the most urgent entry: highest severity, then the smallest `ts`, then
    the earliest arrival; `pop_lowest()` the overflow victim: the lowest severity, then the
    oldest. Both take O(log n).

    Raises:
        ValueError: `size` is below 1.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            msg = f"alert queue: size must be at least 1, got {size!r}"
            raise ValueError(msg)
        self.size = size
        self._heaps: list[list[tuple[float, int, QueuedAlert[T]]]] = [[] for _ in SEVERITIES]
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def offer(self, entry: QueuedAlert[T]) -> bool:
        """Add `entry`; return False, adding nothing, when the queue is full."""
        if self._length >= self.size:
            return False
        heapq.heappush(self._heaps[entry.rank], (entry.ts, entry.seq, entry))
        self._length += 1
        return True

    def _take(self, heap: list[tuple[float, int, QueuedAlert[T]]]) -> QueuedAlert[T]:
        self._length -= 1
        return heapq.heappop(heap)[2]

    def pop(self) -> QueuedAlert[T]:
        """Remove and return the most urgent entry.

        Raises:
            IndexError: the queue is empty.
        """
        for heap in reversed(self._heaps):
            if heap:
                return self._take(heap)
        raise IndexError("alert queue: pop from an empty queue")

    def peek_lowest(self) -> QueuedAlert[T] | None:
        """Return the entry an overflow would drop (lowest severity, oldest), or None."""
        for heap in self._heaps:
            if heap:
                return heap[0][2]
        return None

    def pop_lowest(self) -> QueuedAlert[T]:
        """Remove and return the entry an overflow drops.

        Raises:
            IndexError: the queue is empty.
        """
        for heap in self._heaps:
            if heap:
                return self._take(heap)
        raise IndexError("alert queue: pop_lowest from an empty queue")

    def entries(self) -> tuple[QueuedAlert[T], ...]:
        """Return every entry, most urgent first (a copy; the queue is unchanged)."""
        out: list[QueuedAlert[T]] = []
        for heap in reversed(self._heaps):
            out.extend(entry for _, _, entry in sorted(heap, key=lambda row: row[:2]))
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Decision(Generic[T]):
    """The fate of one alert, decided at `at` on the policy's clock, and why."""

    item: T
    fate: Fate
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class PolicyState(Generic[T]):
    """Everything `AlertPolicy` needs to resume: plain, immutable and picklable."""

    grants: tuple[float, ...]
    waiting: tuple[QueuedAlert[T], ...]
    seq: int
    last: float
    dropped: tuple[tuple[str, int], ...] = ()


class AlertPolicy(Generic[T]):
    """Decide each alert's fate: suppressed, delivered now, delivered later, dropped or queued.

    In: `offer(item, severity=, ts=)` per alert; `advance()` when time passes with no alert
    (a watermark, a timer); `close()` when the run ends. Out: `Decision`s, in the order the
    fates were decided. The clock is injected: event time in a replay, wall time live.

    The rules:
    - an alert below `min_severity` is `suppressed` at once and never counts against the limit;
    - at most `rate_limit` alerts are `delivered` in any `period` seconds of the clock;
    - an alert over the limit waits in a queue of `queue_size`; waiting alerts go out critical
      first, then oldest first, at the moment the limit allows (a slot that opened between two
      clock readings is used at the time it opened, so a replay decides what a live run with a
      timer decides);
    - a new alert never overtakes waiting ones: it waits too, and competes by priority;
    - on overflow the oldest alert of the lowest severity, the newcomer included, is `dropped`;
    - `close()` turns what still waits into `queued`, most urgent first;
    - with `decide_at_ts` (a replay, where the clock is event time), an alert whose `ts` is
      behind the clock (another host's events moved the clock on first) is decided at its
      own `ts`, or at the last delivery if that is later, as it would have been had it come
      in time order; live, every alert is decided at the clock's time.

    Never: an alert decided twice or not at all; a delivery over the limit; a clock that goes
    back (a wall clock that steps back is read as standing still). Not guaranteed: fairness
    between hosts; the queue's order among alerts of one severity with equal `ts` follows
    arrival. Delivery: decisions are returned exactly once; resuming from `snapshot()` after a
    crash decides again what came after it (at-least-once downstream).

    Raises:
        ValueError: `min_severity` is not a severity, or a limit is below 1.
    """

    def __init__(
        self,
        *,
        rate_limit: int,
        queue_size: int,
        min_severity: str,
        clock: Callable[[], float],
        period: float = 60.0,
        state: PolicyState[T] | None = None,
        decide_at_ts: bool = False,
    ) -> None:
        if min_severity not in SEVERITIES:
            msg = f"alert policy: min_severity must be one of {SEVERITIES}, got {min_severity!r}"
            raise ValueError(msg)
        self._min_severity = min_severity
        self._min_rank = severity_rank(min_severity)
        self._clock = clock
        self._decide_at_ts = decide_at_ts
        self._limiter = RateLimiter(rate_limit, period, state.grants if state else ())
        self._queue: AlertQueue[T] = AlertQueue(queue_size)
        self._seq = 0
        self._last = -math.inf
        self.dropped: Counter[str] = Counter()
        if state is not None:
            for entry in state.waiting:
                self._queue.offer(entry)
            self._seq = state.seq
            self._last = state.last
            self.dropped.update(dict(state.dropped))

    @property
    def waiting(self) -> int:
        """How many alerts wait for the rate limit."""
        return len(self._queue)

    def _limit_text(self) -> str:
        return f"{self._limiter.limit} per {self._limiter.period:g}s"

    def _tick(self) -> tuple[float, float]:
        """Read the clock; return (previous reading, this reading), never going back."""
        before = self._last
        self._last = max(before, self._clock())
        return before, self._last

    def _drain(self, before: float, now: float) -> list[Decision[T]]:
        out: list[Decision[T]] = []
        while self._queue:
            slot = max(self._limiter.free_at(), before, self._limiter.last_grant)
            if slot > now:
                break
            entry = self._queue.pop()
            slot = max(slot, entry.enqueued_at)
            self._limiter.grant(slot)
            waited = slot - entry.enqueued_at
            reason = f"waited {waited:.1f}s for the rate limit ({self._limit_text()})"
            out.append(Decision(entry.item, "delivered", reason, slot))
        return out

    def offer(self, item: T, *, severity: str, ts: float) -> list[Decision[T]]:
        """Take one alert; return the decisions this made, the alert's own fate if decided now.

        Waiting alerts whose turn came before the alert arrived are decided first.
        """
        before, now = self._tick()
        out = self._drain(before, now)
        if self._decide_at_ts and ts < now:
            now = max(ts, self._limiter.last_grant)
        rank = severity_rank(severity)
        if rank < self._min_rank:
            reason = f"severity {severity} is below min_severity {self._min_severity}"
            out.append(Decision(item, "suppressed", reason, now))
            return out
        if not self._queue and self._limiter.allows(now):
            self._limiter.grant(max(now, self._limiter.last_grant))
            out.append(Decision(item, "delivered", "", now))
            return out
        entry = QueuedAlert(item, severity, ts, self._seq, now)
        self._seq += 1
        if self._queue.offer(entry):
            return out
        lowest = self._queue.peek_lowest()
        assert lowest is not None  # the queue is full, so not empty
        if (lowest.rank, lowest.ts, lowest.seq) < (entry.rank, entry.ts, entry.seq):
            victim = self._queue.pop_lowest()
            self._queue.offer(entry)
        else:
            victim = entry
        self.dropped["queue_full"] += 1
        reason = (
            f"the alert queue was full ({self._queue.size} waiting for the rate limit, "
            f"{self._limit_text()}); this was the oldest alert of the lowest severity"
        )
        out.append(Decision(victim.item, "dropped", reason, now))
        return out

    def advance(self) -> list[Decision[T]]:
        """Read the clock and deliver the waiting alerts whose turn has come."""
        before, now = self._tick()
        return self._drain(before, now)

    def next_release(self) -> float | None:
        """Return when the next waiting alert may go out, or None when nothing waits."""
        if not self._queue:
            return None
        return max(self._limiter.free_at(), self._last)

    def close(self) -> list[Decision[T]]:
        """End the run: deliver what the clock allows, then mark every waiting alert `queued`."""
        out = self.advance()
        now = self._last
        while self._queue:
            entry = self._queue.pop()
            reason = (
                f"still waiting for the rate limit ({self._limit_text()}) when the run ended, "
                f"after {now - entry.enqueued_at:.1f}s"
            )
            out.append(Decision(entry.item, "queued", reason, now))
        return out

    def snapshot(self) -> PolicyState[T]:
        """Return the state to resume from (an immutable copy)."""
        return PolicyState(
            grants=self._limiter.grants,
            waiting=self._queue.entries(),
            seq=self._seq,
            last=self._last,
            dropped=tuple(sorted(self.dropped.items())),
        )
