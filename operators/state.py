"""Per-host windowed state: recent events of all three streams, the rules, and trigger contexts.

In: one host's events, in roughly event-time order. Out: `TriggerContext`s in event-time order:
each trigger a rule fired, with the host's recent logs, metrics and disk samples around it.
A small reorder buffer releases events in `ts` order once event time has moved
`state.reorder_seconds` past them, so bounded disorder does not change what fires. Every
buffer is bounded, and what a bound leaves out is counted.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
import pickle
from collections import Counter, deque
from collections.abc import Callable, Sequence
from itertools import chain, islice
from operator import attrgetter
from typing import Any

from flows.config import Config, StateConfig
from operators.events import LEVELS, DiskEvent, Event, LogEvent, MetricsEvent
from operators.rules.ruleset import Rule, build_rules
from operators.triggers import Trigger, TriggerContext

__all__ = ["ContextWindow", "HostState"]

log = logging.getLogger(__name__)

_SEVERE = frozenset({"error", "fault"})
_MAX_PENDING = 100_000
_SNAPSHOT_VERSION = 1


_ts = attrgetter("ts")


class ContextWindow:
    """The recent events of one host: the context every trigger carries.

    In: `add_log`, `add_metrics`, `add_disk` with each event, in time order. Out:
    `context(trigger)`, a `TriggerContext` with the events of the last `context_seconds`
    before the trigger, oldest first, at most `max_events` per stream. For logs, `error` and
    `fault` lines are kept before lower levels, and `dropped_logs` says how many lines of the
    window were left out; `dropped` adds those up over all contexts (`context_logs`) and
    counts the contexts whose metrics or disk samples were cut by the bound.

    Adding costs O(1) with no Python-level eviction: each stream lives in deques bounded by
    `max_events` (two for logs: the error and fault lines, and the rest), and age is applied
    when a context is built, in O(max_events). A per-second count of log lines (bounded by
    `context_seconds`) tells how many lines the window held.

    Args:
        config: `[state]`.
    """

    def __init__(self, config: StateConfig) -> None:
        self.seconds = config.context_seconds
        self.max_events = size = config.max_events
        self.dropped: Counter[str] = Counter()
        self._severe: deque[LogEvent] = deque(maxlen=size)
        self._other: deque[LogEvent] = deque(maxlen=size)
        self._metrics: deque[MetricsEvent] = deque(maxlen=size)
        self._disk: deque[DiskEvent] = deque(maxlen=size)
        self.add_metrics: Callable[[MetricsEvent], None] = self._metrics.append
        """Add one metrics sample."""
        self.add_disk: Callable[[DiskEvent], None] = self._disk.append
        """Add one disk sample."""
        # Log lines per second of event time: finished seconds as (second, count), oldest
        # first, with their sum, and the second being counted.
        self._seconds: deque[tuple[int, int]] = deque()
        self._seconds_total = 0
        self._second = 0
        self._second_end = float("-inf")
        self._second_count = 0

    def add_log(self, event: LogEvent) -> None:
        """Add one log line."""
        if event.level in _SEVERE:
            self._severe.append(event)
        else:
            self._other.append(event)
        if event.ts < self._second_end:
            self._second_count += 1
        else:
            self._next_second(event.ts)

    def _next_second(self, ts: float) -> None:
        seconds = self._seconds
        if self._second_count:
            seconds.append((self._second, self._second_count))
            self._seconds_total += self._second_count
        self._second = second = math.floor(ts)
        self._second_end = second + 1
        self._second_count = 1
        horizon = second - self.seconds - 1
        while seconds and seconds[0][0] < horizon:
            self._seconds_total -= seconds.popleft()[1]

    def _lines_since(self, horizon: float) -> int:
        """Return about how many log lines the host logged at or after `horizon`."""
        total = self._seconds_total + self._second_count
        for second, count in self._seconds:
            if second >= horizon:
                break
            total -= count
        if self._second < horizon:
            total -= self._second_count
        return total

    def context(self, trigger: Trigger) -> TriggerContext:
        """Return `trigger` with the host's events of the `context_seconds` before it."""
        now = trigger.ts
        horizon = now - self.seconds
        severe = _recent(self._severe, horizon, now)
        room = self.max_events - len(severe)
        other = _recent(self._other, horizon, now)[-room:] if room > 0 else []
        logs = sorted(chain(severe, other), key=_ts)
        dropped = max(0, self._lines_since(int(horizon)) - len(logs))
        if dropped:
            self._count("context_logs", dropped)
        for name, samples in (("context_metrics", self._metrics), ("context_disk", self._disk)):
            if len(samples) == self.max_events and samples[0].ts > horizon:
                self._count(name, 1)
        return TriggerContext(
            trigger,
            tuple(logs),
            tuple(_recent(self._metrics, horizon, now)),
            tuple(_recent(self._disk, horizon, now)),
            dropped_logs=dropped,
        )

    def _count(self, reason: str, n: int) -> None:
        if not self.dropped[reason]:
            log.info(
                "rules step: a trigger context left events out (%s, bound %d per stream "
                "within %g s); counted from now on",
                reason,
                self.max_events,
                self.seconds,
            )
        self.dropped[reason] += n

    def __len__(self) -> int:
        return len(self._severe) + len(self._other) + len(self._metrics) + len(self._disk)

    def snapshot(self) -> object:
        """Return the window as plain data."""
        return (
            list(self._severe),
            list(self._other),
            list(self._metrics),
            list(self._disk),
            [*self._seconds, (self._second, self._second_count)],
        )

    def restore(self, state: Any) -> None:
        """Load what `snapshot` returned."""
        severe, other, metrics, disk, seconds = state
        self._severe.extend(severe)
        self._other.extend(other)
        self._metrics.extend(metrics)
        self._disk.extend(disk)
        *finished, (self._second, self._second_count) = seconds
        self._second_end = self._second + 1 if self._second_count else float("-inf")
        self._seconds = deque(finished)
        self._seconds_total = sum(count for _, count in finished)


def _recent(events: deque[Any], horizon: float, now: float) -> list[Any]:
    """Return the events of `events` with `horizon <= ts <= now`, by bisection.

    The deques are in time order except for late events, which may fall on the wrong side
    of an edge.
    """
    start = bisect.bisect_left(events, horizon, key=_ts)
    end = bisect.bisect_right(events, now, lo=start, key=_ts)
    return list(islice(events, start, end))


class HostState:
    """Everything the rules step keeps for one host, and the order events are handled in.

    In: `push(events)` with each batch of the host's events, `flush()` at the end of input.
    Out: the `TriggerContext`s fired, in event-time order. Events wait in a reorder buffer
    until the newest event time is `reorder_seconds` past them (bounded lateness); an event
    older than one already released is handled at once and counted in `late`. Each event goes
    into the `ContextWindow`, then to the rules that read its kind (and, for logs, its level);
    each trigger gets its context.

    Never: reads the wall clock (time is `event.ts` only), or rescans a window per event.
    Not guaranteed: events later than `reorder_seconds` are handled out of order.

    Args:
        config: the whole configuration (`[state]` and `[rules]` are read).
        resume: a `snapshot()` of an earlier run, or None.
        rules: the rules to run (default: the enabled rules of `config`).
    """

    def __init__(
        self, config: Config, resume: bytes | None = None, rules: list[Rule] | None = None
    ) -> None:
        self.host: str | None = None
        self.reorder_seconds = config.state.reorder_seconds
        self.late = 0
        self.rules = build_rules(config.rules) if rules is None else rules
        self._newest = float("-inf")
        self._window = ContextWindow(config.state)
        self._pending: list[Event] = []
        self._released = float("-inf")
        self._overflow = 0
        self._log_rules = {
            level: tuple(
                rule.update
                for rule in self.rules
                if "log" in rule.kinds and (rule.levels is None or level in rule.levels)
            )
            for level in LEVELS
        }
        # Rules that want to know from when the host is watched define `start(ts)`.
        self._start_hooks = [r.start for r in self.rules if hasattr(r, "start")]
        self._started = False
        self._metrics_rules = tuple(r.update for r in self.rules if "metrics" in r.kinds)
        self._disk_rules = tuple(r.update for r in self.rules if "disk" in r.kinds)
        self._out: list[TriggerContext] = []
        # The ids fired at the newest trigger time, with how often each fired there.
        self._fired_ts = float("-inf")
        self._fired: dict[str, int] = {}
        if resume is not None:
            self.restore(resume)

    @property
    def max_ts(self) -> float | None:
        """The newest event time seen, or None before the first event."""
        return None if self._newest == float("-inf") else self._newest

    @property
    def pending(self) -> int:
        """How many events wait in the reorder buffer."""
        return len(self._pending)

    @property
    def dropped(self) -> Counter[str]:
        """Everything a bound left out or evicted so far, by reason (window and rules)."""
        total = Counter(self._window.dropped)
        if self._overflow:
            total["reorder_buffer"] += self._overflow
        for rule in self.rules:
            total.update({f"{rule.name}.{k}": n for k, n in rule.drops.counts.items()})
        return total

    def push(self, events: Sequence[Event]) -> list[TriggerContext]:
        """Take a batch of events; return the trigger contexts of the events released."""
        out = self._out = []
        if not events:
            return out
        if self.host is None:
            self._name_host(events[0].host)
        # Sorting is stable, so events with the same ts keep their arrival order.
        batch = sorted(events, key=_ts)
        if batch[0].ts < self._released:
            cut = bisect.bisect_left(batch, self._released, key=_ts)
            self._late(batch[:cut])
            batch = batch[cut:]
        pending = self._pending
        if pending and batch and batch[0].ts < pending[-1].ts:
            pending = self._pending = sorted(pending + batch, key=_ts)
        else:
            pending += batch
        if pending and pending[-1].ts > self._newest:
            self._newest = pending[-1].ts
        # Release what the newest event time has left `reorder_seconds` behind, in ts order.
        cut = bisect.bisect_right(pending, self._newest - self.reorder_seconds, key=_ts)
        if len(pending) - cut > _MAX_PENDING:
            self._overflow_by(len(pending) - cut - _MAX_PENDING)
            cut = len(pending) - _MAX_PENDING
        if cut:
            ready = pending[:cut]
            del pending[:cut]
            self._released = ready[-1].ts
            self._handle(ready)
        return out

    def flush(self) -> list[TriggerContext]:
        """Release every waiting event; return the trigger contexts they fire."""
        out = self._out = []
        ready, self._pending = self._pending, []
        if ready:
            self._released = max(self._released, ready[-1].ts)
            self._handle(ready)
        return out

    def _late(self, events: list[Event]) -> None:
        """Handle events older than one already released: at once, counted."""
        self.late += len(events)
        if self.late == len(events):
            log.warning(
                "host %s: an event %.3f s older than one already handled; late events are "
                "handled at once and counted",
                self.host,
                self._released - events[0].ts,
            )
        self._handle(events)

    def _overflow_by(self, count: int) -> None:
        if not self._overflow:
            log.warning(
                "host %s: more than %d events wait for reordering; releasing early",
                self.host,
                _MAX_PENDING,
            )
        self._overflow += count

    def _name_host(self, host: str) -> None:
        self.host = host
        for rule in self.rules:
            rule.drops.where = f"host {host}: rule {rule.name}"

    def _handle(self, events: list[Event]) -> None:
        """Put each event into the window, then give it to the rules that read it."""
        if not self._started:
            self._started = True
            for start in self._start_hooks:
                start(events[0].ts)
        window = self._window
        add_log, add_metrics, add_disk = window.add_log, window.add_metrics, window.add_disk
        log_rules, metrics_rules, disk_rules = (
            self._log_rules,
            self._metrics_rules,
            self._disk_rules,
        )
        for event in events:
            kind = type(event)
            if kind is LogEvent:
                add_log(event)
                updates = log_rules[event.level]  # type: ignore[union-attr]
            elif kind is MetricsEvent:
                add_metrics(event)
                updates = metrics_rules
            else:
                add_disk(event)
                updates = disk_rules
            for update in updates:
                fired = update(event)
                if fired:
                    self._out.extend(window.context(self._distinct(t)) for t in fired)

    def _distinct(self, trigger: Trigger) -> Trigger:
        """Number a trigger that repeats the id of one fired at the same event time."""
        if trigger.ts > self._fired_ts:
            self._fired_ts = trigger.ts
            self._fired.clear()
        base = trigger.id
        earlier = self._fired.get(base, 0)
        self._fired[base] = earlier + 1
        return dataclasses.replace(trigger, occurrence=earlier) if earlier else trigger

    def snapshot(self) -> bytes:
        """Return the whole state (buffer, window, every rule's state) as immutable bytes."""
        state = {
            "version": _SNAPSHOT_VERSION,
            "host": self.host,
            "newest": self._newest,
            "released": self._released,
            "late": self.late,
            "started": self._started,
            "pending": list(self._pending),
            "window": self._window.snapshot(),
            "rules": {rule.name: rule.snapshot() for rule in self.rules},
            "fired": (self._fired_ts, dict(self._fired)),
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, snapshot: bytes) -> None:
        """Load what `snapshot` returned; rules that are no longer enabled are left out."""
        state = pickle.loads(snapshot)  # our own snapshot, read back from the recovery store
        if state.get("version") != _SNAPSHOT_VERSION:
            log.warning(
                "rules step: snapshot version %r not understood; starting empty",
                state.get("version"),
            )
            return
        if state["host"] is not None:
            self._name_host(state["host"])
        self._newest = state["newest"]
        self._released = state["released"]
        self.late = state["late"]
        self._started = state["started"]
        self._pending = list(state["pending"])
        self._window.restore(state["window"])
        fired_ts, fired = state.get("fired", (float("-inf"), {}))
        self._fired_ts, self._fired = fired_ts, dict(fired)
        for rule in self.rules:
            if rule.name in state["rules"]:
                rule.restore(state["rules"][rule.name])
