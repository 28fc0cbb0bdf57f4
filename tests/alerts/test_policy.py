"""The alert policy on a fake clock: suppression, the rate limit, the queue and its order."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from operators.alerts.policy import (
    AlertPolicy,
    AlertQueue,
    Decision,
    EventTime,
    PolicyState,
    QueuedAlert,
    RateLimiter,
)
from operators.triggers import SEVERITIES, severity_rank


class _Clock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _policy(
    clock: _Clock,
    *,
    limit: int = 2,
    size: int = 3,
    floor: str = "warning",
    state: PolicyState[str] | None = None,
) -> AlertPolicy[str]:
    return AlertPolicy(
        rate_limit=limit, queue_size=size, min_severity=floor, clock=clock, state=state
    )


def _fates(decisions: list[Decision[str]]) -> list[tuple[str, str, float]]:
    return [(d.item, d.fate, d.at) for d in decisions]


def test_an_alert_below_min_severity_is_suppressed_and_does_not_count() -> None:
    clock = _Clock()
    policy = _policy(clock, limit=1)
    suppressed = policy.offer("a", severity="info", ts=0)
    assert _fates(suppressed) == [("a", "suppressed", 0.0)]
    assert "below min_severity warning" in suppressed[0].reason
    assert _fates(policy.offer("b", severity="warning", ts=0)) == [("b", "delivered", 0.0)]


def test_alerts_within_the_limit_are_delivered_at_once() -> None:
    clock = _Clock(10.0)
    policy = _policy(clock, limit=2)
    assert _fates(policy.offer("a", severity="critical", ts=10)) == [("a", "delivered", 10.0)]
    assert _fates(policy.offer("b", severity="warning", ts=10)) == [("b", "delivered", 10.0)]
    assert policy.offer("c", severity="warning", ts=10) == []
    assert policy.waiting == 1
    assert policy.next_release() == 70.0


def test_a_waiting_alert_goes_out_when_its_slot_opens_not_when_time_is_next_read() -> None:
    clock = _Clock(0.0)
    policy = _policy(clock, limit=1)
    policy.offer("a", severity="warning", ts=0)
    policy.offer("b", severity="warning", ts=0)
    clock.now = 95.0
    drained = policy.advance()
    assert _fates(drained) == [("b", "delivered", 60.0)]
    assert drained[0].reason == "waited 60.0s for the rate limit (1 per 60s)"


def test_the_queue_drains_critical_first_then_oldest_first() -> None:
    clock = _Clock(0.0)
    policy = _policy(clock, limit=1, size=5)
    policy.offer("first", severity="critical", ts=0)
    policy.offer("warn-old", severity="warning", ts=1)
    policy.offer("crit-new", severity="critical", ts=3)
    policy.offer("crit-old", severity="critical", ts=2)
    policy.offer("warn-new", severity="warning", ts=4)
    clock.now = 1000.0
    order = [d.item for d in policy.advance()]
    assert order == ["crit-old", "crit-new", "warn-old", "warn-new"]


def test_a_new_alert_waits_behind_the_queue_even_when_a_slot_is_free() -> None:
    clock = _Clock(0.0)
    policy = _policy(clock, limit=1, size=5)
    policy.offer("a", severity="warning", ts=0)
    policy.offer("b", severity="warning", ts=1)
    policy.offer("c", severity="warning", ts=2)
    clock.now = 60.0
    # b takes the slot that opened at 60; c still waits and so does the newcomer.
    assert _fates(policy.offer("d", severity="critical", ts=60)) == [("b", "delivered", 60.0)]
    clock.now = 120.0
    assert _fates(policy.advance()) == [("d", "delivered", 120.0)]


def test_overflow_drops_the_oldest_alert_of_the_lowest_severity() -> None:
    clock = _Clock(0.0)
    policy = _policy(clock, limit=1, size=2)
    policy.offer("sent", severity="critical", ts=0)
    policy.offer("warn", severity="warning", ts=1)
    policy.offer("crit", severity="critical", ts=2)
    dropped = policy.offer("crit-2", severity="critical", ts=3)
    assert _fates(dropped) == [("warn", "dropped", 0.0)]
    assert "queue was full (2 waiting" in dropped[0].reason
    # All critical now: the oldest critical goes, even though the newcomer is the newest.
    assert _fates(policy.offer("crit-3", severity="critical", ts=4)) == [("crit", "dropped", 0.0)]
    assert policy.dropped["queue_full"] == 2


def test_overflow_drops_the_newcomer_when_it_is_the_lowest() -> None:
    clock = _Clock(0.0)
    policy = _policy(clock, limit=1, size=1, floor="info")
    policy.offer("sent", severity="critical", ts=0)
    policy.offer("crit", severity="critical", ts=1)
    assert _fates(policy.offer("info", severity="info", ts=2)) == [("info", "dropped", 0.0)]


def test_close_marks_what_still_waits_as_queued_most_urgent_first() -> None:
    clock = _Clock(0.0)
    policy = _policy(clock, limit=1, size=5)
    for name, severity in [("a", "warning"), ("b", "warning"), ("c", "critical")]:
        policy.offer(name, severity=severity, ts=0)
    clock.now = 30.0
    closed = policy.close()
    assert _fates(closed) == [("c", "queued", 30.0), ("b", "queued", 30.0)]
    assert closed[0].reason.startswith("still waiting for the rate limit (1 per 60s)")
    assert policy.waiting == 0


def test_a_clock_that_steps_back_reads_as_standing_still() -> None:
    clock = _Clock(100.0)
    policy = _policy(clock, limit=1)
    policy.offer("a", severity="warning", ts=100)
    clock.now = 50.0
    assert _fates(policy.offer("b", severity="warning", ts=50)) == []
    assert policy.next_release() == 160.0


def test_event_time_never_goes_back() -> None:
    clock = EventTime()
    assert clock.now() == -math.inf
    clock.observe(10.0)
    clock.observe(5.0)
    assert clock.now() == 10.0


def test_the_policy_resumes_from_a_pickled_snapshot() -> None:
    clock = _Clock(0.0)
    policy = _policy(clock, limit=1, size=3)
    for name in "abc":
        policy.offer(name, severity="warning", ts=0)
    state = pickle.loads(pickle.dumps(policy.snapshot()))
    resumed = _policy(clock, limit=1, size=3, state=state)
    clock.now = 200.0
    assert _fates(resumed.advance()) == [("b", "delivered", 60.0), ("c", "delivered", 120.0)]


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: RateLimiter(0), r"limit must be at least 1, got 0"),
        (lambda: RateLimiter(1, period=0), r"period must be greater than 0 seconds, got 0"),
        (lambda: AlertQueue(0), r"size must be at least 1, got 0"),
        (
            lambda: AlertPolicy(rate_limit=1, queue_size=1, min_severity="loud", clock=_Clock()),
            r"min_severity must be one of .*got 'loud'",
        ),
    ],
)
def test_bad_limits_are_refused_with_the_value(build: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build()  # type: ignore[operator]


def test_the_limiter_refuses_a_grant_over_the_limit_or_back_in_time() -> None:
    limiter = RateLimiter(1, period=60)
    limiter.grant(10.0)
    with pytest.raises(ValueError, match=r"a grant at 20.0 breaks the limit; next free at 70.0"):
        limiter.grant(20.0)
    limiter = RateLimiter(2, period=60)
    limiter.grant(10.0)
    with pytest.raises(ValueError, match=r"grant at 5.0 is before the last one at 10.0"):
        limiter.grant(5.0)


def test_an_empty_queue_refuses_to_pop() -> None:
    queue: AlertQueue[str] = AlertQueue(1)
    with pytest.raises(IndexError, match="pop from an empty queue"):
        queue.pop()
    with pytest.raises(IndexError, match="pop_lowest from an empty queue"):
        queue.pop_lowest()
    assert queue.offer(QueuedAlert("a", "info", 0.0, 0, 0.0))
    assert not queue.offer(QueuedAlert("b", "info", 0.0, 1, 0.0))


# --- properties over random alert streams ----------------------------------------------------

_steps = st.lists(
    st.tuples(
        st.sampled_from(["alert", "alert", "alert", "tick"]),
        st.one_of(st.just(0.0), st.floats(0, 5), st.floats(0, 90)),
        st.sampled_from(SEVERITIES),
        st.floats(0, 30),
    ),
    max_size=60,
)


@dataclass
class _Run:
    limit: int
    size: int
    floor: str
    decisions: list[Decision[int]] = field(default_factory=list)
    arrivals: dict[int, tuple[float, float, str]] = field(default_factory=dict)  # at, ts, sev


def _prio(run: _Run, item: int) -> tuple[int, float, int]:
    _, ts, severity = run.arrivals[item]
    return severity_rank(severity), ts, item


def _check_call(
    run: _Run,
    policy: AlertPolicy[int],
    waiting: set[int],
    newcomer: int | None,
    decisions: list[Decision[int]],
    now: float,
) -> None:
    """Check one call's decisions against the stated order; update the waiting set."""
    decided_newcomer = False
    for d in decisions:
        assert d.at <= now
        assert d.at >= run.arrivals[d.item][0]
        if d.fate == "suppressed":
            assert d.item == newcomer
            assert severity_rank(run.arrivals[d.item][2]) < severity_rank(run.floor)
            decided_newcomer = True
        elif d.fate in ("delivered", "queued") and d.item in waiting:
            best = max(waiting, key=lambda i: (_prio(run, i)[0], -_prio(run, i)[1], -i))
            assert d.item == best, "the queue drains critical first, then oldest first"
            waiting.remove(d.item)
        elif d.fate == "delivered":
            assert d.item == newcomer
            assert not waiting, "a newcomer never overtakes waiting alerts"
            decided_newcomer = True
        elif d.fate == "dropped":
            assert newcomer is not None
            candidates = waiting | {newcomer}
            assert d.item == min(candidates, key=lambda i: _prio(run, i)), "oldest lowest drops"
            assert len(waiting) == run.size
            if d.item == newcomer:
                decided_newcomer = True
            else:
                waiting.remove(d.item)
        else:  # pragma: no cover - a fate the policy must not return
            raise AssertionError(d)
    if newcomer is not None and not decided_newcomer:
        waiting.add(newcomer)
    assert len(waiting) == policy.waiting <= run.size
    if waiting:  # work-conserving: something waits only while the limit is used up
        recent = [d.at for d in run.decisions + decisions if d.fate == "delivered"]
        assert sum(1 for at in recent if at + 60.0 > now) >= run.limit


def _play(
    run: _Run, steps: list[tuple[str, float, str, float]], split: int | None = None
) -> list[Decision[int]]:
    clock = _Clock(0.0)
    policy: AlertPolicy[int] = AlertPolicy(
        rate_limit=run.limit, queue_size=run.size, min_severity=run.floor, clock=clock
    )
    waiting: set[int] = set()
    for index, (kind, dt, severity, skew) in enumerate(steps):
        if index == split:
            state = pickle.loads(pickle.dumps(policy.snapshot()))
            policy = AlertPolicy(
                rate_limit=run.limit,
                queue_size=run.size,
                min_severity=run.floor,
                clock=clock,
                state=state,
            )
        clock.now += dt
        if kind == "alert":
            run.arrivals[index] = (clock.now, clock.now - skew, severity)
            got = policy.offer(index, severity=severity, ts=clock.now - skew)
            _check_call(run, policy, waiting, index, got, clock.now)
        else:
            got = policy.advance()
            _check_call(run, policy, waiting, None, got, clock.now)
        run.decisions.extend(got)
    got = policy.close()
    _check_call(run, policy, waiting, None, got, clock.now)
    run.decisions.extend(got)
    assert not waiting
    return run.decisions


@settings(max_examples=300, deadline=None)
@given(
    steps=_steps,
    limit=st.integers(1, 4),
    size=st.integers(1, 5),
    floor=st.sampled_from(SEVERITIES),
)
def test_the_limiter_keeps_the_limit_loses_nothing_and_drains_in_order(
    steps: list[tuple[str, float, str, float]], limit: int, size: int, floor: str
) -> None:
    run = _Run(limit, size, floor)
    decisions = _play(run, steps)
    # Every alert ends in exactly one decision.
    decided = [d.item for d in decisions]
    assert sorted(decided) == sorted(run.arrivals)
    # Never more than `limit` deliveries in any 60 s window [t, t + 60).
    delivered = sorted(d.at for d in decisions if d.fate == "delivered")
    for i in range(len(delivered) - limit):
        assert delivered[i + limit] >= delivered[i] + 60.0
    # Fates are decided in time order, and the floor is the only reason for suppression.
    assert [d.at for d in decisions] == sorted(d.at for d in decisions)
    for d in decisions:
        below = severity_rank(run.arrivals[d.item][2]) < severity_rank(floor)
        assert (d.fate == "suppressed") == below


@settings(max_examples=150, deadline=None)
@given(steps=_steps, limit=st.integers(1, 3), size=st.integers(1, 4), data=st.data())
def test_a_resumed_policy_decides_what_an_uninterrupted_one_decides(
    steps: list[tuple[str, float, str, float]], limit: int, size: int, data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(steps)))
    straight = _play(_Run(limit, size, "warning"), steps)
    resumed = _play(_Run(limit, size, "warning"), steps, split=split)
    assert _fates(straight) == _fates(resumed)  # type: ignore[arg-type]
    assert [d.reason for d in straight] == [d.reason for d in resumed]


def test_in_a_replay_an_alert_behind_the_clock_is_decided_at_its_own_time() -> None:
    clock = _Clock(5.0)  # another host's watermark moved event time on first
    policy: AlertPolicy[str] = AlertPolicy(
        rate_limit=2, queue_size=2, min_severity="warning", clock=clock, decide_at_ts=True
    )
    assert _fates(policy.offer("a", severity="critical", ts=0)) == [("a", "delivered", 0.0)]
    assert _fates(policy.offer("b", severity="critical", ts=1)) == [("b", "delivered", 1.0)]
    assert policy.offer("c", severity="critical", ts=3) == []  # waits from 3, not from 5
    clock.now = 70.0
    [released] = policy.advance()
    assert (released.item, released.fate, released.at) == ("c", "delivered", 60.0)
    assert "waited 57.0s" in released.reason
    # Never before the last delivery, so the limit still holds in time order.
    assert _fates(policy.offer("d", severity="info", ts=30)) == [("d", "suppressed", 60.0)]


def test_live_every_alert_is_decided_at_the_clock() -> None:
    clock = _Clock(5.0)
    policy = _policy(clock)
    assert _fates(policy.offer("a", severity="critical", ts=0)) == [("a", "delivered", 5.0)]
