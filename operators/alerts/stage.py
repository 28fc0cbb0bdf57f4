"""The alert stage: the alert policy as a stateful dataflow step, then the notifiers.

In: `AnalysedTrigger`s and `Watermark`s, in the LLM step's order. Out: one `AlertRecord` per
analysed trigger, with its delivery (`delivered`, `suppressed`, `dropped`, `queued`, `failed`)
and the reason. Everything is keyed to one key, so the rate limit is global.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulLogic
from typing_extensions import override

from flows.config import AlertsConfig
from operators.alerts.dispatch import Dispatcher, NotifyOutcome
from operators.alerts.history import AlertHistory, HistoryError
from operators.alerts.notify import Notifier, build_notifiers
from operators.alerts.policy import AlertPolicy, Decision, EventTime, Fate, PolicyState
from operators.records import AlertRecord, AnalysedTrigger
from operators.triggers import Watermark

__all__ = ["alert_stage"]

log = logging.getLogger(__name__)

_KEY = "alerts"
_POLL = timedelta(milliseconds=20)  # how often finished notifications are collected
_MIN_DELAY = 0.01  # a timer is never set in the past: that would spin the worker
_MAX_IN_FLIGHT = 100  # beyond this many notifications in flight, the step waits for them


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """A decided alert on its way out; `outcome` once its notifiers have answered."""

    analysed: AnalysedTrigger
    fate: Fate
    reason: str
    at: float
    outcome: NotifyOutcome | None = None


@dataclass(frozen=True, slots=True)
class _StageState:
    """The step's snapshot: the policy (limiter and queue), what is on its way out, the clock."""

    policy: PolicyState[AnalysedTrigger]
    outbox: tuple[_Outgoing, ...]
    event_time: float


@dataclass(frozen=True, slots=True)
class _Settings:
    alerts: AlertsConfig
    live: bool
    database: Path
    clock: Callable[[], float]
    notifiers: tuple[Notifier, ...]
    period: float


@dataclass(slots=True)
class _Pending:
    outgoing: _Outgoing
    future: cf.Future[NotifyOutcome] | None


class _AlertLogic(StatefulLogic[object, AlertRecord, _StageState]):
    """The policy on the step's clock, the dispatcher for notifications, the history's lifecycle.

    The clock is event time in a replay (the latest watermark or trigger time seen) and the
    injected wall clock live, where a timer drains the queue while it is not empty. Decided
    alerts leave in the order they were decided; a delivered one leaves once its notifiers have
    answered, and so does everything decided after it.

    Never: blocks the worker on notifier I/O, except when more than 100 notifications are in
    flight (backpressure) and at EOF, each wait bounded by the notifiers' timeouts; reads the
    wall clock to decide anything in a replay; sets a timer in the past.
    Not guaranteed: a notification runs exactly once (what was in flight at the last snapshot
    is sent again on resume); the history's lifecycle stamps when the database is unavailable
    (the flow goes on; `HistorySink` still writes the record).
    Delivery: at-least-once; the queue, the limiter and the outgoing alerts are in the snapshot.
    """

    def __init__(self, settings: _Settings, resume: _StageState | None) -> None:
        self._settings = settings
        self._event_time = EventTime(resume.event_time if resume else -math.inf)
        clock = settings.clock if settings.live else self._event_time.now
        self._clock = clock
        alerts = settings.alerts
        self._policy: AlertPolicy[AnalysedTrigger] = AlertPolicy(
            rate_limit=alerts.rate_limit_per_minute,
            queue_size=alerts.queue_size,
            min_severity=alerts.min_severity,
            clock=clock,
            period=settings.period,
            state=resume.policy if resume else None,
            decide_at_ts=not settings.live,
        )
        self._dispatcher = Dispatcher(settings.notifiers)
        self._outbox: deque[_Pending] = deque()
        self.dropped: Counter[str] = Counter()
        self._history = self._open_history()
        for outgoing in resume.outbox if resume else ():
            self._put_out(outgoing)

    def _open_history(self) -> AlertHistory | None:
        try:
            return AlertHistory(self._settings.database)
        except HistoryError as exc:
            log.error("alert stage: lifecycle times are not recorded: %s", exc)
            return None

    def _history_failed(self, exc: HistoryError) -> None:
        self.dropped["history_write_failed"] += 1
        if self.dropped["history_write_failed"] == 1:
            log.warning("alert stage: %s (reported once; the records still flow)", exc)

    def _put_out(self, outgoing: _Outgoing) -> None:
        future = None
        if outgoing.fate == "delivered" and outgoing.outcome is None and self._dispatcher.notifiers:
            record = AlertRecord(outgoing.analysed, "delivered", outgoing.reason)
            future = self._dispatcher.submit(record)
        self._outbox.append(_Pending(outgoing, future))

    def _decided(self, decisions: list[Decision[AnalysedTrigger]]) -> None:
        for decision in decisions:
            self._put_out(_Outgoing(decision.item, decision.fate, decision.reason, decision.at))

    def _final(self, pending: _Pending) -> AlertRecord:
        outgoing = pending.outgoing
        if outgoing.fate != "delivered":
            return AlertRecord(outgoing.analysed, outgoing.fate, outgoing.reason)
        outcome = outgoing.outcome
        if outcome is None:
            outcome = pending.future.result() if pending.future is not None else NotifyOutcome()
        delivery, reason = outcome.delivery(outgoing.reason)
        return AlertRecord(outgoing.analysed, delivery, reason)

    def _in_flight(self) -> int:
        return sum(1 for p in self._outbox if p.future is not None and not p.future.done())

    def _ready(self, *, wait_all: bool = False) -> list[AlertRecord]:
        """Return the records at the head of the outbox whose notifications are done."""
        if not wait_all and self._in_flight() > _MAX_IN_FLIGHT:
            log.debug("alert stage: more than %d notifications in flight, waiting", _MAX_IN_FLIGHT)
            while self._in_flight() > _MAX_IN_FLIGHT // 2:
                head = next(p.future for p in self._outbox if p.future and not p.future.done())
                cf.wait([head])
        records: list[AlertRecord] = []
        stamps: dict[str, float] = {}
        while self._outbox:
            head = self._outbox[0]
            if head.future is not None and not head.future.done():
                if not wait_all:
                    break
                cf.wait([head.future])
            self._outbox.popleft()
            record = self._final(head)
            records.append(record)
            stamps[record.id] = head.outgoing.at
        if records and self._history is not None:
            try:
                self._history.record(records, decided_at=stamps)
            except HistoryError as exc:
                self._history_failed(exc)
        return records

    def _admit(self, analysed: AnalysedTrigger) -> None:
        if self._history is None:
            return
        try:
            self._history.admit(analysed, at=self._clock())
        except HistoryError as exc:
            self._history_failed(exc)

    @override
    def on_item(self, value: object) -> tuple[list[AlertRecord], bool]:
        if isinstance(value, Watermark):
            self._event_time.observe(value.ts)
            self._decided(self._policy.advance())
        elif isinstance(value, AnalysedTrigger):
            trigger = value.context.trigger
            self._event_time.observe(trigger.ts)
            self._admit(value)
            self._decided(self._policy.offer(value, severity=trigger.severity, ts=trigger.ts))
        else:
            self.dropped["unexpected_item"] += 1
            if self.dropped["unexpected_item"] == 1:
                log.error("alert stage: ignored an item that is not an analysed trigger: %r", value)
        return self._ready(), StatefulLogic.RETAIN

    @override
    def on_notify(self) -> tuple[list[AlertRecord], bool]:
        if self._settings.live:
            self._decided(self._policy.advance())
        return self._ready(), StatefulLogic.RETAIN

    @override
    def on_eof(self) -> tuple[list[AlertRecord], bool]:
        if self._settings.live:
            self._decided(self._policy.advance())
        self._decided(self._policy.close())
        records = self._ready(wait_all=True)
        self._dispatcher.close()
        if self._history is not None:
            self._history.close()
            self._history = None
        return records, StatefulLogic.RETAIN

    @override
    def notify_at(self) -> datetime | None:
        now = datetime.now(timezone.utc)
        deadlines = [now + _POLL] if self._outbox else []
        release = self._policy.next_release() if self._settings.live else None
        if release is not None:
            delay = min(max(release - self._settings.clock(), _MIN_DELAY), self._settings.period)
            deadlines.append(now + timedelta(seconds=delay))
        return min(deadlines) if deadlines else None

    @override
    def snapshot(self) -> _StageState:
        outbox = []
        for pending in self._outbox:
            outgoing = pending.outgoing
            future = pending.future
            if outgoing.outcome is None and future is not None and future.done():
                outgoing = _Outgoing(
                    outgoing.analysed, outgoing.fate, outgoing.reason, outgoing.at, future.result()
                )
            outbox.append(outgoing)
        return _StageState(self._policy.snapshot(), tuple(outbox), self._event_time.now())


def _one_key(item: object) -> str:
    return _KEY


def _value(keyed: tuple[str, AlertRecord]) -> AlertRecord:
    return keyed[1]


@operator
def alert_stage(
    step_id: str,
    analysed: Stream[AnalysedTrigger | Watermark],
    alerts: AlertsConfig,
    *,
    live: bool,
    database: Path,
    clock: Callable[[], float] = time.time,
    notifiers: Sequence[Notifier] | None = None,
    period: float = 60.0,
) -> Stream[AlertRecord]:
    """Decide each analysed trigger's fate, notify the delivered ones, return every record.

    Policy (see `AlertPolicy`): below `min_severity` -> `suppressed`; at most
    `rate_limit_per_minute` deliveries in any 60 s; over that, a queue of `queue_size` served
    critical first, then oldest first; overflow drops the oldest of the lowest severity;
    what still waits at EOF is `queued`. `min_severity` and the queue's priority use the
    rule's severity, not the insight's: the model reads untrusted log lines, and a log line
    must not be able to talk an alert into silence.

    Notifying: delivered alerts go to the notifiers on one background thread, in order; when
    every notifier fails the record says `failed` with the reasons; with no notifier
    configured it stays `delivered` (history only). Records leave in the order their fates
    were decided, so a replay writes them in the same order every time.

    Args:
        step_id: the step's id; its state is recovered by it (do not rename).
        analysed: analysed triggers and watermarks.
        alerts: the `[alerts]` configuration.
        live: True: the clock is `clock` (wall time) and a timer drains the queue without
            events. False (a replay): the clock is event time only.
        database: the history file; the stage stamps each alert's arrival and fate time there.
        clock: wall-clock seconds for a live run.
        notifiers: the notifiers to use; default the ones `[alerts] notify` names.
        period: the rate limit's window in seconds (60; a parameter for tests).

    Returns:
        One `AlertRecord` per analysed trigger.

    Raises:
        ConfigError: `webhook` is chosen without a `webhook_url`.
    """
    chosen = tuple(build_notifiers(alerts) if notifiers is None else notifiers)
    settings = _Settings(alerts, live, Path(database), clock, chosen, period)
    keyed = op.key_on("key", analysed, _one_key)  # ("alerts", AnalysedTrigger | Watermark)
    decided = op.stateful("policy", keyed, partial(_AlertLogic, settings))  # ("alerts", record)
    return op.map("unkey", decided, _value)  # AlertRecord
