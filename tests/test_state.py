from __future__ import annotations

import dataclasses
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import operators.state as state_module
from flows.config import Config
from operators.events import Event
from operators.state import HostState
from operators.triggers import TriggerContext
from tests.rules.factory import T0, config_with, disk, log, metrics


def _state(config: Config | None = None, **sections: dict[str, object]) -> HostState:
    return HostState(config_with(config, **sections))


def _run(state: HostState, events: list[Event], batch: int = 1000) -> list[TriggerContext]:
    out = []
    for start in range(0, len(events), batch):
        out += state.push(events[start : start + batch])
    return out + state.flush()


def _incident() -> list[Event]:
    """A minute on web-1: steady samples, then memory pressure, a CPU spike and a crash."""
    events: list[Event] = []
    for n in range(12):
        at = n * 5.0
        cpu = 95.0 if n == 6 else 20.0
        pressure = "critical" if n == 9 else "normal"
        events.append(metrics(at, id=f"m{n}", pressure=pressure, cpu_percent=cpu))
        events.append(disk(at + 0.5, write=1e6 * (n + 1), id=f"d{n}"))
        events.append(log(at + 1, f"request {n} served", level="info", id=f"i{n}"))
    events.append(log(42.0, "worker 2 crashed with signal 11", id="crash"))
    return sorted(events, key=lambda e: e.ts)


def _summary(contexts: list[TriggerContext]) -> list[tuple[str, str, float]]:
    return [(c.trigger.rule, c.trigger.key, c.trigger.ts - T0) for c in contexts]


def test_triggers_come_out_in_event_time_order() -> None:
    assert _summary(_run(_state(), _incident())) == [
        ("resource_spike", "cpu_percent", 30.0),
        ("crash", "app/app.service", 42.0),
        ("memory_pressure", "mem_pressure", 45.0),
    ]


def test_a_context_carries_the_hosts_recent_events_of_all_three_streams() -> None:
    contexts = _run(_state(state={"context_seconds": 20.0}), _incident())
    crash = next(c for c in contexts if c.trigger.rule == "crash")
    assert [e.id for e in crash.logs] == ["i5", "i6", "i7", "i8", "crash"]
    assert [e.id for e in crash.metrics] == ["m5", "m6", "m7", "m8"]
    assert [e.id for e in crash.disk] == ["d5", "d6", "d7", "d8"]
    assert crash.dropped_logs == 0


def test_a_context_keeps_error_lines_before_lower_levels_and_counts_what_it_left_out() -> None:
    events: list[Event] = [log(n * 0.1, f"debug line {n}", level="debug") for n in range(50)]
    events += [log(5.0 + n * 0.1, f"disk {n} failing", id=f"e{n}") for n in range(3)]
    events += [log(6.0 + n * 0.1, f"info line {n}", level="info") for n in range(50)]
    events.append(log(20.0, "app crashed", id="crash"))
    [context] = _run(_state(state={"max_events": 10}), events)
    levels = [e.level for e in context.logs]
    assert len(context.logs) == 10
    assert levels.count("error") == 4  # three failing disks and the crash line
    assert [e.id for e in context.logs if e.level == "error"] == ["e0", "e1", "e2", "crash"]
    assert context.dropped_logs == 104 - 10


def test_the_context_bound_applies_to_metrics_and_disk_samples_too() -> None:
    events: list[Event] = []
    for n in range(30):
        events += [metrics(n, cpu_percent=10.0), disk(n + 0.5, write=1.0)]
    events.append(log(30.0, "app crashed"))
    state = _state(state={"max_events": 5})
    [context] = _run(state, events)
    assert (len(context.metrics), len(context.disk)) == (5, 5)
    assert context.metrics[-1].ts == T0 + 29
    assert state.dropped == {"context_metrics": 1, "context_disk": 1}


def test_events_wait_until_event_time_has_moved_past_the_reorder_bound() -> None:
    state = _state(state={"reorder_seconds": 5.0})
    assert state.push([log(0, "app crashed")]) == []
    assert state.pending == 1
    assert state.push([log(4.9, "info", level="info")]) == []
    assert len(state.push([log(5.0, "info", level="info")])) == 1
    assert state.max_ts == T0 + 5.0


def test_flush_releases_every_waiting_event() -> None:
    state = _state()
    assert state.push([log(0, "app crashed")]) == []
    assert len(state.flush()) == 1
    assert state.pending == 0


def test_an_event_later_than_the_reorder_bound_is_handled_at_once_and_counted() -> None:
    state = _state(state={"reorder_seconds": 2.0})
    state.push([log(0, "x", level="info"), log(10, "y", level="info")])
    state.push([log(13, "z", level="info")])  # releases the line at +10
    assert len(state.push([log(9, "app crashed")])) == 1
    assert state.late == 1


def test_a_full_reorder_buffer_releases_its_oldest_event_and_counts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(state_module, "_MAX_PENDING", 3)
    state = _state(state={"reorder_seconds": 1000.0})
    state.push([log(n, "x", level="info") for n in range(5)])
    assert state.pending == 3
    assert state.dropped["reorder_buffer"] == 2


def _shuffled(events: list[Event], seed: int, seconds: float) -> list[Event]:
    """Return `events` with each one moved by up to `seconds` of event time."""
    rng = random.Random(seed)
    keyed = [(e.ts + rng.uniform(0.0, seconds), n, e) for n, e in enumerate(events)]
    return [e for _, _, e in sorted(keyed, key=lambda item: (item[0], item[1]))]


@settings(max_examples=40)
@given(st.integers(min_value=0, max_value=10_000), st.sampled_from([1, 3, 7, 1000]))
def test_disorder_within_the_reorder_bound_does_not_change_what_fires(
    seed: int, batch: int
) -> None:
    events = _incident()
    expected = _run(_state(), events)
    got = _run(_state(state={"reorder_seconds": 5.0}), _shuffled(events, seed, 4.9), batch)
    assert [c.trigger for c in got] == [c.trigger for c in expected]
    assert [[e.id for e in c.logs] for c in got] == [[e.id for e in c.logs] for c in expected]


@settings(max_examples=25)
@given(st.integers(min_value=0, max_value=len(_incident())))
def test_a_resumed_state_fires_what_the_original_would(cut: int) -> None:
    events = _incident()
    expected = _run(_state(), events)
    first = _state()
    head = first.push(events[:cut])
    resumed = HostState(Config(), first.snapshot())
    tail = resumed.push(events[cut:]) + resumed.flush()
    assert [c.trigger for c in head + tail] == [c.trigger for c in expected]
    assert [len(c.logs) for c in head + tail] == [len(c.logs) for c in expected]


def test_a_snapshot_is_immutable_bytes() -> None:
    state = _state()
    state.push(_incident()[:10])
    pending, snapshot = state.pending, state.snapshot()
    state.push(_incident()[10:])
    assert isinstance(snapshot, bytes)
    assert HostState(Config(), snapshot).pending == pending == 3


def test_a_disabled_rule_fires_nothing() -> None:
    contexts = _run(_state(crash={"enabled": False}), _incident())
    assert "crash" not in {c.trigger.rule for c in contexts}


def _same_second_crashes() -> list[Event]:
    """Three identical crash lines of one process in the same second, then a later one."""
    crash = "worker 2 crashed with signal 11"
    same_second = [log(10.0, crash, id=name) for name in "abc"]
    return [*same_second, log(11.0, crash, id="d")]


def test_triggers_of_the_same_rule_key_and_time_get_ids_of_their_own() -> None:
    contexts = _run(_state(rules={"cooldown_seconds": 0}), _same_second_crashes())
    triggers = [c.trigger for c in contexts]
    assert [(t.ts - T0, t.occurrence) for t in triggers] == [
        (10.0, 0),
        (10.0, 1),
        (10.0, 2),
        (11.0, 0),
    ]
    assert len({t.id for t in triggers}) == 4
    # The first of each time keeps the id it had before numbering existed.
    assert triggers[0].id == dataclasses.replace(triggers[1], occurrence=0).id
    again = _run(_state(rules={"cooldown_seconds": 0}), _same_second_crashes())
    assert [c.id for c in again] == [c.id for c in contexts]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_a_resumed_state_goes_on_numbering_where_it_stopped(cut: int) -> None:
    config = config_with(None, rules={"cooldown_seconds": 0}, state={"reorder_seconds": 0})
    events = _same_second_crashes()
    expected = [c.id for c in _run(HostState(config), events)]
    first = HostState(config)
    head = [c.id for c in first.push(events[:cut])]
    resumed = HostState(config, first.snapshot())
    tail = [c.id for c in resumed.push(events[cut:]) + resumed.flush()]
    assert head + tail == expected
